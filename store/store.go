package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Store is the node's persistence, whichever backend holds it. Its data
// methods (Tx) each run on their own; InTx groups several into one
// transaction.
type Store interface {
	Tx
	// Backend is "sqlite" or "postgres".
	Backend() string
	Ping(ctx context.Context) error
	// CheckWritable commits a small write (one row of the health table),
	// so that a full disk, a read-only database or a lock held too long
	// shows as an error naming the cause.
	CheckWritable(ctx context.Context) error
	Close() error
	// SchemaVersion is the highest migration applied to the database.
	SchemaVersion(ctx context.Context) (int, error)
	// InTx runs fn in one transaction; fn's Tx sees and makes changes
	// atomically. The transaction commits when fn returns nil and rolls back
	// otherwise, returning fn's error. fn must use tx, not the Store: on
	// SQLite the transaction holds the write lock until it ends.
	InTx(ctx context.Context, fn func(tx Tx) error) error
}

var (
	// ErrNotFound is wrapped by lookups that find nothing.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is wrapped by writes refused by a unique constraint: a
	// record seq or event id already taken, a token hash already stored, a
	// message id seen with other content.
	ErrConflict = errors.New("store: conflict")
	// ErrSchemaTooNew is returned by Open when the database was migrated by a
	// newer Entente than this one; running on it could corrupt data.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this build supports")
)

// Backend names, as returned by Store.Backend.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
)

// Options selects and locates the backend.
type Options struct {
	// DatabaseURL is a postgres:// or postgresql:// URL; empty selects SQLite.
	DatabaseURL string
	// SQLitePath is the database file used when DatabaseURL is empty.
	SQLitePath string
	// Logger may be nil.
	Logger *slog.Logger
}

// Open opens the backend opts selects and brings its schema up to date.
func Open(ctx context.Context, opts Options) (Store, error) {
	return openWith(ctx, opts, migrations())
}

func openWith(ctx context.Context, opts Options, ms []migration) (Store, error) {
	if opts.DatabaseURL != "" {
		return openPostgres(ctx, opts.DatabaseURL, opts.Logger, ms)
	}
	if opts.SQLitePath == "" {
		return nil, errors.New("store: neither DatabaseURL nor SQLitePath is set")
	}
	return openSQLite(ctx, opts.SQLitePath, opts.Logger, ms)
}

// dbStore implements Store once, over either backend's adapter. Its data
// methods come from queries over the pool; InTx hands fn queries over the
// transaction instead.
type dbStore struct {
	queries
	dialect dialect
	db      db
	log     *slog.Logger
}

// open migrates d and wraps it as a Store; d is closed if that fails.
func open(ctx context.Context, d db, dl dialect, ms []migration, log *slog.Logger) (*dbStore, error) {
	s := &dbStore{queries: queries{q: d, forShare: dl.forShare}, dialect: dl, db: d, log: log.With("backend", dl.name)}
	if err := migrate(ctx, d, dl, ms, s.log); err != nil {
		return nil, errors.Join(err, d.close())
	}
	return s, nil
}

func (s *dbStore) Backend() string { return s.dialect.name }

func (s *dbStore) Ping(ctx context.Context) error {
	if err := s.db.ping(ctx); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.dialect.name, err)
	}
	return nil
}

func (s *dbStore) CheckWritable(ctx context.Context) error {
	_, err := s.db.exec(ctx, `INSERT INTO health (id, checked_at) VALUES (1, ?)
	ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("store: write to %s: %w", s.dialect.name, err)
	}
	return nil
}

func (s *dbStore) Close() error {
	if err := s.db.close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.dialect.name, err)
	}
	return nil
}

func (s *dbStore) SchemaVersion(ctx context.Context) (int, error) {
	v, err := appliedVersion(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("store: schema version: %w", err)
	}
	return v, nil
}

// orDiscard lets callers pass a nil logger.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
