package media

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// What a test client publishes: synthetic tracks whose payloads say which
// track, layer and packet they are, so that subscribers can check them byte
// for byte.

// testTrack is a synthetic published track. Payloads are recorded so that
// subscribers can be checked byte for byte.
type testTrack struct {
	tag       byte
	kind      string
	source    string
	simulcast bool
	// codec is the video codec's MIME type; VP8 when empty.
	codec string
	// fill pads each layer's payloads (q, h, f) with that many bytes, so
	// that the layers differ in bitrate.
	fill     [3]int
	locals   []*webrtc.TrackLocalStaticRTP
	sender   *webrtc.RTPSender
	mid      string
	midExt   uint8
	ridExt   uint8
	levelExt uint8
	// level is the audio level sent, in -dBov; 0 sends 30 (speech).
	level byte
	// levelAt, if set, gives the level of each packet instead.
	levelAt func(seq uint32) byte
	id      string // assigned by the SFU, from track_added
	plis    atomic.Int64
	forceKF atomic.Bool
	// keyframesOnRequest, when set, sends a keyframe only after a PLI, as
	// a browser's encoder does, rather than every 25th packet too.
	keyframesOnRequest bool
	// losePLIs is how many of the next PLIs are lost on the way.
	losePLIs atomic.Int32
	// dropped layers (q, h, f) are no longer sent, as a browser's encoder
	// drops its upper layers when its bandwidth or CPU runs short.
	dropped [3]atomic.Bool

	// bound, when captureBinds is set, receives each simulcast layer's
	// binding to the publish connection, to send on other SSRCs.
	captureBinds bool
	bound        chan layerBinding

	mu   sync.Mutex
	sent map[string][]byte // layer+seq -> payload
}

// layerBinding is one simulcast layer's TrackLocalContext.
type layerBinding struct {
	rid string
	ctx webrtc.TrackLocalContext
}

// bindSpy is a publisher's layer that reports its binding.
type bindSpy struct {
	*webrtc.TrackLocalStaticRTP
	bound chan<- layerBinding
}

func (b bindSpy) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	c, err := b.TrackLocalStaticRTP.Bind(ctx)
	if err == nil {
		b.bound <- layerBinding{rid: b.RID(), ctx: ctx}
	}
	return c, err
}

func sentKey(layer byte, seq uint32) string {
	var b [5]byte
	b[0] = layer
	binary.BigEndian.PutUint32(b[1:], seq)
	return string(b[:])
}

// publish adds tracks, sends publish_offer and starts sending media every
// 10 ms until the test ends. Every 25th video packet is a keyframe, and the
// next one after a PLI.
func (c *testClient) publish(tracks ...*testTrack) {
	c.t.Helper()
	for _, tr := range tracks {
		tr.sent = map[string][]byte{}
		rids := []string{""}
		if tr.simulcast {
			rids = []string{"q", "h", "f"}
		}
		for _, rid := range rids {
			codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
			if tr.kind == "video" {
				codec = videoCodec(tr.codec)
			}
			var opts []func(*webrtc.TrackLocalStaticRTP)
			if rid != "" {
				opts = append(opts, webrtc.WithRTPStreamID(rid))
			}
			l, err := webrtc.NewTrackLocalStaticRTP(codec, tr.kind+string(tr.tag), c.user, opts...)
			if err != nil {
				c.t.Fatal(err)
			}
			tr.locals = append(tr.locals, l)
		}
		senders := make([]webrtc.TrackLocal, len(tr.locals))
		if tr.captureBinds {
			tr.bound = make(chan layerBinding, len(tr.locals))
		}
		for i, l := range tr.locals {
			senders[i] = l
			if tr.captureBinds {
				senders[i] = bindSpy{TrackLocalStaticRTP: l, bound: tr.bound}
			}
		}
		var err error
		if tr.sender, err = c.pub.AddTrack(senders[0]); err != nil {
			c.t.Fatal(err)
		}
		for _, l := range senders[1:] {
			if err := tr.sender.AddEncoding(l); err != nil {
				c.t.Fatal(err)
			}
		}
		for _, ext := range tr.sender.GetParameters().HeaderExtensions {
			switch ext.URI {
			case sdp.SDESMidURI:
				tr.midExt = uint8(ext.ID)
			case sdp.SDESRTPStreamIDURI:
				tr.ridExt = uint8(ext.ID)
			case sdp.AudioLevelURI:
				tr.levelExt = uint8(ext.ID)
			}
		}
		go func(tr *testTrack) {
			for _, rid := range rids {
				go func(rid string) {
					for {
						var pkts []rtcp.Packet
						var err error
						if rid == "" {
							pkts, _, err = tr.sender.ReadRTCP()
						} else {
							pkts, _, err = tr.sender.ReadSimulcastRTCP(rid)
						}
						if err != nil {
							return
						}
						for _, p := range pkts {
							if _, ok := p.(*rtcp.PictureLossIndication); ok {
								if tr.losePLIs.Add(-1) >= 0 {
									continue
								}
								tr.losePLIs.Store(0)
								tr.plis.Add(1)
								tr.forceKF.Store(true)
							}
						}
					}
				}(rid)
			}
		}(tr)
	}
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	<-gathered
	var announced []map[string]any
	for _, tr := range tracks {
		for _, tx := range c.pub.GetTransceivers() {
			if tx.Sender() == tr.sender {
				tr.mid = tx.Mid()
			}
		}
		announced = append(announced, map[string]any{"mid": tr.mid, "kind": tr.kind, "source": tr.source, "simulcast": tr.simulcast, "width": 1280, "height": 720})
	}
	c.mu.Lock()
	c.tracks = append(c.tracks, tracks...)
	c.mu.Unlock()
	c.send(map[string]any{"type": "publish_offer", "sdp": c.pub.LocalDescription().SDP, "tracks": announced})
	go c.sendMedia(tracks)
}

func (c *testClient) sendMedia(tracks []*testTrack) {
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for seq := uint32(0); ; seq++ {
		select {
		case <-c.ctx.Done():
			return
		case <-ticker.C:
		}
		for _, tr := range tracks {
			keyframe := (seq%25 == 0 && !tr.keyframesOnRequest) || tr.forceKF.Swap(false)
			for i, l := range tr.locals {
				layer := byte('-')
				if tr.simulcast {
					layer = "qhf"[i]
					if tr.dropped[i].Load() {
						continue
					}
				}
				payload := makePayload(tr.kind, tr.codec, tr.tag, layer, seq, keyframe)
				if tr.simulcast {
					payload = append(payload, make([]byte, tr.fill[i])...)
				}
				tr.mu.Lock()
				tr.sent[sentKey(layer, seq)] = payload
				level := tr.level
				if tr.levelAt != nil {
					level = tr.levelAt(seq)
				}
				tr.mu.Unlock()
				p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(seq), Timestamp: seq * 900, Marker: true}, Payload: payload}
				if tr.kind == "audio" {
					p.Timestamp = seq * 480
					if tr.levelExt != 0 {
						if level == 0 {
							level = 30
						}
						_ = p.Header.SetExtension(tr.levelExt, []byte{0x80 | level})
					}
				}
				if tr.simulcast {
					_ = p.Header.SetExtension(tr.midExt, []byte(tr.mid))
					_ = p.Header.SetExtension(tr.ridExt, []byte(l.RID()))
				}
				if err := l.WriteRTP(p); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
					return
				}
			}
		}
	}
}

// videoCodec is the capability a test publisher sends mime with, as the
// SFU registers it.
func videoCodec(mime string) webrtc.RTPCodecCapability {
	switch mime {
	case webrtc.MimeTypeH264:
		return webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	case webrtc.MimeTypeVP9:
		return webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}
	case webrtc.MimeTypeAV1:
		return webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}
	}
	return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
}

// videoPrefix is the start of a video payload in codec mime, as much of the
// codec's payload format as the SFU reads to find keyframes: the VP8
// descriptor (S=1, PID=0) and frame tag P bit; an H.264 IDR or non-IDR
// slice NAL header; the VP9 descriptor's B and P bits; the AV1 aggregation
// header's N bit.
func videoPrefix(mime string, keyframe bool) [2]byte {
	switch mime {
	case webrtc.MimeTypeH264:
		if keyframe {
			return [2]byte{0x65, 0x88}
		}
		return [2]byte{0x41, 0x9a}
	case webrtc.MimeTypeVP9:
		if keyframe {
			return [2]byte{0x08, 0}
		}
		return [2]byte{0x48, 0}
	case webrtc.MimeTypeAV1:
		if keyframe {
			return [2]byte{0x18, 0}
		}
		return [2]byte{0x10, 0}
	}
	if keyframe {
		return [2]byte{0x10, 0}
	}
	return [2]byte{0x10, 1}
}

// makePayload builds a payload carrying tag, layer, sequence number and send
// time; a video payload starts with its codec's videoPrefix.
func makePayload(kind, codec string, tag, layer byte, seq uint32, keyframe bool) []byte {
	var b []byte
	if kind == "video" {
		pre := videoPrefix(codec, keyframe)
		b = append(b, pre[:]...)
	} else {
		b = append(b, 'a')
	}
	b = append(b, tag, layer)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	return b
}

// parsePayload returns the tag, layer and sequence number of a payload;
// filler bytes after them are allowed.
func parsePayload(p []byte) (tag, layer byte, seq uint32, ok bool) {
	const body = 2 + 4 + 8
	off := 2
	if len(p) > 0 && p[0] == 'a' {
		off = 1
	}
	if len(p) < off+body {
		return 0, 0, 0, false
	}
	return p[off], p[off+1], binary.BigEndian.Uint32(p[off+2:]), true
}

func (tr *testTrack) sentPayload(layer byte, seq uint32) ([]byte, bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	p, ok := tr.sent[sentKey(layer, seq)]
	return p, ok
}
