package federation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/nodetest"
	"github.com/entente-org/entente/store"
)

// A running node forgets received message ids once no message could carry
// them any more (8 days), and keeps the recent ones.
func TestReplayCacheIsPruned(t *testing.T) {
	f := nodetest.New(t)
	a := f.Start(t, "Ministry", nil)
	ctx := context.Background()
	origin := "did:web:agency.example"
	if _, err := a.Store().RecordInbound(ctx, origin, "old-message", "hash-old", time.Now().Add(-9*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store().RecordInbound(ctx, origin, "recent-message", "hash-recent", time.Now().Add(-6*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	a.Stop(t)
	a = a.Restart(t) // the outbox loop prunes as it starts
	nodetest.Eventually(t, 10*time.Second, "the old id to be forgotten", func() bool {
		_, err := a.Store().RecordInbound(ctx, origin, "old-message", "another-hash", time.Now())
		return err == nil
	})
	if _, err := a.Store().RecordInbound(ctx, origin, "recent-message", "another-hash", time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a recent id was forgotten: %v", err)
	}
}
