package media

import (
	"sync"

	"github.com/pion/rtp"
)

const (
	// packetCacheSize covers about half a second of 720p video, enough for
	// the round trip of a NACK from a subscriber on a slow link.
	packetCacheSize = 512
	maxPacketSize   = 1500
)

// packetCache keeps the last packetCacheSize packets of one up-track layer,
// indexed by sequence number. The slots are allocated once with the cache, so
// storing a packet never allocates.
type packetCache struct {
	mu    sync.Mutex
	slots [packetCacheSize]cacheSlot
}

type cacheSlot struct {
	seq   uint16
	n     int
	valid bool
	buf   [maxPacketSize]byte
}

func newPacketCache() *packetCache { return &packetCache{} }

// store copies raw (a whole RTP packet) into the slot for seq. Packets larger
// than maxPacketSize are not cached: they cannot be retransmitted safely
// within a typical MTU anyway.
func (c *packetCache) store(seq uint16, raw []byte) {
	if len(raw) > maxPacketSize {
		return
	}
	c.mu.Lock()
	s := &c.slots[seq%packetCacheSize]
	s.seq = seq
	s.n = copy(s.buf[:], raw)
	s.valid = true
	c.mu.Unlock()
}

// get copies the packet with sequence number seq into buf.
func (c *packetCache) get(seq uint16, buf []byte) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[seq%packetCacheSize]
	if !s.valid || s.seq != seq || len(buf) < s.n {
		return 0, false
	}
	return copy(buf, s.buf[:s.n]), true
}

// readCached copies the cached packet seq of up's layer into buf and parses
// it into h; the payload it returns lies in buf, without padding. Sinks use
// it to resend (NACK) and to replay from a keyframe.
func readCached(up UpTrack, layer int, seq uint16, buf []byte, h *rtp.Header) ([]byte, bool) {
	n, ok := up.Cached(layer, seq, buf)
	if !ok {
		return nil, false
	}
	hdrLen, err := h.Unmarshal(buf[:n])
	if err != nil {
		return nil, false
	}
	payload := buf[hdrLen:n]
	if h.Padding && len(payload) > 0 && int(payload[len(payload)-1]) <= len(payload) {
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
	}
	h.Padding = false
	return payload, true
}
