// Package storetest gives other packages' tests a fresh, isolated store on
// every backend, so that each test runs against real SQLite and real
// PostgreSQL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/entente-org/entente/store"
)

// DatabaseURLEnv names the PostgreSQL server tests use. Without it, or when
// the server is unreachable, PostgreSQL tests are skipped, unless CI is
// "true", where they fail instead.
const DatabaseURLEnv = "ENTENTE_TEST_DATABASE_URL"

const connectTimeout = 10 * time.Second

// Backend is one store backend under test; run t.Run(b.Name, ...) for each.
type Backend struct {
	Name string
	// Open returns a store on a fresh, empty database, closed when the test
	// ends.
	Open func(t testing.TB) store.Store
	// Database returns options that reach a fresh, empty database, removed
	// when the test ends. Opening them more than once reaches the same
	// database, for tests of several stores or processes sharing one.
	Database func(t testing.TB) store.Options
}

// Backends returns "sqlite" and "postgres", in that order.
func Backends(t testing.TB) []Backend {
	t.Helper()
	sqlite := func(t testing.TB) store.Options {
		t.Helper()
		return store.Options{SQLitePath: filepath.Join(t.TempDir(), "entente.db")}
	}
	postgres := func(t testing.TB) store.Options {
		t.Helper()
		return store.Options{DatabaseURL: PostgresURL(t)}
	}
	return []Backend{
		{Name: store.BackendSQLite, Database: sqlite, Open: opener(sqlite)},
		{Name: store.BackendPostgres, Database: postgres, Open: opener(postgres)},
	}
}

func opener(database func(t testing.TB) store.Options) func(t testing.TB) store.Store {
	return func(t testing.TB) store.Store {
		t.Helper()
		s, err := store.Open(t.Context(), database(t))
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
		return s
	}
}

// PostgresURL returns a URL for the server in ENTENTE_TEST_DATABASE_URL whose
// search_path is a schema created for this test alone and dropped when it
// ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(DatabaseURLEnv)
	if base == "" {
		unavailable(t, DatabaseURLEnv+" is not set")
	}
	u, err := url.Parse(base)
	if err != nil {
		// url.Error would quote the password.
		t.Fatalf("%s is not a valid URL", DatabaseURLEnv)
	}

	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(t, "PostgreSQL at "+u.Redacted()+" is unreachable: "+err.Error())
	}
	defer conn.Close(ctx)

	schema := "entente_test_" + randomHex(t)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func dropSchema(t testing.TB, base, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Errorf("drop schema %s: connect: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

// unavailable skips the test, or fails it in CI, where a missing database
// must not pass silently.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL tests cannot run: %s", why)
	}
	t.Skipf("skipping PostgreSQL tests: %s", why)
}

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random schema name: %v", err)
	}
	return hex.EncodeToString(b)
}

// ReadOnlyPostgres returns a URL reaching a fresh schema as a role of its
// own, and a function that makes that role's sessions read-only (or
// writable again) at once: it sets the role's default_transaction_read_only
// and ends its open sessions, as a failover to a standby would. Tests use it
// to see how a node behaves when its database stops taking writes.
func ReadOnlyPostgres(t testing.TB) (string, func(t testing.TB, readOnly bool)) {
	t.Helper()
	base := PostgresURL(t) // skips or fails as every PostgreSQL test does
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a valid URL", DatabaseURLEnv)
	}
	schema := u.Query().Get("search_path")
	role := "entente_role_" + randomHex(t)
	admin := func(t testing.TB, sqls ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, os.Getenv(DatabaseURLEnv))
		if err != nil {
			t.Fatalf("connect as administrator: %v", err)
		}
		defer conn.Close(ctx)
		for _, q := range sqls {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	admin(t, "CREATE ROLE "+role+" LOGIN", "GRANT ALL ON SCHEMA "+schema+" TO "+role)
	// Registered after PostgresURL's cleanup, so it runs before the schema
	// is dropped: the role's sessions end and it owns nothing any more.
	t.Cleanup(func() {
		admin(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+role+"'",
			"DROP OWNED BY "+role+" CASCADE", "DROP ROLE "+role)
	})
	u.User = url.User(role)
	set := func(t testing.TB, readOnly bool) {
		t.Helper()
		change := "ALTER ROLE " + role + " RESET default_transaction_read_only"
		if readOnly {
			change = "ALTER ROLE " + role + " SET default_transaction_read_only = on"
		}
		admin(t, change, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '"+role+"'")
	}
	return u.String(), set
}

// HoldSQLiteWriteLock takes the write lock of the SQLite database at path
// from a connection of its own, as a stuck writer in another process (a
// backup, an administrator's shell) would, until release is called or the
// test ends. The store's writers then wait for it and fail.
func HoldSQLiteWriteLock(t testing.TB, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(path))
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("connect to %s: %v", path, err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatalf("take the write lock of %s: %v", path, err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Errorf("release the write lock of %s: %v", path, err)
			}
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(release)
	return release
}
