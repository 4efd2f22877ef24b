package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestOutboxLease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		const (
			one = "replica-1"
			two = "replica-2"
		)
		m1 := enqueue(t, s, message("m1", toAgency, t0))
		m2 := enqueue(t, s, message("m2", toAgency, t0))
		c1 := enqueue(t, s, message("c1", toCity, t0))

		if _, err := s.GetOutboxLease(ctx, toAgency); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetOutboxLease before any lease: err = %v, want ErrNotFound", err)
		}
		take := func(holder string, now time.Time, d time.Duration) (store.OutboxLease, error) {
			return s.TakeOutboxLease(ctx, toAgency, holder, now, now.Add(d))
		}
		first, err := take(one, t0, 15*time.Second)
		if want := (store.OutboxLease{Destination: toAgency, Holder: one, Token: 1, ExpiresAt: t0.Add(15 * time.Second)}); err != nil || first != want {
			t.Fatalf("first take = %+v, %v; want %+v", first, err, want)
		}
		// Renewed by its holder before it ends: same token, later end.
		renewed, err := take(one, t0.Add(5*time.Second), 15*time.Second)
		if want := (store.OutboxLease{Destination: toAgency, Holder: one, Token: 1, ExpiresAt: t0.Add(20 * time.Second)}); err != nil || renewed != want {
			t.Fatalf("renewal = %+v, %v; want %+v", renewed, err, want)
		}
		// Another holder waits for it to end.
		held, err := take(two, t0.Add(19*time.Second), 15*time.Second)
		if !errors.Is(err, store.ErrLeaseHeld) || held != renewed {
			t.Fatalf("take by another holder while held = %+v, %v; want %+v and ErrLeaseHeld", held, err, renewed)
		}
		// Each replica sees only the destinations it may deliver to.
		now := t0.Add(19 * time.Second)
		if due, err := s.DueOutbox(ctx, now, one, 0); err != nil || !reflect.DeepEqual(ids(due), []string{"m1", "c1"}) {
			t.Errorf("DueOutbox(%s) = %v, %v; want [m1 c1]", one, ids(due), err)
		}
		if due, err := s.DueOutbox(ctx, now, two, 0); err != nil || !reflect.DeepEqual(ids(due), []string{"c1"}) {
			t.Errorf("DueOutbox(%s) = %v, %v; want [c1]", two, ids(due), err)
		}
		lost := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, store.ErrLeaseLost) {
				t.Errorf("%s: err = %v, want ErrLeaseLost", what, err)
			}
		}
		// two's wake: c1 at once; alone, agency's head when one's lease ends.
		if wake, err := s.NextOutboxWake(ctx, now, two); err != nil || !wake.Equal(t0) {
			t.Errorf("NextOutboxWake(%s) = %v, %v; want %v", two, wake, err, t0)
		}
		if err := s.MarkOutboxDelivered(ctx, lease(t, s, toCity), c1.ID, []byte("r"), now); err != nil {
			t.Fatal(err)
		}
		if wake, err := s.NextOutboxWake(ctx, now, two); err != nil || !wake.Equal(t0.Add(20*time.Second)) {
			t.Errorf("NextOutboxWake(%s) while %s holds agency = %v, %v; want %v", two, one, wake, err, t0.Add(20*time.Second))
		}
		if wake, err := s.NextOutboxWake(ctx, now, one); err != nil || !wake.Equal(t0) {
			t.Errorf("NextOutboxWake(%s) = %v, %v; want %v", one, wake, err, t0)
		}

		// one's lease ends unrenewed (one died, or stalled); two takes it over.
		over, err := take(two, t0.Add(20*time.Second), 15*time.Second)
		if want := (store.OutboxLease{Destination: toAgency, Holder: two, Token: 2, ExpiresAt: t0.Add(35 * time.Second)}); err != nil || over != want {
			t.Fatalf("take-over = %+v, %v; want %+v", over, err, want)
		}
		// one, come back, can record nothing under its old lease, nor renew it.
		lost("delivered under the lost lease", s.MarkOutboxDelivered(ctx, renewed, m1.ID, []byte("late"), now))
		lost("retry under the lost lease", s.MarkOutboxRetry(ctx, renewed, m1.ID, 3, now.Add(time.Hour), "late"))
		lost("final under the lost lease", s.MarkOutboxFinal(ctx, renewed, m1.ID, store.OutboxFailed, "late"))
		lost("release of the lost lease", s.ReleaseOutboxLease(ctx, renewed))
		if got, err := take(one, t0.Add(21*time.Second), 15*time.Second); !errors.Is(err, store.ErrLeaseHeld) || got != over {
			t.Errorf("renewal of the lost lease = %+v, %v; want %+v and ErrLeaseHeld", got, err, over)
		}
		if got, err := s.ListOutbox(ctx, toAgency, ""); err != nil || !reflect.DeepEqual(got, []store.OutboxMessage{m1, m2}) {
			t.Errorf("after the refused marks, the agency's outbox = %+v, %v; want it unchanged", got, err)
		}
		// The new holder's marks are taken.
		if err := s.MarkOutboxDelivered(ctx, over, m1.ID, []byte("r1"), now); err != nil {
			t.Fatalf("MarkOutboxDelivered under the new lease: %v", err)
		}
		if due, err := s.DueOutbox(ctx, t0.Add(21*time.Second), two, 0); err != nil || !reflect.DeepEqual(ids(due), []string{"m2"}) {
			t.Errorf("DueOutbox(%s) after m1 = %v, %v; want [m2]", two, ids(due), err)
		}

		// A release lets the other take it at once, with a new token.
		if err := s.ReleaseOutboxLease(ctx, over); err != nil {
			t.Fatalf("ReleaseOutboxLease: %v", err)
		}
		back, err := take(one, t0.Add(22*time.Second), 15*time.Second)
		if err != nil || back.Holder != one || back.Token != 3 {
			t.Fatalf("take after the release = %+v, %v; want %s's with token 3", back, err, one)
		}
		// Its own lease, lapsed and taken again, has a new token too: what
		// it started under the old one may have been done by someone else.
		again, err := take(one, t0.Add(40*time.Second), 15*time.Second)
		if err != nil || again.Token != 4 {
			t.Fatalf("retake of a lapsed own lease = %+v, %v; want token 4", again, err)
		}
		lost("retry under its own lapsed lease", s.MarkOutboxRetry(ctx, back, m2.ID, 1, now, "late"))
		if got, err := s.GetOutboxLease(ctx, toAgency); err != nil || got != again {
			t.Errorf("GetOutboxLease = %+v, %v; want %+v", got, err, again)
		}

		for _, bad := range []struct{ dest, holder string }{{"", one}, {toAgency, ""}} {
			if _, err := s.TakeOutboxLease(ctx, bad.dest, bad.holder, t0, t0.Add(time.Second)); err == nil {
				t.Errorf("TakeOutboxLease(%q, %q) succeeded", bad.dest, bad.holder)
			}
		}
		if _, err := s.TakeOutboxLease(ctx, toCity, one, t0, t0); err == nil {
			t.Error("TakeOutboxLease ending when it starts succeeded")
		}
	})
}

// TestOutboxLeaseRace has replicas, each with its own connections to one
// database, take one expired lease at the same moment, round after round:
// exactly one gets it each time.
func TestOutboxLeaseRace(t *testing.T) {
	const (
		replicas = 4
		rounds   = 25
	)
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		opts := b.Database(t)
		stores := make([]store.Store, replicas)
		for i := range stores {
			stores[i] = openOrFail(t, opts)
			defer closeOrFail(t, stores[i])
		}
		ctx := t.Context()
		for round := range rounds {
			// Each round starts after the previous lease ended.
			now := t0.Add(time.Duration(round) * time.Minute)
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				got   [replicas]store.OutboxLease
				errs  [replicas]error
			)
			for i, s := range stores {
				wg.Go(func() {
					<-start
					got[i], errs[i] = s.TakeOutboxLease(ctx, toAgency, fmt.Sprintf("replica-%d", i), now, now.Add(30*time.Second))
				})
			}
			close(start)
			wg.Wait()
			winners := 0
			var won store.OutboxLease
			for i, err := range errs {
				switch {
				case err == nil:
					winners++
					won = got[i]
				case !errors.Is(err, store.ErrLeaseHeld):
					t.Fatalf("round %d, replica %d: %v", round, i, err)
				}
			}
			if winners != 1 {
				t.Fatalf("round %d: %d replicas took the lease, want 1 (errors %v)", round, winners, errs)
			}
			if won.Token != int64(round+1) {
				t.Fatalf("round %d: token %d, want %d", round, won.Token, round+1)
			}
			for i, err := range errs {
				if err != nil && got[i] != won {
					t.Errorf("round %d: replica %d was told the lease is %+v, want %+v", round, i, got[i], won)
				}
			}
		}
	})
}

// TestOutboxLeaseFence races the outcome recorded by a holder whose lease
// lapsed against another holder taking the lease over and reading what is
// due: the outcome is either recorded before the take-over is done, and
// then the new holder does not see the message as due, or refused.
// Otherwise the new holder would send a message already recorded as
// delivered.
func TestOutboxLeaseFence(t *testing.T) {
	const rounds = 30
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		opts := b.Database(t)
		old, next := openOrFail(t, opts), openOrFail(t, opts)
		defer closeOrFail(t, old)
		defer closeOrFail(t, next)
		ctx := t.Context()
		var recorded, refused int
		for round := range rounds {
			dest := fmt.Sprintf("did:web:peer-%d.example", round)
			m := enqueue(t, old, message("m", dest, t0))
			stale, err := old.TakeOutboxLease(ctx, dest, "old", t0, t0.Add(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			later := t0.Add(time.Minute)
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				markErr error
				due     []store.OutboxMessage
				takeErr error
			)
			wg.Go(func() {
				<-start
				markErr = old.MarkOutboxDelivered(ctx, stale, m.ID, []byte("receipt"), later)
			})
			wg.Go(func() {
				<-start
				if _, takeErr = next.TakeOutboxLease(ctx, dest, "next", later, later.Add(time.Minute)); takeErr == nil {
					due, takeErr = next.DueOutbox(ctx, later, "next", 0)
				}
			})
			close(start)
			wg.Wait()
			if takeErr != nil {
				t.Fatalf("round %d: take-over: %v", round, takeErr)
			}
			seen := slices.ContainsFunc(due, func(d store.OutboxMessage) bool { return d.ID == m.ID })
			switch {
			case markErr == nil && !seen:
				recorded++
			case errors.Is(markErr, store.ErrLeaseLost) && seen:
				refused++
			default:
				t.Fatalf("round %d: stale holder's mark: %v; message due for the new holder: %t", round, markErr, seen)
			}
		}
		t.Logf("%d outcomes recorded before the take-over, %d refused after it", recorded, refused)
	})
}
