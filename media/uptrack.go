package media

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const (
	// keyframeInterval is the shortest time between two keyframe requests
	// sent upstream for one layer: every PLI makes the publisher spend bits
	// on a large frame, so subscribers' requests are merged.
	keyframeInterval = 500 * time.Millisecond
	// layerTimeout is how long a layer may stay silent before subscribers
	// are moved off it.
	layerTimeout = time.Second
	// peerRatesTimeout is how long a trunk peer's report of live layers
	// holds; reports come every half second.
	peerRatesTimeout = 3 * time.Second
)

// TrackInfo describes a published track to clients (spec/client-api.md §5.3).
type TrackInfo struct {
	ID     string   `json:"id"`
	Owner  string   `json:"owner"`
	Kind   string   `json:"kind"`
	Source string   `json:"source"`
	Muted  bool     `json:"muted"`
	Layers []string `json:"layers"`
	// Width and Height are the full picture size announced by the publisher,
	// used to size the simulcast layers.
	Width  int `json:"-"`
	Height int `json:"-"`
}

// upTrack is a track received from a publisher, fanned out to its sinks.
type upTrack struct {
	info      TrackInfo
	codec     webrtc.RTPCodecCapability
	kind      webrtc.RTPCodecType
	simulcast bool
	muted     atomic.Bool
	closed    atomic.Bool
	layers    [maxLayers]upLayer

	sinksMu sync.Mutex
	sinks   atomic.Pointer[[]DownTrack]

	// sendPLI asks the publisher for a keyframe on the stream with ssrc.
	sendPLI func(ssrc uint32) error
	// audioLevelID is the negotiated ID of the audio-level header extension,
	// 0 when absent.
	audioLevelID uint8
	// loudness is a smoothed 0-127 loudness (127 - dBov) for speaker
	// detection; it belongs to the reader goroutine, which publishes it
	// through peak.
	loudness uint32
	// peak is the highest loudness since the speaker detector last took
	// it: speech and the tones of test devices come in bursts shorter
	// than the detector's interval.
	peak atomic.Uint32
	// peerRates are, for a track received over a trunk, the layer bitrates
	// the sending node reported (0: not live there), and peerRatesAt when:
	// a layer may be chosen before it crosses (spec/federation.md §10.4).
	peerRates   [maxLayers]atomic.Uint64
	peerRatesAt atomic.Int64

	// out is the shared media socket's senders, held while a packet fans
	// out to as many sinks as heldFanOut says, so that its copies leave in
	// one batch; nil without a shared socket.
	out *sendGroup

	metrics *metrics
	log     *slog.Logger
}

// upLayer is one simulcast layer (or the only stream) of an upTrack. The
// fields without atomics belong to the layer's reader goroutine.
type upLayer struct {
	cache        *packetCache
	ssrc         atomic.Uint32
	lastPacket   atomic.Int64
	lastKeyframe atomic.Int64
	keyframeSeq  atomic.Uint32
	lastPLI      atomic.Int64
	pending      atomic.Bool
	bitrate      atomic.Uint64

	// reader is the goroutine reading a publisher's stream into the layer
	// (readLayer).
	reader atomic.Pointer[layerReader]
	// forwardMu is held by whoever forwards into this layer: while a trunk
	// peer moves the layer from one slot to another, or a publisher's
	// layer moves to a new stream, the old stream's last packets and the
	// new one's first can arrive at once, and the fields below have one
	// writer at a time (trunk.onTrack, readLayer).
	forwardMu sync.Mutex

	windowStart int64
	windowBytes uint64
	hdr         rtp.Header
	pkt         Packet
	// link measures the stream's loss and jitter (quality.go).
	link linkCounter
}

func newUpTrack(info TrackInfo, codec webrtc.RTPCodecCapability, kind webrtc.RTPCodecType, sendPLI func(uint32) error, m *metrics, log *slog.Logger) *upTrack {
	t := &upTrack{
		info:      info,
		codec:     codec,
		kind:      kind,
		simulcast: len(info.Layers) > 1,
		sendPLI:   sendPLI,
		metrics:   m,
		log:       log.With("track", info.ID),
	}
	t.muted.Store(info.Muted)
	if kind == webrtc.RTPCodecTypeVideo {
		// Audio NACK is not negotiated (codecs.go), so only video keeps a cache.
		for i := range t.layers {
			t.layers[i].cache = newPacketCache()
		}
	}
	empty := []DownTrack{}
	t.sinks.Store(&empty)
	return t
}

func (t *upTrack) ID() string                       { return t.info.ID }
func (t *upTrack) Codec() webrtc.RTPCodecCapability { return t.codec }

func (t *upTrack) Info() TrackInfo {
	info := t.info
	info.Muted = t.muted.Load()
	return info
}

func (t *upTrack) AddSink(d DownTrack) {
	t.sinksMu.Lock()
	defer t.sinksMu.Unlock()
	if t.closed.Load() {
		d.Close()
		return
	}
	old := *t.sinks.Load()
	sinks := make([]DownTrack, 0, len(old)+1)
	sinks = append(sinks, old...)
	sinks = append(sinks, d)
	t.sinks.Store(&sinks)
}

func (t *upTrack) RemoveSink(d DownTrack) {
	t.sinksMu.Lock()
	defer t.sinksMu.Unlock()
	old := *t.sinks.Load()
	sinks := make([]DownTrack, 0, len(old))
	for _, s := range old {
		if s != d {
			sinks = append(sinks, s)
		}
	}
	t.sinks.Store(&sinks)
}

// close detaches every sink at once, so none receives another packet of
// this track.
func (t *upTrack) close() {
	t.sinksMu.Lock()
	t.closed.Store(true)
	old := *t.sinks.Load()
	empty := []DownTrack{}
	t.sinks.Store(&empty)
	t.sinksMu.Unlock()
	for _, s := range old {
		s.Close()
	}
}

func (t *upTrack) RequestKeyframe(layer int) {
	if t.kind != webrtc.RTPCodecTypeVideo || layer < 0 || layer >= maxLayers {
		return
	}
	l := &t.layers[layer]
	ssrc := l.ssrc.Load()
	if ssrc == 0 {
		return
	}
	now := time.Now().UnixNano()
	last := l.lastPLI.Load()
	if wait := last + int64(keyframeInterval) - now; wait > 0 {
		// Merge into one request at the end of the interval, so the
		// subscriber asking now is not left waiting for the next periodic
		// keyframe.
		if l.pending.CompareAndSwap(false, true) {
			time.AfterFunc(time.Duration(wait), func() {
				l.pending.Store(false)
				if !t.closed.Load() {
					t.RequestKeyframe(layer)
				}
			})
		}
		return
	}
	if !l.lastPLI.CompareAndSwap(last, now) {
		return
	}
	t.metrics.keyframeRequests.Inc()
	if err := t.sendPLI(ssrc); err != nil {
		t.log.Debug("keyframe request failed", "layer", layer, "err", err)
	}
}

func (t *upTrack) Cached(layer int, seq uint16, buf []byte) (int, bool) {
	if layer < 0 || layer >= maxLayers || t.layers[layer].cache == nil {
		return 0, false
	}
	return t.layers[layer].cache.get(seq, buf)
}

func (t *upTrack) LayerUsable(layer int) (uint64, bool) {
	if layer < 0 || layer >= maxLayers {
		return 0, false
	}
	l := &t.layers[layer]
	now := time.Now().UnixNano()
	if now-l.lastPacket.Load() <= int64(layerTimeout) {
		return l.bitrate.Load(), true
	}
	if now-t.peerRatesAt.Load() <= int64(peerRatesTimeout) {
		if bps := t.peerRates[layer].Load(); bps > 0 {
			return bps, true
		}
	}
	return 0, false
}

func (t *upTrack) RecentKeyframe(layer int, d time.Duration) (uint16, bool) {
	if t.kind != webrtc.RTPCodecTypeVideo || layer < 0 || layer >= maxLayers {
		return 0, false
	}
	l := &t.layers[layer]
	at := l.lastKeyframe.Load()
	if at == 0 || time.Now().UnixNano()-at > int64(d) {
		return 0, false
	}
	return uint16(l.keyframeSeq.Load()), true
}

// setPeerRates records the sending node's report of the track's layers.
func (t *upTrack) setPeerRates(rates []uint64, now int64) {
	for l := range maxLayers {
		var bps uint64
		if l < len(rates) {
			bps = rates[l]
		}
		t.peerRates[l].Store(bps)
	}
	t.peerRatesAt.Store(now)
}

// rtpReader is what the layer reader needs of pion's TrackRemote.
type rtpReader interface {
	Read(b []byte) (int, interceptor.Attributes, error)
}

// layerReader is the goroutine reading one received stream into a layer.
type layerReader struct {
	src rtpReader
	// pt is the payload type the stream was negotiated with, -1 when
	// unknown: the first media packet then sets it.
	pt int
}

// streamPayloadType is the payload type a layer reader keeps for a stream
// of codec c, -1 when pion reports the stream's RTX codec instead: the
// reader then takes the first media packet's.
func streamPayloadType(c webrtc.RTPCodecParameters) int {
	if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) {
		return -1
	}
	return int(c.PayloadType)
}

// padded reports whether the RTP packet raw has the padding flag.
func padded(raw []byte) bool { return len(raw) > 0 && raw[0]&0x20 != 0 }

// readLayer forwards one received stream until it ends or a newer stream
// of the same layer replaces it. A layer has one reader at a time: pion
// fires OnTrack again for a rid when a second SSRC arrives carrying that
// rid (webrtc v4 RTPReceiver.receiveForRid), re-binding the same
// TrackRemote to the new SSRC. The reader of that TrackRemote already
// follows it, so the second call returns at once; it hands over to the
// new SSRC itself when the first packet of it arrives. A different
// TrackRemote for the layer replaces the current reader, which stops
// before its next packet (forwardMu keeps the two from forwarding at
// once).
func (t *upTrack) readLayer(layer int, ssrc uint32, r rtpReader) {
	if me := t.claimLayer(layer, r); me != nil {
		t.readFrom(layer, ssrc, me)
	}
}

// claimLayer makes r the stream read into layer, or returns nil if r is
// already read by a live reader.
func (t *upTrack) claimLayer(layer int, r rtpReader) *layerReader {
	l := &t.layers[layer]
	me := &layerReader{src: r, pt: -1}
	for {
		cur := l.reader.Load()
		if cur != nil && cur.src == r {
			return nil
		}
		if l.reader.CompareAndSwap(cur, me) {
			return me
		}
	}
}

// readFrom is the loop of the reader me, which claimLayer returned.
func (t *upTrack) readFrom(layer int, ssrc uint32, me *layerReader) {
	l := &t.layers[layer]
	r := me.src
	defer l.reader.CompareAndSwap(me, nil)
	l.ssrc.Store(ssrc)
	buf := make([]byte, maxPacketSize)
	pt := me.pt
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				t.log.Debug("track read ended", "layer", layer, "err", err)
			}
			return
		}
		if t.closed.Load() {
			// Unpublished: what still arrives has nowhere to go.
			return
		}
		if n < 12 {
			t.metrics.malformed.WithLabelValues("rtp").Inc()
			continue
		}
		// The up-track's codec is fixed: a packet in another payload type
		// (a publisher's RTX stream labelled with the rid instead of the
		// repaired rid, RFC 8852 §3.2, which pion then reads in place of
		// the layer) would reach subscribers as garbage. Without the
		// negotiated one, the first packet without padding sets it: a
		// browser probes the link at the start with padding-only RTX
		// packets, and a probe taken for the media would drop every media
		// packet after it.
		if p := int(buf[1] & 0x7f); pt < 0 {
			if padded(buf[:n]) {
				continue
			}
			pt = p
		} else if p != pt {
			continue
		}
		l.forwardMu.Lock()
		if l.reader.Load() != me {
			l.forwardMu.Unlock()
			return
		}
		if s := binary.BigEndian.Uint32(buf[8:12]); s != ssrc {
			// The publisher moved the layer to a new SSRC: keyframe
			// requests go there now, and subscribers need a keyframe of it.
			ssrc = s
			l.ssrc.Store(s)
			l.link.restart(binary.BigEndian.Uint16(buf[2:4]))
			t.log.Debug("layer moved to a new ssrc", "layer", layer, "ssrc", s)
			l.lastPLI.Store(0)
			go t.RequestKeyframe(layer)
		}
		t.forward(layer, buf[:n], time.Now().UnixNano())
		l.forwardMu.Unlock()
	}
}

// forward is the hot path: parse, cache, and hand the packet to every sink.
// It does not allocate.
func (t *upTrack) forward(layer int, raw []byte, now int64) {
	l := &t.layers[layer]
	hdrLen, err := l.hdr.Unmarshal(raw)
	if err != nil {
		t.metrics.malformed.WithLabelValues("rtp").Inc()
		t.log.Debug("malformed rtp dropped", "err", err)
		return
	}
	payload := raw[hdrLen:]
	if l.hdr.Padding {
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
			t.metrics.malformed.WithLabelValues("rtp").Inc()
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
		l.hdr.Padding = false
	}
	l.lastPacket.Store(now)
	l.link.note(l.hdr.SequenceNumber, l.hdr.Timestamp, now, t.codec.ClockRate)
	l.windowBytes += uint64(len(raw))
	if elapsed := now - l.windowStart; elapsed >= int64(time.Second) {
		l.bitrate.Store(l.windowBytes * 8 * uint64(time.Second) / uint64(elapsed))
		l.windowStart, l.windowBytes = now, 0
	}

	keyframe, level, hasLevel := true, byte(0), false
	if t.kind == webrtc.RTPCodecTypeVideo {
		keyframe = isKeyframe(t.codec.MimeType, payload)
		if keyframe {
			l.keyframeSeq.Store(uint32(l.hdr.SequenceNumber))
			l.lastKeyframe.Store(now)
		}
		l.cache.store(l.hdr.SequenceNumber, raw)
	} else if t.audioLevelID != 0 {
		if ext := l.hdr.GetExtension(t.audioLevelID); len(ext) > 0 {
			level, hasLevel = ext[0], true
			t.loudness = (3*t.loudness + uint32(127-ext[0]&0x7f)) / 4
			if t.loudness > t.peak.Load() {
				t.peak.Store(t.loudness)
			}
		}
	}

	l.pkt = Packet{Header: &l.hdr, Payload: payload, Layer: layer, Keyframe: keyframe, AudioLevel: level, HasAudioLevel: hasLevel, Arrival: now}
	sinks := *t.sinks.Load()
	held := heldFanOut(len(sinks))
	if held {
		t.out.hold()
	}
	for _, s := range sinks {
		s.WriteRTP(&l.pkt)
	}
	if held {
		t.out.release()
	}
}
