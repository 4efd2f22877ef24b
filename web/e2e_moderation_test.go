package web_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/entente-org/entente/federation"
	"github.com/entente-org/entente/internal/nodetest"
)

// recordTexts keeps every text the live region (#announcer) and the call's
// status line show, in order: both change faster than a test polls, and a
// later message may replace the one the test looks for.
const recordTexts = `(() => {
  if (window.__said) return true;
  window.__said = [];
  window.__statuses = [];
  const announcer = document.getElementById('announcer');
  new MutationObserver(() => {
    const s = announcer.textContent;
    if (s) window.__said.push(s);
  }).observe(announcer, { childList: true, characterData: true, subtree: true });
  new MutationObserver(() => {
    const s = document.getElementById('call-status')?.textContent;
    if (s && window.__statuses.at(-1) !== s) window.__statuses.push(s);
  }).observe(document.getElementById('main'), { childList: true, characterData: true, subtree: true });
  return true;
})()`

// waitAnnounced waits until the live region has said text.
func waitAnnounced(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	js := fmt.Sprintf(`(window.__said ?? []).includes(%s)`, quote(text))
	c, cancel := context.WithTimeout(ctx, minWait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(minWait))); err != nil {
		t.Fatalf("never announced %q; announced: %s", text, eval[string](t, ctx, `JSON.stringify(window.__said ?? null)`))
	}
}

// federatedCall is a conference of the ministry's node that the agency's
// node has accepted, with its users' tokens.
type federatedCall struct {
	ministry, agency   *nodetest.Node
	conf               string
	aliceRef, brunoRef string
	aliceTok, brunoTok string
}

// newFederatedCall starts two trusting nodes and a conference of the
// ministry (its lobby off) that the agency has accepted.
func newFederatedCall(t *testing.T, title string) *federatedCall {
	t.Helper()
	requireChromium(t)
	f := nodetest.New(t)
	ministry := f.Start(t, "Ministère de la Coordination", nil)
	agency := f.Start(t, "Agence nationale de la statistique", nil)
	nodetest.Trust(t, ministry, agency)
	alice, aliceTok := nodetest.User(t, ministry, "alice", "Alice Martin")
	bruno, brunoTok := nodetest.User(t, agency, "bruno", "Bruno Lefèvre")
	ctx := context.Background()
	conf, err := ministry.Federation().Create(ctx, alice, federation.CreateContent{Title: title})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ministry.Federation().Invite(ctx, alice, conf.ID, agency.DID(), nil); err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, minWait, "the invitation at the agency", func() bool {
		_, err := agency.Store().GetConference(ctx, conf.ID)
		return err == nil
	})
	if _, _, err := agency.Federation().Answer(ctx, bruno, conf.ID, true); err != nil {
		t.Fatal(err)
	}
	return &federatedCall{
		ministry: ministry, agency: agency, conf: conf.ID,
		aliceRef: "alice@" + ministry.DID(), brunoRef: "bruno@" + agency.DID(),
		aliceTok: aliceTok, brunoTok: brunoTok,
	}
}

// enterRecorded is enterCall for a participant who is let in, with the
// live region and the status recorded from the page's start.
func enterRecorded(t *testing.T, ctx context.Context, n *nodetest.Node, confID, token string) {
	t.Helper()
	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/app/conference/"+confID+"#token="+token))
	eval[bool](t, ctx, recordTexts)
	setLanguage(t, ctx, "en")
	waitFor(t, ctx, 20*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	waitFor(t, ctx, 20*time.Second, `(() => { const v = document.querySelector('#preview'); return v && v.readyState >= 2 && v.videoWidth > 0 })()`)
	eval[bool](t, ctx, recordPeerConnections)
	click(t, ctx, "#join")
	waitText(t, ctx, "#call-status", "Connected.")
}

// TestBrowserModeration follows the host's moderator and a participant of
// another institution through what a moderator does from the call screen:
// reactions cross both ways, the connection's quality shows, the moderator
// asks the remote participant to mute, locks the conference against a
// newcomer and unlocks it, then ends it for everyone.
func TestBrowserModeration(t *testing.T) {
	fc := newFederatedCall(t, "Comité de pilotage")
	aCtx := callBrowser(t, fc.ministry, fc.agency)
	bCtx := newProfile(t, aCtx)
	enterRecorded(t, aCtx, fc.ministry, fc.conf, fc.aliceTok)
	enterRecorded(t, bCtx, fc.agency, fc.conf, fc.brunoTok)
	waitMedia(t, aCtx, fc.brunoRef, false)
	waitMedia(t, bCtx, fc.aliceRef, false)
	// Only the host's moderator sees the moderation controls.
	if !eval[bool](t, aCtx, shown("#call-moderation")) || eval[bool](t, bCtx, shown("#call-moderation")) {
		t.Error("the moderation controls show to the wrong person")
	}
	aliceTile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote(fc.aliceRef))
	brunoTile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote(fc.brunoRef))

	// Bruno's system asks for reduced motion: reactions appear without
	// their rising animation for him, and with it for Alice.
	if _, err := cdp.Call(bCtx, chromedp.FromContext(bCtx).Target, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}},
	}); err != nil {
		t.Fatalf("emulate reduced motion: %v", err)
	}

	// Reactions: each side sees the other's on their tile, and hears it.
	click(t, bCtx, `#call-controls button.reaction[data-reaction="👏"]`)
	waitFor(t, aCtx, 10*time.Second, fmt.Sprintf(`document.querySelector(%s)?.textContent === '👏'`, quote(brunoTile+" .reaction-bubble")))
	animation := func(ctx context.Context, tile string) string {
		return eval[string](t, ctx, fmt.Sprintf(`(() => { const b = document.querySelector(%s); return b ? b.className + ' / ' + getComputedStyle(b).animationName : 'gone'; })()`, quote(tile+" .reaction-bubble")))
	}
	rising := animation(aCtx, brunoTile)
	waitAnnounced(t, aCtx, "Bruno Lefèvre reacted: 👏")
	waitAnnounced(t, bCtx, "Bruno Lefèvre (you) reacted: 👏")
	click(t, aCtx, `#call-controls button.reaction[data-reaction="🎉"]`)
	waitFor(t, bCtx, 10*time.Second, fmt.Sprintf(`document.querySelector(%s)?.textContent === '🎉'`, quote(aliceTile+" .reaction-bubble")))
	waitAnnounced(t, bCtx, "Alice Martin reacted: 🎉")
	if got := animation(bCtx, aliceTile); got != "reaction-bubble / none" {
		t.Errorf("with reduced motion, the reaction is %q, want no animation", got)
	}
	if rising != "reaction-bubble animated / rise" {
		t.Errorf("without reduced motion, the reaction is %q, want it rising", rising)
	}
	if label := eval[string](t, bCtx, `document.querySelector('#call-controls button.reaction[data-reaction="👏"]').getAttribute('aria-label')`); label != "React with 👏" {
		t.Errorf("reaction button label %q", label)
	}

	// The quality indicator leaves "measuring" for a level and its numbers.
	checkQuality(t, aCtx)
	checkQuality(t, bCtx)

	// The moderator asks the remote participant to mute: their microphone
	// goes off on their side (they are told why) and the host sees it.
	if on := eval[bool](t, bCtx, `document.querySelector('#call-mic').getAttribute('aria-pressed') === 'true'`); !on {
		t.Fatal("the participant's microphone is off before the request")
	}
	click(t, aCtx, "#call-people")
	clickInList(t, aCtx, fmt.Sprintf(`#people-list li[data-user=%s] button:not(.danger)`, quote(fc.brunoRef)))
	waitText(t, aCtx, "#people-result", "Bruno Lefèvre was asked to mute.")
	waitText(t, bCtx, "#call-alert", "A moderator muted your microphone. Turn it back on when you need to speak.")
	waitFor(t, bCtx, 10*time.Second, `document.querySelector('#call-mic').getAttribute('aria-pressed') === 'false'`)
	if live := eval[bool](t, bCtx, `window.__pcs.some((pc) => pc.getSenders().some((s) => s.track?.kind === 'audio' && s.track.enabled))`); live {
		t.Error("the muted participant still sends a live microphone track")
	}
	waitText(t, aCtx, brunoTile+" .badge.muted", "Microphone off")
	waitText(t, aCtx, fmt.Sprintf(`#people-list li[data-user=%s] .badge.muted`, quote(fc.brunoRef)), "Microphone off")

	lockAndUnlock(t, fc, aCtx)

	// Ending: the confirm step first, then every screen says it has ended
	// and shows no one any more.
	click(t, aCtx, "#call-moderation")
	click(t, aCtx, "#mod-end")
	waitFor(t, aCtx, 5*time.Second, `!document.querySelector('#mod-end-confirm').hidden && document.activeElement?.id === 'mod-end-confirm'`)
	waitText(t, aCtx, "#mod-end-confirm", "Confirm: end the conference")
	click(t, aCtx, "#mod-end-confirm")
	for _, c := range []context.Context{aCtx, bCtx} {
		waitText(t, c, "#call-status", "This conference has ended.")
		waitText(t, c, "#call-alert", "This conference has ended.")
		waitFor(t, c, 10*time.Second, `document.querySelectorAll('#stage .tile, #sounds audio').length === 0`)
		for _, sel := range []string{".call-area", "#call-controls", "#moderation"} {
			if eval[bool](t, c, shown(sel)) {
				t.Errorf("%s still shows after the end", sel)
			}
		}
		if !eval[bool](t, c, shown("#call-back")) {
			t.Error("no way back to the conferences after the end")
		}
	}
	screenshot(t, bCtx, "call-ended")
	if eval[bool](t, bCtx, `window.__pcs.some((pc) => pc.connectionState !== 'closed')`) {
		t.Error("a peer connection is still open after the end")
	}
}

// shown is a JavaScript test that the element is on screen: the hidden
// attribute alone says nothing if a style overrides it.
func shown(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.getClientRects().length > 0 })()`, quote(sel))
}

// checkQuality waits for the quality indicator to show a level, with the
// text that goes with it.
func checkQuality(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, 20*time.Second, `['good', 'fair', 'poor'].includes(document.querySelector('#call-quality').dataset.level)`)
	level := eval[string](t, ctx, `document.querySelector('#call-quality').dataset.level`)
	text := eval[string](t, ctx, `document.querySelector('#call-quality').textContent`)
	re := regexp.MustCompile(`^Connection: ` + level + ` \(\d+\.\d % lost, \d+ ms\)$`)
	if !re.MatchString(text) {
		t.Errorf("quality %s shown as %q", level, text)
	}
}

// lockAndUnlock: the moderator locks the conference from the call screen; a
// colleague of the participant who had not joined yet is refused with a
// message that says why; once unlocked, she joins.
func lockAndUnlock(t *testing.T, fc *federatedCall, aCtx context.Context) {
	t.Helper()
	_, chloeTok := nodetest.User(t, fc.agency, "chloe", "Chloé Bernard")
	cCtx := newProfile(t, aCtx)
	run(t, cCtx, chromedp.Navigate(fc.agency.PublicURL()+"/app/conference/"+fc.conf+"#token="+chloeTok))
	setLanguage(t, cCtx, "en")
	waitFor(t, cCtx, 20*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)

	// The moderators' actions open from the toolbar, each saying what it
	// does.
	click(t, aCtx, "#call-moderation")
	focused(t, aCtx, "mod-lock")
	waitText(t, aCtx, "#mod-lock", "Lock the conference")
	waitText(t, aCtx, "#mod-lobby", "Turn the lobby on")
	click(t, aCtx, "#mod-lock")
	waitText(t, aCtx, "#people-result", "Done.")
	// The action done, the menu closes and the focus goes back to its
	// button; opened again, the item says what it would do now.
	focused(t, aCtx, "call-moderation")
	if eval[bool](t, aCtx, shown("#moderation")) {
		t.Error("the moderation menu stays open after locking")
	}
	click(t, aCtx, "#call-moderation")
	waitText(t, aCtx, "#mod-lock", "Unlock the conference")
	// The newcomer's node learns of the lock from the host's record.
	ctx := context.Background()
	nodetest.Eventually(t, minWait, "the lock at the agency", func() bool {
		c, err := fc.agency.Store().GetConference(ctx, fc.conf)
		return err == nil && c.Locked
	})
	click(t, cCtx, "#join")
	waitText(t, cCtx, "#prejoin-message", "This conference is locked: no one else may join for now. Ask a moderator of the host to unlock it, then try again.")
	if disabled := eval[bool](t, cCtx, `document.querySelector('#join').disabled`); disabled {
		t.Error("the join button stays disabled after the refusal")
	}
	screenshot(t, cCtx, "prejoin-locked")
	// Opened while locked, the screen says so before anyone tries.
	run(t, cCtx, chromedp.Reload())
	waitText(t, cCtx, "#prejoin-message", "This conference is locked: no one else may join for now. Ask a moderator of the host to unlock it, then try again.")
	waitFor(t, cCtx, 20*time.Second, `!document.querySelector('#join').disabled`)

	click(t, aCtx, "#mod-lock")
	click(t, aCtx, "#call-moderation")
	waitText(t, aCtx, "#mod-lock", "Lock the conference")
	press(t, aCtx, kb.Escape)
	nodetest.Eventually(t, minWait, "the unlock at the agency", func() bool {
		c, err := fc.agency.Store().GetConference(ctx, fc.conf)
		return err == nil && !c.Locked
	})
	click(t, cCtx, "#join")
	waitText(t, cCtx, "#call-status", "Connected.")
	chloeRef := "chloe@" + fc.agency.DID()
	waitFor(t, aCtx, 15*time.Second, fmt.Sprintf(`document.querySelector('#people-list li[data-user=%s]')`, quote(chloeRef)))
	// She leaves again, so that the rest of the scenario has two browsers.
	click(t, cCtx, "#call-leave")
	waitText(t, cCtx, "#call-status", "You left the call.")
	waitFor(t, aCtx, 15*time.Second, fmt.Sprintf(`!document.querySelector('#people-list li[data-user=%s]')`, quote(chloeRef)))
}

// TestBrowserReconnect restarts the participant's own node in the middle of
// a call across two nodes: their WebSocket and peer connections die with
// it. The client says it is reconnecting, comes back by itself, and media
// flows both ways again through the restarted node. This is the two-node
// variant on purpose: the cascade between the nodes must come back too,
// not only the participant's own session.
func TestBrowserReconnect(t *testing.T) {
	fc := newFederatedCall(t, "Réunion de service")
	aCtx := callBrowser(t, fc.ministry, fc.agency)
	bCtx := newProfile(t, aCtx)
	enterRecorded(t, aCtx, fc.ministry, fc.conf, fc.aliceTok)
	enterRecorded(t, bCtx, fc.agency, fc.conf, fc.brunoTok)
	waitMedia(t, aCtx, fc.brunoRef, false)
	waitMedia(t, bCtx, fc.aliceRef, false)

	fc.agency.Stop(t)
	waitFor(t, bCtx, 20*time.Second, `/^The connection was lost\. Reconnecting in \d+ s…$/.test(document.querySelector('#call-status').textContent)`)
	fc.agency = fc.agency.Restart(t)
	waitText(t, bCtx, "#call-status", "Connected.")
	statuses := eval[[]string](t, bCtx, `window.__statuses`)
	// Connecting, connected, one or more countdowns, connected again.
	reconnecting := regexp.MustCompile(`^The connection was lost\. Reconnecting in \d+ s…$`)
	ok := len(statuses) >= 4 && statuses[0] == "Connecting…" && statuses[1] == "Connected." && statuses[len(statuses)-1] == "Connected."
	for i := 2; ok && i < len(statuses)-1; i++ {
		ok = reconnecting.MatchString(statuses[i])
	}
	if !ok {
		t.Errorf("statuses %q", statuses)
	}
	waitMedia(t, bCtx, fc.aliceRef, false)
	waitMedia(t, aCtx, fc.brunoRef, false)
}

// TestBrowserMediaDenied: a browser that refuses the camera and microphone
// (the user said no) gets the pre-join message that says how to allow them,
// and can still join to listen and watch; the others see them muted.
func TestBrowserMediaDenied(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	_, chloeTok := nodetest.User(t, n, "chloe", "Chloé Bernard")
	conf, err := n.Federation().Create(context.Background(), alice, federation.CreateContent{Title: "Point presse"})
	if err != nil {
		t.Fatal(err)
	}
	aCtx := callBrowser(t, n)
	enterRecorded(t, aCtx, n, conf.ID, aliceTok)

	// A browser of its own, without the flag that answers every permission
	// prompt with yes; the permissions are then set to "denied", as after a
	// user's refusal.
	cCtx := browserWith(t, []chromedp.ExecAllocatorOption{
		chromedp.Flag("use-fake-ui-for-media-stream", false),
		chromedp.WindowSize(1280, 900),
	}, n)
	for _, name := range []string{"camera", "microphone"} {
		c := chromedp.FromContext(cCtx)
		_, err := cdp.Call(cCtx, c.Browser, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: cdpbrowser.PermissionSettingDenied,
			Origin: n.PublicURL(), BrowserContextID: c.BrowserContextID,
		})
		if err != nil {
			t.Fatalf("deny %s: %v", name, err)
		}
	}
	run(t, cCtx, chromedp.Navigate(n.PublicURL()+"/app/conference/"+conf.ID+"#token="+chloeTok))
	setLanguage(t, cCtx, "en")
	waitText(t, cCtx, "#prejoin-message", "Your browser did not allow the camera and microphone. Allow them using the icon in the address bar, then reload the page. You can still join without them.")
	waitFor(t, cCtx, 20*time.Second, `!document.querySelector('#join').disabled`)
	if src := eval[bool](t, cCtx, `!!document.querySelector('#preview').srcObject`); src {
		t.Error("the preview plays a stream the browser refused")
	}
	for _, id := range []string{"toggle-mic", "toggle-camera"} {
		if on := eval[bool](t, cCtx, fmt.Sprintf(`(() => { const b = document.getElementById(%s); return !b.disabled || b.getAttribute('aria-pressed') !== 'false' })()`, quote(id))); on {
			t.Errorf("#%s offers a device the browser refused", id)
		}
	}
	screenshot(t, cCtx, "prejoin-denied")

	eval[bool](t, cCtx, recordPeerConnections)
	click(t, cCtx, "#join")
	waitText(t, cCtx, "#call-status", "Connected.")
	// The devices are off, never disabled for good: asking again while the
	// browser still refuses says so.
	for _, id := range []string{"call-mic", "call-camera"} {
		if eval[bool](t, cCtx, fmt.Sprintf(`(() => { const b = document.getElementById(%s); return b.disabled || b.getAttribute('aria-pressed') !== 'false' })()`, quote(id))) {
			t.Errorf("#%s is disabled or shown on without a device", id)
		}
	}
	click(t, cCtx, "#call-camera")
	waitText(t, cCtx, "#call-alert", "Your camera or microphone could not be started. Allow it using the icon in the address bar, then try again.")
	pressed(t, cCtx, "call-camera", false)
	// Chloé receives Alice, and Alice sees Chloé: her initials, muted.
	waitMedia(t, cCtx, "alice@"+n.DID(), false)
	chloeTile := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote("chloe@"+n.DID()))
	waitFor(t, aCtx, 15*time.Second, fmt.Sprintf(`document.querySelector(%s)?.classList.contains('video-off')`, quote(chloeTile)))
	waitText(t, aCtx, chloeTile+" .tile-placeholder", "CB")
	waitText(t, aCtx, chloeTile+" .badge.muted", "Microphone off")
}

// TestBrowserKeyboardOnly joins and uses a call with the keyboard alone:
// every control is reached with Tab, in a sensible order, and works with
// Enter or Space; opening the chat puts the cursor in its input.
func TestBrowserKeyboardOnly(t *testing.T) {
	requireChromium(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	alice, aliceTok := nodetest.User(t, n, "alice", "Alice Martin")
	conf, err := n.Federation().Create(context.Background(), alice, federation.CreateContent{Title: "Point presse"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := callBrowser(t, n)
	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/app/conference/"+conf.ID+"#token="+aliceTok))
	eval[bool](t, ctx, recordTexts)
	setLanguage(t, ctx, "en")
	waitFor(t, ctx, 20*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	waitFor(t, ctx, 20*time.Second, `(() => { const v = document.querySelector('#preview'); return v && v.readyState >= 2 && v.videoWidth > 0 })()`)
	eval[bool](t, ctx, recordPeerConnections)

	// From the top of the page: the skip link and the banner, then the
	// pre-join form down to Join.
	if active := eval[string](t, ctx, `document.activeElement.tagName`); active != "BODY" {
		t.Fatalf("the pre-join screen opens with the focus on %s", active)
	}
	press(t, ctx, kb.Tab)
	if cls := eval[string](t, ctx, `document.activeElement.className`); cls != "skip-link" {
		t.Fatalf("the first Tab lands on %q, want the skip link", cls)
	}
	for _, id := range []string{"language", "sign-out", "display-name", "camera", "microphone", "toggle-mic", "toggle-camera", "join"} {
		press(t, ctx, kb.Tab)
		focused(t, ctx, id)
	}
	press(t, ctx, kb.Enter)
	waitText(t, ctx, "#call-status", "Connected.")

	// The call screen takes the focus; the toolbar comes first.
	press(t, ctx, kb.Tab)
	focused(t, ctx, "call-mic")
	press(t, ctx, " ")
	pressed(t, ctx, "call-mic", false)
	waitAnnounced(t, ctx, "Microphone off.")
	press(t, ctx, kb.Tab)
	focused(t, ctx, "call-camera")
	press(t, ctx, kb.Enter)
	pressed(t, ctx, "call-camera", false)
	waitAnnounced(t, ctx, "Camera off.")
	press(t, ctx, kb.Tab)
	focused(t, ctx, "call-share")
	press(t, ctx, kb.Tab)
	focused(t, ctx, "call-hand")
	press(t, ctx, " ")
	pressed(t, ctx, "call-hand", true)
	me := fmt.Sprintf(`#stage .tile[data-user=%s][data-source=camera]`, quote("alice@"+n.DID()))
	waitText(t, ctx, me+" .badge.hand", "Hand raised")
	waitText(t, ctx, me+" .badge.muted", "Microphone off")

	// Arrow keys move along the toolbar, as in any toolbar.
	press(t, ctx, kb.ArrowRight)
	if r := eval[string](t, ctx, `document.activeElement.dataset.reaction ?? ''`); r != "👍" {
		t.Fatalf("ArrowRight from the hand lands on %q, want the first reaction", r)
	}
	press(t, ctx, kb.ArrowLeft)
	focused(t, ctx, "call-hand")

	// Then the five reactions, the layout and the chat.
	for _, r := range []string{"👍", "👏", "😀", "❤️", "🎉"} {
		press(t, ctx, kb.Tab)
		if got := eval[string](t, ctx, `document.activeElement.dataset.reaction ?? document.activeElement.id`); got != r {
			t.Fatalf("Tab lands on %q, want the reaction %s", got, r)
		}
	}
	press(t, ctx, kb.Tab)
	focused(t, ctx, "call-layout")
	press(t, ctx, kb.Tab)
	focused(t, ctx, "call-chat")
	press(t, ctx, kb.Enter)
	pressed(t, ctx, "call-chat", true)
	focused(t, ctx, "chat-input")
	run(t, ctx, chromedp.KeyEvent("Bonjour"))
	press(t, ctx, kb.Enter)
	waitText(t, ctx, "#chat-messages li:last-child .chat-text", "Bonjour")
	waitText(t, ctx, "#chat-messages li:last-child .chat-name", "Alice Martin (you)")
	focused(t, ctx, "chat-input")
	if v := eval[string](t, ctx, `document.querySelector('#chat-input').value`); v != "" {
		t.Errorf("chat input keeps %q after sending", v)
	}
	moderationMenuKeys(t, ctx)
}

// moderationMenuKeys works the moderator's menu button from the keyboard,
// as the WAI-ARIA menu button pattern has it: ArrowDown opens it on the
// first item, the arrows, Home and End move, Escape closes it and gives the
// focus back, Enter opens it and activates an item, which closes it.
func moderationMenuKeys(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, 20*time.Second, `!document.querySelector('#call-moderation').hidden`)
	const state = `(() => {
  const b = document.querySelector('#call-moderation'), m = document.querySelector('#moderation');
  return [b.getAttribute('aria-haspopup'), b.getAttribute('aria-expanded'), b.getAttribute('aria-controls'),
    m.getAttribute('role'), m.getAttribute('aria-labelledby'), String(m.hidden),
    [...m.querySelectorAll('button')].map((x) => x.getAttribute('role') + ':' + x.tabIndex).join(' ')].join('|')
})()`
	if got, want := eval[string](t, ctx, state), "menu|false|moderation|menu|call-moderation|true|menuitem:-1 menuitem:-1 menuitem:-1 menuitem:-1 menuitem:-1"; got != want {
		t.Errorf("moderation menu closed: %s, want %s", got, want)
	}
	eval[bool](t, ctx, `(document.querySelector('#call-moderation').focus(), true)`)
	press(t, ctx, kb.ArrowDown)
	focused(t, ctx, "mod-lock")
	if got, want := eval[string](t, ctx, state), "menu|true|moderation|menu|call-moderation|false|menuitem:-1 menuitem:-1 menuitem:-1 menuitem:-1 menuitem:-1"; got != want {
		t.Errorf("moderation menu open: %s, want %s", got, want)
	}
	for _, step := range []struct{ key, id string }{
		{kb.ArrowDown, "mod-lobby"}, {kb.ArrowDown, "mod-end"}, {kb.ArrowDown, "mod-guests"}, {kb.ArrowDown, "mod-lock"},
		{kb.ArrowUp, "mod-guests"}, {kb.Home, "mod-lock"}, {kb.End, "mod-guests"},
	} {
		press(t, ctx, step.key)
		focused(t, ctx, step.id)
	}
	press(t, ctx, kb.Escape)
	focused(t, ctx, "call-moderation")
	if eval[bool](t, ctx, shown("#moderation")) {
		t.Fatal("Escape leaves the moderation menu open")
	}
	press(t, ctx, kb.ArrowUp)
	focused(t, ctx, "mod-guests")
	press(t, ctx, kb.Escape)
	press(t, ctx, kb.Enter)
	focused(t, ctx, "mod-lock")
	waitText(t, ctx, "#mod-lock", "Lock the conference")
	waitText(t, ctx, "#mod-lobby", "Turn the lobby on")
	press(t, ctx, kb.Enter)
	waitText(t, ctx, "#people-result", "Done.")
	focused(t, ctx, "call-moderation")
	if eval[bool](t, ctx, shown("#moderation")) {
		t.Error("the moderation menu stays open after its action")
	}
	// The item now says what it would do, in French too.
	press(t, ctx, " ")
	waitText(t, ctx, "#mod-lock", "Unlock the conference")
	setLanguage(t, ctx, "fr")
	waitText(t, ctx, "#mod-lock", "Déverrouiller la conférence")
	waitText(t, ctx, "#mod-lobby", "Activer la salle d’attente")
	setLanguage(t, ctx, "en")
}

func press(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	run(t, ctx, chromedp.KeyEvent(key))
}

// focused waits for the focus to be on the element with that id: focus
// may move in an event handler after the key.
func focused(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	js := fmt.Sprintf(`document.activeElement?.id === %s`, quote(id))
	c, cancel := context.WithTimeout(ctx, minWait+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(minWait))); err != nil {
		got := eval[string](t, ctx, `(() => { const e = document.activeElement; return e ? e.tagName + '#' + e.id + '.' + e.className + ' ' + (e.textContent ?? '').slice(0, 40) : '(none)' })()`)
		t.Fatalf("focus on %s, want #%s", got, id)
	}
}

func pressed(t *testing.T, ctx context.Context, id string, want bool) {
	t.Helper()
	waitFor(t, ctx, 5*time.Second, fmt.Sprintf(`document.getElementById(%s).getAttribute('aria-pressed') === %s`, quote(id), quote(fmt.Sprint(want))))
}

// axeScript is axe-core's axe.min.js, named by ENTENTE_AXE (scripts/test-all
// installs it). Without it the audit is skipped, except in CI.
func axeScript(t *testing.T) string {
	t.Helper()
	path := os.Getenv("ENTENTE_AXE")
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ENTENTE_AXE is not set: scripts/test-all installs axe-core and sets it")
		}
		t.Skip("ENTENTE_AXE is not set: run scripts/test-all, which installs axe-core")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("ENTENTE_AXE: %v", err)
	}
	return string(b)
}

// axeViolation is what the audit says of one broken rule.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// audit runs axe-core on the page as it is, against WCAG 2.1 A and AA, and
// fails the test for every violation, naming the rule and the elements.
func audit(t *testing.T, ctx context.Context, axe, screen string) {
	t.Helper()
	// Evaluated through DevTools, which the page's CSP does not restrict.
	eval[bool](t, ctx, `(() => { if (window.axe) return true; `+axe+`
; return !!window.axe })()`)
	c, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	res, err := chromedp.Run(c, chromedp.Evaluate[struct {
		Passed     int            `json:"passed"`
		Violations []axeViolation `json:"violations"`
	}](`axe.run(document, {
  runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  resultTypes: ['violations'],
}).then((r) => ({ passed: r.passes.length, violations: r.violations }))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe on the %s: %v", screen, err)
	}
	// An audit that checked nothing would pass anything.
	if res.Passed == 0 {
		t.Fatalf("axe passed no rule on the %s", screen)
	}
	for _, v := range res.Violations {
		var nodes []string
		for _, n := range v.Nodes {
			nodes = append(nodes, fmt.Sprintf("%v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " ")))
		}
		t.Errorf("%s: %s (%s): %s\n\t%s", screen, v.ID, v.Impact, v.Help, strings.Join(nodes, "\n\t"))
	}
}

// TestBrowserAccessibility audits every screen of a user's way into a call
// with axe-core: sign-in (with its error), home, pre-join and the call with
// its panels and moderation controls open.
func TestBrowserAccessibility(t *testing.T) {
	requireChromium(t)
	axe := axeScript(t)
	f := nodetest.New(t)
	n := f.Start(t, "Préfecture", nil)
	addUser(t, n, "alice", "Alice Martin", "alice-password-1")
	_, brunoTok := nodetest.User(t, n, "bruno", "Bruno Lefèvre")
	ctx := callBrowser(t, n)

	run(t, ctx, chromedp.Navigate(n.PublicURL()+"/"))
	setLanguage(t, ctx, "en")
	waitText(t, ctx, "h1", "Sign in")
	audit(t, ctx, axe, "sign-in screen")
	signIn(t, ctx, "alice", "wrong-password")
	waitText(t, ctx, "#signin-error", "The user name or password is incorrect.")
	audit(t, ctx, axe, "sign-in screen with an error")

	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#signin-password"), "alice-password-1"),
		chromedp.Click(chromedp.CSS("#signin-submit")))
	waitText(t, ctx, "#whoami", "Signed in as Alice Martin (alice), Préfecture.")
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#create-title"), "Point presse"),
		chromedp.Click(chromedp.CSS("#create-submit")))
	waitFor(t, ctx, 10*time.Second, `document.querySelector('#conferences li[data-conference]')`)
	audit(t, ctx, axe, "home screen")

	clickInList(t, ctx, `#conferences li[data-conference] a`)
	waitText(t, ctx, "h1", "Join “Point presse”")
	waitFor(t, ctx, 20*time.Second, `!document.querySelector('#join').disabled && document.querySelector('#preview').videoWidth > 0`)
	audit(t, ctx, axe, "pre-join screen")

	eval[bool](t, ctx, recordPeerConnections)
	click(t, ctx, "#join")
	waitText(t, ctx, "#call-status", "Connected.")
	waitFor(t, ctx, 20*time.Second, `document.querySelector('#call-quality').dataset.level !== 'unknown'`)
	audit(t, ctx, axe, "call screen")

	// A second participant brings remote tiles and the moderator's actions.
	confID := eval[string](t, ctx, `location.pathname.split('/').pop()`)
	other := newProfile(t, ctx)
	enterCall(t, other, n, confID, brunoTok, true)
	waitMedia(t, ctx, "bruno@"+n.DID(), false)
	click(t, ctx, "#call-chat")
	click(t, ctx, "#call-people")
	run(t, ctx,
		chromedp.SendKeys(chromedp.CSS("#chat-input"), "Bonjour"),
		chromedp.Click(chromedp.CSS("#chat-send")))
	waitText(t, ctx, "#chat-messages li:last-child .chat-text", "Bonjour")
	click(t, ctx, "#call-hand")
	click(t, ctx, "#call-moderation")
	click(t, ctx, "#mod-end")
	waitFor(t, ctx, 5*time.Second, `!document.querySelector('#mod-end-confirm').hidden`)
	waitFor(t, ctx, 10*time.Second, `document.querySelector('#people-list button.danger')`)
	audit(t, ctx, axe, "call screen with its panels open")
	audit(t, other, axe, "participant's call screen")
}
