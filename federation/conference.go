package federation

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/internal/localuser"
	"github.com/entente-org/entente/store"
)

// userRef is the sender of u's actions; the zero localuser.User is the node
// itself, acting through its administrators.
func (s *Service) userRef(u localuser.User) string {
	if u.ID == "" {
		return s.did
	}
	return UserRef(u.ID, s.did)
}

// NewConferenceID makes a conference id of spec §4.2.
func NewConferenceID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 24)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "c-" + string(b)
}

// CreateConference makes a conference hosted here, created by u.
func (s *Service) CreateConference(ctx context.Context, u localuser.User, title string, moderators []string) (store.Conference, error) {
	return s.Create(ctx, u, CreateContent{Title: title, Moderators: moderators})
}

// Create makes a conference hosted here as the create event's content
// describes it (spec §6.1); with Lobby, participants of other organisations
// wait to be admitted.
func (s *Service) Create(ctx context.Context, u localuser.User, c CreateContent) (store.Conference, error) {
	c.Title = strings.TrimSpace(c.Title)
	if c.Moderators == nil {
		c.Moderators = []string{}
	}
	id := NewConferenceID()
	if _, err := s.hostEvent(ctx, TypeCreate, u, id, c); err != nil {
		return store.Conference{}, err
	}
	return s.store.GetConference(ctx, id)
}

// Invite invites a trusted node, or only the named users of it, to a
// conference hosted here.
func (s *Service) Invite(ctx context.Context, u localuser.User, conference, node string, users []string) (int64, error) {
	if _, err := s.store.GetPeer(ctx, node); errors.Is(err, store.ErrNotFound) {
		return 0, httpapi.Forbidden("%s is not on this node's trust list", node)
	} else if err != nil {
		return 0, err
	}
	if users == nil {
		users = []string{}
	}
	return s.hostEvent(ctx, TypeInvite, u, conference, InviteContent{Node: node, Users: users})
}

// Moderate makes a moderation event of the host: remove, admit or deny
// (with target), lock, unlock or end.
func (s *Service) Moderate(ctx context.Context, u localuser.User, conference, typ, target string) (int64, error) {
	switch typ {
	case TypeRemove, TypeAdmit, TypeDeny:
		return s.hostEvent(ctx, typ, u, conference, UserContent{User: target})
	case TypeLock, TypeUnlock, TypeEnd:
		return s.hostEvent(ctx, typ, u, conference, EmptyContent{})
	}
	return 0, httpapi.BadRequest("%q is not a moderation action", typ)
}

// SetLobby turns the lobby of a conference hosted here on or off.
func (s *Service) SetLobby(ctx context.Context, u localuser.User, conference string, on bool) (int64, error) {
	return s.hostEvent(ctx, TypeLobby, u, conference, LobbyContent{On: on})
}

// hostEvent makes an event of this node for a conference it hosts and
// appends it.
func (s *Service) hostEvent(ctx context.Context, typ string, u localuser.User, conference string, content any) (int64, error) {
	p, err := s.newPayload(typ, s.did, s.userRef(u), conference, content)
	if err != nil {
		return 0, err
	}
	ev, err := s.sealEvent(p)
	if err != nil {
		return 0, err
	}
	if typ != TypeCreate {
		conf, err := s.store.GetConference(ctx, conference)
		if errors.Is(err, store.ErrNotFound) {
			return 0, httpapi.NotFound("unknown conference %s", conference)
		} else if err != nil {
			return 0, err
		}
		if conf.Host != s.did {
			return 0, httpapi.Forbidden("conference %s is hosted by %s", conference, conf.Host)
		}
	}
	var seq int64
	err = s.inTxRetry(ctx, func(tx store.Tx) error {
		var err error
		seq, _, err = s.appendEvent(ctx, tx, ev)
		return err
	})
	if err != nil {
		return 0, err
	}
	s.notifyOutbox()
	s.logChanged(conference)
	return seq, nil
}

// Answer accepts or declines, for u, an invitation of this node. Like every
// action on a remote conference, it returns the record's seq once the host
// applied it, or the queued event's id if the host has not answered yet.
func (s *Service) Answer(ctx context.Context, u localuser.User, conference string, accept bool) (int64, string, error) {
	conf, err := s.memberConference(ctx, conference)
	if err != nil {
		return 0, "", err
	}
	n, err := s.store.GetConferenceNode(ctx, conference, s.did)
	if errors.Is(err, store.ErrNotFound) {
		return 0, "", httpapi.Forbidden("this node was not invited to %s", conference)
	} else if err != nil {
		return 0, "", err
	}
	if n.State != "invited" {
		return 0, "", httpapi.Conflict("the invitation was already answered (%s)", n.State)
	}
	if len(n.Users) > 0 && !slices.Contains(n.Users, u.ID) {
		return 0, "", httpapi.Forbidden("the invitation names other users of this node")
	}
	typ := TypeDecline
	if accept {
		typ = TypeAccept
	}
	return s.memberEvent(ctx, conf, typ, u, EmptyContent{})
}

// Join makes u a participant. On the host it takes effect at once; on a
// member node the join event is sent to the host, and the returned seq is 0.
func (s *Service) Join(ctx context.Context, u localuser.User, conference string) (int64, string, error) {
	org := s.name
	if u.MatrixGuest {
		// A Matrix guest speaks for their homeserver, not for this
		// organisation (spec/client-api.md §6). Their display name is
		// their Matrix ID, "@local:server".
		_, server, _ := strings.Cut(u.DisplayName, ":")
		org = server + " (Matrix)"
	}
	content := JoinContent{User: s.userRef(u), DisplayName: u.DisplayName, Organisation: org}
	switch {
	case u.GuestOf != "":
		// A guest of a link is a guest of this organisation, labelled so
		// by the host's signature (spec §6.1).
		if u.GuestOf != conference {
			return 0, "", httpapi.Forbidden("a guest may join only conference %s", u.GuestOf)
		}
		content.DisplayName = u.ShownName()
		content.Guest = true
	case !u.MatrixGuest:
		content.Unit = u.Unit
	}
	return s.userEvent(ctx, TypeJoin, u, conference, content)
}

// Leave removes u from the conference.
func (s *Service) Leave(ctx context.Context, u localuser.User, conference string) (int64, string, error) {
	return s.userEvent(ctx, TypeLeave, u, conference, UserContent{User: s.userRef(u)})
}

func (s *Service) userEvent(ctx context.Context, typ string, u localuser.User, conference string, content any) (int64, string, error) {
	conf, err := s.store.GetConference(ctx, conference)
	if errors.Is(err, store.ErrNotFound) {
		return 0, "", httpapi.NotFound("unknown conference %s", conference)
	} else if err != nil {
		return 0, "", err
	}
	if conf.Host == s.did {
		if typ == TypeJoin && (conf.Lobby && u.MatrixGuest || u.GuestOf != "") {
			// A Matrix guest waits in the lobby when it is on, a guest of
			// a link always (spec §6.1).
			typ = TypeKnock
		}
		seq, err := s.hostEvent(ctx, typ, u, conference, content)
		return seq, "", err
	}
	if conf.Ended {
		return 0, "", httpapi.Gone("conference %s has ended", conference)
	}
	if u.GuestOf != "" {
		return 0, "", httpapi.Forbidden("a guest joins only through the host of %s", conference)
	}
	if typ == TypeJoin && conf.Lobby {
		typ = TypeKnock // wait in the host's lobby to be admitted
	}
	return s.memberEvent(ctx, conf, typ, u, content)
}

// memberConference finds a conference hosted elsewhere that this node knows.
func (s *Service) memberConference(ctx context.Context, id string) (store.Conference, error) {
	conf, err := s.store.GetConference(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return conf, httpapi.NotFound("unknown conference %s", id)
	}
	if err != nil {
		return conf, err
	}
	if conf.Host == s.did {
		return conf, httpapi.BadRequest("conference %s is hosted here", id)
	}
	if conf.Ended {
		return conf, httpapi.Gone("conference %s has ended", id)
	}
	return conf, nil
}

// memberEvent makes an event of this node for a conference hosted elsewhere
// and queues it for the host. It then waits briefly for the host's answer, so
// that the user learns at once whether the host applied or refused it; if the
// host does not answer in time, the event stays queued and is delivered later
// (the result then has seq 0 and the event id). The replica changes when the
// host sends the record back (spec §6.4).
func (s *Service) memberEvent(ctx context.Context, conf store.Conference, typ string, u localuser.User, content any) (int64, string, error) {
	p, err := s.newPayload(typ, conf.Host, s.userRef(u), conf.ID, content)
	if err != nil {
		return 0, "", err
	}
	ev, err := s.sealEvent(p)
	if err != nil {
		return 0, "", err
	}
	err = s.store.InTx(ctx, func(tx store.Tx) error {
		return s.enqueue(ctx, tx, conf.Host, ev.env, p)
	})
	if err != nil {
		return 0, "", err
	}
	s.notifyOutbox()
	return s.awaitHost(ctx, conf.Host, p.ID)
}

// memberWait is how long an action on a remote conference waits for the
// host's answer before it is reported as queued.
const memberWait = 3 * time.Second

// awaitHost waits for the outcome of a queued message to the host.
func (s *Service) awaitHost(ctx context.Context, host, messageID string) (int64, string, error) {
	deadline := time.Now().Add(memberWait)
	for {
		m, err := s.store.GetOutbox(ctx, host, messageID)
		if err != nil {
			return 0, "", err
		}
		switch m.State {
		case store.OutboxDelivered:
			p, err := s.openAnswer(ctx, host, m.Receipt, TypeReceipt)
			if err != nil {
				return 0, "", err
			}
			var rc ReceiptContent
			if err := decodeContent(p.Content, &rc); err != nil {
				return 0, "", err
			}
			return rc.Seq, "", nil
		case store.OutboxFailed, store.OutboxExpired:
			return 0, "", hostRefusal(m.LastError)
		}
		if time.Now().After(deadline) {
			return 0, messageID, nil
		}
		select {
		case <-ctx.Done():
			return 0, messageID, nil
		case <-time.After(15 * time.Millisecond):
		}
	}
}

// sealEvent signs an event payload made here.
func (s *Service) sealEvent(p Payload) (*event, error) {
	env, b, err := s.seal(p)
	if err != nil {
		return nil, err
	}
	return &event{env: env, payload: p, bytes: b, hash: HashHex(b)}, nil
}

// appendEvent appends an authorized event to a conference hosted here and
// queues the new record for every member node (spec §6.2–6.4). It returns the
// record's seq, and duplicate=true when the same event was already in the log.
func (s *Service) appendEvent(ctx context.Context, tx store.Tx, ev *event) (int64, bool, error) {
	p := ev.payload
	if prev, err := tx.GetRecordByEvent(ctx, p.Conference, p.ID); err == nil {
		old, err := storedEvent(prev)
		if err != nil {
			return 0, false, err
		}
		if old.hash != ev.hash {
			return 0, false, httpapi.Conflict("event %s is already in the log with other content", p.ID)
		} else if old.payload.Origin != p.Origin {
			return 0, false, httpapi.Conflict("event id %s is taken", p.ID)
		}
		return prev.Seq, true, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, false, err
	}
	st, err := loadState(ctx, tx, p.Conference)
	if err != nil {
		return 0, false, err
	}
	if st.exists() && st.conf.Host != s.did {
		return 0, false, httpapi.Forbidden("conference %s is not hosted here", p.Conference)
	}
	if err := st.authorize(ev); err != nil {
		s.log.Warn("event refused", "conference", p.Conference, "type", p.Type, "origin", p.Origin, "err", err)
		return 0, false, err
	}
	s.checkJoinLabel(ctx, tx, ev)
	seq := st.conf.HeadSeq + 1
	link := LinkPayload{
		Conference: p.Conference, Seq: seq, Prev: st.conf.HeadHash, Event: ev.hash,
		Host: s.did, Created: s.now().UnixMilli(),
	}
	linkBytes, err := json.Marshal(link)
	if err != nil {
		return 0, false, err
	}
	linkEnv, err := Seal(s.did, s.keys, linkBytes)
	if err != nil {
		return 0, false, err
	}
	rec, err := newRecord(ev, linkEnv, HashHex(linkBytes), seq, st.conf.HeadHash, s.now())
	if err != nil {
		return 0, false, err
	}
	// The conference row comes first: records refer to it.
	st.apply(ev, seq, rec.Hash)
	if err := st.save(ctx, tx); err != nil {
		return 0, false, err
	}
	if err := tx.AppendRecord(ctx, rec); err != nil {
		return 0, false, err
	}
	if err := s.fanOut(ctx, tx, st, ev); err != nil {
		return 0, false, err
	}
	return seq, false, nil
}

// fanOut queues, for each member node, the records it has not been sent.
func (s *Service) fanOut(ctx context.Context, tx store.Tx, st *confState, ev *event) error {
	nodes, err := tx.ListConferenceNodes(ctx, st.conf.ID)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		// A node that declined gets the log up to its decline, no further.
		if n.State == "declined" && !(ev.payload.Type == TypeDecline && ev.payload.Origin == n.Node) {
			continue
		}
		for n.LastSentSeq < st.conf.HeadSeq {
			recs, err := tx.ListRecords(ctx, st.conf.ID, n.LastSentSeq, maxRecordsPerMessage)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return fmt.Errorf("conference %s: records after %d missing", st.conf.ID, n.LastSentSeq)
			}
			content := LogContent{}
			for _, r := range recs {
				rj, err := recordJSON(r)
				if err != nil {
					return err
				}
				content.Records = append(content.Records, rj)
			}
			p, err := s.newPayload(TypeLog, n.Node, s.did, st.conf.ID, content)
			if err != nil {
				return err
			}
			env, _, err := s.seal(p)
			if err != nil {
				return err
			}
			if err := s.enqueue(ctx, tx, n.Node, env, p); err != nil {
				return err
			}
			n.LastSentSeq = recs[len(recs)-1].Seq
		}
		if err := tx.PutConferenceNode(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

func newRecord(ev *event, link Envelope, hash string, seq int64, prev string, at time.Time) (store.Record, error) {
	evJSON, err := json.Marshal(ev.env)
	if err != nil {
		return store.Record{}, err
	}
	linkJSON, err := json.Marshal(link)
	if err != nil {
		return store.Record{}, err
	}
	p := ev.payload
	return store.Record{
		Conference: p.Conference, Seq: seq, Hash: hash, Prev: prev,
		EventID: p.ID, EventType: p.Type, Origin: p.Origin, Sender: p.Sender,
		Event: evJSON, Link: linkJSON, CreatedAt: at.UTC(),
	}, nil
}

func recordJSON(r store.Record) (RecordJSON, error) {
	var rj RecordJSON
	if err := json.Unmarshal(r.Event, &rj.Event); err != nil {
		return rj, fmt.Errorf("stored record %d: %w", r.Seq, err)
	}
	if err := json.Unmarshal(r.Link, &rj.Link); err != nil {
		return rj, fmt.Errorf("stored record %d: %w", r.Seq, err)
	}
	return rj, nil
}

// inTxRetry runs fn in a transaction, again when a concurrent append (from
// another request or another process on the same database) took the seq.
func (s *Service) inTxRetry(ctx context.Context, fn func(tx store.Tx) error) error {
	var err error
	for range 5 {
		err = s.store.InTx(ctx, fn)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return err
}
