package media

import (
	"testing"
	"time"

	"github.com/entente-org/entente/internal/testwait"
)

// Waits on what media tests mean, instead of fixed sleeps. A span is
// counted in packets the test's publisher sent, not in time, so a loaded
// machine stretches it instead of failing it.

// settleWithin bounds how long a condition may take to settle.
const settleWithin = 30 * time.Second

// published waits until pub sent n more packets (each layer counts) than
// it had when called.
func published(t *testing.T, pub *testTrack, n int) {
	t.Helper()
	from := sentTotal(pub)
	testwait.Until(t, settleWithin, func() bool { return sentTotal(pub)-from >= n },
		"the publisher sent fewer than %d packets", n)
}

// drain returns the packets c received so far, without waiting.
func (c *testClient) drain() []received {
	var out []received
	for {
		select {
		case r := <-c.media:
			out = append(out, r)
		default:
			return out
		}
	}
}

// mediaStops waits until, over a span in which pub sent n packets, c
// received none of track: packets already on their way may land first.
func mediaStops(t *testing.T, c *testClient, track string, pub *testTrack, n int) {
	t.Helper()
	last := 0
	if !testwait.For(settleWithin, func() bool {
		c.drain()
		published(t, pub, n)
		last = countOf(c.drain(), track)
		return last == 0
	}) {
		t.Fatalf("%s still receives %s after %v: %d packets while %d were published", c.user, track, settleWithin, last, n)
	}
}

// trunkStops waits until, over a span in which pub sent n packets, no
// packet of track crossed tk.
func trunkStops(t *testing.T, tk *trunk, track string, pub *testTrack, n int) {
	t.Helper()
	layersSettle(t, tk, track, pub, 0, n)
}

// layersSettle waits until, over a span in which pub sent n packets, the
// layers of track crossing tk are exactly want: those grow, the others
// stay.
func layersSettle(t *testing.T, tk *trunk, track string, pub *testTrack, want layerSet, n int) {
	t.Helper()
	var before, after [maxLayers]uint64
	if !testwait.For(settleWithin, func() bool {
		before = tk.sentOf(track)
		published(t, pub, n)
		after = tk.sentOf(track)
		for l := range maxLayers {
			if (after[l] != before[l]) != want.has(l) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("after %v, packets of %s crossing the trunk per layer still go %v -> %v, want only layers %v growing",
			settleWithin, track, before, after, want.list())
	}
}

// upTrackOf waits for track id in conference on s and returns it.
func upTrackOf(t *testing.T, s *SFU, conference, id string) *upTrack {
	t.Helper()
	var up *upTrack
	testwait.Until(t, settleWithin, func() bool {
		for _, c := range s.router.all() {
			if c.id == conference {
				up, _ = c.track(id)
			}
		}
		return up != nil
	}, "no track %s in %s", id, conference)
	return up
}

// keyframesSettled reports whether no keyframe request of up's layer is
// waiting to be merged, the last one left more than keyframeInterval ago,
// and pub received every one s sent.
func keyframesSettled(s *SFU, up *upTrack, layer int, pub *testTrack) bool {
	l := &up.layers[layer]
	quiet := !l.pending.Load() && time.Since(time.Unix(0, l.lastPLI.Load())) > keyframeInterval
	return quiet && pub.plis.Load() == int64(counterOf(s.metrics.keyframeRequests))
}
