package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entente-org/entente/identity"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
)

// enqueue writes a sealed message to the durable outbox, inside the caller's
// transaction, so it is sent if and only if the change that caused it
// commits (spec §8).
func (s *Service) enqueue(ctx context.Context, tx store.Tx, destination string, env Envelope, p Payload) error {
	body, err := json.Marshal(env)
	if err != nil {
		return err
	}
	now := s.now()
	_, err = tx.EnqueueOutbox(ctx, store.OutboxMessage{
		MessageID:   p.ID,
		Destination: destination,
		Body:        body,
		CreatedAt:   now,
		ExpiresAt:   time.UnixMilli(p.Expires),
		NextAttempt: now,
	})
	return err
}

// notifyOutbox wakes the delivery loop after a commit.
func (s *Service) notifyOutbox() {
	s.WakeOutbox()
	if s.outboxWritten != nil {
		s.outboxWritten()
	}
}

// WakeOutbox makes the outbox look for due messages now: another replica of
// the node queued one (Options.OutboxWritten).
func (s *Service) WakeOutbox() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// outboxPoll bounds how long a message written by another process (the CLI,
// or another node process on the same database) waits to be noticed.
const outboxPoll = time.Second

// RunOutbox delivers the outbox until ctx is cancelled: per destination one
// message at a time, in order, retrying with exponential backoff (spec §8),
// to the destinations whose lease it holds or gets (see lease.go). When ctx
// ends it releases its leases, for another replica to take over at once.
func (s *Service) RunOutbox(ctx context.Context) {
	probes := make(chan struct{})
	go func() {
		defer close(probes)
		s.runProbes(ctx)
	}()
	defer func() { <-probes }()
	defer s.releaseLeases(ctx)
	var pruned time.Time
	for {
		if now := s.now(); now.Sub(pruned) >= inboxPruneEvery {
			s.pruneInbox(ctx, now)
			pruned = now
		}
		n, err := s.DeliverDue(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("outbox", "err", err)
		}
		wait := outboxPoll
		if n == 0 {
			if next, err := s.store.NextOutboxWake(ctx, s.now(), s.holder); err == nil && !next.IsZero() {
				if d := next.Sub(s.now()); d < wait {
					wait = max(d, 0)
				}
			}
		} else {
			wait = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// The replay cache (spec §8) needs to remember a message only while it could
// still be accepted: a message expires at most 7 days after it was created,
// and an expired one is refused anyway. A day more covers clock skew.
const (
	inboxKeep       = 8 * 24 * time.Hour
	inboxPruneEvery = time.Hour
)

// pruneInbox forgets received message ids that can no longer be replayed.
func (s *Service) pruneInbox(ctx context.Context, now time.Time) {
	n, err := s.store.PruneInbound(ctx, now.Add(-inboxKeep))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("pruning the replay cache failed", "err", err)
		}
		return
	}
	if n > 0 {
		s.log.Info("replay cache pruned", "entries", n)
	}
}

// DeliverDue makes one delivery attempt for each destination whose next
// message is due and whose lease this process holds or gets, in parallel
// across destinations. It returns how many attempts it made.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	due, err := s.store.DueOutbox(ctx, s.now(), s.holder, 64)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	var (
		wg       sync.WaitGroup
		attempts atomic.Int64
	)
	for _, m := range due {
		wg.Go(func() {
			l, ok, continued, err := s.leaseFor(ctx, m.Destination)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("outbox: cannot take the delivery lease", "peer", m.Destination, "err", err)
				}
				return
			}
			if !ok {
				return // another replica took it since DueOutbox
			}
			if !continued {
				// m was read before the lease was taken: the replica
				// whose lease had just ended may have recorded it since.
				cur, err := s.store.GetOutbox(ctx, m.Destination, m.MessageID)
				if err != nil {
					if ctx.Err() == nil {
						s.log.Error("outbox: cannot read the message to deliver", "peer", m.Destination, "err", err)
					}
					return
				}
				if cur.ID != m.ID || cur.State != store.OutboxPending || cur.NextAttempt.After(s.now()) {
					return
				}
				m = cur
			}
			attempts.Add(1)
			s.underLease(ctx, l, func(ctx context.Context) { s.deliver(ctx, l, m) })
		})
	}
	wg.Wait()
	return int(attempts.Load()), nil
}

// deliver makes one attempt at m, recording its outcome under lease l.
func (s *Service) deliver(ctx context.Context, l store.OutboxLease, m store.OutboxMessage) {
	log := s.log.With("peer", m.Destination, "message", m.MessageID)
	now := s.now()
	if !now.Before(m.ExpiresAt) {
		s.deliveries.expired.Add(1)
		log.Warn("outbound message expired undelivered", "attempts", m.Attempts)
		s.record(log, "expire", s.store.MarkOutboxFinal(ctx, l, m.ID, store.OutboxExpired, "expired undelivered; last error: "+m.LastError))
		s.forgetSilence(m.Destination)
		return
	}
	receipt, status, retryAfter, err := s.post(ctx, m)
	if leaseLost(ctx) {
		// The replica that took the lease over sends m again; the peer
		// answers "duplicate" if this attempt reached it (spec §8).
		log.Info("delivery attempt abandoned: another replica took the delivery lease over", "err", err)
		return
	}
	answered := !errors.Is(err, errNoAnswer)
	if answered {
		s.heardFrom(ctx, m.Destination)
	}
	switch {
	case err == nil:
		s.deliveries.delivered.Add(1)
		s.record(log, "mark delivered", s.store.MarkOutboxDelivered(ctx, l, m.ID, receipt, s.now()))
		return
	case finalStatus(status):
		s.deliveries.refused.Add(1)
		log.Warn("peer refused message", "status", status, "err", err)
		s.record(log, "mark failed", s.store.MarkOutboxFinal(ctx, l, m.ID, store.OutboxFailed, err.Error()))
		return
	case status == http.StatusTooManyRequests:
		// The peer is up and asks us to slow down (spec §3.4, §8): wait as
		// long as it says, without counting an attempt, so the backoff of
		// a real outage is not inflated by it.
		s.deliveries.throttled.Add(1)
		wait := s.backoff(m.Attempts + 1)
		if retryAfter > 0 {
			wait = min(retryAfter, s.retryMax)
		}
		next := now.Add(wait)
		log.Info("peer asked to retry later", "status", status, "next", next, "err", err)
		s.record(log, "schedule retry", s.store.MarkOutboxRetry(ctx, l, m.ID, m.Attempts, next, err.Error()))
		return
	}
	s.deliveries.retried.Add(1)
	attempts := m.Attempts + 1
	next := now.Add(s.backoff(attempts))
	if !answered && !s.unanswered(m.Destination, now) {
		next = s.now() // heard from during the attempt: the path is back
	}
	if wait := min(retryAfter, s.retryMax); next.Before(now.Add(wait)) {
		next = now.Add(wait) // a 503's Retry-After (spec §8)
	}
	log.Info("delivery failed, will retry", "attempts", attempts, "next", next, "err", err)
	s.record(log, "schedule retry", s.store.MarkOutboxRetry(ctx, l, m.ID, attempts, next, err.Error()))
}

// record logs the failure to record an attempt's outcome. A lost lease is
// no fault: the replica that took it over sends the message again, and the
// peer, which keeps the message ids it applied, answers it as a duplicate
// (spec §8). Nor is a stop of the node during the attempt: the message is
// still pending, and is sent again after the next start.
func (s *Service) record(log *slog.Logger, what string, err error) {
	switch {
	case err == nil:
	case errors.Is(err, store.ErrLeaseLost):
		log.Info("outbox: delivery lease lost before the outcome was recorded; the new holder sends the message again", "outcome", what)
	case errors.Is(err, context.Canceled):
		log.Info("outbox: stopping before the outcome was recorded; the message is sent again after the next start", "outcome", what)
	default:
		log.Error("outbox: cannot "+what, "err", err)
	}
}

// finalStatus are answers that will not change by sending again (spec §8).
func finalStatus(status int) bool {
	switch status {
	case 400, 401, 403, 409, 410, 413:
		return true
	}
	return false
}

// backoff is retryBase·2^(attempts−1), capped at retryMax, ±20 %.
func (s *Service) backoff(attempts int) time.Duration {
	d := s.retryBase
	for i := 1; i < attempts && d < s.retryMax; i++ {
		d *= 2
	}
	d = min(d, s.retryMax)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// post sends one message and verifies the signed receipt. For a refusal it
// returns the status, and the peer's Retry-After when it gave one.
func (s *Service) post(ctx context.Context, m store.OutboxMessage) ([]byte, int, time.Duration, error) {
	endpoint, err := s.endpoint(ctx, m.Destination)
	if _, ok := errors.AsType[*identity.UnavailableError](err); ok {
		return nil, 0, 0, noAnswer(err)
	} else if err != nil {
		return nil, 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	a, err := s.client.send(ctx, http.MethodPost, endpoint+"/inbox", m.Body)
	if err != nil && a.status == 0 {
		return nil, 0, 0, noAnswer(err)
	} else if err != nil {
		return nil, 0, 0, err
	}
	if a.status != http.StatusOK {
		return nil, a.status, a.retryAfter, refusalError(a.status, a.body)
	}
	p, err := s.openAnswer(ctx, m.Destination, a.body, TypeReceipt)
	if err != nil {
		return nil, 0, 0, err
	}
	var rc ReceiptContent
	if err := decodeContent(p.Content, &rc); err != nil {
		return nil, 0, 0, err
	}
	if rc.Message != m.MessageID {
		return nil, 0, 0, errors.New("receipt for " + rc.Message + ", not " + m.MessageID)
	}
	return a.body, a.status, 0, nil
}

// refusalError describes a peer's error answer as "<status> <code>: <message>",
// the form hostRefusal reads back.
func refusalError(status int, body []byte) error {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return fmt.Errorf("%d %s: %s", status, "error", truncate(body, 300))
	}
	return fmt.Errorf("%d %s: %s", status, e.Error.Code, e.Error.Message)
}

// hostRefusal turns the recorded refusal of a host back into an *httpapi.Error for
// the user whose action it was.
func hostRefusal(lastError string) error {
	var status int
	var code string
	head, msg, ok := strings.Cut(lastError, ": ")
	if ok {
		if _, err := fmt.Sscanf(head, "%d %s", &status, &code); err == nil && status >= 400 && status < 500 {
			return &httpapi.Error{Status: status, Code: code, Message: "the host refused: " + msg}
		}
	}
	return &httpapi.Error{Status: http.StatusBadGateway, Code: "bad_gateway", Message: "the host could not be reached: " + lastError}
}
