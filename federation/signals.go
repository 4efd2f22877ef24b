package federation

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// Signals are what participants say to each other during a call — chat, a
// raised hand, a reaction, their mute state, a moderator's request to mute —
// across organisations (spec §5.1). They are not part of the conference's
// log: they travel from the author's node to the host, which relays them to
// every other node taking part, through the outbox with a short expiry.
const (
	TypeSignal = "conference.signal"
	TypeRelay  = "conference.relay"
)

// Signal kinds.
const (
	SignalChat        = "chat"
	SignalChatEdit    = "chat.edit"
	SignalChatRedact  = "chat.redact"
	SignalHand        = "hand"
	SignalReaction    = "reaction"
	SignalMute        = "mute"
	SignalMuteRequest = "mute.request"
)

// signalTTL bounds how long a signal may wait for delivery: a chat line is
// still worth delivering after a short outage, a raised hand an hour later
// is not.
const signalTTL = 2 * time.Minute

// SignalContent is the content of a conference.signal.
type SignalContent struct {
	Kind string `json:"kind"`
	// Text is the chat text, or the reaction (one emoji or a short word).
	Text string `json:"text,omitempty"`
	// Ref is the chat signal edited or redacted, or the user asked to mute.
	Ref string `json:"ref,omitempty"`
	// On is the state of a hand (raised) or of a microphone (muted).
	On bool `json:"on,omitempty"`
	// As is the Matrix user a chat line bridged from Matrix is written
	// under; the node itself is the signal's sender (spec §5.1).
	As string `json:"as,omitempty"`
}

// RelayContent is the content of a conference.relay: the author's node's
// signed signal, unchanged.
type RelayContent struct {
	Signal Envelope `json:"signal"`
}

// Signal is a verified signal as the node hands it to its local clients and
// bridge.
type Signal struct {
	Conference   string    `json:"conference"`
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	User         string    `json:"user"`
	Text         string    `json:"text,omitempty"`
	Ref          string    `json:"ref,omitempty"`
	On           bool      `json:"on,omitempty"`
	At           time.Time `json:"at"`
	Organisation string    `json:"organisation,omitempty"`
	// As is set on chat bridged from Matrix: the Matrix user who wrote it.
	// User is then the DID of the node that bridged it.
	As string `json:"as,omitempty"`
}

func (c SignalContent) validate() error {
	switch c.Kind {
	case SignalChat:
		if !validChat(c.Text) {
			return httpapi.BadRequest("chat text must be 1 to 4000 bytes")
		}
	case SignalChatEdit:
		if !validChat(c.Text) || c.Ref == "" {
			return httpapi.BadRequest("chat.edit needs ref and text")
		}
	case SignalChatRedact:
		if c.Ref == "" {
			return httpapi.BadRequest("chat.redact needs ref")
		}
	case SignalReaction:
		if c.Text == "" || len(c.Text) > 32 {
			return httpapi.BadRequest("a reaction is 1 to 32 bytes")
		}
	case SignalHand, SignalMute:
	case SignalMuteRequest:
		if _, _, err := ParseUserRef(c.Ref); err != nil {
			return httpapi.BadRequest("mute.request needs the user to mute in ref")
		}
	default:
		return httpapi.BadRequest("unknown signal kind %q", c.Kind)
	}
	if c.As == "" {
		return nil
	}
	switch c.Kind {
	case SignalChat, SignalChatEdit, SignalChatRedact:
	default:
		return httpapi.BadRequest("as is only allowed on chat, chat.edit and chat.redact, not on %s", c.Kind)
	}
	if !validMatrixUser(c.As) {
		return httpapi.BadRequest("as must be a Matrix user id of 1 to 255 bytes")
	}
	return nil
}

func validChat(s string) bool { return s != "" && len(s) <= 4000 }

// validMatrixUser accepts "@localpart:server" of at most 255 bytes, the
// limit the Matrix specification sets on user ids.
func validMatrixUser(s string) bool {
	if len(s) > 255 || !strings.HasPrefix(s, "@") {
		return false
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" || server == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// SendSignal sends a signal of u in a conference u takes part in. It is
// handed to this node's own clients at once. Chat bridged from Matrix (c.As
// set) is sent by the node itself: u is then the zero localuser.User.
func (s *Service) SendSignal(ctx context.Context, u localuser.User, conference string, c SignalContent) (Signal, error) {
	if err := c.validate(); err != nil {
		return Signal{}, err
	}
	if c.As != "" && u != (localuser.User{}) {
		return Signal{}, httpapi.Forbidden("only the node itself sends chat as a Matrix user, not %s", u.ID)
	}
	conf, err := s.store.GetConference(ctx, conference)
	if err != nil {
		return Signal{}, notFoundOr(err, "unknown conference %s", conference)
	}
	if conf.Ended {
		return Signal{}, httpapi.Gone("conference %s has ended", conference)
	}
	raw, _ := json.Marshal(c)
	now := s.now()
	p := Payload{
		ID: NewMessageID(), Type: TypeSignal, Origin: s.did, Destination: conf.Host,
		Sender: s.userRef(u), Conference: conference, Created: now.UnixMilli(),
		Expires: now.Add(signalTTL).UnixMilli(), Content: raw,
	}
	env, _, err := s.seal(p)
	if err != nil {
		return Signal{}, err
	}
	if err := s.authorizeSignal(ctx, conf, p, c); err != nil {
		return Signal{}, err
	}
	err = s.store.InTx(ctx, func(tx store.Tx) error {
		if err := s.rememberChat(ctx, tx, p, c); err != nil {
			return err
		}
		if conf.Host == s.did {
			return s.relay(ctx, tx, conf, env, p.Origin)
		}
		return s.enqueue(ctx, tx, conf.Host, env, p)
	})
	if err != nil {
		return Signal{}, err
	}
	s.notifyOutbox()
	sig := s.toSignal(ctx, p, c)
	s.deliverSignal(sig)
	return sig, nil
}

// authorizeSignal checks a signal against the conference as this node knows
// it: the author takes part; a mute request comes from a moderator of the
// host; chat bridged from Matrix comes from a node taking part.
func (s *Service) authorizeSignal(ctx context.Context, conf store.Conference, p Payload, c SignalContent) error {
	switch {
	case c.As != "":
		if err := s.authorizeBridged(ctx, conf, p); err != nil {
			return err
		}
	case c.Kind == SignalMuteRequest:
		st, err := loadState(ctx, s.store, conf.ID)
		if err != nil {
			return err
		}
		return st.byModerator(p)
	default:
		if _, err := senderUser(p); err != nil {
			return err
		}
		if err := s.MayParticipate(ctx, conf.ID, p.Sender); err != nil {
			return err
		}
	}
	return s.authorizeChatChange(ctx, conf.ID, p, c)
}

// authorizeChatChange applies the authorship rule of spec §5.2: a chat.edit
// or chat.redact names a chat line of the conference that this node has
// seen, and comes from that line's author: the same sender and the same
// "as". Nobody else, moderators included, changes someone's line.
func (s *Service) authorizeChatChange(ctx context.Context, conference string, p Payload, c SignalContent) error {
	if c.Kind != SignalChatEdit && c.Kind != SignalChatRedact {
		return nil
	}
	line, err := s.store.GetChatLine(ctx, conference, c.Ref)
	if isNotFound(err) {
		s.log.Warn("chat change refused: unknown line", "conference", conference, "peer", p.Origin,
			"user", chatAuthor(p.Sender, c.As), "kind", c.Kind, "ref", c.Ref)
		return httpapi.Forbidden("%s of %s: no chat line %s in conference %s", c.Kind, chatAuthor(p.Sender, c.As), c.Ref, conference)
	}
	if err != nil {
		return err
	}
	if line.Sender != p.Sender || line.As != c.As {
		s.log.Warn("chat change refused: not the line's author", "conference", conference, "peer", p.Origin,
			"user", chatAuthor(p.Sender, c.As), "kind", c.Kind, "ref", c.Ref, "author", chatAuthor(line.Sender, line.As))
		return httpapi.Forbidden("%s of chat line %s by %s: only its author %s may change it",
			c.Kind, c.Ref, chatAuthor(p.Sender, c.As), chatAuthor(line.Sender, line.As))
	}
	return nil
}

// rememberChat records the author of a chat line this node relays or
// delivers, for authorizeChatChange. A line id is its first author's.
func (s *Service) rememberChat(ctx context.Context, tx store.Tx, p Payload, c SignalContent) error {
	if c.Kind != SignalChat {
		return nil
	}
	err := tx.PutChatLine(ctx, store.ChatLine{
		Conference: p.Conference, ID: p.ID, Sender: p.Sender, As: c.As, CreatedAt: unixMilli(p.Created),
	})
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	line, gerr := tx.GetChatLine(ctx, p.Conference, p.ID)
	if gerr == nil && line.Sender == p.Sender && line.As == c.As {
		return nil
	}
	return httpapi.Conflict("chat line %s of %s is already %s's", p.ID, p.Conference, chatAuthor(line.Sender, line.As))
}

// chatAuthor names the author of a chat signal in messages and logs: the
// sender, or for a line bridged from Matrix the Matrix user and its node.
func chatAuthor(sender, as string) string {
	if as == "" {
		return sender
	}
	return as + " via " + sender
}

// authorizeBridged checks a signal carrying "as" (spec §5.1): its sender is
// its origin node, and that node hosts the conference or accepted its
// invitation.
func (s *Service) authorizeBridged(ctx context.Context, conf store.Conference, p Payload) error {
	if p.Sender != p.Origin {
		return httpapi.Forbidden("a signal with as must be sent by its node %s, not %s", p.Origin, p.Sender)
	}
	if conf.Host == p.Origin {
		return nil
	}
	nodes, err := s.store.ListConferenceNodes(ctx, conf.ID)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.Node == p.Origin && n.State == store.NodeAccepted {
			return nil
		}
	}
	return httpapi.Forbidden("%s does not take part in %s", p.Origin, conf.ID)
}

// relay queues a signal for every node taking part, except its author's.
func (s *Service) relay(ctx context.Context, tx store.Tx, conf store.Conference, signal Envelope, author string) error {
	nodes, err := tx.ListConferenceNodes(ctx, conf.ID)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if n.State != store.NodeAccepted || n.Node == author {
			continue
		}
		raw, _ := json.Marshal(RelayContent{Signal: signal})
		now := s.now()
		p := Payload{
			ID: NewMessageID(), Type: TypeRelay, Origin: s.did, Destination: n.Node, Sender: s.did,
			Conference: conf.ID, Created: now.UnixMilli(), Expires: now.Add(signalTTL).UnixMilli(), Content: raw,
		}
		env, _, err := s.seal(p)
		if err != nil {
			return err
		}
		if err := s.enqueue(ctx, tx, n.Node, env, p); err != nil {
			return err
		}
	}
	return nil
}

// receiveSignal handles a conference.signal sent to this node as host.
func (s *Service) receiveSignal(ctx context.Context, env Envelope, p Payload, hash string, receipt *ReceiptContent) error {
	if err := checkSignalLifetime(p); err != nil {
		return err
	}
	var c SignalContent
	if err := decodeContent(p.Content, &c); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	conf, err := s.store.GetConference(ctx, p.Conference)
	if err != nil || conf.Host != s.did {
		return httpapi.NotFound("no conference %s hosted here", p.Conference)
	}
	if conf.Ended {
		return httpapi.Gone("conference %s has ended", p.Conference)
	}
	if c.Kind == SignalMuteRequest {
		return httpapi.Forbidden("only the host asks participants to mute")
	}
	if err := s.authorizeSignal(ctx, conf, p, c); err != nil {
		return err
	}
	dup := false
	err = s.store.InTx(ctx, func(tx store.Tx) error {
		var err error
		if dup, err = tx.RecordInbound(ctx, p.Origin, p.ID, hash, s.now()); err != nil || dup {
			return err
		}
		if err := s.rememberChat(ctx, tx, p, c); err != nil {
			return err
		}
		return s.relay(ctx, tx, conf, env, p.Origin)
	})
	receipt.Status = statusOf(dup)
	if err == nil && !dup {
		s.notifyOutbox()
		s.deliverSignal(s.toSignal(ctx, p, c))
	}
	return err
}

// receiveRelay handles a signal the host relays to this node.
func (s *Service) receiveRelay(ctx context.Context, p Payload, hash string, receipt *ReceiptContent) error {
	var rc RelayContent
	if err := decodeContent(p.Content, &rc); err != nil {
		return err
	}
	conf, err := s.store.GetConference(ctx, p.Conference)
	if err != nil || conf.Host != p.Origin {
		return httpapi.Forbidden("%s does not host %s here", p.Origin, p.Conference)
	}
	if conf.Ended {
		return httpapi.Gone("conference %s has ended", p.Conference)
	}
	inner, _, err := Open(ctx, rc.Signal, s.keyOf)
	if err != nil {
		return err
	}
	if err := checkSignalLifetime(inner); err != nil {
		return err
	}
	if inner.Type != TypeSignal || inner.Conference != p.Conference || inner.Destination != conf.Host {
		return httpapi.Forbidden("relayed message is not a signal of %s", p.Conference)
	}
	if inner.Expires <= s.now().UnixMilli() {
		return httpapi.BadRequest("relayed signal expired")
	}
	var c SignalContent
	if err := decodeContent(inner.Content, &c); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	switch {
	case c.As != "":
		if err := s.authorizeBridged(ctx, conf, inner); err != nil {
			return err
		}
	case c.Kind == SignalMuteRequest:
		if inner.Origin != conf.Host {
			return httpapi.Forbidden("only the host asks participants to mute")
		}
	default:
		if _, err := senderUser(inner); err != nil {
			return err
		}
	}
	// Member nodes hold the host to the authorship rule too (spec §5.2).
	if err := s.authorizeChatChange(ctx, conf.ID, inner, c); err != nil {
		return err
	}
	dup := false
	err = s.store.InTx(ctx, func(tx store.Tx) error {
		var err error
		if dup, err = tx.RecordInbound(ctx, p.Origin, p.ID, hash, s.now()); err != nil || dup {
			return err
		}
		return s.rememberChat(ctx, tx, inner, c)
	})
	if err != nil {
		return err
	}
	receipt.Status = statusOf(dup)
	if !dup {
		s.deliverSignal(s.toSignal(ctx, inner, c))
	}
	return nil
}

// checkSignalLifetime refuses a signal meant to live longer than signals
// may (spec §5.1): a raised hand or a chat line replayed an hour later is
// not what its author said.
func checkSignalLifetime(p Payload) error {
	if p.Expires-p.Created > signalTTL.Milliseconds() {
		return httpapi.BadRequest("signal %s expires %d ms after its creation, over %s", p.ID, p.Expires-p.Created, signalTTL)
	}
	return nil
}

func (s *Service) toSignal(ctx context.Context, p Payload, c SignalContent) Signal {
	sig := Signal{
		Conference: p.Conference, ID: p.ID, Kind: c.Kind, User: p.Sender, Text: c.Text, Ref: c.Ref,
		On: c.On, At: unixMilli(p.Created), As: c.As,
	}
	// The author's node vouches for the signal; its institution is named
	// as this node names it (spec §2.1). This node's own participants
	// keep the label it signed for them (a Matrix guest is marked so).
	sig.Organisation = s.organisationOf(ctx, s.store, p.Origin)
	if c.As != "" || p.Origin != s.did {
		return sig
	}
	if parts, err := s.store.ListParticipants(ctx, p.Conference); err == nil {
		for _, pt := range parts {
			if pt.User == p.Sender {
				sig.Organisation = pt.Organisation
			}
		}
	}
	return sig
}

func (s *Service) deliverSignal(sig Signal) {
	if s.signals != nil {
		s.signals.ReceiveSignal(sig)
	}
}
