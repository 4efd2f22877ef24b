package media

import (
	"sync"
	"time"
)

// Participant is a user present in a conference's media, as announced to
// clients (spec/client-api.md §5.3).
type Participant struct {
	User         string `json:"user"`
	DisplayName  string `json:"display_name"`
	Organisation string `json:"organisation"`
	// OrganisationLabel is, for a participant of another node, the name
	// that node announced for its institution when it differs from the
	// one this node gives it (Organisation). It is shown only beside it.
	OrganisationLabel string `json:"organisation_label,omitempty"`
	// MediaWithheld is set on a participant of another organisation whose
	// node does not let the host relay its media to this node
	// (spec/federation.md §10.5): it is present, but its tracks never
	// reach this node.
	MediaWithheld bool `json:"media_withheld,omitempty"`
	// LiveKitIdentity is the identity LiveKit clients know the participant
	// by when it is not User: a Matrix user who joined through Element
	// Call's focus is "@user:server:DEVICE" (spec/client-api.md §8.4). It
	// travels with the participant across trunks.
	LiveKitIdentity string `json:"livekit_identity,omitempty"`
}

// announced is the participant as a trunk announces it to the peer
// (spec/federation.md §10.4): with the organisation its own node gave it,
// which the peer names again its own way.
func (p Participant) announced() Participant {
	if p.OrganisationLabel != "" {
		p.Organisation = p.OrganisationLabel
	}
	p.OrganisationLabel = ""
	return p
}

// router holds the conferences that currently have media on this node. It
// knows tracks and the Downs that hear about them, not WebRTC clients.
type router struct {
	mu          sync.Mutex
	conferences map[string]*conference
}

func newRouter() *router {
	return &router{conferences: make(map[string]*conference)}
}

// conference is the media state of one conference on this node. Tracks of a
// conference are only ever offered to the Downs of the same conference.
type conference struct {
	id      string
	router  *router
	speaker *speakerDetector

	mu           sync.Mutex
	downs        map[Down]Participant
	tracks       map[string]*upTrack
	trackOrder   []string
	participants []Down
}

// join adds d to conference id and returns the conference with the
// participants and tracks already there, for the `joined` message.
func (r *router) join(id string, d Down, p Participant) (*conference, []Participant, []TrackInfo) {
	r.mu.Lock()
	c, ok := r.conferences[id]
	if !ok {
		c = &conference{id: id, router: r, downs: make(map[Down]Participant), tracks: make(map[string]*upTrack)}
		c.speaker = startSpeakerDetector(c, speakerInterval)
		r.conferences[id] = c
	}
	r.mu.Unlock()

	c.mu.Lock()
	others := make([]Participant, 0, len(c.participants))
	for _, o := range c.participants {
		if p := c.downs[o]; p.User != "" {
			others = append(others, p)
		}
	}
	tracks := make([]TrackInfo, 0, len(c.trackOrder))
	for _, id := range c.trackOrder {
		tracks = append(tracks, c.tracks[id].Info())
	}
	peers := c.peersLocked()
	c.downs[d] = p
	c.participants = append(c.participants, d)
	c.mu.Unlock()

	// A Down without a user (a cascade trunk) hears the conference but is
	// nobody's participant.
	if p.User == "" {
		return c, others, tracks
	}
	for _, o := range peers {
		o.Notify(Event{Kind: ParticipantJoined, Participant: p})
	}
	return c, others, tracks
}

func (c *conference) peersLocked() []Down {
	out := make([]Down, len(c.participants))
	copy(out, c.participants)
	return out
}

// leave removes d and every track it published; the conference disappears
// with its last participant.
func (c *conference) leave(d Down, published []*upTrack) {
	for _, t := range published {
		c.unpublish(t)
	}
	c.mu.Lock()
	p, ok := c.downs[d]
	delete(c.downs, d)
	for i, o := range c.participants {
		if o == d {
			c.participants = append(c.participants[:i], c.participants[i+1:]...)
			break
		}
	}
	peers := c.peersLocked()
	empty := len(c.participants) == 0
	c.mu.Unlock()
	if ok && p.User != "" {
		for _, o := range peers {
			o.Notify(Event{Kind: ParticipantLeft, Participant: p})
		}
	}
	if empty {
		c.router.mu.Lock()
		c.mu.Lock()
		if len(c.participants) == 0 && c.router.conferences[c.id] == c {
			delete(c.router.conferences, c.id)
			c.speaker.stop()
		}
		c.mu.Unlock()
		c.router.mu.Unlock()
	}
}

func (c *conference) publish(t *upTrack) {
	c.mu.Lock()
	c.tracks[t.ID()] = t
	c.trackOrder = append(c.trackOrder, t.ID())
	peers := c.peersLocked()
	c.mu.Unlock()
	for _, o := range peers {
		o.Notify(Event{Kind: TrackAdded, Track: t})
	}
}

// unpublish detaches every sink of t before anyone is told, so its media
// stops at once.
func (c *conference) unpublish(t *upTrack) {
	t.close()
	c.mu.Lock()
	if _, ok := c.tracks[t.ID()]; !ok {
		c.mu.Unlock()
		return
	}
	delete(c.tracks, t.ID())
	for i, id := range c.trackOrder {
		if id == t.ID() {
			c.trackOrder = append(c.trackOrder[:i], c.trackOrder[i+1:]...)
			break
		}
	}
	peers := c.peersLocked()
	c.mu.Unlock()
	for _, o := range peers {
		o.Notify(Event{Kind: TrackRemoved, Track: t})
	}
}

// update replaces the description of d, a participant already present,
// and tells everyone else.
func (c *conference) update(d Down, p Participant) {
	c.mu.Lock()
	if _, ok := c.downs[d]; !ok {
		c.mu.Unlock()
		return
	}
	c.downs[d] = p
	peers := c.peersLocked()
	c.mu.Unlock()
	for _, o := range peers {
		if o != d {
			o.Notify(Event{Kind: ParticipantUpdated, Participant: p})
		}
	}
}

func (c *conference) track(id string) (*upTrack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tracks[id]
	return t, ok
}

func (c *conference) setMuted(t *upTrack, muted bool) {
	if t.muted.Swap(muted) == muted {
		return
	}
	c.mu.Lock()
	peers := c.peersLocked()
	c.mu.Unlock()
	for _, o := range peers {
		o.Notify(Event{Kind: TrackMuted, Track: t})
	}
}

// audioTracks is a snapshot for the speaker detector.
func (c *conference) audioTracks(buf []*upTrack) []*upTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.tracks {
		if t.info.Kind == "audio" {
			buf = append(buf, t)
		}
	}
	return buf
}

func (c *conference) participant(user string) (Participant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.downs {
		if p.User == user {
			return p, true
		}
	}
	return Participant{}, false
}

func (c *conference) broadcast(ev Event) {
	c.mu.Lock()
	peers := c.peersLocked()
	c.mu.Unlock()
	for _, o := range peers {
		o.Notify(ev)
	}
}

// downs of a conference, for Recheck.
func (r *router) downs(id string) []Down {
	r.mu.Lock()
	c, ok := r.conferences[id]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peersLocked()
}

func (r *router) all() []*conference {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*conference, 0, len(r.conferences))
	for _, c := range r.conferences {
		out = append(out, c)
	}
	return out
}

const speakerInterval = 300 * time.Millisecond
