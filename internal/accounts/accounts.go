// Package accounts holds the node's local users and their API tokens: the
// simple sign-in mechanism that the client and admin APIs accept today.
//
// Federation sees only a localuser.User, never a token, so an OpenID
// Connect login can replace this package without touching federation.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// tokenPrefix marks Entente tokens, so that secret scanners can find leaked ones.
const tokenPrefix = "ent_"

// AddUser creates or updates a local user.
func AddUser(ctx context.Context, s store.Store, id, displayName string, admin bool, now time.Time) (store.User, error) {
	if !federation.ValidLocalpart(id) {
		return store.User{}, fmt.Errorf("user name %q: use 1 to 64 of a-z, 0-9, '.', '_' and '-'", id)
	}
	if why := reservedName(id); why != "" {
		return store.User{}, fmt.Errorf("user name %q: %s", id, why)
	}
	displayName = strings.TrimSpace(displayName)
	if displayName == "" {
		displayName = id
	}
	if len(displayName) > 100 {
		return store.User{}, errors.New("display name longer than 100 bytes")
	}
	u := store.User{ID: id, DisplayName: displayName, Admin: admin, CreatedAt: now.UTC()}
	if old, err := s.GetUser(ctx, id); err == nil {
		u.CreatedAt = old.CreatedAt
	}
	return u, s.PutUser(ctx, u)
}

// IssueToken makes a new bearer token for a user, valid for ttl. Only its
// hash is stored: the token is shown once.
func IssueToken(ctx context.Context, s store.Store, userID string, ttl time.Duration, now time.Time) (string, error) {
	if _, err := s.GetUser(ctx, userID); errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("no user %q (add it with \"entente users add\")", userID)
	} else if err != nil {
		return "", err
	}
	if ttl <= 0 {
		return "", errors.New("token lifetime must be positive")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	err := s.PutToken(ctx, store.Token{Hash: hashToken(token), UserID: userID, CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()})
	return token, err
}

func hashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Authenticator checks bearer tokens and browser sessions against the store.
type Authenticator struct {
	Store store.Store
	Now   func() time.Time
	// Origin is this node's origin (https://host:port), which a browser's
	// state-changing requests must come from.
	Origin string
	// Recheck, when set, asks the provider again about a session made by
	// an OpenID Connect sign-in (OIDC.Recheck).
	Recheck func(ctx context.Context, ss store.Session) error
}

// Authenticate returns the user of a request's bearer token (Authorization
// header, or the access_token query parameter that browsers' WebSockets need)
// or else of its session cookie, whose state-changing requests must also pass
// the CSRF check.
func (a Authenticator) Authenticate(r *http.Request) (localuser.User, error) {
	if done, ok := r.Context().Value(authenticatedKey{}).(authenticated); ok {
		return done.user, done.err
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		token = r.URL.Query().Get("access_token")
	}
	if token != "" {
		return a.User(r.Context(), token)
	}
	ss, err := a.session(r)
	if err != nil {
		return localuser.User{}, err
	}
	if err := a.checkCSRF(r, ss); err != nil {
		return localuser.User{}, err
	}
	if a.Recheck != nil {
		if err := a.Recheck(r.Context(), ss); err != nil {
			return localuser.User{}, err
		}
	}
	return a.localUser(r.Context(), ss.UserID, "the session's user no longer exists")
}

type authenticatedKey struct{}

type authenticated struct {
	user localuser.User
	err  error
}

// Once authenticates r and returns it carrying the outcome, which later
// Authenticate calls on it return without asking again: a session is then
// checked (and re-checked at the provider) once per request.
func (a Authenticator) Once(r *http.Request) (*http.Request, localuser.User, error) {
	u, err := a.Authenticate(r)
	return r.WithContext(context.WithValue(r.Context(), authenticatedKey{}, authenticated{u, err})), u, err
}

// User returns the user a token belongs to.
func (a Authenticator) User(ctx context.Context, token string) (localuser.User, error) {
	if !strings.HasPrefix(token, tokenPrefix) {
		return localuser.User{}, httpapi.Unauthorized("sign in: not an Entente token")
	}
	t, err := a.Store.GetToken(ctx, hashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return localuser.User{}, httpapi.Unauthorized("sign in: unknown token")
	} else if err != nil {
		return localuser.User{}, err
	}
	if t.Revoked || !a.now().Before(t.ExpiresAt) {
		return localuser.User{}, httpapi.Unauthorized("sign in: token revoked or expired")
	}
	return a.localUser(ctx, t.UserID, "the token's user no longer exists")
}

func (a Authenticator) localUser(ctx context.Context, id, gone string) (localuser.User, error) {
	u, err := a.Store.GetUser(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return localuser.User{}, httpapi.Unauthorized("sign in: %s", gone)
	} else if err != nil {
		return localuser.User{}, err
	}
	// A guest is never an administrator, whatever the store says
	// (spec/client-api.md §6, §7); a guest of a link sees one conference.
	lu := localuser.User{ID: u.ID, DisplayName: u.DisplayName, Admin: u.Admin, MatrixGuest: IsMatrixGuest(u.ID), Unit: u.Unit}
	if IsLinkGuest(u.ID) {
		g, err := a.Store.GetGuest(ctx, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			return localuser.User{}, httpapi.Unauthorized("sign in: %s", gone)
		} else if err != nil {
			return localuser.User{}, err
		}
		lu.GuestOf, lu.Unit = g.Conference, ""
	}
	lu.Admin = lu.Admin && !lu.IsGuest()
	return lu, nil
}
