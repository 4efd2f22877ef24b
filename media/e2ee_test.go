package media

import (
	"crypto/rand"
	"testing"

	"github.com/pion/webrtc/v4"
)

// Element Call encrypts media end to end with LiveKit's frame encryption,
// which leaves in clear the bytes an SFU reads: the first 10 bytes of a VP8
// key frame and 3 of a delta frame (the P bit the SFU reads is in the
// first), the H.264 NAL unit headers, and every RTP payload descriptor. The
// keyframe detection the SFU forwards simulcast layers by reads nothing
// else, so it tells key frames from delta frames of encrypted streams
// whatever the ciphertext (spec/client-api.md §8.8).
func TestKeyframesOfEncryptedFrames(t *testing.T) {
	cipher := func(n int) []byte {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return b
	}
	// A VP8 payload descriptor with X, I (15-bit picture ID), S.
	descriptor := []byte{0x90, 0x80, 0x81, 0x23}
	for range 200 {
		// Key frame: frame tag (P=0), start code, size: 10 bytes in clear,
		// then ciphertext with LiveKit's trailer (IV, IV length, key index).
		key := append(append([]byte{}, descriptor...), 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01)
		key = append(key, cipher(300)...)
		delta := append(append([]byte{}, descriptor...), 0x31, 0x0b, 0x00) // P=1
		delta = append(delta, cipher(120)...)
		if !isKeyframe(webrtc.MimeTypeVP8, key) {
			t.Fatalf("encrypted VP8 key frame not seen as one: % x", key[:16])
		}
		if isKeyframe(webrtc.MimeTypeVP8, delta) {
			t.Fatalf("encrypted VP8 delta frame seen as a key frame: % x", delta[:16])
		}
		// H.264: an IDR NAL header (type 5) and a non-IDR one (type 1) in
		// clear, fragmented as FU-A, ciphertext after.
		idr := append([]byte{0x7c, 0x85}, cipher(200)...)
		nonIDR := append([]byte{0x7c, 0x81}, cipher(200)...)
		if !isKeyframe(webrtc.MimeTypeH264, idr) || isKeyframe(webrtc.MimeTypeH264, nonIDR) {
			t.Fatal("encrypted H.264 frames misjudged")
		}
	}
}
