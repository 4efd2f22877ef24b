package store

import (
	"context"
	"fmt"
	"time"
)

// Record is one entry of a conference's log (spec/federation.md §6.3): an
// event and the host's link that places it in the chain.
type Record struct {
	Conference string
	Seq        int64
	// Hash is the hex SHA-256 of the link's payload bytes.
	Hash string
	// Prev is the previous record's Hash, "" for seq 1.
	Prev      string
	EventID   string
	EventType string
	Origin    string
	Sender    string
	// Event is the event's envelope JSON, exactly as received: its
	// signature covers these bytes.
	Event []byte
	// Link is the link's envelope JSON.
	Link      []byte
	CreatedAt time.Time
}

const recordColumns = `conference, seq, hash, prev, event_id, event_type, origin, sender, event, link, created_at`

func scanRecord(r rowScanner) (Record, error) {
	var rec Record
	err := r.Scan(&rec.Conference, &rec.Seq, &rec.Hash, &rec.Prev, &rec.EventID, &rec.EventType,
		&rec.Origin, &rec.Sender, &rec.Event, &rec.Link, millisTime{&rec.CreatedAt})
	rec.Event, rec.Link = nonNil(rec.Event), nonNil(rec.Link)
	return rec, err
}

func (s queries) AppendRecord(ctx context.Context, r Record) error {
	// The primary key (conference, seq) and the unique (conference,
	// event_id) make a second writer of the same seq or event fail with
	// ErrConflict instead of forking the chain.
	_, err := s.q.exec(ctx, `INSERT INTO records (`+recordColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Conference, r.Seq, r.Hash, r.Prev, r.EventID, r.EventType, r.Origin, r.Sender,
		nonNil(r.Event), nonNil(r.Link), millisArg(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: append record %d (event %q) to conference %q: %w", r.Seq, r.EventID, r.Conference, err)
	}
	return nil
}

func (s queries) ListRecords(ctx context.Context, conference string, afterSeq int64, limit int) ([]Record, error) {
	query := `SELECT ` + recordColumns + ` FROM records WHERE conference = ? AND seq > ? ORDER BY seq`
	args := []any{conference, afterSeq}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rs, err := s.q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list records of conference %q after %d: %w", conference, afterSeq, err)
	}
	recs, err := scanAll(rs, scanRecord)
	if err != nil {
		return nil, fmt.Errorf("store: list records of conference %q after %d: %w", conference, afterSeq, err)
	}
	return recs, nil
}

func (s queries) GetRecordByEvent(ctx context.Context, conference, eventID string) (Record, error) {
	rec, err := scanRecord(s.q.queryRow(ctx,
		`SELECT `+recordColumns+` FROM records WHERE conference = ? AND event_id = ?`, conference, eventID))
	if err != nil {
		return Record{}, fmt.Errorf("store: get record of event %q in conference %q: %w", eventID, conference, err)
	}
	return rec, nil
}
