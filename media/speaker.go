package media

import (
	"sync"
	"time"
)

// speakerThreshold is the smoothed loudness (127 minus the audio level in
// -dBov) above which a participant counts as speaking: about -50 dBov, well
// above the 127 that browsers send for silence.
const speakerThreshold = 77

// speakerDetector announces the loudest participant of a conference from the
// audio-level header extension (RFC 6464), at most once per interval and
// only when it changes (spec/client-api.md §5.3 `speaker`). The loudest is
// the one whose smoothed loudness peaked highest during the interval, so
// that a burst between two looks is not missed.
type speakerDetector struct {
	stopOnce sync.Once
	done     chan struct{}
}

func startSpeakerDetector(c *conference, interval time.Duration) *speakerDetector {
	s := &speakerDetector{done: make(chan struct{})}
	go func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		var current string
		var tracks []*upTrack
		for {
			select {
			case <-s.done:
				return
			case <-ticker.C:
			}
			tracks = c.audioTracks(tracks[:0])
			loudest, level := "", uint32(speakerThreshold)
			for _, t := range tracks {
				// Taken from every track, so that a muted one starts
				// afresh when it is unmuted.
				l := t.peak.Swap(0)
				if !t.muted.Load() && l > level {
					loudest, level = t.info.Owner, l
				}
			}
			if loudest == "" || loudest == current {
				continue
			}
			current = loudest
			p, ok := c.participant(loudest)
			if !ok {
				p = Participant{User: loudest}
			}
			c.broadcast(Event{Kind: SpeakerChanged, Participant: p})
		}
	}()
	return s
}

// stop ends the detector's goroutine; safe to call more than once.
func (s *speakerDetector) stop() {
	s.stopOnce.Do(func() { close(s.done) })
}
