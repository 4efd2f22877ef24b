package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// migration is one step of the schema history. SQL is a text/template
// rendered with the dialect's column types (see dialect.go); it may hold
// several statements.
type migration struct {
	Version int
	Name    string
	SQL     string
}

// migrations is the schema history, versions 1..n in order. Append new
// entries; never edit or reorder released ones, since databases in the field
// record which versions they already ran.
func migrations() []migration {
	return []migration{
		{Version: 1, Name: "secrets", SQL: `
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      {{.Blob}} NOT NULL,
	updated_at {{.Timestamp}} NOT NULL
)`},
	}
}

const createMigrationsTable = `
CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at {{.Timestamp}} NOT NULL
)`

// migrate applies the migrations d lacks, each in its own transaction, while
// holding the backend's migration lock so that two processes starting at
// once apply each migration exactly once.
func migrate(ctx context.Context, d db, dl dialect, ms []migration, log *slog.Logger) error {
	if err := checkHistory(ms); err != nil {
		return err
	}
	rendered := make([]string, len(ms))
	for i, m := range ms {
		sql, err := dl.render(m)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		rendered[i] = sql
	}
	createTable, err := dl.render(migration{Name: "schema_migrations", SQL: createMigrationsTable})
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	latest := len(ms)

	return d.withMigrationLock(ctx, func(tx txRunner) error {
		err := tx.inTx(ctx, func(q querier) error {
			if _, err := q.exec(ctx, createTable); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			current, err := appliedVersion(ctx, q)
			if err != nil {
				return err
			}
			if current > latest {
				return fmt.Errorf("%w: database is at version %d, this build knows versions up to %d; run a newer Entente",
					ErrSchemaTooNew, current, latest)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: migrate %s: %w", dl.name, err)
		}
		for i, m := range ms {
			var applied bool
			err := tx.inTx(ctx, func(q querier) error {
				// Re-read inside the transaction: on SQLite the lock is the
				// transaction itself, so another process may have applied
				// this step since the previous one.
				current, err := appliedVersion(ctx, q)
				if err != nil {
					return err
				}
				if current >= m.Version {
					return nil
				}
				if _, err := q.exec(ctx, rendered[i]); err != nil {
					return fmt.Errorf("apply migration %d (%s): %w", m.Version, m.Name, err)
				}
				if _, err := q.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
					m.Version, m.Name, time.Now().UTC()); err != nil {
					return fmt.Errorf("record migration %d (%s): %w", m.Version, m.Name, err)
				}
				applied = true
				return nil
			})
			if err != nil {
				return fmt.Errorf("store: migrate %s: %w", dl.name, err)
			}
			if applied {
				log.Info("store migration applied", "version", m.Version, "migration", m.Name)
			}
		}
		return nil
	})
}

// checkHistory refuses a history whose versions are not exactly 1..n, which
// would make "highest applied version" meaningless.
func checkHistory(ms []migration) error {
	for i, m := range ms {
		if m.Version != i+1 {
			return fmt.Errorf("store: migration %q has version %d, want %d", m.Name, m.Version, i+1)
		}
		if m.Name == "" {
			return fmt.Errorf("store: migration %d has no name", m.Version)
		}
	}
	return nil
}

func appliedVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	return v, nil
}
