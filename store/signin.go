package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// signInSchema holds what OpenID Connect sign-in keeps: the organisational
// unit of users and of participants (spec/federation.md §7.1), which
// provider account each user is, the browser sessions, and the sign-ins under
// way. Times are BIGINT milliseconds since the epoch.
const signInSchema = `
ALTER TABLE users ADD COLUMN unit TEXT NOT NULL DEFAULT '';
ALTER TABLE participants ADD COLUMN unit TEXT NOT NULL DEFAULT '';
CREATE TABLE user_identities (
	issuer     {{.Text}} NOT NULL,
	subject    {{.Text}} NOT NULL,
	user_id    {{.Text}} NOT NULL UNIQUE REFERENCES users (id),
	email      TEXT NOT NULL,
	updated_at BIGINT,
	PRIMARY KEY (issuer, subject)
);
CREATE TABLE sessions (
	hash       {{.Text}} PRIMARY KEY,
	user_id    {{.Text}} NOT NULL REFERENCES users (id),
	csrf       TEXT NOT NULL,
	id_token   TEXT NOT NULL,
	created_at BIGINT,
	expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE TABLE signin_flows (
	state      {{.Text}} PRIMARY KEY,
	nonce      TEXT NOT NULL,
	verifier   TEXT NOT NULL,
	created_at BIGINT,
	expires_at BIGINT NOT NULL
);
CREATE INDEX signin_flows_expires ON signin_flows (expires_at)`

// Identity links a local user to the account (issuer, subject) of an OpenID
// provider.
type Identity struct {
	Issuer    string
	Subject   string
	UserID    string
	Email     string
	UpdatedAt time.Time
}

// Session is a browser's signed-in session. Only the hash of its cookie
// value is kept, like a token's.
type Session struct {
	Hash   string
	UserID string
	// CSRF is the value the browser must send back in a header with every
	// state-changing request.
	CSRF string
	// IDToken is the provider's ID token, kept as the hint of RP-initiated
	// logout; empty for sessions made otherwise.
	IDToken   string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SignInFlow is an authorization request sent to the provider and not yet
// answered: its state, nonce and PKCE verifier.
type SignInFlow struct {
	State     string
	Nonce     string
	Verifier  string
	CreatedAt time.Time
	ExpiresAt time.Time
}

const (
	identityColumns = `issuer, subject, user_id, email, updated_at`
	sessionColumns  = `hash, user_id, csrf, id_token, created_at, expires_at`
	flowColumns     = `state, nonce, verifier, created_at, expires_at`
)

func (s queries) PutIdentity(ctx context.Context, id Identity) error {
	if id.Issuer == "" || id.Subject == "" || id.UserID == "" {
		return errors.New("store: put identity: issuer, subject and user are required")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO user_identities (`+identityColumns+`) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (issuer, subject) DO UPDATE SET user_id = excluded.user_id, email = excluded.email,
	updated_at = excluded.updated_at`,
		id.Issuer, id.Subject, id.UserID, id.Email, millisArg(id.UpdatedAt))
	if err != nil {
		return fmt.Errorf("store: put identity of user %q: %w", id.UserID, err)
	}
	return nil
}

func scanIdentity(r rowScanner) (Identity, error) {
	var id Identity
	err := r.Scan(&id.Issuer, &id.Subject, &id.UserID, &id.Email, millisTime{&id.UpdatedAt})
	return id, err
}

func (s queries) GetIdentity(ctx context.Context, issuer, subject string) (Identity, error) {
	id, err := scanIdentity(s.q.queryRow(ctx, `SELECT `+identityColumns+` FROM user_identities
WHERE issuer = ? AND subject = ?`, issuer, subject))
	if err != nil {
		return Identity{}, fmt.Errorf("store: get identity: %w", err)
	}
	return id, nil
}

func (s queries) GetIdentityOfUser(ctx context.Context, userID string) (Identity, error) {
	id, err := scanIdentity(s.q.queryRow(ctx, `SELECT `+identityColumns+` FROM user_identities
WHERE user_id = ?`, userID))
	if err != nil {
		return Identity{}, fmt.Errorf("store: get identity of user %q: %w", userID, err)
	}
	return id, nil
}

func (s queries) PutSession(ctx context.Context, ss Session) error {
	if ss.Hash == "" || ss.UserID == "" {
		return errors.New("store: put session: hash and user are required")
	}
	_, err := s.q.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		ss.Hash, ss.UserID, ss.CSRF, ss.IDToken, millisArg(ss.CreatedAt), ss.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put session of user %q: %w", ss.UserID, err)
	}
	return nil
}

func (s queries) GetSession(ctx context.Context, hash string) (Session, error) {
	var ss Session
	err := s.q.queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE hash = ?`, hash).
		Scan(&ss.Hash, &ss.UserID, &ss.CSRF, &ss.IDToken, millisTime{&ss.CreatedAt}, millisTime{&ss.ExpiresAt})
	if err != nil {
		return Session{}, fmt.Errorf("store: get session: %w", err)
	}
	return ss, nil
}

func (s queries) DeleteSession(ctx context.Context, hash string) error {
	if err := affectedOne(s.q.exec(ctx, `DELETE FROM sessions WHERE hash = ?`, hash)); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

func (s queries) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	n, err := s.q.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, fmt.Errorf("store: delete sessions of user %q: %w", userID, err)
	}
	return n, nil
}

func (s queries) PutSignInFlow(ctx context.Context, f SignInFlow) error {
	if f.State == "" {
		return errors.New("store: put sign-in flow: state is empty")
	}
	_, err := s.q.exec(ctx, `INSERT INTO signin_flows (`+flowColumns+`) VALUES (?, ?, ?, ?, ?)`,
		f.State, f.Nonce, f.Verifier, millisArg(f.CreatedAt), f.ExpiresAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put sign-in flow: %w", err)
	}
	return nil
}

func (s queries) TakeSignInFlow(ctx context.Context, state string) (SignInFlow, error) {
	var f SignInFlow
	// DELETE … RETURNING makes the flow single-use even when two callbacks
	// race: only one of them gets the row.
	err := s.q.queryRow(ctx, `DELETE FROM signin_flows WHERE state = ? RETURNING `+flowColumns, state).
		Scan(&f.State, &f.Nonce, &f.Verifier, millisTime{&f.CreatedAt}, millisTime{&f.ExpiresAt})
	if err != nil {
		return SignInFlow{}, fmt.Errorf("store: take sign-in flow: %w", err)
	}
	return f, nil
}

func (s queries) PruneSignIn(ctx context.Context, before time.Time) (int64, error) {
	a, err := s.q.exec(ctx, `DELETE FROM signin_flows WHERE expires_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune sign-in flows: %w", err)
	}
	b, err := s.q.exec(ctx, `DELETE FROM sessions WHERE expires_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune sessions: %w", err)
	}
	return a + b, nil
}
