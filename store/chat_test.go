package store_test

import (
	"errors"
	"testing"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestChatLines(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		line := store.ChatLine{Conference: "conf-1", ID: "sig-1", Sender: "bruno@did:web:agency.example", CreatedAt: t0}
		bridged := store.ChatLine{Conference: "conf-1", ID: "sig-2", Sender: "did:web:agency.example", As: "@dora:matrix.example", CreatedAt: t0}
		for _, l := range []store.ChatLine{line, bridged} {
			if err := s.PutChatLine(ctx, l); err != nil {
				t.Fatal(err)
			}
		}
		// The first author of an id keeps it.
		if err := s.PutChatLine(ctx, store.ChatLine{Conference: "conf-1", ID: "sig-1", Sender: "eve@did:web:other.example", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second line with the same id: err = %v, want ErrConflict", err)
		}
		if err := s.PutChatLine(ctx, store.ChatLine{Conference: "conf-1", ID: "sig-3"}); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("line without a sender: err = %v, want a refusal naming the missing sender", err)
		}
		for _, want := range []store.ChatLine{line, bridged} {
			if got, err := s.GetChatLine(ctx, want.Conference, want.ID); err != nil || got != want {
				t.Errorf("GetChatLine(%s) = %+v, %v; want %+v", want.ID, got, err, want)
			}
		}
		// Ids are per conference.
		if _, err := s.GetChatLine(ctx, "conf-2", "sig-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("line of another conference: err = %v, want ErrNotFound", err)
		}
	})
}
