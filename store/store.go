package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Store is the node's persistence, whichever backend holds it.
type Store interface {
	// Backend is "sqlite" or "postgres".
	Backend() string
	Ping(ctx context.Context) error
	Close() error
	// SchemaVersion is the highest migration applied to the database.
	SchemaVersion(ctx context.Context) (int, error)
	// GetSecret returns the named secret, or an error wrapping ErrNotFound
	// when there is none. Secrets are small named blobs, such as the node's
	// key ring when keys are kept in the database.
	GetSecret(ctx context.Context, name string) ([]byte, error)
	// PutSecret inserts the named secret or replaces its value.
	PutSecret(ctx context.Context, name string, value []byte) error
}

var (
	// ErrNotFound is wrapped by lookups that find nothing.
	ErrNotFound = errors.New("store: not found")
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

// dbStore implements Store once, over either backend's adapter.
type dbStore struct {
	dialect dialect
	db      db
	log     *slog.Logger
}

// open migrates d and wraps it as a Store; d is closed if that fails.
func open(ctx context.Context, d db, dl dialect, ms []migration, log *slog.Logger) (*dbStore, error) {
	s := &dbStore{dialect: dl, db: d, log: log.With("backend", dl.name)}
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
