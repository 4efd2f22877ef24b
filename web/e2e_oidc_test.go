package web_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/hydratest"
	"github.com/entente-org/entente/internal/nodetest"
)

// spkiOfFile is spki for any PEM certificate file.
func spkiOfFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// waitAcross polls a JavaScript condition while the tab navigates through
// other sites, for at most d: an evaluation that fails because its page went
// away is tried again on the next one.
func waitAcross(t *testing.T, ctx context.Context, d time.Duration, js string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool]("!!("+js+")"))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	where, _ := chromedp.Run(c, chromedp.Evaluate[string]("location.href + ' ' + document.body.innerText.slice(0, 300)"))
	t.Fatalf("waiting for %s: %v; the page is %s", js, last, where)
}

// TestBrowserOIDCSignInAndOut: the sign-in screen offers "Sign in with
// Hydra" beside the local form; the button goes through the real provider
// and back, the home screen shows the user with their unit before the
// organisation, the session cookie is out of the page's reach, and signing
// out ends the session here and at the provider.
func TestBrowserOIDCSignInAndOut(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	p := hydratest.Start(t, f.CA)
	n := f.Start(t, "Ministry of Finance", func(c *config.Config) {
		id, secret := p.Client(c.Node.PublicURL)
		c.OIDC.Issuer, c.OIDC.ProviderName = p.Issuer, "Hydra"
		c.OIDC.ClientID, c.OIDC.ClientSecret, c.OIDC.CAFile = id, secret, p.CAFile
		c.OIDC.ClaimUnit = "unit"
	})
	p.SetUser("sub-alice", map[string]any{
		"given_name": "Alice", "usual_name": "Martin", "email": "alice.martin@finances.gouv.fr",
		"unit": "Direction du budget",
	})
	p.LoginAs("sub-alice")

	ctx := browserWith(t, []chromedp.ExecAllocatorOption{
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("ignore-certificate-errors-spki-list", spki(t, n)+","+spkiOfFile(t, p.CertFile)),
	})
	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/"))
	waitText(t, ctx, "#signin-oidc", "Sign in with Hydra")
	if !eval[bool](t, ctx, `!!document.querySelector('#signin-form')`) {
		t.Fatal("the local password form is missing while passwords are on")
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#signin-oidc")))
	waitAcross(t, ctx, 60*time.Second, `document.querySelector('#whoami')?.textContent.includes('Direction du budget · Ministry of Finance')`)
	who := eval[string](t, ctx, `document.querySelector('#whoami').textContent`)
	if !strings.Contains(who, "Alice Martin") || !strings.Contains(who, "(sub-alice)") {
		t.Fatalf("home says %q", who)
	}
	if got := eval[string](t, ctx, `location.href`); got != n.PublicURL()+"/" {
		t.Fatalf("after sign-in the page is %s", got)
	}
	if eval[bool](t, ctx, `document.cookie.includes('entente_session')`) {
		t.Fatal("the session cookie is readable by the page")
	}
	if eval[string](t, ctx, `sessionStorage.getItem('entente.token') ?? ''`) != "" {
		t.Fatal("a token was stored although the session is a cookie")
	}

	run(t, ctx, chromedp.Click(chromedp.CSS("#sign-out")))
	waitAcross(t, ctx, 60*time.Second, `location.origin === `+quote(n.PublicURL())+` && !!document.querySelector('#signin-oidc')`)
	if got := eval[string](t, ctx, `location.origin + location.pathname`); got != n.PublicURL()+"/" {
		t.Fatalf("after sign-out the page is %s", got)
	}
	if got := p.Logouts(); !slices.Equal(got, []string{"sub-alice"}) {
		t.Fatalf("provider logouts %v, want [sub-alice]", got)
	}
	if code := eval[int](t, ctx, `(() => { const x = new XMLHttpRequest(); x.open('GET', '/api/v1/session', false); x.send(); return x.status })()`); code != 401 {
		t.Fatalf("session after sign-out: %d", code)
	}
}
