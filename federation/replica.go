package federation

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// verifiedRecord is a record whose signatures and hashes have been checked;
// what remains is to check it against the replica (spec §6.4).
type verifiedRecord struct {
	ev       *event
	link     LinkPayload
	linkEnv  Envelope
	linkHash string
}

// verifyRecords checks the signatures and hashes of records sent by host for
// conference, in order. It needs the network (to resolve keys) and so runs
// before any transaction.
func (s *Service) verifyRecords(ctx context.Context, host, conference string, records []RecordJSON) ([]verifiedRecord, error) {
	out := make([]verifiedRecord, 0, len(records))
	for i, r := range records {
		if r.Link.KeyDID() != host {
			return nil, httpapi.Unauthorized("record %d: link signed by %s, not the host %s", i, r.Link.KeyDID(), host)
		}
		linkBytes, err := s.openBytes(ctx, r.Link)
		if err != nil {
			return nil, fmt.Errorf("record %d link: %w", i, err)
		}
		link, err := decodeLink(linkBytes)
		if err != nil {
			return nil, err
		}
		if link.Conference != conference || link.Host != host {
			return nil, httpapi.Forbidden("record %d belongs to %s hosted by %s", i, link.Conference, link.Host)
		}
		p, b, err := Open(ctx, r.Event, s.keyOf)
		if err != nil {
			return nil, fmt.Errorf("record %d event: %w", link.Seq, err)
		}
		if HashHex(b) != link.Event {
			return nil, httpapi.Unauthorized("record %d: the event is not the one the link names", link.Seq)
		}
		if p.Conference != conference || p.Destination != host || !isEventType(p.Type) {
			return nil, httpapi.Forbidden("record %d: event %s is not an event of %s", link.Seq, p.ID, conference)
		}
		out = append(out, verifiedRecord{
			ev:   &event{env: r.Event, payload: p, bytes: b, hash: link.Event},
			link: link, linkEnv: r.Link, linkHash: HashHex(linkBytes),
		})
	}
	return out, nil
}

// openBytes verifies an envelope's signature and returns its payload bytes,
// without decoding them as a message payload.
func (s *Service) openBytes(ctx context.Context, env Envelope) ([]byte, error) {
	key, err := s.keyOf(ctx, env.Sig.Key)
	if err != nil {
		return nil, err
	}
	if err := env.Verify(key); err != nil {
		return nil, err
	}
	return env.PayloadBytes()
}

// applyRecords adds verified records from host to this node's replica, in
// order, checking the chain and the rules (spec §6.4). Records it already
// has are skipped when identical. It returns the new head seq.
func (s *Service) applyRecords(ctx context.Context, tx store.Tx, host, conference string, recs []verifiedRecord) (int64, error) {
	st, err := loadState(ctx, tx, conference)
	if err != nil {
		return 0, err
	}
	known := st.exists()
	if known && st.conf.Host != host {
		return 0, httpapi.Forbidden("conference %s is hosted by %s, not %s", conference, st.conf.Host, host)
	}
	if known && st.conf.Host == s.did {
		return 0, httpapi.Forbidden("conference %s is hosted here", conference)
	}
	if !known {
		if err := s.mayStartReplica(ctx, tx, host, recs); err != nil {
			return 0, err
		}
	}
	for _, r := range recs {
		if r.link.Seq <= st.conf.HeadSeq {
			have, err := tx.ListRecords(ctx, conference, r.link.Seq-1, 1)
			if err != nil {
				return 0, err
			}
			if len(have) == 1 && have[0].Hash == r.linkHash {
				continue // already applied: delivery is idempotent
			}
			return 0, s.refuse(conference, host, httpapi.Conflict("record %d differs from the one this node has", r.link.Seq))
		}
		if r.link.Seq != st.conf.HeadSeq+1 || r.link.Prev != st.conf.HeadHash {
			return 0, s.refuse(conference, host, httpapi.Conflict("record %d does not follow the head %d of this node's replica (wrong seq or prev hash)", r.link.Seq, st.conf.HeadSeq))
		}
		if r.ev.payload.Type == TypeCreate && r.ev.payload.Origin != host {
			return 0, s.refuse(conference, host, httpapi.Forbidden("conference created by %s, not its host %s", r.ev.payload.Origin, host))
		}
		if err := st.authorize(r.ev); err != nil {
			return 0, s.refuse(conference, host, err)
		}
		s.checkJoinLabel(ctx, tx, r.ev)
		rec, err := newRecord(r.ev, r.linkEnv, r.linkHash, r.link.Seq, r.link.Prev, unixMilli(r.link.Created))
		if err != nil {
			return 0, err
		}
		// The conference row comes first: records refer to it.
		st.apply(r.ev, r.link.Seq, r.linkHash)
		if err := st.save(ctx, tx); err != nil {
			return 0, err
		}
		if err := tx.AppendRecord(ctx, rec); err != nil {
			return 0, err
		}
	}
	return st.conf.HeadSeq, nil
}

// mayStartReplica decides whether this node takes a log for a conference it
// does not know yet: only from a host it lets invite, only from seq 1, and
// only a log that invites this node (spec §6.4).
func (s *Service) mayStartReplica(ctx context.Context, tx store.Tx, host string, recs []verifiedRecord) error {
	peer, err := tx.GetPeer(ctx, host)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.Forbidden("%s is not on the trust list", host)
	} else if err != nil {
		return err
	}
	if !peer.MayInvite {
		return httpapi.Forbidden("%s may not invite this node's users (trust list)", host)
	}
	if len(recs) == 0 || recs[0].link.Seq != 1 || recs[0].ev.payload.Type != TypeCreate {
		return httpapi.Conflict("a log for an unknown conference must start with its creation")
	}
	invited := slices.ContainsFunc(recs, func(r verifiedRecord) bool {
		if r.ev.payload.Type != TypeInvite {
			return false
		}
		var c InviteContent
		return decodeContent(r.ev.payload.Content, &c) == nil && c.Node == s.did
	})
	if !invited {
		return httpapi.Forbidden("the log does not invite this node")
	}
	return s.checkQuotas(ctx, tx, host, recs[0].link.Conference)
}

func (s *Service) refuse(conference, host string, err error) error {
	s.log.Warn("record refused", "conference", conference, "peer", host, "err", err)
	return err
}
