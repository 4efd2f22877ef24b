package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// Guest links (spec/client-api.md §7) let people outside any trusted
// institution into one conference hosted here. A link is "<id>.<secret>";
// the node keeps only the SHA-256 of the secret, so its database never
// holds a usable link.
const (
	// GuestLinkMinTTL and GuestLinkMaxTTL bound a link's lifetime.
	GuestLinkMinTTL = time.Minute
	GuestLinkMaxTTL = 30 * 24 * time.Hour
	// GuestTokenTTL is how long a guest's sign-in lasts.
	GuestTokenTTL = 12 * time.Hour
	// MaxGuestsPerLink bounds max_guests.
	MaxGuestsPerLink = 1000
)

// IsLinkGuest reports whether a local user name is a guest's who came
// through a guest link. The prefix is reserved: AddUser and OpenID sign-in
// refuse it.
func IsLinkGuest(id string) bool { return federation.IsLinkGuest(id) }

// reservedName says why a local user name may not be given to an account,
// or "" when it may.
func reservedName(id string) string {
	switch {
	case IsMatrixGuest(id):
		return "names starting with \"" + MatrixGuestPrefix + "\" are kept for Matrix guests"
	case IsLinkGuest(id):
		return "names starting with \"" + federation.GuestPrefix + "\" are kept for guests of guest links"
	}
	return ""
}

// NewGuestLink makes a link to conference for moderator (a user reference),
// valid for ttl and for at most maxGuests guests (0: no bound), stores it
// and returns it with the link text, shown only this once.
func NewGuestLink(ctx context.Context, s store.Tx, conference, moderator string, ttl time.Duration, maxGuests int, now time.Time) (store.GuestLink, string, error) {
	if ttl < GuestLinkMinTTL || ttl > GuestLinkMaxTTL {
		return store.GuestLink{}, "", httpapi.BadRequest("expires_in must be %d to %d seconds", int(GuestLinkMinTTL/time.Second), int(GuestLinkMaxTTL/time.Second))
	}
	if maxGuests < 0 || maxGuests > MaxGuestsPerLink {
		return store.GuestLink{}, "", httpapi.BadRequest("max_guests must be 0 (no bound) to %d", MaxGuestsPerLink)
	}
	id, secret := "gl-"+randomHex(8), randomBase64(32)
	l := store.GuestLink{ID: id, Conference: conference, SecretHash: hashToken(secret), CreatedBy: moderator,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC(), MaxGuests: maxGuests}
	if err := s.PutGuestLink(ctx, l); err != nil {
		return store.GuestLink{}, "", err
	}
	return l, id + "." + secret, nil
}

// linkError is a refusal of a guest link, its code naming the reason.
func linkError(status int, code, format string, args ...any) error {
	e := httpapi.BadRequest(format, args...)
	e.Status, e.Code = status, code
	return e
}

// OpenGuestLink checks a link's text against the store: it must be known,
// its secret right, not revoked, not expired and not full.
func OpenGuestLink(ctx context.Context, s store.Tx, link string, now time.Time) (store.GuestLink, error) {
	id, secret, ok := strings.Cut(strings.TrimSpace(link), ".")
	if !ok || !strings.HasPrefix(id, "gl-") || len(id) > 64 || secret == "" || len(secret) > 128 {
		return store.GuestLink{}, linkError(http.StatusBadRequest, "bad_request", "link must be the \"<id>.<secret>\" of a guest link")
	}
	l, err := s.GetGuestLink(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.GuestLink{}, linkError(http.StatusForbidden, "link_invalid", "this guest link is not valid")
	} else if err != nil {
		return store.GuestLink{}, err
	}
	if subtle.ConstantTimeCompare([]byte(hashToken(secret)), []byte(l.SecretHash)) != 1 {
		return store.GuestLink{}, linkError(http.StatusForbidden, "link_invalid", "this guest link is not valid")
	}
	switch {
	case l.Revoked:
		return l, linkError(http.StatusGone, "link_revoked", "this guest link was revoked by a moderator")
	case !now.Before(l.ExpiresAt):
		return l, linkError(http.StatusGone, "link_expired", "this guest link expired at %s", l.ExpiresAt.UTC().Format(time.RFC3339))
	case l.MaxGuests > 0 && l.Guests >= l.MaxGuests:
		return l, linkError(http.StatusForbidden, "link_full", "this guest link has already let in the %d guests it allows", l.MaxGuests)
	}
	return l, nil
}

// RedeemGuestLink makes the account of a guest named name who came through
// link, and issues it a token: the guest may then see and join only the
// link's conference.
func RedeemGuestLink(ctx context.Context, s store.Store, link, name string, now time.Time) (store.Guest, string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 100-len(federation.GuestLabel) || strings.ContainsAny(name, "\r\n\t") {
		return store.Guest{}, "", httpapi.BadRequest("display_name must be 1 to %d bytes on one line", 100-len(federation.GuestLabel))
	}
	var g store.Guest
	var token string
	err := s.InTx(ctx, func(tx store.Tx) error {
		// The link's row is locked first, so that two guests redeeming it
		// at once are counted one after the other against max_guests.
		if id, _, ok := strings.Cut(strings.TrimSpace(link), "."); ok {
			if err := tx.LockGuestLink(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		l, err := OpenGuestLink(ctx, tx, link, now)
		if err != nil {
			return err
		}
		if conf, err := tx.GetConference(ctx, l.Conference); err != nil {
			return err
		} else if conf.Ended {
			return httpapi.Gone("conference %s has ended", l.Conference)
		}
		g = store.Guest{UserID: federation.GuestPrefix + randomHex(8), LinkID: l.ID, Conference: l.Conference, CreatedAt: now.UTC()}
		if err := tx.PutUser(ctx, store.User{ID: g.UserID, DisplayName: name, CreatedAt: now.UTC()}); err != nil {
			return err
		}
		if err := tx.PutGuest(ctx, g); err != nil {
			return err
		}
		token = tokenPrefix + randomBase64(32)
		return tx.PutToken(ctx, store.Token{Hash: hashToken(token), UserID: g.UserID, CreatedAt: now.UTC(), ExpiresAt: now.Add(GuestTokenTTL).UTC()})
	})
	return g, token, err
}

// GuestLimiter bounds the guest links one address may try: at most 30
// within 10 minutes, since each redemption may make an account.
type GuestLimiter struct{ tries *failureWindow }

// NewGuestLimiter makes a limiter on the clock now (time.Now when nil).
func NewGuestLimiter(now func() time.Time) *GuestLimiter {
	if now == nil {
		now = time.Now
	}
	return &GuestLimiter{tries: newFailureWindow(startLimit, flowLifetime, maxTrackedLogins, now)}
}

// Allow counts a try from r's address and reports whether it is within
// the bound.
func (g *GuestLimiter) Allow(r *http.Request) bool {
	ip := clientIP(r)
	if g.tries.allow(ip) != allowed {
		return false
	}
	g.tries.add(ip)
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
