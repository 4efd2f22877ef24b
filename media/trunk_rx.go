package media

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// The receiving side of a trunk: the peer's slots, what each carries now
// (its `bind`s, spec/federation.md §10.3), their packets forwarded into the
// peer's tracks as they exist here, and keyframe requests sent back.

// onTrack starts the reader of one receiving slot; what the slot carries is
// looked up per packet, since bindings change without renegotiation.
func (t *trunk) onTrack(remote *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
	mid := ""
	for _, tr := range t.pc.GetTransceivers() {
		if tr.Receiver() == receiver {
			mid = tr.Mid()
		}
	}
	rs := t.rxSlot(mid)
	t.log.Debug("trunk slot receiving", "slot", mid, "ssrc", remote.SSRC())
	rs.ssrc.Store(uint32(remote.SSRC()))
	if b := rs.binding.Load(); b != nil {
		b.up.layers[b.layer].ssrc.Store(uint32(remote.SSRC()))
	}
	go drainRTCP(receiver, "")
	buf := make([]byte, maxPacketSize)
	var last *rxBinding
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				t.log.Debug("trunk slot read ended", "slot", mid, "err", err)
			}
			return
		}
		b := rs.binding.Load()
		if b == nil || b.up.closed.Load() || isProbe(buf[:n]) {
			// Nothing to forward: no binding, or a probe
			// (trunk_probe.go).
			continue
		}
		if b != last {
			last = b
			b.up.layers[b.layer].ssrc.Store(uint32(remote.SSRC()))
			// The far side may have started mid-frame: ask for a keyframe
			// so local subscribers can start decoding.
			b.up.RequestKeyframe(b.layer)
		}
		t.set.recvPackets.Inc()
		t.set.recvBytes.Add(float64(max(n-12, 0)))
		l := &b.up.layers[b.layer]
		l.forwardMu.Lock()
		b.up.forward(b.layer, buf[:n], time.Now().UnixNano())
		l.forwardMu.Unlock()
	}
}

// rxSlot is a receiving slot: the remote track and layer it carries now.
type rxSlot struct {
	binding atomic.Pointer[rxBinding]
	ssrc    atomic.Uint32
}

type rxBinding struct {
	up    *upTrack
	layer int
}

func (t *trunk) rxSlot(mid string) *rxSlot {
	t.mu.Lock()
	defer t.mu.Unlock()
	rs, ok := t.rx[mid]
	if !ok {
		rs = &rxSlot{}
		t.rx[mid] = rs
	}
	return rs
}

// receivedLevelID is the ID of the audio-level extension the peer sends on
// audio slots, 0 if it was not negotiated.
func (t *trunk) receivedLevelID() uint8 {
	for _, tr := range t.pc.GetTransceivers() {
		if tr.Kind() != webrtc.RTPCodecTypeAudio || tr.Receiver() == nil {
			continue
		}
		for _, ext := range tr.Receiver().GetParameters().HeaderExtensions {
			if ext.URI == sdp.AudioLevelURI && ext.ID > 0 && ext.ID < 15 {
				return uint8(ext.ID)
			}
		}
	}
	return 0
}

// rxBind records what the peer will send on slot.
func (t *trunk) rxBind(slot, track string, layer int) {
	if layer < 0 || layer >= maxLayers {
		return
	}
	t.mu.Lock()
	u, ok := t.remote[track]
	t.mu.Unlock()
	rs := t.rxSlot(slot)
	if !ok {
		rs.binding.Store(nil)
		return
	}
	if ssrc := rs.ssrc.Load(); ssrc != 0 {
		u.layers[layer].ssrc.Store(ssrc)
	}
	// A layer crosses on one slot at a time: a slot that still carried it
	// (its unbind not yet seen) stops delivering into it now.
	t.mu.Lock()
	for _, other := range t.rx {
		if b := other.binding.Load(); other != rs && b != nil && b.up == u && b.layer == layer {
			other.binding.Store(nil)
		}
	}
	t.mu.Unlock()
	rs.binding.Store(&rxBinding{up: u, layer: layer})
}

// sendPLI asks the peer for a keyframe on the stream it sends with ssrc;
// the peer passes it to the track's source, merged and rate-limited there.
func (t *trunk) sendPLI(ssrc uint32) error {
	if err := t.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err != nil {
		return fmt.Errorf("trunk pli for ssrc %d: %w", ssrc, err)
	}
	return nil
}
