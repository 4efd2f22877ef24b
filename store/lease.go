package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// OutboxLease is one process's right to deliver the outbox to one
// destination until ExpiresAt (spec/federation.md §8). The replicas of a
// node share one outbox; a lease makes one of them at a time deliver to
// each peer, so that the peer receives its messages in order, and another
// replica takes the destination over once the holder stops renewing (it
// died, or lost the database).
type OutboxLease struct {
	Destination string
	// Holder names the process, unique per process.
	Holder string
	// Token grows every time the lease is taken anew: by another holder,
	// or by the same one after it lapsed. Outcomes are recorded under the
	// lease they were obtained under (MarkOutboxDelivered and the others),
	// and refused once the token changed, so that a holder that lost the
	// lease cannot overwrite the work of the one that took it over.
	Token     int64
	ExpiresAt time.Time
}

var (
	// ErrLeaseHeld is wrapped by TakeOutboxLease when another holder's
	// lease has not expired.
	ErrLeaseHeld = errors.New("store: lease held by another process")
	// ErrLeaseLost is wrapped by a write made under a lease that is no
	// longer the destination's current one: another holder took it over.
	ErrLeaseLost = errors.New("store: lease lost")
)

func (s queries) TakeOutboxLease(ctx context.Context, destination, holder string, now, until time.Time) (OutboxLease, error) {
	if destination == "" || holder == "" {
		return OutboxLease{}, fmt.Errorf("store: take outbox lease on %q for %q: destination and holder must be set", destination, holder)
	}
	if !until.After(now) {
		return OutboxLease{}, fmt.Errorf("store: take outbox lease on %q for %q: it would end (%s) before it starts (%s)",
			destination, holder, until.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	// One statement, so that of two processes taking the same lease at
	// once exactly one gets it: PostgreSQL makes the second wait for the
	// first's row and then re-checks the WHERE against it.
	l := OutboxLease{Destination: destination}
	err := s.q.queryRow(ctx, `
INSERT INTO outbox_leases (destination, holder, token, expires_at) VALUES (?, ?, 1, ?)
ON CONFLICT (destination) DO UPDATE SET
	token = CASE WHEN outbox_leases.holder = excluded.holder AND outbox_leases.expires_at > ?
		THEN outbox_leases.token ELSE outbox_leases.token + 1 END,
	holder = excluded.holder,
	expires_at = excluded.expires_at
WHERE outbox_leases.holder = excluded.holder OR outbox_leases.expires_at <= ?
RETURNING holder, token, expires_at`,
		destination, holder, until.UnixMilli(), now.UnixMilli(), now.UnixMilli()).Scan(&l.Holder, &l.Token, millisTime{&l.ExpiresAt})
	if errors.Is(err, ErrNotFound) {
		cur, gerr := s.GetOutboxLease(ctx, destination)
		if gerr != nil {
			return OutboxLease{}, fmt.Errorf("store: take outbox lease on %q for %q: %w", destination, holder, ErrLeaseHeld)
		}
		return cur, fmt.Errorf("store: take outbox lease on %q for %q: %w: %q until %s",
			destination, holder, ErrLeaseHeld, cur.Holder, cur.ExpiresAt.Format(time.RFC3339Nano))
	}
	if err != nil {
		return OutboxLease{}, fmt.Errorf("store: take outbox lease on %q for %q: %w", destination, holder, err)
	}
	return l, nil
}

func (s queries) ReleaseOutboxLease(ctx context.Context, l OutboxLease) error {
	// The row stays, expired, so that its token keeps growing.
	n, err := s.q.exec(ctx, `UPDATE outbox_leases SET expires_at = 0 WHERE destination = ? AND holder = ? AND token = ?`,
		l.Destination, l.Holder, l.Token)
	if err != nil {
		return fmt.Errorf("store: release outbox lease on %q of %q: %w", l.Destination, l.Holder, err)
	}
	if n == 0 {
		return fmt.Errorf("store: release outbox lease on %q of %q: %w", l.Destination, l.Holder, ErrLeaseLost)
	}
	return nil
}

func (s queries) GetOutboxLease(ctx context.Context, destination string) (OutboxLease, error) {
	l := OutboxLease{Destination: destination}
	err := s.q.queryRow(ctx, `SELECT holder, token, expires_at FROM outbox_leases WHERE destination = ?`, destination).
		Scan(&l.Holder, &l.Token, millisTime{&l.ExpiresAt})
	if err != nil {
		return OutboxLease{}, fmt.Errorf("store: outbox lease on %q: %w", destination, err)
	}
	return l, nil
}

// underLease is the condition, on a row of outbox, that the lease (holder,
// token: two arguments) is still its destination's current one. It holds
// the lease's row until the statement's transaction ends, so that nobody
// takes the lease over between the check and the write.
func (s queries) underLease() string {
	return `EXISTS (SELECT 1 FROM outbox_leases l WHERE l.destination = outbox.destination
	AND l.holder = ? AND l.token = ?` + s.forShare + `)`
}

// leasedUpdate runs an UPDATE of one outbox message (id) that ends with
// "WHERE id = ? AND destination = ? AND <underLease>", the arguments after
// set's being supplied here. It tells a lost lease (ErrLeaseLost) from an
// unknown message (ErrNotFound).
func (s queries) leasedUpdate(ctx context.Context, l OutboxLease, id int64, set string, args ...any) error {
	args = append(args, id, l.Destination, l.Holder, l.Token)
	n, err := s.q.exec(ctx, `UPDATE outbox SET `+set+` WHERE id = ? AND destination = ? AND `+s.underLease(), args...)
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var dest string
	if err := s.q.queryRow(ctx, `SELECT destination FROM outbox WHERE id = ?`, id).Scan(&dest); err != nil {
		return err
	}
	if dest != l.Destination {
		return fmt.Errorf("%w: message is for %q, the lease is on %q", ErrNotFound, dest, l.Destination)
	}
	cur, err := s.GetOutboxLease(ctx, l.Destination)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLeaseLost, err)
	}
	return fmt.Errorf("%w: token %d of %q, now %d of %q", ErrLeaseLost, l.Token, l.Holder, cur.Token, cur.Holder)
}
