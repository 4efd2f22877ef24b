package accounts_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/hydratest"
	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// oidcNode starts a node that signs users in through p, with edit applied
// to its OpenID settings.
func oidcNode(t *testing.T, f *nodetest.Federation, p *hydratest.Provider, name string, edit func(*config.Config)) *nodetest.Node {
	t.Helper()
	return f.Start(t, name, func(c *config.Config) {
		id, secret := p.Client(c.Node.PublicURL)
		c.OIDC.Issuer = p.Issuer
		c.OIDC.ProviderName = "Hydra"
		c.OIDC.ClientID, c.OIDC.ClientSecret = id, secret
		c.OIDC.CAFile = p.CAFile
		c.OIDC.ClaimUnit = "unit"
		c.OIDC.ClaimOrganisation = "siret"
		c.OIDC.ClaimUserID = "uid"
		if edit != nil {
			edit(c)
		}
	})
}

// browser is a user agent with its own cookies, trusting the test CA. It
// follows redirects and remembers the answer that set each cookie.
type browser struct {
	t    *testing.T
	http *http.Client
	// stopAt, when set, stops following redirects at a URL with this path.
	stopAt string
	// setCookies are the Set-Cookie headers seen on the way, by cookie name.
	setCookies map[string]*http.Cookie
}

func newBrowser(t *testing.T, f *nodetest.Federation) *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, setCookies: map[string]*http.Cookie{}}
	b.http = &http.Client{
		Timeout: 30 * time.Second, Jar: jar,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.CA.Pool()}},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.Response != nil {
				b.record(req.Response)
			}
			if b.stopAt != "" && req.URL.Path == b.stopAt {
				return http.ErrUseLastResponse
			}
			if len(via) > 20 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	return b
}

func (b *browser) record(resp *http.Response) {
	for _, c := range resp.Cookies() {
		b.setCookies[c.Name] = c
	}
}

// get loads u and returns the final answer, its body read.
func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.http.Get(u)
	if err != nil {
		b.t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b.record(resp)
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn goes through the provider and returns where the node sent the
// browser in the end (path and query).
func (b *browser) signIn(n *nodetest.Node) string {
	b.t.Helper()
	resp, _ := b.get(n.PublicURL() + accounts.LoginPath)
	return resp.Request.URL.RequestURI()
}

// api calls the node's client API with the browser's cookies and, when csrf
// is set, the CSRF header.
func (b *browser) api(n *nodetest.Node, method, path, csrf string, body, out any) (int, string) {
	b.t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, n.PublicURL()+"/api/v1"+path, r)
	if csrf != "" {
		req.Header.Set(accounts.CSRFHeader, csrf)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	b.record(resp)
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

type sessionInfo struct {
	User        string `json:"user"`
	DisplayName string `json:"display_name"`
	Unit        string `json:"unit"`
	CSRF        string `json:"csrf_token"`
}

func (b *browser) session(n *nodetest.Node) (int, sessionInfo) {
	b.t.Helper()
	var s sessionInfo
	code, _ := b.api(n, "GET", "/session", "", nil, &s)
	return code, s
}

// sessionCookie is the value of the node's session cookie in the jar.
func (b *browser) sessionCookie(n *nodetest.Node) string {
	u, _ := url.Parse(n.PublicURL())
	for _, c := range b.http.Jar.Cookies(u) {
		if c.Name == accounts.SessionCookie {
			return c.Value
		}
	}
	return ""
}

func hashOf(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

var alice = map[string]any{
	"uid": "amartin", "given_name": "Alice", "usual_name": "Martin",
	"email": "alice.martin@finances.gouv.fr", "email_verified": true,
	"siret": "11000201100044", "unit": "Direction du budget", "groups": []any{"entente-admins", "budget"},
}

func TestOIDCSignInCreatesUpdatesAndSignsOut(t *testing.T) {
	f := nodetest.New(t)
	p := hydratest.Start(t, f.CA)
	n := oidcNode(t, f, p, "Ministry of Finance", func(c *config.Config) {
		c.OIDC.AllowedEmailDomains = "finances.gouv.fr"
		c.OIDC.AllowedOrganisations = "11000201100044"
		c.OIDC.AdminGroups = "entente-admins"
	})
	ctx := context.Background()
	p.SetUser("sub-alice", alice)
	p.LoginAs("sub-alice")

	b := newBrowser(t, f)
	if got := b.signIn(n); got != "/" {
		t.Fatalf("after sign-in the browser is at %q, want /", got)
	}
	c := b.setCookies[accounts.SessionCookie]
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Lax, Path=/, no Domain", c)
	}
	code, s := b.session(n)
	if code != 200 || s.User != "amartin" || s.DisplayName != "Alice Martin" || s.Unit != "Direction du budget" || s.CSRF == "" {
		t.Fatalf("session %d %+v", code, s)
	}
	u, err := n.Store().GetUser(ctx, "amartin")
	if err != nil || !u.Admin || u.Unit != "Direction du budget" || u.DisplayName != "Alice Martin" {
		t.Fatalf("user after first sign-in %+v, %v", u, err)
	}
	created := u.CreatedAt
	id, err := n.Store().GetIdentity(ctx, p.Issuer, "sub-alice")
	if err != nil || id.UserID != "amartin" || id.Email != "alice.martin@finances.gouv.fr" {
		t.Fatalf("identity %+v, %v", id, err)
	}
	var me map[string]any
	if code, raw := b.api(n, "GET", "/me", "", nil, &me); code != 200 || me["admin"] != true {
		t.Fatalf("GET /me with the session: %d %s", code, raw)
	}

	// CSRF: a state-changing request with the cookie alone, or from
	// another origin, changes nothing.
	if code, raw := b.api(n, "POST", "/conferences", "", map[string]any{"title": "Budget"}, nil); code != 403 || !strings.Contains(raw, accounts.CSRFHeader) {
		t.Fatalf("POST without the CSRF header: %d %s", code, raw)
	}
	if code, _ := b.api(n, "POST", "/conferences", "wrong", map[string]any{"title": "Budget"}, nil); code != 403 {
		t.Fatalf("POST with a wrong CSRF token: %d", code)
	}
	req, _ := http.NewRequest("POST", n.PublicURL()+"/api/v1/conferences", strings.NewReader(`{"title":"Budget"}`))
	req.Header.Set(accounts.CSRFHeader, s.CSRF)
	req.Header.Set("Origin", "https://evil.example")
	if resp, err := b.http.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("POST from another origin: %v %v", resp, err)
	}
	if confs, _ := n.Store().ListConferences(ctx); len(confs) != 0 {
		t.Fatalf("refused requests created %d conferences", len(confs))
	}
	if code, raw := b.api(n, "POST", "/conferences", s.CSRF, map[string]any{"title": "Budget"}, nil); code != 201 {
		t.Fatalf("POST with the CSRF token: %d %s", code, raw)
	}

	// The provider changes the user's name, unit and groups: the next
	// sign-in updates the same account, and the admin rights follow.
	changed := map[string]any{}
	for k, v := range alice {
		changed[k] = v
	}
	changed["usual_name"] = "Martin-Durand"
	changed["unit"] = "Direction générale du Trésor"
	changed["groups"] = []any{"budget"}
	p.SetUser("sub-alice", changed)
	b2 := newBrowser(t, f)
	if got := b2.signIn(n); got != "/" {
		t.Fatalf("second sign-in ends at %q", got)
	}
	u, err = n.Store().GetUser(ctx, "amartin")
	if err != nil || u.Admin || u.Unit != "Direction générale du Trésor" || u.DisplayName != "Alice Martin-Durand" || !u.CreatedAt.Equal(created) {
		t.Fatalf("user after the update %+v, %v (created %s)", u, err, created)
	}
	if users, _ := n.Store().ListUsers(ctx); len(users) != 1 {
		t.Fatalf("%d users, want the one updated", len(users))
	}

	// Sign-out: the session ends here, and the browser is sent to the
	// provider's end_session_endpoint, which ends it there too.
	_, s2 := b2.session(n)
	cookie := b2.sessionCookie(n)
	if code, _ := b2.api(n, "POST", "/logout", "", nil, nil); code != 403 {
		t.Fatalf("logout without the CSRF header: %d, want 403", code)
	}
	var out struct {
		Redirect string `json:"redirect"`
	}
	if code, raw := b2.api(n, "POST", "/logout", s2.CSRF, nil, &out); code != 200 {
		t.Fatalf("logout: %d %s", code, raw)
	}
	if _, err := n.Store().GetSession(ctx, hashOf(cookie)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session after logout: %v, want not found", err)
	}
	if code, _ := b2.session(n); code != 401 {
		t.Fatalf("session after logout: %d, want 401", code)
	}
	lu, _ := url.Parse(out.Redirect)
	if !strings.HasPrefix(out.Redirect, strings.TrimSuffix(p.Issuer, "/")) || lu.Query().Get("id_token_hint") == "" || lu.Query().Get("post_logout_redirect_uri") != n.PublicURL()+"/" {
		t.Fatalf("logout redirect %q", out.Redirect)
	}
	if resp, _ := b2.get(out.Redirect); resp.Request.URL.String() != n.PublicURL()+"/" && !strings.HasPrefix(resp.Request.URL.String(), n.PublicURL()+"/?") {
		t.Fatalf("after the provider's logout the browser is at %s", resp.Request.URL)
	}
	if got := p.Logouts(); !slices.Equal(got, []string{"sub-alice"}) {
		t.Fatalf("provider logouts %v", got)
	}
	// The provider forgot the browser: the next sign-in asks again.
	before := len(p.Logins())
	if got := b2.signIn(n); got != "/" {
		t.Fatalf("sign-in after logout ends at %q", got)
	}
	if l := p.Logins(); len(l) != before+1 || l[before].Skip {
		t.Fatalf("login after the provider's logout %+v: want a fresh one", l[before:])
	}
	// The first browser's session was not touched by the other's logout.
	if code, _ := b.session(n); code != 200 {
		t.Fatalf("the other browser's session: %d", code)
	}
}

func TestOIDCRefusals(t *testing.T) {
	f := nodetest.New(t)
	p := hydratest.Start(t, f.CA)
	n := oidcNode(t, f, p, "Ministry of Finance", func(c *config.Config) {
		c.OIDC.AllowedEmailDomains = "finances.gouv.fr"
		c.OIDC.AllowedOrganisations = "11000201100044"
		c.OIDC.AdminClaim = "entente_admin"
		c.Auth.Passwords = false
	})
	ctx := context.Background()
	p.SetUser("sub-alice", alice)
	outsider := map[string]any{}
	for k, v := range alice {
		outsider[k] = v
	}
	outsider["uid"], outsider["email"] = "eve", "eve@example.org"
	p.SetUser("sub-eve", outsider)
	otherOrg := map[string]any{}
	for k, v := range alice {
		otherOrg[k] = v
	}
	otherOrg["uid"], otherOrg["siret"] = "oscar", "13002526500013"
	p.SetUser("sub-oscar", otherOrg)
	unverified := map[string]any{}
	for k, v := range alice {
		unverified[k] = v
	}
	unverified["uid"], unverified["email_verified"] = "victor", false
	p.SetUser("sub-victor", unverified)

	noSession := func(b *browser, what string) {
		t.Helper()
		if c := b.sessionCookie(n); c != "" {
			t.Errorf("%s: the browser has a session cookie", what)
		}
	}
	for _, tc := range []struct{ sub, want string }{
		{"sub-eve", "/?signin_error=not_allowed"},
		{"sub-oscar", "/?signin_error=not_allowed"},
		{"sub-victor", "/?signin_error=not_allowed"},
	} {
		p.LoginAs(tc.sub)
		b := newBrowser(t, f)
		if got := b.signIn(n); got != tc.want {
			t.Errorf("%s: sign-in ends at %q, want %q", tc.sub, got, tc.want)
		}
		noSession(b, tc.sub)
	}
	if users, _ := n.Store().ListUsers(ctx); len(users) != 0 {
		t.Fatalf("refused sign-ins made users: %+v", users)
	}

	// A user the provider disabled cannot start a session.
	p.SetUser("sub-dora", map[string]any{"uid": "dora", "email": "dora@finances.gouv.fr", "siret": "11000201100044"})
	p.Disable("sub-dora")
	p.LoginAs("sub-dora")
	b := newBrowser(t, f)
	if got := b.signIn(n); got != "/?signin_error=denied" {
		t.Fatalf("disabled user: sign-in ends at %q", got)
	}
	noSession(b, "disabled user")

	// A tampered state, or a callback in a browser that did not start the
	// sign-in, is refused.
	p.LoginAs("sub-alice")
	b = newBrowser(t, f)
	b.stopAt = accounts.CallbackPath
	resp, _ := b.get(n.PublicURL() + accounts.LoginPath)
	callback, err := resp.Location()
	if err != nil || callback.Path != accounts.CallbackPath {
		t.Fatalf("stopped at %v (%v), want the callback", callback, err)
	}
	b.stopAt = ""
	stranger := newBrowser(t, f)
	if resp, _ := stranger.get(callback.String()); resp.Request.URL.RequestURI() != "/?signin_error=state" {
		t.Fatalf("callback in another browser ends at %s", resp.Request.URL.RequestURI())
	}
	noSession(stranger, "other browser")
	tampered := *callback
	q := tampered.Query()
	q.Set("state", q.Get("state")+"x")
	tampered.RawQuery = q.Encode()
	if resp, _ := b.get(tampered.String()); resp.Request.URL.RequestURI() != "/?signin_error=state" {
		t.Fatalf("tampered state ends at %s", resp.Request.URL.RequestURI())
	}
	noSession(b, "tampered state")

	// A whole sign-in, then its answer replayed, with the state cookie put
	// back as an attacker holding it would: the flow is used up. The
	// provider says this user is an administrator (admin_claim).
	adminAlice := map[string]any{"entente_admin": true}
	for k, v := range alice {
		adminAlice[k] = v
	}
	p.SetUser("sub-alice", adminAlice)
	b = newBrowser(t, f)
	b.stopAt = accounts.CallbackPath
	resp, _ = b.get(n.PublicURL() + accounts.LoginPath)
	callback, _ = resp.Location()
	stateCookie := b.setCookies["__Host-entente_oidc_state"]
	b.stopAt = ""
	if resp, _ := b.get(callback.String()); resp.Request.URL.RequestURI() != "/" {
		t.Fatalf("the genuine callback ends at %s", resp.Request.URL.RequestURI())
	}
	first := b.sessionCookie(n)
	replay := newBrowser(t, f)
	nu, _ := url.Parse(n.PublicURL())
	replay.http.Jar.SetCookies(nu, []*http.Cookie{{Name: stateCookie.Name, Value: stateCookie.Value, Path: "/", Secure: true}})
	if resp, _ := replay.get(callback.String()); resp.Request.URL.RequestURI() != "/?signin_error=state" {
		t.Fatalf("replayed callback ends at %s", resp.Request.URL.RequestURI())
	}
	noSession(replay, "replay")
	if first == "" {
		t.Fatal("the genuine sign-in made no session")
	}
	if u, err := n.Store().GetUser(ctx, "amartin"); err != nil || !u.Admin {
		t.Fatalf("user with the admin claim: %+v, %v", u, err)
	}

	// Passwords are off; the sign-in options say so, and API tokens still
	// work.
	var opts struct {
		Passwords bool `json:"passwords"`
		OIDC      struct {
			Name     string `json:"name"`
			LoginURL string `json:"login_url"`
		} `json:"oidc"`
	}
	if code, raw := replay.api(n, "GET", "/signin", "", nil, &opts); code != 200 || opts.Passwords || opts.OIDC.Name != "Hydra" || opts.OIDC.LoginURL != accounts.LoginPath {
		t.Fatalf("sign-in options %d %s", code, raw)
	}
	if err := accounts.SetPassword(ctx, n.Store(), "amartin", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	if code, raw := replay.api(n, "POST", "/login", "", map[string]string{"user": "amartin", "password": "correct horse battery"}, nil); code != 403 || !strings.Contains(raw, "turned off") {
		t.Fatalf("password login while off: %d %s", code, raw)
	}
	token, err := accounts.IssueToken(ctx, n.Store(), "amartin", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", n.PublicURL()+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := f.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("API token with passwords off: %v %v", resp, err)
	}
}

// TestOIDCProviderDown: with the provider unreachable the node keeps
// serving; a sign-in comes back with the reason "provider" and no session,
// and API tokens still work.
func TestOIDCProviderDown(t *testing.T) {
	f := nodetest.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + l.Addr().String() + "/"
	l.Close() // nothing listens there any more
	n := f.Start(t, "Ministry of Finance", func(c *config.Config) {
		c.OIDC.Issuer, c.OIDC.ClientID, c.OIDC.ClientSecret = down, "entente", "secret"
	})
	b := newBrowser(t, f)
	if got := b.signIn(n); got != "/?signin_error=provider" {
		t.Fatalf("sign-in with the provider down ends at %q", got)
	}
	if c := b.sessionCookie(n); c != "" {
		t.Fatal("a session cookie was set")
	}
	if code, _ := b.api(n, "GET", "/signin", "", nil, nil); code != 200 {
		t.Fatalf("GET /signin with the provider down: %d", code)
	}
	// Sign-ins started from one address are bounded: 30 within 10 minutes.
	for i := 2; i <= 30; i++ {
		if got := b.signIn(n); got != "/?signin_error=provider" {
			t.Fatalf("sign-in %d ends at %q", i, got)
		}
	}
	if got := b.signIn(n); got != "/?signin_error=limited" {
		t.Fatalf("the 31st sign-in from one address ends at %q, want limited", got)
	}
	_, tok := nodetest.User(t, n, "bruno", "Bruno")
	req, _ := http.NewRequest("GET", n.PublicURL()+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := f.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("API token with the provider down: %v %v", resp, err)
	}
}
