package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/entente-org/entente/bridge"
	"github.com/entente-org/entente/internal/config"
	"github.com/entente-org/entente/internal/dendritetest"
	"github.com/entente-org/entente/internal/nodetest"
)

// widgetAPIEnv names matrix-widget-api's browser bundle (dist/api.js), which
// scripts/test-all installs: the library Element uses to host widgets.
const widgetAPIEnv = "ENTENTE_WIDGET_API"

func requireWidgetAPI(t *testing.T) []byte {
	t.Helper()
	path := os.Getenv(widgetAPIEnv)
	if path == "" {
		path = filepath.Join("..", ".tools", "widget-api", "node_modules", "matrix-widget-api", "dist", "api.js")
	}
	js, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("matrix-widget-api is missing (%v): scripts/test-all installs it and sets %s", err, widgetAPIEnv)
		}
		t.Skipf("matrix-widget-api is missing (%v): run scripts/test-all, which installs it", err)
	}
	return js
}

// widgetHost is a Matrix client's page hosting a room widget, as Element
// does: matrix-widget-api's ClientWidgetApi in the page, the widget in an
// iframe. Its driver acts as the Matrix user against the real homeserver:
// it approves what the widget asks, hands over an OpenID token, reads and
// writes room state with the user's access token, and records each state
// event the widget sent in window.sent.
const widgetHost = `<!doctype html>
<html><head><meta charset="utf-8"><title>Matrix client</title>
<script src="/widget-api.js"></script></head>
<body><script>
const CFG = %s;
const { ClientWidgetApi, Widget, WidgetDriver, OpenIDRequestState } = mxwidgets;
window.sent = [];
window.requested = null;
const state = (type, key) => CFG.homeserver + '/_matrix/client/v3/rooms/' + encodeURIComponent(CFG.roomId) +
  '/state/' + encodeURIComponent(type) + '/' + encodeURIComponent(key);
const auth = { Authorization: 'Bearer ' + CFG.accessToken };
class Driver extends WidgetDriver {
  async validateCapabilities(requested) { window.requested = [...requested].sort(); return requested; }
  askOpenID(observer) { observer.update({ state: OpenIDRequestState.Allowed, token: CFG.openid }); }
  async sendEvent(type, content, stateKey, roomId) {
    window.sent.push({ type, state_key: stateKey, content });
    const r = await fetch(state(type, stateKey), { method: 'PUT', headers: auth, body: JSON.stringify(content) });
    if (!r.ok) throw new Error('homeserver answered ' + r.status);
    return { roomId: CFG.roomId, eventId: (await r.json()).event_id };
  }
  async readRoomState(roomId, type, stateKey) {
    const r = await fetch(state(type, stateKey), { headers: auth });
    if (r.status === 404) return [];
    const content = await r.json();
    return [{ type, state_key: stateKey, sender: CFG.userId, room_id: roomId, event_id: '$unknown', origin_server_ts: 0, content }];
  }
}
const widget = new Widget({ id: CFG.widgetId, creatorUserId: CFG.creator, type: 'm.custom', url: CFG.widgetURL });
const iframe = document.createElement('iframe');
iframe.allow = 'camera; microphone; display-capture';
iframe.style = 'width: 1200px; height: 900px';
iframe.src = widget.getCompleteUrl({ widgetRoomId: CFG.roomId, currentUserId: CFG.userId, deviceId: CFG.deviceId });
document.body.append(iframe);
window.widgetApi = new ClientWidgetApi(widget, iframe, new Driver());
window.widgetApi.setViewedRoomId(CFG.roomId);
</script></body></html>`

// A Matrix user opens the call from the room's widget in their Matrix
// client: the widget asks for exactly the capabilities of its own device's
// call membership, clears the membership a crashed page left behind, signs
// in with the client's OpenID token, writes the membership on joining and
// {} on leaving and when the widget closes — and the bridge's sync leaves
// it alone, because the membership is not a ghost's.
func TestBrowserWidgetWritesCallMembership(t *testing.T) {
	requireChromium(t)
	apiJS := requireWidgetAPI(t)
	listen := dendritetest.FreeAddr(t)
	reg, err := bridge.NewRegistration(bridge.RegistrationOptions{URL: "http://" + listen, HomeserverDomain: dendritetest.ServerName, BotLocalpart: "entente"})
	if err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(t.TempDir(), "registration.yaml")
	if err := bridge.WriteRegistration(regFile, reg, false); err != nil {
		t.Fatal(err)
	}
	hs := dendritetest.Start(t, regFile)

	// The Matrix client's origin, which the node lets frame the client.
	var page []byte
	host := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/widget-api.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(apiJS)
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(page)
		default:
			http.NotFound(w, r)
		}
	}))
	host.StartTLS()
	t.Cleanup(host.Close)
	// Another site than the node's 127.0.0.1, as a Matrix client is: the
	// widget runs in a frame of its own.
	hostURL := strings.Replace(host.URL, "127.0.0.1", "localhost", 1)

	f := nodetest.New(t)
	n := f.Start(t, "Ministère de la Coordination", func(c *config.Config) {
		c.Bridge = config.Bridge{
			Enabled: true, HomeserverURL: hs.URL, HomeserverDomain: dendritetest.ServerName, Listen: listen,
			Registration: regFile, BotLocalpart: "entente", GhostPrefix: "entente_",
			OpenIDServerName: dendritetest.ServerName, OpenIDBaseURL: hs.URL,
			WidgetOrigins: hostURL,
		}
	})
	ctx := context.Background()
	alice, _ := nodetest.User(t, n, "alice", "Alice Martin")
	conf, err := n.Federation().CreateConference(ctx, alice, "Point hebdomadaire", nil)
	if err != nil {
		t.Fatal(err)
	}
	mona := hs.User(ctx, "mona")
	bot := id.NewUserID("entente", dendritetest.ServerName)
	room, err := mona.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{mona.UserID: 100, bot: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mona.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bot}); err != nil {
		t.Fatal(err)
	}
	if err := n.Bridge().LinkRoom(ctx, conf.ID, room.RoomID.String()); err != nil {
		t.Fatal(err)
	}
	// A membership of Mona's device that a crashed page left behind.
	callMember := event.Type{Type: "org.matrix.msc3401.call.member", Class: event.StateEventType}
	key := "_" + mona.UserID.String() + "_" + mona.DeviceID.String() + "_m.call"
	leftover := map[string]any{"application": "m.call", "call_id": "", "scope": "m.room", "device_id": mona.DeviceID.String(),
		"expires": 1800000, "created_ts": time.Now().Add(-time.Minute).UnixMilli(), "foci_preferred": []any{}}
	if _, err := mona.SendStateEvent(ctx, room.RoomID, callMember, key, leftover); err != nil {
		t.Fatal(err)
	}
	tok, err := mona.RequestOpenIDToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"homeserver": hs.URL, "accessToken": mona.AccessToken, "userId": mona.UserID, "deviceId": mona.DeviceID,
		"roomId": room.RoomID, "widgetId": "entente-" + conf.ID, "creator": bot,
		"widgetURL": bridge.WidgetURL(n.PublicURL() + "/app/conference/" + conf.ID),
		"openid":    map[string]any{"access_token": tok.AccessToken, "token_type": tok.TokenType, "matrix_server_name": tok.MatrixServerName, "expires_in": tok.ExpiresIn},
	})
	page = fmt.Appendf(nil, widgetHost, cfg)

	// Chromium trusts the node's certificate and the client's.
	hostKey := sha256.Sum256(host.Certificate().RawSubjectPublicKeyInfo)
	b := browserWith(t, []chromedp.ExecAllocatorOption{
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("ignore-certificate-errors-spki-list", spki(t, n)+","+base64.StdEncoding.EncodeToString(hostKey[:])),
	}, n)
	run(t, b, chromedp.Navigate(hostURL+"/"))
	w := widgetFrame(t, b, n.PublicURL())
	setLanguage(t, w, "en")

	wantCaps := []any{
		"org.matrix.msc2762.receive.state_event:org.matrix.msc3401.call.member#" + key,
		"org.matrix.msc2762.send.state_event:org.matrix.msc3401.call.member#" + key,
	}
	waitFor(t, b, time.Minute, `window.requested !== null`)
	if got := eval[[]any](t, b, `window.requested`); fmt.Sprint(got) != fmt.Sprint(wantCaps) {
		t.Errorf("capabilities requested: %v\nwant %v", got, wantCaps)
	}
	// The leftover is cleared before anything else.
	waitFor(t, b, time.Minute, `window.sent.length >= 1`)
	left := `{"content":{},"state_key":"` + key + `","type":"org.matrix.msc3401.call.member"}`
	if got := eval[string](t, b, `JSON.stringify(window.sent[0], Object.keys(window.sent[0]).sort())`); got != left {
		t.Errorf("first event the widget sent: %s\nwant %s", got, left)
	}
	roomState := func() map[string]any {
		t.Helper()
		var c map[string]any
		if err := mona.StateEvent(ctx, room.RoomID, callMember, key, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	nodetest.Eventually(t, time.Minute, "the leftover membership cleared in the room", func() bool { return len(roomState()) == 0 })

	// Joining writes the membership.
	waitFor(t, w, 30*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	before := time.Now().UnixMilli()
	run(t, w, chromedp.Click(chromedp.CSS("#join")))
	waitText(t, w, "#call-status", "Connected.")
	waitFor(t, b, time.Minute, `window.sent.length >= 2`)
	sent := eval[map[string]any](t, b, `window.sent[1]`)
	content, _ := sent["content"].(map[string]any)
	created, _ := content["created_ts"].(float64)
	if int64(created) < before || int64(created) > time.Now().UnixMilli() {
		t.Errorf("created_ts %v is not the time of joining", content["created_ts"])
	}
	delete(content, "created_ts")
	want := `{"application":"m.call","call_id":"","device_id":"` + mona.DeviceID.String() + `","expires":1800000,` +
		`"foci_preferred":[],"focus_active":{"focus_selection":"oldest_membership","type":"livekit"},"scope":"m.room"}`
	if got, _ := json.Marshal(content); string(got) != want || sent["state_key"] != key || sent["type"] != callMember.Type {
		t.Errorf("membership sent on joining: %v %v %s\nwant %s", sent["type"], sent["state_key"], got, want)
	}
	nodetest.Eventually(t, time.Minute, "the membership in the room", func() bool { return roomState()["device_id"] == mona.DeviceID.String() })

	// The bridge syncs the portal (Mona is a participant): her own
	// membership is not a ghost's, and stays.
	if err := n.Bridge().Sync(ctx, conf.ID); err != nil {
		t.Fatal(err)
	}
	if c := roomState(); c["device_id"] != mona.DeviceID.String() {
		t.Errorf("after the bridge's sync, Mona's membership is %v", c)
	}

	// Leaving writes {}.
	run(t, w, chromedp.Click(chromedp.CSS("#call-leave")))
	waitFor(t, b, time.Minute, `window.sent.length >= 3`)
	if got := eval[string](t, b, `JSON.stringify(window.sent[2], Object.keys(window.sent[2]).sort())`); got != left {
		t.Errorf("event sent on leaving: %s\nwant %s", got, left)
	}
	nodetest.Eventually(t, time.Minute, "the membership left in the room", func() bool { return len(roomState()) == 0 })

	// In again, then the widget's page goes away (the Matrix client reloads
	// the widget, or navigates it): {} as the page goes.
	run(t, w, chromedp.Click(chromedp.CSS("#call-rejoin")))
	waitFor(t, w, 30*time.Second, `document.querySelector('#join') && !document.querySelector('#join').disabled`)
	run(t, w, chromedp.Click(chromedp.CSS("#join")))
	waitText(t, w, "#call-status", "Connected.")
	waitFor(t, b, time.Minute, `window.sent.length >= 4 && window.sent[3].content.device_id`)
	eval[bool](t, b, `(document.querySelector("iframe").src = "about:blank", true)`)
	waitFor(t, b, time.Minute, `window.sent.length >= 5`)
	if got := eval[string](t, b, `JSON.stringify(window.sent[4], Object.keys(window.sent[4]).sort())`); got != left {
		t.Errorf("event sent when the widget's page went away: %s\nwant %s", got, left)
	}
	if n := eval[float64](t, b, `window.sent.length`); n != 5 {
		t.Errorf("the widget sent %v state events, want 5: %s", n, eval[string](t, b, `JSON.stringify(window.sent)`))
	}
}

// widgetFrame attaches to the widget's iframe, a target of its own (the
// node is another site than the Matrix client), once it has loaded.
func widgetFrame(t *testing.T, b context.Context, origin string) context.Context {
	t.Helper()
	var frame target.ID
	var seen []string
	defer func() {
		if frame == "" {
			t.Logf("targets: %v", seen)
		}
	}()
	nodetest.Eventually(t, time.Minute, "the widget's frame", func() bool {
		targets, err := chromedp.Targets(b)
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, ti := range targets {
			seen = append(seen, string(ti.Type)+" "+ti.URL)
			if ti.Type == "iframe" && strings.HasPrefix(ti.URL, origin) {
				frame = ti.TargetID
				return true
			}
		}
		return false
	})
	w, cancel := chromedp.NewContext(b, chromedp.WithTargetID(frame))
	t.Cleanup(cancel)
	if err := chromedp.Do(w); err != nil {
		t.Fatalf("attach to the widget's frame: %v", err)
	}
	watchErrors(t, w)
	return w
}

// A membership is written again before it expires, each time with a new
// created_ts, for as long as the user stays; leaving stops the renewals.
// The timings are shortened: the client's own are MEMBERSHIP_LIFETIME and
// RENEW_BEFORE (widget.js).
func TestBrowserWidgetMembershipRenewed(t *testing.T) {
	f := nodetest.New(t)
	n := f.Start(t, "Ministère de la Coordination", nil)
	b := browser(t, n)
	run(t, b, chromedp.Navigate(n.PublicURL()+"/"))
	waitFor(t, b, 30*time.Second, `document.querySelector('script[type=module]')`)
	eval[bool](t, b, `(() => {
		window.sent = [];
		let clock = 1000;
		import(document.querySelector('script[type=module]').src.replace('app.js', 'widget.js')).then((m) => {
			window.membership = new m.CallMembership({ deviceId: 'DEV', send: async (c) => { window.sent.push(c); },
				lifetime: 3000, renewBefore: 2000, now: () => (clock += 1000) });
			window.membership.join();
		});
		return true;
	})()`)
	waitFor(t, b, time.Minute, `window.sent.length >= 3`)
	eval[bool](t, b, `(window.membership.leave(), true)`)
	waitFor(t, b, time.Minute, `window.sent.some((c) => Object.keys(c).length === 0)`)
	got := eval[string](t, b, `JSON.stringify(window.sent.map((c) => c.created_ts ?? 'left'))`)
	if !strings.HasPrefix(got, `[2000,3000,4000`) || !strings.HasSuffix(got, `,"left"]`) || strings.Count(got, "left") != 1 {
		t.Errorf("memberships written (created_ts, then left): %s", got)
	}
	first := eval[string](t, b, `JSON.stringify(window.sent[0])`)
	want := `{"application":"m.call","call_id":"","scope":"m.room","device_id":"DEV","expires":3000,` +
		`"focus_active":{"type":"livekit","focus_selection":"oldest_membership"},"foci_preferred":[],"created_ts":2000}`
	if first != want {
		t.Errorf("first membership %s\nwant %s", first, want)
	}
}
