package media

import (
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// rtcpRecorder keeps the RTCP an interceptor writes.
type rtcpRecorder struct {
	mu   sync.Mutex
	pkts []rtcp.Packet
}

func (r *rtcpRecorder) Write(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pkts = append(r.pkts, pkts...)
	return len(pkts), nil
}

func (r *rtcpRecorder) feedback() []*rtcp.TransportLayerCC {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*rtcp.TransportLayerCC
	for _, p := range r.pkts {
		if cc, ok := p.(*rtcp.TransportLayerCC); ok {
			out = append(out, cc)
		}
	}
	return out
}

// packetQueue is an RTP reader over prepared packets.
type packetQueue struct{ pkts [][]byte }

func (q *packetQueue) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	n := copy(b, q.pkts[0])
	q.pkts = q.pkts[1:]
	return n, a, nil
}

func twccPacket(t *testing.T, seq, transportSeq uint16) []byte {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, SSRC: 4242}, Payload: []byte{1, 2, 3}}
	if err := pkt.Header.SetExtension(5, []byte{byte(transportSeq >> 8), byte(transportSeq)}); err != nil {
		t.Fatal(err)
	}
	b, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The feedback names the stream and every transport-wide sequence number
// that arrived, in the reading goroutine's order.
func TestTWCCFeedbackReportsArrivals(t *testing.T) {
	i, err := twccFeedbackFactory{}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	out := &rtcpRecorder{}
	i.BindRTCPWriter(out)

	audio := &packetQueue{}
	if got := i.BindRemoteStream(&interceptor.StreamInfo{SSRC: 1}, audio); got != interceptor.RTPReader(audio) {
		t.Fatal("a stream without the extension is wrapped")
	}

	q := &packetQueue{}
	for k := range uint16(5) {
		q.pkts = append(q.pkts, twccPacket(t, 100+k, 7000+k))
	}
	r := i.BindRemoteStream(&interceptor.StreamInfo{SSRC: 4242, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{
		{URI: sdp.TransportCCURI, ID: 5},
	}}, q)
	buf := make([]byte, maxPacketSize)
	for range 5 {
		if _, _, err := r.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
	}
	testwait.Until(t, 5*time.Second, func() bool { return len(out.feedback()) > 0 }, "no transport-cc feedback")
	fb := out.feedback()[0]
	if fb.MediaSSRC != 4242 || fb.BaseSequenceNumber != 7000 || fb.PacketStatusCount != 5 {
		t.Fatalf("feedback for ssrc %d from %d, %d packets; want 4242 from 7000, 5 packets", fb.MediaSSRC, fb.BaseSequenceNumber, fb.PacketStatusCount)
	}
	if len(fb.RecvDeltas) != 5 {
		t.Fatalf("%d arrival deltas, want 5", len(fb.RecvDeltas))
	}
}

// loopQueue is an RTP reader that returns one packet again and again.
type loopQueue struct{ pkt []byte }

func (q *loopQueue) Read(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
	return copy(b, q.pkt), a, nil
}

// BenchmarkTWCCRecord is the per-packet cost of transport-cc feedback on a
// received video packet: it must not allocate.
func BenchmarkTWCCRecord(b *testing.B) {
	i, err := twccFeedbackFactory{}.NewInterceptor("")
	if err != nil {
		b.Fatal(err)
	}
	defer i.Close()
	i.BindRTCPWriter(&rtcpRecorder{})
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 4242}, Payload: make([]byte, 1000)}
	if err := pkt.Header.SetExtension(5, []byte{0, 0}); err != nil {
		b.Fatal(err)
	}
	raw, err := pkt.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	q := &loopQueue{pkt: raw}
	r := i.BindRemoteStream(&interceptor.StreamInfo{SSRC: 4242, RTPHeaderExtensions: []interceptor.RTPHeaderExtension{
		{URI: sdp.TransportCCURI, ID: 5},
	}}, q)
	buf := make([]byte, maxPacketSize)
	extAt := len(raw) - len(pkt.Payload) - 4 // the 2-byte value, padded to 4
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		raw[extAt+1], raw[extAt+2] = byte(n>>8), byte(n)
		if _, _, err := r.Read(buf, nil); err != nil {
			b.Fatal(err)
		}
	}
}
