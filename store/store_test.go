package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/entente-org/entente/store"
	"github.com/entente-org/entente/store/storetest"
)

// forEachBackend runs fn as one subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, b storetest.Backend)) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// applyLog counts the migrations a store reports applying, across any
// number of stores logging to it at once.
type applyLog struct {
	mu       sync.Mutex
	versions []int
}

func (l *applyLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *applyLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *applyLog) WithGroup(string) slog.Handler            { return l }
func (l *applyLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "store migration applied" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "version" {
			l.mu.Lock()
			l.versions = append(l.versions, int(a.Value.Int64()))
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *applyLog) applied() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(slices.Values(l.versions))
}

func allVersions() []int {
	var vs []int
	for _, m := range store.Migrations() {
		vs = append(vs, m.Version)
	}
	return vs
}

func openOrFail(t *testing.T, opts store.Options) store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func closeOrFail(t *testing.T, s store.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func appliedVersions(t *testing.T, s store.Store) []int {
	t.Helper()
	ms, err := store.AppliedMigrations(t.Context(), s)
	if err != nil {
		t.Fatalf("applied migrations: %v", err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

func TestOpenAppliesEveryMigration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		log := &applyLog{}
		opts := b.Database(t)
		opts.Logger = slog.New(log)
		s := openOrFail(t, opts)
		defer closeOrFail(t, s)

		if got := s.Backend(); got != b.Name {
			t.Errorf("Backend() = %q, want %q", got, b.Name)
		}
		v, err := s.SchemaVersion(t.Context())
		if err != nil {
			t.Fatalf("SchemaVersion: %v", err)
		}
		want := allVersions()
		if v != len(want) {
			t.Errorf("SchemaVersion = %d, want %d", v, len(want))
		}
		ms, err := store.AppliedMigrations(t.Context(), s)
		if err != nil {
			t.Fatalf("applied migrations: %v", err)
		}
		if len(ms) != len(store.Migrations()) {
			t.Fatalf("schema_migrations has %d rows, want %d", len(ms), len(store.Migrations()))
		}
		for i, m := range store.Migrations() {
			if ms[i].Version != m.Version || ms[i].Name != m.Name || ms[i].AppliedAt.IsZero() {
				t.Errorf("schema_migrations row %d = %+v, want version %d name %q and a time", i, ms[i], m.Version, m.Name)
			}
		}
		if got := log.applied(); !slices.Equal(got, want) {
			t.Errorf("logged applied versions %v, want %v", got, want)
		}
	})
}

func TestReopenDoesNotReapply(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		opts := b.Database(t)
		first := openOrFail(t, opts)
		before, err := store.AppliedMigrations(t.Context(), first)
		if err != nil {
			t.Fatalf("applied migrations: %v", err)
		}
		closeOrFail(t, first)

		log := &applyLog{}
		opts.Logger = slog.New(log)
		second := openOrFail(t, opts)
		defer closeOrFail(t, second)
		after, err := store.AppliedMigrations(t.Context(), second)
		if err != nil {
			t.Fatalf("applied migrations: %v", err)
		}
		if got := log.applied(); len(got) != 0 {
			t.Errorf("reopen applied versions %v, want none", got)
		}
		if len(after) != len(before) {
			t.Fatalf("schema_migrations went from %d to %d rows", len(before), len(after))
		}
		for i := range before {
			if !after[i].AppliedAt.Equal(before[i].AppliedAt) || after[i].Version != before[i].Version {
				t.Errorf("row %d changed on reopen: %+v, then %+v", i, before[i], after[i])
			}
		}
	})
}

func TestSecrets(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		ctx := t.Context()

		if _, err := s.GetSecret(ctx, "node_keyring"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetSecret of an absent secret: err = %v, want ErrNotFound", err)
		}

		binary := []byte{0, 1, 2, 0xff, 0, '\'', '?'}
		steps := []struct {
			name  string
			value []byte
			want  []byte
		}{
			{"node_keyring", []byte(`{"keys":[1]}`), []byte(`{"keys":[1]}`)},
			{"node_keyring", []byte(`{"keys":[1,2]}`), []byte(`{"keys":[1,2]}`)}, // replaces
			{"binary", binary, binary},
			{"empty", []byte{}, []byte{}},
			{"nil", nil, []byte{}},
		}
		for _, st := range steps {
			if err := s.PutSecret(ctx, st.name, st.value); err != nil {
				t.Fatalf("PutSecret(%q): %v", st.name, err)
			}
			got, err := s.GetSecret(ctx, st.name)
			if err != nil {
				t.Fatalf("GetSecret(%q): %v", st.name, err)
			}
			if got == nil || !bytes.Equal(got, st.want) {
				t.Errorf("GetSecret(%q) = %#v, want %#v", st.name, got, st.want)
			}
		}

		// Replacing one secret leaves the others alone.
		if got, err := s.GetSecret(ctx, "binary"); err != nil || !bytes.Equal(got, binary) {
			t.Errorf("GetSecret(binary) = %v, %v; want %v", got, err, binary)
		}
		if _, err := s.GetSecret(ctx, "Node_Keyring"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("names must be case-sensitive: GetSecret(Node_Keyring) err = %v, want ErrNotFound", err)
		}
		if err := s.PutSecret(ctx, "", []byte("x")); err == nil || !strings.Contains(err.Error(), "name is empty") {
			t.Errorf("PutSecret with empty name: err = %v, want \"name is empty\"", err)
		}
		if _, err := s.GetSecret(ctx, ""); err == nil || !strings.Contains(err.Error(), "name is empty") {
			t.Errorf("GetSecret with empty name: err = %v, want \"name is empty\"", err)
		}
	})
}

func TestSecretsSurviveReopen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		opts := b.Database(t)
		s := openOrFail(t, opts)
		if err := s.PutSecret(t.Context(), "k", []byte("v1")); err != nil {
			t.Fatalf("PutSecret: %v", err)
		}
		closeOrFail(t, s)

		s = openOrFail(t, opts)
		defer closeOrFail(t, s)
		got, err := s.GetSecret(t.Context(), "k")
		if err != nil || string(got) != "v1" {
			t.Fatalf("GetSecret after reopen = %q, %v; want \"v1\"", got, err)
		}
	})
}

func TestPing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		s := openOrFail(t, b.Database(t))
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping on an open store: %v", err)
		}
		closeOrFail(t, s)
		if err := s.Ping(t.Context()); err == nil {
			t.Fatal("Ping on a closed store succeeded")
		}
	})
}

func TestConcurrentOpen(t *testing.T) {
	const openers = 4
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		opts := b.Database(t)
		log := &applyLog{}
		opts.Logger = slog.New(log)

		stores := make([]store.Store, openers)
		errs := make([]error, openers)
		var wg sync.WaitGroup
		for i := range openers {
			wg.Go(func() { stores[i], errs[i] = store.Open(t.Context(), opts) })
		}
		wg.Wait()
		for i, s := range stores {
			if s != nil {
				defer closeOrFail(t, s)
			}
			if errs[i] != nil {
				t.Errorf("opener %d: %v", i, errs[i])
			}
		}
		if t.Failed() {
			return
		}

		want := allVersions()
		if got := log.applied(); !slices.Equal(got, want) {
			t.Errorf("applied versions across %d openers = %v, want each of %v once", openers, got, want)
		}
		if got := appliedVersions(t, stores[0]); !slices.Equal(got, want) {
			t.Errorf("schema_migrations versions = %v, want %v", got, want)
		}
		// Every store works on the one database.
		for i, s := range stores {
			if err := s.PutSecret(t.Context(), fmt.Sprintf("s%d", i), []byte{byte(i)}); err != nil {
				t.Errorf("store %d: PutSecret: %v", i, err)
			}
		}
		for i := range stores {
			got, err := stores[0].GetSecret(t.Context(), fmt.Sprintf("s%d", i))
			if err != nil || !bytes.Equal(got, []byte{byte(i)}) {
				t.Errorf("secret s%d = %v, %v; want [%d]", i, got, err, i)
			}
		}
	})
}

func TestNewerSchemaRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		opts := b.Database(t)
		s := openOrFail(t, opts)
		latest := len(store.Migrations())
		if _, err := store.Exec(t.Context(), s,
			`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, CURRENT_TIMESTAMP)`,
			latest+1, "from_the_future"); err != nil {
			t.Fatalf("record a future migration: %v", err)
		}
		closeOrFail(t, s)

		s, err := store.Open(t.Context(), opts)
		if err == nil {
			closeOrFail(t, s)
			t.Fatal("Open of a database newer than this build succeeded")
		}
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("Open: err = %v, want ErrSchemaTooNew", err)
		}
		want := fmt.Sprintf("database is at version %d, this build knows versions up to %d", latest+1, latest)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: err = %q, want it to say %q", err, want)
		}
	})
}

func TestMigrationsAppendAndRollBack(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b storetest.Backend) {
		ctx := t.Context()
		opts := b.Database(t)
		base := store.Migrations()
		next := len(base) + 1

		// A failing step leaves nothing behind, not even its first statement.
		broken := append(slices.Clone(base), store.Migration{Version: next, Name: "broken",
			SQL: "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1)"})
		if s, err := store.OpenWithMigrations(ctx, opts, broken); err == nil {
			closeOrFail(t, s)
			t.Fatal("Open with a failing migration succeeded")
		} else if !strings.Contains(err.Error(), fmt.Sprintf("apply migration %d (broken)", next)) {
			t.Fatalf("Open with a failing migration: err = %v, want it to name migration %d (broken)", err, next)
		}
		s := openOrFail(t, opts)
		if got := appliedVersions(t, s); !slices.Equal(got, allVersions()) {
			t.Errorf("after the failed step, versions = %v, want %v", got, allVersions())
		}
		if _, err := store.Exec(ctx, s, "INSERT INTO half_done (x) VALUES (?)", 1); err == nil {
			t.Error("table half_done survived its failed migration")
		}
		closeOrFail(t, s)

		// An appended multi-statement step applies whole, with dialect types.
		grown := append(slices.Clone(base), store.Migration{Version: next, Name: "two_tables",
			SQL: "CREATE TABLE first_t (id {{.AutoID}}, b {{.Blob}}); CREATE TABLE second_t (at {{.Timestamp}})"})
		s, err := store.OpenWithMigrations(ctx, opts, grown)
		if err != nil {
			t.Fatalf("Open with an appended migration: %v", err)
		}
		defer closeOrFail(t, s)
		if v, err := s.SchemaVersion(ctx); err != nil || v != next {
			t.Errorf("SchemaVersion = %d, %v; want %d", v, err, next)
		}
		inserts := []struct {
			query string
			args  []any
		}{
			{"INSERT INTO first_t (b) VALUES (?)", []any{[]byte{1}}},
			{"INSERT INTO second_t (at) VALUES (CURRENT_TIMESTAMP)", nil},
		}
		for _, in := range inserts {
			if n, err := store.Exec(ctx, s, in.query, in.args...); err != nil || n != 1 {
				t.Errorf("%s: %d rows, %v; want 1 row", in.query, n, err)
			}
		}
	})
}
