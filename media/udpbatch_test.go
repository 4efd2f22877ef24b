package media

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
	"github.com/prometheus/client_golang/prometheus"
)

// newTestBatchConn opens a batched socket on network ("udp" is dual-stack,
// as the node's media.udp_port) and a receiver on loopback.
func newTestBatchConn(t *testing.T, network string) (*batchConn, *metrics) {
	t.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP(network, &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := newBatchConn(conn, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bc.Close() })
	return bc, m
}

func listenLoopback(t *testing.T, network, ip string) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	r, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	t.Cleanup(func() { _ = r.Close() })
	_ = r.SetReadBuffer(4 << 20)
	return r, r.LocalAddr().(*net.UDPAddr).AddrPort()
}

// readDatagrams reads n datagrams from r, with a generous deadline.
func readDatagrams(t *testing.T, r *net.UDPConn, n int) [][]byte {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got [][]byte
	buf := make([]byte, 2048)
	for len(got) < n {
		k, _, err := r.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, bytes.Clone(buf[:k]))
	}
	return got
}

// rtpLike is s after a first byte of 0x80, which makes a datagram RTP or
// RTCP to the socket (RFC 7983): only those are queued.
func rtpLike(s string) []byte { return append([]byte{0x80}, s...) }

func TestBatchHeldFanOutLeavesInOneCallPerSender(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp")
	r4, to4 := listenLoopback(t, "udp4", "127.0.0.1")
	r6, to6 := listenLoopback(t, "udp6", "::1")

	bc.out.hold()
	for i := range 10 {
		to := to4
		if i%2 == 1 {
			to = to6
		}
		if n, err := bc.WriteToAddrPort(rtpLike(fmt.Sprintf("packet %d", i)), to); err != nil || n != len(rtpLike(fmt.Sprintf("packet %d", i))) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if got := counterValue(t, m.udpBatches); got != 0 {
		t.Fatalf("%v batches sent while the fan-out was held, want 0", got)
	}
	bc.out.release()

	for i, d := range readDatagrams(t, r4, 5) {
		if want := string(rtpLike(fmt.Sprintf("packet %d", 2*i))); string(d) != want {
			t.Errorf("IPv4 datagram %d is %q, want %q", i, d, want)
		}
	}
	for i, d := range readDatagrams(t, r6, 5) {
		if want := string(rtpLike(fmt.Sprintf("packet %d", 2*i+1))); string(d) != want {
			t.Errorf("IPv6 datagram %d is %q, want %q", i, d, want)
		}
	}
	testwait.Until(t, 30*time.Second, func() bool { return counterValue(t, m.udpSent) == 10 },
		"%v datagrams counted as sent, want 10", counterValue(t, m.udpSent))
	// One call per sender the two destinations go through.
	want := 1.0
	if n := len(bc.out.senders); senderOf(to4, n) != senderOf(to6, n) {
		want = 2
	}
	if got := counterValue(t, m.udpBatches); got != want {
		t.Errorf("%v batches for one held fan-out, want %v", got, want)
	}
}

func TestBatchLargeFanOutStartsBeforeItsEnd(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	bc.out.hold()
	defer bc.out.release()
	for i := range sendBatchMax {
		if _, err := bc.WriteToAddrPort(rtpLike(fmt.Sprint(i)), to); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	// Still held: the first sendBatchMax datagrams go without waiting for
	// the fan-out's end.
	sentFromZero(t, m, r, sendBatchMax)
}

// sentFromZero waits until n datagrams, numbered from "0", count as sent,
// and checks that the first reached r. The kernel may drop some at the
// receiver, so only the first is read.
func sentFromZero(t *testing.T, m *metrics, r *net.UDPConn, n int) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() bool { return counterValue(t, m.udpSent) == float64(n) },
		"%v of %d datagrams sent", counterValue(t, m.udpSent), n)
	if d := readDatagrams(t, r, 1); string(d[0]) != string(rtpLike("0")) {
		t.Errorf("first datagram is %q, want %q", d[0], rtpLike("0"))
	}
}

func TestBatchUnheldWriteGoesDirectly(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	// Outside a fan-out the sender is not involved: stuck, it delays nothing.
	_, open := gateSender(bc, to)
	defer open()
	if _, err := bc.WriteTo([]byte("stun"), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatal(err)
	}
	if d := readDatagrams(t, r, 1); string(d[0]) != "stun" {
		t.Fatalf("got %q, want %q", d[0], "stun")
	}
	if _, err := bc.WriteTo([]byte("x"), &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		t.Fatal("a write to a non-UDP address was accepted")
	}
	if got := counterValue(t, m.udpSent); got != 1 {
		t.Errorf("%v datagrams counted as sent, want 1", got)
	}
}

// STUN and DTLS (a join's handshake, data channel messages) never wait for
// a fan-out or for the media queued before them: they go at once, even
// while the sender is stuck.
func TestBatchHandshakeNeverWaitsForAFanOut(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	_, open := gateSender(bc, to)
	defer open()
	bc.out.hold()
	if _, err := bc.WriteToAddrPort(rtpLike("media"), to); err != nil {
		t.Fatal(err)
	}
	stun := []byte{0x00, 0x01, 's', 't', 'u', 'n'}
	dtls := []byte{22, 0xfe, 0xfd, 'd', 't', 'l', 's'}
	for _, b := range [][]byte{stun, dtls} {
		if _, err := bc.WriteToAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	got := readDatagrams(t, r, 2)
	if !bytes.Equal(got[0], stun) || !bytes.Equal(got[1], dtls) {
		t.Fatalf("during the fan-out received %q, %q; want the STUN, then the DTLS datagram", got[0], got[1])
	}
	bc.out.release()
	open()
	if d := readDatagrams(t, r, 1); !bytes.Equal(d[0], rtpLike("media")) {
		t.Fatalf("after the fan-out received %q, want %q", d[0], rtpLike("media"))
	}
	testwait.Until(t, 30*time.Second, func() bool { return counterValue(t, m.udpSent) == 3 },
		"%v datagrams counted as sent, want 3", counterValue(t, m.udpSent))
}

// gatedWriter holds every batch until its gate opens: a sender that has
// fallen behind.
type gatedWriter struct {
	gate  chan struct{}
	inner batchWriter
}

func (w gatedWriter) write(ds []*outDatagram) (int, error) {
	<-w.gate
	return w.inner.write(ds)
}

// gateSender makes the sender of to hold its batches until the returned
// function is called.
func gateSender(bc *batchConn, to netip.AddrPort) (*batchSender, func()) {
	s := bc.out.senders[senderOf(to, len(bc.out.senders))]
	gate := make(chan struct{})
	s.sys = gatedWriter{gate: gate, inner: s.sys}
	var once sync.Once
	return s, func() { once.Do(func() { close(gate) }) }
}

func TestBatchDatagramNeverOvertakesAQueuedOne(t *testing.T) {
	bc, _ := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	s, open := gateSender(bc, to)
	defer open()
	bc.out.hold()
	if _, err := bc.WriteToAddrPort(rtpLike("first"), to); err != nil {
		t.Fatal(err)
	}
	bc.out.release()
	// The sender has taken "first" and is stuck sending it.
	testwait.Until(t, 30*time.Second, func() bool { return s.waiting.Load() == 0 }, "the sender never took the datagram")
	// Outside any fan-out, yet behind "first": queued, not sent at once.
	if _, err := bc.WriteToAddrPort(rtpLike("second"), to); err != nil {
		t.Fatal(err)
	}
	open()
	got := readDatagrams(t, r, 2)
	if string(got[0]) != string(rtpLike("first")) || string(got[1]) != string(rtpLike("second")) {
		t.Fatalf("received %q, %q; want first, second", got[0], got[1])
	}
}

func TestBatchFullQueueWaitsForRoom(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	_, open := gateSender(bc, to)
	defer open()
	const total = sendQueueSize + 5
	done := make(chan error, 1)
	go func() {
		bc.out.hold()
		defer bc.out.release()
		for i := range total {
			if _, err := bc.WriteToAddrPort(rtpLike(fmt.Sprint(i)), to); err != nil {
				done <- fmt.Errorf("write %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	// The sender is stuck in its first batch: the writer fills the queue
	// and waits for room, dropping nothing.
	testwait.Until(t, 30*time.Second, func() bool { return counterValue(t, m.udpFull) >= 1 }, "the writer never found the queue full")
	select {
	case err := <-done:
		t.Fatalf("the writer finished past a full queue: %v", err)
	default:
	}
	open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sentFromZero(t, m, r, total)
}

func TestBatchCloseReleasesAWriterWaitingForRoom(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	_, to := listenLoopback(t, "udp4", "127.0.0.1")
	s, open := gateSender(bc, to)
	defer open()
	done := make(chan error, 1)
	go func() {
		bc.out.hold()
		defer bc.out.release()
		for {
			if _, err := bc.WriteToAddrPort(rtpLike("x"), to); err != nil {
				done <- err
				return
			}
		}
	}()
	testwait.Until(t, 30*time.Second, func() bool { return counterValue(t, m.udpFull) >= 1 }, "the writer never found the queue full")
	s.stop()
	select {
	case err := <-done:
		if !errors.Is(err, errBatchClosed) {
			t.Fatalf("the waiting writer got %v, want %v", err, errBatchClosed)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stop left a writer waiting for room")
	}
}

func TestBatchRefusedDatagramDoesNotStopTheRest(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	bc.out.hold()
	// An IPv4-only socket cannot reach an IPv6 address.
	if _, err := bc.WriteToAddrPort(rtpLike("lost"), netip.MustParseAddrPort("[2001:db8::1]:9")); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.WriteToAddrPort(rtpLike("after"), to); err != nil {
		t.Fatal(err)
	}
	bc.out.release()
	if d := readDatagrams(t, r, 1); string(d[0]) != string(rtpLike("after")) {
		t.Fatalf("got %q, want %q", d[0], rtpLike("after"))
	}
	if got := counterValue(t, m.udpErrors); got != 1 {
		t.Errorf("%v datagrams refused by the kernel, want 1", got)
	}
}

func TestBatchConnRefusesWritesOnceClosed(t *testing.T) {
	bc, _ := newTestBatchConn(t, "udp")
	_, to := listenLoopback(t, "udp4", "127.0.0.1")
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.WriteToAddrPort([]byte("late"), to); err == nil {
		t.Fatal("a write after Close was accepted")
	}
	if _, err := bc.WriteToAddrPort(make([]byte, maxPacketSize+1), to); err == nil {
		t.Fatal("an oversized datagram was accepted")
	}
}

func TestSenderOfSpreadsPortsAndKeepsADestination(t *testing.T) {
	seen := map[int]bool{}
	for port := uint16(40000); port < 40016; port++ {
		to := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), port)
		i := senderOf(to, 4)
		if i < 0 || i >= 4 {
			t.Fatalf("sender %d of 4", i)
		}
		if senderOf(to, 4) != i {
			t.Fatalf("%v moved from sender %d", to, i)
		}
		seen[i] = true
	}
	if len(seen) != 4 {
		t.Errorf("16 ports of one address went through %d of 4 senders", len(seen))
	}
}

// holdProbe is a sink that records whether the senders were held while it
// was written to.
type holdProbe struct {
	g    *sendGroup
	held *[]bool
}

func (p holdProbe) WriteRTP(*Packet) { *p.held = append(*p.held, p.g.holds.Load() > 0) }
func (holdProbe) Close()             {}

// A fan-out from batchFanOut to below batchFanOutMax sinks is held for the
// senders; a smaller or a larger one is written by the reader at once.
func TestForwardHoldsOnlyAMidSizedFanOut(t *testing.T) {
	for _, c := range []struct {
		sinks int
		held  bool
	}{{1, false}, {batchFanOut - 1, false}, {batchFanOut, true}, {batchFanOutMax - 1, true}, {batchFanOutMax, false}, {49, false}} {
		up := newAudioToTrunk(t, &discardWriter{})
		up.RemoveSink((*up.sinks.Load())[0])
		up.out = &sendGroup{}
		var held []bool
		for range c.sinks {
			up.AddSink(holdProbe{g: up.out, held: &held})
		}
		up.forward(0, opusPacket(1, 0x80), time.Now().UnixNano())
		if len(held) != c.sinks {
			t.Fatalf("%d sinks: %d written, want all", c.sinks, len(held))
		}
		for i, h := range held {
			if h != c.held {
				t.Fatalf("%d sinks: sink %d written with the senders held %v, want %v", c.sinks, i, h, c.held)
			}
		}
		if n := up.out.holds.Load(); n != 0 {
			t.Fatalf("%d sinks: %d holds left after the fan-out", c.sinks, n)
		}
	}
}
