package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// User is a local user of this node.
type User struct {
	// ID is the local part of the user's reference, e.g. "alice" in
	// "alice@did:web:ministry.example".
	ID          string
	DisplayName string
	Admin       bool
	CreatedAt   time.Time
	// Unit is the user's organisational unit (a directorate, a service) as
	// the OpenID provider last gave it; empty when unknown.
	Unit string
}

// Token is an API bearer token of a local user.
type Token struct {
	// Hash is the hex SHA-256 of the bearer token; the token itself is never
	// stored, so a copy of the database does not let anyone in.
	Hash      string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
	Revoked   bool
}

const (
	userColumns  = `id, display_name, admin, created_at, unit`
	tokenColumns = `hash, user_id, created_at, expires_at, revoked`
)

func scanUser(r rowScanner) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.DisplayName, &u.Admin, millisTime{&u.CreatedAt}, &u.Unit)
	return u, err
}

func (s queries) PutUser(ctx context.Context, u User) error {
	if u.ID == "" {
		return errors.New("store: put user: ID is empty")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, admin = excluded.admin,
	created_at = excluded.created_at, unit = excluded.unit`,
		u.ID, u.DisplayName, u.Admin, millisArg(u.CreatedAt), u.Unit)
	if err != nil {
		return fmt.Errorf("store: put user %q: %w", u.ID, err)
	}
	return nil
}

func (s queries) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.q.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	if err != nil {
		return User{}, fmt.Errorf("store: get user %q: %w", id, err)
	}
	return u, nil
}

func (s queries) ListUsers(ctx context.Context) ([]User, error) {
	rs, err := s.q.query(ctx, `SELECT `+userColumns+` FROM users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	us, err := scanAll(rs, scanUser)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	return us, nil
}

func (s queries) PutToken(ctx context.Context, t Token) error {
	if t.Hash == "" {
		return errors.New("store: put token: hash is empty")
	}
	_, err := s.q.exec(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?)`,
		t.Hash, t.UserID, millisArg(t.CreatedAt), millisArg(t.ExpiresAt), t.Revoked)
	if err != nil {
		// The hash is a credential's digest: name the user, not the hash.
		return fmt.Errorf("store: put token of user %q: %w", t.UserID, err)
	}
	return nil
}

func (s queries) GetToken(ctx context.Context, hash string) (Token, error) {
	var t Token
	err := s.q.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE hash = ?`, hash).
		Scan(&t.Hash, &t.UserID, millisTime{&t.CreatedAt}, millisTime{&t.ExpiresAt}, &t.Revoked)
	if err != nil {
		return Token{}, fmt.Errorf("store: get token: %w", err)
	}
	return t, nil
}

func (s queries) RevokeToken(ctx context.Context, hash string) error {
	if err := affectedOne(s.q.exec(ctx, `UPDATE tokens SET revoked = ? WHERE hash = ?`, true, hash)); err != nil {
		return fmt.Errorf("store: revoke token: %w", err)
	}
	return nil
}
