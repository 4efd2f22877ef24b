package livekit

import (
	"math"
	"sync"
	"time"

	lk "github.com/livekit/protocol/livekit"

	"github.com/entente-org/entente/media"
)

// Connection quality (spec/client-api.md §8.9): every qualityInterval each
// LiveKit participant is sent a ConnectionQualityUpdate rating every
// participant whose media session is on this node, native or LiveKit,
// from what the SFU measured over the interval (media.LinkStats).

// qualityInterval is how often ConnectionQualityUpdate is sent.
const qualityInterval = 3 * time.Second

// linkSample is one participant's connection over one interval.
type linkSample struct {
	// Loss is the fraction of packets lost (0 to 1): the larger of what
	// went missing from its publisher connection and what its receiver
	// reports say about its subscriptions.
	Loss float64
	// Jitter is the larger interarrival jitter, either way; RTT the round
	// trip its receiver reports give (0 when unknown).
	Jitter, RTT time.Duration
	// Silent is a participant with an unmuted published track of which no
	// packet arrived during the interval.
	Silent bool
}

// Thresholds of the mean opinion score (1 to 4.5) between the qualities,
// LiveKit's: EXCELLENT from 4.1, GOOD from 3.6, POOR below.
const (
	excellentMOS = 4.1
	goodMOS      = 3.6
)

// rate maps a sample to a quality and its score (spec/client-api.md §8.9):
// LOST for a silent publisher, otherwise by the mean opinion score of the
// ITU-T G.107 E-model simplified as for VoIP monitoring: effective latency
// L = RTT/2 + 2·jitter + 10 ms; R = 93.2 − (L < 160 ms ? L/40 : (L − 120)/10)
// − 2.5 × loss in percent; MOS = 1 + 0.035 R + 7·10⁻⁶ R (R − 60)(100 − R),
// bounded to 1…4.5.
func rate(s linkSample) (lk.ConnectionQuality, float32) {
	if s.Silent {
		return lk.ConnectionQuality_LOST, 0
	}
	mos := meanOpinionScore(s)
	switch {
	case mos >= excellentMOS:
		return lk.ConnectionQuality_EXCELLENT, float32(mos)
	case mos >= goodMOS:
		return lk.ConnectionQuality_GOOD, float32(mos)
	}
	return lk.ConnectionQuality_POOR, float32(mos)
}

func meanOpinionScore(s linkSample) float64 {
	latency := float64(s.RTT/2+2*s.Jitter)/float64(time.Millisecond) + 10
	r := 93.2
	if latency < 160 {
		r -= latency / 40
	} else {
		r -= (latency - 120) / 10
	}
	r -= 2.5 * 100 * math.Min(math.Max(s.Loss, 0), 1)
	if r < 0 {
		r = 0
	}
	mos := 1 + 0.035*r + 7e-6*r*(r-60)*(100-r)
	return math.Min(math.Max(mos, 1), 4.5)
}

// sampleOf is the interval between two readings of one participant's
// statistics; prev is the zero LinkStats for its first.
func sampleOf(prev, now media.LinkStats) linkSample {
	if now.UpPackets < prev.UpPackets || now.UpExpected < prev.UpExpected || now.DownReports < prev.DownReports {
		prev = media.LinkStats{} // a new session of the same user
	}
	s := linkSample{Jitter: max(now.UpJitter, now.DownJitter), RTT: now.RTT}
	packets, expected := now.UpPackets-prev.UpPackets, now.UpExpected-prev.UpExpected
	if expected > packets {
		s.Loss = float64(expected-packets) / float64(expected)
	}
	if now.DownReports > prev.DownReports {
		s.Loss = max(s.Loss, now.DownLost)
	}
	s.Silent = now.Publishing && prev.User != "" && packets == 0
	return s
}

// severity orders the qualities from best to worst.
var severity = map[lk.ConnectionQuality]int{
	lk.ConnectionQuality_EXCELLENT: 0, lk.ConnectionQuality_GOOD: 1, lk.ConnectionQuality_POOR: 2, lk.ConnectionQuality_LOST: 3,
}

// qualities rates the participants of each conference at most once per
// interval, however many LiveKit participants ask.
type qualities struct {
	mu sync.Mutex
	by map[string]*conferenceQuality
}

type conferenceQuality struct {
	at    time.Time
	prev  map[string]media.LinkStats
	infos []*lk.ConnectionQualityInfo
}

// of returns the ratings of conference's local participants now.
func (q *qualities) of(sfu *media.SFU, conference string, now time.Time) []*lk.ConnectionQualityInfo {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.by == nil {
		q.by = make(map[string]*conferenceQuality)
	}
	cq := q.by[conference]
	if cq != nil && now.Sub(cq.at) < qualityInterval/2 {
		return cq.infos
	}
	if cq == nil {
		cq = &conferenceQuality{}
		q.by[conference] = cq
	}
	// A user with two sessions is rated by the worse.
	worst := make(map[string]lk.ConnectionQuality)
	score := make(map[string]float32)
	next := make(map[string]media.LinkStats)
	for _, st := range sfu.LinkStats(conference) {
		quality, s := rate(sampleOf(cq.prev[st.User], st))
		if old, ok := worst[st.User]; !ok || severity[quality] > severity[old] {
			worst[st.User], score[st.User] = quality, s
		}
		next[st.User] = st
	}
	cq.infos = cq.infos[:0:0]
	for user, quality := range worst {
		cq.infos = append(cq.infos, &lk.ConnectionQualityInfo{ParticipantSid: user, Quality: quality, Score: score[user]})
	}
	cq.at, cq.prev = now, next
	return cq.infos
}

// forget drops a conference no LiveKit participant of this node is in.
func (q *qualities) forget(conference string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.by, conference)
}

// reportQuality sends the ratings every qualityInterval until the
// connection ends.
func (p *participant) reportQuality(done <-chan struct{}) {
	tick := time.NewTicker(qualityInterval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-p.done:
			return
		case now := <-tick.C:
			p.mu.Lock()
			joined := p.joined
			p.mu.Unlock()
			if !joined {
				continue // JoinResponse comes first
			}
			infos := p.srv.quality.of(p.srv.opts.SFU, p.adm.grant.Conference, now)
			if len(infos) > 0 {
				p.send(&lk.SignalResponse{Message: &lk.SignalResponse_ConnectionQuality{
					ConnectionQuality: &lk.ConnectionQualityUpdate{Updates: infos},
				}})
			}
		}
	}
}
