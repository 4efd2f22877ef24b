package media

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor/pkg/cc"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Congestion control of a trunk (spec/federation.md §10.8). Each side
// estimates the capacity of its own direction with Google Congestion
// Control on transport-cc feedback (trunk_api.go). When what the peer wants
// does not fit the estimate, simulcast layers are held back, highest first,
// camera before screen share; audio and the lowest layer of every video
// track always cross. A held-back layer that a subscriber there wanted is
// replaced by the highest layer that fits, so it keeps receiving video, and
// the peer is told at once in `rates`, so its subscribers move to what
// crosses. Held-back layers come back one at a time, once a probe
// (trunk_probe.go) showed that the link carries them with a margin; a
// failed probe, or a layer that has to be dropped again soon after it came
// back, doubles the wait before the next try.

const (
	// trunkInitialEstimate is the estimate a trunk starts from, before
	// feedback: enough for a few cameras at their top layer. A thinner link
	// is found within a second or two by the delay-based estimator.
	trunkInitialEstimate = 5_000_000
	trunkMinEstimate     = 100_000
	trunkMaxEstimate     = 200_000_000
	// allocateEvery is how many demand ticks pass between two allocations.
	allocateEvery = 2
	// restoreHeadroom is the margin the estimate must leave above the
	// demand with one more layer before that layer comes back.
	restoreHeadroom = 1.1
	// restoreWait is the least time between a drop and a restore; it
	// doubles, up to restoreWaitMax, each time a restored layer is dropped
	// again within restoreTrial, and falls back after a restore that holds.
	restoreWait    = time.Second
	restoreWaitMax = 3 * time.Second
	restoreTrial   = 4 * time.Second
	// restoreEvery spaces restores, so the estimator sees each one before
	// the next probe.
	restoreEvery = 500 * time.Millisecond
)

// estimatorRegistry hands each trunk the estimator pion's interceptor
// created for its peer connection.
type estimatorRegistry struct {
	mu   sync.Mutex
	byPC map[string]cc.BandwidthEstimator
}

func (r *estimatorRegistry) put(id string, e cc.BandwidthEstimator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPC == nil {
		r.byPC = map[string]cc.BandwidthEstimator{}
	}
	r.byPC[id] = e
}

func (r *estimatorRegistry) take(id string) cc.BandwidthEstimator {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.byPC[id]
	delete(r.byPC, id)
	return e
}

// trunkCC is the congestion control state of one trunk's sending
// direction. The allocation state is owned by the trunk's demand loop; the
// figures it reports are atomics, read by sendRates and TrunkLinks.
type trunkCC struct {
	est     cc.BandwidthEstimator
	metrics ccMetrics
	labels  prometheus.Labels

	estimate atomic.Uint64
	// lossPPM is the loss in millionths, as reported by the estimator.
	lossPPM atomic.Uint64
	dropped atomic.Int64
	// peerEstimate and peerLossPPM are the peer's report of its direction.
	peerEstimate atomic.Uint64
	peerLossPPM  atomic.Uint64

	// Owned by the demand loop: when a layer was last dropped or a probe
	// failed, when one last came back, the wait before the next try, the
	// last estimate, the rate the last probe proved (until the estimate
	// falls), and the probe under way.
	lastFail, lastRestore time.Time
	wait                  time.Duration
	lastEst, proven       uint64
	probe                 *trunkProbe
	// probeFailed says the last probe failed: the next one is for one
	// layer, not for all held back.
	probeFailed bool
}

func newTrunkCC(est cc.BandwidthEstimator, m ccMetrics, conference, peer string) *trunkCC {
	return &trunkCC{est: est, metrics: m, labels: prometheus.Labels{"conference": conference, "peer": peer}, wait: restoreWait}
}

func (c *trunkCC) estimator() cc.BandwidthEstimator { return c.est }

// report is this direction's last estimate in bits/s and its loss before
// recovery, as a fraction.
func (c *trunkCC) report() (uint64, float64) {
	return c.estimate.Load(), float64(c.lossPPM.Load()) / 1e6
}

func (c *trunkCC) peerReport(estimate uint64, loss float64) {
	c.peerEstimate.Store(estimate)
	c.peerLossPPM.Store(uint64(min(max(loss, 0), 1) * 1e6))
}

// sample reads the estimator and publishes its figures.
// It returns the estimate, the loss and whether the delay-based detector
// sees the link overused now.
func (c *trunkCC) sample() (uint64, float64, bool) {
	est := uint64(max(c.est.GetTargetBitrate(), 0))
	loss := 0.0
	stats := c.est.GetStats()
	if v, ok := stats["averageLoss"].(float64); ok {
		loss = min(max(v, 0), 1)
	}
	overuse := stats["usage"] == "overuse"
	c.estimate.Store(est)
	c.lossPPM.Store(uint64(loss * 1e6))
	c.metrics.estimate.With(c.labels).Set(float64(est))
	c.metrics.loss.With(c.labels).Set(loss)
	return est, loss, overuse
}

// close removes the trunk's figures; a probe under way stops by itself
// when the trunk is done.
func (c *trunkCC) close() {
	c.metrics.estimate.Delete(c.labels)
	c.metrics.loss.Delete(c.labels)
	c.metrics.dropped.Delete(c.labels)
}

// ccTrack is what the allocator knows of one track the peer wants.
type ccTrack struct {
	id     string
	audio  bool
	screen bool
	top    int
	wanted layerSet
	// cap is the highest layer allowed to cross; top when not held back.
	cap   int
	rates [maxLayers]uint64
}

// cost is the bitrate of what crosses of the track under cap.
func (k *ccTrack) cost(cap int) uint64 {
	w := k.wanted
	if !k.audio {
		w = w.capped(cap)
	}
	var sum uint64
	for _, l := range w.list() {
		sum += k.rates[l]
	}
	return sum
}

// allocate compares the estimate with what the peer wants and holds back or
// restores layers; it returns the tracks whose cap changed.
func (t *trunk) allocate(now time.Time) []string {
	c := t.cc
	if c.est == nil {
		return nil
	}
	est, loss, overuse := c.sample()
	// A fall of the estimate is congestion: what a probe proved no longer
	// holds.
	if float64(est) < probeFall*float64(c.lastEst) {
		c.proven = 0
	}
	c.lastEst = est
	tracks := t.ccTracks()
	var total uint64
	for i := range tracks {
		total += tracks[i].cost(tracks[i].cap)
	}
	var changed []string
	if p := c.probe; p != nil {
		if overuse {
			p.overuses++
		}
		switch {
		// One sample of overuse can be a scheduling hiccup; two are a queue.
		case float64(est) < probeFall*float64(p.startEst) || loss > p.startLoss+probeLoss || p.overuses >= 2:
			p.end()
			c.probe = nil
			c.failed(now)
			c.probeFailed = true
			t.log.Debug("trunk probe not carried", "track", p.track, "rate", p.rate, "estimate", est, "wait", c.wait)
		case !now.Before(p.until):
			p.end()
			c.probe = nil
			c.probeFailed = false
			for i := range tracks {
				k := &tracks[i]
				if k.audio || k.cap >= k.top || (p.track != "" && k.id != p.track) {
					continue
				}
				// A probe for one track proved its next layer; one for
				// all (track "") every held-back layer.
				next := k.cap + 1
				if p.track == "" {
					next = k.top
				}
				total += k.cost(next) - k.cost(k.cap)
				k.cap = next
				changed = append(changed, k.id)
				c.proven, c.lastRestore, c.wait = p.rate, now, restoreWait
				t.log.Info("trunk layer restored after a probe", "track", k.id, "layer", k.cap, "rate", p.rate, "estimate", est)
			}
		}
	}
	avail := max(est, c.proven)
	dropped := false
	for total > avail {
		k := nextToDrop(tracks)
		if k == nil {
			break
		}
		before := k.cost(k.cap)
		k.cap--
		total -= before - k.cost(k.cap)
		changed = append(changed, k.id)
		dropped = true
	}
	switch {
	case dropped:
		if c.probe != nil {
			c.probe.end()
			c.probe = nil
		}
		if !c.lastRestore.IsZero() && now.Sub(c.lastRestore) < restoreTrial {
			c.failed(now)
		}
		c.lastFail = now
		t.log.Info("trunk layers held back", "estimate", est, "available", avail, "demand", total, "wait", c.wait)
	case c.probe == nil && len(changed) == 0 && now.Sub(c.lastFail) >= c.wait && now.Sub(c.lastRestore) >= restoreEvery:
		k := nextToRestore(tracks)
		if k == nil {
			break
		}
		// The layer above the cap counts as wanted: a subscriber there
		// that wanted it will want it again.
		need := uint64(restoreHeadroom * float64(total+k.rates[k.cap+1]))
		if avail >= need {
			k.cap++
			changed = append(changed, k.id)
			c.lastRestore = now
			t.log.Info("trunk layer restored", "track", k.id, "layer", k.cap, "estimate", est)
			break
		}
		// Unless the last probe failed, probe for every held-back layer
		// at once: a link that recovered gets them all back in one step.
		probed := k.id
		if !c.probeFailed {
			all := total
			for i := range tracks {
				if h := &tracks[i]; !h.audio && h.cap < h.top {
					all += h.rates[h.top]
				}
			}
			need, probed = uint64(restoreHeadroom*float64(all)), ""
		}
		c.probe = t.startProbe(probed, total, need-total, est, loss, now)
	}
	if len(changed) == 0 {
		return nil
	}
	t.mu.Lock()
	var held int64
	for i := range tracks {
		k := &tracks[i]
		if k.cap >= k.top {
			delete(t.caps, k.id)
		} else {
			t.caps[k.id] = k.cap
		}
	}
	for id, cp := range t.caps {
		if up, ok := t.offered[id]; ok {
			held += int64(max(len(up.Info().Layers)-1-cp, 0))
		} else {
			delete(t.caps, id)
		}
	}
	t.mu.Unlock()
	c.dropped.Store(held)
	c.metrics.dropped.With(c.labels).Set(float64(held))
	slices.Sort(changed)
	return slices.Compact(changed)
}

// failed records a probe or a restore that the link did not carry: the next
// try waits twice as long, up to restoreWaitMax.
func (c *trunkCC) failed(now time.Time) {
	c.wait = min(2*c.wait, restoreWaitMax)
	c.lastFail = now
}

func findTrack(tracks []ccTrack, id string) *ccTrack {
	for i := range tracks {
		if tracks[i].id == id {
			return &tracks[i]
		}
	}
	return nil
}

// ccTracks lists the offered tracks the peer wants, with their layers'
// bitrates as received here.
func (t *trunk) ccTracks() []ccTrack {
	t.mu.Lock()
	type entry struct {
		up     UpTrack
		wanted layerSet
		cap    int
		capped bool
	}
	entries := make([]entry, 0, len(t.wanted))
	for id, w := range t.wanted {
		if up, ok := t.offered[id]; ok {
			cp, capped := t.caps[id]
			entries = append(entries, entry{up, w, cp, capped})
		}
	}
	for id := range t.caps {
		if _, ok := t.wanted[id]; !ok {
			if up, ok := t.offered[id]; ok {
				entries = append(entries, entry{up, 0, t.caps[id], true})
			}
		}
	}
	t.mu.Unlock()
	out := make([]ccTrack, 0, len(entries))
	for _, e := range entries {
		info := e.up.Info()
		k := ccTrack{id: info.ID, audio: info.Kind == webrtc.RTPCodecTypeAudio.String(), screen: info.Source == "screen",
			top: max(len(info.Layers)-1, 0), wanted: e.wanted}
		k.cap = k.top
		if e.capped {
			k.cap = min(e.cap, k.top)
		}
		for l := 0; l <= k.top; l++ {
			if bps, ok := e.up.LayerUsable(l); ok {
				k.rates[l] = bps
			}
		}
		out = append(out, k)
	}
	// A fixed order, so that equal choices fall the same way every time.
	slices.SortFunc(out, func(a, b ccTrack) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return out
}

// nextToDrop is the video track whose highest crossing layer goes first:
// cameras before screen shares, the highest layer first; nil when only
// audio and lowest layers cross.
func nextToDrop(tracks []ccTrack) *ccTrack {
	var best *ccTrack
	for i := range tracks {
		k := &tracks[i]
		if k.audio || k.cap == 0 || k.wanted == 0 {
			continue
		}
		// Only a cap that lowers what crosses saves anything.
		if k.wanted.capped(k.cap-1) == k.wanted.capped(k.cap) {
			continue
		}
		if best == nil || dropsBefore(k, best) {
			best = k
		}
	}
	return best
}

func dropsBefore(a, b *ccTrack) bool {
	if a.screen != b.screen {
		return !a.screen
	}
	return a.cap > b.cap
}

// nextToRestore is the held-back track whose next layer comes back first:
// the reverse of the drop order, screen shares first, the lowest cap first.
func nextToRestore(tracks []ccTrack) *ccTrack {
	var best *ccTrack
	for i := range tracks {
		k := &tracks[i]
		if k.audio || k.cap >= k.top {
			continue
		}
		if best == nil || dropsBefore(best, k) {
			best = k
		}
	}
	return best
}
