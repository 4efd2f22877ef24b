package federation

import (
	"context"
	"net/url"
	"strings"

	"github.com/entente-org/entente/store"
)

// The organisation a user sees beside a participant is always named by this
// node: its own name for its own users, and for a peer's users the name this
// node's operator gave the peer in the trust list. The name a peer gives its
// own institution (in its join events, on a trunk) is only its label, shown
// beside ours, never in its place: a trusted peer could otherwise pass its
// users off as another institution's (spec/federation.md §2.1).

// organisationOf is the name this node shows for the institution of node:
// its own name, its trust list's name for a peer, or for a node it does not
// trust (a third organisation of a conference hosted elsewhere) the host
// name of its did:web, which is all this node knows of it.
func (s *Service) organisationOf(ctx context.Context, tx store.Tx, node string) string {
	if node == s.did {
		return s.name
	}
	if peer, err := tx.GetPeer(ctx, node); err == nil && peer.Name != "" {
		return peer.Name
	}
	return didHost(node)
}

// didHost is the host of a did:web, with its port ("did:web:a.example%3A8443"
// is "a.example:8443"), or the DID itself when it is not a did:web.
func didHost(did string) string {
	rest, ok := strings.CutPrefix(did, "did:web:")
	if !ok {
		return did
	}
	host, _, _ := strings.Cut(rest, ":")
	if h, err := url.PathUnescape(host); err == nil {
		return h
	}
	return host
}

// OrganisationOf is the name this node shows for the institution of user (a
// user ref), whose node labels it label. A label naming another
// organisation than the user's node is logged. The SFU asks this for the
// participants that come over a trunk.
func (s *Service) OrganisationOf(ctx context.Context, user, label string) string {
	_, node, err := ParseUserRef(user)
	if err != nil {
		return label
	}
	s.checkLabel(ctx, s.store, node, user, label)
	if node == s.did {
		return s.name
	}
	return s.organisationOf(ctx, s.store, node)
}

// checkLabel logs a label with which node names a user's institution when
// it is this node's own name or the trust list's name of another peer: an
// attempt to pass the user off as another organisation's. The label is not
// refused: what a join says is part of the log every node must agree on,
// and what users see comes from organisationOf anyway.
func (s *Service) checkLabel(ctx context.Context, tx store.Tx, node, user, label string) {
	if node == s.did || label == "" {
		return
	}
	claimed := ""
	if sameName(label, s.name) {
		claimed = s.did
	} else if peers, err := tx.ListPeers(ctx); err == nil {
		for _, p := range peers {
			if p.DID != node && sameName(label, p.Name) {
				claimed = p.DID
				break
			}
		}
	}
	if claimed != "" {
		s.log.Warn("organisation label claims another organisation", "peer", node, "user", user,
			"label", label, "claimed", claimed, "shown", s.organisationOf(ctx, tx, node))
	}
}

// sameName compares institution names as a reader would: ignoring case
// and runs of spaces.
func sameName(a, b string) bool {
	return strings.EqualFold(strings.Join(strings.Fields(a), " "), strings.Join(strings.Fields(b), " "))
}

// checkJoinLabel logs a join or knock whose organisation label claims
// another organisation, once, when the event enters this node's log or
// replica.
func (s *Service) checkJoinLabel(ctx context.Context, tx store.Tx, ev *event) {
	if ev.payload.Type != TypeJoin && ev.payload.Type != TypeKnock {
		return
	}
	var c JoinContent
	if decodeContent(ev.payload.Content, &c) != nil {
		return
	}
	s.checkLabel(ctx, tx, ev.payload.Origin, c.User, c.Organisation)
}

// ParticipantView is a participant as the client API shows it
// (client-api §2): organisation is the name this node gives the
// participant's institution; organisation_label, when it differs, the name
// the participant's home node signed in the join.
type ParticipantView struct {
	RosterMember
	OrganisationLabel string `json:"organisation_label,omitempty"`
}

// RosterView is a roster as the client API shows it.
type RosterView struct {
	Head         Head              `json:"head"`
	Locked       bool              `json:"locked"`
	LobbyOn      bool              `json:"lobby_on"`
	Ended        bool              `json:"ended"`
	Participants []ParticipantView `json:"participants"`
	Lobby        []ParticipantView `json:"lobby"`
}

// participantViews names each member's organisation as this node does.
func (s *Service) participantViews(ctx context.Context, members []RosterMember) []ParticipantView {
	out := make([]ParticipantView, 0, len(members))
	for _, m := range members {
		v := ParticipantView{RosterMember: m}
		// This node's own joins carry the label it signed itself (which
		// also says when a user is a Matrix guest).
		if m.Node != s.did {
			v.Organisation = s.organisationOf(ctx, s.store, m.Node)
			if v.Organisation != m.Organisation {
				v.OrganisationLabel = m.Organisation
			}
		}
		out = append(out, v)
	}
	return out
}

func (s *Service) rosterView(ctx context.Context, r Roster) RosterView {
	return RosterView{
		Head: r.Head, Locked: r.Locked, LobbyOn: r.LobbyOn, Ended: r.Ended,
		Participants: s.participantViews(ctx, r.Participants), Lobby: s.participantViews(ctx, r.Lobby),
	}
}
