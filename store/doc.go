// Package store owns the node's persistence: one Store interface for the rest
// of Entente, backed by embedded SQLite (the default) or PostgreSQL (for
// production).
//
// Both backends share one schema history and one set of queries. Queries are
// written once with ? placeholders against a small internal adapter (db.go);
// the PostgreSQL adapter rebinds them to $1..$n. Migration SQL is rendered per
// dialect (dialect.go), so a type such as BLOB/BYTEA is chosen in one place.
//
// Adding a data method means writing its query once, on queries (tx.go),
// which serves both Store and the Tx that InTx hands out. Adding a table
// means appending one entry to migrations (migrate.go); entries are never
// edited or reordered once released.
//
// store depends on nothing of Entente's; other packages reach it only through
// Store.
package store
