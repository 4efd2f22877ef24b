package media

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
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

func TestBatchHeldFanOutLeavesInOneCall(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp")
	r4, to4 := listenLoopback(t, "udp4", "127.0.0.1")
	r6, to6 := listenLoopback(t, "udp6", "::1")

	bc.out.hold()
	for i := range 10 {
		to := to4
		if i%2 == 1 {
			to = to6
		}
		if n, err := bc.WriteToAddrPort(fmt.Appendf(nil, "packet %d", i), to); err != nil || n != len(fmt.Sprintf("packet %d", i)) {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if got := counterValue(t, m.udpBatches); got != 0 {
		t.Fatalf("%v batches sent while the fan-out was held, want 0", got)
	}
	bc.out.release()

	for i, d := range readDatagrams(t, r4, 5) {
		if want := fmt.Sprintf("packet %d", 2*i); string(d) != want {
			t.Errorf("IPv4 datagram %d is %q, want %q", i, d, want)
		}
	}
	for i, d := range readDatagrams(t, r6, 5) {
		if want := fmt.Sprintf("packet %d", 2*i+1); string(d) != want {
			t.Errorf("IPv6 datagram %d is %q, want %q", i, d, want)
		}
	}
	if got := counterValue(t, m.udpBatches); got != 1 {
		t.Errorf("%v batches for one held fan-out, want 1", got)
	}
	if got := counterValue(t, m.udpSent); got != 10 {
		t.Errorf("%v datagrams counted as sent, want 10", got)
	}
}

func TestBatchUnheldWriteGoesAtOnce(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
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

func TestBatchFullQueueDropsAndCounts(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	const extra = 5
	bc.out.hold()
	for i := range sendQueueSize + extra {
		if _, err := bc.WriteToAddrPort(fmt.Appendf(nil, "%d", i), to); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if got := counterValue(t, m.udpDropped.WithLabelValues("queue_full")); got != extra {
		t.Fatalf("%v datagrams dropped on a full queue, want %d", got, extra)
	}
	bc.out.release()
	// The kernel may drop some at the receiver; the sender sent them all.
	testwait.Until(t, 30*time.Second, func() bool { return counterValue(t, m.udpSent) == sendQueueSize },
		"%v of %d queued datagrams sent", counterValue(t, m.udpSent), sendQueueSize)
	if d := readDatagrams(t, r, 1); string(d[0]) != "0" {
		t.Errorf("first datagram is %q, want %q", d[0], "0")
	}
}

func TestBatchRefusedDatagramDoesNotStopTheRest(t *testing.T) {
	bc, m := newTestBatchConn(t, "udp4")
	r, to := listenLoopback(t, "udp4", "127.0.0.1")
	bc.out.hold()
	// An IPv4-only socket cannot reach an IPv6 address.
	if _, err := bc.WriteToAddrPort([]byte("lost"), netip.MustParseAddrPort("[2001:db8::1]:9")); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.WriteToAddrPort([]byte("after"), to); err != nil {
		t.Fatal(err)
	}
	bc.out.release()
	if d := readDatagrams(t, r, 1); string(d[0]) != "after" {
		t.Fatalf("got %q, want %q", d[0], "after")
	}
	if got := counterValue(t, m.udpDropped.WithLabelValues("send_error")); got != 1 {
		t.Errorf("%v datagrams dropped on a send error, want 1", got)
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
