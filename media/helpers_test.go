package media

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/entente-org/entente/internal/repairedrid"
)

// fakeMembership refuses the (conference, user) pairs it was told to.
type fakeMembership struct {
	mu     sync.Mutex
	denied map[string]error
}

func (f *fakeMembership) MayParticipate(_ context.Context, conference, user string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.denied[conference+"|"+user]
}

func (f *fakeMembership) deny(conference, user string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.denied[conference+"|"+user] = err
}

type testNode struct {
	sfu        *SFU
	srv        *httptest.Server
	membership *fakeMembership
	registry   *prometheus.Registry
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	n := &testNode{membership: &fakeMembership{denied: map[string]error{}}, registry: prometheus.NewRegistry()}
	s, err := New(Options{Membership: n.membership, Registry: n.registry, IncludeLoopback: true})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.sfu = s
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.ServeSignal(w, r, q.Get("conference"), q.Get("user"), "Name of "+q.Get("user"), "org.example")
	}))
	t.Cleanup(func() {
		n.srv.CloseClientConnections()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		n.srv.Close()
	})
	return n
}

// minWait is the shortest wait for a message or for media, whatever the
// caller asked: on a machine whose cores are busy with other work,
// negotiations and the first packets lag. A wait returns as soon as its
// condition holds; only a failing run waits this long.
const minWait = time.Minute

type received struct {
	track   string
	payload []byte
	seq     uint16
	codec   string // MIME type negotiated for the track
	ssrc    uint32 // the SSRC the SFU sends the track with
}

type testClient struct {
	t *testing.T
	// done is set when the test ends: the client's goroutines then report
	// nothing, since a test may not log after it has completed.
	done     atomic.Bool
	readDone chan struct{}

	user    string
	ws      *websocket.Conn
	ctx     context.Context
	pub     *webrtc.PeerConnection
	sub     *webrtc.PeerConnection
	msgs    chan map[string]any
	media   chan received
	auto    bool
	autoMax [2]int

	mu      sync.Mutex
	tracks  []*testTrack
	seen    []map[string]any
	readErr error // why the read loop ended
}

type clientOptions struct {
	autoSubscribe bool
	maxW, maxH    int
	// drop, if set, is consulted for each RTP packet the subscriber receives
	// before its NACK generator sees it, to simulate loss.
	drop func(*rtp.Header) bool
}

func clientAPI(t *testing.T, drop func(*rtp.Header) bool) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	// Retransmissions carry the repaired rid, as a browser's do.
	ir.Add(repairedrid.Factory{})
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if drop != nil {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		se.SetICEUDPMux(webrtc.NewICEUDPMux(nil, &lossyConn{UDPConn: conn, drop: drop}))
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// lossyConn drops the SRTP packets drop selects before pion sees them: real
// loss, below SRTP, so a retransmission is not taken for a replay.
type lossyConn struct {
	*net.UDPConn
	drop func(*rtp.Header) bool
}

func (l *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := l.UDPConn.ReadFrom(b)
		if err != nil {
			return n, addr, err
		}
		var h rtp.Header
		if n > 12 && b[0]>>6 == 2 && (b[1]&0x7f < 64 || b[1]&0x7f > 95) {
			if _, perr := h.Unmarshal(b[:n]); perr == nil && l.drop(&h) {
				continue
			}
		}
		return n, addr, err
	}
}

func connect(t *testing.T, n *testNode, conference, user string, o clientOptions) *testClient {
	t.Helper()
	url := strings.Replace(n.srv.URL, "http", "ws", 1) + "/?conference=" + conference + "&user=" + user
	return dial(t, url, nil, user, o)
}

// dial connects a client as user to the signalling WebSocket at url.
func dial(t *testing.T, url string, opts *websocket.DialOptions, user string, o clientOptions) *testClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ws, _, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	ws.SetReadLimit(1 << 20)
	api := clientAPI(t, o.drop)
	c := &testClient{t: t, user: user, ws: ws, ctx: ctx, msgs: make(chan map[string]any, 4096),
		media: make(chan received, 65536), auto: o.autoSubscribe, autoMax: [2]int{o.maxW, o.maxH}}
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	c.readDone = make(chan struct{})
	t.Cleanup(func() {
		c.done.Store(true)
		_ = ws.CloseNow()
		_ = c.pub.Close()
		_ = c.sub.Close()
		select {
		case <-c.readDone:
		case <-time.After(5 * time.Second):
		}
	})
	c.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		codec, ssrc := tr.Codec().MimeType, uint32(tr.SSRC())
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case c.media <- received{track: tr.ID(), payload: append([]byte(nil), p.Payload...), seq: p.SequenceNumber, codec: codec, ssrc: ssrc}:
			default:
			}
		}
	})
	go c.readLoop()
	c.send(map[string]any{"type": "join"})
	// Generous: with twenty clients on a busy machine, answers lag.
	c.expect("joined", 30*time.Second)
	return c
}

// errorf reports a failure seen by the client's own goroutines while the
// test runs.
func (c *testClient) errorf(format string, args ...any) {
	if !c.done.Load() {
		c.t.Errorf(format, args...)
	}
}

func (c *testClient) send(m any) {
	data, err := json.Marshal(m)
	if err != nil {
		c.errorf("marshal: %v", err)
		return
	}
	if err := c.ws.Write(c.ctx, websocket.MessageText, data); err != nil {
		c.t.Logf("%s: write: %v", c.user, err)
	}
}

func (c *testClient) readLoop() {
	defer close(c.readDone)
	defer close(c.msgs)
	for {
		_, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			c.errorf("%s: server sent non-JSON %q", c.user, data)
			return
		}
		switch m["type"] {
		case "subscribe_offer":
			c.answer(m["sdp"].(string))
		case "publish_answer":
			if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m["sdp"].(string)}); err != nil {
				c.errorf("%s: publish answer: %v", c.user, err)
			}
		case "candidate":
			pc := c.pub
			if m["pc"] == "subscribe" {
				pc = c.sub
			}
			raw, _ := json.Marshal(m["candidate"])
			var init webrtc.ICECandidateInit
			if err := json.Unmarshal(raw, &init); err != nil {
				c.errorf("candidate: %v", err)
			}
			if err := pc.AddICECandidate(init); err != nil {
				c.errorf("%s: add candidate: %v", c.user, err)
			}
		case "joined":
			if c.auto {
				for _, tr := range m["tracks"].([]any) {
					c.subscribe(tr.(map[string]any)["id"].(string), c.autoMax[0], c.autoMax[1])
				}
			}
		case "track_added":
			if c.auto {
				c.subscribe(m["id"].(string), c.autoMax[0], c.autoMax[1])
			}
		}
		c.msgs <- m
	}
}

func (c *testClient) subscribe(track string, maxW, maxH int) {
	c.send(map[string]any{"type": "subscribe", "track": track, "max_width": maxW, "max_height": maxH})
}

func (c *testClient) answer(offer string) {
	// An offer may race with the end of the client (removed, left): a closed
	// connection has nothing left to answer.
	if c.sub.ConnectionState() == webrtc.PeerConnectionStateClosed {
		return
	}
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		if c.sub.ConnectionState() == webrtc.PeerConnectionStateClosed {
			return
		}
		c.errorf("%s: subscribe offer: %v", c.user, err)
		return
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil {
		if c.sub.ConnectionState() == webrtc.PeerConnectionStateClosed {
			return
		}
		c.errorf("%s: create answer: %v", c.user, err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(c.sub)
	if err := c.sub.SetLocalDescription(ans); err != nil {
		c.errorf("%s: set answer: %v", c.user, err)
		return
	}
	<-gathered
	c.send(map[string]any{"type": "subscribe_answer", "sdp": c.sub.LocalDescription().SDP})
}

// expect waits for a message of type typ, keeping the others in c.seen.
func (c *testClient) expect(typ string, timeout time.Duration) map[string]any {
	c.t.Helper()
	timeout = max(timeout, minWait)
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("%s: connection closed while waiting for %s", c.user, typ)
			}
			if m["type"] == typ {
				c.mu.Lock()
				c.seen = append(c.seen, m)
				c.mu.Unlock()
				return m
			}
			c.mu.Lock()
			c.seen = append(c.seen, m)
			c.mu.Unlock()
		case <-deadline:
			c.t.Fatalf("%s: no %s within %v", c.user, typ, timeout)
		}
	}
}

// trackID waits for the SFU to announce tr to c and records its ID.
func (c *testClient) waitTrackAdded(tr *testTrack, by string) string {
	c.t.Helper()
	// A condition with a deadline for a loaded machine: a trunk that grows
	// its pool first renegotiates, which takes several round trips.
	deadline := time.After(60 * time.Second)
	for {
		c.mu.Lock()
		for _, m := range c.seen {
			infos := []any{m}
			if m["type"] == "joined" {
				infos = m["tracks"].([]any)
			} else if m["type"] != "track_added" {
				continue
			}
			for _, i := range infos {
				info := i.(map[string]any)
				if info["owner"] == by && info["kind"] == tr.kind && info["source"] == tr.source {
					c.mu.Unlock()
					return info["id"].(string)
				}
			}
		}
		c.mu.Unlock()
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatalf("%s: closed while waiting for track_added", c.user)
			}
			c.mu.Lock()
			c.seen = append(c.seen, m)
			c.mu.Unlock()
		case <-deadline:
			c.t.Fatalf("%s: no track_added for %s %s of %s", c.user, tr.kind, tr.source, by)
		}
	}
}

// collect gathers media received within d.
func (c *testClient) collect(d time.Duration) []received {
	var out []received
	deadline := time.After(d)
	for {
		select {
		case r := <-c.media:
			out = append(out, r)
		case <-deadline:
			return out
		}
	}
}

// waitMedia returns once n packets of track arrived, or fails.
func (c *testClient) waitMedia(track string, n int, timeout time.Duration) []received {
	c.t.Helper()
	var out []received
	timeout = max(timeout, minWait)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case r := <-c.media:
			if r.track == track {
				out = append(out, r)
			}
		case <-deadline:
			c.t.Fatalf("%s: only %d of %d packets of %s within %v", c.user, len(out), n, track, timeout)
		}
	}
	return out
}
