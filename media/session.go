package media

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pion/webrtc/v4"
)

// A Session is a participant whose signalling is another protocol's (such as
// LiveKit's, package livekit) translated into the native one: the translator
// calls the Session's methods for what its client asks, and its
// SessionHandler hears what a native client would have been sent
// (spec/client-api.md §5.2, §5.3). Everything else (membership, takeover,
// removal, the peer connections, forwarding and the cascade) is the native
// client's, so both kinds of participant meet in one conference.
type Session struct{ c *client }

// SessionHandler receives a Session's outgoing messages. Its methods are
// called with the session's locks held: they must not block and must not
// call back into the Session.
type SessionHandler interface {
	// Joined answers Join: the participant itself, the others present and
	// the tracks already published.
	Joined(you Participant, others []Participant, tracks []TrackInfo, ice []webrtc.ICEServer)
	// PublishAnswer answers PublishOffer.
	PublishAnswer(sdp string)
	// SubscribeOffer is the SFU's offer on the subscribe connection; the
	// client answers with SubscribeAnswer.
	SubscribeOffer(sdp string)
	// Candidate is a local ICE candidate of the "publish" or "subscribe"
	// connection.
	Candidate(pc string, candidate webrtc.ICECandidateInit)
	// Event is a change in the conference (spec/client-api.md §5.3).
	Event(Event)
	// Error reports a refused request with the native error code
	// (spec/client-api.md §5.2); the session carries on.
	Error(code, message string)
	// Closed says the session has ended. reason is empty when the client
	// left or the SFU closed, otherwise "removed", "ended" or "replaced".
	Closed(reason string)
}

// DataChannelHandler is implemented by a SessionHandler whose protocol
// carries data on channels the client opens on its publish connection
// (LiveKit's `_reliable` and `_lossy`); what travels on them is the
// handler's business, not the SFU's.
type DataChannelHandler interface {
	DataChannel(*webrtc.DataChannel)
}

// Announcement describes one track of a PublishOffer: its m-section and,
// unlike the native `publish_offer`, the ID it will be published under.
type Announcement struct {
	ID        string
	Mid       string
	Kind      string // "audio" or "video"
	Source    string // "microphone", "camera" or "screen"
	Simulcast bool
	Width     int
	Height    int
}

// OpenSession admits user me.User to conference's media through h, after the
// same membership check as the native WebSocket. It returns an error
// wrapping ErrNotParticipant or ErrConferenceEnded when the user may not
// take part. The session has not joined yet: call Join.
func (s *SFU) OpenSession(ctx context.Context, conference string, me Participant, h SessionHandler) (*Session, error) {
	if h == nil {
		return nil, errors.New("media: OpenSession without a handler")
	}
	if err := s.opts.Membership.MayParticipate(ctx, conference, me.User); err != nil {
		return nil, err
	}
	c := s.newClient(conference, me, s.log.With("conference", conference, "user", me.User, "signalling", "session"))
	c.handler = h
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("media: the SFU is shutting down")
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		<-c.closing
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	return &Session{c: c}, nil
}

// deliver turns a native message into the handler's call.
func (c *client) deliver(msg any) {
	h := c.handler
	switch m := msg.(type) {
	case joinedMsg:
		h.Joined(m.You, m.Participants, m.Tracks, m.ICEServers)
	case sdpMsg:
		switch m.Type {
		case "publish_answer":
			h.PublishAnswer(m.SDP)
		case "subscribe_offer":
			h.SubscribeOffer(m.SDP)
		}
	case candidateMsg:
		h.Candidate(m.PC, m.Candidate)
	case Event:
		h.Event(m)
	case errorMsg:
		h.Error(m.Code, m.Message)
	case removedMsg:
		// Closed(reason) follows once the session has stopped.
	default:
		c.log.Error("no session delivery for message", "type", fmt.Sprintf("%T", msg))
	}
}

// Me is the participant as the conference sees it.
func (s *Session) Me() Participant { return s.c.me }

// Join enters the conference; the handler gets Joined.
func (s *Session) Join() { s.c.handle(inbound{Type: "join"}) }

// PublishOffer offers the publish connection with the tracks it carries.
func (s *Session) PublishOffer(sdp string, tracks []Announcement) {
	m := inbound{Type: "publish_offer", SDP: sdp}
	for _, t := range tracks {
		m.Tracks = append(m.Tracks, publishedTrack{
			Mid: t.Mid, Kind: t.Kind, Source: t.Source, Simulcast: t.Simulcast,
			Width: t.Width, Height: t.Height, id: t.ID,
		})
	}
	s.c.handle(m)
}

// SubscribeAnswer answers the last SubscribeOffer.
func (s *Session) SubscribeAnswer(sdp string) {
	s.c.handle(inbound{Type: "subscribe_answer", SDP: sdp})
}

// AddCandidate adds a remote ICE candidate to the "publish" or "subscribe"
// connection.
func (s *Session) AddCandidate(pc string, candidate webrtc.ICECandidateInit) {
	s.c.handle(inbound{Type: "candidate", PC: pc, Candidate: &candidate})
}

// Subscribe asks for a track, at most maxWidth × maxHeight (0: no limit);
// asking again changes the limit.
func (s *Session) Subscribe(track string, maxWidth, maxHeight int) {
	s.c.handle(inbound{Type: "subscribe", Track: track, MaxWidth: maxWidth, MaxHeight: maxHeight})
}

// Unsubscribe stops a subscription.
func (s *Session) Unsubscribe(track string) { s.c.handle(inbound{Type: "unsubscribe", Track: track}) }

// Mute sets whether one of the participant's own tracks is muted.
func (s *Session) Mute(track string, muted bool) {
	s.c.handle(inbound{Type: "mute", Track: track, Muted: muted})
}

// Unpublish withdraws one of the participant's own tracks.
func (s *Session) Unpublish(track string) { s.c.handle(inbound{Type: "unpublish", Track: track}) }

// RestartSubscriber offers the subscribe connection again with an ICE
// restart, replacing an offer still unanswered: after the client's
// signalling was lost for a while, an offer sent meanwhile may never have
// reached it, and its path to the SFU may have changed.
func (s *Session) RestartSubscriber() {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.sub == nil {
		return
	}
	if c.awaitingAnswer {
		if err := c.sub.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			c.log.Warn("roll back subscribe offer", "err", err)
			return
		}
		c.awaitingAnswer, c.renegotiate = false, false
	}
	c.offerSubscriber(&webrtc.OfferOptions{ICERestart: true})
}

// Close leaves the conference; the handler gets Closed("").
func (s *Session) Close() { s.c.stop("") }

// Done is closed once the session has ended.
func (s *Session) Done() <-chan struct{} { return s.c.closing }

// newClient makes the state of one participant's media session in
// conference, for either kind of signalling: the WebSocket (sfu.go) sets
// ws and outbox, a session driven from Go (session.go) its handler.
func (s *SFU) newClient(conference string, me Participant, log *slog.Logger) *client {
	return &client{
		sfu: s, conferenceID: conference, me: me, log: log,
		closing:   make(chan struct{}),
		announced: make(map[string]publishedTrack),
		published: make(map[string]*upTrack),
		retired:   make(map[string]bool),
		subs:      make(map[string]*subscription),
	}
}
