package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLockKey is the pg_advisory_lock key every Entente node takes
// while migrating. Advisory locks are per database, not per schema, so
// nodes sharing one database simply migrate one after the other.
const migrationLockKey int64 = 0x656e74656e7465 // "entente"

// unlockTimeout bounds releasing the migration lock after the caller's
// context has ended.
const unlockTimeout = 5 * time.Second

// OpenPostgres connects to the PostgreSQL database at rawURL (postgres:// or
// postgresql://) and brings its schema up to date. Errors never contain the
// URL's password.
func OpenPostgres(ctx context.Context, rawURL string, logger *slog.Logger) (Store, error) {
	return openPostgres(ctx, rawURL, logger, migrations())
}

func openPostgres(ctx context.Context, rawURL string, logger *slog.Logger, ms []migration) (Store, error) {
	secrets, err := checkPostgresURL(rawURL)
	if err != nil {
		return nil, err
	}
	s, err := connectPostgres(ctx, rawURL, logger, ms)
	if err != nil {
		return nil, redact(err, secrets...)
	}
	return s, nil
}

func connectPostgres(ctx context.Context, rawURL string, logger *slog.Logger, ms []migration) (*dbStore, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	d := &pgDB{pgQueries: pgQueries{pool}, pool: pool}
	if err := d.ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: postgres: connect to %s as %s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.User, err)
	}
	return open(ctx, d, postgresDialect(), ms, orDiscard(logger))
}

// checkPostgresURL accepts only postgres:// and postgresql:// URLs and
// returns the forms of the password they carry, so that errors can be
// scrubbed of it. Its own errors never quote the URL.
func checkPostgresURL(rawURL string) (passwordForms []string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// url.Error quotes the whole URL, password included.
			err = uerr.Err
		}
		return nil, fmt.Errorf("store: database URL is not a valid URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, fmt.Errorf("store: database URL must start with postgres:// or postgresql://, got scheme %q", u.Scheme)
	}
	if u.Opaque != "" {
		return nil, errors.New("store: database URL must be of the form postgres://host/database")
	}
	password, ok := u.User.Password()
	if !ok || password == "" {
		return nil, nil
	}
	forms := []string{password, url.QueryEscape(password), url.PathEscape(password)}
	// The password as written, which escaping may have spelled differently.
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		userinfo, _, _ := strings.Cut(rest, "/")
		if i := strings.LastIndexByte(userinfo, '@'); i >= 0 {
			if _, written, ok := strings.Cut(userinfo[:i], ":"); ok {
				forms = append(forms, written)
			}
		}
	}
	return forms, nil
}

// redactedError keeps its cause for errors.Is and errors.As while its text
// never holds the password; the drivers' own messages may quote the URL.
type redactedError struct {
	text  string
	cause error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.cause }

// redact replaces every one of secrets in err's text.
func redact(err error, secrets ...string) error {
	if len(secrets) == 0 {
		return err
	}
	text := err.Error()
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "xxxxx")
		}
	}
	return &redactedError{text: text, cause: err}
}

type pgDB struct {
	pgQueries
	pool *pgxpool.Pool
}

func (d *pgDB) inTx(ctx context.Context, fn func(q querier) error) error {
	return pgInTx(ctx, d.pool, fn)
}

// withMigrationLock holds pg_advisory_lock on one dedicated connection for
// the whole of fn, and runs fn's transactions on that connection.
func (d *pgDB) withMigrationLock(ctx context.Context, fn func(tx txRunner) error) (err error) {
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migration connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// The lock belongs to the session: unlock even when ctx has ended,
		// and never return a connection still holding it to the pool.
		unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, uerr := conn.Exec(unlockCtx, `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil {
			err = errors.Join(err, fmt.Errorf("release migration lock: %w", uerr))
			_ = conn.Conn().Close(unlockCtx)
		}
	}()
	return fn(pgConnTx{conn})
}

func (d *pgDB) ping(ctx context.Context) error { return d.pool.Ping(ctx) }

func (d *pgDB) close() error {
	d.pool.Close()
	return nil
}

type pgConnTx struct{ conn *pgxpool.Conn }

func (c pgConnTx) inTx(ctx context.Context, fn func(q querier) error) error {
	return pgInTx(ctx, c.conn, fn)
}

func pgInTx(ctx context.Context, b interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}, fn func(q querier) error) error {
	return pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
		return fn(pgQueries{tx})
	})
}

// pgQueries adapts a pool, a connection or a transaction to querier,
// rebinding ? placeholders to $n.
type pgQueries struct {
	q interface {
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	}
}

func (p pgQueries) exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, rebind(query), args...)
	if err != nil {
		return 0, pgConstraint(err)
	}
	return tag.RowsAffected(), nil
}

func (p pgQueries) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return pgRow{p.q.QueryRow(ctx, rebind(query), args...)}
}

func (p pgQueries) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := p.q.Query(ctx, rebind(query), args...)
	if err != nil {
		return nil, pgConstraint(err)
	}
	return r, nil
}

type pgRow struct{ row pgx.Row }

func (r pgRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return pgConstraint(err)
}

// PostgreSQL's SQLSTATE codes for the constraint violations pgConstraint maps.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)

// pgConstraint gives PostgreSQL's constraint violations the meaning the
// rest of Entente checks for: a taken key is ErrConflict, a reference to a
// missing row ErrNotFound. The driver's error stays wrapped for its detail.
func pgConstraint(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case pgUniqueViolation:
		return fmt.Errorf("%w (%w)", ErrConflict, err)
	case pgForeignKeyViolation:
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	}
	return err
}
