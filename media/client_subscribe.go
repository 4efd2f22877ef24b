package media

import (
	"errors"
	"fmt"

	"github.com/pion/webrtc/v4"
)

// A client's subscriptions: the tracks it asked to receive, and what
// happens to them when it or their publisher goes (spec/client-api.md §5.2).

func (c *client) subscribe(m inbound) {
	t, ok := c.conf.track(m.Track)
	if !ok {
		c.sendError(codeUnknownTrack, fmt.Sprintf("no track %q in this conference", m.Track))
		return
	}
	if t.info.Owner == c.me.User {
		c.sendError(codeOwnTrack, "a client does not subscribe to its own tracks")
		return
	}
	if m.MaxWidth < 0 || m.MaxHeight < 0 {
		c.sendError(codeBadRequest, "max_width and max_height must not be negative")
		return
	}
	if s, ok := c.subs[m.Track]; ok {
		s.down.setPreferences(m.MaxWidth, m.MaxHeight)
		return
	}
	var d *downTrack
	d = newDownTrack(t, c.sfu.metrics, m.MaxWidth, m.MaxHeight, func() { go c.dropSubscription(m.Track, d) })
	sender, err := c.sub.AddTrack(d)
	if err != nil {
		c.log.Warn("add subscribed track", "track", m.Track, "err", err)
		c.sendError(codeInternal, "cannot add track")
		return
	}
	c.subs[m.Track] = &subscription{down: d, sender: sender}
	t.AddSink(d)
	go readSubscriberRTCP(sender, d, c.sfu.metrics, c.log.With("track", m.Track))
	c.negotiate()
}

func (c *client) unsubscribe(track string) {
	s, ok := c.subs[track]
	if !ok {
		c.sendError(codeUnknownTrack, fmt.Sprintf("not subscribed to %q", track))
		return
	}
	s.down.up.RemoveSink(s.down)
	c.removeSubscription(track, s)
}

// dropSubscription runs when a subscribed track's publisher goes away.
func (c *client) dropSubscription(track string, d *downTrack) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.subs[track]; ok && s.down == d && !c.stopped {
		c.removeSubscription(track, s)
	}
}

func (c *client) removeSubscription(track string, s *subscription) {
	delete(c.subs, track)
	if err := c.sub.RemoveTrack(s.sender); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		c.log.Debug("remove subscribed track", "track", track, "err", err)
	}
	c.negotiate()
}
