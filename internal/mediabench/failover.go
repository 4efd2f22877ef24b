package mediabench

import (
	"context"
	"net/http"
	"time"
)

// Failover (Plan.Failover): after the measurement, the run tells its caller
// it is ready (FailoverReady), and the caller kills a replica. Every client
// whose signalling breaks then reconnects by itself, as a browser does: it
// closes its peer connections, dials its URL again and then its fallbacks
// in turn until one takes it, joins, publishes again and subscribes to
// every track announced. The run reports, per client cut, when every track
// of the others flowed to it again.

const (
	// failoverLimit bounds the wait for the cut clients to recover.
	failoverLimit = 60 * time.Second
	// cutsSettle is how long after the last cut the run keeps waiting for
	// others before it may end.
	cutsSettle = 2 * time.Second
	// redialEvery spaces a client's attempts to reconnect.
	redialEvery = 200 * time.Millisecond
)

// FailoverReport is what the clients saw of a replica's death.
type FailoverReport struct {
	// Cut is how many clients lost their signalling connection.
	Cut int `json:"cut"`
	// Recovered of them received every track again within the limit.
	Recovered int `json:"recovered"`
	// MediaAgainNS are, for each recovered client, the wall-clock time
	// (Unix nanoseconds) when the last track it expects flowed again.
	MediaAgainNS []int64 `json:"media_again_ns"`
}

// Summarize is summarize for callers that measure durations themselves
// (nanoseconds in, milliseconds out).
func Summarize(ns []int64) Summary { return summarize(ns) }

// failover arms the clients, lets the caller kill a replica, and waits for
// the clients it cut to recover.
func failover(ctx context.Context, httpClient *http.Client, clk clock, clients []*client, expected []int, at func(Phase)) *FailoverReport {
	for i, c := range clients {
		c.armed.Store(true)
		c.httpClient, c.expected = httpClient, expected[i]
	}
	if at != nil {
		at(FailoverReady)
	}
	deadline := time.Now().Add(failoverLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		cut, recovered, lastCut := 0, 0, int64(0)
		for _, c := range clients {
			c.mu.Lock()
			if c.cutNS != 0 {
				cut++
				lastCut = max(lastCut, c.cutNS)
				if c.againNS != 0 {
					recovered++
				}
			}
			c.mu.Unlock()
		}
		if cut > 0 && recovered == cut && clk.now()-lastCut > int64(cutsSettle) {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	rep := &FailoverReport{}
	for _, c := range clients {
		c.mu.Lock()
		if c.cutNS != 0 {
			rep.Cut++
			if c.againNS != 0 {
				rep.Recovered++
				rep.MediaAgainNS = append(rep.MediaAgainNS, clk.base.UnixNano()+c.againNS)
			}
		}
		c.mu.Unlock()
	}
	return rep
}

// cut runs when an armed client's signalling breaks: it reconnects in the
// background.
func (c *client) cut(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	if c.cutNS == 0 {
		c.cutNS = c.clock.now()
	}
	c.againNS = 0
	c.mu.Unlock()
	c.recon.Go(func() { c.reconnect(ctx) })
}

// reconnect dials the participant's URLs in turn until one takes it, then
// notes when every expected track flows again.
func (c *client) reconnect(ctx context.Context) {
	urls := append([]string{c.p.URL}, c.p.Fallback...)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		c.endSession()
		if err := c.connectTo(ctx, urls[attempt%len(urls)], connectLimit); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(redialEvery):
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if c.flowing() >= c.expected {
			c.mu.Lock()
			c.againNS = c.clock.now()
			c.mu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-c.sessionDone():
			return // cut again: the next reconnect measures
		case <-tick.C:
		}
	}
}

// endSession closes the current session's connections and forgets its
// subscriptions: track IDs are the SFU's, new in the next session.
func (c *client) endSession() {
	c.mu.Lock()
	cancel, ws, pub, sub := c.sessCancel, c.ws, c.pub, c.sub
	c.subs = map[string]*subscription{}
	c.joined, c.published, c.pubUp = make(chan struct{}), make(chan struct{}), make(chan struct{})
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if ws != nil {
		_ = ws.CloseNow()
	}
	if pub != nil {
		_ = pub.Close()
	}
	if sub != nil {
		_ = sub.Close()
	}
}

func (c *client) sessionDone() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessDone
}
