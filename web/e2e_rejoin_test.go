package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
)

// ownBrowser is callBrowser in a Chromium process of its own, with kill,
// which ends the process at once as a crash would.
func ownBrowser(t *testing.T, nodes ...*nodetest.Node) (ctx context.Context, kill func()) {
	t.Helper()
	requireChromium(t)
	var keys []string
	for _, n := range nodes {
		keys = append(keys, spki(t, n))
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
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
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("ignore-certificate-errors-spki-list", joinComma(keys)),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	kill = func() { cancelCtx(); cancelAlloc() }
	t.Cleanup(kill)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx, kill
}

func joinComma(s []string) string { return strings.Join(s, ",") }

// openAndJoin opens the conference's link (signed in with token unless it
// is empty: the page keeps its session) up to a ready pre-join screen, and
// clicks Join. It returns when Join was clicked.
func openAndJoin(t *testing.T, ctx context.Context, n *nodetest.Node, confID, token string) time.Time {
	t.Helper()
	link := n.PublicURL() + "/app/conference/" + confID
	if token != "" {
		link += "#token=" + token
	}
	run(t, ctx, chromedp.Navigate(link))
	return joinWhenReady(t, ctx)
}

// joinWhenReady waits for the pre-join screen's camera and clicks Join.
func joinWhenReady(t *testing.T, ctx context.Context) time.Time {
	t.Helper()
	setLanguage(t, ctx, "en")
	waitFor(t, ctx, 30*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	waitFor(t, ctx, 30*time.Second, `(() => { const v = document.querySelector('#preview'); return v && v.readyState >= 2 && v.videoWidth > 0 })()`)
	eval[bool](t, ctx, recordPeerConnections)
	at := time.Now()
	click(t, ctx, "#join")
	return at
}

// decodedAfter polls, every 50 ms, until ctx decodes user's camera and
// audio, and says how long that took from start. It measures; the
// deadline only keeps a broken run from hanging.
func decodedAfter(t *testing.T, ctx context.Context, user string, start time.Time) time.Duration {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := mediaFrom(t, ctx, user)
		if r.Camera > 0 && r.Audio > 0 {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("media of %s not decoded %v after Join: %+v", user, time.Since(start), r)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// oneTile checks that ctx shows user exactly once on its stage.
func oneTile(t *testing.T, ctx context.Context, user string) {
	t.Helper()
	sel := fmt.Sprintf(`#stage .tile[data-user=%s]`, quote(user))
	waitFor(t, ctx, 20*time.Second, fmt.Sprintf(`document.querySelectorAll(%s).length === 1`, quote(sel)))
	if n := eval[int](t, ctx, fmt.Sprintf(`document.querySelectorAll(%s).length`, quote(sel))); n != 1 {
		t.Errorf("%s shows %d tiles, want 1", user, n)
	}
}

// rejoinScenario: Alice (host) and Bruno are in a call; Bruno reloads his
// page in the middle of it, then his browser dies and he opens the link
// again, then he leaves and rejoins. Each time he is let straight back in,
// media decodes both ways and Alice sees him once. The times from the click
// on Join to decoded media are logged: they are measurements, not
// assertions.
func rejoinScenario(t *testing.T, remote bool) {
	requireChromium(t)
	f := nodetest.New(t)
	ministry := f.Start(t, "Ministère de la Coordination", nil)
	home := ministry
	if remote {
		home = f.Start(t, "Agence nationale de la statistique", nil)
		nodetest.Trust(t, ministry, home)
	}
	alice, aliceTok := nodetest.User(t, ministry, "alice", "Alice Martin")
	bruno, brunoTok := nodetest.User(t, home, "bruno", "Bruno Lefèvre")
	aliceRef, brunoRef := "alice@"+ministry.DID(), "bruno@"+home.DID()
	ctx := context.Background()
	conf, err := ministry.Federation().Create(ctx, alice, federation.CreateContent{Title: "Point hebdomadaire"})
	if err != nil {
		t.Fatal(err)
	}
	if remote {
		if _, err := ministry.Federation().Invite(ctx, alice, conf.ID, home.DID(), nil); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, minWait, "the invitation at the agency", func() bool {
			_, err := home.Store().GetConference(ctx, conf.ID)
			return err == nil
		})
		if _, _, err := home.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	where := "one node"
	if remote {
		where = "two nodes"
	}

	aCtx := callBrowser(t, ministry, home)
	enterCall(t, aCtx, ministry, conf.ID, aliceTok, true)
	bCtx, kill := ownBrowser(t, ministry, home)
	openAndJoin(t, bCtx, home, conf.ID, brunoTok)
	waitText(t, bCtx, "#call-status", "Connected.")
	waitMedia(t, aCtx, brunoRef, false)
	waitMedia(t, bCtx, aliceRef, false)

	// back measures one return: Bruno decodes Alice, Alice decodes the new
	// Bruno, and Alice sees one tile of him.
	back := func(what string, joined time.Time) {
		t.Helper()
		waitText(t, bCtx, "#call-status", "Connected.")
		toBruno := decodedAfter(t, bCtx, aliceRef, joined)
		toAlice := decodedAfter(t, aCtx, brunoRef, joined)
		t.Logf("%s, %s: from the click on Join, Bruno decodes Alice after %v, Alice decodes Bruno after %v", what, where, toBruno.Round(time.Millisecond), toAlice.Round(time.Millisecond))
		waitMedia(t, aCtx, brunoRef, false)
		waitMedia(t, bCtx, aliceRef, false)
		oneTile(t, aCtx, brunoRef)
		if n := eval[int](t, aCtx, `document.querySelectorAll('#stage .tile').length`); n != 2 {
			t.Errorf("%s: Alice's stage shows %d tiles, want 2", what, n)
		}
	}

	// A reload in the middle of the call: the page keeps its session.
	run(t, bCtx, chromedp.Reload())
	back("reload", joinWhenReady(t, bCtx))

	// The browser dies; a new one opens the link again.
	kill()
	bCtx, kill = ownBrowser(t, ministry, home)
	back("crash", openAndJoin(t, bCtx, home, conf.ID, brunoTok))

	// Leave, then Rejoin: both directions decode again. After Leave the
	// screen offers Rejoin and the way back, and no stale connection
	// quality.
	click(t, bCtx, "#call-leave")
	waitText(t, bCtx, "#call-status", "You left the call.")
	if !eval[bool](t, bCtx, shown("#call-rejoin")) || !eval[bool](t, bCtx, shown("#call-back")) || eval[bool](t, bCtx, shown("#call-quality")) {
		t.Error("after Leave: want Rejoin and Back to your conferences, and no connection quality")
	}
	waitFor(t, aCtx, 20*time.Second, fmt.Sprintf(`!document.querySelector('#stage .tile[data-user=%s]')`, quote(brunoRef)))
	click(t, bCtx, "#call-rejoin")
	back("leave and rejoin", joinWhenReady(t, bCtx))
	_ = kill
}

func TestBrowserRejoinOneNode(t *testing.T) {
	rejoinScenario(t, false)
}

func TestBrowserRejoinTwoNodes(t *testing.T) {
	rejoinScenario(t, true)
}

// TestBrowserSecondWindowTakesOver: the same user opens the call in a
// second window (or on another device) while the first is still in it. The second takes over: the
// first is told why and does not come back, the other participant sees the
// user once and receives the new window's media.
func TestBrowserSecondWindowTakesOver(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	_, brunoTok := nodetest.User(t, n, "bruno", "Bruno Lefèvre")
	conf, err := n.Federation().Create(context.Background(), alice, federation.CreateContent{Title: "Point presse"})
	if err != nil {
		t.Fatal(err)
	}
	brunoRef := "bruno@" + n.DID()
	aCtx := callBrowser(t, n)
	enterCall(t, aCtx, n, conf.ID, aliceTok, true)
	first := newProfile(t, aCtx)
	enterCall(t, first, n, conf.ID, brunoTok, true)
	waitMedia(t, aCtx, brunoRef, false)

	// Another browser profile signed in as the same user: another window
	// or another device.
	second := newProfile(t, aCtx)
	joined := openAndJoin(t, second, n, conf.ID, brunoTok)
	waitText(t, second, "#call-status", "Connected.")
	waitText(t, first, "#call-status", "You joined this conference from another window or device, which took over from this one.")
	if eval[bool](t, first, `window.__pcs.some((pc) => pc.connectionState !== 'closed')`) {
		t.Error("the replaced window keeps a peer connection open")
	}
	t.Logf("second window: Alice decodes it %v after the click on Join", decodedAfter(t, aCtx, brunoRef, joined).Round(time.Millisecond))
	waitMedia(t, aCtx, brunoRef, false)
	waitMedia(t, second, "alice@"+n.DID(), false)
	oneTile(t, aCtx, brunoRef)
	// The first window stays out: it does not reconnect and take it back.
	waitFor(t, first, 10*time.Second, `document.querySelector('#call-back') && !document.querySelector('#call-back').hidden`)
	if s := eval[string](t, first, `document.querySelector('#call-status').textContent`); s != "You joined this conference from another window or device, which took over from this one." {
		t.Errorf("first window's status %q", s)
	}
}
