package media

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// historySize is how many sent packets a down-track remembers to map a NACK
// back to the layer and sequence number it came from; it matches the packet
// cache, beyond which a retransmission is impossible anyway.
const historySize = packetCacheSize

// targetCheckEvery is how many packets a down-track lets pass unsent (or
// sent while it waits to switch) between two checks of the layer it
// wants: several checks a second at the smallest layer's rate.
const targetCheckEvery = 16

// downTrack sends one up-track to one subscriber. It is a webrtc.TrackLocal
// added to the subscriber's peer connection, and a DownTrack of the router.
// It picks one simulcast layer at a time and rewrites SSRC, sequence numbers
// and timestamps so that the subscriber sees one continuous stream.
type downTrack struct {
	up        UpTrack
	info      TrackInfo
	kind      webrtc.RTPCodecType
	simulcast bool
	clockRate uint32
	metrics   *metrics
	// fwdPackets and fwdBytes count what this down-track really sends: a
	// simulcast sink drops the layers it is not sending.
	fwdPackets, fwdBytes prometheus.Counter
	// reports keeps the subscriber's latest receiver report (quality.go).
	reports reportCounter
	// onClose runs once when the up-track goes away.
	onClose   func()
	closeOnce sync.Once

	mu      sync.Mutex
	writer  webrtc.TrackLocalWriter
	ssrc    uint32
	pt      uint8
	current int // layer being sent, -1 before the first keyframe
	target  int // layer wanted; switched to at its next keyframe
	maxW    int
	maxH    int
	remb    uint64

	// skipped counts the packets watchTarget saw.
	skipped    uint32
	started    bool
	seqOffset  uint16
	tsOffset   uint32
	lastSeqOut uint16
	lastTSOut  uint32
	// lastOut is when the frame with timestamp lastTSOut started going
	// out: sender reports and layer switches continue the RTP clock
	// from there.
	lastOut int64
	// sentPackets and sentOctets are what the subscriber's sender
	// reports count (reports.go).
	sentPackets, sentOctets uint32
	history                 [historySize]sentPacket
	out                     rtp.Header
	scratch                 [maxPacketSize]byte
}

type sentPacket struct {
	seqOut uint16
	seqIn  uint16
	layer  int8
	tsOut  uint32
	valid  bool
}

func newDownTrack(up UpTrack, m *metrics, maxW, maxH int, onClose func()) *downTrack {
	info := up.Info()
	kind := webrtc.RTPCodecTypeAudio
	if info.Kind == "video" {
		kind = webrtc.RTPCodecTypeVideo
	}
	d := &downTrack{
		up:        up,
		info:      info,
		kind:      kind,
		simulcast: len(info.Layers) > 1,
		clockRate: up.Codec().ClockRate,
		metrics:   m,
		onClose:   onClose,
		current:   -1,
		maxW:      maxW,
		maxH:      maxH,
	}
	d.target = chooseLayer(up, d.simulcast, maxW, maxH, 0)
	d.fwdPackets = m.forwardedPackets.WithLabelValues(kind.String())
	d.fwdBytes = m.forwardedBytes.WithLabelValues(kind.String())
	return d
}

// The TrackLocal methods make the down-track addable to a peer connection:
// the track ID is the published track's ID and the stream ID its owner, so a
// client's ontrack maps the media to the track_added it saw (§5.3).

func (d *downTrack) ID() string                { return d.info.ID }
func (d *downTrack) RID() string               { return "" }
func (d *downTrack) StreamID() string          { return d.info.Owner }
func (d *downTrack) Kind() webrtc.RTPCodecType { return d.kind }

var errCodecNotNegotiated = errors.New("codec not negotiated by subscriber")

func (d *downTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec := d.up.Codec()
	for _, c := range ctx.CodecParameters() {
		if !strings.EqualFold(c.MimeType, codec.MimeType) {
			continue
		}
		if strings.EqualFold(codec.MimeType, webrtc.MimeTypeH264) && !sameH264Mode(c.SDPFmtpLine, codec.SDPFmtpLine) {
			continue
		}
		d.mu.Lock()
		d.writer, d.ssrc, d.pt = ctx.WriteStream(), uint32(ctx.SSRC()), uint8(c.PayloadType)
		target := d.target
		d.mu.Unlock()
		// A new subscriber needs a keyframe to start decoding (§5.5).
		d.up.RequestKeyframe(target)
		return c, nil
	}
	return webrtc.RTPCodecParameters{}, fmt.Errorf("track %s: %s: %w", d.info.ID, codec.MimeType, errCodecNotNegotiated)
}

func sameH264Mode(a, b string) bool {
	return strings.Contains(a, "packetization-mode=1") == strings.Contains(b, "packetization-mode=1")
}

// noteReports records the report blocks about this down-track's stream.
func (d *downTrack) noteReports(blocks []rtcp.ReceptionReport) {
	d.mu.Lock()
	ssrc := d.ssrc
	d.mu.Unlock()
	now := time.Now()
	for _, b := range blocks {
		if b.SSRC == ssrc && ssrc != 0 {
			d.reports.note(b, d.clockRate, now)
		}
	}
}

func (d *downTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// Close is called by the up-track when it goes away.
func (d *downTrack) Close() {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.writer = nil
		d.mu.Unlock()
		if d.onClose != nil {
			d.onClose()
		}
	})
}

// setPreferences records the subscriber's wanted size and re-chooses the
// layer.
func (d *downTrack) setPreferences(maxW, maxH int) {
	d.mu.Lock()
	d.maxW, d.maxH = maxW, maxH
	target := d.retarget()
	d.mu.Unlock()
	d.up.RequestKeyframe(target)
}

// setEstimate records the subscriber's REMB and re-chooses the layer.
func (d *downTrack) setEstimate(bps uint64) {
	d.mu.Lock()
	d.remb = bps
	before := d.target
	target := d.retarget()
	d.mu.Unlock()
	if target != before {
		d.up.RequestKeyframe(target)
	}
}

func (d *downTrack) retarget() int {
	if t := chooseLayer(d.up, d.simulcast, d.maxW, d.maxH, d.remb); t >= 0 {
		d.target = t
	}
	return d.target
}

// demand is the set of layers this subscriber needs of its up-track: the
// one it receives and the one it is switching to. A target that is no
// longer live is chosen again first. When no layer of the track is known to
// be live, which is how a track received over a trunk starts, the demand is
// the layer fitting the size the subscriber asked for.
func (d *downTrack) demand() layerSet {
	if !d.simulcast {
		return layerSet(0).with(0)
	}
	d.mu.Lock()
	before := d.target
	if _, ok := d.up.LayerUsable(d.target); !ok {
		d.retarget()
	}
	target := d.target
	var set layerSet
	if target >= 0 {
		set = set.with(target)
	} else {
		set = set.with(d.fittingLayer())
	}
	if d.current >= 0 {
		set = set.with(d.current)
	}
	d.mu.Unlock()
	if target != before && target >= 0 {
		d.up.RequestKeyframe(target)
	}
	return set
}

// fittingLayer is the largest layer fitting the size the subscriber asked
// for. Called with d.mu held.
func (d *downTrack) fittingLayer() int {
	best := 0
	for l := range maxLayers {
		lw, lh := layerSize(l, d.info.Width, d.info.Height)
		if (d.maxW == 0 || lw <= d.maxW) && (d.maxH == 0 || lh <= d.maxH) {
			best = l
		}
	}
	return best
}

// layer is the layer currently sent, for keyframe requests.
func (d *downTrack) layer() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current < 0 {
		return d.target
	}
	return d.current
}

// WriteRTP forwards p if it belongs to the layer being sent, switching
// layers at a keyframe of the target layer.
func (d *downTrack) WriteRTP(p *Packet) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writer == nil {
		return
	}
	if d.simulcast && p.Keyframe {
		// Layers come and go with the publisher's bandwidth: keyframes are
		// rare enough to re-choose at each.
		d.retarget()
	}
	if p.Layer != d.current || d.target != d.current {
		d.watchTarget()
	}
	if p.Layer != d.current {
		if p.Layer != d.target {
			return
		}
		if !p.Keyframe {
			// Only the very start may begin with a keyframe that just
			// passed: a switch goes on with the old layer meanwhile.
			key, ok := uint16(0), false
			if d.current < 0 {
				key, ok = catchUpFrom(d.up, p, d.scratch[:])
			}
			if !ok {
				return
			}
			replay(d.up, p, key, d.scratch[:], d.startWith)
			if d.current != p.Layer {
				// The keyframe did not go out (write, below): nothing
				// after it may.
				return
			}
		} else {
			d.switchTo(p)
		}
	}
	if d.simulcast && p.Keyframe && d.target != d.current {
		// The layer on its way out keeps flowing until the target's keyframe.
		d.up.RequestKeyframe(d.target)
	}
	d.send(p)
}

// watchTarget runs on the packets a down-track does not send, and on those
// it sends while it waits to switch, at most every targetCheckEvery of them.
// A layer it wants that is no longer live is chosen again: a browser's
// encoder drops its upper layers when its bandwidth or CPU runs short. And
// while it waits for a keyframe of its target, to start or to switch, it
// asks again: a keyframe request can be lost on the way, and a browser's
// encoder ignores one that follows another within a few hundred
// milliseconds, whatever layer each was for, and sends no keyframe unless
// asked. Without this the subscriber would stay dark (or on the old
// layer) until some other event asked for that keyframe. The up-track
// merges the requests (keyframeInterval). Called with d.mu held.
func (d *downTrack) watchTarget() {
	if d.skipped++; d.skipped%targetCheckEvery != 0 {
		return
	}
	if d.simulcast {
		if _, ok := d.up.LayerUsable(d.target); !ok {
			d.retarget()
		}
	}
	if d.current != d.target {
		d.up.RequestKeyframe(d.target)
	}
}

// startWith sends a packet replayed from the cache at the start, switching
// to its layer at the keyframe. Once a write has dropped the keyframe
// (pion discards writes until the subscriber's SRTP is up, and write then
// starts over), the packets after it are held back: the subscriber would
// otherwise get delta frames first, should its SRTP come up meanwhile.
// Called with d.mu held.
func (d *downTrack) startWith(p *Packet) {
	if p.Keyframe {
		d.switchTo(p)
	}
	if d.current != p.Layer {
		return
	}
	d.send(p)
}

// send rewrites p into the subscriber's stream and writes it. Called with
// d.mu held.
func (d *downTrack) send(p *Packet) {
	seqOut := p.Header.SequenceNumber + d.seqOffset
	tsOut := p.Header.Timestamp + d.tsOffset
	if int16(seqOut-d.lastSeqOut) > 0 {
		if tsOut != d.lastTSOut || d.lastOut == 0 {
			d.lastOut = p.Arrival
			if d.lastOut == 0 {
				d.lastOut = time.Now().UnixNano()
			}
		}
		d.lastSeqOut, d.lastTSOut = seqOut, tsOut
	}
	d.history[seqOut%historySize] = sentPacket{seqOut: seqOut, seqIn: p.Header.SequenceNumber, layer: int8(p.Layer), tsOut: tsOut, valid: true}
	d.write(p.Header, p.Payload, seqOut, tsOut)
}

// switchTo starts sending p's layer, continuing the sequence numbers and
// timestamps the subscriber has seen so far.
func (d *downTrack) switchTo(p *Packet) {
	if !d.started {
		d.started = true
		d.seqOffset, d.tsOffset = 0, 0
		// The first packet moves the stream on whatever its number: a
		// publisher's sequence numbers start anywhere in 0-65535.
		d.lastSeqOut = p.Header.SequenceNumber - 1
		d.lastTSOut = p.Header.Timestamp
	} else {
		elapsed := time.Now().UnixNano() - d.lastOut
		step := uint32(uint64(max(elapsed, 0)) * uint64(d.clockRate) / uint64(time.Second))
		d.seqOffset = d.lastSeqOut + 1 - p.Header.SequenceNumber
		d.tsOffset = d.lastTSOut + max(step, 1) - p.Header.Timestamp
	}
	d.current = p.Layer
}

// write sends one packet with the subscriber's SSRC and payload type.
// Publishers' header extensions are dropped: their IDs were negotiated on
// another peer connection. Called with d.mu held.
func (d *downTrack) write(h *rtp.Header, payload []byte, seq uint16, ts uint32) {
	d.out = rtp.Header{
		Version:        2,
		Marker:         h.Marker,
		PayloadType:    d.pt,
		SequenceNumber: seq,
		Timestamp:      ts,
		SSRC:           d.ssrc,
		CSRC:           h.CSRC,
	}
	n, err := d.writer.WriteRTP(&d.out, payload)
	if n > 0 {
		d.sentPackets++
		d.sentOctets += uint32(len(payload))
		d.fwdPackets.Inc()
		d.fwdBytes.Add(float64(len(payload)))
	}
	if n == 0 && err == nil && d.current >= 0 && d.kind == webrtc.RTPCodecTypeVideo {
		// pion drops writes until the subscriber's SRTP is up: start over
		// at a keyframe once it is.
		d.current = -1
		d.up.RequestKeyframe(d.target)
	}
}

// retransmit answers a NACK for seqOut from the up-track's cache.
func (d *downTrack) retransmit(seqOut uint16) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	sent := d.history[seqOut%historySize]
	if d.writer == nil || !sent.valid || sent.seqOut != seqOut {
		return false
	}
	var h rtp.Header
	payload, ok := readCached(d.up, int(sent.layer), sent.seqIn, d.scratch[:], &h)
	if !ok {
		return false
	}
	d.write(&h, payload, seqOut, sent.tsOut)
	return true
}
