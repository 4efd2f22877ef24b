package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// inboundAttempts bounds RecordInbound's retry when the entry it collided
// with is pruned before it can be read.
const inboundAttempts = 2

func (s queries) RecordInbound(ctx context.Context, origin, messageID, payloadHash string, at time.Time) (bool, error) {
	if origin == "" || messageID == "" {
		return false, fmt.Errorf("store: record inbound message %q from %q: origin and message id must be set", messageID, origin)
	}
	for range inboundAttempts {
		n, err := s.q.exec(ctx, `
INSERT INTO inbox (origin, message_id, payload_hash, received_at) VALUES (?, ?, ?, ?)
ON CONFLICT (origin, message_id) DO NOTHING`,
			origin, messageID, payloadHash, at.UnixMilli())
		if err != nil {
			return false, fmt.Errorf("store: record inbound message %q from %q: %w", messageID, origin, err)
		}
		if n == 1 {
			return false, nil
		}
		var stored string
		err = s.q.queryRow(ctx, `SELECT payload_hash FROM inbox WHERE origin = ? AND message_id = ?`,
			origin, messageID).Scan(&stored)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("store: record inbound message %q from %q: %w", messageID, origin, err)
		}
		if stored != payloadHash {
			// spec/federation.md §6.2: the same id with other content is
			// refused, never applied.
			return false, fmt.Errorf("store: inbound message %q from %q was already received with other content: %w",
				messageID, origin, ErrConflict)
		}
		return true, nil
	}
	return false, fmt.Errorf("store: record inbound message %q from %q: entry vanished while being recorded", messageID, origin)
}

func (s queries) PruneInbound(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.q.exec(ctx, `DELETE FROM inbox WHERE received_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune inbox before %s: %w", before.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
