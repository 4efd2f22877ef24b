package media

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
	"github.com/pion/webrtc/v4"
)

// freePort finds a UDP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	probe, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	return probe.LocalAddr().(*net.UDPAddr).Port
}

// Two conferences between the same two organisations, at the same time, with
// each node on its one shared UDP port and one announced address, as in
// production. Each conference has its own trunk, and both carry media for
// longer than a trunk takes to fail when its ICE checks go unanswered: the
// two trunks must not be told apart by an address they share.
func TestTwoConferencesBetweenTwoNodesOnSharedPorts(t *testing.T) {
	f := newFabric()
	one := []string{"127.0.0.1"}
	a := f.nodeWith(t, "did:web:a", nil, Options{UDPPort: freePort(t), PublicIPs: one})
	b := f.nodeWith(t, "did:web:b", nil, Options{UDPPort: freePort(t), PublicIPs: one})

	type call struct {
		pub, sub *testClient
		track    *testTrack
		id       string
	}
	var calls []*call
	for i, conf := range []string{"conf-x", "conf-y"} {
		f.hosts(conf, a)
		c := &call{
			pub:   connect(t, a.testNode, conf, "ann@did:web:a", clientOptions{}),
			sub:   connect(t, b.testNode, conf, "bob@did:web:b", clientOptions{autoSubscribe: true}),
			track: &testTrack{tag: byte('x' + i), kind: "audio", source: "microphone"},
		}
		c.pub.publish(c.track)
		c.id = c.sub.waitTrackAdded(c.track, c.pub.user)
		calls = append(calls, c)
	}
	for _, c := range calls {
		checkExact(t, c.track, c.sub.waitMedia(c.id, 20, 20*time.Second))
	}
	if st := b.sfu.TrunkStats(); st.Trunks != 2 {
		t.Fatalf("B has %d trunks, want one per conference", st.Trunks)
	}

	// A trunk whose ICE checks go unanswered is disconnected after 1 s and
	// failed after 8 s (trunk_api.go). For 12 s, every trunk of both nodes
	// stays connected, and both conferences get at least 95 % of what
	// their publisher sent.
	var trunks []*trunk
	for _, conf := range []string{"conf-x", "conf-y"} {
		trunks = append(trunks, trunkOf(t, a, conf, b.did), trunkOf(t, b, conf, a.did))
	}
	for _, c := range calls {
		c.sub.collect(300 * time.Millisecond)
	}
	from := make([]int, len(calls))
	for i, c := range calls {
		from[i] = sentTotal(c.track)
	}
	testwait.Holds(t, 12*time.Second, func() error {
		for _, tr := range trunks {
			if s := tr.pc.ICEConnectionState(); s != webrtc.ICEConnectionStateConnected && s != webrtc.ICEConnectionStateCompleted {
				return fmt.Errorf("the trunk of %s to %s is %s", tr.conference, tr.peer, s)
			}
		}
		return nil
	})
	for i, c := range calls {
		to := sentTotal(c.track)
		in := map[uint32]bool{}
		for _, r := range c.sub.collect(time.Second) {
			if r.track != c.id {
				continue
			}
			if _, _, seq, ok := parsePayload(r.payload); ok && int(seq) >= from[i] && int(seq) < to {
				in[seq] = true
			}
		}
		if sent := to - from[i]; len(in) < sent*95/100 {
			t.Errorf("%s: received %d of the %d packets sent in 12 s", c.sub.user, len(in), sent)
		}
	}
}
