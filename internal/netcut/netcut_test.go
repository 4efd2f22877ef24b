package netcut

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoServer answers each line with the same line, and remembers them all.
type echoServer struct {
	l    net.Listener
	mu   sync.Mutex
	seen []string
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{l: l}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					e.mu.Lock()
					e.seen = append(e.seen, r.Text())
					e.mu.Unlock()
					if _, err := c.Write([]byte(r.Text() + "\n")); err != nil {
						return
					}
				}
			})
		}
	})
	return e
}

func (e *echoServer) lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a line and reads the echo within a generous deadline.
func roundTrip(t *testing.T, c net.Conn, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// silent sends a line and checks that nothing comes back and that the
// connection is not closed: the read ends by its own deadline.
func silent(t *testing.T, c net.Conn, line string) {
	t.Helper()
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("write %q on a silenced connection: %v (a blackhole takes writes)", line, err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	n, err := c.Read(make([]byte, 64))
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a silenced connection: %d bytes, %v; want nothing until the deadline", n, err)
	}
}

func TestCutSilencesAndHealForwardsNewConnections(t *testing.T) {
	e := newEchoServer(t)
	p, err := Listen(e.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	before := dial(t, p)
	roundTrip(t, before, "before the cut")

	p.Cut()
	silent(t, before, "on an open connection during the cut")
	during := dial(t, p) // accepted, as a blackhole's SYN would not be refused
	silent(t, during, "on a connection opened during the cut")

	p.Heal()
	after := dial(t, p)
	roundTrip(t, after, "after the heal")
	silent(t, before, "on the open connection after the heal")
	silent(t, during, "on the connection opened during the cut, after the heal")

	if got, want := strings.Join(e.lines(), "|"), "before the cut|after the heal"; got != want {
		t.Errorf("the target received %q, want %q", got, want)
	}

	// A client that gives up on a silenced connection is counted.
	if n := p.Silenced(); n != 0 {
		t.Fatalf("Silenced = %d before any client closed", n)
	}
	before.Close()
	deadline := time.Now().Add(10 * time.Second)
	for p.Silenced() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Silenced = %d after the client closed its silenced connection, want 1", p.Silenced())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
