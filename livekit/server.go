package livekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	lk "github.com/livekit/protocol/livekit"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	"github.com/entente-org/entente/media"
)

// MinProtocol is the oldest LiveKit signalling protocol version served;
// current clients speak 17 (livekit-client 2.23, server-sdk-go v2.19). Older clients are refused with a message saying so
// (spec/client-api.md §8.1).
const MinProtocol = 15

// ServerVersion is the LiveKit server version announced in JoinResponse:
// the one whose protocol this package follows.
const ServerVersion = "1.9.0"

// Options configure a Server.
type Options struct {
	APIKey    string
	APISecret string
	SFU       *media.SFU
	// UserOf maps a token's identity to the user the conference knows; an
	// error refuses the connection (403).
	UserOf func(identity string) (string, error)
	// Organisation is the name of this node's institution, carried in each
	// local participant's attributes.
	Organisation string
	// Chat, when set, sends a LiveKit participant's chat line into the
	// conference as native chat and returns the line's id
	// (spec/client-api.md §8.6); the node then hands every chat signal of
	// the conference to DeliverChat. Without it chat travels as data.
	Chat func(ctx context.Context, conference string, line ChatLine) (string, error)
	// ResumeWindow is how long a session whose connection dropped waits
	// for its client to resume (conn.go); 0 means DefaultResumeWindow.
	ResumeWindow time.Duration
	// CallIdentities names participants whose token gave no identity of
	// their own (spec/client-api.md §8.4). Nil: their user reference.
	CallIdentities CallIdentities
	Logger         *slog.Logger
}

// CallIdentities gives the LiveKit identity a participant is known by in a
// conference when it is not its user reference: the node names the
// participants that have a ghost in a conference's Matrix room after the
// ghost's call membership, so that Element Call pairs them (§8.8).
type CallIdentities interface {
	// CallIdentity returns user's identity in conference, or "".
	CallIdentity(conference, user string) string
}

// named is m with the identity LiveKit clients know it by in conference.
func (s *Server) named(conference string, m media.Participant) media.Participant {
	if m.LiveKitIdentity == "" && s.opts.CallIdentities != nil {
		m.LiveKitIdentity = s.opts.CallIdentities.CallIdentity(conference, m.User)
	}
	return m
}

// Server serves LiveKit's client signalling for one node.
type Server struct {
	opts     Options
	log      *slog.Logger
	rooms    rooms
	sessions sessions
	quality  qualities
}

func (s *Server) resumeWindow() time.Duration {
	if s.opts.ResumeWindow > 0 {
		return s.opts.ResumeWindow
	}
	return DefaultResumeWindow
}

// New makes a Server.
func New(o Options) (*Server, error) {
	if o.APIKey == "" || len(o.APISecret) < 32 {
		return nil, errors.New("livekit: an API key and a secret of at least 32 characters are required")
	}
	if o.SFU == nil || o.UserOf == nil {
		return nil, errors.New("livekit: Options.SFU and Options.UserOf are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: o, log: log.With("component", "livekit")}, nil
}

// Mint makes an access token for identity in conference with this server's
// credentials.
func (s *Server) Mint(conference, identity, name string, ttl time.Duration) (string, error) {
	return Mint(s.opts.APIKey, s.opts.APISecret, conference, identity, name,
		map[string]string{AttrOrganisation: s.opts.Organisation}, ttl)
}

// MintFor makes an access token for user in conference under another
// LiveKit identity, with this server's credentials (see the function
// MintFor).
func (s *Server) MintFor(conference, identity, user, name string, ttl time.Duration) (string, error) {
	return MintFor(s.opts.APIKey, s.opts.APISecret, conference, identity, user, name, s.opts.Organisation, ttl)
}

// APIKey is the key tokens are issued under.
func (s *Server) APIKey() string { return s.opts.APIKey }

// admission is a checked connection request.
type admission struct {
	grant Grant
	user  string
	// identity is the LiveKit identity others see when it is not user
	// (Grant.User is set); "" otherwise.
	identity string
	protocol int
	auto     bool
}

// admit checks what every connection must carry before the WebSocket is
// opened: a protocol version served and a valid token (spec/client-api.md
// §8.1, §8.2).
func (s *Server) admit(r *http.Request) (admission, error) {
	q := r.URL.Query()
	p := q.Get("protocol")
	if p == "" {
		return admission{}, refuse(http.StatusBadRequest, "protocol parameter missing: this server speaks LiveKit signalling protocol %d or newer", MinProtocol)
	}
	proto, err := strconv.Atoi(p)
	if err != nil {
		return admission{}, refuse(http.StatusBadRequest, "protocol parameter %q is not a number", p)
	}
	if proto < MinProtocol {
		return admission{}, refuse(http.StatusBadRequest, "LiveKit signalling protocol %d is too old: this server speaks protocol %d or newer; update the client", proto, MinProtocol)
	}
	if q.Get("join_request") != "" {
		return admission{}, refuse(http.StatusBadRequest, "single peer connection mode (join_request) is not supported: connect with a publisher and a subscriber connection")
	}
	g, err := s.verify(tokenOf(r))
	if err != nil {
		return admission{}, err
	}
	who, identity := g.Identity, ""
	if g.User != "" {
		who, identity = g.User, g.Identity
	}
	user, err := s.opts.UserOf(who)
	if err != nil {
		return admission{}, refuse(http.StatusForbidden, "identity %q: %v", who, err)
	}
	return admission{grant: g, user: user, identity: identity, protocol: proto, auto: q.Get("auto_subscribe") != "0"}, nil
}

// RoomServicePath prefixes the RoomService server API's calls.
const RoomServicePath = "/twirp/livekit.RoomService/"

// Handler serves GET /rtc, GET /rtc/validate, GET /rtc/v1(/validate) (a
// refusal) and POST RoomServicePath….
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /rtc", s.serveRTC)
	mux.HandleFunc("GET /rtc/validate", s.serveValidate)
	mux.HandleFunc("GET /rtc/v1", serveNoV1)
	mux.HandleFunc("GET /rtc/v1/validate", serveNoV1)
	mux.Handle("POST "+RoomServicePath, s.roomServiceHandler())
	return mux
}

func writeRefusal(w http.ResponseWriter, err error) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(statusOf(err))
	fmt.Fprintln(w, err.Error())
}

// serveNoV1 answers the single-peer-connection signalling path with 404,
// on which livekit-client (which tries it first) falls back to /rtc.
func serveNoV1(w http.ResponseWriter, r *http.Request) {
	writeRefusal(w, refuse(http.StatusNotFound, "single peer connection signalling (/rtc/v1) is not supported: connect at /rtc"))
}

// serveValidate answers what /rtc would refuse, as LiveKit clients ask after
// a failed connection to show the reason.
func (s *Server) serveValidate(w http.ResponseWriter, r *http.Request) {
	a, err := s.admit(r)
	if err == nil {
		err = s.mayParticipate(r.Context(), a)
	}
	if err != nil {
		writeRefusal(w, err)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "success")
}

// mayParticipate asks the SFU's membership through a session opened and
// closed at once.
func (s *Server) mayParticipate(ctx context.Context, a admission) error {
	sess, err := s.opts.SFU.OpenSession(ctx, a.grant.Conference, media.Participant{User: a.user}, discard{})
	if err != nil {
		return membershipRefusal(a.grant.Conference, err)
	}
	sess.Close()
	return nil
}

func membershipRefusal(conference string, err error) error {
	switch {
	case errors.Is(err, media.ErrConferenceEnded):
		return refuse(http.StatusGone, "conference %s has ended", conference)
	case errors.Is(err, media.ErrNotParticipant):
		return refuse(http.StatusForbidden, "not a participant of conference %s: join it (and pass its lobby) first", conference)
	}
	return refuse(http.StatusServiceUnavailable, "membership of conference %s cannot be checked now", conference)
}

func (s *Server) serveRTC(w http.ResponseWriter, r *http.Request) {
	a, err := s.admit(r)
	if err != nil {
		s.log.Debug("connection refused", "err", err)
		writeRefusal(w, err)
		return
	}
	log := s.log.With("conference", a.grant.Conference, "user", a.user)
	if r.URL.Query().Get("reconnect") == "1" {
		s.resume(w, r, a, log)
		return
	}
	name := a.grant.Name
	if name == "" {
		name = a.grant.Identity
	}
	p := newParticipant(s, a, log)
	sess, err := s.opts.SFU.OpenSession(r.Context(), a.grant.Conference,
		media.Participant{User: a.user, DisplayName: name, Organisation: s.opts.Organisation, LiveKitIdentity: a.identity}, p)
	if err != nil {
		if statusOf(membershipRefusal("", err)) == http.StatusServiceUnavailable {
			log.Warn("membership check failed", "err", err)
		}
		writeRefusal(w, membershipRefusal(a.grant.Conference, err))
		return
	}
	ws, err := websocket.Accept(w, r, anyOrigin)
	if err != nil {
		sess.Close()
		log.Debug("websocket upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(hardFrameLimit)
	p.start(sess)
	p.serve(ws, nil)
}

// resume gives a client's session back to its new connection when the
// session still waits for it (spec/client-api.md §8.1 `reconnect`), and
// otherwise asks the client to rejoin.
func (s *Server) resume(w http.ResponseWriter, r *http.Request, a admission, log *slog.Logger) {
	if err := s.mayParticipate(r.Context(), a); err != nil {
		writeRefusal(w, err)
		return
	}
	p := s.sessions.find(a.grant.Conference, a.user)
	if sid := r.URL.Query().Get("sid"); p != nil && sid != "" && sid != p.me.User {
		p = nil
	}
	if p == nil {
		s.askRejoin(w, r, log)
		return
	}
	ws, err := websocket.Accept(w, r, anyOrigin)
	if err != nil {
		log.Debug("websocket upgrade failed", "err", err)
		return
	}
	ws.SetReadLimit(hardFrameLimit)
	p.resume(ws)
}

// askRejoin answers a resume of a session that is no more with a
// LeaveRequest asking for a full reconnection (spec/client-api.md §8.1).
func (s *Server) askRejoin(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	ws, err := websocket.Accept(w, r, anyOrigin)
	if err != nil {
		log.Debug("websocket upgrade failed", "err", err)
		return
	}
	defer ws.CloseNow()
	data, _ := proto.Marshal(&lk.SignalResponse{Message: &lk.SignalResponse_Leave{Leave: &lk.LeaveRequest{
		CanReconnect: true, Action: lk.LeaveRequest_RECONNECT, Reason: lk.DisconnectReason_STATE_MISMATCH,
	}}})
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageBinary, data); err == nil {
		_ = ws.Close(websocket.StatusNormalClosure, "rejoin")
	}
	log.Info("resume refused; the client was asked to rejoin")
}

// anyOrigin accepts WebSockets from pages of any origin: a LiveKit front
// end is usually served from another host than the node, and a LiveKit
// connection carries its credential in the URL, never in a cookie, so a
// page of another origin gains nothing it was not given.
var anyOrigin = &websocket.AcceptOptions{InsecureSkipVerify: true}

// discard is the handler of a session opened only to check membership.
type discard struct{}

func (discard) Joined(media.Participant, []media.Participant, []media.TrackInfo, []webrtc.ICEServer) {
}
func (discard) PublishAnswer(string)                      {}
func (discard) SubscribeOffer(string)                     {}
func (discard) Candidate(string, webrtc.ICECandidateInit) {}
func (discard) Event(media.Event)                         {}
func (discard) Error(string, string)                      {}
func (discard) Closed(string)                             {}
