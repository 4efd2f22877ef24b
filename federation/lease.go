package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/entente-org/entente/store"
)

// A node may run as several replicas sharing one store, and so one outbox.
// Each destination is delivered to by one replica at a time, the holder of
// its lease in the store (spec §8): that keeps each peer's messages in
// order, and a replica that dies holding a lease is replaced when the lease
// ends unrenewed. A single-process node always gets its own leases.
const (
	// DefaultDeliveryLease is how long a lease lasts unrenewed, and so how
	// long a dead replica's destinations wait before another replica takes
	// them over.
	DefaultDeliveryLease = 15 * time.Second
	// leaseReleaseTimeout bounds releasing the leases when the outbox
	// stops, after its context has ended.
	leaseReleaseTimeout = 5 * time.Second
)

// leases are the outbox leases this process took, by destination, so that
// it can release them when it stops.
type leases struct {
	mu   sync.Mutex
	held map[string]store.OutboxLease
}

// NewDeliveryHolder makes a holder name unique to this process: the host
// name, the process id and a random part, so that an operator can tell from
// the store which replica delivers to which peer.
func NewDeliveryHolder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "entente"
	}
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// takeLease takes or renews this process's lease on destination. ok is false
// when another process holds it.
func (s *Service) takeLease(ctx context.Context, destination string) (l store.OutboxLease, ok bool, err error) {
	now := s.now()
	l, err = s.store.TakeOutboxLease(ctx, destination, s.holder, now, now.Add(s.lease))
	if errors.Is(err, store.ErrLeaseHeld) {
		s.forgetLease(destination)
		return l, false, nil
	}
	if err != nil {
		return l, false, err
	}
	s.leases.mu.Lock()
	s.leases.held[destination] = l
	s.leases.mu.Unlock()
	return l, true, nil
}

// leaseFor gives the lease under which to deliver to destination: the one
// this process holds while more than two thirds of it remain (renewals run
// during deliveries; a write per message would be the store's busiest), or
// else one taken or renewed now. ok is false when another process holds
// it. continued is true when this process held it all along since its
// previous delivery there, so that nobody else can have recorded an outcome
// for the destination meanwhile.
func (s *Service) leaseFor(ctx context.Context, destination string) (l store.OutboxLease, ok, continued bool, err error) {
	now := s.now()
	s.leases.mu.Lock()
	prev, had := s.leases.held[destination]
	s.leases.mu.Unlock()
	if had && prev.ExpiresAt.Sub(now) > 2*s.lease/3 {
		return prev, true, true, nil
	}
	l, ok, err = s.takeLease(ctx, destination)
	return l, ok, ok && had && prev.Token == l.Token, err
}

// DeliveryLeases counts the destinations whose outbox lease this process
// holds now: the peers it alone delivers to.
func (s *Service) DeliveryLeases() int {
	now := s.now()
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	n := 0
	for _, l := range s.leases.held {
		if now.Before(l.ExpiresAt) {
			n++
		}
	}
	return n
}

func (s *Service) forgetLease(destination string) {
	s.leases.mu.Lock()
	delete(s.leases.held, destination)
	s.leases.mu.Unlock()
}

// errLeaseLost is the cause of a delivery's context ended because another
// process took over the destination's lease.
var errLeaseLost = errors.New("delivery lease lost to another process")

// underLease runs deliver with ctx cancelled, with errLeaseLost as its
// cause, as soon as lease l is lost: it renews l every third of the lease's
// length while deliver runs, and gives up when a renewal finds another
// holder, or the token changed (l lapsed: someone may have delivered
// meanwhile), or the lease ended without a renewal getting through.
func (s *Service) underLease(ctx context.Context, l store.OutboxLease, deliver func(ctx context.Context)) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(max(s.lease/3, time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			renewed, ok, err := s.takeLease(ctx, l.Destination)
			switch {
			case ctx.Err() != nil:
				return
			case err == nil && ok && renewed.Token == l.Token:
				l = renewed
				continue
			case err != nil && s.now().Before(l.ExpiresAt):
				s.log.Warn("outbox: cannot renew the delivery lease; trying again", "peer", l.Destination, "err", err)
				continue
			}
			s.log.Warn("outbox: delivery lease lost; another replica delivers to this peer", "peer", l.Destination, "holder", renewed.Holder, "err", err)
			cancel(errLeaseLost)
			return
		}
	}()
	deliver(ctx)
	cancel(nil)
	<-done
}

// leaseLost reports whether ctx, a delivery's, ended because its lease was
// lost: its attempt is then nobody's to record.
func leaseLost(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errLeaseLost)
}

// releaseLeases ends every lease this process holds, so that another
// replica takes its destinations over at once instead of when the leases
// end. A lease another holder took meanwhile is left alone.
func (s *Service) releaseLeases(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseReleaseTimeout)
	defer cancel()
	s.leases.mu.Lock()
	held := s.leases.held
	s.leases.held = make(map[string]store.OutboxLease)
	s.leases.mu.Unlock()
	for _, l := range held {
		if err := s.store.ReleaseOutboxLease(ctx, l); err != nil && !errors.Is(err, store.ErrLeaseLost) {
			s.log.Warn("outbox: cannot release the delivery lease; another replica takes it over when it ends", "peer", l.Destination, "err", err)
		}
	}
}
