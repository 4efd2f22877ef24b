package media

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// The shared media socket (media.udp_port) carries every participant's
// media. Writing each forwarded packet with its own sendto(2) from the
// publisher's reader costs a system call per subscriber. batchConn hands
// the socket to pion's ICE mux as its net.PacketConn: reads go straight to
// the socket, and writes are copied into the queue of a sender goroutine,
// which sends with sendmmsg(2) as many datagrams per call as are waiting.
// There is a sender per two cores: one fan-out split over more senders
// costs a call and a wake-up per sender, which on two cores cost more than
// a second sender gained (entente bench media), while on a larger machine
// one sender would bind all sending to one core. A destination always
// goes through the same sender, which keeps each subscriber's datagrams in
// order.
//
// A publisher's reader forwarding a packet to batchFanOut subscribers or
// more, and fewer than batchFanOutMax, holds the batch open (hold and
// release) so that the whole fan-out goes out in one call per sender.
// Other RTP and RTCP (a smaller fan-out, reports, trunks) is sent at once
// with sendto(2) when no fan-out is under way, and otherwise goes with the
// fan-out: waking a sender for a datagram or two costs more than the calls
// it saves. A fan-out of batchFanOutMax or more is written the same way
// (see there). STUN and DTLS always go at once.

const (
	// sendQueueSize bounds the datagrams waiting for one sender. A writer
	// finding the queue full waits for room, as it waits on a full socket
	// buffer: the sender has fallen behind by far more than any fan-out,
	// and the forwarders slow down to its pace.
	sendQueueSize = 2048
	// sendBatchMax is the most datagrams one sendmmsg(2) carries.
	sendBatchMax = 64
	// batchFanOut is the smallest fan-out sent through the senders: at 3
	// subscribers a sender's wake-up cost more than the calls it saved,
	// at 9 it saved more (entente bench media --meeting 4 and 10).
	batchFanOut = 6
	// batchFanOutMax is the smallest fan-out written by its reader again.
	// Past it a call saves little next to the kernel's cost per datagram,
	// and readers writing at once send on every core: through one sender
	// per two cores, 50 participants with 10 cameras fell seconds behind
	// and lost packets where the readers' own writes kept up (entente
	// bench media --meeting 50 --video 10).
	batchFanOutMax = 32
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
	out *sendGroup

	closeOnce sync.Once
}

// sendGroup is the senders of one socket.
type sendGroup struct {
	senders []*batchSender
	// holds counts fan-outs under way.
	holds atomic.Int32

	sentPackets prometheus.Counter
	batches     prometheus.Counter
	full        prometheus.Counter
	sendErrors  prometheus.Counter
}

// batchSender is one goroutine writing to the socket.
type batchSender struct {
	group *sendGroup
	// sys sends a batch with the platform's best call (udpbatch_linux.go).
	sys batchWriter

	mu sync.Mutex
	// ring holds the queued datagrams from head to head+queued.
	ring   []outDatagram
	head   int
	queued int
	closed bool
	// room is signalled, with mu, when a queue that filled up is half
	// empty again, to the waiters writing into it: woken at once, they
	// would fill it again with a few datagrams each.
	room    sync.Cond
	waiters int

	// waiting counts datagrams queued and not yet taken by the sender,
	// read without mu to decide who wakes the sender; unsent counts those
	// queued and not yet sent, taken or not.
	waiting atomic.Int32
	unsent  atomic.Int32
	wake    chan struct{}
	done    chan struct{}
}

// batchWriter sends datagrams; it returns how many it sent, and an error
// when the first of them could not be sent.
type batchWriter interface {
	write(ds []*outDatagram) (int, error)
}

func newBatchConn(conn *net.UDPConn, m *metrics) (*batchConn, error) {
	g := &sendGroup{sentPackets: m.udpSent, batches: m.udpBatches, full: m.udpFull, sendErrors: m.udpErrors}
	for range min(max(runtime.GOMAXPROCS(0)/2, 1), 8) {
		w, err := newBatchWriter(conn)
		if err != nil {
			g.stop()
			return nil, err
		}
		s := &batchSender{
			group: g,
			sys:   w,
			ring:  make([]outDatagram, sendQueueSize),
			wake:  make(chan struct{}, 1),
			done:  make(chan struct{}),
		}
		s.room.L = &s.mu
		g.senders = append(g.senders, s)
		go s.run()
	}
	return &batchConn{UDPConn: conn, out: g}, nil
}

// ReadFromAddrPort and WriteToAddrPort make the ICE mux read and write
// without converting addresses (pion/ice AddrPortReaderWriter).
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.UDPConn.ReadFromUDPAddrPort(b)
}

// WriteToAddrPort queues RTP and RTCP while a fan-out is under way, and
// otherwise sends them at once: a wake-up of the sender costs more than it
// saves on a datagram or two.
// An RTP or RTCP datagram never overtakes one queued before it for the
// same sender, hence the same destination: a subscriber whose layer
// switches from one publisher's reader to another's sees its packets in
// the order written.
// STUN and DTLS always go at once: a joining client's handshake never
// waits behind media, and DTLS and SCTP put their own records in order.
func (c *batchConn) WriteToAddrPort(b []byte, to netip.AddrPort) (int, error) {
	if s := c.out.senders[senderOf(to, len(c.out.senders))]; isRTPOrRTCP(b) && (c.out.holds.Load() > 0 || s.unsent.Load() > 0) {
		return s.enqueue(b, to)
	}
	n, err := c.UDPConn.WriteToUDPAddrPort(b, to)
	if err != nil {
		c.out.sendErrors.Inc()
		return n, err
	}
	c.out.batches.Inc()
	c.out.sentPackets.Inc()
	return n, nil
}

// isRTPOrRTCP tells RTP and RTCP from STUN, DTLS and TURN channel data on
// one socket by the first byte (RFC 7983 §7: 128 to 191).
func isRTPOrRTCP(b []byte) bool { return len(b) > 0 && b[0] >= 128 && b[0] <= 191 }

func (c *batchConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: errors.New("not a UDP address")}
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

func (c *batchConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.out.stop()
		err = c.UDPConn.Close()
		for _, s := range c.out.senders {
			<-s.done
		}
	})
	return err
}

// heldFanOut reports whether a fan-out to n sinks goes through the senders.
func heldFanOut(n int) bool { return n >= batchFanOut && n < batchFanOutMax }

// hold keeps the senders from being woken by each write until release:
// the caller is about to write several datagrams at once. Safe on a nil
// group.
func (g *sendGroup) hold() {
	if g != nil {
		g.holds.Add(1)
	}
}

// release ends a hold and wakes the senders with datagrams waiting. Other
// fan-outs may still be under way: their datagrams queued so far go too,
// the rest with their own release.
func (g *sendGroup) release() {
	if g == nil {
		return
	}
	g.holds.Add(-1)
	for _, s := range g.senders {
		if s.waiting.Load() > 0 {
			s.signal()
		}
	}
}

// senderOf picks a destination's sender: clients behind one address differ
// by port.
func senderOf(to netip.AddrPort, n int) int {
	a := to.Addr().As16()
	return int((uint32(to.Port()) ^ uint32(a[15]) ^ uint32(a[14])<<8) % uint32(n))
}

// stop refuses further writes; each sender ends once it finds its queue
// empty. Closing the socket ends a send under way.
func (g *sendGroup) stop() {
	for _, s := range g.senders {
		s.stop()
	}
}

func (s *batchSender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueue copies b for the sender. When the queue is full it wakes the
// sender, whatever holds are under way, and waits for room.
func (s *batchSender) enqueue(b []byte, to netip.AddrPort) (int, error) {
	if len(b) > maxPacketSize {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: errors.New("datagram larger than the media MTU")}
	}
	s.mu.Lock()
	for s.queued == len(s.ring) && !s.closed {
		s.group.full.Inc()
		s.signal()
		s.waiters++
		s.room.Wait()
		s.waiters--
	}
	if s.closed {
		s.mu.Unlock()
		return 0, &net.OpError{Op: "write", Net: "udp", Err: errBatchClosed}
	}
	d := &s.ring[(s.head+s.queued)%len(s.ring)]
	d.to, d.n = to, copy(d.buf[:], b)
	s.queued++
	s.unsent.Add(1)
	s.mu.Unlock()
	// A write that finds every fan-out over (they ended since
	// WriteToAddrPort looked) goes at once, and so do the first
	// sendBatchMax datagrams of a large fan-out: the sender sends them
	// while the rest are written.
	if w := s.waiting.Add(1); s.group.holds.Load() == 0 || w == sendBatchMax {
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
	s.unsent.Add(int32(-n))
	if s.waiters > 0 && s.queued <= len(s.ring)/2 {
		s.room.Broadcast()
	}
	s.mu.Unlock()
}

// send writes ds, skipping a datagram the kernel refuses (a destination
// that became unreachable, say): sendmmsg(2) reports an error only for the
// first datagram of a call.
func (s *batchSender) send(ds []*outDatagram) {
	s.group.batches.Inc()
	for len(ds) > 0 {
		n, err := s.sys.write(ds)
		if n > 0 {
			s.group.sentPackets.Add(float64(n))
			ds = ds[n:]
			continue
		}
		if err != nil || n == 0 {
			s.group.sendErrors.Inc()
			ds = ds[1:]
		}
	}
}

func (s *batchSender) stop() {
	s.mu.Lock()
	s.closed = true
	s.room.Broadcast()
	s.mu.Unlock()
	s.signal()
}
