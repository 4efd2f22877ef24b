package media

import (
	"testing"
	"time"
)

func TestNTPTime(t *testing.T) {
	cases := []struct {
		at   time.Time
		want uint64
	}{
		{time.Unix(0, 0), ntpEpochOffset << 32},
		{time.Unix(1, int64(time.Second/2)), (ntpEpochOffset+1)<<32 | 1<<31},
		{time.Unix(10, int64(time.Second/4)), (ntpEpochOffset+10)<<32 | 1<<30},
	}
	for _, c := range cases {
		if got := ntpTime(c.at); got != c.want {
			t.Errorf("ntpTime(%v) = %#x, want %#x", c.at, got, c.want)
		}
	}
}

// A down-track's sender report counts the packets and payload octets it
// sent, and continues the RTP clock of its last frame to the report's time.
func TestSenderReportCountsWhatWasSent(t *testing.T) {
	up, writers := newBenchTrack(t, 1)
	d := (*up.sinks.Load())[0].(*downTrack)
	now := time.Now()
	if _, ok := d.senderReport(now); ok {
		t.Fatal("sender report before any packet was sent")
	}
	up.forward(0, vp8Packet(500, false), now.UnixNano()) // before the keyframe: not sent
	for seq := uint16(501); seq < 511; seq++ {
		up.forward(0, vp8Packet(seq, seq == 501), now.UnixNano())
	}
	if writers[0].packets != 10 {
		t.Fatalf("sent %d packets, want 10", writers[0].packets)
	}
	at := now.Add(100 * time.Millisecond)
	r, ok := d.senderReport(at)
	if !ok {
		t.Fatal("no sender report after 10 packets")
	}
	// vp8Packet stamps seq*3000; 100 ms later at 90 kHz is 9000 more.
	if r.SSRC != 99 || r.PacketCount != 10 || r.OctetCount != 10*1002 ||
		r.RTPTime != 510*3000+9000 || r.NTPTime != ntpTime(at) {
		t.Fatalf("sender report %+v, want ssrc 99, 10 packets, %d octets, rtp time %d, ntp %#x",
			r, 10*1002, 510*3000+9000, ntpTime(at))
	}
	d.Close()
	if _, ok := d.senderReport(at); ok {
		t.Fatal("sender report after the down-track closed")
	}
}
