package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The shared media socket (media.udp_port) carries every participant's
// media. Writing each forwarded packet with its own sendto(2) from the
// publisher's reader costs a system call per subscriber. batchConn hands
// the socket to pion's ICE mux as its net.PacketConn: reads go straight to
// the socket, and writes are copied into a queue that one sender goroutine,
// which owns the socket's writing side, sends with sendmmsg(2), as many
// datagrams per call as are waiting.
//
// A publisher's reader forwarding a packet to its subscribers holds the
// batch open (hold and release) so that the whole fan-out goes out in one
// call; every other write (ICE, DTLS, RTCP, trunks) wakes the sender at
// once when no fan-out is under way, and otherwise goes with the fan-out.

const (
	// sendQueueSize bounds the datagrams waiting for the sender. A full
	// queue drops the datagram, as a full socket buffer would: the sender
	// has fallen behind by far more than any fan-out.
	sendQueueSize = 2048
	// sendBatchMax is the most datagrams one sendmmsg(2) carries.
	sendBatchMax = 64
)

var errBatchClosed = errors.New("media socket closed")

// outDatagram is one queued datagram.
type outDatagram struct {
	to  netip.AddrPort
	n   int
	buf [maxPacketSize]byte
}

// batchConn is the shared media socket with batched writes.
type batchConn struct {
	*net.UDPConn
	out *batchSender

	closeOnce sync.Once
}

// batchSender owns the writing side of one socket.
type batchSender struct {
	conn *net.UDPConn
	// sys sends a batch with the platform's best call (udpbatch_linux.go).
	sys batchWriter

	mu sync.Mutex
	// ring holds the queued datagrams from head to head+queued.
	ring   []outDatagram
	head   int
	queued int
	closed bool

	// waiting counts datagrams queued and not yet taken by the sender;
	// holds counts fan-outs under way. Both are read without mu to decide
	// who wakes the sender.
	waiting atomic.Int32
	holds   atomic.Int32
	wake    chan struct{}
	done    chan struct{}

	sentPackets prometheus.Counter
	batches     prometheus.Counter
	dropFull    prometheus.Counter
	dropError   prometheus.Counter
}

// batchWriter sends datagrams; it returns how many it sent, and an error
// when the first of them could not be sent.
type batchWriter interface {
	write(ds []*outDatagram) (int, error)
}

func newBatchConn(conn *net.UDPConn, m *metrics) (*batchConn, error) {
	s := &batchSender{
		conn:        conn,
		ring:        make([]outDatagram, sendQueueSize),
		wake:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		sentPackets: m.udpSent,
		batches:     m.udpBatches,
		dropFull:    m.udpDropped.WithLabelValues("queue_full"),
		dropError:   m.udpDropped.WithLabelValues("send_error"),
	}
	w, err := newBatchWriter(conn)
	if err != nil {
		return nil, err
	}
	s.sys = w
	go s.run()
	return &batchConn{UDPConn: conn, out: s}, nil
}

// ReadFromAddrPort and WriteToAddrPort make the ICE mux read and write
// without converting addresses (pion/ice AddrPortReaderWriter).
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

func (c *batchConn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	return c.out.enqueue(b, to)
}

func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: errors.New("not a UDP address")}
	}
	return c.out.enqueue(b, ua.AddrPort())
}

func (c *batchConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.out.stop()
		err = c.UDPConn.Close()
		<-c.out.done
	})
	return err
}

// hold keeps the sender from being woken until release: the caller is
// about to write several datagrams at once. Safe on a nil sender.
func (s *batchSender) hold() {
	if s != nil {
		s.holds.Add(1)
	}
}

// release ends a hold, waking the sender if the last hold ends with
// datagrams waiting.
func (s *batchSender) release() {
	if s != nil && s.holds.Add(-1) == 0 && s.waiting.Load() > 0 {
		s.signal()
	}
}

func (s *batchSender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue copies b for the sender. It never blocks: when the queue is full
// the datagram is dropped and counted, as the kernel drops one that finds
// the socket buffer full.
func (s *batchSender) enqueue(b []byte, to netip.AddrPort) (int, error) {
	if len(b) > maxPacketSize {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: errors.New("datagram larger than the media MTU")}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, &net.OpError{Op: "write", Net: "udp", Err: errBatchClosed}
	}
	if s.queued == len(s.ring) {
		s.mu.Unlock()
		s.dropFull.Inc()
		return len(b), nil
	}
	d := &s.ring[(s.head+s.queued)%len(s.ring)]
	d.to, d.n = to, copy(d.buf[:], b)
	s.queued++
	s.mu.Unlock()
	s.waiting.Add(1)
	if s.holds.Load() == 0 {
		s.signal()
	}
	return len(b), nil
}

// run is the sender goroutine: woken, it sends until the queue is empty.
func (s *batchSender) run() {
	defer close(s.done)
	var batch [sendBatchMax]*outDatagram
	for range s.wake {
		for {
			n, closed := s.take(batch[:])
			if n == 0 {
				if closed {
					return
				}
				break
			}
			s.send(batch[:n])
			s.finish(n)
		}
	}
}

// take points batch at the oldest queued datagrams. The sender is the only
// one to advance head, and enqueue never writes over a queued datagram, so
// they stay put until finish.
func (s *batchSender) take(batch []*outDatagram) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(s.queued, len(batch))
	for i := range n {
		batch[i] = &s.ring[(s.head+i)%len(s.ring)]
	}
	s.waiting.Add(int32(-n))
	return n, s.closed
}

func (s *batchSender) finish(n int) {
	s.mu.Lock()
	s.head = (s.head + n) % len(s.ring)
	s.queued -= n
	s.mu.Unlock()
}

// send writes ds, skipping a datagram the kernel refuses (a destination
// that became unreachable, say): sendmmsg(2) reports an error only for the
// first datagram of a call.
func (s *batchSender) send(ds []*outDatagram) {
	s.batches.Inc()
	for len(ds) > 0 {
		n, err := s.sys.write(ds)
		if n > 0 {
			s.sentPackets.Add(float64(n))
			ds = ds[n:]
			continue
		}
		if err != nil || n == 0 {
			s.dropError.Inc()
			ds = ds[1:]
		}
	}
}

// stop refuses further writes and lets the sender end once it finds the
// queue empty; closing the socket ends a send under way.
func (s *batchSender) stop() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
}
