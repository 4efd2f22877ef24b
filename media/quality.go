package media

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// What the SFU measures of each local participant's connection, for
// connection quality reports (spec/client-api.md §8.9): the media arriving
// from its publisher connection (sequence-number loss and RFC 3550
// interarrival jitter, counted on the forwarding path without allocating)
// and the receiver reports it sends about its subscriptions (fraction lost,
// jitter and the round trip computed from their LSR and DLSR).

// LinkStats is one local participant's connection as the SFU sees it. The
// counters grow for as long as the session lasts; a reader compares two
// readings to judge an interval.
type LinkStats struct {
	User string
	// Publishing is set while the participant has an unmuted published
	// track, whose media should be arriving.
	Publishing bool
	// UpPackets and UpExpected count the packets received from its
	// publisher connection and those its sequence numbers say were sent;
	// the difference was lost on the way.
	UpPackets, UpExpected uint64
	// UpJitter is the largest interarrival jitter of its streams now.
	UpJitter time.Duration
	// DownReports counts the report blocks of its receiver reports about
	// its subscriptions; DownLost is the largest fraction lost (0 to 1) and
	// DownJitter the largest jitter of the latest block of each.
	DownReports uint64
	DownLost    float64
	DownJitter  time.Duration
	// RTT is the largest round trip of the latest report blocks that
	// carried one; 0 when none did.
	RTT time.Duration
}

// LinkStats returns the connection statistics of the local participants of
// a conference, one per media session.
func (s *SFU) LinkStats(conference string) []LinkStats {
	s.mu.Lock()
	var clients []*client
	for c := range s.clients {
		if c.conferenceID == conference {
			clients = append(clients, c)
		}
	}
	s.mu.Unlock()
	out := make([]LinkStats, 0, len(clients))
	for _, c := range clients {
		out = append(out, c.linkStats())
	}
	return out
}

func (c *client) linkStats() LinkStats {
	st := LinkStats{User: c.me.User}
	c.mu.Lock()
	ups := make([]*upTrack, 0, len(c.published))
	for _, t := range c.published {
		ups = append(ups, t)
	}
	downs := make([]*downTrack, 0, len(c.subs))
	for _, s := range c.subs {
		downs = append(downs, s.down)
	}
	c.mu.Unlock()
	for _, t := range ups {
		if !t.muted.Load() && !t.closed.Load() {
			st.Publishing = true
		}
		for i := range t.layers {
			l := &t.layers[i].link
			st.UpPackets += l.packets.Load()
			st.UpExpected += l.expected.Load()
			st.UpJitter = max(st.UpJitter, time.Duration(math.Float64frombits(l.jitter.Load())*float64(time.Second)))
		}
	}
	for _, d := range downs {
		r := &d.reports
		st.DownReports += r.count.Load()
		st.DownLost = max(st.DownLost, float64(r.lost.Load())/256)
		st.DownJitter = max(st.DownJitter, time.Duration(r.jitter.Load()))
		st.RTT = max(st.RTT, time.Duration(r.rtt.Load()))
	}
	return st
}

// linkCounter measures one received stream. Its plain fields belong to the
// layer's reader (upTrack.forward); the atomics are read by linkStats.
type linkCounter struct {
	started     bool
	lastSeq     uint16
	extended    int64 // highest sequence number, unwrapped
	first       int64
	lastTransit float64
	jitterSec   float64

	packets  atomic.Uint64
	expected atomic.Uint64
	jitter   atomic.Uint64 // float64 bits, seconds
}

// note counts one packet with sequence number seq and RTP timestamp ts that
// arrived at now (ns), at clockRate.
func (l *linkCounter) note(seq uint16, ts uint32, now int64, clockRate uint32) {
	if !l.started {
		l.started, l.lastSeq, l.extended, l.first = true, seq, int64(seq), int64(seq)
	} else if d := int16(seq - l.lastSeq); d > 0 {
		l.extended += int64(d)
		l.lastSeq = seq
	}
	l.packets.Add(1)
	l.expected.Store(uint64(l.extended - l.first + 1))
	if clockRate == 0 {
		return
	}
	// RFC 3550 §6.4.1 and A.8: J += (|D| - J) / 16, in seconds here.
	transit := float64(now)/1e9 - float64(ts)/float64(clockRate)
	if l.lastTransit != 0 {
		d := math.Abs(transit - l.lastTransit)
		// A jump of the timestamp (a new source, a long pause) is not
		// jitter: its transit is taken as the new reference.
		if d < 1 {
			l.jitterSec += (d - l.jitterSec) / 16
			l.jitter.Store(math.Float64bits(l.jitterSec))
		}
	}
	l.lastTransit = transit
}

// restart continues the count on a new stream of the same layer, whose
// first packet has sequence number seq: nothing is counted lost across the
// change, and its timestamps start a new transit reference.
func (l *linkCounter) restart(seq uint16) {
	l.lastSeq = seq - 1
	l.lastTransit = 0
}

// reportCounter keeps the latest receiver report block about one
// down-track.
type reportCounter struct {
	count  atomic.Uint64
	lost   atomic.Uint32 // fraction lost, in 256ths
	jitter atomic.Int64  // ns
	rtt    atomic.Int64  // ns, 0 unknown
}

// note records a report block about the down-track sent at clockRate.
func (r *reportCounter) note(b rtcp.ReceptionReport, clockRate uint32, now time.Time) {
	r.count.Add(1)
	r.lost.Store(uint32(b.FractionLost))
	if clockRate > 0 {
		r.jitter.Store(int64(float64(b.Jitter) / float64(clockRate) * float64(time.Second)))
	}
	if rtt, ok := roundTrip(b, now); ok {
		r.rtt.Store(int64(rtt))
	}
}

// roundTrip is the round trip a report block gives (RFC 3550 §6.4.1): the
// middle 32 bits of the NTP time now, less the LSR of the sender report it
// answers and the DLSR the receiver held it for, in 1/65536 s.
func roundTrip(b rtcp.ReceptionReport, now time.Time) (time.Duration, bool) {
	if b.LastSenderReport == 0 {
		return 0, false
	}
	rtt := ntpMiddle(now) - b.LastSenderReport - b.Delay
	d := time.Duration(uint64(rtt) * uint64(time.Second) >> 16)
	if d > 10*time.Second { // a clock step or a report of another sender
		return 0, false
	}
	return d, true
}

// ntpMiddle is the middle 32 bits of t as an NTP timestamp.
func ntpMiddle(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return uint32(secs<<16 | frac>>16)
}
