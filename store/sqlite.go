package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMaxOpenConns lets readers proceed in parallel under WAL while
// writers, which SQLite serialises anyway, queue on busy_timeout.
const sqliteMaxOpenConns = 4

// OpenSQLite opens (creating if needed) the SQLite database at path and
// brings its schema up to date.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (Store, error) {
	return openSQLite(ctx, path, logger, migrations())
}

func openSQLite(ctx context.Context, path string, logger *slog.Logger, ms []migration) (Store, error) {
	if path == "" {
		return nil, errors.New("store: sqlite: path is empty")
	}
	sqlDB, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	sqlDB.SetMaxOpenConns(sqliteMaxOpenConns)
	d := &sqliteDB{sqlQueries: sqlQueries{sqlDB}, db: sqlDB}
	if err := d.firstPing(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: sqlite %s: %w", path, err), sqlDB.Close())
	}
	s, err := open(ctx, d, sqliteDialect(), ms, orDiscard(logger))
	if err != nil {
		return nil, fmt.Errorf("%w (sqlite %s)", err, path)
	}
	return s, nil
}

// sqliteDSN builds a file: URI so that any path works, even one holding '?'
// or '#'. Every pooled connection gets the pragmas. busy_timeout makes a
// second process wait for a lock instead of failing; _txlock=immediate takes
// the write lock at BEGIN, because a deferred transaction that upgrades from
// reading to writing fails with SQLITE_BUSY without waiting.
func sqliteDSN(path string) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(filepath.ToSlash(filepath.Clean(path)))
	return "file:" + escaped +
		"?_pragma=busy_timeout(10000)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_txlock=immediate"
}

type sqliteDB struct {
	sqlQueries
	db *sql.DB
}

func (d *sqliteDB) inTx(ctx context.Context, fn func(q querier) error) error {
	return sqlInTx(ctx, d.db, fn)
}

// withMigrationLock pins one connection. Each transaction on it begins
// IMMEDIATE (see sqliteDSN), which takes the database's write lock, so a
// second process waits on busy_timeout and then sees what the first applied.
func (d *sqliteDB) withMigrationLock(ctx context.Context, fn func(tx txRunner) error) error {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migration connection: %w", err)
	}
	defer conn.Close()
	return fn(sqlConnTx{conn})
}

func (d *sqliteDB) ping(ctx context.Context) error { return d.db.PingContext(ctx) }

// sqliteOpenWait bounds how long opening waits for another process that is
// setting up the same new database.
const sqliteOpenWait = 10 * time.Second

// firstPing opens the first connection, which sets the pragmas. Switching a
// new database to WAL takes its write lock, and SQLite answers a race for
// that lock with SQLITE_BUSY at once, without waiting on busy_timeout (it
// would deadlock otherwise): when another process is opening the same new
// database, this one tries again until it has done so.
func (d *sqliteDB) firstPing(ctx context.Context) error {
	deadline := time.Now().Add(sqliteOpenWait)
	for {
		err := d.ping(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (d *sqliteDB) close() error { return d.db.Close() }

type sqlConnTx struct{ conn *sql.Conn }

func (c sqlConnTx) inTx(ctx context.Context, fn func(q querier) error) error {
	return sqlInTx(ctx, c.conn, fn)
}

// sqlQueries adapts *sql.DB, *sql.Conn and *sql.Tx to querier.
type sqlQueries struct {
	q interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
		QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}
}

func (s sqlQueries) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, sqliteConstraint(err)
	}
	return res.RowsAffected()
}

func (s sqlQueries) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return sqlRow{s.q.QueryRowContext(ctx, query, args...)}
}

func (s sqlQueries) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := s.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, sqliteConstraint(err)
	}
	return sqlRows{r}, nil
}

type sqlRow struct{ row *sql.Row }

func (r sqlRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return sqliteConstraint(err)
}

// sqliteConstraint gives SQLite's constraint violations the meaning the
// rest of Entente checks for: a taken key is ErrConflict, a reference to a
// missing row ErrNotFound. The driver's error stays wrapped for its detail.
func sqliteConstraint(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}

// sqlRows drops Close's error: any failure while reading is reported by Err.
type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

func sqlInTx(ctx context.Context, b interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}, fn func(q querier) error) error {
	tx, err := b.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(sqlQueries{tx}); err != nil {
		return errors.Join(err, ignoreDone(tx.Rollback()))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// ignoreDone drops the error of rolling back a transaction the driver has
// already ended, which adds nothing to the error that caused the rollback.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
