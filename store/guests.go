package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// guestLinksSchema holds the guest links of conferences hosted here
// (spec/client-api.md §7), the guests who came through them, and marks the
// participants who are such guests (spec/federation.md §6.1). A link keeps
// only the SHA-256 of its secret. Times are BIGINT milliseconds since the
// epoch.
const guestLinksSchema = `
CREATE TABLE guest_links (
	id          {{.Text}} PRIMARY KEY,
	conference  {{.Text}} NOT NULL,
	secret_hash TEXT NOT NULL,
	created_by  TEXT NOT NULL,
	created_at  BIGINT,
	expires_at  BIGINT NOT NULL,
	max_guests  INTEGER NOT NULL,
	revoked     BOOLEAN NOT NULL
);
CREATE INDEX guest_links_conference ON guest_links (conference);
CREATE TABLE guests (
	user_id    {{.Text}} PRIMARY KEY REFERENCES users (id),
	link_id    {{.Text}} NOT NULL REFERENCES guest_links (id),
	conference {{.Text}} NOT NULL,
	created_at BIGINT
);
CREATE INDEX guests_link ON guests (link_id);
ALTER TABLE participants ADD COLUMN guest BOOLEAN NOT NULL DEFAULT FALSE`

// GuestLink lets people outside any trusted institution into one conference
// hosted here, as guests, until it expires or is revoked.
type GuestLink struct {
	ID         string
	Conference string
	// SecretHash is the hex SHA-256 of the link's secret.
	SecretHash string
	// CreatedBy is the user reference of the moderator who made it.
	CreatedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	// MaxGuests bounds how many guests the link lets in; 0 is no bound.
	MaxGuests int
	Revoked   bool
	// Guests is how many guests came through the link (read only).
	Guests int
}

// Guest is the account of someone who came through a guest link: a local
// user who may see only Conference.
type Guest struct {
	UserID     string
	LinkID     string
	Conference string
	CreatedAt  time.Time
}

const guestLinkColumns = `id, conference, secret_hash, created_by, created_at, expires_at, max_guests, revoked,
	(SELECT COUNT(*) FROM guests WHERE guests.link_id = guest_links.id)`

func (s queries) PutGuestLink(ctx context.Context, l GuestLink) error {
	if l.ID == "" || l.Conference == "" || l.SecretHash == "" {
		return errors.New("store: put guest link: id, conference and secret hash are required")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO guest_links (id, conference, secret_hash, created_by, created_at, expires_at, max_guests, revoked)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		l.ID, l.Conference, l.SecretHash, l.CreatedBy, millisArg(l.CreatedAt), l.ExpiresAt.UnixMilli(), l.MaxGuests, l.Revoked)
	if err != nil {
		return fmt.Errorf("store: put guest link %q: %w", l.ID, err)
	}
	return nil
}

func scanGuestLink(r rowScanner) (GuestLink, error) {
	var l GuestLink
	err := r.Scan(&l.ID, &l.Conference, &l.SecretHash, &l.CreatedBy, millisTime{&l.CreatedAt},
		millisTime{&l.ExpiresAt}, &l.MaxGuests, &l.Revoked, &l.Guests)
	return l, err
}

func (s queries) GetGuestLink(ctx context.Context, id string) (GuestLink, error) {
	l, err := scanGuestLink(s.q.queryRow(ctx, `SELECT `+guestLinkColumns+` FROM guest_links WHERE id = ?`, id))
	if err != nil {
		return GuestLink{}, fmt.Errorf("store: get guest link %q: %w", id, err)
	}
	return l, nil
}

func (s queries) ListGuestLinks(ctx context.Context, conference string) ([]GuestLink, error) {
	rs, err := s.q.query(ctx, `SELECT `+guestLinkColumns+` FROM guest_links WHERE conference = ?
ORDER BY created_at, id`, conference)
	if err != nil {
		return nil, fmt.Errorf("store: list guest links of %q: %w", conference, err)
	}
	ls, err := scanAll(rs, scanGuestLink)
	if err != nil {
		return nil, fmt.Errorf("store: list guest links of %q: %w", conference, err)
	}
	return ls, nil
}

func (s queries) RevokeGuestLink(ctx context.Context, id string) error {
	if err := affectedOne(s.q.exec(ctx, `UPDATE guest_links SET revoked = ? WHERE id = ?`, true, id)); err != nil {
		return fmt.Errorf("store: revoke guest link %q: %w", id, err)
	}
	return nil
}

// LockGuestLink writes the link's row unchanged, which holds it (on
// PostgreSQL; SQLite's transaction holds the whole database) until the
// transaction ends.
func (s queries) LockGuestLink(ctx context.Context, id string) error {
	if err := affectedOne(s.q.exec(ctx, `UPDATE guest_links SET max_guests = max_guests WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("store: lock guest link %q: %w", id, err)
	}
	return nil
}

func (s queries) PutGuest(ctx context.Context, g Guest) error {
	if g.UserID == "" || g.LinkID == "" || g.Conference == "" {
		return errors.New("store: put guest: user, link and conference are required")
	}
	_, err := s.q.exec(ctx, `INSERT INTO guests (user_id, link_id, conference, created_at) VALUES (?, ?, ?, ?)`,
		g.UserID, g.LinkID, g.Conference, millisArg(g.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: put guest %q: %w", g.UserID, err)
	}
	return nil
}

func (s queries) GetGuest(ctx context.Context, userID string) (Guest, error) {
	var g Guest
	err := s.q.queryRow(ctx, `SELECT user_id, link_id, conference, created_at FROM guests WHERE user_id = ?`, userID).
		Scan(&g.UserID, &g.LinkID, &g.Conference, millisTime{&g.CreatedAt})
	if err != nil {
		return Guest{}, fmt.Errorf("store: get guest %q: %w", userID, err)
	}
	return g, nil
}
