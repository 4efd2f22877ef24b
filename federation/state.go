package federation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// confState is a conference as its log defines it. The same rules run at the
// host before it appends an event, at every member node before it accepts a
// record into its replica, and in an audit replaying the log from the start
// (spec §6.1, §6.4, §6.5).
type confState struct {
	conf         store.Conference
	moderators   map[string]bool // user refs
	nodes        map[string]*store.ConferenceNode
	participants map[string]*store.Participant

	// What apply changed, for save.
	joined  map[string]bool
	left    map[string]bool
	touched map[string]bool
}

func newState() *confState {
	return &confState{
		moderators:   map[string]bool{},
		nodes:        map[string]*store.ConferenceNode{},
		participants: map[string]*store.Participant{},
		joined:       map[string]bool{},
		left:         map[string]bool{},
		touched:      map[string]bool{},
	}
}

// exists reports whether the conference has been created.
func (st *confState) exists() bool { return st.conf.HeadSeq > 0 }

// event is a decoded, signature-checked event.
type event struct {
	env     Envelope
	payload Payload
	bytes   []byte // the exact payload bytes its maker signed
	hash    string // hex SHA-256 of bytes
}

// authorize applies the rules of spec §6.1 to ev against the state before it.
func (st *confState) authorize(ev *event) error {
	p := ev.payload
	if p.Type == TypeCreate {
		if st.exists() {
			return httpapi.Conflict("conference %s already exists", p.Conference)
		}
		if p.Origin != p.Destination {
			return httpapi.Forbidden("a conference is created by its host")
		}
		var c CreateContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		if !validText(c.Title, 200) {
			return httpapi.BadRequest("title must be 1 to 200 bytes without surrounding spaces")
		}
		for _, m := range c.Moderators {
			if !ValidLocalpart(m) {
				return httpapi.BadRequest("moderator %q is not a user name", m)
			}
		}
		if _, err := senderUser(p); err != nil {
			return err
		}
		return nil
	}
	if !st.exists() {
		return httpapi.NotFound("unknown conference %s", p.Conference)
	}
	if st.conf.Ended {
		return httpapi.Gone("conference %s has ended", p.Conference)
	}
	if p.Destination != st.conf.Host {
		return httpapi.Forbidden("events of %s are addressed to its host %s", p.Conference, st.conf.Host)
	}
	host := st.conf.Host
	switch p.Type {
	case TypeInvite:
		if err := st.byModerator(p); err != nil {
			return err
		}
		var c InviteContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		if c.Node == host || !isDID(c.Node) {
			return httpapi.BadRequest("cannot invite %q", c.Node)
		}
		if _, ok := st.nodes[c.Node]; ok {
			return httpapi.Conflict("%s is already invited", c.Node)
		}
		for _, u := range c.Users {
			if !ValidLocalpart(u) {
				return httpapi.BadRequest("invited user %q is not a user name", u)
			}
		}
	case TypeAccept, TypeDecline:
		n, ok := st.nodes[p.Origin]
		if !ok {
			return httpapi.Forbidden("%s was not invited to %s", p.Origin, p.Conference)
		}
		if n.State != "invited" {
			return httpapi.Conflict("%s already answered the invitation (%s)", p.Origin, n.State)
		}
		local, err := senderUser(p)
		if err != nil {
			return err
		}
		if len(n.Users) > 0 && !slices.Contains(n.Users, local) {
			return httpapi.Forbidden("%s is not named in the invitation", p.Sender)
		}
		if err := decodeContent(p.Content, &EmptyContent{}); err != nil {
			return err
		}
	case TypeJoin, TypeKnock:
		var c JoinContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		local, err := senderUser(p)
		if err != nil {
			return err
		}
		// A user who already has a place (after a reload or a crash of
		// their client) takes it over: a rejoin keeps them in, or waiting,
		// whatever the lobby and the lock say now (spec §6.1).
		_, rejoin := st.participants[c.User]
		if c.User != p.Sender {
			return httpapi.Forbidden("a node joins only its own users: %s is not the sender", c.User)
		}
		if err := authorizeGuest(p, c, local, host, rejoin); err != nil {
			return err
		}
		// With a lobby, remote participants and the host's Matrix guests
		// knock and wait to be admitted; the host's own users come in
		// directly. Guests of a link always knock (spec §6.1).
		direct := p.Origin == host && !IsMatrixGuest(local) && !c.Guest
		if !direct && st.conf.Lobby && p.Type == TypeJoin && !rejoin {
			return httpapi.Forbidden("conference %s has a lobby: guests and remote participants wait to be admitted", p.Conference)
		}
		if p.Type == TypeKnock && !c.Guest && (direct || !st.conf.Lobby) && !rejoin {
			return httpapi.BadRequest("knock only to the lobby of a conference hosted elsewhere, or as a guest")
		}
		if !validText(c.DisplayName, 100) || !validText(c.Organisation, 200) {
			return httpapi.BadRequest("display_name and organisation must be 1 to 100 and 1 to 200 bytes")
		}
		if c.Unit != "" && !validText(c.Unit, 100) {
			return httpapi.BadRequest("unit must be 1 to 100 bytes when present")
		}
		if p.Origin != host {
			n, ok := st.nodes[p.Origin]
			if !ok || n.State != "accepted" {
				return httpapi.Forbidden("%s has not accepted an invitation to %s", p.Origin, p.Conference)
			}
			if len(n.Users) > 0 && !slices.Contains(n.Users, local) {
				return httpapi.Forbidden("%s is not named in the invitation", p.Sender)
			}
		}
		if st.conf.Locked && !rejoin {
			return httpapi.Forbidden("conference %s is locked", p.Conference)
		}
	case TypeAdmit, TypeDeny:
		if err := st.byModerator(p); err != nil {
			return err
		}
		var c UserContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		if pt, ok := st.participants[c.User]; !ok || !pt.Waiting {
			return httpapi.Conflict("%s is not waiting in the lobby", c.User)
		}
		if p.Type == TypeAdmit && st.conf.Locked {
			return httpapi.Forbidden("conference %s is locked", p.Conference)
		}
	case TypeLobby:
		if err := st.byModerator(p); err != nil {
			return err
		}
		var c LobbyContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		if c.On == st.conf.Lobby {
			return httpapi.Conflict("the lobby of %s is already %s", p.Conference, map[bool]string{true: "on", false: "off"}[c.On])
		}
	case TypeLeave:
		var c UserContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		if c.User != p.Sender {
			return httpapi.Forbidden("a user leaves only for themselves")
		}
		pt, ok := st.participants[c.User]
		if !ok {
			return httpapi.Conflict("%s is not in the conference", c.User)
		}
		if pt.Node != p.Origin {
			return httpapi.Forbidden("a node acts only for its own users")
		}
	case TypeRemove:
		if err := st.byModerator(p); err != nil {
			return err
		}
		var c UserContent
		if err := decodeContent(p.Content, &c); err != nil {
			return err
		}
		if pt, ok := st.participants[c.User]; !ok || pt.Waiting {
			return httpapi.Conflict("%s is not in the conference", c.User)
		}
	case TypeLock, TypeUnlock, TypeEnd:
		if err := st.byModerator(p); err != nil {
			return err
		}
		if err := decodeContent(p.Content, &EmptyContent{}); err != nil {
			return err
		}
		if p.Type == TypeLock && st.conf.Locked || p.Type == TypeUnlock && !st.conf.Locked {
			return httpapi.Conflict("conference %s is already %s", p.Conference, map[bool]string{true: "locked", false: "unlocked"}[st.conf.Locked])
		}
	default:
		return httpapi.BadRequest("%q is not a conference event", p.Type)
	}
	return nil
}

// authorizeGuest applies the guest rules of spec §6.1: a guest of a link is
// joined only by the host, under the reserved localpart prefix, labelled as
// unverified, and waits in the lobby; nobody else may carry the label.
func authorizeGuest(p Payload, c JoinContent, local, host string, rejoin bool) error {
	if !c.Guest {
		if IsLinkGuest(local) {
			return httpapi.Forbidden("localparts starting with %q are kept for the host's guests, whose join says \"guest\": true", GuestPrefix)
		}
		if strings.HasSuffix(c.DisplayName, strings.TrimSpace(GuestLabel)) {
			return httpapi.BadRequest("display_name ending in %q is kept for guests", strings.TrimSpace(GuestLabel))
		}
		return nil
	}
	if p.Origin != host {
		return httpapi.Forbidden("a guest joins only through the host %s", host)
	}
	if !IsLinkGuest(local) {
		return httpapi.Forbidden("a guest's localpart starts with %q", GuestPrefix)
	}
	if !strings.HasSuffix(c.DisplayName, GuestLabel) || len(c.DisplayName) == len(GuestLabel) {
		return httpapi.BadRequest("a guest's display_name is their name followed by %q", GuestLabel)
	}
	if c.Unit != "" {
		return httpapi.BadRequest("a guest has no unit")
	}
	if p.Type == TypeJoin && !rejoin {
		return httpapi.Forbidden("a guest waits in the lobby: knock")
	}
	return nil
}

// byModerator checks that the host made the event for one of its moderators.
func (st *confState) byModerator(p Payload) error {
	if p.Origin != st.conf.Host {
		return httpapi.Forbidden("only the host %s may %s", st.conf.Host, p.Type)
	}
	// The host node itself (its administrators) moderates every conference it hosts.
	if p.Sender != st.conf.Host && !st.moderators[p.Sender] {
		return httpapi.Forbidden("%s is not a moderator of %s", p.Sender, p.Conference)
	}
	return nil
}

// senderUser checks that the sender is a user of the origin (spec §4.2) and
// returns its local part.
func senderUser(p Payload) (string, error) {
	local, did, err := ParseUserRef(p.Sender)
	if err != nil {
		return "", httpapi.Forbidden("sender %q is not a user: %v", p.Sender, err)
	}
	if did != p.Origin {
		return "", httpapi.Forbidden("sender %s is not a user of %s", p.Sender, p.Origin)
	}
	return local, nil
}

// apply records an authorized event as record seq with the given hash.
func (st *confState) apply(ev *event, seq int64, recordHash string) {
	p := ev.payload
	switch p.Type {
	case TypeCreate:
		var c CreateContent
		decodeContent(p.Content, &c) // authorized: it decodes
		st.conf = store.Conference{
			ID: p.Conference, Host: p.Origin, Title: c.Title, CreatedBy: p.Sender,
			CreatedAt: time.UnixMilli(p.Created).UTC(), Lobby: c.Lobby,
		}
		st.moderators[p.Sender] = true
		for _, m := range c.Moderators {
			st.moderators[UserRef(m, p.Origin)] = true
		}
	case TypeInvite:
		var c InviteContent
		decodeContent(p.Content, &c)
		users := c.Users
		if users == nil {
			users = []string{}
		}
		st.nodes[c.Node] = &store.ConferenceNode{Conference: p.Conference, Node: c.Node, State: "invited", Users: users}
		st.touched[c.Node] = true
	case TypeAccept:
		st.nodes[p.Origin].State = "accepted"
		st.touched[p.Origin] = true
	case TypeDecline:
		st.nodes[p.Origin].State = "declined"
		st.touched[p.Origin] = true
	case TypeJoin, TypeKnock:
		var c JoinContent
		decodeContent(p.Content, &c)
		waiting := p.Type == TypeKnock
		if pt, ok := st.participants[c.User]; ok {
			// A rejoin keeps the place as it was: admitted or waiting.
			waiting = pt.Waiting
		}
		st.participants[c.User] = &store.Participant{
			Conference: p.Conference, User: c.User, Node: p.Origin, DisplayName: c.DisplayName,
			Organisation: c.Organisation, Unit: c.Unit, JoinedSeq: seq, JoinEvent: ev.hash, Waiting: waiting,
			Guest: c.Guest,
		}
		st.joined[c.User] = true
		delete(st.left, c.User)
	case TypeAdmit:
		var c UserContent
		decodeContent(p.Content, &c)
		pt := st.participants[c.User]
		pt.Waiting, pt.JoinedSeq = false, seq
		st.joined[c.User] = true
	case TypeDeny:
		var c UserContent
		decodeContent(p.Content, &c)
		st.removeParticipant(c.User)
	case TypeLobby:
		var c LobbyContent
		decodeContent(p.Content, &c)
		st.conf.Lobby = c.On
	case TypeLeave, TypeRemove:
		var c UserContent
		decodeContent(p.Content, &c)
		st.removeParticipant(c.User)
	case TypeLock:
		st.conf.Locked = true
	case TypeUnlock:
		st.conf.Locked = false
	case TypeEnd:
		st.conf.Ended = true
		for u := range st.participants {
			st.removeParticipant(u)
		}
	}
	st.conf.HeadSeq, st.conf.HeadHash = seq, recordHash
}

func (st *confState) removeParticipant(user string) {
	delete(st.participants, user)
	if st.joined[user] {
		delete(st.joined, user)
	} else {
		st.left[user] = true
	}
}

// loadState reads a conference's state from the store; a conference the
// store does not know yields an empty state.
func loadState(ctx context.Context, tx store.Tx, id string) (*confState, error) {
	st := newState()
	conf, err := tx.GetConference(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	st.conf = conf
	first, err := tx.ListRecords(ctx, id, 0, 1)
	if err != nil {
		return nil, err
	}
	if len(first) == 1 {
		ev, err := storedEvent(first[0])
		if err != nil {
			return nil, fmt.Errorf("conference %s: stored create event: %w", id, err)
		}
		var c CreateContent
		if err := decodeContent(ev.payload.Content, &c); err != nil {
			return nil, err
		}
		st.moderators[ev.payload.Sender] = true
		for _, m := range c.Moderators {
			st.moderators[UserRef(m, ev.payload.Origin)] = true
		}
	}
	nodes, err := tx.ListConferenceNodes(ctx, id)
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		st.nodes[nodes[i].Node] = &nodes[i]
	}
	parts, err := tx.ListParticipants(ctx, id)
	if err != nil {
		return nil, err
	}
	for i := range parts {
		st.participants[parts[i].User] = &parts[i]
	}
	return st, nil
}

// save writes what apply changed.
func (st *confState) save(ctx context.Context, tx store.Tx) error {
	if err := tx.PutConference(ctx, st.conf); err != nil {
		return err
	}
	for did := range st.touched {
		if err := tx.PutConferenceNode(ctx, *st.nodes[did]); err != nil {
			return err
		}
	}
	for u := range st.joined {
		if err := tx.PutParticipant(ctx, *st.participants[u]); err != nil {
			return err
		}
	}
	for u := range st.left {
		if err := tx.DeleteParticipant(ctx, st.conf.ID, u); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	st.joined, st.left, st.touched = map[string]bool{}, map[string]bool{}, map[string]bool{}
	return nil
}

// storedEvent decodes the event of a stored record, which was verified when
// it was stored.
func storedEvent(r store.Record) (*event, error) {
	env, err := DecodeEnvelope(r.Event)
	if err != nil {
		return nil, err
	}
	b, err := env.PayloadBytes()
	if err != nil {
		return nil, err
	}
	p, err := DecodePayload(b)
	if err != nil {
		return nil, err
	}
	return &event{env: env, payload: p, bytes: b, hash: HashHex(b)}, nil
}

func isDID(s string) bool { return len(s) > 8 && s[:4] == "did:" }
