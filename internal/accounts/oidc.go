package accounts

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/store"
)

// OpenID Connect sign-in (spec/client-api.md §3, "OpenID Connect"): the
// authorization code flow with PKCE (RFC 7636), state and nonce, ID token
// and userinfo both checked, and RP-initiated logout.
const (
	// CallbackPath is the redirect URI's path, to register at the provider.
	CallbackPath = "/auth/oidc/callback"
	// LoginPath starts a sign-in.
	LoginPath = "/auth/oidc/login"
	// stateCookie binds a sign-in to the browser that started it, so that
	// nobody can make a victim's browser finish a sign-in of theirs.
	stateCookie = "__Host-entente_oidc_state"
	// flowLifetime is how long a user may take at the provider.
	flowLifetime = 10 * time.Minute
	// maxIDTokenAge bounds how old an ID token may be when it arrives: it
	// is made by the code exchange a moment before.
	maxIDTokenAge = 5 * time.Minute
	// startLimit sign-ins may start from one address within flowLifetime:
	// each stores a flow, and nobody signs in that often, so a flood from
	// one address cannot fill the store.
	startLimit = 30
)

// OIDC signs users in through the configured OpenID provider.
type OIDC struct {
	cfg       config.OIDC
	ttl       time.Duration
	publicURL string
	store     store.Store
	now       func() time.Time
	log       *slog.Logger
	client    *http.Client
	secret    string

	starts *failureWindow // sign-ins started per address

	mu       sync.Mutex
	provider *oidc.Provider
	endSess  string // end_session_endpoint, empty when the provider has none
}

// NewOIDC prepares sign-in through cfg.OIDC. Discovery happens at the first
// sign-in and is retried until it succeeds, so that a provider down at start
// does not keep the node from serving everything else.
func NewOIDC(cfg config.Config, s store.Store, now func() time.Time, log *slog.Logger) (*OIDC, error) {
	secret, err := cfg.OIDC.Secret()
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if cfg.OIDC.CAFile != "" {
		pem, err := os.ReadFile(cfg.OIDC.CAFile)
		if err != nil {
			return nil, fmt.Errorf("oidc.ca_file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("oidc.ca_file: %s holds no PEM certificate", cfg.OIDC.CAFile)
		}
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OIDC{
		cfg: cfg.OIDC, ttl: cfg.Auth.SessionLifetime, publicURL: cfg.Node.PublicURL,
		store: s, now: now, log: log, secret: secret,
		starts: newFailureWindow(startLimit, flowLifetime, maxTrackedLogins, now),
		client: &http.Client{
			Timeout:   15 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		},
	}, nil
}

// ProviderName is the name on the sign-in button.
func (o *OIDC) ProviderName() string { return o.cfg.ProviderName }

func (o *OIDC) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.client)
}

// discover returns the provider, fetching its discovery document once.
// go-oidc refuses a document whose issuer is not exactly oidc.issuer
// (OpenID Connect Discovery 1.0 §4.3).
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc.issuer %s: discovery: %w", o.cfg.Issuer, err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&extra); err != nil {
		return nil, fmt.Errorf("oidc.issuer %s: discovery document: %w", o.cfg.Issuer, err)
	}
	o.provider, o.endSess = p, extra.EndSession
	return p, nil
}

func (o *OIDC) oauth2Config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: o.cfg.ClientID, ClientSecret: o.secret, Endpoint: p.Endpoint(),
		RedirectURL: o.publicURL + CallbackPath, Scopes: o.cfg.ScopeList(),
	}
}

// verifier checks an ID token's signature, issuer and audience, and its
// expiry with clock_skew of tolerance (OpenID Connect Core 1.0 §3.1.3.7).
func (o *OIDC) verifier(p *oidc.Provider) *oidc.IDTokenVerifier {
	return p.Verifier(&oidc.Config{
		ClientID: o.cfg.ClientID,
		// The token is taken as unexpired until exp + clock_skew.
		Now: func() time.Time { return o.now().Add(-o.cfg.ClockSkew) },
	})
}

// Login serves GET /auth/oidc/login: it stores a new flow and sends the
// browser to the provider.
func (o *OIDC) Login(w http.ResponseWriter, r *http.Request) {
	ip := clientIP(r)
	if o.starts.allow(ip) != allowed {
		o.log.Warn("OpenID sign-in refused: too many started from one address")
		o.failed(w, r, "limited")
		return
	}
	o.starts.add(ip)
	p, err := o.discover(r.Context())
	if err != nil {
		o.log.Error("OpenID provider unreachable", "err", err)
		o.failed(w, r, "provider")
		return
	}
	now := o.now()
	if _, err := o.store.PruneSignIn(r.Context(), now); err != nil {
		o.log.Warn("pruning expired sign-ins", "err", err)
	}
	f := store.SignInFlow{
		State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		CreatedAt: now.UTC(), ExpiresAt: now.Add(flowLifetime).UTC(),
	}
	if err := o.store.PutSignInFlow(r.Context(), f); err != nil {
		o.log.Error("sign-in flow not stored", "err", err)
		o.failed(w, r, "error")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: stateCookie, Value: f.State, Path: "/", MaxAge: int(flowLifetime / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	to := o.oauth2Config(p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusFound)
}

// SignInError is why a callback was refused; Reason is the code the browser
// is sent back with (spec/client-api.md §3).
type SignInError struct {
	Reason string
	Err    error
}

func (e *SignInError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *SignInError) Unwrap() error { return e.Err }

func refuse(reason, format string, args ...any) error {
	return &SignInError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// Callback serves GET /auth/oidc/callback: the provider's answer.
func (o *OIDC) Callback(w http.ResponseWriter, r *http.Request) {
	// The state cookie has done its work whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: stateCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	user, ss, cookie, err := o.finish(r)
	if err != nil {
		reason := "error"
		if se, ok := errors.AsType[*SignInError](err); ok {
			reason = se.Reason
			o.log.Warn("OpenID sign-in refused", "reason", reason, "err", se.Err)
		} else {
			o.log.Error("OpenID sign-in failed", "err", err)
		}
		o.failed(w, r, reason)
		return
	}
	o.log.Info("signed in through OpenID Connect", "user", user)
	SetSessionCookie(w, cookie, ss.ExpiresAt)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// failed sends the browser back to the client with the reason.
func (o *OIDC) failed(w http.ResponseWriter, r *http.Request, reason string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/?signin_error="+url.QueryEscape(reason), http.StatusSeeOther)
}

func (o *OIDC) finish(r *http.Request) (user string, ss store.Session, cookie string, err error) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	c, cerr := r.Cookie(stateCookie)
	if state == "" || cerr != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		return "", ss, "", refuse("state", "the state does not match this browser's sign-in")
	}
	// Taking the flow makes the callback single-use: a replayed answer
	// finds nothing.
	f, err := o.store.TakeSignInFlow(ctx, state)
	if errors.Is(err, store.ErrNotFound) {
		return "", ss, "", refuse("state", "no sign-in under way with this state (used already, or never started)")
	} else if err != nil {
		return "", ss, "", err
	}
	if !o.now().Before(f.ExpiresAt) {
		return "", ss, "", refuse("state", "the sign-in took longer than %s", flowLifetime)
	}
	if e := q.Get("error"); e != "" {
		// RFC 6749 §4.1.2.1: the provider refused, e.g. a user it no
		// longer knows or has disabled.
		return "", ss, "", refuse("denied", "the provider answered %s: %s", e, q.Get("error_description"))
	}
	code := q.Get("code")
	if code == "" {
		return "", ss, "", refuse("denied", "the provider's answer has no code")
	}
	p, err := o.discover(ctx)
	if err != nil {
		return "", ss, "", refuse("provider", "%v", err)
	}
	tok, err := o.oauth2Config(p).Exchange(o.ctx(ctx), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return "", ss, "", refuse("token", "code exchange: %v", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return "", ss, "", refuse("token", "the token response has no id_token")
	}
	claims, err := o.verify(ctx, p, o.verifier(p), rawID, f.Nonce)
	if err != nil {
		return "", ss, "", err
	}
	// OpenID Connect Core 1.0 §5.3.2: userinfo is the user's only if its
	// sub is the ID token's.
	info, err := p.UserInfo(o.ctx(ctx), oauth2.StaticTokenSource(tok))
	if err != nil {
		return "", ss, "", refuse("token", "userinfo: %v", err)
	}
	if info.Subject != claims.Subject {
		return "", ss, "", refuse("token", "userinfo is about %q, the ID token about %q", info.Subject, claims.Subject)
	}
	var more map[string]any
	if err := info.Claims(&more); err != nil {
		return "", ss, "", refuse("token", "userinfo claims: %v", err)
	}
	for k, v := range more {
		claims.Values[k] = v
	}
	u, err := o.account(ctx, claims)
	if err != nil {
		return "", ss, "", err
	}
	cookie, ss, err = StartSession(ctx, o.store, u.ID, rawID, o.now(), o.ttl)
	if err != nil {
		return "", ss, "", err
	}
	if err := o.keepCheck(ctx, ss, claims.Subject, tok); err != nil {
		return "", ss, "", err
	}
	return u.ID, ss, cookie, nil
}

// Claims are a verified ID token's subject and claims.
type Claims struct {
	Issuer  string
	Subject string
	Values  map[string]any
}

// verify checks rawID with v and the flow's nonce, and that it was not
// issued in the future nor too long ago.
func (o *OIDC) verify(ctx context.Context, p *oidc.Provider, v *oidc.IDTokenVerifier, rawID, nonce string) (Claims, error) {
	idt, err := v.Verify(o.ctx(ctx), rawID)
	if err != nil {
		if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
			return Claims{}, refuse("expired", "%v", err)
		}
		return Claims{}, refuse("token", "ID token: %v", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Claims{}, refuse("nonce", "the ID token's nonce is not this sign-in's")
	}
	now := o.now()
	if idt.IssuedAt.After(now.Add(o.cfg.ClockSkew)) {
		return Claims{}, refuse("token", "the ID token was issued in the future (%s)", idt.IssuedAt.UTC().Format(time.RFC3339))
	}
	if idt.IssuedAt.Before(now.Add(-maxIDTokenAge - o.cfg.ClockSkew)) {
		return Claims{}, refuse("expired", "the ID token was issued at %s, too long ago", idt.IssuedAt.UTC().Format(time.RFC3339))
	}
	values := map[string]any{}
	if err := idt.Claims(&values); err != nil {
		return Claims{}, refuse("token", "ID token claims: %v", err)
	}
	return Claims{Issuer: idt.Issuer, Subject: idt.Subject, Values: values}, nil
}

// LogoutURL is where a browser goes to end its session at the provider
// (OpenID Connect RP-Initiated Logout 1.0 §2), or "" when the provider
// offers no end_session_endpoint.
func (o *OIDC) LogoutURL(ctx context.Context, idToken string) string {
	if _, err := o.discover(ctx); err != nil || o.endSess == "" || idToken == "" {
		return ""
	}
	u, err := url.Parse(o.endSess)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("id_token_hint", idToken)
	q.Set("client_id", o.cfg.ClientID)
	q.Set("post_logout_redirect_uri", o.publicURL+"/")
	q.Set("state", randomString())
	u.RawQuery = q.Encode()
	return u.String()
}
