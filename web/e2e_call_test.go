package web_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
)

// callBrowser is browser with screen capture accepted without a prompt and
// media playing without a gesture.
func callBrowser(t *testing.T, nodes ...*nodetest.Node) context.Context {
	t.Helper()
	return browserWith(t, []chromedp.ExecAllocatorOption{
		chromedp.Flag("auto-select-desktop-capture-source", "Entire screen"),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.WindowSize(1280, 720),
	}, nodes...)
}

// noScroll checks that the page fits a w×h window without scrolling, the
// window being resized (as a phone's screen) for the check.
func noScroll(t *testing.T, ctx context.Context, w, hgt int64) {
	t.Helper()
	target := chromedp.FromContext(ctx).Target
	if _, err := cdp.Call(ctx, target, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: w, Height: hgt, DeviceScaleFactor: 1}); err != nil {
		t.Fatalf("resize to %dx%d: %v", w, hgt, err)
	}
	defer cdp.Call(ctx, target, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
	js := `(() => { const e = document.scrollingElement; return innerWidth === ` + fmt.Sprint(w) + ` && e.scrollHeight <= innerHeight && e.scrollWidth <= innerWidth })()`
	c, cancel := context.WithTimeout(ctx, minWait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(minWait))); err != nil {
		size := eval[string](t, ctx, `(() => { const e = document.scrollingElement; const wide = [...document.querySelectorAll('body *')].filter((x) => x.getBoundingClientRect().right > innerWidth + 1 || x.getBoundingClientRect().bottom > innerHeight + 1).slice(0, 5).map((x) => x.tagName + '#' + x.id + '.' + x.className.baseVal ?? x.className); return innerWidth + 'x' + innerHeight + ' window, page ' + e.scrollWidth + 'x' + e.scrollHeight + ', beyond it: ' + wide.join(' ') })()`)
		t.Errorf("the call screen scrolls at %dx%d: %s", w, hgt, size)
	}
	// The control bar is on screen, at the bottom.
	if !eval[bool](t, ctx, `(() => { const r = document.querySelector('#call-controls').getBoundingClientRect(); return r.bottom <= innerHeight + 1 && r.bottom >= innerHeight - 30 })()`) {
		t.Errorf("the control bar is not at the bottom of the %dx%d window", w, hgt)
	}
}

// recordPeerConnections keeps every RTCPeerConnection the page makes, so
// that the test reads the browser's own statistics.
const recordPeerConnections = `(() => {
  if (window.__pcs) return true;
  window.__pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Native.prototype;
  return true;
})()`

// received is what one browser decodes of another user's media, from
// RTCPeerConnection.getStats of the tracks its tiles and audio play.
type received struct {
	Camera float64 `json:"camera"`
	Screen float64 `json:"screen"`
	Audio  float64 `json:"audio"`
}

func mediaFrom(t *testing.T, ctx context.Context, user string) received {
	t.Helper()
	js := fmt.Sprintf(`(async (user) => {
  const stats = {};
  for (const pc of window.__pcs ?? []) {
    if (pc.connectionState === 'closed') continue;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp') stats[s.trackIdentifier] = s; });
  }
  const id = (sel) => document.querySelector(sel)?.srcObject?.getTracks()[0]?.id;
  const u = JSON.stringify(user);
  const tile = (source) => stats[id('#stage .tile[data-user=' + u + '][data-source=' + source + '] video')];
  const audio = stats[id('#sounds audio[data-user=' + u + ']')];
  return { camera: tile('camera')?.framesDecoded ?? 0, screen: tile('screen')?.framesDecoded ?? 0, audio: audio?.packetsReceived ?? 0 };
})(%s)`, quote(user))
	c, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[received](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	return v
}

// waitMedia waits until ctx decodes user's camera and audio (and screen
// when asked), then checks that it keeps arriving a second later.
func waitMedia(t *testing.T, ctx context.Context, user string, screen bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var first received
	for {
		first = mediaFrom(t, ctx, user)
		ok := first.Camera > 0 && first.Audio > 0 && (!screen || first.Screen > 0)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			state := eval[string](t, ctx, `JSON.stringify({stage: document.querySelector('#stage')?.outerHTML, sounds: document.querySelector('#sounds')?.outerHTML, pcs: (window.__pcs ?? []).map((pc) => [pc.connectionState, pc.getTransceivers().map((x) => [x.mid, x.direction, x.currentDirection, x.receiver.track.id])])})`)
			t.Fatalf("media of %s not decoded: %+v; page: %s", user, first, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Then every stream keeps decoding. A layer switch waits for a keyframe,
	// so a stream may pause briefly on a loaded machine: it has 30 s to grow.
	growing := time.Now().Add(30 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		second := mediaFrom(t, ctx, user)
		if second.Camera > first.Camera && second.Audio > first.Audio && (!screen || second.Screen > first.Screen) {
			return
		}
		if time.Now().After(growing) {
			t.Fatalf("media of %s stopped: %+v then %+v", user, first, second)
		}
	}
}

// enterCall opens the conference's link signed in with token, joins from
// the pre-join screen and waits for the call screen.
func enterCall(t *testing.T, ctx context.Context, n *nodetest.Node, confID, token string, admitted bool) {
	t.Helper()
	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/app/conference/"+confID+"#token="+token))
	setLanguage(t, ctx, "en")
	waitFor(t, ctx, 20*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	// The camera is handed to the call once it plays.
	waitFor(t, ctx, 20*time.Second, `(() => { const v = document.querySelector('#preview'); return v && v.readyState >= 2 && v.videoWidth > 0 })()`)
	eval[bool](t, ctx, recordPeerConnections)
	run(t, ctx, chromedp.Click(chromedp.CSS("#join")))
	if admitted {
		waitText(t, ctx, "#call-status", "Connected.")
	}
}

func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	run(t, ctx, chromedp.Click(chromedp.CSS(sel)))
}

// callScenario follows a host's moderator and a second participant through
// a call: media both ways, a screen share, chat, a raised hand, a mute, and
// removal. With remote set, the second participant signs in on another
// institution's node and, the lobby being on, waits to be admitted.
func callScenario(t *testing.T, remote bool) {
	requireChromium(t)
	f := nodetest.New(t)
	ministry := f.Start(t, "Ministère de la Coordination", nil)
	guestNode := ministry
	if remote {
		guestNode = f.Start(t, "Agence nationale de la statistique", nil)
		nodetest.Trust(t, ministry, guestNode)
	}
	alice, aliceToken := nodetest.User(t, ministry, "alice", "Alice Martin")
	bruno, brunoToken := nodetest.User(t, guestNode, "bruno", "Bruno Lefèvre")
	aliceRef := "alice@" + ministry.DID()
	brunoRef := "bruno@" + guestNode.DID()

	ctx := context.Background()
	conf, err := ministry.Federation().Create(ctx, alice, federation.CreateContent{Title: "Point hebdomadaire", Lobby: remote})
	if err != nil {
		t.Fatal(err)
	}
	if remote {
		if _, err := ministry.Federation().Invite(ctx, alice, conf.ID, guestNode.DID(), nil); err != nil {
			t.Fatal(err)
		}
		nodetest.Eventually(t, minWait, "the invitation at the agency", func() bool {
			_, err := guestNode.Store().GetConference(ctx, conf.ID)
			return err == nil
		})
		if _, _, err := guestNode.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
			t.Fatal(err)
		}
	}

	aCtx := callBrowser(t, ministry, guestNode)
	bCtx := newProfile(t, aCtx)
	enterCall(t, aCtx, ministry, conf.ID, aliceToken, true)
	if eval[bool](t, aCtx, `document.querySelector('#call-moderation').hidden`) {
		t.Fatal("the conference's creator is shown no moderation controls")
	}

	enterCall(t, bCtx, guestNode, conf.ID, brunoToken, !remote)
	if remote {
		// The lobby: the guest waits, the host's moderator admits them.
		waitText(t, bCtx, "#call-waiting", "Waiting to be admitted. A moderator of the host will let you in.")
		click(t, aCtx, "#call-people")
		waiting := fmt.Sprintf(`#lobby-list li[data-user=%s]`, quote(brunoRef))
		waitFor(t, aCtx, 20*time.Second, fmt.Sprintf(`document.querySelector(%s)`, quote(waiting)))
		waitText(t, aCtx, waiting+" .meta", "Agence nationale de la statistique")
		screenshot(t, aCtx, "call-lobby")
		screenshot(t, bCtx, "call-waiting")
		clickInList(t, aCtx, waiting+" button.primary")
		waitText(t, bCtx, "#call-status", "Connected.")
		click(t, aCtx, "#call-people")
	}

	// Each receives the other's camera and microphone.
	waitMedia(t, aCtx, brunoRef, false)
	waitMedia(t, bCtx, aliceRef, false)
	org := guestNode.Name()
	waitText(t, aCtx, fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera] .tile-org`, quote(brunoRef)), org)
	screenshot(t, aCtx, "call-grid")
	// The stage fills the window; nothing scrolls, on a laptop or a phone.
	noScroll(t, aCtx, 1280, 720)
	noScroll(t, aCtx, 360, 740)

	// With the host's microphone off, the guest's (the fake device's tone)
	// is the loudest: the host sees the guest's tile highlighted as the
	// active speaker, also when the guest's audio comes over a trunk.
	click(t, aCtx, "#call-mic")
	waitFor(t, aCtx, 20*time.Second, fmt.Sprintf(`document.querySelector('#stage .tile.speaking[data-user=%s][data-source=camera]')`, quote(brunoRef)))
	click(t, aCtx, "#call-mic")

	// A screen share from the guest reaches the host.
	click(t, bCtx, "#call-share")
	waitText(t, bCtx, "#call-share", "Stop sharing")
	waitMedia(t, aCtx, brunoRef, true)
	// The share becomes the main view, the cameras a strip below it.
	waitFor(t, aCtx, 10*time.Second, fmt.Sprintf(`document.querySelector('#stage.has-screen .tile.featured[data-user=%s][data-source=screen]')`, quote(brunoRef)))
	if !eval[bool](t, aCtx, `(() => { const main = document.querySelector('#stage .tile.featured').getBoundingClientRect(); return [...document.querySelectorAll('#stage .tile:not(.featured)')].every((x) => x.getBoundingClientRect().top >= main.bottom - 1 && x.getBoundingClientRect().height < main.height / 2) })()`) {
		t.Error("the cameras are not in a strip below the shared screen")
	}
	noScroll(t, aCtx, 1280, 720)
	screenshot(t, aCtx, "call-share")
	click(t, aCtx, "#call-layout")
	waitFor(t, aCtx, 5*time.Second, fmt.Sprintf(`document.querySelector('#stage.layout-speaker .tile.featured[data-user=%s][data-source=screen]')`, quote(brunoRef)))
	screenshot(t, aCtx, "call-speaker")
	// Stopping withdraws the track: its tile goes on the other side. A new
	// share is published afresh and arrives again.
	screenTile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=screen]`, quote(brunoRef))
	click(t, bCtx, "#call-share")
	waitFor(t, aCtx, 10*time.Second, fmt.Sprintf(`!document.querySelector(%s)`, quote(screenTile)))
	click(t, bCtx, "#call-share")
	waitText(t, bCtx, "#call-share", "Stop sharing")
	waitMedia(t, aCtx, brunoRef, true)
	click(t, bCtx, "#call-share")
	waitFor(t, aCtx, 10*time.Second, fmt.Sprintf(`!document.querySelector(%s)`, quote(screenTile)))

	// Chat crosses with its author's name and organisation.
	click(t, aCtx, "#call-chat")
	run(t, aCtx,
		chromedp.SendKeys(chromedp.CSS("#chat-input"), "Bonjour à tous"),
		chromedp.Click(chromedp.CSS("#chat-send")))
	click(t, bCtx, "#call-chat")
	waitText(t, bCtx, "#chat-messages li:last-child .chat-text", "Bonjour à tous")
	waitText(t, bCtx, "#chat-messages li:last-child .chat-name", "Alice Martin")
	waitText(t, bCtx, "#chat-messages li:last-child .chat-org", "Ministère de la Coordination")
	screenshot(t, bCtx, "call-chat")

	// A raised hand and a muted microphone show on the other side.
	brunoTile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote(brunoRef))
	click(t, bCtx, "#call-hand")
	waitText(t, aCtx, brunoTile+" .badge.hand", "Hand raised")
	click(t, bCtx, "#call-mic")
	waitText(t, aCtx, brunoTile+" .badge.muted", "Microphone off")
	if on := eval[bool](t, bCtx, `document.querySelector('#call-mic').getAttribute('aria-pressed') === 'true'`); on {
		t.Error("microphone button still pressed after muting")
	}

	// Removal ends the guest's media: their tile goes, they are told.
	click(t, aCtx, "#call-people")
	clickInList(t, aCtx, fmt.Sprintf(`#people-list li[data-user=%s] button.danger`, quote(brunoRef)))
	waitText(t, bCtx, "#call-status", "A moderator removed you from this conference.")
	waitFor(t, aCtx, 20*time.Second, fmt.Sprintf(`!document.querySelector(%s)`, quote(brunoTile)))
	if n := eval[int](t, bCtx, `document.querySelectorAll('#stage .tile').length`); n != 0 {
		t.Errorf("the removed user still shows %d tiles", n)
	}
}

func TestBrowserCallOneNode(t *testing.T) {
	callScenario(t, false)
}

func TestBrowserCallTwoNodes(t *testing.T) {
	callScenario(t, true)
}
