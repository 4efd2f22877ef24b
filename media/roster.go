package media

// What a server API (such as LiveKit's RoomService, package livekit) may
// ask of and do to a conference's media on this node.

// Participants lists the participants of a conference present in this
// node's SFU, local and of other nodes, and the tracks published there.
func (s *SFU) Participants(conference string) ([]Participant, []TrackInfo) {
	s.router.mu.Lock()
	c, ok := s.router.conferences[conference]
	s.router.mu.Unlock()
	if !ok {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []Participant
	for _, d := range c.participants {
		if p := c.downs[d]; p.User != "" {
			ps = append(ps, p)
		}
	}
	tracks := make([]TrackInfo, 0, len(c.trackOrder))
	for _, id := range c.trackOrder {
		tracks = append(tracks, c.tracks[id].Info())
	}
	return ps, tracks
}

// Disconnect ends the media sessions of a local user in a conference, as a
// removal does (they are sent `removed` with reason), and reports how many
// there were. Their membership is not changed: they may connect again.
func (s *SFU) Disconnect(conference, user, reason string) int {
	s.mu.Lock()
	var found []*client
	for c := range s.clients {
		if c.conferenceID == conference && c.me.User == user {
			found = append(found, c)
		}
	}
	s.mu.Unlock()
	for _, c := range found {
		c.stop(reason)
	}
	return len(found)
}

// SetTrackMuted marks a track published on this node muted or unmuted for
// every subscriber, as its publisher's `mute` does, and reports whether the
// track was found.
func (s *SFU) SetTrackMuted(conference, track string, muted bool) bool {
	s.router.mu.Lock()
	c, ok := s.router.conferences[conference]
	s.router.mu.Unlock()
	if !ok {
		return false
	}
	t, ok := c.track(track)
	if !ok {
		return false
	}
	c.setMuted(t, muted)
	return true
}

// ReasonRestart is the reason a session ends with when its replica is
// drained: a native client's WebSocket closes with code 1012 (service
// restart) and no `removed`, a Session's handler hears Closed(ReasonRestart).
// The client is expected to reconnect at once (spec/client-api.md §5.1).
const ReasonRestart = "restart"

// Restart ends every local media session, native and translated, with
// ReasonRestart, and reports how many there were. Trunks stay: they end
// with the SFU.
func (s *SFU) Restart() int {
	s.mu.Lock()
	found := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		found = append(found, c)
	}
	s.mu.Unlock()
	for _, c := range found {
		c.stop(ReasonRestart)
	}
	return len(found)
}

// Sessions counts the local media sessions, native and translated: a
// replica's load.
func (s *SFU) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}
