package mediabench

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// clock gives every client of a run the same monotonic time base, in
// nanoseconds, so that a send time written by one client means the same to
// another; the run's clients share one process.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// window is the measurement interval [start, end) in clock time. Both ends
// are set before the window begins, so that senders and receivers judge
// every packet by its send time alone and agree on which packets count.
// Until then it contains nothing.
type window struct {
	start, end atomic.Int64
	// lastIn is when a packet sent in the window last arrived.
	lastIn atomic.Int64
}

func newWindow() *window {
	w := &window{}
	w.start.Store(math.MaxInt64)
	w.end.Store(math.MaxInt64)
	return w
}

// set fixes the window; start must still be in the future.
func (w *window) set(start, end int64) {
	w.end.Store(end)
	w.start.Store(start)
}

func (w *window) contains(ns int64) bool { return ns >= w.start.Load() && ns < w.end.Load() }

// arrived notes that a packet sent in the window arrived at ns.
func (w *window) arrived(ns int64) {
	for {
		last := w.lastIn.Load()
		if ns <= last || w.lastIn.CompareAndSwap(last, ns) {
			return
		}
	}
}

// maxFrames bounds the frames a subscription tracks: far above what the
// longest run sends (30 fps for under an hour).
const maxFrames = 1 << 20

// subscription is what a subscriber saw of one track.
type subscription struct {
	owner, kind string
	// announcedNS is when the client learnt of the track: join-to-first-
	// frame counts from the later of this and the join.
	announcedNS int64

	mu          sync.Mutex
	seen        []uint64 // bitset of frame numbers received in the window
	received    int64    // distinct frames received in the window
	bytes       int64    // their payload bytes
	firstAnyNS  int64    // first packet at all, 0 if none
	firstKeyNS  int64    // first decodable video frame, 0 if none
	latenciesNS []int64
	// mismatched counts payloads that differ from what their publisher
	// sent, past what the SFU may rewrite (payload.go, exact).
	mismatched int64
}

// subscriptionStats is a copy of what a subscription counted so far.
type subscriptionStats struct {
	kind                        string
	announcedNS                 int64
	received, bytes, mismatched int64
	firstAnyNS, firstKeyNS      int64
	latenciesNS                 []int64
}

// stats copies what s counted, while its track may still be recording.
func (s *subscription) stats() subscriptionStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return subscriptionStats{
		kind: s.kind, announcedNS: s.announcedNS,
		received: s.received, bytes: s.bytes, mismatched: s.mismatched,
		firstAnyNS: s.firstAnyNS, firstKeyNS: s.firstKeyNS,
		latenciesNS: slices.Clone(s.latenciesNS),
	}
}

// record notes one received payload; retransmissions count once.
func (s *subscription) record(p parsed, at int64, w *window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstAnyNS == 0 {
		s.firstAnyNS = at
	}
	if p.keyframe && s.firstKeyNS == 0 {
		s.firstKeyNS = at
	}
	if !w.contains(p.sentNS) || p.seq >= maxFrames {
		return
	}
	word, bit := p.seq/64, uint64(1)<<(p.seq%64)
	if int(word) >= len(s.seen) {
		s.seen = slices.Grow(s.seen, int(word)+1-len(s.seen))[:word+1]
	}
	if s.seen[word]&bit != 0 {
		return // a retransmission already counted
	}
	s.seen[word] |= bit
	w.arrived(at)
	s.received++
	s.bytes += int64(p.size)
	s.latenciesNS = append(s.latenciesNS, at-p.sentNS)
}

// Summary holds nearest-rank percentiles in milliseconds, rounded to the
// microsecond.
type Summary struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	N   int     `json:"n"`
}

func summarize(ns []int64) Summary {
	if len(ns) == 0 {
		return Summary{}
	}
	sorted := slices.Clone(ns)
	slices.Sort(sorted)
	rank := func(q float64) int64 {
		i := int(math.Ceil(q*float64(len(sorted)))) - 1
		return sorted[max(i, 0)]
	}
	ms := func(v int64) float64 { return math.Round(float64(v)/1e3) / 1e3 }
	return Summary{P50: ms(rank(0.50)), P95: ms(rank(0.95)), P99: ms(rank(0.99)), Max: ms(sorted[len(sorted)-1]), N: len(sorted)}
}
