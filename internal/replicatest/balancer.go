package replicatest

import (
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Balancer is a TCP load balancer in front of the replicas, as a
// Kubernetes Service is: it passes each connection (TLS and all) to the
// next replica in turn that accepts it, skipping those removed.
type Balancer struct {
	l     net.Listener
	mu    sync.Mutex
	addrs []string
	next  int
	wg    sync.WaitGroup
	conns map[net.Conn]struct{}
}

// NewBalancer listens on a loopback port.
func NewBalancer() (*Balancer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Balancer{l: l, conns: map[net.Conn]struct{}{}}
	b.wg.Go(b.serve)
	return b, nil
}

// Addr is where clients connect.
func (b *Balancer) Addr() string { return b.l.Addr().String() }

// Add puts a replica in rotation.
func (b *Balancer) Add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs = append(b.addrs, addr)
}

// Remove takes a replica out of rotation, as Kubernetes removes a
// terminating pod from its Service; open connections stay.
func (b *Balancer) Remove(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs = slices.DeleteFunc(b.addrs, func(a string) bool { return a == addr })
}

// Drop ends every open connection, as a load balancer that is reconfigured
// or restarted does: clients connect again, to the replicas in rotation now.
func (b *Balancer) Drop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
}

// Close stops listening and ends every connection.
func (b *Balancer) Close() {
	b.l.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Balancer) serve() {
	for {
		c, err := b.l.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.pass(c) })
	}
}

// pass tries the replicas in turn, from the next one, until one accepts.
func (b *Balancer) pass(c net.Conn) {
	b.mu.Lock()
	addrs := slices.Clone(b.addrs)
	start := b.next
	b.next++
	b.mu.Unlock()
	var up net.Conn
	for i := range addrs {
		a := addrs[(start+i)%len(addrs)]
		var err error
		if up, err = net.DialTimeout("tcp", a, 2*time.Second); err == nil {
			break
		}
	}
	if up == nil {
		c.Close()
		return
	}
	b.track(c, up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
	b.untrack(c, up)
}

func (b *Balancer) track(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		b.conns[c] = struct{}{}
	}
}

func (b *Balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(b.conns, c)
	}
}
