package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// CheckWritable fails, naming the cause, while the database takes no
// writes, and succeeds again once it does.
func TestCheckWritable(t *testing.T) {
	check := func(t *testing.T, s store.Store, d time.Duration) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return s.CheckWritable(ctx)
	}
	t.Run("sqlite write lock held", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "entente.db")
		s := openOrFail(t, store.Options{SQLitePath: path})
		defer closeOrFail(t, s)
		if err := check(t, s, 10*time.Second); err != nil {
			t.Fatalf("CheckWritable on a writable store: %v", err)
		}
		release := storetest.HoldSQLiteWriteLock(t, path)
		start := time.Now()
		err := check(t, s, 500*time.Millisecond)
		t.Logf("CheckWritable with the lock held: %v after %s", err, time.Since(start))
		if err == nil || !strings.Contains(err.Error(), "store: write to sqlite") {
			t.Fatalf("CheckWritable with the write lock held by another connection = %v, want an error", err)
		}
		release()
		if err := check(t, s, 10*time.Second); err != nil {
			t.Fatalf("CheckWritable after the lock was released: %v", err)
		}
	})
	t.Run("postgres read-only", func(t *testing.T) {
		url, setReadOnly := storetest.ReadOnlyPostgres(t)
		s := openOrFail(t, store.Options{DatabaseURL: url})
		defer closeOrFail(t, s)
		if err := check(t, s, 10*time.Second); err != nil {
			t.Fatalf("CheckWritable on a writable store: %v", err)
		}
		setReadOnly(t, true)
		// The first query after the sessions ended may meet a dead
		// connection; what matters is that the store then says why it
		// cannot write.
		var err error
		for range 5 {
			if err = check(t, s, 10*time.Second); err != nil && strings.Contains(err.Error(), "read-only transaction") {
				break
			}
		}
		if err == nil || !strings.Contains(err.Error(), "store: write to postgres") || !strings.Contains(err.Error(), "cannot execute INSERT in a read-only transaction") {
			t.Fatalf("CheckWritable on a read-only database = %v, want the read-only refusal", err)
		}
		setReadOnly(t, false)
		for range 5 {
			if err = check(t, s, 10*time.Second); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("CheckWritable once writable again: %v", err)
		}
	})
}
