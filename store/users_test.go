package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()

		if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUser of an absent user: err = %v, want ErrNotFound", err)
		}
		if list, err := s.ListUsers(ctx); err != nil || len(list) != 0 {
			t.Fatalf("ListUsers on an empty store = %v, %v; want none", list, err)
		}
		bob := store.User{ID: "bob", DisplayName: "Bob Martin", CreatedAt: t0}
		alice := store.User{ID: "alice", DisplayName: "Alice Durand", Admin: true, CreatedAt: t0.Add(time.Minute)}
		for _, u := range []store.User{bob, alice} {
			if err := s.PutUser(ctx, u); err != nil {
				t.Fatalf("PutUser(%s): %v", u.ID, err)
			}
		}
		bob.DisplayName, bob.Admin = "Robert Martin", true
		if err := s.PutUser(ctx, bob); err != nil {
			t.Fatalf("PutUser replace: %v", err)
		}
		if got, err := s.GetUser(ctx, "bob"); err != nil || got != bob {
			t.Errorf("GetUser(bob) = %+v, %v; want %+v", got, err, bob)
		}
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		if want := []store.User{alice, bob}; !slices.Equal(list, want) {
			t.Errorf("ListUsers = %+v, want %+v", list, want)
		}
	})
}

func TestTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		if err := s.PutUser(ctx, store.User{ID: "alice", DisplayName: "Alice", CreatedAt: t0}); err != nil {
			t.Fatalf("PutUser: %v", err)
		}

		tok := store.Token{Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			UserID: "alice", CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)}
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatalf("PutToken: %v", err)
		}
		if got, err := s.GetToken(ctx, tok.Hash); err != nil || got != tok {
			t.Errorf("GetToken = %+v, %v; want %+v", got, err, tok)
		}

		again := tok
		again.ExpiresAt = t0.Add(time.Hour)
		if err := s.PutToken(ctx, again); !errors.Is(err, store.ErrConflict) {
			t.Errorf("PutToken of a stored hash: err = %v, want ErrConflict", err)
		}
		if got, err := s.GetToken(ctx, tok.Hash); err != nil || got != tok {
			t.Errorf("after the refused PutToken, GetToken = %+v, %v; want %+v unchanged", got, err, tok)
		}

		orphan := store.Token{Hash: "00ff", UserID: "mallory", CreatedAt: t0}
		if err := s.PutToken(ctx, orphan); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutToken for an unknown user: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetToken(ctx, orphan.Hash); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetToken of the refused token: err = %v, want ErrNotFound", err)
		}

		if err := s.RevokeToken(ctx, tok.Hash); err != nil {
			t.Fatalf("RevokeToken: %v", err)
		}
		want := tok
		want.Revoked = true
		if got, err := s.GetToken(ctx, tok.Hash); err != nil || got != want {
			t.Errorf("after revoke GetToken = %+v, %v; want %+v", got, err, want)
		}
		if err := s.RevokeToken(ctx, "absent"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeToken of an absent hash: err = %v, want ErrNotFound", err)
		}
	})
}
