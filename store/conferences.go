package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Conference is a conference this node hosts or keeps a replica of
// (spec/federation.md §6). Its head is that of the records stored for it.
type Conference struct {
	ID string
	// Host is the host node's DID.
	Host  string
	Title string
	// CreatedBy is a user reference, "alice@did:web:…".
	CreatedBy string
	CreatedAt time.Time
	Locked    bool
	// Lobby is true when remote participants must wait to be admitted.
	Lobby bool
	Ended bool
	// HeadSeq is the seq of the last record, 0 when there is none.
	HeadSeq int64
	// HeadHash is the hash of the last record, "" when there is none.
	HeadHash string
}

// Conference node states (spec/federation.md §6.1).
const (
	NodeInvited  = "invited"
	NodeAccepted = "accepted"
	NodeDeclined = "declined"
)

// ConferenceNode is a node taking part in a conference, as the host and the
// replicas see it.
type ConferenceNode struct {
	Conference string
	// Node is the node's DID.
	Node string
	// State is NodeInvited, NodeAccepted or NodeDeclined.
	State string
	// Users are the local parts the invitation names; empty means the
	// whole organisation.
	Users []string
	// LastSentSeq is, at the host only, the seq of the last record queued
	// for that node.
	LastSentSeq int64
}

// Participant is a user in a conference (spec/federation.md §7).
type Participant struct {
	Conference string
	// User is a user reference, "bob@did:web:…".
	User         string
	Node         string
	DisplayName  string
	Organisation string
	// Unit is the organisational unit the join event carries, if any.
	Unit      string
	JoinedSeq int64
	// JoinEvent is the hex SHA-256 of the join event's payload (of the knock
	// event for someone admitted from the lobby).
	JoinEvent string
	// Waiting is true while the user waits in the lobby to be admitted.
	Waiting bool
	// Guest is true for a guest of the host who came through a guest link
	// (spec/federation.md §6.1).
	Guest bool
}

const (
	conferenceColumns     = `id, host, title, created_by, created_at, locked, lobby, ended, head_seq, head_hash`
	conferenceNodeColumns = `conference, node, state, users, last_sent_seq`
	participantColumns    = `conference, user_ref, node, display_name, organisation, joined_seq, join_event, waiting, unit, guest`
)

func scanConference(r rowScanner) (Conference, error) {
	var c Conference
	err := r.Scan(&c.ID, &c.Host, &c.Title, &c.CreatedBy, millisTime{&c.CreatedAt},
		&c.Locked, &c.Lobby, &c.Ended, &c.HeadSeq, &c.HeadHash)
	return c, err
}

func (s queries) PutConference(ctx context.Context, c Conference) error {
	if c.ID == "" {
		return errors.New("store: put conference: ID is empty")
	}
	_, err := s.q.exec(ctx, `
INSERT INTO conferences (`+conferenceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET host = excluded.host, title = excluded.title,
	created_by = excluded.created_by, created_at = excluded.created_at, locked = excluded.locked,
	lobby = excluded.lobby, ended = excluded.ended, head_seq = excluded.head_seq, head_hash = excluded.head_hash`,
		c.ID, c.Host, c.Title, c.CreatedBy, millisArg(c.CreatedAt), c.Locked, c.Lobby, c.Ended, c.HeadSeq, c.HeadHash)
	if err != nil {
		return fmt.Errorf("store: put conference %q: %w", c.ID, err)
	}
	return nil
}

func (s queries) GetConference(ctx context.Context, id string) (Conference, error) {
	c, err := scanConference(s.q.queryRow(ctx, `SELECT `+conferenceColumns+` FROM conferences WHERE id = ?`, id))
	if err != nil {
		return Conference{}, fmt.Errorf("store: get conference %q: %w", id, err)
	}
	return c, nil
}

func (s queries) ListConferences(ctx context.Context) ([]Conference, error) {
	// COALESCE puts conferences without a creation time last on both
	// backends, which disagree on where NULLs sort.
	rs, err := s.q.query(ctx, `SELECT `+conferenceColumns+` FROM conferences
ORDER BY COALESCE(created_at, 0) DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list conferences: %w", err)
	}
	cs, err := scanAll(rs, scanConference)
	if err != nil {
		return nil, fmt.Errorf("store: list conferences: %w", err)
	}
	return cs, nil
}

// HostedCount is what CountHostedConferences counts.
type HostedCount struct {
	// Live is the conferences not ended that member has not declined.
	Live int
	// Invited is those of them that member has not answered.
	Invited int
}

func (s queries) CountHostedConferences(ctx context.Context, host, member string) (HostedCount, error) {
	var n HostedCount
	err := s.q.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN n.state = 'invited' THEN 1 ELSE 0 END), 0)
FROM conferences c JOIN conference_nodes n ON n.conference = c.id AND n.node = ?
WHERE c.host = ? AND NOT c.ended AND n.state <> 'declined'`, member, host).Scan(&n.Live, &n.Invited)
	if err != nil {
		return HostedCount{}, fmt.Errorf("store: count conferences of %q with %q: %w", host, member, err)
	}
	return n, nil
}

func scanConferenceNode(r rowScanner) (ConferenceNode, error) {
	var (
		n     ConferenceNode
		users string
	)
	if err := r.Scan(&n.Conference, &n.Node, &n.State, &users, &n.LastSentSeq); err != nil {
		return ConferenceNode{}, err
	}
	if err := json.Unmarshal([]byte(users), &n.Users); err != nil {
		return ConferenceNode{}, fmt.Errorf("users of node %q: %w", n.Node, err)
	}
	if len(n.Users) == 0 {
		n.Users = nil
	}
	return n, nil
}

func (s queries) PutConferenceNode(ctx context.Context, n ConferenceNode) error {
	switch n.State {
	case NodeInvited, NodeAccepted, NodeDeclined:
	default:
		return fmt.Errorf("store: put node %q of conference %q: unknown state %q", n.Node, n.Conference, n.State)
	}
	users := n.Users
	if users == nil {
		users = []string{}
	}
	usersJSON, err := json.Marshal(users)
	if err != nil {
		return fmt.Errorf("store: put node %q of conference %q: users: %w", n.Node, n.Conference, err)
	}
	_, err = s.q.exec(ctx, `
INSERT INTO conference_nodes (`+conferenceNodeColumns+`) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (conference, node) DO UPDATE SET state = excluded.state, users = excluded.users,
	last_sent_seq = excluded.last_sent_seq`,
		n.Conference, n.Node, n.State, string(usersJSON), n.LastSentSeq)
	if err != nil {
		return fmt.Errorf("store: put node %q of conference %q: %w", n.Node, n.Conference, err)
	}
	return nil
}

func (s queries) GetConferenceNode(ctx context.Context, conference, node string) (ConferenceNode, error) {
	n, err := scanConferenceNode(s.q.queryRow(ctx,
		`SELECT `+conferenceNodeColumns+` FROM conference_nodes WHERE conference = ? AND node = ?`, conference, node))
	if err != nil {
		return ConferenceNode{}, fmt.Errorf("store: get node %q of conference %q: %w", node, conference, err)
	}
	return n, nil
}

func (s queries) ListConferenceNodes(ctx context.Context, conference string) ([]ConferenceNode, error) {
	rs, err := s.q.query(ctx,
		`SELECT `+conferenceNodeColumns+` FROM conference_nodes WHERE conference = ? ORDER BY node`, conference)
	if err != nil {
		return nil, fmt.Errorf("store: list nodes of conference %q: %w", conference, err)
	}
	ns, err := scanAll(rs, scanConferenceNode)
	if err != nil {
		return nil, fmt.Errorf("store: list nodes of conference %q: %w", conference, err)
	}
	return ns, nil
}

func scanParticipant(r rowScanner) (Participant, error) {
	var p Participant
	err := r.Scan(&p.Conference, &p.User, &p.Node, &p.DisplayName, &p.Organisation, &p.JoinedSeq, &p.JoinEvent, &p.Waiting, &p.Unit, &p.Guest)
	return p, err
}

func (s queries) PutParticipant(ctx context.Context, p Participant) error {
	if p.User == "" {
		return fmt.Errorf("store: put participant of conference %q: user is empty", p.Conference)
	}
	_, err := s.q.exec(ctx, `
INSERT INTO participants (`+participantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (conference, user_ref) DO UPDATE SET node = excluded.node, display_name = excluded.display_name,
	organisation = excluded.organisation, joined_seq = excluded.joined_seq, join_event = excluded.join_event,
	waiting = excluded.waiting, unit = excluded.unit, guest = excluded.guest`,
		p.Conference, p.User, p.Node, p.DisplayName, p.Organisation, p.JoinedSeq, p.JoinEvent, p.Waiting, p.Unit, p.Guest)
	if err != nil {
		return fmt.Errorf("store: put participant %q of conference %q: %w", p.User, p.Conference, err)
	}
	return nil
}

func (s queries) DeleteParticipant(ctx context.Context, conference, user string) error {
	err := affectedOne(s.q.exec(ctx, `DELETE FROM participants WHERE conference = ? AND user_ref = ?`, conference, user))
	if err != nil {
		return fmt.Errorf("store: delete participant %q of conference %q: %w", user, conference, err)
	}
	return nil
}

func (s queries) ListParticipants(ctx context.Context, conference string) ([]Participant, error) {
	rs, err := s.q.query(ctx, `SELECT `+participantColumns+` FROM participants WHERE conference = ?
ORDER BY joined_seq, user_ref`, conference)
	if err != nil {
		return nil, fmt.Errorf("store: list participants of conference %q: %w", conference, err)
	}
	ps, err := scanAll(rs, scanParticipant)
	if err != nil {
		return nil, fmt.Errorf("store: list participants of conference %q: %w", conference, err)
	}
	return ps, nil
}
