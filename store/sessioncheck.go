package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// sessionChecksSchema keeps, for each browser session made through OpenID
// Connect, the provider's tokens, with which the node asks the provider
// again, at a bounded interval, whether the account is still accepted. A
// row goes with its session.
const sessionChecksSchema = `
CREATE TABLE session_checks (
	hash          {{.Text}} PRIMARY KEY REFERENCES sessions (hash) ON DELETE CASCADE,
	subject       TEXT NOT NULL,
	access_token  TEXT NOT NULL,
	refresh_token TEXT NOT NULL,
	token_expires BIGINT,
	checked_at    BIGINT NOT NULL
)`

// SessionCheck is what re-checking a session at the provider needs.
type SessionCheck struct {
	// Hash is the session's.
	Hash         string
	Subject      string
	AccessToken  string
	RefreshToken string
	// TokenExpires is when AccessToken expires; zero when unknown.
	TokenExpires time.Time
	CheckedAt    time.Time
}

func (s queries) PutSessionCheck(ctx context.Context, c SessionCheck) error {
	if c.Hash == "" || c.Subject == "" {
		return errors.New("store: put session check: hash and subject are required")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO session_checks (hash, subject, access_token, refresh_token, token_expires, checked_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (hash) DO UPDATE SET subject = excluded.subject, access_token = excluded.access_token,
	refresh_token = excluded.refresh_token, token_expires = excluded.token_expires, checked_at = excluded.checked_at`,
		c.Hash, c.Subject, c.AccessToken, c.RefreshToken, millisArg(c.TokenExpires), c.CheckedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put session check: %w", err)
	}
	return nil
}

func (s queries) GetSessionCheck(ctx context.Context, hash string) (SessionCheck, error) {
	var c SessionCheck
	err := s.q.queryRow(ctx, `SELECT hash, subject, access_token, refresh_token, token_expires, checked_at
FROM session_checks WHERE hash = ?`, hash).
		Scan(&c.Hash, &c.Subject, &c.AccessToken, &c.RefreshToken, millisTime{&c.TokenExpires}, millisTime{&c.CheckedAt})
	if err != nil {
		return SessionCheck{}, fmt.Errorf("store: get session check: %w", err)
	}
	return c, nil
}
