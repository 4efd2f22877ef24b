package media

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

type discardWriter struct{ packets int }

func (w *discardWriter) WriteRTP(_ *rtp.Header, payload []byte) (int, error) {
	w.packets++
	return 12 + len(payload), nil
}
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }

func newBenchTrack(tb testing.TB, sinks int) (*upTrack, []*discardWriter) {
	m, err := newMetrics(nil)
	if err != nil {
		tb.Fatal(err)
	}
	up := newUpTrack(TrackInfo{ID: "t", Owner: "alice", Kind: "video", Source: "camera", Layers: []string{}, Width: 1280, Height: 720},
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, webrtc.RTPCodecTypeVideo,
		func(uint32) error { return nil }, m, slog.New(slog.DiscardHandler))
	up.layers[0].ssrc.Store(1)
	var writers []*discardWriter
	for range sinks {
		d := newDownTrack(up, m, 0, 0, nil)
		w := &discardWriter{}
		d.writer, d.ssrc, d.pt = w, 99, 96
		up.AddSink(d)
		writers = append(writers, w)
	}
	return up, writers
}

func vp8Packet(seq uint16, keyframe bool) []byte {
	p := byte(1)
	if keyframe {
		p = 0
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 100, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, SSRC: 1},
		Payload: append([]byte{0x10, p}, make([]byte, 1000)...)}
	b, _ := pkt.Marshal()
	return b
}

func TestForwardRewritesAndCaches(t *testing.T) {
	up, writers := newBenchTrack(t, 3)
	now := time.Now().UnixNano()
	up.forward(0, vp8Packet(500, false), now) // no keyframe yet: nothing sent
	for seq := uint16(501); seq < 511; seq++ {
		up.forward(0, vp8Packet(seq, seq == 501), now)
	}
	for i, w := range writers {
		if w.packets != 10 {
			t.Errorf("sink %d got %d packets, want 10", i, w.packets)
		}
	}
	buf := make([]byte, maxPacketSize)
	if n, ok := up.Cached(0, 505, buf); !ok || n != 12+1002 {
		t.Errorf("cached 505 = %d, %v", n, ok)
	}
	if _, ok := up.Cached(0, 505+packetCacheSize, buf); ok {
		t.Error("cache answered for a sequence number it never saw")
	}
}

func TestKeyframeDetection(t *testing.T) {
	cases := []struct {
		mime    string
		payload []byte
		want    bool
	}{
		{webrtc.MimeTypeVP8, []byte{0x10, 0x00}, true},
		{webrtc.MimeTypeVP8, []byte{0x10, 0x01}, false},
		{webrtc.MimeTypeVP8, []byte{0x00, 0x00}, false},                  // not a partition start
		{webrtc.MimeTypeVP8, []byte{0x90, 0x80, 0x81, 0x02, 0x00}, true}, // X, I with 15-bit picture ID
		{webrtc.MimeTypeVP8, []byte{0x90}, false},                        // truncated
		{webrtc.MimeTypeH264, []byte{0x65}, true},
		{webrtc.MimeTypeH264, []byte{0x7c, 0x85}, true}, // FU-A start of IDR
		{webrtc.MimeTypeH264, []byte{0x7c, 0x05}, false},
		{webrtc.MimeTypeH264, []byte{0x41}, false},
		{webrtc.MimeTypeVP9, []byte{0x08}, true},
		{webrtc.MimeTypeVP9, []byte{0x48}, false},
		{webrtc.MimeTypeAV1, []byte{0x08}, true},
		{webrtc.MimeTypeOpus, []byte{0x00}, false},
		{webrtc.MimeTypeVP8, nil, false},
	}
	for _, c := range cases {
		if got := isKeyframe(c.mime, c.payload); got != c.want {
			t.Errorf("isKeyframe(%s, %x) = %v, want %v", c.mime, c.payload, got, c.want)
		}
	}
}

func BenchmarkForward(b *testing.B) {
	for _, sinks := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("sinks=%d", sinks), func(b *testing.B) {
			up, _ := newBenchTrack(b, sinks)
			packets := make([][]byte, 256)
			for i := range packets {
				packets[i] = vp8Packet(uint16(i), i == 0)
			}
			now := time.Now().UnixNano()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				p := packets[i%len(packets)]
				// Keep sequence numbers moving so the cache and history rotate.
				p[2], p[3] = byte(i>>8), byte(i)
				up.forward(0, p, now)
			}
		})
	}
}

// levelWriter records the audio level of the packets a trunk slot sends.
type levelWriter struct {
	id     uint8
	levels []byte
}

func (w *levelWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if ext := h.GetExtension(w.id); len(ext) == 1 {
		w.levels = append(w.levels, ext[0])
	} else {
		w.levels = append(w.levels, 0xff)
	}
	return 12 + len(payload), nil
}
func (w *levelWriter) Write(b []byte) (int, error) { return len(b), nil }

// newAudioToTrunk makes an audio up-track whose publisher negotiated the
// audio level as extension 3, sinking into a trunk slot that negotiated it
// as extension 5.
func newAudioToTrunk(tb testing.TB, w webrtc.TrackLocalWriter) *upTrack {
	m, err := newMetrics(nil)
	if err != nil {
		tb.Fatal(err)
	}
	up := newUpTrack(TrackInfo{ID: "mic", Owner: "alice", Kind: "audio", Source: "microphone", Layers: []string{}},
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, webrtc.RTPCodecTypeAudio,
		func(uint32) error { return nil }, m, slog.New(slog.DiscardHandler))
	up.audioLevelID = 3
	ts, err := newTrunkSet(&SFU{log: slog.New(slog.DiscardHandler), metrics: m}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := newTrunkSlot(&trunk{set: ts}, webrtc.RTPCodecTypeAudio)
	s.writer, s.ssrc, s.levelID = w, 7, 5
	s.codecs = []webrtc.RTPCodecParameters{{RTPCodecCapability: up.codec, PayloadType: 111}}
	if err := s.bind(up, 0, &trackCounter{}); err != nil {
		tb.Fatal(err)
	}
	up.AddSink(s)
	return up
}

func opusPacket(seq uint16, level byte) []byte {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 109, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: 9},
		Payload: make([]byte, 80)}
	if level != 0xff {
		_ = pkt.Header.SetExtension(3, []byte{level})
	}
	b, _ := pkt.Marshal()
	return b
}

// The audio level crosses a trunk under the trunk's extension ID, packet by
// packet; a packet without one crosses without one.
func TestTrunkSlotCarriesAudioLevel(t *testing.T) {
	w := &levelWriter{id: 5}
	up := newAudioToTrunk(t, w)
	now := time.Now().UnixNano()
	sent := []byte{0x80 | 30, 0x80 | 127, 0xff, 0x00 | 12}
	for i, level := range sent {
		up.forward(0, opusPacket(uint16(100+i), level), now)
	}
	if string(w.levels) != string(sent) {
		t.Fatalf("levels sent on the trunk % x, want % x", w.levels, sent)
	}
}

func BenchmarkForwardAudioToTrunk(b *testing.B) {
	up := newAudioToTrunk(b, &discardWriter{})
	packets := make([][]byte, 256)
	for i := range packets {
		packets[i] = opusPacket(uint16(i), 0x80|byte(i%128))
	}
	now := time.Now().UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p := packets[i%len(packets)]
		p[2], p[3] = byte(i>>8), byte(i)
		up.forward(0, p, now)
	}
}
