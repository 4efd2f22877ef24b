package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

const (
	// MinPasswordLength is counted in characters, not bytes, so that accented
	// passwords are not held to a stricter rule than ASCII ones.
	MinPasswordLength = 10
	// maxPasswordBytes is bcrypt's own limit: longer inputs are refused rather
	// than silently truncated.
	maxPasswordBytes = 72
	// LoginTokenTTL is how long a password sign-in lasts: one working day.
	LoginTokenTTL = 12 * time.Hour
	passwordCost  = bcrypt.DefaultCost
	// unknownUserHash is a bcrypt hash at passwordCost of a password no one
	// has, compared against when the user does not exist so that an unknown
	// user takes as long to refuse as a wrong password.
	unknownUserHash = "$2a$10$1qZCYwhATxaNVHafVpn9COE8L22Q4qtucOyhEyzZcNwYw3DFcVqLa"
)

// ErrSignIn is the one answer to a failed sign-in, whatever went wrong, so
// that it does not tell which user names exist.
var ErrSignIn = errors.New("the user name or password is incorrect")

func passwordSecret(user string) string { return "password:" + user }

// SetPassword stores a bcrypt hash of a local user's password.
func SetPassword(ctx context.Context, s store.Store, user, password string) error {
	if _, err := s.GetUser(ctx, user); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user %q (add it with \"entente users add\")", user)
	} else if err != nil {
		return err
	}
	if err := CheckPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	return s.PutSecret(ctx, passwordSecret(user), hash)
}

// CheckPassword tells whether SetPassword would accept a password, so that a
// caller can refuse it before changing anything else.
func CheckPassword(password string) error {
	if n := utf8.RuneCountInString(password); n < MinPasswordLength {
		return fmt.Errorf("password of %d characters: use at least %d", n, MinPasswordLength)
	}
	if len(password) > maxPasswordBytes {
		return fmt.Errorf("password of %d bytes: use at most %d", len(password), maxPasswordBytes)
	}
	return nil
}

// Login checks a user's password and issues a token valid for LoginTokenTTL.
// Every refusal is ErrSignIn; other errors are the store's.
func Login(ctx context.Context, s store.Store, user, password string, now time.Time) (string, error) {
	hash := []byte(unknownUserHash)
	known := false
	if federation.ValidLocalpart(user) {
		stored, err := s.GetSecret(ctx, passwordSecret(user))
		switch {
		case err == nil:
			hash, known = stored, true
		case !errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("read password of %q: %w", user, err)
		}
	}
	// The comparison runs even for unknown users: its cost is the same.
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if !known || !match || len(password) > maxPasswordBytes {
		return "", ErrSignIn
	}
	if _, err := s.GetUser(ctx, user); errors.Is(err, store.ErrNotFound) {
		// A password left behind by a removed user opens nothing.
		return "", ErrSignIn
	} else if err != nil {
		return "", err
	}
	return IssueToken(ctx, s, user, LoginTokenTTL, now)
}

const (
	// loginFailureLimit failures per user and address within loginWindow
	// are allowed; the next attempts are refused until the oldest expires.
	loginFailureLimit = 10
	loginWindow       = 10 * time.Minute
	// maxTrackedLogins bounds the failure table against floods of made-up
	// user names: when it is full, a name and address with no failures
	// counted is refused (429) until an entry expires (failureWindow).
	maxTrackedLogins = 10000
	maxLoginBody     = 4 << 10
)

// LoginHandler serves POST /api/v1/login (spec/client-api.md §3): a user
// name and password in, a token out.
type LoginHandler struct {
	store store.Store
	now   func() time.Time
	log   *slog.Logger

	failures *failureWindow // user + " " + client IP
}

// NewLoginHandler makes a login handler over the node's store. now may be
// nil for time.Now, log nil for no logs.
func NewLoginHandler(s store.Store, now func() time.Time, log *slog.Logger) *LoginHandler {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LoginHandler{store: s, now: now, log: log, failures: newFailureWindow(loginFailureLimit, loginWindow, maxTrackedLogins, now)}
}

func (h *LoginHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}
	if err := httpapi.DecodeJSON(r.Body, maxLoginBody, &req); err != nil {
		httpapi.WriteError(w, httpapi.BadRequest("request body: want {\"user\", \"password\"}"))
		return
	}
	key := req.User + " " + clientIP(r)
	switch h.failures.allow(key) {
	case limited:
		h.log.Warn("sign-in refused: too many failures", "user", req.User)
		httpapi.WriteError(w, &httpapi.Error{
			Status: http.StatusTooManyRequests, Code: "too_many_requests",
			Message: "too many failed sign-ins: try again in a few minutes",
		})
		return
	case saturated:
		h.log.Warn("sign-in refused: the table of failed sign-ins is full", "user", req.User)
		httpapi.WriteError(w, &httpapi.Error{
			Status: http.StatusTooManyRequests, Code: "too_many_requests",
			Message: "too many failed sign-ins on this node: try again in a few minutes",
		})
		return
	}
	token, err := Login(r.Context(), h.store, req.User, req.Password, h.now())
	if errors.Is(err, ErrSignIn) {
		h.failures.add(key)
		h.log.Info("sign-in failed", "user", req.User)
		httpapi.WriteError(w, httpapi.Unauthorized("%v", ErrSignIn))
		return
	} else if err != nil {
		// WriteError hands the cause to the node's request log.
		httpapi.WriteError(w, fmt.Errorf("sign-in of %s: %w", req.User, err))
		return
	}
	h.log.Info("signed in", "user", req.User)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"token": token})
}

// clientIP is the connection's address: a forwarding header could be forged
// to escape the limit.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
