package mediabench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Participant is one synthetic client of a run.
type Participant struct {
	// Name identifies the participant in errors.
	Name string `json:"name"`
	// Conference groups participants: a participant expects to receive
	// every track of the others with the same Conference.
	Conference string `json:"conference"`
	// URL is the signalling WebSocket, wss://…/api/v1/conferences/{id}/media.
	URL   string `json:"url"`
	Token string `json:"token"`
	// Audio and Video publish a microphone and a camera track; Simulcast
	// sends the camera as the three layers q, h, f.
	Audio     bool `json:"audio"`
	Video     bool `json:"video"`
	Simulcast bool `json:"simulcast"`
	// Subscribe receives every track of the other participants.
	Subscribe bool `json:"subscribe"`
	// Kind is KindNative (the default) or KindLiveKit: then URL is the
	// node's LiveKit URL and Token a LiveKit access token.
	Kind string `json:"kind,omitempty"`
	// Fallback are URLs the participant reconnects to, after URL, when its
	// signalling breaks during a failover (the other replicas behind one
	// load balancer).
	Fallback []string `json:"fallback,omitempty"`
}

// Plan is a whole run.
type Plan struct {
	// CAPEM is the PEM of the CA that issued the nodes' certificates.
	CAPEM        string        `json:"ca_pem"`
	Duration     time.Duration `json:"duration"`
	Participants []Participant `json:"participants"`
	// Failover, after the measurement, has the caller kill a replica and
	// measures the clients' recovery (failover.go).
	Failover bool `json:"failover,omitempty"`
}

// Bounds of a run, so that it always ends.
const (
	MaxDuration     = 10 * time.Minute
	MaxParticipants = 500
	// connectLimit is the longest one client may take to join and, if it
	// publishes, to get its publish connection up.
	connectLimit = 20 * time.Second
	// settleLimit is the longest the run waits for every subscription to
	// carry media before it measures anyway; what is missing then counts
	// as lost.
	settleLimit = 10 * time.Second
	// lead is how far ahead of its start the window is fixed.
	lead = 100 * time.Millisecond
	// After the window, the run waits until no packet sent in it has
	// arrived for quiet, and at most drainLimit: a packet delayed on a
	// saturated machine then shows in the latency, not as lost.
	quiet      = 500 * time.Millisecond
	drainLimit = 10 * time.Second
	// connectParallel bounds the clients connecting at once, so that a large
	// plan does not time its own signalling out.
	connectParallel = 8
)

func (p Plan) validate() error {
	if p.Duration <= 0 || p.Duration > MaxDuration {
		return fmt.Errorf("plan: duration must be positive and at most %s, got %s", MaxDuration, p.Duration)
	}
	if len(p.Participants) == 0 || len(p.Participants) > MaxParticipants {
		return fmt.Errorf("plan: between 1 and %d participants, got %d", MaxParticipants, len(p.Participants))
	}
	for _, pt := range p.Participants {
		if pt.URL == "" || pt.Token == "" {
			return fmt.Errorf("plan: participant %q needs a url and a token", pt.Name)
		}
		if pt.Kind != "" && pt.Kind != KindNative && pt.Kind != KindLiveKit {
			return fmt.Errorf("plan: participant %q: kind must be %s or %s, got %q", pt.Name, KindNative, KindLiveKit, pt.Kind)
		}
	}
	return nil
}

// Report is what the clients measured over the window.
type Report struct {
	// PacketsSent counts RTP packets sent in the window, every simulcast
	// layer included.
	PacketsSent int64 `json:"packets_sent"`
	// PacketsReceived counts distinct packets received that were sent in
	// the window.
	PacketsReceived int64 `json:"packets_received"`
	// PacketsLost is, summed over subscriptions, the packets the track's
	// publisher sent in the window (one per frame, whatever the layer) less
	// those received.
	PacketsLost int64 `json:"packets_lost"`
	// Subscriptions is how many (subscriber, track) pairs were expected;
	// SubscriptionsWithoutMedia of them received nothing.
	Subscriptions             int `json:"subscriptions"`
	SubscriptionsWithoutMedia int `json:"subscriptions_without_media"`
	// Latency is from the send time in the payload to receipt.
	Latency Summary `json:"latency_ms"`
	// JoinToFirstFrame is, per video subscription, from the subscriber's
	// join (or the track's announcement, if later) to its first keyframe.
	JoinToFirstFrame Summary `json:"join_to_first_frame_ms"`
	// Flows are the payload bytes each subscription received in the window,
	// with the nodes of both ends: what crossing trunks had to carry.
	Flows []Flow `json:"flows"`
	// PayloadMismatches counts received payloads that were not byte for
	// byte what their publisher sent (see exact); 0 unless the SFU
	// corrupts media.
	PayloadMismatches int64 `json:"payload_mismatches"`
	// Failover is set with Plan.Failover.
	Failover *FailoverReport `json:"failover,omitempty"`
}

// Flow is one subscription's received payload bytes.
type Flow struct {
	Track          string `json:"track"` // publisher and kind
	PublisherNode  string `json:"publisher_node"`
	SubscriberNode string `json:"subscriber_node"`
	Bytes          int64  `json:"bytes"`
}

// Phase is a point of the run its caller may want to act on.
type Phase int

const (
	// WindowStart and WindowEnd bracket the measurement.
	WindowStart Phase = iota + 1
	WindowEnd
	// FailoverReady: with Plan.Failover, the clients are ready for the
	// caller to kill a replica (failover.go).
	FailoverReady
)

// Run connects every participant, waits for media to flow, measures for
// the plan's duration and disconnects. at, if not nil, is called at the
// window's start and end, so the caller can read its own counters there.
func Run(ctx context.Context, plan Plan, at func(Phase)) (Report, error) {
	if err := plan.validate(); err != nil {
		return Report{}, err
	}
	httpClient, err := tlsClient(plan.CAPEM)
	if err != nil {
		return Report{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clk := clock{base: time.Now()}
	win := newWindow()
	fail := make(chan error, 1)
	clients := make([]*client, 0, len(plan.Participants))
	defer func() {
		cancel()
		for _, c := range clients {
			c.close()
		}
	}()

	for _, p := range plan.Participants {
		pubConn, pubAPI, err := clientSocket()
		if err != nil {
			return Report{}, err
		}
		subConn, subAPI, err := clientSocket()
		if err != nil {
			pubConn.Close()
			return Report{}, err
		}
		c := newClient(p, pubAPI, subAPI, clk, win, fail)
		c.udp = []io.Closer{pubConn, subConn}
		clients = append(clients, c)
	}

	// Publishers first, so that a subscriber's join-to-first-frame is not
	// the time its publishers took to connect.
	var publishers, others []*client
	for _, c := range clients {
		if c.p.Audio || c.p.Video {
			publishers = append(publishers, c)
		} else {
			others = append(others, c)
		}
	}
	for _, group := range [][]*client{publishers, others} {
		if err := connectAll(ctx, httpClient, group); err != nil {
			return Report{}, err
		}
	}
	expected := expectedTracks(plan.Participants)
	if err := settle(ctx, clients, expected, fail); err != nil {
		return Report{}, err
	}

	start := clk.now() + int64(lead)
	end := start + int64(plan.Duration)
	win.set(start, end)
	if err := sleepUntil(ctx, clk, start, fail); err != nil {
		return Report{}, err
	}
	if at != nil {
		at(WindowStart)
	}
	if err := sleepUntil(ctx, clk, end, fail); err != nil {
		return Report{}, err
	}
	if at != nil {
		at(WindowEnd)
	}
	if err := drain(ctx, clk, win, end, quiet, drainLimit, fail); err != nil {
		return Report{}, err
	}
	rep := report(clients)
	if plan.Failover {
		rep.Failover = failover(ctx, httpClient, clk, clients, expected, at)
	}
	cancel()
	for _, c := range clients {
		c.close()
	}
	return rep, nil
}

func connectAll(ctx context.Context, httpClient *http.Client, clients []*client) error {
	sem := make(chan struct{}, connectParallel)
	errs := make(chan error, len(clients))
	for _, c := range clients {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- c.connect(ctx, httpClient, connectLimit)
		}()
	}
	var all []error
	for range clients {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// expectedTracks counts, per participant index, the tracks it should
// receive.
func expectedTracks(ps []Participant) []int {
	perConference := map[string]int{}
	for _, p := range ps {
		perConference[p.Conference] += btoi(p.Audio) + btoi(p.Video)
	}
	out := make([]int, len(ps))
	for i, p := range ps {
		if p.Subscribe {
			out[i] = perConference[p.Conference] - btoi(p.Audio) - btoi(p.Video)
		}
	}
	return out
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// settle waits until every subscriber has media on every track it expects,
// or settleLimit passes.
func settle(ctx context.Context, clients []*client, expected []int, fail <-chan error) error {
	deadline := time.Now().Add(settleLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		ready := true
		for i, c := range clients {
			if c.flowing() < expected[i] {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-fail:
			return err
		case <-tick.C:
		}
	}
	return nil
}

// flowing counts the client's subscriptions that have received media.
func (c *client) flowing() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.subs {
		s.mu.Lock()
		if s.firstAnyNS != 0 {
			n++
		}
		s.mu.Unlock()
	}
	return n
}

func sleepUntil(ctx context.Context, clk clock, ns int64, fail <-chan error) error {
	d := time.Duration(ns - clk.now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-fail:
		return err
	case <-t.C:
		return nil
	}
}

// drain returns once no packet sent in the window has arrived for quiet,
// or limit after the window's end.
func drain(ctx context.Context, clk clock, w *window, end int64, quiet, limit time.Duration, fail <-chan error) error {
	for {
		until := min(max(end, w.lastIn.Load())+int64(quiet), end+int64(limit))
		if clk.now() >= until {
			return nil
		}
		if err := sleepUntil(ctx, clk, until, fail); err != nil {
			return err
		}
	}
}

// report matches every subscriber with every track published by another
// participant of its conference, so that a track that never reached a
// subscriber counts as lost in full.
func report(clients []*client) Report {
	var r Report
	type published struct {
		conference, owner, kind, node string
		inWindow                      int64
	}
	var tracks []published
	for _, c := range clients {
		r.PacketsSent += c.sentPackets.Load()
		for _, t := range c.tracks {
			tracks = append(tracks, published{c.p.Conference, c.user, t.kind, nodeOf(c.p.URL), t.inWindow.Load()})
		}
	}
	var latencies, joins []int64
	for _, c := range clients {
		if !c.p.Subscribe {
			continue
		}
		// The clients may still be receiving (a failover run measures
		// after the report): read each subscription as it is now.
		byTrack := map[[2]string]subscriptionStats{}
		c.mu.Lock()
		for _, s := range c.subs {
			byTrack[[2]string{s.owner, s.kind}] = s.stats()
		}
		c.mu.Unlock()
		for _, t := range tracks {
			if t.conference != c.p.Conference || t.owner == c.user {
				continue
			}
			r.Subscriptions++
			s, ok := byTrack[[2]string{t.owner, t.kind}]
			if !ok || s.firstAnyNS == 0 {
				r.SubscriptionsWithoutMedia++
				r.PacketsLost += t.inWindow
				continue
			}
			r.PacketsReceived += s.received
			r.PayloadMismatches += s.mismatched
			r.PacketsLost += max(t.inWindow-s.received, 0)
			r.Flows = append(r.Flows, Flow{Track: t.owner + "/" + t.kind, PublisherNode: t.node, SubscriberNode: nodeOf(c.p.URL), Bytes: s.bytes})
			latencies = append(latencies, s.latenciesNS...)
			if s.kind == "video" && s.firstKeyNS != 0 {
				joins = append(joins, s.firstKeyNS-max(c.joinedNS, s.announcedNS))
			}
		}
	}
	r.Latency = summarize(latencies)
	r.JoinToFirstFrame = summarize(joins)
	return r
}

// nodeOf names the node a participant's media URL points to (host:port).
func nodeOf(mediaURL string) string {
	u, err := url.Parse(mediaURL)
	if err != nil {
		return mediaURL
	}
	return u.Host
}

// TrunkWanted is, for a star of trunks around host, the payload bytes the
// trunks had to carry for the flows: each track once per trunk towards the
// nodes that want it — member to host, host to member — at the most any
// subscriber behind that trunk received.
func TrunkWanted(flows []Flow, host string) int64 {
	type hop struct{ from, to, track string }
	wanted := map[hop]int64{}
	for _, f := range flows {
		if f.PublisherNode == f.SubscriberNode {
			continue
		}
		var hops []hop
		switch {
		case f.PublisherNode == host || f.SubscriberNode == host:
			hops = []hop{{f.PublisherNode, f.SubscriberNode, f.Track}}
		default:
			hops = []hop{{f.PublisherNode, host, f.Track}, {host, f.SubscriberNode, f.Track}}
		}
		for _, h := range hops {
			wanted[h] = max(wanted[h], f.Bytes)
		}
	}
	var total int64
	for _, b := range wanted {
		total += b
	}
	return total
}
