package livekit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

const chromiumPath = "/usr/bin/chromium"

// requireFile skips (or, under CI=true, fails) when a peer the test needs
// is missing.
func requireFile(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (%s) is missing: scripts/test-all installs it", what, path)
		}
		t.Skipf("%s (%s) is missing: run scripts/test-all, which installs it", what, path)
	}
}

// The page joins with livekit-client from npm: it publishes its fake
// camera and microphone, subscribes to what others publish, and sends and
// receives data messages.
const browserPage = `<!doctype html><meta charset="utf-8"><title>livekit-client</title>
<script src="/livekit-client.umd.js"></script>
<script>
window.result = {subscribed: [], data: [], connected: false, error: "", logs: []};
(async () => {
  try {
    const lk = LivekitClient;
    lk.setLogLevel("debug");
    lk.setLogExtension((level, msg, ctx) => { window.result.logs.push(level + " " + msg + " " + JSON.stringify(ctx || {}).slice(0, 300)); });
    const room = new lk.Room();
    window.room = room;
    room.on(lk.RoomEvent.TrackSubscribed, (track, pub, p) => window.result.subscribed.push(p.identity + ":" + track.kind));
    room.on(lk.RoomEvent.DataReceived, (payload, p) => window.result.data.push((p ? p.identity : "?") + ":" + new TextDecoder().decode(payload)));
    await room.connect(%q, %q);
    await room.localParticipant.setMicrophoneEnabled(true);
    await room.localParticipant.setCameraEnabled(true);
    window.result.connected = true;
  } catch (e) {
    window.result.error = String(e && e.stack || e);
  }
})();
</script>`

// livekit-client 2.23 in Chromium joins a conference beside a native client
// and a Go SDK client: each side receives the other's media, and data
// messages travel both ways.
func TestLiveKitClientInChromium(t *testing.T) {
	bundle := os.Getenv("ENTENTE_LIVEKIT_CLIENT")
	if bundle == "" {
		bundle = "../.tools/livekit-client/node_modules/livekit-client/dist/livekit-client.umd.js"
	}
	requireFile(t, bundle, "livekit-client from npm")
	requireFile(t, chromiumPath, "Chromium")
	e := newEnv(t)
	const conf = "conf-browser"
	for _, u := range []string{"alice", "bob", "carol"} {
		e.members.allow(conf, u, true)
	}
	e.mux.HandleFunc("/livekit-client.umd.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, bundle)
	})
	e.mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, browserPage, e.wsURL(), e.token(t, conf, "carol"))
	})

	native := dialNative(t, e, conf, "alice")
	eventually(t, "native joined", func() bool { return native.seen("joined", nil) != nil })
	native.publishAudio()
	stop := make(chan struct{})
	defer close(stop)
	sendUntil(t, native.audio.WriteRTP, "alice", stop)

	fromBrowser := make(chan string, 64)
	bob, err := lksdk.ConnectToRoomWithToken(e.wsURL(), e.token(t, conf, "bob"), &lksdk.RoomCallback{
		ParticipantCallback: lksdk.ParticipantCallback{
			OnDataPacket: func(d lksdk.DataPacket, params lksdk.DataReceiveParams) {
				if u, ok := d.(*lksdk.UserDataPacket); ok {
					select {
					case fromBrowser <- params.SenderIdentity + ":" + string(u.Payload):
					default:
					}
				}
			},
		},
	}, lksdk.WithAutoSubscribe(false))
	if err != nil {
		t.Fatalf("connect bob: %v", err)
	}
	t.Cleanup(bob.Disconnect)

	opts := append(chromedp.DefaultExecAllocatorOptions[:0:0],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first action starts the browser, which lives as long as ctx.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/page.html")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	type result struct {
		Subscribed []string `json:"subscribed"`
		Data       []string `json:"data"`
		Connected  bool     `json:"connected"`
		Error      string   `json:"error"`
		Logs       []string `json:"logs"`
	}
	var last []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("livekit-client log:\n%s", strings.Join(last, "\n"))
		}
	})
	page := func() result {
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify(window.result)`))
		if err != nil {
			t.Fatalf("read the page: %v", err)
		}
		var r result
		_ = json.Unmarshal([]byte(raw), &r)
		if r.Error != "" {
			t.Fatalf("livekit-client: %s\n%s", r.Error, strings.Join(r.Logs, "\n"))
		}
		last = r.Logs
		return r
	}
	eventually(t, "livekit-client connected and publishing", func() bool { return page().Connected })
	eventually(t, "livekit-client subscribed to the native microphone", func() bool {
		for _, s := range page().Subscribed {
			if s == "alice:audio" {
				return true
			}
		}
		return false
	})

	// The native client sees the browser's camera and microphone and
	// receives their media.
	for _, kind := range []string{"audio", "video"} {
		eventually(t, "native client told of the browser's "+kind, func() bool {
			return native.seen("track_added", func(m map[string]any) bool { return m["owner"] == "carol" && m["kind"] == kind }) != nil
		})
	}
	got := 0
	deadline := time.After(30 * time.Second)
	for got < 50 {
		select {
		case p := <-native.payloads:
			if !strings.Contains(string(p), "alice-") {
				got++
			}
		case <-deadline:
			t.Fatalf("native client received %d packets from the browser", got)
		}
	}

	// Data both ways between the browser and the Go SDK.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.room.localParticipant.publishData(new TextEncoder().encode("from-browser"), {reliable: true}); true`)); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-fromBrowser:
		if m != "carol:from-browser" {
			t.Fatalf("bob received %q", m)
		}
	case <-waitTimeout():
		t.Fatal("bob received no data from the browser")
	}
	eventually(t, "the browser receives bob's data", func() bool {
		if err := bob.LocalParticipant.PublishDataPacket(lksdk.UserData([]byte("from-bob")), lksdk.WithDataPublishReliable(true)); err != nil {
			t.Fatal(err)
		}
		for _, d := range page().Data {
			if d == "bob:from-bob" {
				return true
			}
		}
		return false
	})
}
