package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

func TestRecordInbound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()
		const (
			agency = "did:web:agency.example"
			city   = "did:web:city.example"
			id     = "01JDX4G3Y3ZC9QK4W7A1B2C3D4"
		)
		steps := []struct {
			name          string
			origin, id    string
			hash          string
			at            time.Time
			wantDuplicate bool
			wantErr       error
		}{
			{"first", agency, id, "h1", t0, false, nil},
			{"repeated", agency, id, "h1", t0.Add(time.Minute), true, nil},
			{"same id, other content", agency, id, "h2", t0.Add(time.Minute), false, store.ErrConflict},
			{"same id, other origin", city, id, "h2", t0.Add(time.Hour), false, nil},
			{"other id", agency, "other", "h3", t0.Add(2 * time.Hour), false, nil},
			{"repeated after a conflict", agency, id, "h1", t0.Add(time.Minute), true, nil},
		}
		for _, st := range steps {
			dup, err := s.RecordInbound(ctx, st.origin, st.id, st.hash, st.at)
			if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
				t.Fatalf("%s: RecordInbound err = %v, want %v", st.name, err, st.wantErr)
			}
			if dup != st.wantDuplicate {
				t.Errorf("%s: duplicate = %t, want %t", st.name, dup, st.wantDuplicate)
			}
		}
		if _, err := s.RecordInbound(ctx, "", id, "h", t0); err == nil {
			t.Error("RecordInbound with no origin succeeded")
		}

		// Entries are dated when first recorded: a repeat does not renew them.
		n, err := s.PruneInbound(ctx, t0.Add(time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("PruneInbound(t0+1h) = %d, %v; want 1 deleted", n, err)
		}
		if n, err := s.PruneInbound(ctx, t0.Add(time.Hour)); err != nil || n != 0 {
			t.Errorf("second PruneInbound = %d, %v; want 0", n, err)
		}
		// The pruned id is new again; the kept ones are still known.
		if dup, err := s.RecordInbound(ctx, agency, id, "h2", t0.Add(3*time.Hour)); err != nil || dup {
			t.Errorf("RecordInbound of a pruned id = %t, %v; want a fresh entry", dup, err)
		}
		if dup, err := s.RecordInbound(ctx, city, id, "h2", t0.Add(3*time.Hour)); err != nil || !dup {
			t.Errorf("RecordInbound of a kept id = %t, %v; want duplicate", dup, err)
		}
		if n, err := s.PruneInbound(ctx, t0.Add(24*time.Hour)); err != nil || n != 3 {
			t.Errorf("PruneInbound(t0+24h) = %d, %v; want 3", n, err)
		}
	})
}
