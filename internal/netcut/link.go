package netcut

import (
	"math/rand/v2"
	"sync"
	"time"
)

// LinkConfig is the impairment of one direction of a path: what a thin link
// between two organisations does to datagrams. The zero value forwards
// everything at once.
type LinkConfig struct {
	// Rate limits the link to this many bits/s, with a token bucket; 0 is
	// no limit.
	Rate int64
	// Burst is how many bytes the bucket holds; 0 is 3000 (two full
	// packets).
	Burst int
	// Queue is the longest a datagram waits for tokens, as in a router's
	// buffer; one that would wait longer is dropped. 0 is 200 ms.
	Queue time.Duration
	// Delay is added to every datagram, after the bucket.
	Delay time.Duration
	// Loss is the fraction of datagrams dropped at random, drawn from an
	// RNG seeded with Seed so that a run can be repeated.
	Loss float64
	Seed uint64
}

// LinkStats counts what a link did: datagrams and bytes delivered, lost at
// random, and dropped because the queue was full.
type LinkStats struct {
	Delivered, Bytes, Lost, Overflow uint64
}

// Link is one direction of an impaired path. Datagrams leave in the order
// they came, each when the bucket had tokens for it plus the delay.
type Link struct {
	mu     sync.Mutex
	cfg    LinkConfig
	rng    *rand.Rand
	tokens float64
	// at is when tokens was last brought up to date; free when the last
	// datagram accepted left the bucket.
	at, free time.Time
	queue    []datagram
	stats    LinkStats
	closed   bool
	wake     chan struct{}
	done     chan struct{}
}

type datagram struct {
	due     time.Time
	b       []byte
	deliver func([]byte)
}

// NewLink starts a link impaired as cfg says.
func NewLink(cfg LinkConfig) *Link {
	l := &Link{wake: make(chan struct{}, 1), done: make(chan struct{})}
	l.Set(cfg)
	go l.run()
	return l
}

// Set changes the impairment from now on; datagrams already queued keep
// their departure time.
func (l *Link) Set(cfg LinkConfig) {
	if cfg.Burst <= 0 {
		cfg.Burst = 3000
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 200 * time.Millisecond
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rng == nil || cfg.Seed != l.cfg.Seed {
		l.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	}
	l.cfg = cfg
	l.tokens = float64(cfg.Burst)
	l.at = time.Now()
}

// Stats reports what the link did so far.
func (l *Link) Stats() LinkStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Send queues a copy of b, to be passed to deliver when it arrives; b may be
// reused at once.
func (l *Link) Send(b []byte, deliver func([]byte)) {
	now := time.Now()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	cfg := l.cfg
	if cfg.Loss > 0 && l.rng.Float64() < cfg.Loss {
		l.stats.Lost++
		l.mu.Unlock()
		return
	}
	depart := now
	if cfg.Rate > 0 {
		// The bucket fills at Rate up to Burst; a datagram leaves once the
		// one before it left and there are tokens for it.
		depart = maxTime(now, l.free)
		l.tokens = min(float64(cfg.Burst), l.tokens+depart.Sub(l.at).Seconds()*float64(cfg.Rate)/8)
		l.at = depart
		if need := float64(len(b)) - l.tokens; need > 0 {
			depart = depart.Add(time.Duration(need * 8 / float64(cfg.Rate) * float64(time.Second)))
		}
		if depart.Sub(now) > cfg.Queue {
			l.stats.Overflow++
			// The bucket is as it was: this datagram took nothing.
			l.mu.Unlock()
			return
		}
		l.tokens = max(l.tokens-float64(len(b)), 0)
		if depart.After(l.at) {
			l.at = depart
		}
		l.free = depart
	}
	l.queue = append(l.queue, datagram{due: depart.Add(cfg.Delay), b: append([]byte(nil), b...), deliver: deliver})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// run delivers queued datagrams when they are due.
func (l *Link) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		var next *datagram
		if len(l.queue) > 0 {
			next = &l.queue[0]
		}
		now := time.Now()
		if next != nil && !next.due.After(now) {
			d := *next
			l.queue[0] = datagram{}
			l.queue = l.queue[1:]
			l.stats.Delivered++
			l.stats.Bytes += uint64(len(d.b))
			l.mu.Unlock()
			d.deliver(d.b)
			continue
		}
		wait := time.Hour
		if next != nil {
			wait = next.due.Sub(now)
		}
		l.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-l.done:
			return
		case <-l.wake:
		case <-timer.C:
		}
	}
}

// Close stops the link; what it still held is dropped.
func (l *Link) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		l.queue = nil
		close(l.done)
	}
}
