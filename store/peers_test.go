package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// t0 is a fixed, millisecond-exact UTC time the federation tests build on.
var t0 = time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)

func TestPeers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()

		if _, err := s.GetPeer(ctx, "did:web:nobody.example"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetPeer of an absent peer: err = %v, want ErrNotFound", err)
		}

		paris, err := time.LoadLocation("Europe/Paris")
		if err != nil {
			t.Fatalf("load location: %v", err)
		}
		agency := store.Peer{DID: "did:web:agency.example", Name: "National Statistics Agency",
			KeyPin: "zDnaexample", MayInvite: true, MayRelayMedia: false,
			// Another zone and sub-millisecond digits: read back in UTC, to the millisecond.
			AddedAt: time.Date(2026, 3, 1, 10, 30, 0, 123_456_789, paris)}
		ministry := store.Peer{DID: "did:web:Ministry.example", Name: "Ministry", MayRelayMedia: true}
		city := store.Peer{DID: "did:web:city.example", Name: "City Hall", AddedAt: t0}
		for _, p := range []store.Peer{agency, ministry, city} {
			if err := s.PutPeer(ctx, p); err != nil {
				t.Fatalf("PutPeer(%s): %v", p.DID, err)
			}
		}

		wantAgency := agency
		wantAgency.AddedAt = time.Date(2026, 3, 1, 9, 30, 0, 123_000_000, time.UTC)
		got, err := s.GetPeer(ctx, agency.DID)
		if err != nil {
			t.Fatalf("GetPeer: %v", err)
		}
		if got != wantAgency {
			t.Errorf("GetPeer = %+v, want %+v", got, wantAgency)
		}
		if got.AddedAt.Location() != time.UTC {
			t.Errorf("AddedAt location = %v, want UTC", got.AddedAt.Location())
		}
		// Zero time and empty pin survive as such.
		if got, err := s.GetPeer(ctx, ministry.DID); err != nil || got != ministry {
			t.Errorf("GetPeer(%s) = %+v, %v; want %+v", ministry.DID, got, err, ministry)
		}

		// Replace is whole: the pin is dropped, the flags flip.
		replaced := store.Peer{DID: agency.DID, Name: "Statistics Agency", MayInvite: false, MayRelayMedia: true, AddedAt: t0.Add(time.Hour)}
		if err := s.PutPeer(ctx, replaced); err != nil {
			t.Fatalf("PutPeer replace: %v", err)
		}
		if got, err := s.GetPeer(ctx, agency.DID); err != nil || got != replaced {
			t.Errorf("after replace GetPeer = %+v, %v; want %+v", got, err, replaced)
		}

		// Bytewise order on both backends: upper case before lower case.
		list, err := s.ListPeers(ctx)
		if err != nil {
			t.Fatalf("ListPeers: %v", err)
		}
		if want := []store.Peer{ministry, replaced, city}; !slices.Equal(list, want) {
			t.Errorf("ListPeers = %+v, want %+v", list, want)
		}

		if err := s.DeletePeer(ctx, city.DID); err != nil {
			t.Fatalf("DeletePeer: %v", err)
		}
		if err := s.DeletePeer(ctx, city.DID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second DeletePeer: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetPeer(ctx, city.DID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPeer after delete: err = %v, want ErrNotFound", err)
		}
		if list, err := s.ListPeers(ctx); err != nil || len(list) != 2 {
			t.Errorf("ListPeers after delete = %d peers, %v; want 2", len(list), err)
		}
		if err := s.PutPeer(ctx, store.Peer{Name: "no DID"}); err == nil {
			t.Error("PutPeer without a DID succeeded")
		}
	})
}
