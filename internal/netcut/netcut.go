// Package netcut is a TCP proxy on loopback whose path can be cut and
// healed: the network partition of the partition tests and of
// `entente bench federation --partition`.
//
// A cut is a blackhole, not a refusal. From the moment of the cut nothing is
// forwarded, in either direction, on the connections open at the time, and
// nothing ever will be again; connections opened during the cut are accepted
// and never forwarded. No FIN or RST reaches either end: each learns of the
// cut only from its own timeouts, as across a real partition or through a
// NAT that forgot the connection. After Heal, new connections are forwarded
// again; the ones the cut silenced stay dead until their ends give up.
//
// UDPRelay (udp.go) is its counterpart for datagrams: a thin link rather
// than a cut one, limited in rate, delayed and lossy (link.go).
package netcut

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds the proxy's own connection to its target.
const dialTimeout = 5 * time.Second

// Proxy forwards the connections it accepts to one target address.
type Proxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	closed bool
	links  map[*link]struct{}

	wg       sync.WaitGroup
	silenced atomic.Int64 // silenced connections their client has closed
}

// link is one accepted connection and, while live, its upstream.
type link struct {
	client, upstream net.Conn
	dead             atomic.Bool
}

// Listen starts a proxy on an ephemeral port of 127.0.0.1 forwarding to
// target.
func Listen(target string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("netcut: listen: %w", err)
	}
	p := &Proxy{l: l, target: target, links: make(map[*link]struct{})}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the host:port the proxy listens on.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Cut silences every open connection for good, and every connection
// accepted until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for l := range p.links {
		l.dead.Store(true)
	}
}

// Heal forwards connections accepted from now on.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Silenced counts the connections silenced by a cut that their client end
// has since closed by itself, having noticed that nothing comes back.
func (p *Proxy) Silenced() int64 { return p.silenced.Load() }

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for l := range p.links {
		l.client.Close()
		if l.upstream != nil {
			l.upstream.Close()
		}
	}
	p.mu.Unlock()
	err := p.l.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return // closed
		}
		l := &link{client: c}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		l.dead.Store(p.cut)
		p.links[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(l) })
	}
}

// serve forwards one connection both ways until either end closes it, or,
// once silenced, drains both ends without answering until each has closed.
func (p *Proxy) serve(l *link) {
	defer func() {
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
		l.client.Close()
		if l.upstream != nil {
			l.upstream.Close()
		}
	}()
	if !l.dead.Load() {
		up, err := net.DialTimeout("tcp", p.target, dialTimeout)
		if err != nil {
			return // as a refused connection would be: the target is down
		}
		p.mu.Lock()
		l.upstream = up
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return
		}
	}
	var wg sync.WaitGroup
	if l.upstream != nil {
		wg.Go(func() { p.pipe(l, l.upstream, l.client, false) })
	}
	p.pipe(l, l.client, l.upstream, true)
	wg.Wait()
}

// pipe copies src to dst while the link is live. On a live link the end of
// src ends both directions, as in any proxy; on a silenced one it is kept
// from the other end, which must find out by itself.
func (p *Proxy) pipe(l *link, src, dst net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !l.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil && !l.dead.Load() {
				closeBoth(l)
				return
			}
		}
		if err != nil {
			if l.dead.Load() {
				// A read on a connection Close closed is not the
				// client's doing.
				if fromClient && !errors.Is(err, net.ErrClosed) {
					p.silenced.Add(1)
				}
				return
			}
			closeBoth(l)
			return
		}
	}
}

func closeBoth(l *link) {
	l.client.Close()
	if l.upstream != nil {
		l.upstream.Close()
	}
}
