package media

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// trunkSlot is one pre-negotiated sending transceiver of a trunk
// (spec/federation.md §10.3). The control channel binds it to one layer of
// one track; it is then a sink of that up-track. Its SSRC never changes, so
// sequence numbers continue across bindings: the peer's SRTP would take a
// jump back for a replay.
type trunkSlot struct {
	trunk *trunk
	kind  webrtc.RTPCodecType
	tr    *webrtc.RTPTransceiver
	mid   string

	mu      sync.Mutex
	writer  webrtc.TrackLocalWriter
	ssrc    uint32
	codecs  []webrtc.RTPCodecParameters
	up      UpTrack
	layer   int
	pt      uint8
	counter *trackCounter
	// levelID is the audio-level extension's ID negotiated on the trunk, 0
	// if none; level is the value for the packet being written.
	levelID  uint8
	level    [1]byte
	hasLevel bool

	started    bool
	fresh      bool
	seqOffset  uint16
	lastSeqOut uint16
	history    [historySize]sentPacket
	out        rtp.Header
	scratch    [maxPacketSize]byte
	// sentAudio keeps what an audio slot sent, to answer the peer's NACKs:
	// audio up-tracks keep no cache of their own, since clients do not
	// negotiate audio NACK (trunk_api.go). Allocated at the first audio
	// packet.
	sentAudio *audioCache
	// probing is set while the slot, free, sends a probe (trunk_probe.go).
	probing bool
}

func newTrunkSlot(t *trunk, kind webrtc.RTPCodecType) *trunkSlot {
	return &trunkSlot{trunk: t, kind: kind}
}

func (s *trunkSlot) ID() string                { return "slot-" + s.kind.String() }
func (s *trunkSlot) RID() string               { return "" }
func (s *trunkSlot) StreamID() string          { return "entente-trunk" }
func (s *trunkSlot) Kind() webrtc.RTPCodecType { return s.kind }

// Bind keeps every negotiated codec: the payload type is chosen per binding
// from the bound track's codec.
func (s *trunkSlot) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codecs := ctx.CodecParameters()
	if len(codecs) == 0 {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("trunk slot %s: no codec negotiated", s.mid)
	}
	var levelID uint8
	for _, ext := range ctx.HeaderExtensions() {
		if ext.URI == sdp.AudioLevelURI && ext.ID > 0 && ext.ID < 15 {
			levelID = uint8(ext.ID)
		}
	}
	s.mu.Lock()
	s.writer, s.ssrc, s.codecs, s.levelID = ctx.WriteStream(), uint32(ctx.SSRC()), codecs, levelID
	s.mu.Unlock()
	return codecs[0], nil
}

func (s *trunkSlot) Unbind(webrtc.TrackLocalContext) error {
	s.mu.Lock()
	s.writer = nil
	s.mu.Unlock()
	return nil
}

// errSlotTaken is bind's answer for a slot that is no longer free.
var errSlotTaken = errors.New("trunk slot taken")

// bind makes the slot, if it is free, carry layer of up; the payload type
// follows up's codec. It fails with errSlotTaken when the slot is not free,
// and when the peer did not negotiate that codec.
func (s *trunkSlot) bind(up UpTrack, layer int, counter *trackCounter) error {
	codec := up.Codec()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.up != nil || s.writer == nil || s.probing {
		return errSlotTaken
	}
	for _, c := range s.codecs {
		if !strings.EqualFold(c.MimeType, codec.MimeType) {
			continue
		}
		if strings.EqualFold(codec.MimeType, webrtc.MimeTypeH264) && !sameH264Mode(c.SDPFmtpLine, codec.SDPFmtpLine) {
			continue
		}
		s.up, s.layer, s.pt, s.counter, s.fresh = up, layer, uint8(c.PayloadType), counter, true
		return nil
	}
	return fmt.Errorf("trunk slot %s: %s: %w", s.mid, codec.MimeType, errCodecNotNegotiated)
}

// unbind detaches the slot from its track, if any.
func (s *trunkSlot) unbind() {
	s.mu.Lock()
	up := s.up
	s.up = nil
	s.mu.Unlock()
	if up != nil {
		up.RemoveSink(s)
	}
}

// Close is called by the up-track when it goes away.
func (s *trunkSlot) Close() {
	s.mu.Lock()
	s.up = nil
	s.mu.Unlock()
}

// WriteRTP sends the bound layer's packets; the other layers of the track
// reach the slots bound to them.
func (s *trunkSlot) WriteRTP(p *Packet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writer == nil || s.up == nil || p.Layer != s.layer {
		return
	}
	if s.fresh {
		// A video layer starts from its last keyframe when that just
		// passed, so the far node's subscribers need not wait (catchup.go).
		s.fresh = false
		first := p.Header.SequenceNumber
		key, catchUp := uint16(0), false
		if s.kind == webrtc.RTPCodecTypeVideo {
			key, catchUp = catchUpFrom(s.up, p, s.scratch[:])
		}
		if catchUp {
			first = key
		}
		if s.started {
			s.seqOffset = s.lastSeqOut + 1 - first
		} else {
			s.started, s.seqOffset = true, 0
		}
		if catchUp {
			replay(s.up, p, key, s.scratch[:], s.send)
		}
	}
	s.send(p)
}

// send writes p, with its sequence number continued in the slot's own
// numbering. Called with s.mu held.
func (s *trunkSlot) send(p *Packet) {
	seqOut := p.Header.SequenceNumber + s.seqOffset
	if int16(seqOut-s.lastSeqOut) > 0 || s.lastSeqOut == 0 {
		s.lastSeqOut = seqOut
	}
	s.history[seqOut%historySize] = sentPacket{seqOut: seqOut, seqIn: p.Header.SequenceNumber, layer: int8(p.Layer), tsOut: p.Header.Timestamp, valid: true}
	s.level[0], s.hasLevel = p.AudioLevel, p.HasAudioLevel
	s.write(p.Header, p.Payload, seqOut, false)
	if s.kind == webrtc.RTPCodecTypeAudio {
		if s.sentAudio == nil {
			s.sentAudio = &audioCache{}
		}
		s.sentAudio.store(seqOut, p)
	}
}

// write sends one packet with the slot's SSRC. Of the publisher's header
// extensions, whose IDs were negotiated on its own connection, only the
// audio level crosses, under the trunk's ID, so the far node can tell who
// speaks (spec/federation.md §10.3). resent marks a retransmission of seq,
// counted apart from first sends. Called with s.mu held.
func (s *trunkSlot) write(h *rtp.Header, payload []byte, seq uint16, resent bool) {
	s.out = rtp.Header{
		Version:        2,
		Marker:         h.Marker,
		PayloadType:    s.pt,
		SequenceNumber: seq,
		Timestamp:      h.Timestamp,
		SSRC:           s.ssrc,
		CSRC:           h.CSRC,
		// The slice keeps its capacity, so setting the level does not
		// allocate.
		Extensions: s.out.Extensions[:0],
	}
	if s.hasLevel && s.levelID != 0 {
		_ = s.out.SetExtension(s.levelID, s.level[:])
	}
	if n, err := s.writer.WriteRTP(&s.out, payload); err == nil && n > 0 {
		if resent {
			s.counter.resent[s.layer].Add(1)
		} else {
			s.counter.packets[s.layer].Add(1)
		}
		s.counter.bytes.Add(uint64(len(payload)))
		s.trunk.set.sentPackets.Inc()
		s.trunk.set.sentBytes.Add(float64(len(payload)))
	}
}

// readRTCP answers the peer's feedback on this slot: NACKs from the
// up-track's cache, keyframe requests passed to the up-track, which merges
// them with local ones.
func (s *trunkSlot) readRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, maxPacketSize)
	for {
		n, _, err := sender.Read(buf)
		if err != nil {
			return
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			s.trunk.set.sfu.metrics.malformed.WithLabelValues("rtcp").Inc()
			continue
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				s.mu.Lock()
				up, layer := s.up, s.layer
				s.mu.Unlock()
				if up != nil {
					up.RequestKeyframe(layer)
				}
			case *rtcp.TransportLayerNack:
				for _, pair := range p.Nacks {
					for _, seq := range pair.PacketList() {
						if s.retransmit(seq) {
							s.trunk.set.sfu.metrics.nackAnswered.Inc()
						} else {
							s.trunk.set.sfu.metrics.nackMissed.Inc()
						}
					}
				}
			}
		}
	}
}

func (s *trunkSlot) retransmit(seqOut uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sent := s.history[seqOut%historySize]
	if s.writer == nil || s.up == nil || !sent.valid || sent.seqOut != seqOut {
		return false
	}
	if s.kind == webrtc.RTPCodecTypeAudio {
		return s.resendAudio(seqOut)
	}
	var h rtp.Header
	payload, ok := readCached(s.up, int(sent.layer), sent.seqIn, s.scratch[:], &h)
	if !ok {
		return false
	}
	s.hasLevel = false
	s.write(&h, payload, seqOut, true)
	return true
}
