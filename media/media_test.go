package media

import (
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/entente-org/entente/internal/testwait"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSimulcastLayerFollowsRequestedSize(t *testing.T) {
	n := newTestNode(t)
	pub := connect(t, n, "conf-s", "alice@did:web:a.example", clientOptions{})
	sub := connect(t, n, "conf-s", "bob@did:web:b.example", clientOptions{})
	tr := &testTrack{tag: 's', kind: "video", source: "camera", simulcast: true}
	pub.publish(tr)
	id := sub.waitTrackAdded(tr, pub.user)
	// All three layers are seen before choosing.
	up := upTrackOf(t, n.sfu, "conf-s", id)
	testwait.Until(t, settleWithin, func() bool {
		for l := range maxLayers {
			if _, ok := up.LayerUsable(l); !ok {
				return false
			}
		}
		return true
	}, "the SFU never saw all three layers of %s", id)

	layerAfterSwitch := func(maxW, maxH int, want byte) {
		t.Helper()
		sub.subscribe(id, maxW, maxH)
		deadline := time.After(10 * time.Second)
		run := 0
		for run < 20 {
			select {
			case r := <-sub.media:
				_, layer, _, ok := parsePayload(r.payload)
				if !ok {
					t.Fatalf("bad payload %x", r.payload)
				}
				if layer == want {
					run++
				} else if run > 0 {
					t.Fatalf("layer %c after switching to %c", layer, want)
				}
			case <-deadline:
				t.Fatalf("never switched to layer %c", want)
			}
		}
	}
	layerAfterSwitch(320, 180, 'q')
	layerAfterSwitch(1280, 720, 'f')
	layerAfterSwitch(640, 360, 'h')
}

func TestNACKAnsweredFromCache(t *testing.T) {
	n := newTestNode(t)
	pub := connect(t, n, "conf-n", "alice@did:web:a.example", clientOptions{})
	dropped := map[uint16]bool{}
	target := uint16(0)
	sub := connect(t, n, "conf-n", "bob@did:web:b.example", clientOptions{autoSubscribe: true, drop: func(h *rtp.Header) bool {
		// Drop the 40th video packet once; runs on the subscriber's
		// receive goroutine only.
		if h.PayloadType == 111 || h.SequenceNumber == 0 {
			return false
		}
		if target == 0 {
			target = h.SequenceNumber + 40
		}
		if h.SequenceNumber == target && !dropped[target] {
			dropped[target] = true
			return true
		}
		return false
	}})
	tr := &testTrack{tag: 'n', kind: "video", source: "camera"}
	pub.publish(tr)
	id := sub.waitTrackAdded(tr, pub.user)
	got := sub.waitMedia(id, 80, 20*time.Second)
	if len(dropped) != 1 {
		t.Fatalf("dropped %d packets, want 1", len(dropped))
	}
	found := false
	for _, r := range got {
		if r.seq == target {
			found = true
		}
	}
	if !found {
		t.Errorf("dropped packet %d never arrived again", target)
	}
	checkExact(t, tr, got)
	if v := counterValue(t, n.sfu.metrics.nackAnswered); v < 1 {
		t.Errorf("nack retransmissions = %v, want >= 1", v)
	}
}

func TestKeyframeRequestsRateLimited(t *testing.T) {
	n := newTestNode(t)
	pub := connect(t, n, "conf-p", "alice@did:web:a.example", clientOptions{})
	tr := &testTrack{tag: 'p', kind: "video", source: "camera"}
	pub.publish(tr)
	var subs []*testClient
	var id string
	for i := range 10 {
		s := connect(t, n, "conf-p", "u"+string(rune('a'+i))+"@did:web:b.example", clientOptions{autoSubscribe: true})
		id = s.waitTrackAdded(tr, pub.user)
		s.waitMedia(id, 5, 15*time.Second)
		subs = append(subs, s)
	}
	// The keyframe requests of the subscribers' joins are over.
	up := upTrackOf(t, n.sfu, "conf-p", id)
	testwait.Until(t, settleWithin, func() bool { return keyframesSettled(n.sfu, up, 0, tr) },
		"keyframe requests never settled")
	before := tr.plis.Load()
	for _, s := range subs {
		ssrc := uint32(s.sub.GetReceivers()[0].Track().SSRC())
		if err := s.sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}, &rtcp.FullIntraRequest{MediaSSRC: ssrc}}); err != nil {
			t.Fatal(err)
		}
	}
	// They are merged: one at once, at most one more at the end of the
	// interval.
	testwait.Until(t, settleWithin, func() bool { return tr.plis.Load() > before && keyframesSettled(n.sfu, up, 0, tr) },
		"the publisher never got a keyframe request for its 10 subscribers' requests")
	if got := tr.plis.Load() - before; got < 1 || got > 2 {
		t.Errorf("publisher got %d PLIs for 10 subscribers' requests, want 1 or 2", got)
	}
}

func TestGarbageDoesNotDisturbOthers(t *testing.T) {
	n := newTestNode(t)
	pub := connect(t, n, "conf-g", "alice@did:web:a.example", clientOptions{})
	good := connect(t, n, "conf-g", "bob@did:web:b.example", clientOptions{autoSubscribe: true})
	bad := connect(t, n, "conf-g", "mallory@did:web:m.example", clientOptions{autoSubscribe: true})
	tr := &testTrack{tag: 'g', kind: "video", source: "camera"}
	pub.publish(tr)
	id := good.waitTrackAdded(tr, pub.user)
	good.waitMedia(id, 10, 15*time.Second)
	bad.waitTrackAdded(tr, pub.user)

	frames := []struct {
		data []byte
		code string
	}{
		{[]byte("not json"), codeBadFrame},
		{[]byte(`{"type":"teleport"}`), codeUnknownType},
		{[]byte(`{"type":"publish_offer","sdp":"v=garbage","tracks":[]}`), codeBadSDP},
		{[]byte(`{"type":"subscribe_answer","sdp":"x"}`), codeUnexpectedReply},
		{[]byte(`{"type":"subscribe","track":"nope"}`), codeUnknownTrack},
		{[]byte(`{"type":"candidate","pc":"elsewhere","candidate":{"candidate":"x"}}`), codeBadCandidate},
		{append(append([]byte(`{"type":"join","pad":"`), make([]byte, 70<<10)...), '"', '}'), codeTooLarge},
	}
	for _, f := range frames {
		if err := bad.ws.Write(bad.ctx, websocket.MessageText, f.data); err != nil {
			t.Fatal(err)
		}
		if e := bad.expect("error", 5*time.Second); e["code"] != f.code {
			t.Errorf("frame %.40q: error code %v, want %s", f.data, e["code"], f.code)
		}
	}
	// Garbage RTCP from a subscriber and a malformed VP8 payload from the
	// publisher are dropped.
	_ = bad.sub.WriteRTCP([]rtcp.Packet{&rtcp.RawPacket{0x81, 0xcd, 0x00, 0x01, 0, 0, 0, 1}, &rtcp.TransportLayerNack{MediaSSRC: 1, Nacks: []rtcp.NackPair{{PacketID: 1, LostPackets: 0xffff}}}})
	_ = tr.locals[0].WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1}, Payload: []byte{0x90}})
	good.waitMedia(id, 20, 5*time.Second)
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
