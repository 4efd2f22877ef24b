package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestSignInRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		alice := store.User{ID: "amartin", DisplayName: "Alice Martin", CreatedAt: t0, Unit: "Direction du budget"}
		for _, u := range []store.User{alice, {ID: "bob", DisplayName: "Bob", CreatedAt: t0}} {
			if err := s.PutUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.GetUser(ctx, "amartin"); err != nil || got != alice {
			t.Fatalf("GetUser = %+v, %v; want %+v with its unit", got, err, alice)
		}

		// Identities: one per (issuer, subject), one per user.
		id := store.Identity{Issuer: "https://sso.example/", Subject: "s-1", UserID: "amartin", Email: "alice@finances.example", UpdatedAt: t0}
		if err := s.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetIdentity(ctx, id.Issuer, id.Subject); err != nil || got != id {
			t.Fatalf("GetIdentity = %+v, %v", got, err)
		}
		if got, err := s.GetIdentityOfUser(ctx, "amartin"); err != nil || got != id {
			t.Fatalf("GetIdentityOfUser = %+v, %v", got, err)
		}
		other := store.Identity{Issuer: id.Issuer, Subject: "s-2", UserID: "amartin", UpdatedAt: t0}
		if err := s.PutIdentity(ctx, other); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a second identity for the same user: %v, want ErrConflict", err)
		}
		if _, err := s.GetIdentity(ctx, id.Issuer, "s-2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused identity: %v, want ErrNotFound", err)
		}

		// Sessions.
		ss := store.Session{Hash: "aa11", UserID: "amartin", CSRF: "c", IDToken: "x.y.z", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.PutSession(ctx, ss); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSession(ctx, ss); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("PutSession of a stored hash: %v, want ErrConflict", err)
		}
		if got, err := s.GetSession(ctx, ss.Hash); err != nil || got != ss {
			t.Fatalf("GetSession = %+v, %v", got, err)
		}
		if err := s.PutSession(ctx, store.Session{Hash: "bb22", UserID: "bob", ExpiresAt: t0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.DeleteUserSessions(ctx, "bob"); err != nil || n != 1 {
			t.Fatalf("DeleteUserSessions = %d, %v", n, err)
		}
		if err := s.DeleteSession(ctx, ss.Hash); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSession(ctx, ss.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting it again: %v, want ErrNotFound", err)
		}

		// Flows are taken once, even by racing callbacks.
		f := store.SignInFlow{State: "st", Nonce: "n", Verifier: "v", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
		if err := s.PutSignInFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		taken, missed := 0, 0
		for range 4 {
			wg.Go(func() {
				got, err := s.TakeSignInFlow(ctx, "st")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && got == f:
					taken++
				case errors.Is(err, store.ErrNotFound):
					missed++
				default:
					t.Errorf("TakeSignInFlow = %+v, %v", got, err)
				}
			})
		}
		wg.Wait()
		if taken != 1 || missed != 3 {
			t.Fatalf("flow taken %d times, missed %d; want 1 and 3", taken, missed)
		}

		// Pruning removes what expired, nothing else.
		for _, fl := range []store.SignInFlow{
			{State: "old", ExpiresAt: t0.Add(time.Minute)}, {State: "new", ExpiresAt: t0.Add(time.Hour)},
		} {
			if err := s.PutSignInFlow(ctx, fl); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutSession(ctx, store.Session{Hash: "old", UserID: "amartin", ExpiresAt: t0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneSignIn(ctx, t0.Add(30*time.Minute)); err != nil || n != 2 {
			t.Fatalf("PruneSignIn = %d, %v; want 2", n, err)
		}
		if _, err := s.TakeSignInFlow(ctx, "new"); err != nil {
			t.Fatalf("the unexpired flow was pruned: %v", err)
		}
	})
}
