package media

import (
	"context"
	"time"

	"github.com/pion/webrtc/v4"
)

// Growing a trunk's slot pool (spec/federation.md §10.3). A side that needs
// more sending slots of a kind than are free gets more by renegotiation,
// which only the member starts: it adds sendrecv sections, so both sides
// gain the same number of slots. Until then the wants that found no slot
// wait, and are served once slots are free.
const (
	// slotGrowth is how many slots of a kind one renegotiation adds.
	slotGrowth = 8
	// maxTrunkSlots bounds the slots of each kind, and so a trunk's SDP.
	maxTrunkSlots = 64
	// growRetry is how long the host waits for the member's renegotiation
	// before asking again.
	growRetry = 5 * time.Second
)

// slotCountLocked is how many slots of kind this side has; both sides have
// the same. Called with t.mu held.
func (t *trunk) slotCountLocked(kind webrtc.RTPCodecType) int {
	n := 0
	for _, s := range t.slots {
		if s.kind == kind {
			n++
		}
	}
	for _, s := range t.pending {
		if s.kind == kind {
			n++
		}
	}
	return n
}

// slotsStartingLocked reports whether a slot of kind is negotiated but has
// no sender bound yet. Called with t.mu held.
func (t *trunk) slotsStartingLocked(kind webrtc.RTPCodecType) bool {
	for _, s := range t.pending {
		if s.kind == kind {
			return true
		}
	}
	for _, s := range t.slots {
		if s.kind != kind {
			continue
		}
		s.mu.Lock()
		starting := s.writer == nil && s.up == nil
		s.mu.Unlock()
		if starting {
			return true
		}
	}
	return false
}

// needSlots records that track wants layers for which no slot of kind is
// free, and has the pool grown. It is false when the pool is at its bound:
// the want is then refused.
func (t *trunk) needSlots(kind webrtc.RTPCodecType, track string, layers layerSet) bool {
	t.mu.Lock()
	if t.closed || t.slotCountLocked(kind)+slotGrowth > maxTrunkSlots {
		t.mu.Unlock()
		return false
	}
	t.unmet[track] = layers
	from := t.slotCountLocked(kind)
	// Slots just negotiated take a moment to get their sender; they are
	// coming, and asking for more now would grow the pool twice.
	ask := time.Since(t.growAsked[kind]) > growRetry && !t.slotsStartingLocked(kind)
	if ask {
		t.growAsked[kind] = time.Now()
	}
	t.mu.Unlock()
	if !ask {
		return true
	}
	if t.member {
		t.startGrow(kind, from)
	} else {
		t.log.Info("asking the member for more trunk slots", "kind", kind.String(), "slots", from)
		t.send(trunkGrowMsg{Kind: kind.String(), Slots: from})
	}
	return true
}

// startGrow renegotiates with slotGrowth more slots of kind, in the
// background, unless the pool already grew beyond from slots: requests of
// both sides made at the same time grow it once. The member's side only.
func (t *trunk) startGrow(kind webrtc.RTPCodecType, from int) {
	t.set.wg.Add(1)
	go func() {
		defer t.set.wg.Done()
		t.grow(kind, from)
	}()
}

func (t *trunk) grow(kind webrtc.RTPCodecType, from int) {
	t.negMu.Lock()
	defer t.negMu.Unlock()
	t.mu.Lock()
	have := t.slotCountLocked(kind)
	n := min(slotGrowth, maxTrunkSlots-have)
	closed := t.closed
	if have != from {
		t.growAsked[kind] = time.Time{}
	}
	t.mu.Unlock()
	if closed || n <= 0 || have != from {
		return
	}
	for range n {
		sl := newTrunkSlot(t, kind)
		tr, err := t.pc.AddTransceiverFromTrack(sl, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
		if err != nil {
			t.log.Warn("add trunk slot", "kind", kind.String(), "err", err)
			return
		}
		t.addSlot(sl, tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), restartWait)
	defer cancel()
	if err := t.negotiate(ctx, false); err != nil {
		t.log.Warn("trunk slot growth failed", "kind", kind.String(), "err", err)
		return
	}
	t.mu.Lock()
	// Served by the next demand tick; a later shortage asks at once.
	t.growAsked[kind] = time.Time{}
	t.mu.Unlock()
	t.log.Info("trunk slots added", "kind", kind.String(), "count", n)
}

// answeringSlots makes a sending slot of every section of the member's
// offer that has none yet: all of them on the first offer, the added ones
// on a later one. Called after the offer is applied.
func (t *trunk) answeringSlots() (int, error) {
	var fresh []*webrtc.RTPTransceiver
	for _, tr := range t.pc.GetTransceivers() {
		if tr.Sender() == nil && (tr.Kind() == webrtc.RTPCodecTypeAudio || tr.Kind() == webrtc.RTPCodecTypeVideo) {
			fresh = append(fresh, tr)
		}
	}
	for _, tr := range fresh {
		sl := newTrunkSlot(t, tr.Kind())
		sender, err := t.pc.AddTrack(sl)
		if err != nil {
			return 0, err
		}
		for _, x := range t.pc.GetTransceivers() {
			if x.Sender() == sender {
				t.addSlot(sl, x)
			}
		}
	}
	if len(fresh) > 0 {
		t.mu.Lock()
		t.growAsked = map[webrtc.RTPCodecType]time.Time{}
		t.mu.Unlock()
	}
	return len(fresh), nil
}

// retryUnmet serves again the wants that waited for slots.
func (t *trunk) retryUnmet() {
	t.mu.Lock()
	if len(t.unmet) == 0 {
		t.mu.Unlock()
		return
	}
	unmet := t.unmet
	t.unmet = map[string]layerSet{}
	t.mu.Unlock()
	for track := range unmet {
		t.serve(track)
	}
}
