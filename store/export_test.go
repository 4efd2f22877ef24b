package store

import (
	"context"
	"fmt"
	"time"
)

// Migration exposes the schema history's entries to the external tests.
type Migration = migration

func Migrations() []Migration { return migrations() }

// OpenWithMigrations opens opts with a history other than the real one.
func OpenWithMigrations(ctx context.Context, opts Options, ms []Migration) (Store, error) {
	return openWith(ctx, opts, ms)
}

// Exec runs a statement, written with ? placeholders, on s's database.
func Exec(ctx context.Context, s Store, query string, args ...any) (int64, error) {
	return s.(*dbStore).db.exec(ctx, query, args...)
}

type AppliedMigration struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// AppliedMigrations lists schema_migrations in version order.
func AppliedMigrations(ctx context.Context, s Store) ([]AppliedMigration, error) {
	rs, err := s.(*dbStore).db.query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []AppliedMigration
	for rs.Next() {
		var m AppliedMigration
		if err := rs.Scan(&m.Version, &m.Name, &m.AppliedAt); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		out = append(out, m)
	}
	return out, rs.Err()
}
