package federation

import (
	"context"
	"errors"
	"net/http"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// Roster is the host's signed statement of who is in a conference and from
// which organisation (spec §7).
type Roster struct {
	Head         Head           `json:"head"`
	Locked       bool           `json:"locked"`
	LobbyOn      bool           `json:"lobby_on"`
	Ended        bool           `json:"ended"`
	Participants []RosterMember `json:"participants"`
	// Lobby lists who waits to be admitted.
	Lobby []RosterMember `json:"lobby"`
}

// Head identifies the last record of a log.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// RosterMember is one participant. Organisation is the one in the join event
// that the participant's home node signed.
type RosterMember struct {
	User         string `json:"user"`
	DisplayName  string `json:"display_name"`
	Organisation string `json:"organisation"`
	// Unit is the organisational unit in the same join event, vouched for
	// by the same signature (spec §7); absent when the join had none.
	Unit string `json:"unit,omitempty"`
	// Guest marks a guest the host let in through a guest link, as the
	// join event says (spec §6.1); absent otherwise.
	Guest     bool   `json:"guest,omitempty"`
	Node      string `json:"node"`
	JoinedSeq int64  `json:"joined_seq"`
	JoinEvent string `json:"join_event"`
}

// LocalRoster is the roster as this node's log or replica holds it.
func (s *Service) LocalRoster(ctx context.Context, id string) (Roster, error) {
	conf, err := s.store.GetConference(ctx, id)
	if err != nil {
		return Roster{}, notFoundOr(err, "unknown conference %s", id)
	}
	parts, err := s.store.ListParticipants(ctx, id)
	if err != nil {
		return Roster{}, err
	}
	r := Roster{
		Head:         Head{Seq: conf.HeadSeq, Hash: conf.HeadHash},
		Locked:       conf.Locked,
		LobbyOn:      conf.Lobby,
		Ended:        conf.Ended,
		Participants: []RosterMember{},
		Lobby:        []RosterMember{},
	}
	for _, p := range parts {
		m := RosterMember{
			User: p.User, DisplayName: p.DisplayName, Organisation: p.Organisation, Unit: p.Unit,
			Guest: p.Guest, Node: p.Node, JoinedSeq: p.JoinedSeq, JoinEvent: p.JoinEvent,
		}
		if p.Waiting {
			r.Lobby = append(r.Lobby, m)
		} else {
			r.Participants = append(r.Participants, m)
		}
	}
	return r, nil
}

func (s *Service) serveRoster(w http.ResponseWriter, r *http.Request) {
	peer, id, ok := s.memberNode(w, r)
	if !ok {
		return
	}
	roster, err := s.LocalRoster(r.Context(), id)
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	s.respond(w, peer, id, TypeRoster, roster)
}

// Roster returns the roster of a conference: this node's own for a
// conference it hosts, otherwise the host's signed statement, verified.
func (s *Service) Roster(ctx context.Context, id string) (Roster, error) {
	conf, err := s.store.GetConference(ctx, id)
	if err != nil {
		return Roster{}, notFoundOr(err, "unknown conference %s", id)
	}
	if conf.Host == s.did {
		return s.LocalRoster(ctx, id)
	}
	var r Roster
	if err := s.fetchSigned(ctx, conf.Host, "/conferences/"+id+"/roster", TypeRoster, id, &r); err != nil {
		return Roster{}, err
	}
	if r.Head.Seq > conf.HeadSeq {
		s.catchUp(ctx, conf)
	}
	return s.verifyRoster(ctx, conf, r)
}

// verifyRoster keeps of a host's roster only the entries this node verified
// in its own replica (spec §7): the same user, home node and join event, in
// the same place (participants or lobby). What it shows of each is what the
// replica holds, signed by the participant's home node, not what the host
// wrote in the roster. Entries it cannot verify are dropped and logged.
func (s *Service) verifyRoster(ctx context.Context, conf store.Conference, r Roster) (Roster, error) {
	parts, err := s.store.ListParticipants(ctx, conf.ID)
	if err != nil {
		return Roster{}, err
	}
	verified := make(map[string]store.Participant, len(parts))
	for _, p := range parts {
		verified[p.User] = p
	}
	keep := func(list []RosterMember, waiting bool) []RosterMember {
		out := []RosterMember{}
		for _, m := range list {
			p, ok := verified[m.User]
			var problem string
			switch {
			case !ok:
				problem = "no verified join in this node's replica"
			case p.Node != m.Node || p.JoinEvent != m.JoinEvent:
				problem = "join event or node differs from this node's replica"
			case p.Waiting != waiting:
				problem = "lobby state differs from this node's replica"
			}
			if problem != "" {
				s.log.Warn("roster entry dropped", "conference", conf.ID, "peer", conf.Host, "user", m.User,
					"node", m.Node, "reason", problem)
				continue
			}
			out = append(out, RosterMember{
				User: p.User, DisplayName: p.DisplayName, Organisation: p.Organisation, Unit: p.Unit,
				Guest: p.Guest, Node: p.Node, JoinedSeq: p.JoinedSeq, JoinEvent: p.JoinEvent,
			})
		}
		return out
	}
	r.Participants = keep(r.Participants, false)
	r.Lobby = keep(r.Lobby, true)
	return r, nil
}

// catchUp fetches and applies the records of a conference hosted elsewhere
// that this node's replica lacks, so that a roster newer than the replica
// can be verified against it. A failure leaves the replica as it was and is
// logged: the roster then shows only what the replica verified.
func (s *Service) catchUp(ctx context.Context, conf store.Conference) {
	recs, err := s.fetchRecords(ctx, conf.Host, conf.ID, conf.HeadSeq)
	if err == nil && len(recs) > 0 {
		err = s.inTxRetry(ctx, func(tx store.Tx) error {
			_, err := s.applyRecords(ctx, tx, conf.Host, conf.ID, recs)
			return err
		})
		if err == nil {
			s.logChanged(conf.ID)
		}
	}
	if err != nil {
		s.log.Warn("replica catch-up failed", "conference", conf.ID, "peer", conf.Host, "err", err)
	}
}

func notFoundOr(err error, format string, args ...any) error {
	if isNotFound(err) {
		return httpapi.NotFound(format, args...)
	}
	return err
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// MayParticipate tells the SFU whether user (a user ref) may send and receive
// media in conference: the conference is known here, has not ended, and the
// user is a participant in this node's log or replica.
func (s *Service) MayParticipate(ctx context.Context, conference, user string) error {
	conf, err := s.store.GetConference(ctx, conference)
	if err != nil {
		return notFoundOr(err, "unknown conference %s", conference)
	}
	if conf.Ended {
		return httpapi.Gone("conference %s has ended", conference)
	}
	parts, err := s.store.ListParticipants(ctx, conference)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if p.User == user && p.Waiting {
			return httpapi.Forbidden("%s is waiting in the lobby of %s", user, conference)
		}
		if p.User == user {
			return nil
		}
	}
	return httpapi.Forbidden("%s is not a participant of %s", user, conference)
}
