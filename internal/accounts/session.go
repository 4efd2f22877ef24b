package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// Browser sessions (spec/client-api.md §3, "Sessions"). The cookie holds a
// random value of which the store keeps only the hash. The __Host- prefix
// makes browsers refuse the cookie unless it is Secure, for the whole origin
// and without a Domain, so no sibling host can set or read it.
const (
	SessionCookie = "__Host-entente_session"
	// CSRFHeader carries the session's CSRF token on every state-changing
	// request made with the session cookie.
	CSRFHeader = "X-CSRF-Token"
)

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b)
}

// StartSession stores a new session of user and returns its cookie value.
func StartSession(ctx context.Context, s store.Store, user, idToken string, now time.Time, ttl time.Duration) (string, store.Session, error) {
	value := randomString()
	ss := store.Session{
		Hash: hashToken(value), UserID: user, CSRF: randomString(), IDToken: idToken,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC(),
	}
	if err := s.PutSession(ctx, ss); err != nil {
		return "", store.Session{}, err
	}
	return value, ss, nil
}

// SetSessionCookie sends the session cookie. SameSite=Lax, not Strict: the
// browser arrives from the provider's redirect, a cross-site navigation on
// which a Strict cookie set a moment before would not be sent to "/".
func SetSessionCookie(w http.ResponseWriter, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: value, Path: "/", Expires: expires,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
}

// ClearSessionCookie tells the browser to forget the session cookie.
func ClearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
}

// session returns the live session of r's cookie.
func (a Authenticator) session(r *http.Request) (store.Session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return store.Session{}, httpapi.Unauthorized("sign in: no bearer token or session")
	}
	ss, err := a.Store.GetSession(r.Context(), hashToken(c.Value))
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, httpapi.Unauthorized("sign in: the session has ended")
	} else if err != nil {
		return store.Session{}, err
	}
	if !a.now().Before(ss.ExpiresAt) {
		return store.Session{}, httpapi.Unauthorized("sign in: the session has expired")
	}
	return ss, nil
}

// checkCSRF refuses a state-changing request that does not prove it comes
// from this node's own pages: the session's CSRF token in CSRFHeader (which
// another site cannot read nor set) and, when the browser sends one, this
// node's origin in Origin.
func (a Authenticator) checkCSRF(r *http.Request, ss store.Session) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if o := r.Header.Get("Origin"); o != "" && a.Origin != "" && o != a.Origin {
		return httpapi.Forbidden("cross-site request refused: origin %s", o)
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ss.CSRF)) != 1 {
		return httpapi.Forbidden("missing or wrong %s header", CSRFHeader)
	}
	return nil
}

func (a Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// OriginOf is the origin (scheme://host[:port]) of a public URL.
func OriginOf(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
