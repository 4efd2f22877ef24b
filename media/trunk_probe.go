package media

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Probing before a held-back layer comes back (spec/federation.md §10.8).
// The estimator only learns what the link carries from what is sent: with
// layers held back it stays near one and a half times the rate that
// crosses, never enough to bring them back. So before a layer comes back,
// the sender sends probe packets for probeFor on a free video slot, at the
// rate the layer would add with a margin. If meanwhile the estimate does
// not fall, the loss does not grow and the delay-based detector sees no
// lasting overuse, the link carried it and the layer comes back; otherwise
// the probe stops, nothing the receiver's subscribers see has changed, and
// the next try waits longer.

const (
	probeFor = time.Second
	// probeTick spaces the probe's bursts of padding.
	probeTick = 5 * time.Millisecond
	// probeSize is the payload of one probe packet.
	probeSize = 1000
	// probeFall is how far the estimate may fall during a probe, and
	// probeLoss how much the loss may grow, and the probe still count as
	// carried.
	probeFall = 0.9
	probeLoss = 0.05
)

// trunkProbe is a probe under way, owned by the demand loop.
type trunkProbe struct {
	slot *trunkSlot
	// track is the track whose next layer the probe is for; "" for every
	// held-back layer of every track.
	track string
	// rate is the total the probe proves, in bits/s; startEst and
	// startLoss the estimate and loss when it started.
	rate      uint64
	startEst  uint64
	startLoss float64
	// overuses counts the samples during the probe in which the delay-based
	// detector saw overuse.
	overuses int
	until    time.Time
	stop     chan struct{}
	done     chan struct{}
}

// startProbe sends padding on a free video slot at extra bits/s for
// probeFor; nil when no video slot is free.
func (t *trunk) startProbe(track string, total, extra, est uint64, loss float64, now time.Time) *trunkProbe {
	t.mu.Lock()
	var slot *trunkSlot
	for _, s := range t.slots {
		if s.kind == webrtc.RTPCodecTypeVideo && s.reserveForProbe() {
			slot = s
			break
		}
	}
	t.mu.Unlock()
	if slot == nil {
		return nil
	}
	p := &trunkProbe{slot: slot, track: track, rate: total + extra, startEst: est, startLoss: loss, until: now.Add(probeFor),
		stop: make(chan struct{}), done: make(chan struct{})}
	perTick := float64(extra) / 8 * probeTick.Seconds() / probeSize
	go func() {
		defer close(p.done)
		defer slot.endProbe()
		ticker := time.NewTicker(probeTick)
		defer ticker.Stop()
		owed := 0.0
		for {
			select {
			case <-p.stop:
				return
			case <-t.done:
				return
			case <-ticker.C:
			}
			owed += perTick
			for ; owed >= 1; owed-- {
				slot.writePadding()
			}
		}
	}()
	return p
}

func (p *trunkProbe) end() {
	close(p.stop)
	<-p.done
}

// reserveForProbe marks a free slot as sending a probe, so no binding takes
// it meanwhile. Called with the trunk's mu held.
func (s *trunkSlot) reserveForProbe() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up != nil || s.writer == nil || s.probing || len(s.codecs) == 0 {
		return false
	}
	s.probing = true
	return true
}

func (s *trunkSlot) endProbe() {
	s.mu.Lock()
	s.probing = false
	s.mu.Unlock()
}

// probePayload is the body of a probe packet. The estimator counts a
// packet's payload, not its padding, so a probe carries bytes it can count;
// its padding flag tells the receiver to drop it: forwarded media on a
// trunk never has padding (trunkSlot.write).
var probePayload = make([]byte, probeSize)

// writePadding sends one probe packet, its sequence number continuing the
// slot's numbering.
func (s *trunkSlot) writePadding() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writer == nil || s.up != nil {
		return
	}
	if !s.started {
		s.started, s.lastSeqOut = true, 0
	} else {
		s.lastSeqOut++
	}
	h := rtp.Header{Version: 2, Padding: true, PaddingSize: 1, PayloadType: uint8(s.codecs[0].PayloadType),
		SequenceNumber: s.lastSeqOut, Timestamp: s.out.Timestamp, SSRC: s.ssrc}
	// Probes are not media: the trunk's packet counters leave them out.
	_, _ = s.writer.WriteRTP(&h, probePayload)
}

// isProbe reports whether raw, received on a trunk, is a probe packet: the
// only packets on a trunk with the padding flag.
func isProbe(raw []byte) bool { return padded(raw) }
