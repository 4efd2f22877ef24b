package federation

import (
	"context"
	"fmt"
	"time"
)

// AuditEntry is one record of a verified log, for display.
type AuditEntry struct {
	Seq     int64     `json:"seq"`
	Hash    string    `json:"hash"`
	Prev    string    `json:"prev"`
	Type    string    `json:"type"`
	Origin  string    `json:"origin"`
	Sender  string    `json:"sender"`
	Content string    `json:"content"`
	At      time.Time `json:"at"`
}

// AuditReport is the outcome of verifying a conference's whole log.
type AuditReport struct {
	Conference string       `json:"conference"`
	Host       string       `json:"host"`
	Entries    []AuditEntry `json:"entries"`
	Valid      bool         `json:"valid"`
	Problem    string       `json:"problem,omitempty"`
}

// Audit verifies a conference's log as this node holds it, from the first
// record to the head (spec §6.5): every link and event signature against the
// keys the nodes publish, the hash chain, each link's event hash, and the
// authorization rules replayed in order. It stops at the first problem.
func (s *Service) Audit(ctx context.Context, id string) (AuditReport, error) {
	conf, err := s.store.GetConference(ctx, id)
	if err != nil {
		return AuditReport{}, notFoundOr(err, "unknown conference %s", id)
	}
	rep := AuditReport{Conference: id, Host: conf.Host, Entries: []AuditEntry{}}
	recs, err := s.store.ListRecords(ctx, id, 0, 0)
	if err != nil {
		return rep, err
	}
	st := newState()
	for _, r := range recs {
		rj, err := recordJSON(r)
		if err != nil {
			rep.Problem = err.Error()
			return rep, nil
		}
		v, err := s.verifyRecords(ctx, conf.Host, id, []RecordJSON{rj})
		if err != nil {
			rep.Problem = fmt.Sprintf("record %d: %v", r.Seq, err)
			return rep, nil
		}
		vr := v[0]
		switch {
		case vr.link.Seq != st.conf.HeadSeq+1 || vr.link.Prev != st.conf.HeadHash:
			rep.Problem = fmt.Sprintf("record %d: breaks the chain after %d", vr.link.Seq, st.conf.HeadSeq)
		case vr.linkHash != r.Hash:
			rep.Problem = fmt.Sprintf("record %d: stored hash differs from its link", r.Seq)
		}
		if rep.Problem == "" {
			if err := st.authorize(vr.ev); err != nil {
				rep.Problem = fmt.Sprintf("record %d: %v", r.Seq, err)
			}
		}
		if rep.Problem != "" {
			return rep, nil
		}
		st.apply(vr.ev, vr.link.Seq, vr.linkHash)
		p := vr.ev.payload
		rep.Entries = append(rep.Entries, AuditEntry{
			Seq: vr.link.Seq, Hash: vr.linkHash, Prev: vr.link.Prev, Type: p.Type, Origin: p.Origin,
			Sender: p.Sender, Content: string(p.Content), At: unixMilli(vr.link.Created),
		})
	}
	if st.conf.HeadSeq != conf.HeadSeq || st.conf.HeadHash != conf.HeadHash {
		rep.Problem = fmt.Sprintf("the log ends at %d but the conference's head is %d", st.conf.HeadSeq, conf.HeadSeq)
		return rep, nil
	}
	rep.Valid = true
	return rep, nil
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
