package mediabench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Synthetic media rates and sizes: Opus in 20 ms packets, VP8 at 30 fps with
// a keyframe every 2 s, one packet per frame and layer, each layer about
// twice the bytes of the one below.
const (
	audioInterval   = 20 * time.Millisecond
	videoInterval   = time.Second / 30
	keyframeEvery   = 60 // frames
	audioSize       = 120
	fullLayerSize   = 1100
	readLimit       = 1 << 20
	maxSignalFrames = 4096 // per client and run, far above what a run exchanges
)

// layerSizes are the payload sizes of the simulcast layers q, h, f.
var layerSizes = [...]int{300, 600, fullLayerSize}

// localTrack is one published synthetic track.
type localTrack struct {
	kind      string
	simulcast bool
	locals    []*webrtc.TrackLocalStaticRTP
	// lk are the layers of a LiveKit participant's track, which the SDK
	// sends with their MID and RID itself (lkclient.go).
	lk       []*lksdk.LocalTrack
	sender   *webrtc.RTPSender
	mid      string
	midExt   uint8
	ridExt   uint8
	levelExt uint8
	forceKey atomic.Bool
	// inWindow counts frames (or audio packets) sent in the window: what
	// each subscriber of the track should receive.
	inWindow atomic.Int64
}

// publish offers the participant's tracks and starts their senders.
func (c *client) publish(ctx context.Context) error {
	var tracks []*localTrack
	if c.p.Audio {
		tracks = append(tracks, &localTrack{kind: "audio"})
	}
	if c.p.Video {
		tracks = append(tracks, &localTrack{kind: "video", simulcast: c.p.Simulcast})
	}
	for _, t := range tracks {
		if err := c.addTrack(t); err != nil {
			return err
		}
	}
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("%s: publish offer: %w", c.p.Name, err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pub)
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("%s: publish offer: %w", c.p.Name, err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	var announced []map[string]any
	for _, t := range tracks {
		for _, tx := range c.pub.GetTransceivers() {
			if tx.Sender() == t.sender {
				t.mid = tx.Mid()
			}
		}
		source := "microphone"
		if t.kind == "video" {
			source = "camera"
		}
		announced = append(announced, map[string]any{"mid": t.mid, "kind": t.kind, "source": source,
			"simulcast": t.simulcast, "width": 1280, "height": 720})
	}
	c.mu.Lock()
	c.tracks = tracks
	c.mu.Unlock()
	if err := c.send(ctx, map[string]any{"type": "publish_offer", "sdp": c.pub.LocalDescription().SDP, "tracks": announced}); err != nil {
		return err
	}
	for _, t := range tracks {
		c.wg.Go(func() { c.sendLoop(ctx, t) })
	}
	return nil
}

func (c *client) addTrack(t *localTrack) error {
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}
	rids := []string{""}
	if t.kind == "video" {
		codec = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
		if t.simulcast {
			rids = []string{"q", "h", "f"}
		}
	}
	for _, rid := range rids {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if rid != "" {
			opts = append(opts, webrtc.WithRTPStreamID(rid))
		}
		// The stream id goes into a=msid, where a space would split it.
		l, err := webrtc.NewTrackLocalStaticRTP(codec, t.kind, "bench", opts...)
		if err != nil {
			return fmt.Errorf("%s: %s track: %w", c.p.Name, t.kind, err)
		}
		t.locals = append(t.locals, l)
	}
	var err error
	if t.sender, err = c.pub.AddTrack(t.locals[0]); err != nil {
		return fmt.Errorf("%s: %s track: %w", c.p.Name, t.kind, err)
	}
	for _, l := range t.locals[1:] {
		if err := t.sender.AddEncoding(l); err != nil {
			return fmt.Errorf("%s: %s layer %s: %w", c.p.Name, t.kind, l.RID(), err)
		}
	}
	for _, ext := range t.sender.GetParameters().HeaderExtensions {
		switch ext.URI {
		case sdp.SDESMidURI:
			t.midExt = uint8(ext.ID)
		case sdp.SDESRTPStreamIDURI:
			t.ridExt = uint8(ext.ID)
		case sdp.AudioLevelURI:
			t.levelExt = uint8(ext.ID)
		}
	}
	// Reading RTCP runs the interceptors (NACK responder) and sees the
	// SFU's keyframe requests.
	for _, rid := range rids {
		c.wg.Go(func() {
			for {
				var pkts []rtcp.Packet
				var err error
				if rid == "" {
					pkts, _, err = t.sender.ReadRTCP()
				} else {
					pkts, _, err = t.sender.ReadSimulcastRTCP(rid)
				}
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						t.forceKey.Store(true)
					}
				}
			}
		})
	}
	return nil
}

// sendLoop sends the track's packets at its rate until ctx ends.
func (c *client) sendLoop(ctx context.Context, t *localTrack) {
	interval := audioInterval
	if t.kind == "video" {
		interval = videoInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	buf := make([]byte, 0, fullLayerSize)
	for seq := uint32(0); seq < maxFrames; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sent := c.clock.now()
		key := t.kind == "video" && (seq%keyframeEvery == 0 || t.forceKey.Swap(false))
		for i := range max(len(t.locals), len(t.lk)) {
			pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(seq), Marker: true}}
			if t.kind == "audio" {
				pkt.Timestamp = seq * 960
				pkt.Payload = appendAudioPayload(buf[:0], seq, sent, audioSize)
				if t.levelExt != 0 {
					_ = pkt.SetExtension(t.levelExt, []byte{0x80 | 30})
				}
			} else {
				size := fullLayerSize
				if t.simulcast {
					size = layerSizes[i]
					if t.lk == nil {
						_ = pkt.SetExtension(t.midExt, []byte(t.mid))
						_ = pkt.SetExtension(t.ridExt, []byte(t.locals[i].RID()))
					}
				}
				pkt.Timestamp = seq * 3000
				pkt.Payload = appendVideoPayload(buf[:0], seq, sent, key, size)
			}
			var err error
			if t.lk != nil {
				err = t.lk[i].WriteRTP(pkt, liveKitWriteOptions(t.kind))
			} else {
				err = t.locals[i].WriteRTP(pkt)
			}
			if err != nil {
				if !errors.Is(err, webrtc.ErrConnectionClosed) && ctx.Err() == nil {
					c.failed(fmt.Errorf("%s: send %s: %w", c.p.Name, t.kind, err))
				}
				return
			}
			if c.win.contains(sent) {
				c.sentPackets.Add(1)
			}
		}
		if c.win.contains(sent) {
			t.inWindow.Add(1)
		}
	}
}
