package livekit

import (
	"testing"
	"time"

	lk "github.com/livekit/protocol/livekit"

	"github.com/entente-org/entente/media"
)

// The mapping of spec/client-api.md §8.9, at points on both sides of each
// threshold (loss 4.35 % and 9.15 %, round trip 442 ms and 683 ms alone),
// with the scores worked out by hand from the formula.
func TestRateMapsSamplesToQualities(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		s     linkSample
		want  lk.ConnectionQuality
		score float32
	}{
		{linkSample{}, lk.ConnectionQuality_EXCELLENT, 4.4044},
		{linkSample{Loss: 0.02}, lk.ConnectionQuality_EXCELLENT, 4.2856},
		{linkSample{Loss: 0.04}, lk.ConnectionQuality_EXCELLENT, 4.1305},
		{linkSample{Loss: 0.05}, lk.ConnectionQuality_GOOD, 4.0409},
		{linkSample{Loss: 0.09}, lk.ConnectionQuality_GOOD, 3.6180},
		{linkSample{Loss: 0.10}, lk.ConnectionQuality_POOR, 3.4994},
		{linkSample{Loss: 0.20}, lk.ConnectionQuality_POOR, 2.2108},
		{linkSample{Loss: 1}, lk.ConnectionQuality_POOR, 1},
		{linkSample{Loss: 7}, lk.ConnectionQuality_POOR, 1}, // bounded
		{linkSample{RTT: 400 * ms}, lk.ConnectionQuality_EXCELLENT, 4.1724},
		{linkSample{RTT: 600 * ms}, lk.ConnectionQuality_GOOD, 3.7873},
		{linkSample{RTT: 800 * ms}, lk.ConnectionQuality_POOR, 3.3146},
		{linkSample{Jitter: 100 * ms}, lk.ConnectionQuality_EXCELLENT, 4.1724},
		{linkSample{Jitter: 200 * ms}, lk.ConnectionQuality_POOR, 3.3146},
		{linkSample{Loss: 0.02, RTT: 100 * ms, Jitter: 20 * ms}, lk.ConnectionQuality_EXCELLENT, 4.2200},
		{linkSample{Loss: 0.05, RTT: 200 * ms, Jitter: 30 * ms}, lk.ConnectionQuality_GOOD, 3.8517},
		{linkSample{Silent: true}, lk.ConnectionQuality_LOST, 0},
		{linkSample{Silent: true, Loss: 0.5}, lk.ConnectionQuality_LOST, 0},
	}
	for _, c := range cases {
		q, score := rate(c.s)
		if q != c.want || score < c.score-0.0005 || score > c.score+0.0005 {
			t.Errorf("rate(%+v) = %s %.4f, want %s %.4f", c.s, q, score, c.want, c.score)
		}
	}
}

// Over a grid of every input, more loss, jitter or round trip never rates
// a connection better.
func TestRateNeverImprovesWithWorseInput(t *testing.T) {
	ms := time.Millisecond
	rank := func(s linkSample) int { q, _ := rate(s); return severity[q] }
	for loss := 0; loss <= 100; loss++ {
		for rtt := time.Duration(0); rtt <= 2000*ms; rtt += 50 * ms {
			for jitter := time.Duration(0); jitter <= 400*ms; jitter += 20 * ms {
				s := linkSample{Loss: float64(loss) / 100, RTT: rtt, Jitter: jitter}
				r := rank(s)
				for name, worse := range map[string]linkSample{
					"loss":   {Loss: s.Loss + 0.01, RTT: rtt, Jitter: jitter},
					"rtt":    {Loss: s.Loss, RTT: rtt + 50*ms, Jitter: jitter},
					"jitter": {Loss: s.Loss, RTT: rtt, Jitter: jitter + 20*ms},
				} {
					if rank(worse) < r {
						t.Fatalf("more %s rates %+v better than %+v", name, worse, s)
					}
				}
			}
		}
	}
}

// An interval is judged from two readings: loss upstream from the packets
// received against those expected, downstream from a new receiver report,
// silence from an unmuted publisher that sent nothing.
func TestSampleOfAnInterval(t *testing.T) {
	ms := time.Millisecond
	first := media.LinkStats{User: "u", Publishing: true, UpPackets: 100, UpExpected: 100, DownReports: 3, DownLost: 0.5}
	cases := []struct {
		name      string
		prev, now media.LinkStats
		want      linkSample
	}{
		{"first reading", media.LinkStats{}, first, linkSample{Loss: 0.5}},
		{"a quarter lost upstream", first,
			media.LinkStats{User: "u", Publishing: true, UpPackets: 175, UpExpected: 200, DownReports: 3, DownLost: 0.5, UpJitter: 4 * ms, DownJitter: 9 * ms, RTT: 30 * ms},
			linkSample{Loss: 0.25, Jitter: 9 * ms, RTT: 30 * ms}},
		{"a new report counts", first,
			media.LinkStats{User: "u", Publishing: true, UpPackets: 200, UpExpected: 200, DownReports: 4, DownLost: 0.1},
			linkSample{Loss: 0.1}},
		{"silent publisher", first,
			media.LinkStats{User: "u", Publishing: true, UpPackets: 100, UpExpected: 100, DownReports: 4},
			linkSample{Silent: true}},
		{"silent but muted", first,
			media.LinkStats{User: "u", UpPackets: 100, UpExpected: 100, DownReports: 3},
			linkSample{}},
		{"a new session", first,
			media.LinkStats{User: "u", Publishing: true, UpPackets: 10, UpExpected: 20, DownReports: 1},
			linkSample{Loss: 0.5}},
	}
	for _, c := range cases {
		if got := sampleOf(c.prev, c.now); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
