package media

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// A stream's counter unwraps sequence numbers, counts what was skipped as
// lost, and takes a late packet as received without moving the highest.
func TestLinkCounterCountsLoss(t *testing.T) {
	var l linkCounter
	now := time.Now().UnixNano()
	seqs := []uint16{65530, 65531, 65533, 65534, 1, 0, 2, 3, 7}
	for i, s := range seqs {
		l.note(s, uint32(i)*960, now+int64(i)*int64(20*time.Millisecond), 48000)
	}
	// 65530 to 7 is 14 numbers; 9 arrived.
	if got, want := l.packets.Load(), uint64(9); got != want {
		t.Errorf("packets %d, want %d", got, want)
	}
	if got, want := l.expected.Load(), uint64(14); got != want {
		t.Errorf("expected %d, want %d", got, want)
	}
}

// Packets paced exactly as their timestamps have no jitter; packets
// arriving 10 ms early and late in turn converge towards 10 ms of it.
func TestLinkCounterJitter(t *testing.T) {
	var steady, uneven linkCounter
	start := time.Now().UnixNano()
	for i := range 400 {
		at := start + int64(i)*int64(20*time.Millisecond)
		steady.note(uint16(i), uint32(i*960), at, 48000)
		if i%2 == 1 {
			at += int64(10 * time.Millisecond)
		}
		uneven.note(uint16(i), uint32(i*960), at, 48000)
	}
	if j := steady.jitterSec; j > 1e-6 {
		t.Errorf("steady stream: jitter %v s", j)
	}
	if j := uneven.jitterSec; j < 0.009 || j > 0.0101 {
		t.Errorf("uneven stream: jitter %v s, want about 0.010", j)
	}
}

// The round trip of a report block is now less LSR and DLSR (RFC 3550
// §6.4.1), in 1/65536 s; a block answering no sender report has none.
func TestRoundTripFromReceiverReport(t *testing.T) {
	sent := time.Now()
	now := sent.Add(250 * time.Millisecond)
	b := rtcp.ReceptionReport{LastSenderReport: ntpMiddle(sent), Delay: 65536 / 10} // held 100 ms
	rtt, ok := roundTrip(b, now)
	if !ok || rtt < 149*time.Millisecond || rtt > 151*time.Millisecond {
		t.Errorf("round trip %v %v, want 150ms", rtt, ok)
	}
	if _, ok := roundTrip(rtcp.ReceptionReport{}, now); ok {
		t.Error("a block without LSR gave a round trip")
	}
	var r reportCounter
	r.note(rtcp.ReceptionReport{FractionLost: 64, Jitter: 480, LastSenderReport: ntpMiddle(sent), Delay: 65536 / 10}, 48000, now)
	if r.count.Load() != 1 || r.lost.Load() != 64 || time.Duration(r.jitter.Load()) != 10*time.Millisecond || time.Duration(r.rtt.Load()) < 149*time.Millisecond {
		t.Errorf("report counter: %d %d %v %v", r.count.Load(), r.lost.Load(), time.Duration(r.jitter.Load()), time.Duration(r.rtt.Load()))
	}
}
