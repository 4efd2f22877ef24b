package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestGuestLinks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		l := store.GuestLink{ID: "gl1", Conference: "c-1", SecretHash: "ab12", CreatedBy: "alice@did:web:a.example",
			CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), MaxGuests: 2}
		if err := s.PutGuestLink(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := s.PutGuestLink(ctx, l); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("PutGuestLink of a stored id: %v, want ErrConflict", err)
		}
		if got, err := s.GetGuestLink(ctx, "gl1"); err != nil || got != l {
			t.Fatalf("GetGuestLink = %+v, %v; want %+v", got, err, l)
		}
		if _, err := s.GetGuestLink(ctx, "gl2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetGuestLink of an unknown id: %v, want ErrNotFound", err)
		}
		if err := s.PutUser(ctx, store.User{ID: "guest.x1", DisplayName: "Zoé", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		g := store.Guest{UserID: "guest.x1", LinkID: "gl1", Conference: "c-1", CreatedAt: t0}
		if err := s.PutGuest(ctx, g); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetGuest(ctx, "guest.x1"); err != nil || got != g {
			t.Fatalf("GetGuest = %+v, %v; want %+v", got, err, g)
		}
		if err := s.PutGuest(ctx, store.Guest{UserID: "guest.x1", LinkID: "nope", Conference: "c-1"}); err == nil {
			t.Fatal("PutGuest through an unknown link was accepted")
		}
		if err := s.InTx(ctx, func(tx store.Tx) error { return tx.LockGuestLink(ctx, "gl1") }); err != nil {
			t.Fatalf("LockGuestLink: %v", err)
		}
		if err := s.LockGuestLink(ctx, "gl2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("LockGuestLink of an unknown id: %v, want ErrNotFound", err)
		}
		if err := s.RevokeGuestLink(ctx, "gl1"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeGuestLink(ctx, "gl2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("RevokeGuestLink of an unknown id: %v, want ErrNotFound", err)
		}
		l.Revoked, l.Guests = true, 1
		ls, err := s.ListGuestLinks(ctx, "c-1")
		if err != nil || len(ls) != 1 || ls[0] != l {
			t.Fatalf("ListGuestLinks = %+v, %v; want [%+v]", ls, err, l)
		}

		p := store.Participant{Conference: "c-1", User: "guest.x1@did:web:a.example", Node: "did:web:a.example",
			DisplayName: "Zoé (guest, unverified)", Organisation: "A", JoinedSeq: 3, JoinEvent: "e", Waiting: true, Guest: true}
		if err := s.PutParticipant(ctx, p); err != nil {
			t.Fatal(err)
		}
		if ps, err := s.ListParticipants(ctx, "c-1"); err != nil || len(ps) != 1 || ps[0] != p {
			t.Fatalf("ListParticipants = %+v, %v; want the guest", ps, err)
		}
	})
}

func TestSessionChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		if err := s.PutUser(ctx, store.User{ID: "amartin", DisplayName: "Alice", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		c := store.SessionCheck{Hash: "aa11", Subject: "s-1", AccessToken: "at", RefreshToken: "rt", TokenExpires: t0.Add(time.Hour), CheckedAt: t0}
		if err := s.PutSessionCheck(ctx, c); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("PutSessionCheck without its session: %v, want ErrNotFound", err)
		}
		if err := s.PutSession(ctx, store.Session{Hash: "aa11", UserID: "amartin", ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSessionCheck(ctx, c); err != nil {
			t.Fatal(err)
		}
		c.AccessToken, c.CheckedAt = "at2", t0.Add(time.Minute)
		if err := s.PutSessionCheck(ctx, c); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetSessionCheck(ctx, "aa11"); err != nil || got != c {
			t.Fatalf("GetSessionCheck = %+v, %v; want %+v", got, err, c)
		}
		if err := s.DeleteSession(ctx, "aa11"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSessionCheck(ctx, "aa11"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the check of a deleted session: %v, want ErrNotFound", err)
		}
	})
}
