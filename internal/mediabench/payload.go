package mediabench

import (
	"encoding/binary"
	"errors"
)

// Synthetic payloads carry, after a codec prefix that the SFU can parse, a
// marker, the frame (or audio packet) number and the send time, so that a
// receiver computes loss and latency from the payload alone: the SFU
// rewrites RTP sequence numbers, timestamps and SSRCs on the way.
const (
	markerA, markerB = 'E', 'B'
	benchHeaderLen   = 2 + 4 + 8
	// vp8DescriptorLen is the payload descriptor used here: X=1, S=1, PID=0,
	// then I=1 with a 15-bit picture ID (RFC 7741 §4.2), as browsers send.
	vp8DescriptorLen = 4
	// vp8KeyframeHeaderLen is the frame tag (3 bytes), the start code (3)
	// and the size (4) of a key frame (RFC 6386 §9.1); delta frames carry
	// only the frame tag.
	vp8KeyframeHeaderLen = 10
	vp8DeltaHeaderLen    = 3
	opusTOC              = 0xfc // config 31 (CELT FB 20 ms), stereo, one frame
)

var errNotBench = errors.New("not a synthetic bench payload")

// appendVideoPayload builds one VP8 packet carrying a whole frame of size
// bytes (at least the headers).
func appendVideoPayload(b []byte, frame uint32, sentNS int64, keyframe bool, size int) []byte {
	pic := uint16(frame) & 0x7fff
	b = append(b, 0x90, 0x80, 0x80|byte(pic>>8), byte(pic))
	if keyframe {
		// show_frame=1, version 0, P=0; first partition size left 0.
		b = append(b, 0x10, 0x00, 0x00, 0x9d, 0x01, 0x2a)
		b = binary.LittleEndian.AppendUint16(b, 1280)
		b = binary.LittleEndian.AppendUint16(b, 720)
	} else {
		b = append(b, 0x11, 0x00, 0x00)
	}
	return pad(appendBenchHeader(b, frame, sentNS), size)
}

// appendAudioPayload builds one Opus packet of size bytes.
func appendAudioPayload(b []byte, seq uint32, sentNS int64, size int) []byte {
	return pad(appendBenchHeader(append(b, opusTOC), seq, sentNS), size)
}

func appendBenchHeader(b []byte, seq uint32, sentNS int64) []byte {
	b = append(b, markerA, markerB)
	b = binary.BigEndian.AppendUint32(b, seq)
	return binary.BigEndian.AppendUint64(b, uint64(sentNS))
}

func pad(b []byte, size int) []byte {
	for len(b) < size {
		b = append(b, 0)
	}
	return b
}

// parsed is what a receiver reads back from a synthetic payload.
type parsed struct {
	seq      uint32
	sentNS   int64
	keyframe bool
	size     int // payload bytes, set by the receiver
}

// parseVideoPayload reads a payload built by appendVideoPayload; keyframe
// follows the P bit of the VP8 frame tag, as a decoder would.
func parseVideoPayload(p []byte) (parsed, error) {
	if len(p) < vp8DescriptorLen+vp8DeltaHeaderLen || p[0] != 0x90 || p[1] != 0x80 {
		return parsed{}, errNotBench
	}
	key := p[vp8DescriptorLen]&0x01 == 0
	off := vp8DescriptorLen + vp8DeltaHeaderLen
	if key {
		off = vp8DescriptorLen + vp8KeyframeHeaderLen
	}
	r, err := parseBenchHeader(p, off)
	r.keyframe = key
	return r, err
}

func parseAudioPayload(p []byte) (parsed, error) {
	if len(p) < 1 || p[0] != opusTOC {
		return parsed{}, errNotBench
	}
	return parseBenchHeader(p, 1)
}

func parseBenchHeader(p []byte, off int) (parsed, error) {
	if len(p) < off+benchHeaderLen || p[off] != markerA || p[off+1] != markerB {
		return parsed{}, errNotBench
	}
	return parsed{
		seq:    binary.BigEndian.Uint32(p[off+2:]),
		sentNS: int64(binary.BigEndian.Uint64(p[off+6:])),
	}, nil
}

// exact reports whether payload p, parsed as r, is byte for byte what the
// publisher built for it. In VP8 the SFU rewrites the picture ID of the
// payload descriptor (a simulcast switch must not break its sequence), so
// only the descriptor's first two bytes count; everything after it must be
// equal.
func exact(kind string, p []byte, r parsed) bool {
	var want []byte
	if kind == "video" {
		want = appendVideoPayload(nil, r.seq, r.sentNS, r.keyframe, len(p))
		return len(want) == len(p) && string(want[:2]) == string(p[:2]) &&
			string(want[vp8DescriptorLen:]) == string(p[vp8DescriptorLen:])
	}
	want = appendAudioPayload(nil, r.seq, r.sentNS, len(p))
	return string(want) == string(p)
}
