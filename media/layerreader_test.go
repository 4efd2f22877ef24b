package media

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"

	"github.com/entente-org/entente/internal/testwait"
)

// chanReader stands in for a pion TrackRemote: Read hands out the packets
// pushed into it, and io.EOF once it is closed.
type chanReader struct {
	packets chan []byte
}

func newChanReader() *chanReader { return &chanReader{packets: make(chan []byte)} }

func (r *chanReader) Read(b []byte) (int, interceptor.Attributes, error) {
	p, ok := <-r.packets
	if !ok {
		return 0, nil, io.EOF
	}
	return copy(b, p), nil, nil
}

// countingWriter counts what a down-track writes, readable while it writes.
type countingWriter struct{ packets atomic.Int64 }

func (w *countingWriter) WriteRTP(_ *rtp.Header, payload []byte) (int, error) {
	w.packets.Add(1)
	return 12 + len(payload), nil
}
func (w *countingWriter) Write(b []byte) (int, error) { return len(b), nil }

func vp8PacketFrom(ssrc uint32, seq uint16, keyframe bool) []byte {
	p := byte(1)
	if keyframe {
		p = 0
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: ssrc},
		Payload: append([]byte{0x10, p}, make([]byte, 100)...)}
	b, _ := pkt.Marshal()
	return b
}

// pion fires OnTrack a second time for a rid when a second SSRC carries it,
// with the same TrackRemote re-bound to that SSRC. The second call must not
// start a second reader of the layer (two would share its parse state); the
// first follows the stream to the new SSRC and asks it for a keyframe. A
// different stream for the layer replaces the reader.
func TestLayerHasOneReader(t *testing.T) {
	up, _ := newBenchTrack(t, 0)
	var plisMu sync.Mutex
	var plis []uint32
	up.sendPLI = func(ssrc uint32) error {
		plisMu.Lock()
		defer plisMu.Unlock()
		plis = append(plis, ssrc)
		return nil
	}
	w := countingSink(up)

	first := newChanReader()
	firstDone := startReading(up, 0, 1, first)
	testwait.Until(t, 10*time.Second, func() bool { return up.layers[0].reader.Load() != nil }, "first reader never claimed the layer")

	again := startReading(up, 0, 1, first) // pion's second OnTrack, same TrackRemote
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("a second OnTrack for the same stream started a second reader")
	}

	for seq := uint16(100); seq < 110; seq++ {
		first.packets <- vp8PacketFrom(1, seq, seq == 100)
	}
	testwait.Until(t, 10*time.Second, func() bool { return w.packets.Load() == 10 }, "forwarded %d packets, want 10", w.packets.Load())

	// The same TrackRemote now delivers the new SSRC: keyframe requests
	// go there.
	first.packets <- vp8PacketFrom(2, 5000, true)
	testwait.Until(t, 10*time.Second, func() bool {
		plisMu.Lock()
		defer plisMu.Unlock()
		return len(plis) == 1 && plis[0] == 2 && up.layers[0].ssrc.Load() == 2 && w.packets.Load() == 11
	}, "after the SSRC change: plis %v, layer ssrc %d, forwarded %d", plis, up.layers[0].ssrc.Load(), w.packets.Load())
	// A packet in another payload type (an RTX stream labelled with the
	// rid) is not forwarded.
	rtx := vp8PacketFrom(2, 5001, false)
	rtx[1] = rtx[1]&0x80 | 97
	first.packets <- rtx
	first.packets <- vp8PacketFrom(2, 5002, false)
	testwait.Until(t, 10*time.Second, func() bool { return w.packets.Load() == 12 }, "forwarded %d packets, want 12", w.packets.Load())

	// A different stream for the layer takes over: the old reader stops
	// at its next packet, which is not forwarded.
	second := newChanReader()
	secondDone := startReading(up, 0, 3, second)
	testwait.Until(t, 10*time.Second, func() bool {
		r := up.layers[0].reader.Load()
		return r != nil && r.src == second
	}, "second stream never took the layer")
	first.packets <- vp8PacketFrom(2, 5003, false)
	select {
	case <-firstDone:
	case <-time.After(10 * time.Second):
		t.Fatal("replaced reader did not stop")
	}
	second.packets <- vp8PacketFrom(3, 7000, true)
	testwait.Until(t, 10*time.Second, func() bool { return w.packets.Load() == 13 }, "forwarded %d packets, want 13", w.packets.Load())
	if got := up.layers[0].ssrc.Load(); got != 3 {
		t.Fatalf("layer ssrc %d, want 3", got)
	}
	close(second.packets)
	select {
	case <-secondDone:
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not end with its stream")
	}
	if r := up.layers[0].reader.Load(); r != nil {
		t.Fatal("ended reader still holds the layer")
	}
}

// A browser probes the link at the start of a call with padding-only RTX
// packets. One read before any media must not make the reader take the
// RTX payload type for the layer's and drop every media packet after it.
func TestLayerReaderIsNotLockedOutByAnEarlyProbe(t *testing.T) {
	up, _ := newBenchTrack(t, 0)
	w := countingSink(up)
	r := newChanReader()
	done := startReading(up, 0, 1, r)
	probe := rtp.Packet{Header: rtp.Header{Version: 2, Padding: true, PayloadType: 97, SequenceNumber: 1, SSRC: 1}, PaddingSize: 200}
	raw, err := probe.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	r.packets <- raw
	for seq := uint16(100); seq < 105; seq++ {
		r.packets <- vp8PacketFrom(1, seq, seq == 100)
	}
	testwait.Until(t, 10*time.Second, func() bool { return w.packets.Load() == 5 }, "forwarded %d packets after the probe, want 5", w.packets.Load())
	close(r.packets)
	<-done
}

// countedReader hands out one packet n times, with rising sequence numbers,
// then io.EOF.
type countedReader struct {
	pkt  []byte
	left int
}

func (r *countedReader) Read(b []byte) (int, interceptor.Attributes, error) {
	if r.left == 0 {
		return 0, nil, io.EOF
	}
	r.left--
	seq := uint16(r.pkt[2])<<8 | uint16(r.pkt[3]) + 1
	r.pkt[2], r.pkt[3] = byte(seq>>8), byte(seq)
	return copy(b, r.pkt), nil, nil
}

// BenchmarkReadLayer is the reader's loop around forward: one layer, three
// subscribers, no allocation per packet.
func BenchmarkReadLayer(b *testing.B) {
	up, _ := newBenchTrack(b, 3)
	r := &countedReader{pkt: vp8Packet(1, true), left: b.N}
	b.ReportAllocs()
	b.ResetTimer()
	up.readLayer(0, 1, r)
}

// countingSink adds to up a down-track that counts what it is sent.
func countingSink(up *upTrack) *countingWriter {
	d := newDownTrack(up, up.metrics, 0, 0, nil)
	w := &countingWriter{}
	d.writer, d.ssrc, d.pt = w, 99, 96
	up.AddSink(d)
	return w
}

// startReading reads r into up's layer as pion's OnTrack would; the
// channel closes when the reader returns.
func startReading(up *upTrack, layer int, ssrc uint32, r rtpReader) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		up.readLayer(layer, ssrc, r)
		close(done)
	}()
	return done
}
