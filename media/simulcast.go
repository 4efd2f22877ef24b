package media

import (
	"strings"

	"github.com/pion/webrtc/v4"
)

// Simulcast layers use the RIDs of spec/client-api.md §5.4, smallest first:
// "q" is a quarter of the full size, "h" half, "f" full.
var simulcastRIDs = [...]string{"q", "h", "f"}

const maxLayers = len(simulcastRIDs)

// layerIndex maps a RID to its layer index; a track without simulcast has
// the single layer 0.
func layerIndex(rid string) (int, bool) {
	if rid == "" {
		return 0, true
	}
	for i, r := range simulcastRIDs {
		if r == rid {
			return i, true
		}
	}
	return 0, false
}

// layerSize is the picture size of layer given the full size, halving per
// layer below "f".
func layerSize(layer, width, height int) (int, int) {
	shift := maxLayers - 1 - layer
	return width >> shift, height >> shift
}

// chooseLayer picks the largest usable layer that fits both the size the
// subscriber asked for (0 means no limit) and its bandwidth estimate (0 means
// unknown). If nothing fits, the smallest usable layer is chosen so the
// subscriber still sees something; -1 means no layer is usable.
func chooseLayer(t UpTrack, simulcast bool, maxW, maxH int, estimate uint64) int {
	if !simulcast {
		return 0
	}
	info := t.Info()
	best, smallest := -1, -1
	for l := range maxLayers {
		rate, ok := t.LayerUsable(l)
		if !ok {
			continue
		}
		if smallest < 0 {
			smallest = l
		}
		w, h := layerSize(l, info.Width, info.Height)
		if (maxW > 0 && w > maxW) || (maxH > 0 && h > maxH) {
			continue
		}
		if estimate > 0 && rate > estimate {
			continue
		}
		best = l
	}
	if best < 0 {
		return smallest
	}
	return best
}

// isKeyframe reports whether payload starts a keyframe for the codec, so
// that a subscriber only starts or switches layers where it can decode.
// Truncated or malformed payloads are not keyframes.
func isKeyframe(mime string, payload []byte) bool {
	switch {
	case strings.EqualFold(mime, webrtc.MimeTypeVP8):
		return vp8Keyframe(payload)
	case strings.EqualFold(mime, webrtc.MimeTypeVP9):
		return vp9Keyframe(payload)
	case strings.EqualFold(mime, webrtc.MimeTypeH264):
		return h264Keyframe(payload)
	case strings.EqualFold(mime, webrtc.MimeTypeAV1):
		return av1Keyframe(payload)
	}
	return false
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 §4.2) and the
// first byte of the VP8 frame header, whose P bit is 0 on key frames.
func vp8Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	x, s, pid := p[0]&0x80 != 0, p[0]&0x10 != 0, p[0]&0x07
	if !s || pid != 0 {
		return false
	}
	i := 1
	if x {
		if len(p) < 2 {
			return false
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture ID, one or two bytes
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/KEYIDX byte
			i++
		}
	}
	if len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0
}

// vp9Keyframe uses the payload descriptor (RFC 9628 §4.2): a keyframe is the
// start of a frame (B) that is not inter-picture predicted (P).
func vp9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	return p[0]&0x40 == 0 && p[0]&0x08 != 0
}

// h264Keyframe finds an IDR slice or SPS in a single NAL unit, STAP-A or the
// first fragment of an FU-A (RFC 6184 §5).
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1f; nal {
	case 5, 7:
		return true
	case 24: // STAP-A
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if t := p[i+2] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += 2 + size
		}
	case 28: // FU-A
		return len(p) > 1 && p[1]&0x80 != 0 && (p[1]&0x1f == 5 || p[1]&0x1f == 7)
	}
	return false
}

// av1Keyframe uses the N bit of the AV1 aggregation header, set on the first
// packet of a coded video sequence.
func av1Keyframe(p []byte) bool {
	return len(p) > 0 && p[0]&0x08 != 0
}
