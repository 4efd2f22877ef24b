package media

import (
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtp"
)

func rtpPacket(t testing.TB, seq uint16) []byte {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 77}, Payload: make([]byte, 80)}
	b, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An interceptor above the cache sees each packet's own header, not the
// previous one's; a packet that does not parse reaches it without
// attributes, so it refuses the packet as it would without the cache.
func TestHeaderCacheGivesEachPacketsHeader(t *testing.T) {
	q := &packetQueue{}
	for seq := range uint16(3) {
		q.pkts = append(q.pkts, rtpPacket(t, 1000+seq))
	}
	q.pkts = append(q.pkts, []byte{0x80, 111, 0}) // truncated
	q.pkts = append(q.pkts, rtpPacket(t, 1003))
	cache, err := headerCacheFactory{}.NewInterceptor("")
	if err != nil {
		t.Fatal(err)
	}
	r := cache.BindRemoteStream(&interceptor.StreamInfo{SSRC: 77}, q)
	buf := make([]byte, maxPacketSize)
	for _, want := range []int{1000, 1001, 1002, -1, 1003} {
		n, a, err := r.Read(buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want < 0 {
			if a != nil {
				t.Fatal("a packet that does not parse came with attributes")
			}
			if _, err := a.GetRTPHeader(buf[:n]); err == nil {
				t.Fatal("the truncated packet parsed")
			}
			continue
		}
		h, err := a.GetRTPHeader(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if h.SequenceNumber != uint16(want) || h.SSRC != 77 {
			t.Fatalf("header of packet %d: sequence number %d, ssrc %d", want, h.SequenceNumber, h.SSRC)
		}
	}
}

// BenchmarkReceiverReportRead is what pion's receiver-report interceptor
// costs per received packet, above the header cache as on a publish
// connection, and alone.
func BenchmarkReceiverReportRead(b *testing.B) {
	for _, cached := range []bool{true, false} {
		name := "alone"
		if cached {
			name = "above-cache"
		}
		b.Run(name, func(b *testing.B) {
			f, err := report.NewReceiverInterceptor()
			if err != nil {
				b.Fatal(err)
			}
			rr, err := f.NewInterceptor("")
			if err != nil {
				b.Fatal(err)
			}
			defer rr.Close()
			raw := rtpPacket(b, 0)
			var r interceptor.RTPReader = &loopQueue{pkt: raw}
			info := &interceptor.StreamInfo{SSRC: 77, ClockRate: 48000}
			if cached {
				r = (&headerCache{}).BindRemoteStream(info, r)
			}
			r = rr.BindRemoteStream(info, r)
			buf := make([]byte, maxPacketSize)
			b.ReportAllocs()
			for n := 0; b.Loop(); n++ {
				raw[2], raw[3] = byte(n>>8), byte(n)
				if _, _, err := r.Read(buf, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
