package accounts_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/entente-org/entente/internal/accounts"
	"github.com/entente-org/entente/internal/httpapi"
	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// TestGuestLinkMaxGuestsUnderConcurrency: guests redeeming one link at once
// are counted one after the other, so a link lets in exactly max_guests of
// them, on every backend.
func TestGuestLinkMaxGuestsUnderConcurrency(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := b.Open(t)
			ctx := context.Background()
			now := time.Now()
			if err := s.PutConference(ctx, store.Conference{ID: "c-guests", Host: "did:web:a.example", Title: "Open", CreatedBy: "alice@did:web:a.example", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			_, link, err := accounts.NewGuestLink(ctx, s, "c-guests", "alice@did:web:a.example", time.Hour, 3, now)
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			results := map[string]int{}
			for range 10 {
				wg.Go(func() {
					_, _, err := accounts.RedeemGuestLink(ctx, s, link, "Guest", now)
					code := "ok"
					if fe, ok := errors.AsType[*httpapi.Error](err); ok {
						code = fe.Code
					} else if err != nil {
						code = err.Error()
					}
					mu.Lock()
					results[code]++
					mu.Unlock()
				})
			}
			wg.Wait()
			if results["ok"] != 3 || results["link_full"] != 7 {
				t.Fatalf("10 guests at once on a 3-guest link: %v, want 3 ok and 7 link_full", results)
			}
		})
	}
}
