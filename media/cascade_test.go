package media

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/prometheus/client_golang/prometheus"
)

// fabric joins test SFUs the way federation joins nodes: each conference
// has a host, and a member's trunk offer reaches the host's AcceptTrunk.
type fabric struct {
	mu    sync.Mutex
	host  map[string]*cascadeNode
	relay map[string]bool
}

type cascadeNode struct {
	*testNode
	did string
	f   *fabric
}

func (n *cascadeNode) Host(_ context.Context, conference string) (string, error) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	h, ok := n.f.host[conference]
	if !ok {
		return "", errors.New("unknown conference")
	}
	if h == n {
		return "", nil
	}
	return h.did, nil
}

func (n *cascadeNode) Offer(ctx context.Context, conference, sdp string) (string, error) {
	n.f.mu.Lock()
	h := n.f.host[conference]
	relay, ok := n.f.relay[n.did]
	n.f.mu.Unlock()
	return h.sfu.AcceptTrunk(ctx, conference, n.did, sdp, relay || !ok)
}

func (n *cascadeNode) MayRelay(context.Context, string) (bool, error) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	relay, ok := n.f.relay[n.did]
	return relay || !ok, nil
}

func newFabric() *fabric {
	return &fabric{host: map[string]*cascadeNode{}, relay: map[string]bool{}}
}

// node starts an SFU named did joined to the fabric; net, if set, is the
// network its trunks use.
func (f *fabric) node(t *testing.T, did string, tn transport.Net) *cascadeNode {
	return f.nodeWith(t, did, tn, Options{})
}

// nodeWith is node with the SFU's other options (ports, addresses) from o.
func (f *fabric) nodeWith(t *testing.T, did string, tn transport.Net, o Options) *cascadeNode {
	t.Helper()
	n := &cascadeNode{did: did, f: f, testNode: &testNode{membership: &fakeMembership{denied: map[string]error{}}, registry: prometheus.NewRegistry()}}
	o.Membership, o.Registry, o.IncludeLoopback, o.Cascade = n.membership, n.registry, true, n
	if os.Getenv("ENTENTE_TEST_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", did)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.trunks.net = tn
	s.trunks.grace = 200 * time.Millisecond
	n.sfu = s
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.ServeSignal(w, r, q.Get("conference"), q.Get("user"), "Name of "+q.Get("user"), "org "+did)
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

// setRelay sets did's permission for the host to relay its media (§10.5).
func (f *fabric) setRelay(did string, relay bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.relay[did] = relay
}

func (f *fabric) hosts(conference string, n *cascadeNode) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.host[conference] = n
}

// twoNodes starts a host, did:web:a, and a member, did:web:b, of conference
// on one fabric.
func twoNodes(t *testing.T, conference string) (host, member *cascadeNode) {
	t.Helper()
	f := newFabric()
	host, member = f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil)
	f.hosts(conference, host)
	return host, member
}

// fullLayers keeps the trunks of nodes from holding layers back for the
// link's capacity, for tests of the layer a subscriber chooses: on a loaded
// machine a trunk's estimator can take the scheduler's delays on loopback
// for a queue (trunk_thin_test.go tests that holding).
func fullLayers(nodes ...*cascadeNode) {
	for _, n := range nodes {
		n.sfu.trunks.fullLayers = true
	}
}

// threeNodes starts a host, did:web:a, and two members, did:web:b and
// did:web:c, of conference on one fabric.
func threeNodes(t *testing.T, conference string) (host, b, c *cascadeNode) {
	t.Helper()
	f := newFabric()
	host, b, c = f.node(t, "did:web:a", nil), f.node(t, "did:web:b", nil), f.node(t, "did:web:c", nil)
	f.hosts(conference, host)
	return host, b, c
}

// trunkOf waits for n's trunk to peer in conference.
func trunkOf(t *testing.T, n *cascadeNode, conference, peer string) *trunk {
	t.Helper()
	var tr *trunk
	testwait.Until(t, 20*time.Second, func() bool {
		tr = n.sfu.trunks.trunk(conference, peer)
		return tr != nil
	}, "%s: no trunk to %s for %s", n.did, peer, conference)
	return tr
}

func sentTotal(tr *testTrack) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.sent)
}

func TestCascadeTwoNodesBothWays(t *testing.T) {
	a, b := twoNodes(t, "conf-2")
	onA := connect(t, a.testNode, "conf-2", "ann@did:web:a", clientOptions{autoSubscribe: true})
	onB := connect(t, b.testNode, "conf-2", "bob@did:web:b", clientOptions{autoSubscribe: true})

	joined := onA.expect("participant_joined", 10*time.Second)
	p := joined
	if p["user"] != "bob@did:web:b" || p["organisation"] != "org did:web:b" {
		t.Fatalf("participant_joined on A = %v, want bob of org did:web:b", p)
	}
	joined = onB.expect("participant_joined", 10*time.Second)
	if u := joined["user"]; u != "ann@did:web:a" {
		t.Fatalf("participant_joined on B = %v, want ann", u)
	}

	audio := &testTrack{tag: 'a', kind: "audio", source: "microphone"}
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	onB.publish(audio, video)
	back := &testTrack{tag: 'w', kind: "video", source: "camera"}
	onA.publish(back)

	checkExact(t, audio, onA.waitMedia(onA.waitTrackAdded(audio, onB.user), 30, 20*time.Second))
	checkExact(t, video, onA.waitMedia(onA.waitTrackAdded(video, onB.user), 30, 20*time.Second))
	checkExact(t, back, onB.waitMedia(onB.waitTrackAdded(back, onA.user), 30, 20*time.Second))
	if st := b.sfu.TrunkStats(); st.Trunks != 1 || st.PacketsSent == 0 || st.PacketsReceived == 0 {
		t.Errorf("B trunk stats = %+v, want one trunk carrying media both ways", st)
	}
}

func TestCascadeThreeNodes(t *testing.T) {
	a, b, c := threeNodes(t, "conf-3")
	pub := connect(t, b.testNode, "conf-3", "bob@did:web:b", clientOptions{})
	sub := connect(t, c.testNode, "conf-3", "cat@did:web:c", clientOptions{autoSubscribe: true})
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	audio := &testTrack{tag: 'a', kind: "audio", source: "microphone"}
	pub.publish(video, audio)
	checkExact(t, video, sub.waitMedia(sub.waitTrackAdded(video, pub.user), 40, 20*time.Second))
	checkExact(t, audio, sub.waitMedia(sub.waitTrackAdded(audio, pub.user), 40, 20*time.Second))
	if a.sfu.TrunkStats().Trunks != 2 {
		t.Errorf("host trunks = %d, want 2", a.sfu.TrunkStats().Trunks)
	}
}

// A track crosses a trunk once, however many subscribe on the far side: each
// packet the publisher's node receives takes one sequence number on the
// trunk. The packets are compared with what the up-track received, whose
// sinks run as each packet arrives, not with what the publisher sent: on a
// loaded machine the node lags behind the publisher by a few packets, more
// at one end of the span than at the other. The retransmissions that answer
// the peer's NACKs resend sequence numbers that already crossed, so they are
// counted apart; a second binding of the track would double the first sends.
func TestCascadeTrackCrossesOnce(t *testing.T) {
	a, b := twoNodes(t, "conf-once")
	pub := connect(t, b.testNode, "conf-once", "bob@did:web:b", clientOptions{})
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	pub.publish(video)
	first := connect(t, a.testNode, "conf-once", "s0@did:web:a", clientOptions{autoSubscribe: true})
	id := first.waitTrackAdded(video, pub.user)
	first.waitMedia(id, 20, 20*time.Second)
	tr := trunkOf(t, b, "conf-once", "did:web:a")
	tr.mu.Lock()
	up, ok := tr.offered[id].(*upTrack)
	tr.mu.Unlock()
	if !ok {
		t.Fatalf("the trunk does not offer track %s", id)
	}

	perPacket := func(subs int) float64 {
		t.Helper()
		crossed0, resent0, received0 := tr.sentOf(id)[0], tr.resentOf(id)[0], up.layers[0].link.packets.Load()
		published(t, video, 100)
		crossed, resent, received := tr.sentOf(id)[0]-crossed0, tr.resentOf(id)[0]-resent0, up.layers[0].link.packets.Load()-received0
		t.Logf("%d subscribers: %d packets crossed for %d received, and %d retransmissions", subs, crossed, received, resent)
		return float64(crossed) / float64(received)
	}
	if r := perPacket(1); r < 0.95 || r > 1.05 {
		t.Fatalf("with 1 subscriber, %.2f trunk packets per received packet, want 1", r)
	}
	for i := 1; i < 10; i++ {
		s := connect(t, a.testNode, "conf-once", "s"+string(rune('0'+i))+"@did:web:a", clientOptions{autoSubscribe: true})
		s.waitTrackAdded(video, pub.user)
	}
	first.waitMedia(id, 20, 10*time.Second)
	if r := perPacket(10); r < 0.95 || r > 1.05 {
		t.Fatalf("with 10 subscribers, %.2f trunk packets per received packet, want 1", r)
	}
}

func TestCascadeSimulcastLayers(t *testing.T) {
	a, b := twoNodes(t, "conf-sim")
	fullLayers(a, b)
	pub := connect(t, b.testNode, "conf-sim", "bob@did:web:b", clientOptions{})
	sub := connect(t, a.testNode, "conf-sim", "ann@did:web:a", clientOptions{})
	video := &testTrack{tag: 's', kind: "video", source: "camera", simulcast: true}
	pub.publish(video)
	id := sub.waitTrackAdded(video, pub.user)
	tr := trunkOf(t, b, "conf-sim", "did:web:a")

	layerAfterSwitch := func(maxW, maxH int, want byte) {
		t.Helper()
		sub.subscribe(id, maxW, maxH)
		sub.waitLayer(video, id, want, 15*time.Second)
	}
	layerAfterSwitch(320, 180, 'q')
	if got := tr.sentOf(id); got[0] == 0 || got[1] != 0 || got[2] != 0 {
		t.Fatalf("packets crossed per layer = %v, want only layer q", got)
	}
	layerAfterSwitch(1280, 720, 'f')
	layerAfterSwitch(640, 360, 'h')
	// Once the demand is h, only h crosses: neither f, nor q below it.
	layersSettle(t, tr, id, video, layerSet(0).with(1), 150)
}

func TestCascadeRelayPolicy(t *testing.T) {
	a, b, c := threeNodes(t, "conf-relay")
	a.f.setRelay("did:web:b", false)
	pub := connect(t, b.testNode, "conf-relay", "bob@did:web:b", clientOptions{})
	onA := connect(t, a.testNode, "conf-relay", "ann@did:web:a", clientOptions{autoSubscribe: true})
	onC := connect(t, c.testNode, "conf-relay", "cat@did:web:c", clientOptions{autoSubscribe: true})
	fromA := &testTrack{tag: 'x', kind: "audio", source: "microphone"}
	onA.publish(fromA)
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	pub.publish(video)
	checkExact(t, video, onA.waitMedia(onA.waitTrackAdded(video, pub.user), 30, 20*time.Second))
	// C gets A's own tracks, proving its trunk works, but never B's.
	checkExact(t, fromA, onC.waitMedia(onC.waitTrackAdded(fromA, onA.user), 20, 20*time.Second))
	for _, r := range onC.collect(time.Second) {
		if tag, _, _, _ := parsePayload(r.payload); tag == video.tag {
			t.Fatalf("C received B's media although B forbids relaying")
		}
	}
	// C's users learn why they get nothing of Bob.
	joined, _ := onC.awaitMsg(0, "bob's participant_joined", 10*time.Second, func(m map[string]any) bool {
		return m["type"] == "participant_joined" && m["user"] == pub.user
	})
	if joined["media_withheld"] != true {
		t.Fatalf("participant_joined of bob on C = %v, want media_withheld true", joined)
	}
	onC.mu.Lock()
	defer onC.mu.Unlock()
	for _, m := range onC.seen {
		if m["type"] == "track_added" && m["owner"] == pub.user {
			t.Fatalf("C was offered B's track: %v", m)
		}
	}
}

func TestCascadeRemovedRemoteParticipantStops(t *testing.T) {
	a, b := twoNodes(t, "conf-rm")
	pub := connect(t, b.testNode, "conf-rm", "bob@did:web:b", clientOptions{})
	sub := connect(t, a.testNode, "conf-rm", "ann@did:web:a", clientOptions{autoSubscribe: true})
	video := &testTrack{tag: 'v', kind: "video", source: "camera"}
	pub.publish(video)
	id := sub.waitTrackAdded(video, pub.user)
	sub.waitMedia(id, 20, 20*time.Second)

	a.membership.deny("conf-rm", pub.user, ErrNotParticipant)
	a.sfu.Recheck("conf-rm")
	sub.expect("track_removed", time.Second)
	left := sub.expect("participant_left", time.Second)
	if left["user"] != pub.user {
		t.Fatalf("participant_left = %v, want %s", left, pub.user)
	}
	mediaStops(t, sub, id, video, 100)
	// B's own log has not caught up (its client is still connected), yet
	// its trunk no longer sends the track.
	trunkStops(t, trunkOf(t, b, "conf-rm", "did:web:a"), id, video, 50)
}

func TestTrunkRefusesMalformedOffer(t *testing.T) {
	a, b := twoNodes(t, "conf-bad")
	for _, offer := range []string{"", "v=0\r\ngarbage", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"} {
		if _, err := a.sfu.AcceptTrunk(context.Background(), "conf-bad", "did:web:b", offer, true); !errors.Is(err, ErrBadTrunkOffer) {
			t.Fatalf("offer %q: err = %v, want ErrBadTrunkOffer", offer, err)
		}
	}
	if n := a.sfu.TrunkStats().Trunks; n != 0 {
		t.Fatalf("trunks after refused offers = %d, want 0", n)
	}
	pub := connect(t, b.testNode, "conf-bad", "bob@did:web:b", clientOptions{})
	sub := connect(t, a.testNode, "conf-bad", "ann@did:web:a", clientOptions{autoSubscribe: true})
	audio := &testTrack{tag: 'a', kind: "audio", source: "microphone"}
	pub.publish(audio)
	checkExact(t, audio, sub.waitMedia(sub.waitTrackAdded(audio, pub.user), 20, 20*time.Second))
}

// cutNet drops every UDP datagram while cut is set, like a failed link.
type cutNet struct {
	transport.Net
	cut atomic.Bool
}

func (n *cutNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &cutConn{UDPConn: c, n: n}, nil
}

type cutConn struct {
	transport.UDPConn
	n *cutNet
}

func (c *cutConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err != nil || !c.n.cut.Load() {
			return n, addr, err
		}
	}
}

func (c *cutConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.n.cut.Load() {
		return len(b), nil
	}
	return c.UDPConn.WriteTo(b, addr)
}

func TestCascadeRecoversFromCut(t *testing.T) {
	std, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	cn := &cutNet{Net: std}
	f := newFabric()
	a, b := f.node(t, "did:web:a", nil), f.node(t, "did:web:b", cn)
	f.hosts("conf-cut", a)
	pub := connect(t, b.testNode, "conf-cut", "bob@did:web:b", clientOptions{})
	sub := connect(t, a.testNode, "conf-cut", "ann@did:web:a", clientOptions{autoSubscribe: true})
	audio := &testTrack{tag: 'a', kind: "audio", source: "microphone"}
	pub.publish(audio)
	id := sub.waitTrackAdded(audio, pub.user)
	sub.waitMedia(id, 20, 20*time.Second)

	tr := trunkOf(t, b, "conf-cut", "did:web:a")
	cn.cut.Store(true)
	// The cut lasts until the member has noticed it and restarts ICE.
	testwait.Until(t, 30*time.Second, func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.restarting || tr.closed
	}, "the member never noticed the cut")
	cutAt := uint32(sentTotal(audio))
	cn.cut.Store(false)
	sub.collect(100 * time.Millisecond)
	deadline := time.After(30 * time.Second)
	for fresh := 0; fresh < 20; {
		select {
		case r := <-sub.media:
			if _, _, seq, ok := parsePayload(r.payload); ok && seq > cutAt {
				checkExact(t, audio, []received{r})
				fresh++
			}
		case <-deadline:
			t.Fatalf("media did not flow again after the trunk was cut")
		}
	}
}
