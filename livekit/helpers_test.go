package livekit_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/entente-org/entente/livekit"
	"github.com/entente-org/entente/media"
)

const (
	apiKey    = "APItest"
	apiSecret = "a-test-secret-that-is-long-enough-0123456789"
)

// membership lets the users it lists take part in a conference.
type membership struct {
	mu      sync.Mutex
	allowed map[string]bool
}

func (m *membership) allow(conference, user string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allowed[conference+" "+user] = ok
}

func (m *membership) MayParticipate(_ context.Context, conference, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.allowed[conference+" "+user] {
		return fmt.Errorf("%w: %s", media.ErrNotParticipant, user)
	}
	return nil
}

// env is one node's SFU serving LiveKit clients at /rtc and native clients
// at /native, over plain HTTP on loopback.
type env struct {
	mux     *http.ServeMux
	sfu     *media.SFU
	members *membership
	lk      *livekit.Server
	srv     *httptest.Server
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the LiveKit options changed by opt.
func newEnvWith(t *testing.T, opt func(*livekit.Options)) *env {
	t.Helper()
	m := &membership{allowed: make(map[string]bool)}
	sfu, err := media.New(media.Options{Membership: m, IncludeLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	o := livekit.Options{
		APIKey: apiKey, APISecret: apiSecret, SFU: sfu, Organisation: "Ministry of Tests",
		UserOf: func(identity string) (string, error) {
			if strings.HasPrefix(identity, "foreign") {
				return "", fmt.Errorf("not a user of this node")
			}
			return identity, nil
		},
	}
	if opt != nil {
		opt(&o)
	}
	lk, err := livekit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/rtc", lk.Handler())
	mux.Handle("/rtc/validate", lk.Handler())
	mux.Handle(livekit.RoomServicePath, lk.Handler())
	mux.Handle("/rtc/v1", lk.Handler())
	mux.Handle("/rtc/v1/validate", lk.Handler())
	mux.HandleFunc("/native", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		sfu.ServeSignal(w, r, q.Get("conference"), q.Get("user"), q.Get("user"), "Ministry of Tests")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		_ = sfu.Close()
	})
	return &env{mux: mux, sfu: sfu, members: m, lk: lk, srv: srv}
}

func (e *env) wsURL() string { return strings.Replace(e.srv.URL, "http", "ws", 1) }

func (e *env) token(t *testing.T, conference, identity string) string {
	t.Helper()
	tok, err := e.lk.Mint(conference, identity, "Name of "+identity, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func clientAPI() *webrtc.API {
	m := &webrtc.MediaEngine{}
	_ = m.RegisterDefaultCodecs()
	_ = m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
}

// nativeClient speaks Entente's own signalling (spec/client-api.md §5):
// it publishes one Opus track and subscribes to every track announced.
type nativeClient struct {
	t        *testing.T
	user     string
	ws       *websocket.Conn
	ctx      context.Context
	pub, sub *webrtc.PeerConnection
	audio    *webrtc.TrackLocalStaticRTP
	video    *webrtc.TrackLocalStaticRTP
	senders  []*webrtc.RTPSender
	wmu      sync.Mutex
	mu       sync.Mutex
	msgs     []map[string]any
	payloads chan []byte
	removed  chan string
}

func dialNative(t *testing.T, e *env, conference, user string) *nativeClient {
	t.Helper()
	return dialNativeURL(t, e.wsURL()+"/native?conference="+conference+"&user="+user, nil, user)
}

// dialNativeURL connects a native client as user to the signalling
// WebSocket at url.
func dialNativeURL(t *testing.T, url string, opts *websocket.DialOptions, user string) *nativeClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial native %s: %v", user, err)
	}
	api := clientAPI()
	c := &nativeClient{t: t, user: user, ws: ws, ctx: ctx, payloads: make(chan []byte, 4096), removed: make(chan string, 1)}
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // first, so that the read loop stops answering
		_ = ws.CloseNow()
		_ = c.pub.Close()
		_ = c.sub.Close()
	})
	for name, pc := range map[string]*webrtc.PeerConnection{"publish": c.pub, "subscribe": c.sub} {
		name := name
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				c.send(map[string]any{"type": "candidate", "pc": name, "candidate": cand.ToJSON()})
			}
		})
	}
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		readPayloads(tr, c.payloads)
	})
	go c.readLoop()
	c.send(map[string]any{"type": "join"})
	return c
}

func (c *nativeClient) send(m any) {
	data, _ := json.Marshal(m)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.Write(c.ctx, websocket.MessageText, data)
}

func (c *nativeClient) readLoop() {
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
		switch m["type"] {
		case "track_added":
			if m["owner"] != c.user {
				c.send(map[string]any{"type": "subscribe", "track": m["id"]})
			}
		case "joined":
			for _, tr := range m["tracks"].([]any) {
				c.send(map[string]any{"type": "subscribe", "track": tr.(map[string]any)["id"]})
			}
		case "subscribe_offer":
			_ = c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m["sdp"].(string)})
			ans, err := c.sub.CreateAnswer(nil)
			if err == nil {
				err = c.sub.SetLocalDescription(ans)
			}
			if err != nil {
				if c.ctx.Err() == nil {
					c.t.Errorf("native answer: %v", err)
				}
				continue
			}
			c.send(map[string]any{"type": "subscribe_answer", "sdp": ans.SDP})
		case "publish_answer":
			_ = c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m["sdp"].(string)})
		case "candidate":
			raw, _ := json.Marshal(m["candidate"])
			var init webrtc.ICECandidateInit
			_ = json.Unmarshal(raw, &init)
			pc := c.pub
			if m["pc"] == "subscribe" {
				pc = c.sub
			}
			_ = pc.AddICECandidate(init)
		case "removed":
			c.removed <- m["reason"].(string)
		}
	}
}

// publishAudio offers one Opus track.
func (c *nativeClient) publishAudio() {
	c.audio = c.publish(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "microphone")
}

// publishVideo offers one VP8 camera track.
func (c *nativeClient) publishVideo() {
	c.video = c.publish(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "camera")
}

func (c *nativeClient) publish(codec webrtc.RTPCodecCapability, kind, source string) *webrtc.TrackLocalStaticRTP {
	t := c.t
	track, err := webrtc.NewTrackLocalStaticRTP(codec, kind, c.user)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.pub.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := c.pub.CreateOffer(nil)
	if err == nil {
		err = c.pub.SetLocalDescription(offer)
	}
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"type": "publish_offer", "sdp": offer.SDP,
		"tracks": []map[string]any{{"mid": tr.Mid(), "kind": kind, "source": source}}})
	c.senders = append(c.senders, tr.Sender())
	return track
}

// audioLevelID is the negotiated ID of the audio-level header extension
// of the first track published, once the answer has arrived.
func (c *nativeClient) audioLevelID() (uint8, bool) {
	if len(c.senders) == 0 || c.pub.RemoteDescription() == nil {
		return 0, false
	}
	for _, ext := range c.senders[0].GetParameters().HeaderExtensions {
		if ext.URI == sdp.AudioLevelURI {
			return uint8(ext.ID), true
		}
	}
	return 0, false
}

// seen returns the first message of type typ matching ok, if any.
func (c *nativeClient) seen(typ string, ok func(map[string]any) bool) map[string]any {
	return c.seenSince(0, typ, ok)
}

// mark is the number of messages received so far.
func (c *nativeClient) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// seenSince is seen among the messages received after mark.
func (c *nativeClient) seenSince(mark int, typ string, ok func(map[string]any) bool) map[string]any {
	if i := c.indexSince(mark, typ, ok); i >= 0 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.msgs[i]
	}
	return nil
}

// indexSince is the index of the first message after mark of type typ
// matching ok, or -1.
func (c *nativeClient) indexSince(mark int, typ string, ok func(map[string]any) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := mark; i < len(c.msgs); i++ {
		if m := c.msgs[i]; m["type"] == typ && (ok == nil || ok(m)) {
			return i
		}
	}
	return -1
}

// opusPayload is packet i of a publisher tagged tag: an Opus TOC byte, then
// bytes a receiver compares exactly.
func opusPayload(tag string, i int) []byte {
	return append([]byte{0xfc}, fmt.Sprintf("%s-%06d", tag, i)...)
}

// sendUntil writes numbered Opus packets every 20 ms until done is closed.
func sendUntil(t *testing.T, write func(*rtp.Packet) error, tag string, done <-chan struct{}) {
	t.Helper()
	sendPackets(t, write, tag, 111, opusPayload, done)
}

// sendPackets writes packets made by mk every 20 ms until done is closed.
func sendPackets(t *testing.T, write func(*rtp.Packet) error, tag string, pt uint8, mk func(string, int) []byte, done <-chan struct{}) {
	t.Helper()
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: uint16(i), Timestamp: uint32(i * 960), SSRC: 1, Marker: pt != 111}, Payload: mk(tag, i)}
			if err := write(p); err != nil {
				return
			}
		}
	}()
}

// vp8Payload is packet i of a publisher tagged tag: a VP8 payload
// descriptor (S=1) and a key frame's header, then bytes a receiver
// compares exactly. Every packet is a whole key frame, so a subscriber may
// start at any of them.
func vp8Payload(tag string, i int) []byte {
	b := []byte{0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}
	return append(b, fmt.Sprintf("%s-%06d", tag, i)...)
}

// waitPayloads waits until want distinct payloads of tag arrived, each
// exactly as mk made it; payloads of other tags are ignored.
func waitPayloads(t *testing.T, ch <-chan []byte, tag string, want int, mk func(string, int) []byte) {
	t.Helper()
	got := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for len(got) < want {
		select {
		case p := <-ch:
			at := strings.LastIndex(string(p), "-")
			if at < len(tag) || string(p[at-len(tag):at]) != tag {
				continue
			}
			var i int
			if _, err := fmt.Sscanf(string(p[at+1:]), "%06d", &i); err != nil || string(mk(tag, i)) != string(p) {
				t.Fatalf("payload %q differs from the one sent (%q)", p, mk(tag, i))
			}
			got[string(p)] = true
		case <-deadline:
			t.Fatalf("received %d of %d payloads from %s", len(got), want, tag)
		}
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 30*time.Second, cond, "timed out waiting for %s", what)
}

func waitTimeout() <-chan time.Time { return time.After(30 * time.Second) }

// trustCA makes LiveKit's SDK, which dials with gorilla's default dialer
// and validates with http.DefaultClient, trust the federation's test CA.
func trustCA(t *testing.T, f *nodetest.Federation) {
	t.Helper()
	dialer, client := gorilla.DefaultDialer, http.DefaultClient
	d := *dialer
	d.TLSClientConfig = &tls.Config{RootCAs: f.CA.Pool()}
	gorilla.DefaultDialer = &d
	http.DefaultClient = f.Client()
	t.Cleanup(func() { gorilla.DefaultDialer, http.DefaultClient = dialer, client })
}

// readPayloads copies each RTP payload of track to to until the track ends;
// a payload that finds to full is dropped.
func readPayloads(track *webrtc.TrackRemote, to chan<- []byte) {
	for {
		p, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		select {
		case to <- append([]byte(nil), p.Payload...):
		default:
		}
	}
}
