package media

import (
	"errors"
	"time"

	"github.com/pion/webrtc/v4"
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
		var changed []trunkWantMsg
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
				changed = append(changed, trunkWantMsg{Track: id, Layers: set.list()})
			}
		}
		t.mu.Unlock()
		for _, m := range changed {
			t.send(m)
		}
		t.retryUnmet()
		if ticks%allocateEvery == 0 {
			if changed := t.allocate(time.Now()); len(changed) > 0 {
				for _, id := range changed {
					t.serve(id)
				}
				// The peer's subscribers move to what crosses now.
				t.sendRates()
			}
		}
		if ticks%ratesEvery == 0 {
			t.sendRates()
		}
	}
}

// layerSet is a set of simulcast layers, bit l for layer l.
type layerSet uint8

func (s layerSet) has(l int) bool { return l >= 0 && l < maxLayers && s&(1<<l) != 0 }

// capped is the set with each layer above top replaced by top.
func (s layerSet) capped(top int) layerSet {
	var out layerSet
	for _, l := range s.list() {
		out = out.with(min(l, top))
	}
	return out
}

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
// among those that cross now (§10.4). With them go this direction's
// estimate, loss and the layers held back for capacity (trunk_cc.go).
func (t *trunk) sendRates() {
	t.mu.Lock()
	offered := make([]UpTrack, 0, len(t.offered))
	for _, up := range t.offered {
		offered = append(offered, up)
	}
	dropped := map[string][]int{}
	for id, c := range t.caps {
		if up, ok := t.offered[id]; ok {
			var held []int
			for l := c + 1; l < len(up.Info().Layers); l++ {
				held = append(held, l)
			}
			if len(held) > 0 {
				dropped[id] = held
			}
		}
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
	m := trunkRatesMsg{Rates: rates}
	if len(dropped) > 0 {
		m.Dropped = dropped
	}
	if est := t.cc.estimator(); est != nil {
		m.Estimate, m.Loss = t.cc.report()
	}
	if len(rates) > 0 || m.Estimate > 0 {
		t.send(m)
	}
}

// want applies the peer's demand for one of the tracks offered to it:
// exactly the wanted layers cross, each on its own slot, but for those held
// back for the trunk's capacity, for which the highest layer that fits
// crosses instead (trunk_cc.go); an empty set stops the track (§10.4).
func (t *trunk) want(track string, layers []int) {
	t.mu.Lock()
	delete(t.unmet, track)
	up, ok := t.offered[track]
	if !ok || t.closed {
		t.mu.Unlock()
		if len(layers) > 0 {
			t.send(trunkRefusedMsg{Track: track, Layer: layers[0], Reason: "not offered"})
		}
		return
	}
	info := up.Info()
	top := 0
	if len(info.Layers) > 1 {
		top = len(info.Layers) - 1
	}
	var wanted layerSet
	for _, l := range layers {
		if l < 0 || l > top {
			t.mu.Unlock()
			t.send(trunkRefusedMsg{Track: track, Layer: l, Reason: "no such layer"})
			return
		}
		wanted = wanted.with(l)
	}
	if wanted == 0 {
		delete(t.wanted, track)
	} else {
		t.wanted[track] = wanted
	}
	t.mu.Unlock()
	t.serve(track)
}

// serve binds the layers of track that cross now: what the peer wants,
// within the cap, if any, that the trunk's capacity sets. One serve runs at
// a time, so two never see the same layer missing and bind it twice.
func (t *trunk) serve(track string) {
	t.serveMu.Lock()
	defer t.serveMu.Unlock()
	t.mu.Lock()
	up, ok := t.offered[track]
	if !ok || t.closed {
		t.mu.Unlock()
		return
	}
	info := up.Info()
	wanted := t.wanted[track]
	if c, capped := t.caps[track]; capped {
		wanted = wanted.capped(c)
	}
	var unbind []*trunkSlot
	var have layerSet
	var free []*trunkSlot
	for _, s := range t.slots {
		s.mu.Lock()
		bound, l := s.up, s.layer
		s.mu.Unlock()
		switch {
		case bound == up && !wanted.has(l):
			unbind = append(unbind, s)
		case bound == up:
			have = have.with(l)
		case bound == nil && s.kind.String() == info.Kind:
			free = append(free, s)
		}
	}
	counter, ok := t.sent[track]
	if !ok {
		counter = &trackCounter{}
		t.sent[track] = counter
	}
	t.mu.Unlock()

	for _, s := range unbind {
		s.unbind()
		t.send(trunkUnbindMsg{Slot: s.mid})
	}
	for _, l := range wanted.list() {
		if have.has(l) {
			continue
		}
		var slot *trunkSlot
		var err error
		for len(free) > 0 && slot == nil {
			// A slot that was free may have started a probe meanwhile.
			if err = free[0].bind(up, l, counter); !errors.Is(err, errSlotTaken) {
				slot = free[0]
			}
			free = free[1:]
		}
		if slot == nil {
			if t.needSlots(webrtc.NewRTPCodecType(info.Kind), track, wanted) {
				return
			}
			t.log.Warn("trunk slot pool exhausted", "track", track, "layer", l)
			t.send(trunkRefusedMsg{Track: track, Layer: l, Reason: "no free slot"})
			return
		}
		if err != nil {
			t.send(trunkRefusedMsg{Track: track, Layer: l, Reason: "codec not negotiated"})
			return
		}
		// The peer learns the binding before the first packet is sent.
		t.send(trunkBindMsg{Slot: slot.mid, Track: track, Layer: l})
		up.AddSink(slot)
		t.mu.Lock()
		_, still := t.offered[track]
		t.mu.Unlock()
		if !still {
			// Withdrawn meanwhile (relay policy, §10.5).
			slot.unbind()
			t.send(trunkUnbindMsg{Slot: slot.mid})
			return
		}
		up.RequestKeyframe(l)
	}
}

// applyRates records the peer's report of which layers of its tracks are
// live, so local subscribers can choose a layer that does not cross yet. A
// layer the peer holds back for the trunk's capacity counts as not live, and
// stops counting as received at once: its subscribers move to the best layer
// that still crosses without waiting for it to time out (§10.4).
func (t *trunk) applyRates(m trunkRatesMsg) {
	now := time.Now().UnixNano()
	t.cc.peerReport(m.Estimate, m.Loss)
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, r := range m.Rates {
		u, ok := t.remote[id]
		if !ok {
			continue
		}
		held := m.Dropped[id]
		if len(held) > 0 {
			r = append([]uint64(nil), r...)
			for _, l := range held {
				if l >= 0 && l < len(r) {
					r[l] = 0
				}
				if l >= 0 && l < maxLayers {
					u.layers[l].lastPacket.Store(0)
				}
			}
		}
		u.setPeerRates(r, now)
	}
}

// sentOf reports how many packets of track crossed this trunk, per layer,
// each sequence number once.
func (t *trunk) sentOf(track string) [maxLayers]uint64 {
	return t.countOf(track, func(c *trackCounter, l int) uint64 { return c.packets[l].Load() })
}

// resentOf reports how many packets of track this trunk retransmitted for
// the peer's NACKs, per layer.
func (t *trunk) resentOf(track string) [maxLayers]uint64 {
	return t.countOf(track, func(c *trackCounter, l int) uint64 { return c.resent[l].Load() })
}

func (t *trunk) countOf(track string, get func(*trackCounter, int) uint64) [maxLayers]uint64 {
	var out [maxLayers]uint64
	t.mu.Lock()
	c, ok := t.sent[track]
	t.mu.Unlock()
	if ok {
		for i := range out {
			out[i] = get(c, i)
		}
	}
	return out
}
