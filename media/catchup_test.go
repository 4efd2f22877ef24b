package media

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// seqWriter records the sequence numbers and payloads a sink writes.
type seqWriter struct {
	seqs     []uint16
	payloads [][]byte
}

func (w *seqWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.seqs = append(w.seqs, h.SequenceNumber)
	w.payloads = append(w.payloads, append([]byte(nil), payload...))
	return 12 + len(payload), nil
}
func (w *seqWriter) Write(b []byte) (int, error) { return len(b), nil }

func newVideoTrack(t *testing.T, layers []string) *upTrack {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	up := newUpTrack(TrackInfo{ID: "cam", Owner: "alice", Kind: "video", Source: "camera", Layers: layers, Width: 1280, Height: 720},
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, webrtc.RTPCodecTypeVideo,
		func(uint32) error { return nil }, m, slog.New(slog.DiscardHandler))
	for l := range up.layers {
		up.layers[l].ssrc.Store(uint32(l + 1))
	}
	return up
}

func subscriberOf(t *testing.T, up *upTrack) *seqWriter {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDownTrack(up, m, 0, 0, nil)
	w := &seqWriter{}
	d.writer, d.ssrc, d.pt = w, 99, 96
	up.AddSink(d)
	return w
}

// A subscriber that arrives just after a keyframe starts with it, from the
// packet cache, and goes on live: it does not wait for the next keyframe.
// Its sequence numbers run on without a gap, across the wrap at 65535.
func TestLateSubscriberStartsWithRecentKeyframe(t *testing.T) {
	up := newVideoTrack(t, []string{})
	now := time.Now().UnixNano()
	key := uint16(65532)
	for seq := key; seq != key+6; seq++ {
		up.forward(0, vp8Packet(seq, seq == key), now)
	}
	w := subscriberOf(t, up)
	up.forward(0, vp8Packet(key+6, false), time.Now().UnixNano())
	up.forward(0, vp8Packet(key+7, false), time.Now().UnixNano())
	want := []uint16{65532, 65533, 65534, 65535, 0, 1, 2, 3}
	if len(w.seqs) != len(want) {
		t.Fatalf("sent %v, want %v", w.seqs, want)
	}
	for i := range want {
		if w.seqs[i] != want[i] {
			t.Fatalf("sent %v, want %v", w.seqs, want)
		}
	}
	if w.payloads[0][1] != 0 || w.payloads[1][1] != 1 {
		t.Fatalf("first packets % x, % x: want the keyframe, then a delta frame", w.payloads[0][:2], w.payloads[1][:2])
	}
}

// A keyframe older than the window is not replayed: the subscriber waits
// for a fresh one, which its keyframe request brings.
func TestLateSubscriberWaitsWhenKeyframeIsOld(t *testing.T) {
	up := newVideoTrack(t, []string{})
	old := time.Now().Add(-2 * catchUpWindow).UnixNano()
	up.forward(0, vp8Packet(100, true), old)
	up.forward(0, vp8Packet(101, false), old)
	w := subscriberOf(t, up)
	up.forward(0, vp8Packet(102, false), time.Now().UnixNano())
	if len(w.seqs) != 0 {
		t.Fatalf("sent %v before any recent keyframe", w.seqs)
	}
	up.forward(0, vp8Packet(103, true), time.Now().UnixNano())
	up.forward(0, vp8Packet(104, false), time.Now().UnixNano())
	if len(w.seqs) != 2 || w.seqs[0] != 103 || w.seqs[1] != 104 {
		t.Fatalf("sent %v, want [103 104]", w.seqs)
	}
}

// simulcastPacket is a VP8 packet of one simulcast layer: each layer has its
// own SSRC and numbering.
func simulcastPacket(layer int, seq uint16, keyframe bool) []byte {
	b := vp8Packet(seq, keyframe)
	b[11] = byte(layer + 1)
	return b
}

// Switching layers continues the subscriber's numbering from where it was,
// also when the publisher's numbers start in the upper half of the range.
func TestLayerSwitchContinuesSequenceNumbers(t *testing.T) {
	up := newVideoTrack(t, simulcastRIDs[:])
	now := time.Now().UnixNano()
	// Every layer live, so the subscriber (no size limit) targets f.
	for l := range maxLayers {
		up.forward(l, simulcastPacket(l, uint16(40000+1000*l), false), now)
	}
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDownTrack(up, m, 0, 0, nil)
	w := &seqWriter{}
	d.writer, d.ssrc, d.pt = w, 99, 96
	up.AddSink(d)
	for i := range 3 {
		up.forward(2, simulcastPacket(2, uint16(42001+i), i == 0), now)
	}
	d.setPreferences(320, 180) // now q
	for i := range 3 {
		up.forward(0, simulcastPacket(0, uint16(40001+i), i == 0), now)
		up.forward(2, simulcastPacket(2, uint16(42004+i), false), now)
	}
	want := []uint16{42001, 42002, 42003, 42004, 42005, 42006}
	if len(w.seqs) != len(want) {
		t.Fatalf("sent %v, want %v", w.seqs, want)
	}
	for i := range want {
		if w.seqs[i] != want[i] {
			t.Fatalf("sent %v, want %v", w.seqs, want)
		}
	}
}

// srtpLateWriter discards its first writes, as pion does until the
// subscriber's SRTP is up, and records the others.
type srtpLateWriter struct {
	seqWriter
	discard int
}

func (w *srtpLateWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.discard > 0 {
		w.discard--
		return 0, nil
	}
	return w.seqWriter.WriteRTP(h, payload)
}

// A start whose keyframe the writer discarded sends nothing after it: the
// subscriber's SRTP may come up during the replay, and it must not get the
// delta frames that follow first. The next packet starts over at the
// keyframe.
func TestStartOverWhenTheKeyframeWasDiscarded(t *testing.T) {
	up := newVideoTrack(t, []string{})
	now := time.Now().UnixNano()
	for seq := uint16(100); seq < 104; seq++ {
		up.forward(0, vp8Packet(seq, seq == 100), now)
	}
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := newDownTrack(up, m, 0, 0, nil)
	w := &srtpLateWriter{discard: 1}
	d.writer, d.ssrc, d.pt = w, 99, 96
	up.AddSink(d)
	up.forward(0, vp8Packet(104, false), time.Now().UnixNano())
	if len(w.seqs) != 0 {
		t.Fatalf("sent %v after the keyframe was discarded, want nothing", w.seqs)
	}
	up.forward(0, vp8Packet(105, false), time.Now().UnixNano())
	// 100 to 105, numbered on from the discarded write.
	want := []uint16{101, 102, 103, 104, 105, 106}
	if fmt.Sprint(w.seqs) != fmt.Sprint(want) {
		t.Fatalf("sent %v, want %v", w.seqs, want)
	}
	for i, p := range w.payloads {
		if key := p[1] == 0; key != (i == 0) {
			t.Fatalf("packet %d sent is a keyframe: %v, want only the first", i, key)
		}
	}
}
