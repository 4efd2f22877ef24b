package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestBridgePortals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		p := store.BridgePortal{Conference: "conf-1", RoomID: "!a:matrix.example", Created: true, LinkedAt: t0}
		if err := s.PutBridgePortal(ctx, p); err != nil {
			t.Fatal(err)
		}
		refusals := []struct {
			name string
			p    store.BridgePortal
		}{
			{"second room for the conference", store.BridgePortal{Conference: "conf-1", RoomID: "!b:matrix.example"}},
			{"room of another conference", store.BridgePortal{Conference: "conf-2", RoomID: "!a:matrix.example"}},
		}
		for _, r := range refusals {
			if err := s.PutBridgePortal(ctx, r.p); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrConflict", r.name, err)
			}
		}
		if err := s.PutBridgePortal(ctx, store.BridgePortal{Conference: "conf-3"}); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("portal without a room: err = %v, want a refusal naming the missing room", err)
		}
		got, err := s.GetBridgePortal(ctx, "conf-1")
		if err != nil || got != p {
			t.Errorf("GetBridgePortal = %+v, %v; want %+v", got, err, p)
		}
		got, err = s.GetBridgePortalByRoom(ctx, "!a:matrix.example")
		if err != nil || got != p {
			t.Errorf("GetBridgePortalByRoom = %+v, %v; want %+v", got, err, p)
		}
		if _, err := s.GetBridgePortal(ctx, "conf-2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBridgePortal of an unbridged conference: err = %v, want ErrNotFound", err)
		}
		if _, err := s.GetBridgePortalByRoom(ctx, "!b:matrix.example"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBridgePortalByRoom of an unknown room: err = %v, want ErrNotFound", err)
		}
		later := store.BridgePortal{Conference: "conf-4", RoomID: "!d:matrix.example", LinkedAt: p.LinkedAt.Add(time.Minute)}
		if err := s.PutBridgePortal(ctx, later); err != nil {
			t.Fatal(err)
		}
		all, err := s.ListBridgePortals(ctx)
		if err != nil || !slices.Equal(all, []store.BridgePortal{later, p}) {
			t.Errorf("ListBridgePortals = %+v, %v; want %+v", all, err, []store.BridgePortal{later, p})
		}
	})
}

func TestBridgeTransactions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		applied := func(id string) bool {
			t.Helper()
			ok, err := s.BridgeTransactionApplied(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if applied("txn-1") {
			t.Fatal("txn-1 applied before being marked")
		}
		if err := s.MarkBridgeTransaction(ctx, "txn-1", t0); err != nil {
			t.Fatal(err)
		}
		// Marking again keeps the first time, so pruning still sees it as old.
		if err := s.MarkBridgeTransaction(ctx, "txn-1", t0.Add(48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkBridgeTransaction(ctx, "txn-2", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if !applied("txn-1") || !applied("txn-2") || applied("txn-3") {
			t.Fatalf("applied = %t %t %t, want true true false", applied("txn-1"), applied("txn-2"), applied("txn-3"))
		}
		if err := s.MarkBridgeTransaction(ctx, "", t0); err == nil {
			t.Error("MarkBridgeTransaction with no id succeeded")
		}
		n, err := s.PruneBridgeTransactions(ctx, t0.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PruneBridgeTransactions = %d, %v; want 1 deleted", n, err)
		}
		if applied("txn-1") || !applied("txn-2") {
			t.Errorf("after pruning: txn-1 applied = %t, txn-2 applied = %t; want false, true", applied("txn-1"), applied("txn-2"))
		}
	})
}

func TestBridgeGhosts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		g := store.BridgeGhost{UserRef: "bruno@did:web:stats.example", MatrixUser: "@entente_abc:matrix.example",
			DisplayName: "Bruno Lefèvre (National Statistics Agency)", UpdatedAt: t0}
		if err := s.PutBridgeGhost(ctx, g); err != nil {
			t.Fatal(err)
		}
		g.DisplayName = "Bruno Lefèvre (INSEE)"
		g.UpdatedAt = t0.Add(time.Hour)
		if err := s.PutBridgeGhost(ctx, g); err != nil {
			t.Fatalf("replacing the ghost: %v", err)
		}
		got, err := s.GetBridgeGhost(ctx, g.UserRef)
		if err != nil || got != g {
			t.Errorf("GetBridgeGhost = %+v, %v; want %+v", got, err, g)
		}
		got, err = s.GetBridgeGhostByMatrixUser(ctx, g.MatrixUser)
		if err != nil || got != g {
			t.Errorf("GetBridgeGhostByMatrixUser = %+v, %v; want %+v", got, err, g)
		}
		other := store.BridgeGhost{UserRef: "alice@did:web:ministry.example", MatrixUser: g.MatrixUser}
		if err := s.PutBridgeGhost(ctx, other); !errors.Is(err, store.ErrConflict) {
			t.Errorf("ghost taken by another participant: err = %v, want ErrConflict", err)
		}
		if _, err := s.GetBridgeGhost(ctx, other.UserRef); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBridgeGhost of a participant without ghost: err = %v, want ErrNotFound", err)
		}
	})
}

func TestBridgeEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		e := store.BridgeEvent{Conference: "conf-1", Item: "join-link", RoomID: "!a:matrix.example", EventID: "$one", CreatedAt: t0}
		if err := s.PutBridgeEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		refusals := []struct {
			name string
			e    store.BridgeEvent
		}{
			{"item mapped twice", store.BridgeEvent{Conference: "conf-1", Item: "join-link", RoomID: "!a:matrix.example", EventID: "$two"}},
			{"event mapped twice", store.BridgeEvent{Conference: "conf-1", Item: "chat:1", RoomID: "!a:matrix.example", EventID: "$one"}},
		}
		for _, r := range refusals {
			if err := s.PutBridgeEvent(ctx, r.e); !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrConflict", r.name, err)
			}
		}
		// The same item name in another conference is another item.
		if err := s.PutBridgeEvent(ctx, store.BridgeEvent{Conference: "conf-2", Item: "join-link", RoomID: "!b:matrix.example", EventID: "$three"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetBridgeEvent(ctx, "conf-1", "join-link")
		if err != nil || got != e {
			t.Errorf("GetBridgeEvent = %+v, %v; want %+v", got, err, e)
		}
		got, err = s.GetBridgeEventByMatrixID(ctx, "$one")
		if err != nil || got != e {
			t.Errorf("GetBridgeEventByMatrixID = %+v, %v; want %+v", got, err, e)
		}
		if _, err := s.GetBridgeEvent(ctx, "conf-1", "chat:1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetBridgeEvent of an unmapped item: err = %v, want ErrNotFound", err)
		}
	})
}
