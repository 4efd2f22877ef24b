// Package hydratest runs a real OpenID provider, Ory Hydra, on loopback for
// tests, with the login, consent and logout app Hydra delegates to. Hydra is
// built by scripts/install-hydra from its own tools module; without it a
// test is skipped, or fails when CI=true.
package hydratest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/devcert"
)

// BinEnv names the directory holding the hydra binary, as
// scripts/install-hydra builds it.
const BinEnv = "ENTENTE_HYDRA_BIN"

// Provider is a running Hydra and its login-and-consent app.
type Provider struct {
	t testing.TB
	// Issuer is the issuer exactly as Hydra's discovery document states it.
	Issuer   string
	AdminURL string
	// CAFile holds the PEM CA that signed Hydra's and the app's
	// certificates.
	CAFile string
	// CertFile is the PEM certificate both Hydra and the app serve, for
	// browsers that trust exactly the test's certificates.
	CertFile string
	client   *http.Client

	mu      sync.Mutex
	users   map[string]User
	loginAs string
	logouts []string // subjects whose provider session was ended
	logins  []Login
}

// User is an account at the provider: its ID token claims, and whether the
// provider still lets it sign in.
type User struct {
	Claims   map[string]any
	Disabled bool
}

// Login is one login request the app answered.
type Login struct {
	Subject string
	// Skip is true when Hydra already had a session for the browser and
	// did not ask for credentials.
	Skip     bool
	Rejected bool
}

// Start runs Hydra with an in-memory database on loopback, serving TLS with
// a certificate from ca, and the app it delegates login, consent and logout
// to. Both stop when the test ends.
func Start(t testing.TB, ca *devcert.CA, opts ...Option) *Provider {
	t.Helper()
	bin := hydraBin(t)
	dir := t.TempDir()
	certPEM, keyPEM, err := ca.Issue([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := devcert.WriteFiles(filepath.Join(dir, "tls"), certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Provider{
		t: t, CAFile: caFile, CertFile: certFile, users: map[string]User{},
		client: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
	}
	app := p.startApp(certPEM, keyPEM)
	public, admin := freeAddr(t), freeAddr(t)
	p.AdminURL = "https://" + admin
	settings := map[string]string{"id_token": "1h"}
	for _, o := range opts {
		o(settings)
	}
	conf := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %s}
  admin: {host: 127.0.0.1, port: %s}
  tls:
    enabled: true
    cert: {path: %q}
    key: {path: %q}
  cookies: {same_site_mode: Lax}
urls:
  self: {issuer: "https://%s/"}
  login: "%s/login"
  consent: "%s/consent"
  logout: "%s/logout"
secrets:
  system: ["entente-test-system-secret-0123456789"]
ttl:
  id_token: %s
oidc:
  subject_identifiers: {supported_types: [public]}
log: {level: warn}
sqa: {opt_out: true}
`, port(public), port(admin), certFile, keyFile, public, app, app, app, settings["id_token"])
	confFile := filepath.Join(dir, "hydra.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "hydra.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "hydra"), "serve", "all", "--config", confFile, "--sqa-opt-out")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DSN=memory")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hydra: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logFile.Name()); err == nil {
				if len(out) > 4096 {
					out = out[len(out)-4096:]
				}
				t.Logf("hydra output (last 4 KiB):\n%s", out)
			}
		}
	})
	// Wait for the discovery document, which also gives the exact issuer.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-exited:
			out, _ := os.ReadFile(logFile.Name())
			t.Fatalf("hydra exited while starting:\n%s", out)
		default:
		}
		var disc struct {
			Issuer string `json:"issuer"`
		}
		err := p.getJSON("https://"+public+"/.well-known/openid-configuration", &disc)
		if err == nil && disc.Issuer != "" {
			p.Issuer = disc.Issuer
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hydra did not answer on %s within 90s: %v", public, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Hydra makes the key set of its access tokens at the first token, an
	// RSA key that takes half a minute on a busy machine; an ES256 one made
	// now takes no time.
	if err := p.call(http.MethodPost, p.AdminURL+"/admin/keys/hydra.jwt.access-token", map[string]string{"alg": "ES256", "use": "sig", "kid": "entente-test"}, nil); err != nil {
		t.Fatalf("hydra access token keys: %v", err)
	}
	return p
}

// Option changes Hydra's configuration.
type Option func(settings map[string]string)

// IDTokenLifetime makes ID tokens expire after d.
func IDTokenLifetime(d time.Duration) Option {
	return func(s map[string]string) { s["id_token"] = d.String() }
}

// hydraBin finds the Hydra build, or skips the test (fails it in CI).
func hydraBin(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(BinEnv)
	if dir == "" {
		dir = repoTools()
	}
	if _, err := os.Stat(filepath.Join(dir, "hydra")); err != nil {
		msg := "Hydra is not built (" + err.Error() + "); run scripts/install-hydra and set " + BinEnv
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// repoTools is .tools/bin at the repository's root, found from the working
// directory (a package directory while testing).
func repoTools() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools", "bin")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// SetUser adds or replaces an account at the provider. claims are the ID
// token's and userinfo's claims besides sub.
func (p *Provider) SetUser(subject string, claims map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.users[subject] = User{Claims: claims}
}

// Disable makes the provider refuse the account's next sign-in, as an
// administrator removing someone does.
func (p *Provider) Disable(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.users[subject]
	u.Disabled = true
	p.users[subject] = u
}

// RevokeGrants revokes every consent the subject gave, and with them every
// access and refresh token issued to them, as a provider does for an account
// it disables.
func (p *Provider) RevokeGrants(t testing.TB, subject string) {
	t.Helper()
	u := p.AdminURL + "/admin/oauth2/auth/sessions/consent?all=true&subject=" + url.QueryEscape(subject)
	if err := p.call(http.MethodDelete, u, nil, nil); err != nil {
		t.Fatalf("revoke the grants of %s: %v", subject, err)
	}
}

// LoginAs chooses who the next browser at the login page is.
func (p *Provider) LoginAs(subject string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loginAs = subject
}

// Logouts returns the subjects whose provider session ended, in order.
func (p *Provider) Logouts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logouts...)
}

// Logins returns the login requests answered, in order.
func (p *Provider) Logins() []Login {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Login(nil), p.logins...)
}

// Client registers an OAuth 2.0 client for a relying party at baseURL
// (redirect URI baseURL/auth/oidc/callback, post-logout redirect baseURL/)
// and returns its ID and secret.
func (p *Provider) Client(baseURL string) (id, secret string) {
	p.t.Helper()
	body := map[string]any{
		"client_name":                "Entente test node",
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"scope":                      "openid email profile",
		"redirect_uris":              []string{baseURL + "/auth/oidc/callback"},
		"post_logout_redirect_uris":  []string{baseURL + "/"},
		"token_endpoint_auth_method": "client_secret_basic",
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := p.call(http.MethodPost, p.AdminURL+"/admin/clients", body, &out); err != nil {
		p.t.Fatalf("create client: %v", err)
	}
	return out.ClientID, out.ClientSecret
}

// startApp serves the login, consent and logout pages Hydra sends browsers
// to, over TLS, and returns its base URL.
func (p *Provider) startApp(certPEM, keyPEM []byte) string {
	p.t.Helper()
	cert, err := devcert.KeyPair(certPEM, keyPEM)
	if err != nil {
		p.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.login)
	mux.HandleFunc("GET /consent", p.consent)
	mux.HandleFunc("GET /logout", p.logout)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		p.t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	p.t.Cleanup(func() { srv.Close() })
	return "https://" + l.Addr().String()
}

func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	var req struct {
		Subject string `json:"subject"`
		Skip    bool   `json:"skip"`
	}
	admin := p.AdminURL + "/admin/oauth2/auth/requests/login"
	if err := p.getJSON(admin+"?login_challenge="+url.QueryEscape(challenge), &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	subject := p.loginAs
	if req.Skip {
		// Hydra remembers who this browser is: it must be them again.
		subject = req.Subject
	}
	u, known := p.users[subject]
	reject := !known || u.Disabled
	p.logins = append(p.logins, Login{Subject: subject, Skip: req.Skip, Rejected: reject})
	p.mu.Unlock()
	var redirect struct {
		To string `json:"redirect_to"`
	}
	var err error
	if reject {
		err = p.call(http.MethodPut, admin+"/reject?login_challenge="+url.QueryEscape(challenge),
			map[string]any{"error": "access_denied", "error_description": "this account is disabled"}, &redirect)
	} else {
		err = p.call(http.MethodPut, admin+"/accept?login_challenge="+url.QueryEscape(challenge),
			map[string]any{"subject": subject, "remember": true, "remember_for": 3600}, &redirect)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, redirect.To, http.StatusFound)
}

func (p *Provider) consent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	var req struct {
		Subject  string   `json:"subject"`
		Scope    []string `json:"requested_scope"`
		Audience []string `json:"requested_access_token_audience"`
	}
	admin := p.AdminURL + "/admin/oauth2/auth/requests/consent"
	if err := p.getJSON(admin+"?consent_challenge="+url.QueryEscape(challenge), &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	claims := p.users[req.Subject].Claims
	p.mu.Unlock()
	var redirect struct {
		To string `json:"redirect_to"`
	}
	err := p.call(http.MethodPut, admin+"/accept?consent_challenge="+url.QueryEscape(challenge), map[string]any{
		"grant_scope": req.Scope, "grant_access_token_audience": req.Audience,
		"session": map[string]any{"id_token": claims},
	}, &redirect)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, redirect.To, http.StatusFound)
}

func (p *Provider) logout(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("logout_challenge")
	var req struct {
		Subject string `json:"subject"`
	}
	admin := p.AdminURL + "/admin/oauth2/auth/requests/logout"
	if err := p.getJSON(admin+"?logout_challenge="+url.QueryEscape(challenge), &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	var redirect struct {
		To string `json:"redirect_to"`
	}
	if err := p.call(http.MethodPut, admin+"/accept?logout_challenge="+url.QueryEscape(challenge), nil, &redirect); err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	p.mu.Lock()
	p.logouts = append(p.logouts, req.Subject)
	p.mu.Unlock()
	http.Redirect(w, r, redirect.To, http.StatusFound)
}

func (p *Provider) getJSON(u string, out any) error {
	return p.call(http.MethodGet, u, nil, out)
}

func (p *Provider) call(method, u string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}
