package media

import "github.com/pion/rtp"

const (
	// audioCacheSize covers about 2.5 s of 20 ms audio frames: several
	// round trips of a NACK on a slow link between organisations.
	audioCacheSize = 128
	// maxCachedAudio bounds one cached audio payload; Opus frames of
	// speech are far smaller, and a larger one is not kept.
	maxCachedAudio = 512
)

// audioCache keeps the audio packets a trunk slot sent, by the slot's own
// sequence number, so it can answer the peer's NACKs (spec/federation.md
// §10.4). Its entries are allocated with it: storing does not allocate.
// It is guarded by the slot's mutex.
type audioCache struct {
	entries [audioCacheSize]audioEntry
}

type audioEntry struct {
	seq      uint16
	valid    bool
	marker   bool
	hasLevel bool
	level    byte
	ts       uint32
	n        int
	payload  [maxCachedAudio]byte
}

func (c *audioCache) store(seq uint16, p *Packet) {
	e := &c.entries[seq%audioCacheSize]
	if len(p.Payload) > maxCachedAudio {
		e.valid = false
		return
	}
	e.seq, e.valid, e.marker, e.ts = seq, true, p.Header.Marker, p.Header.Timestamp
	e.hasLevel, e.level = p.HasAudioLevel, p.AudioLevel
	e.n = copy(e.payload[:], p.Payload)
}

// resendAudio sends the cached audio packet seqOut again, with its level.
// Called with s.mu held.
func (s *trunkSlot) resendAudio(seqOut uint16) bool {
	if s.sentAudio == nil {
		return false
	}
	e := &s.sentAudio.entries[seqOut%audioCacheSize]
	if !e.valid || e.seq != seqOut {
		return false
	}
	h := rtp.Header{Marker: e.marker, Timestamp: e.ts}
	s.level[0], s.hasLevel = e.level, e.hasLevel
	s.write(&h, e.payload[:e.n], seqOut, true)
	return true
}
