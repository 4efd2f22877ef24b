package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Outbox message states (spec/federation.md §8).
const (
	OutboxPending   = "pending"
	OutboxDelivered = "delivered"
	OutboxFailed    = "failed"
	OutboxExpired   = "expired"
)

// OutboxMessage is a message waiting for, or done with, delivery to one
// peer (spec/federation.md §8).
type OutboxMessage struct {
	// ID is assigned by EnqueueOutbox, increasing in the order messages are
	// written, which is the order each destination receives them in.
	ID          int64
	MessageID   string
	Destination string
	// Body is the envelope JSON.
	Body      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	// NextAttempt is when delivery is next due; EnqueueOutbox takes a zero
	// one as CreatedAt.
	NextAttempt time.Time
	Attempts    int
	// State is one of OutboxPending, OutboxDelivered, OutboxFailed and
	// OutboxExpired.
	State     string
	LastError string
	// Receipt is the peer's signed receipt, once delivered.
	Receipt     []byte
	DeliveredAt time.Time
}

const outboxColumns = `id, message_id, destination, body, created_at, expires_at, next_attempt, attempts,
	state, last_error, receipt, delivered_at`

func scanOutbox(r rowScanner) (OutboxMessage, error) {
	var m OutboxMessage
	err := r.Scan(&m.ID, &m.MessageID, &m.Destination, &m.Body, millisTime{&m.CreatedAt},
		millisTime{&m.ExpiresAt}, millisTime{&m.NextAttempt}, &m.Attempts, &m.State, &m.LastError,
		&m.Receipt, millisTime{&m.DeliveredAt})
	m.Body = nonNil(m.Body)
	return m, err
}

// headOfDestination keeps, of the pending messages, only each destination's
// oldest: a destination receives its messages one at a time and in order
// (spec/federation.md §8), so nothing behind a head that is waiting for a
// retry may overtake it.
const headOfDestination = `o.state = 'pending' AND o.id = (
	SELECT MIN(h.id) FROM outbox h WHERE h.destination = o.destination AND h.state = 'pending')`

func (s queries) EnqueueOutbox(ctx context.Context, m OutboxMessage) (int64, error) {
	if m.MessageID == "" || m.Destination == "" {
		return 0, fmt.Errorf("store: enqueue message %q to %q: message id and destination must be set", m.MessageID, m.Destination)
	}
	if m.CreatedAt.IsZero() {
		return 0, fmt.Errorf("store: enqueue message %q to %q: created time is not set", m.MessageID, m.Destination)
	}
	if m.NextAttempt.IsZero() {
		m.NextAttempt = m.CreatedAt
	}
	var id int64
	// A pending message has no receipt yet, whatever m carries.
	err := s.q.queryRow(ctx, `
INSERT INTO outbox (message_id, destination, body, created_at, expires_at, next_attempt, attempts,
	state, last_error, receipt, delivered_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)
RETURNING id`,
		m.MessageID, m.Destination, nonNil(m.Body), millisArg(m.CreatedAt), millisArg(m.ExpiresAt),
		millisArg(m.NextAttempt), m.Attempts, OutboxPending, m.LastError).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store: enqueue message %q to %q: %w", m.MessageID, m.Destination, err)
	}
	return id, nil
}

// notLeasedElsewhere keeps, of the outbox rows o, those whose destination
// no other holder than the one given (first argument) holds a lease on at
// the time given (second argument).
const notLeasedElsewhere = `NOT EXISTS (SELECT 1 FROM outbox_leases l
	WHERE l.destination = o.destination AND l.holder <> ? AND l.expires_at > ?)`

func (s queries) DueOutbox(ctx context.Context, now time.Time, holder string, limit int) ([]OutboxMessage, error) {
	query := `SELECT ` + outboxColumns + ` FROM outbox o WHERE ` + headOfDestination + ` AND o.next_attempt <= ? AND ` +
		notLeasedElsewhere + ` ORDER BY o.id`
	args := []any{now.UnixMilli(), holder, now.UnixMilli()}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	rs, err := s.q.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: due outbox messages: %w", err)
	}
	ms, err := scanAll(rs, scanOutbox)
	if err != nil {
		return nil, fmt.Errorf("store: due outbox messages: %w", err)
	}
	return ms, nil
}

func (s queries) NextOutboxWake(ctx context.Context, now time.Time, holder string) (time.Time, error) {
	var wake time.Time
	// A head is due at its next attempt, but not before another holder's
	// lease on its destination ends.
	err := s.q.queryRow(ctx, `
SELECT MIN(CASE WHEN l.holder <> ? AND l.expires_at > ? AND l.expires_at > o.next_attempt
	THEN l.expires_at ELSE o.next_attempt END)
FROM outbox o LEFT JOIN outbox_leases l ON l.destination = o.destination
WHERE `+headOfDestination, holder, now.UnixMilli()).Scan(millisTime{&wake})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next outbox wake: %w", err)
	}
	return wake, nil
}

func (s queries) MarkOutboxDelivered(ctx context.Context, l OutboxLease, id int64, receipt []byte, at time.Time) error {
	err := s.leasedUpdate(ctx, l, id, `state = ?, receipt = ?, delivered_at = ?, last_error = ''`,
		OutboxDelivered, nonNil(receipt), millisArg(at))
	if err != nil {
		return fmt.Errorf("store: mark outbox message %d delivered: %w", id, err)
	}
	return nil
}

func (s queries) MarkOutboxRetry(ctx context.Context, l OutboxLease, id int64, attempts int, next time.Time, lastErr string) error {
	if next.IsZero() {
		return fmt.Errorf("store: mark outbox message %d for retry: next attempt time is not set", id)
	}
	err := s.leasedUpdate(ctx, l, id, `attempts = ?, next_attempt = ?, last_error = ?`, attempts, millisArg(next), lastErr)
	if err != nil {
		return fmt.Errorf("store: mark outbox message %d for retry: %w", id, err)
	}
	return nil
}

func (s queries) RetryOutboxNow(ctx context.Context, destination string, now time.Time) (int64, error) {
	n, err := s.q.exec(ctx, `UPDATE outbox SET next_attempt = ?, attempts = 0
WHERE destination = ? AND state = ? AND (next_attempt > ? OR attempts > 0)`,
		millisArg(now), destination, OutboxPending, millisArg(now))
	if err != nil {
		return 0, fmt.Errorf("store: retry outbox to %q now: %w", destination, err)
	}
	return n, nil
}

func (s queries) MarkOutboxFinal(ctx context.Context, l OutboxLease, id int64, state, reason string) error {
	if state != OutboxFailed && state != OutboxExpired {
		return fmt.Errorf("store: mark outbox message %d final: state %q is neither %q nor %q", id, state, OutboxFailed, OutboxExpired)
	}
	if err := s.leasedUpdate(ctx, l, id, `state = ?, last_error = ?`, state, reason); err != nil {
		return fmt.Errorf("store: mark outbox message %d %s: %w", id, state, err)
	}
	return nil
}

// outboxFilter builds the WHERE clause matching destination and state,
// either of which may be "" for any.
func outboxFilter(destination, state string) (string, []any, error) {
	var (
		conds []string
		args  []any
	)
	if destination != "" {
		conds = append(conds, `destination = ?`)
		args = append(args, destination)
	}
	switch state {
	case "":
	case OutboxPending, OutboxDelivered, OutboxFailed, OutboxExpired:
		conds = append(conds, `state = ?`)
		args = append(args, state)
	default:
		return "", nil, fmt.Errorf("unknown state %q", state)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return ` WHERE ` + strings.Join(conds, ` AND `), args, nil
}

func (s queries) ListOutbox(ctx context.Context, destination string, state string) ([]OutboxMessage, error) {
	ms, err := s.listOutbox(ctx, destination, state)
	if err != nil {
		return nil, fmt.Errorf("store: list outbox to %q in state %q: %w", destination, state, err)
	}
	return ms, nil
}

func (s queries) listOutbox(ctx context.Context, destination string, state string) ([]OutboxMessage, error) {
	where, args, err := outboxFilter(destination, state)
	if err != nil {
		return nil, err
	}
	rs, err := s.q.query(ctx, `SELECT `+outboxColumns+` FROM outbox`+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rs, scanOutbox)
}

func (s queries) GetOutbox(ctx context.Context, destination, messageID string) (OutboxMessage, error) {
	m, err := scanOutbox(s.q.queryRow(ctx, `SELECT `+outboxColumns+` FROM outbox
WHERE destination = ? AND message_id = ? ORDER BY id DESC LIMIT 1`, destination, messageID))
	if err != nil {
		return m, fmt.Errorf("store: outbox message %q to %q: %w", messageID, destination, err)
	}
	return m, nil
}

func (s queries) CountOutbox(ctx context.Context, state string) (int64, error) {
	where, args, err := outboxFilter("", state)
	if err != nil {
		return 0, fmt.Errorf("store: count outbox in state %q: %w", state, err)
	}
	var n int64
	if err := s.q.queryRow(ctx, `SELECT COUNT(*) FROM outbox`+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count outbox in state %q: %w", state, err)
	}
	return n, nil
}
