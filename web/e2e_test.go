package web_test

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/nodetest"
)

const chromiumPath = "/usr/bin/chromium"

// requireChromium skips (or, in CI, fails) when the browser is missing.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: scripts/test-all installs it", chromiumPath)
		}
		t.Skipf("%s is missing: run scripts/test-all, which installs it", chromiumPath)
	}
}

// spki is the base64 SHA-256 of a node certificate's public key, the form
// Chromium's --ignore-certificate-errors-spki-list takes: the browser then
// trusts exactly these test certificates and no others.
func spki(t *testing.T, n *nodetest.Node) string {
	t.Helper()
	b, err := os.ReadFile(n.Config.HTTP.TLSCert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", n.Config.HTTP.TLSCert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// browser starts a headless Chromium with a fake camera and microphone that
// trusts the given nodes' certificates. Page errors fail the test.
func browser(t *testing.T, nodes ...*nodetest.Node) context.Context {
	t.Helper()
	return browserWith(t, []chromedp.ExecAllocatorOption{chromedp.WindowSize(1280, 1000)}, nodes...)
}

// browserWith is browser with more Chromium options.
func browserWith(t *testing.T, extra []chromedp.ExecAllocatorOption, nodes ...*nodetest.Node) context.Context {
	t.Helper()
	requireChromium(t)
	var keys []string
	for _, n := range nodes {
		keys = append(keys, spki(t, n))
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(keys, ",")),
	}, extra...)
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// The first action starts the browser, which lives as long as the
	// context of that action: it must be ctx itself, not a shorter one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	watchErrors(t, ctx)
	return ctx
}

// newProfile opens a tab in a fresh browser context: another person on
// another computer, sharing no storage with the first.
func newProfile(t *testing.T, parent context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	watchErrors(t, ctx)
	return ctx
}

func watchErrors(t *testing.T, ctx context.Context) {
	var mu sync.Mutex
	var errs []string
	chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			mu.Lock()
			msg := e.ExceptionDetails.Text
			if ex := e.ExceptionDetails.Exception; ex != nil {
				msg += " " + ex.Description
			}
			errs = append(errs, msg)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs {
			t.Errorf("page error: %s", e)
		}
	})
}

// Deadlines of the browser helpers: generous, so that the tests hold on a
// machine whose cores are busy with other work. Each helper waits for a
// condition and returns as soon as it holds; only a failing run waits this
// long.
const (
	stepTimeout = 2 * time.Minute // one chromedp action, such as a navigation
	evalTimeout = time.Minute     // one script evaluation
	// minWait is the shortest wait for a page condition, whatever the
	// caller asked: on a loaded machine, media and rendering lag.
	minWait = time.Minute
)

func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds, for at most d (and
// never less than minWait).
func waitFor(t *testing.T, ctx context.Context, d time.Duration, js string) {
	t.Helper()
	d = max(d, minWait)
	c, cancel := context.WithTimeout(ctx, d+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool]("!!("+js+")", chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d))); err != nil {
		t.Fatalf("waiting for %s: %v", js, err)
	}
}

// waitText waits until the element's text is exactly want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`document.querySelector(%s)?.textContent === %s`, quote(sel), quote(want))
	c, cancel := context.WithTimeout(ctx, minWait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(minWait))); err != nil {
		got := eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%s)?.textContent ?? "(no element)"`, quote(sel)))
		t.Fatalf("%s: text %q, want %q", sel, got, want)
	}
}

// clickInList clicks a button of a list the page rebuilds as it refreshes:
// finding and clicking happen in one step inside the page, so the button
// cannot be replaced in between.
func clickInList(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const b = document.querySelector(%s); if (b) b.click(); return !!b })()`, quote(sel))
	waitFor(t, ctx, 20*time.Second, js)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ENTENTE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func addUser(t *testing.T, n *nodetest.Node, id, name, password string) {
	t.Helper()
	ctx := context.Background()
	if _, err := accounts.AddUser(ctx, n.Store(), id, name, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := accounts.SetPassword(ctx, n.Store(), id, password); err != nil {
		t.Fatal(err)
	}
}

func signIn(t *testing.T, ctx context.Context, user, password string) {
	t.Helper()
	run(t, ctx,
		chromedp.WaitVisible(chromedp.CSS("#signin-user")),
		chromedp.SendKeys(chromedp.CSS("#signin-user"), user),
		chromedp.SendKeys(chromedp.CSS("#signin-password"), password),
		chromedp.Click(chromedp.CSS("#signin-submit")),
	)
}

func setLanguage(t *testing.T, ctx context.Context, lang string) {
	t.Helper()
	eval[bool](t, ctx, fmt.Sprintf(`(() => { const s = document.querySelector('#language'); s.value = %s; s.dispatchEvent(new Event('change')); return true })()`, quote(lang)))
}

// TestBrowserFederatedConference follows two civil servants of two
// institutions through the client: one signs in and invites the other's
// organisation, the other accepts, checks their camera and joins.
func TestBrowserFederatedConference(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	ministry := f.Start(t, "Ministère de la Coordination", nil)
	agency := f.Start(t, "Agence nationale de la statistique", nil)
	nodetest.Trust(t, ministry, agency)
	addUser(t, ministry, "alice", "Alice Martin", "alice-password-1")
	addUser(t, agency, "bruno", "Bruno Lefèvre", "bruno-password-1")

	alice := browser(t, ministry, agency)
	run(t, alice, chromedp.Navigate(ministry.PublicURL()+"/"))
	// A browser set to English unless told otherwise.
	setLanguage(t, alice, "en")
	waitText(t, alice, "h1", "Sign in")
	screenshot(t, alice, "sign-in")

	// A wrong password: the message is shown, read out (role=alert) and the
	// password field is ready for another try.
	signIn(t, alice, "alice", "wrong-password")
	waitText(t, alice, "#signin-error", "The user name or password is incorrect.")
	if role := eval[string](t, alice, `document.querySelector('#signin-error').getAttribute('role')`); role != "alert" {
		t.Errorf("error role = %q, want alert", role)
	}
	if id := eval[string](t, alice, `document.activeElement.id`); id != "signin-password" {
		t.Errorf("focus after failure on %q, want signin-password", id)
	}
	run(t, alice,
		chromedp.SendKeys(chromedp.CSS("#signin-password"), "alice-password-1"),
		chromedp.Click(chromedp.CSS("#signin-submit")))
	waitText(t, alice, "#whoami", "Signed in as Alice Martin (alice), Ministère de la Coordination.")

	// Create a conference and invite the agency.
	const title = "Coordination interministérielle"
	run(t, alice,
		chromedp.SendKeys(chromedp.CSS("#create-title"), title),
		chromedp.Click(chromedp.CSS("#create-submit")),
		chromedp.WaitVisible(chromedp.CSS("#invite-form")),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#invite-form input[value=%s]`, quote(agency.DID())))),
		chromedp.Click(chromedp.CSS("#invite-submit")))
	waitText(t, alice, "#invite-result", "Invitation sent to Agence nationale de la statistique.")
	confID := eval[string](t, alice, `document.querySelector('#conferences li[data-conference]').dataset.conference`)
	if !strings.HasPrefix(confID, "c-") {
		t.Fatalf("conference id %q", confID)
	}
	waitText(t, alice, fmt.Sprintf(`#conferences li[data-conference=%s] .meta`, quote(confID)), "Hosted by Ministère de la Coordination · Open")
	screenshot(t, alice, "home")

	// The agency's user works in French; the choice outlives a reload.
	bruno := newProfile(t, alice)
	run(t, bruno, chromedp.Navigate(agency.PublicURL()+"/"))
	waitText(t, bruno, "h1", "Sign in")
	setLanguage(t, bruno, "fr")
	waitText(t, bruno, "h1", "Connexion")
	run(t, bruno, chromedp.Reload())
	waitText(t, bruno, "h1", "Connexion")
	waitText(t, bruno, `label[for="signin-user"]`, "Nom d’utilisateur")
	if lang := eval[string](t, bruno, `document.documentElement.lang`); lang != "fr" {
		t.Errorf("html lang = %q, want fr", lang)
	}
	signIn(t, bruno, "bruno", "bad-password-1")
	waitText(t, bruno, "#signin-error", "Le nom d’utilisateur ou le mot de passe est incorrect.")
	run(t, bruno,
		chromedp.SendKeys(chromedp.CSS("#signin-password"), "bruno-password-1"),
		chromedp.Click(chromedp.CSS("#signin-submit")))
	waitText(t, bruno, "#whoami", "Connecté en tant que Bruno Lefèvre (bruno), Agence nationale de la statistique.")

	// The invitation arrives by federation; the home screen refreshes itself.
	invitation := fmt.Sprintf(`#invitations li[data-invitation=%s]`, quote(confID))
	waitFor(t, bruno, 20*time.Second, fmt.Sprintf(`document.querySelector(%s)`, quote(invitation)))
	waitText(t, bruno, invitation+" .meta", "De Ministère de la Coordination, invitation de alice@"+ministry.DID())
	clickInList(t, bruno, invitation+" button.primary")
	waitFor(t, bruno, 10*time.Second, fmt.Sprintf(`[%s, %s].includes(document.querySelector('#invitation-status').textContent)`,
		quote("Vous avez accepté « "+title+" ». L’organisateur l’a enregistré."),
		quote("Vous avez accepté « "+title+" ». L’organisateur n’a pas encore répondu : votre réponse lui parviendra dès qu’il sera joignable.")))

	// Pre-join: the fake camera plays in the preview.
	open := fmt.Sprintf(`#conferences li[data-conference=%s] a`, quote(confID))
	clickInList(t, bruno, open)
	waitText(t, bruno, "h1", "Rejoindre « "+title+" »")
	if path := eval[string](t, bruno, `location.pathname`); path != "/app/conference/"+confID {
		t.Errorf("pre-join path %q", path)
	}
	waitFor(t, bruno, 20*time.Second, `(() => { const v = document.querySelector('#preview'); return v && v.readyState >= 2 && v.videoWidth > 0 })()`)
	waitFor(t, bruno, 10*time.Second, `document.querySelector('#camera').options.length > 0 && document.querySelector('#microphone').options.length > 0`)
	if name := eval[string](t, bruno, `document.querySelector('#display-name').value`); name != "Bruno Lefèvre" {
		t.Errorf("display name pre-filled with %q", name)
	}
	waitFor(t, bruno, 10*time.Second, `!document.querySelector('#join').disabled`)
	waitText(t, bruno, "#prejoin-conference", "Organisée par Ministère de la Coordination")
	screenshot(t, bruno, "pre-join")

	run(t, bruno, chromedp.Click(chromedp.CSS("#toggle-camera")))
	if on := eval[bool](t, bruno, `document.querySelector('#preview').srcObject.getVideoTracks()[0].enabled`); on {
		t.Error("camera toggle left the video track enabled")
	}
	run(t, bruno, chromedp.Click(chromedp.CSS("#join")))
	// The call screen takes over: connecting, or already connected.
	waitFor(t, bruno, 10*time.Second, fmt.Sprintf(`[%s, %s, %s].includes(document.querySelector('#call-status')?.textContent)`,
		quote("Connexion…"), quote("Votre demande a été envoyée à l’organisateur. Connexion…"), quote("Connecté.")))
	nodetest.Eventually(t, minWait, "bruno in the host's roster", func() bool {
		roster, err := ministry.Federation().Roster(context.Background(), confID)
		if err != nil {
			return false
		}
		for _, p := range roster.Participants {
			if p.User == "bruno@"+agency.DID() {
				return true
			}
		}
		return false
	})
}

// TestBrowserTokenLink checks that a demo link's #token=… signs in and leaves
// the address bar (and so the history) at once.
func TestBrowserTokenLink(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	_, token := nodetest.User(t, n, "chloe", "Chloé Bernard")
	ctx := browser(t, n)
	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/app/#token="+token))
	setLanguage(t, ctx, "en")
	waitText(t, ctx, "#whoami", "Signed in as Chloé Bernard (chloe), Préfecture.")
	if href := eval[string](t, ctx, `location.href`); href != n.PublicURL()+"/app/" {
		t.Errorf("address bar %q still holds the token", href)
	}
	if stored := eval[string](t, ctx, `sessionStorage.getItem('entente.token')`); stored != token {
		t.Errorf("session token %q", stored)
	}
	run(t, ctx, chromedp.Click(chromedp.CSS("#sign-out")))
	waitText(t, ctx, "h1", "Sign in")
	if has := eval[bool](t, ctx, `sessionStorage.getItem('entente.token') !== null`); has {
		t.Error("token kept after signing out")
	}
}

// TestNodeServesClientAndLogin checks the routes a node mounts for the
// client, without a browser: the page under /app/, the API beside it, and
// password sign-in.
func TestNodeServesClientAndLogin(t *testing.T) {
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	addUser(t, n, "chloe", "Chloé Bernard", "chloe-password-1")
	hc := f.Client()

	res, err := hc.Get(n.PublicURL() + "/app/conference/c-unknown")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Security-Policy") == "" || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /app/…: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"user":"chloe","password":"wrong-password"}`, 401},
		{`{"user":"chloe","password":"chloe-password-1"}`, 200},
	} {
		res, err := hc.Post(n.PublicURL()+"/api/v1/login", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Token string `json:"token"`
		}
		json.NewDecoder(res.Body).Decode(&out)
		res.Body.Close()
		if res.StatusCode != tc.code || (tc.code == 200) != strings.HasPrefix(out.Token, "ent_") {
			t.Fatalf("login %s: %d, token %t", tc.body, res.StatusCode, out.Token != "")
		}
		if tc.code != 200 {
			continue
		}
		req, _ := http.NewRequest("GET", n.PublicURL()+"/api/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+out.Token)
		res, err = hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var me struct {
			ID string `json:"id"`
		}
		json.NewDecoder(res.Body).Decode(&me)
		res.Body.Close()
		if res.StatusCode != 200 || me.ID != "chloe" {
			t.Fatalf("GET /me with the login token: %d %+v", res.StatusCode, me)
		}
	}
	res, err = hc.Post(n.PublicURL()+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d, want 405", res.StatusCode)
	}
}
