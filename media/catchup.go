package media

import "github.com/pion/rtp"

// A sink that starts a video layer (a new subscriber, a trunk slot just
// bound) needs a keyframe. Rather than wait for the next one, which keyframe
// requests merged upstream can hold back by up to keyframeInterval, it
// starts with the last keyframe when that is recent and still cached: it
// sends the packets from that keyframe on, then goes on live. The
// subscriber sees a picture at once, a fraction of a second old at worst.
const (
	// catchUpWindow is how old a keyframe may be to start with: no older
	// than the longest wait for a requested one.
	catchUpWindow = keyframeInterval
	// catchUpPackets bounds the burst one start sends.
	catchUpPackets = packetCacheSize / 2
)

// catchUpFrom is the sequence number to start p's layer from, the first
// packet of its last keyframe, if that is recent, close enough to p and
// still cached; buf is scratch space of maxPacketSize.
func catchUpFrom(up UpTrack, p *Packet, buf []byte) (uint16, bool) {
	if p.Keyframe {
		return 0, false
	}
	key, ok := up.RecentKeyframe(p.Layer, catchUpWindow)
	if !ok {
		return 0, false
	}
	if n := p.Header.SequenceNumber - key; n == 0 || n > catchUpPackets {
		return 0, false
	}
	_, ok = up.Cached(p.Layer, key, buf)
	return key, ok
}

// replay sends the cached packets of p's layer from key up to p, not
// included, through send; the first is marked as the keyframe. A packet
// missing from the cache (lost upstream) is skipped: the receiver asks for
// it. buf holds each packet while send runs.
func replay(up UpTrack, p *Packet, key uint16, buf []byte, send func(*Packet)) {
	var h rtp.Header
	first := true
	for seq := key; seq != p.Header.SequenceNumber; seq++ {
		payload, ok := readCached(up, p.Layer, seq, buf, &h)
		if !ok {
			continue
		}
		send(&Packet{Header: &h, Payload: payload, Layer: p.Layer, Keyframe: first})
		first = false
	}
}
