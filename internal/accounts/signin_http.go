package accounts

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// SignInHandlers serve the sign-in endpoints that do not depend on the way
// of signing in (spec/client-api.md §3).
type SignInHandlers struct {
	Auth      Authenticator
	Passwords bool
	OIDC      *OIDC // nil when OpenID Connect is off
	Log       *slog.Logger
}

// Options serves GET /api/v1/signin: which ways of signing in the client
// offers. It needs no authentication.
func (h SignInHandlers) Options(w http.ResponseWriter, r *http.Request) {
	type provider struct {
		Name     string `json:"name"`
		LoginURL string `json:"login_url"`
	}
	out := struct {
		Passwords bool      `json:"passwords"`
		OIDC      *provider `json:"oidc"`
	}{Passwords: h.Passwords}
	if h.OIDC != nil {
		out.OIDC = &provider{Name: h.OIDC.ProviderName(), LoginURL: LoginPath}
	}
	writeJSON(w, http.StatusOK, out)
}

// Session serves GET /api/v1/session: the signed-in browser's user and the
// CSRF token its state-changing requests must carry.
func (h SignInHandlers) Session(w http.ResponseWriter, r *http.Request) {
	ss, err := h.Auth.session(r)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	u, err := h.Auth.localUser(r.Context(), ss.UserID, "the session's user no longer exists")
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"user": u.ID, "display_name": u.DisplayName, "unit": u.Unit,
		"csrf_token": ss.CSRF, "expires_at": ss.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"),
	})
}

// Logout serves POST /api/v1/logout. With a session cookie it ends the
// session (CSRF-checked like every state-changing request) and answers where
// the browser goes next: the provider's end_session_endpoint when it offers
// one, so that the sign-in ends there too, else "/". With a bearer token it
// revokes that token.
func (h SignInHandlers) Logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && token != "" {
		if _, err := h.Auth.User(ctx, token); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		if err := h.Auth.Store.RevokeToken(ctx, hashToken(token)); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"redirect": "/"})
		return
	}
	ss, err := h.Auth.session(r)
	if err != nil {
		ClearSessionCookie(w)
		httpapi.WriteError(w, err)
		return
	}
	if err := h.Auth.checkCSRF(r, ss); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if err := h.Auth.Store.DeleteSession(ctx, ss.Hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		httpapi.WriteError(w, err)
		return
	}
	ClearSessionCookie(w)
	redirect := "/"
	if h.OIDC != nil {
		if u := h.OIDC.LogoutURL(ctx, ss.IDToken); u != "" {
			redirect = u
		}
	}
	if h.Log != nil {
		h.Log.Info("signed out", "user", ss.UserID, "at_provider", redirect != "/")
	}
	writeJSON(w, http.StatusOK, map[string]string{"redirect": redirect})
}

// PasswordsOff answers POST /api/v1/login where auth.passwords is off.
func PasswordsOff(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteError(w, httpapi.Forbidden("password sign-in is turned off on this node: sign in through the OpenID provider"))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
