package web_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
)

// holdFirstMediaRequest makes the page's first getUserMedia wait until
// window.__answerPrompt() is called, as it does while the browser's
// permission prompt is open; it then gets the devices.
const holdFirstMediaRequest = `(() => {
  const md = navigator.mediaDevices;
  if (!md) return;
  const real = md.getUserMedia.bind(md);
  let answer;
  const answered = new Promise((resolve) => { answer = resolve; });
  window.__answerPrompt = () => answer();
  let first = true;
  md.getUserMedia = async (c) => {
    if (first) {
      first = false;
      await answered;
    }
    return real(c);
  };
})()`

// TestBrowserJoinBeforeDevicesReady: while the browser has not answered
// for the camera and microphone, the pre-join screen says it is starting
// the camera and Join waits, unless the user chooses to go on without
// them. Joined that way, the user turns the microphone and camera on from
// the call, and the other participant receives both.
func TestBrowserJoinBeforeDevicesReady(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	_, brunoTok := nodetest.User(t, n, "bruno", "Bruno Lefèvre")
	conf, err := n.Federation().Create(context.Background(), alice, federation.CreateContent{Title: "Point presse"})
	if err != nil {
		t.Fatal(err)
	}
	aCtx := callBrowser(t, n)
	enterCall(t, aCtx, n, conf.ID, aliceTok, true)

	bCtx := newProfile(t, aCtx)
	if _, err := cdp.Call(bCtx, chromedp.FromContext(bCtx).Target, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: holdFirstMediaRequest}); err != nil {
		t.Fatalf("hold getUserMedia: %v", err)
	}
	run(t, bCtx, chromedp.Navigate(n.PublicURL()+"/app/conference/"+conf.ID+"#token="+brunoTok))
	setLanguage(t, bCtx, "en")
	waitText(t, bCtx, "#prejoin-devices", "Starting camera…")
	waitText(t, bCtx, "h1", "Join “Point presse”") // the conference is known
	if !eval[bool](t, bCtx, `document.querySelector('#join').disabled`) {
		t.Fatal("Join is clickable while the camera is starting")
	}
	if !eval[bool](t, bCtx, shown("#skip-devices")) {
		t.Fatal("no way to go on without the camera while it starts")
	}
	screenshot(t, bCtx, "prejoin-starting")

	// The user goes on without them; the prompt is answered after Join.
	click(t, bCtx, "#skip-devices")
	waitFor(t, bCtx, 10*time.Second, `!document.querySelector('#join').disabled && !document.querySelector('#prejoin-devices').checkVisibility()`)
	eval[bool](t, bCtx, recordPeerConnections)
	click(t, bCtx, "#join")
	waitText(t, bCtx, "#call-status", "Connected.")
	eval[bool](t, bCtx, `(window.__answerPrompt(), true)`)
	for _, id := range []string{"call-mic", "call-camera"} {
		if eval[bool](t, bCtx, `document.getElementById(`+quote(id)+`).disabled`) {
			t.Errorf("#%s is disabled in the call", id)
		}
		pressed(t, bCtx, id, false)
	}

	// Now the devices are turned on from the call.
	brunoRef := "bruno@" + n.DID()
	click(t, bCtx, "#call-mic")
	pressed(t, bCtx, "call-mic", true)
	click(t, bCtx, "#call-camera")
	pressed(t, bCtx, "call-camera", true)
	waitMedia(t, aCtx, brunoRef, false)
	me := `#stage .tile[data-user=` + quote(brunoRef) + `][data-source=camera]`
	waitFor(t, bCtx, 10*time.Second, `(() => { const v = document.querySelector(`+quote(me+" video")+`); return v && v.videoWidth > 0 })()`)
	waitFor(t, aCtx, 10*time.Second, `!document.querySelector(`+quote(me)+`).classList.contains('video-off')`)
	waitFor(t, aCtx, 10*time.Second, `!document.querySelector(`+quote(me+" .badge.muted")+`)`)
	// Only the call's own devices run: the stream the pre-join screen got
	// late was stopped.
	if n := eval[int](t, bCtx, `window.__pcs.flatMap((pc) => pc.getSenders()).filter((s) => s.track && s.track.readyState === 'live').length`); n != 2 {
		t.Errorf("Bruno sends %d live tracks, want 2", n)
	}
}
