package netcut

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// UDPRelay forwards datagrams between the clients that send to it and one
// target, as a NAT in front of the target would: each client address gets a
// socket of its own towards the target, and what the target sends to that
// socket goes back to that client. Both directions pass through a Link, so
// the path can be made thin, slow and lossy: the impaired network of the
// trunk tests, since the kernel here has no netem.
type UDPRelay struct {
	conn     *net.UDPConn
	up, down *Link

	mu     sync.Mutex
	target *net.UDPAddr
	assoc  map[string]*net.UDPConn
	closed bool
	wg     sync.WaitGroup
}

// ListenUDP starts a relay on an ephemeral port of 127.0.0.1 towards
// target; up impairs what clients send, down what the target sends back.
func ListenUDP(target string, up, down LinkConfig) (*UDPRelay, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("netcut: listen udp: %w", err)
	}
	r := &UDPRelay{conn: conn, up: NewLink(up), down: NewLink(down), assoc: map[string]*net.UDPConn{}}
	if err := r.SetTarget(target); err != nil {
		conn.Close()
		r.up.Close()
		r.down.Close()
		return nil, err
	}
	r.wg.Go(r.fromClients)
	return r, nil
}

// Addr is the address clients send to.
func (r *UDPRelay) Addr() *net.UDPAddr { return r.conn.LocalAddr().(*net.UDPAddr) }

// SetTarget sends what clients send from now on to target.
func (r *UDPRelay) SetTarget(target string) error {
	a, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		return fmt.Errorf("netcut: target %q: %w", target, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = a
	return nil
}

// Impair changes both directions' impairment from now on.
func (r *UDPRelay) Impair(up, down LinkConfig) {
	r.up.Set(up)
	r.down.Set(down)
}

// Stats reports what each direction did so far.
func (r *UDPRelay) Stats() (up, down LinkStats) { return r.up.Stats(), r.down.Stats() }

// Close stops the relay and closes its sockets.
func (r *UDPRelay) Close() error {
	r.mu.Lock()
	r.closed = true
	for _, c := range r.assoc {
		c.Close()
	}
	r.mu.Unlock()
	err := r.conn.Close()
	r.up.Close()
	r.down.Close()
	r.wg.Wait()
	return err
}

func (r *UDPRelay) fromClients() {
	buf := make([]byte, 65536)
	for {
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		out, target, closed := r.association(from)
		if closed {
			return
		}
		if out == nil {
			continue
		}
		r.up.Send(buf[:n], func(b []byte) { _, _ = out.WriteToUDP(b, target) })
	}
}

// association is the socket that speaks for client towards the target,
// opened at the client's first datagram (nil if that failed); closed once
// the relay is.
func (r *UDPRelay) association(client *net.UDPAddr) (*net.UDPConn, *net.UDPAddr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, nil, true
	}
	key := client.String()
	if c, ok := r.assoc[key]; ok {
		return c, r.target, false
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, nil, false
	}
	r.assoc[key] = c
	back := *client
	r.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			r.down.Send(buf[:n], func(b []byte) { _, _ = r.conn.WriteToUDP(b, &back) })
		}
	})
	return c, r.target, false
}
