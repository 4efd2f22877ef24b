package media

import (
	"time"
)

// What the far side asks of the tracks offered to it, and what this side
// asks of the peer's: the demand aggregated from local subscribers and the
// rates reported back (spec/federation.md §10.4).

// demandLoop periodically turns the local subscribers of the peer's tracks
// into `want` messages, the exact set of layers they use (§10.4), and tells
// the peer which layers of the tracks offered to it are live, at what rate.
func (t *trunk) demandLoop() {
	ticker := time.NewTicker(demandInterval)
	defer ticker.Stop()
	for ticks := 1; ; ticks++ {
		select {
		case <-t.done:
			return
		case <-ticker.C:
		}
		t.mu.Lock()
		var changed []wantMsg
		remote := make([]*upTrack, 0, len(t.remote))
		for _, u := range t.remote {
			remote = append(remote, u)
		}
		t.mu.Unlock()
		demand := make(map[string]layerSet, len(remote))
		for _, u := range remote {
			demand[u.ID()] = demandOf(u)
		}
		t.mu.Lock()
		for id, set := range demand {
			if _, ok := t.remote[id]; !ok {
				continue
			}
			if prev := t.asked[id]; set != prev {
				t.asked[id] = set
				changed = append(changed, wantMsg{Type: "want", Track: id, Layers: set.list()})
			}
		}
		t.mu.Unlock()
		for _, m := range changed {
			t.send(m)
		}
		t.retryUnmet()
		if ticks%ratesEvery == 0 {
			t.sendRates()
		}
	}
}

// layerSet is a set of simulcast layers, bit l for layer l.
type layerSet uint8

func (s layerSet) has(l int) bool { return l >= 0 && l < maxLayers && s&(1<<l) != 0 }

func (s layerSet) with(l int) layerSet {
	if l < 0 || l >= maxLayers {
		return s
	}
	return s | 1<<l
}

// list is the set in wire form: the layers in ascending order, never nil.
func (s layerSet) list() []int {
	out := []int{}
	for l := range maxLayers {
		if s.has(l) {
			out = append(out, l)
		}
	}
	return out
}

// demandOf is the set of layers of up that its sinks use: for a subscriber
// the layer it receives and the one it is switching to, for a trunk slot
// the layer it relays. Empty when nobody subscribes.
func demandOf(up *upTrack) layerSet {
	var set layerSet
	for _, s := range *up.sinks.Load() {
		switch s := s.(type) {
		case *downTrack:
			set |= s.demand()
		case *trunkSlot:
			s.mu.Lock()
			if s.up != nil {
				set = set.with(s.layer)
			}
			s.mu.Unlock()
		}
	}
	return set
}

// sendRates tells the peer, for each simulcast track offered to it, the
// bitrate of each layer as received here, 0 for a layer that is not live.
// The peer's subscribers choose among all live layers with it, not only
// among those that cross now (§10.4).
func (t *trunk) sendRates() {
	t.mu.Lock()
	offered := make([]UpTrack, 0, len(t.offered))
	for _, up := range t.offered {
		offered = append(offered, up)
	}
	t.mu.Unlock()
	rates := map[string][]uint64{}
	for _, up := range offered {
		if len(up.Info().Layers) < 2 {
			continue
		}
		r := make([]uint64, maxLayers)
		for l := range r {
			if bps, ok := up.LayerUsable(l); ok {
				r[l] = max(bps, 1)
			}
		}
		rates[up.ID()] = r
	}
	if len(rates) > 0 {
		t.send(ratesMsg{Type: "rates", Rates: rates})
	}
}
