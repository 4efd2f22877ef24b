package store

import "context"

// querier runs SQL written with ? placeholders. The PostgreSQL adapter
// rebinds them, so every query in this package is written once.
type querier interface {
	// exec returns the number of rows affected.
	exec(ctx context.Context, query string, args ...any) (int64, error)
	// queryRow's Scan returns ErrNotFound when there is no row.
	queryRow(ctx context.Context, query string, args ...any) rowScanner
	query(ctx context.Context, query string, args ...any) (rows, error)
}

// txRunner runs fn in one transaction, committed when fn returns nil and
// rolled back otherwise.
type txRunner interface {
	inTx(ctx context.Context, fn func(q querier) error) error
}

// db is what a backend provides to dbStore.
type db interface {
	querier
	txRunner
	// withMigrationLock runs fn while no other process can migrate the same
	// database; transactions fn starts through the runner keep that guarantee.
	withMigrationLock(ctx context.Context, fn func(tx txRunner) error) error
	ping(ctx context.Context) error
	close() error
}

type rowScanner interface {
	Scan(dest ...any) error
}

// rows is the common part of *sql.Rows and pgx.Rows. Callers must Close it
// and check Err after Next returns false.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}
