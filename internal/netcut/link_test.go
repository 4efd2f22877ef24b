package netcut

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
)

// collector gathers what a link delivers.
type collector struct {
	mu  sync.Mutex
	got [][]byte
	at  []time.Time
}

func (c *collector) deliver(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, b)
	c.at = append(c.at, time.Now())
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestLinkLossIsSeeded(t *testing.T) {
	lost := func() []int {
		l := NewLink(LinkConfig{Loss: 0.1, Seed: 7})
		defer l.Close()
		c := &collector{}
		var kept []int
		for i := range 1000 {
			before := l.Stats().Lost
			l.Send([]byte{byte(i)}, c.deliver)
			if l.Stats().Lost == before {
				kept = append(kept, i)
			}
		}
		testwait.Until(t, 10*time.Second, func() bool { return c.count() == len(kept) }, "delivered %d of %d", c.count(), len(kept))
		if n := 1000 - len(kept); n < 60 || n > 140 {
			t.Fatalf("lost %d of 1000 at 10 %%", n)
		}
		return kept
	}
	a, b := lost(), lost()
	if len(a) != len(b) {
		t.Fatalf("two runs with one seed kept %d and %d datagrams", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("two runs with one seed differ at %d: %d, %d", i, a[i], b[i])
		}
	}
}

func TestLinkRateAndQueue(t *testing.T) {
	// 1 Mbit/s: 1250-byte datagrams leave every 10 ms once the bucket's
	// 3000 bytes are spent; a 100 ms queue holds about ten of them.
	l := NewLink(LinkConfig{Rate: 1_000_000, Queue: 100 * time.Millisecond, Delay: 20 * time.Millisecond})
	defer l.Close()
	c := &collector{}
	start := time.Now()
	for i := range 40 {
		b := bytes.Repeat([]byte{byte(i)}, 1250)
		l.Send(b, c.deliver)
	}
	st := l.Stats()
	accepted := 40 - int(st.Overflow)
	if accepted < 11 || accepted > 15 {
		t.Fatalf("accepted %d datagrams of a burst of 40 into a 100 ms queue at 1 Mbit/s, want about 12", accepted)
	}
	testwait.Until(t, 10*time.Second, func() bool { return c.count() == accepted }, "delivered %d of %d", c.count(), accepted)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range c.got {
		if i > 0 && b[0] <= c.got[i-1][0] {
			t.Fatalf("datagram %d delivered out of order", b[0])
		}
	}
	// The first leaves after the delay; the last after the time the rate
	// takes to carry what exceeded the bucket, plus the delay.
	if d := c.at[0].Sub(start); d < 20*time.Millisecond {
		t.Fatalf("first datagram after %v, want at least the 20 ms delay", d)
	}
	min := time.Duration(float64(accepted*1250-3000)*8/1e6*float64(time.Second)) + 20*time.Millisecond
	if d := c.at[len(c.at)-1].Sub(start); d < min-2*time.Millisecond {
		t.Fatalf("last of %d datagrams after %v, want at least %v at 1 Mbit/s", accepted, d, min)
	}
}

func TestUDPRelayForwardsBothWays(t *testing.T) {
	target, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	r, err := ListenUDP(target.LocalAddr().String(), LinkConfig{Delay: 5 * time.Millisecond}, LinkConfig{Delay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	client, err := net.DialUDP("udp4", nil, r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = target.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := target.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("target read %q, %v; want ping", buf[:n], err)
	}
	if from.String() == client.LocalAddr().String() {
		t.Fatalf("the target saw the client's own address %s, not the relay's", from)
	}
	if _, err := target.WriteToUDP([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err = client.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("client read %q, %v; want pong", buf[:n], err)
	}
	up, down := r.Stats()
	if up.Delivered != 1 || down.Delivered != 1 || up.Bytes != 4 || down.Bytes != 4 {
		t.Fatalf("stats up %+v down %+v, want one 4-byte datagram each way", up, down)
	}
}
