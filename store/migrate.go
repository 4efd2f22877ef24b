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
		{Version: 2, Name: "federation", SQL: federationSchema},
		{Version: 3, Name: "bridge", SQL: bridgeSchema},
		{Version: 4, Name: "chat_lines", SQL: chatLinesSchema},
		{Version: 5, Name: "health", SQL: healthSchema},
		{Version: 6, Name: "signin", SQL: signInSchema},
		{Version: 7, Name: "guest_links", SQL: guestLinksSchema},
		{Version: 8, Name: "session_checks", SQL: sessionChecksSchema},
		{Version: 9, Name: "outbox_leases", SQL: outboxLeasesSchema},
	}
}

// federationSchema holds the trust list, local users, conferences with their
// logs (spec/federation.md §6), and the inbound replay cache and durable
// outbox (§8). Times are BIGINT milliseconds since the epoch (see
// millisArg). A conference's records, nodes and participants do not
// reference its row: a transaction may append the first record of a
// conference before it writes the conference's new state.
const federationSchema = `
CREATE TABLE peers (
	did             {{.Text}} PRIMARY KEY,
	name            TEXT NOT NULL,
	key_pin         TEXT NOT NULL,
	may_invite      BOOLEAN NOT NULL,
	may_relay_media BOOLEAN NOT NULL,
	added_at        BIGINT
);
CREATE TABLE users (
	id           {{.Text}} PRIMARY KEY,
	display_name TEXT NOT NULL,
	admin        BOOLEAN NOT NULL,
	created_at   BIGINT
);
CREATE TABLE tokens (
	hash       {{.Text}} PRIMARY KEY,
	user_id    {{.Text}} NOT NULL REFERENCES users (id),
	created_at BIGINT,
	expires_at BIGINT,
	revoked    BOOLEAN NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE TABLE conferences (
	id         {{.Text}} PRIMARY KEY,
	host       {{.Text}} NOT NULL,
	title      TEXT NOT NULL,
	created_by TEXT NOT NULL,
	created_at BIGINT,
	locked     BOOLEAN NOT NULL,
	lobby      BOOLEAN NOT NULL,
	ended      BOOLEAN NOT NULL,
	head_seq   BIGINT NOT NULL,
	head_hash  TEXT NOT NULL
);
CREATE INDEX conferences_created ON conferences (created_at);
CREATE TABLE records (
	conference {{.Text}} NOT NULL,
	seq        BIGINT NOT NULL,
	hash       TEXT NOT NULL,
	prev       TEXT NOT NULL,
	event_id   {{.Text}} NOT NULL,
	event_type TEXT NOT NULL,
	origin     TEXT NOT NULL,
	sender     TEXT NOT NULL,
	event      {{.Blob}} NOT NULL,
	link       {{.Blob}} NOT NULL,
	created_at BIGINT,
	PRIMARY KEY (conference, seq),
	UNIQUE (conference, event_id)
);
CREATE TABLE conference_nodes (
	conference    {{.Text}} NOT NULL,
	node          {{.Text}} NOT NULL,
	state         TEXT NOT NULL CHECK (state IN ('invited', 'accepted', 'declined')),
	users         TEXT NOT NULL,
	last_sent_seq BIGINT NOT NULL,
	PRIMARY KEY (conference, node)
);
CREATE TABLE participants (
	conference   {{.Text}} NOT NULL,
	user_ref     {{.Text}} NOT NULL,
	node         TEXT NOT NULL,
	display_name TEXT NOT NULL,
	organisation TEXT NOT NULL,
	joined_seq   BIGINT NOT NULL,
	join_event   TEXT NOT NULL,
	waiting      BOOLEAN NOT NULL,
	PRIMARY KEY (conference, user_ref)
);
CREATE INDEX participants_joined ON participants (conference, joined_seq);
CREATE TABLE inbox (
	origin       {{.Text}} NOT NULL,
	message_id   {{.Text}} NOT NULL,
	payload_hash TEXT NOT NULL,
	received_at  BIGINT NOT NULL,
	PRIMARY KEY (origin, message_id)
);
CREATE INDEX inbox_received ON inbox (received_at);
CREATE TABLE outbox (
	id           {{.AutoID}},
	message_id   TEXT NOT NULL,
	destination  {{.Text}} NOT NULL,
	body         {{.Blob}} NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT,
	next_attempt BIGINT NOT NULL,
	attempts     INTEGER NOT NULL,
	state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed', 'expired')),
	last_error   TEXT NOT NULL,
	receipt      {{.Blob}},
	delivered_at BIGINT
);
CREATE INDEX outbox_destination ON outbox (destination, state, id);
CREATE INDEX outbox_message ON outbox (destination, message_id)`

// bridgeSchema holds the Matrix bridge's state: the portal room of each
// conference, the appservice transactions already applied, the ghost user
// standing for each Entente participant, and which Matrix event mirrors which
// Entente item. Times are BIGINT milliseconds since the epoch.
const bridgeSchema = `
CREATE TABLE bridge_portals (
	conference {{.Text}} PRIMARY KEY,
	room_id    {{.Text}} NOT NULL UNIQUE,
	created    BOOLEAN NOT NULL,
	linked_at  BIGINT
);
CREATE TABLE bridge_transactions (
	txn_id     {{.Text}} PRIMARY KEY,
	applied_at BIGINT NOT NULL
);
CREATE INDEX bridge_transactions_applied ON bridge_transactions (applied_at);
CREATE TABLE bridge_ghosts (
	user_ref     {{.Text}} PRIMARY KEY,
	matrix_user  {{.Text}} NOT NULL UNIQUE,
	display_name TEXT NOT NULL,
	updated_at   BIGINT
);
CREATE TABLE bridge_events (
	conference {{.Text}} NOT NULL,
	item       {{.Text}} NOT NULL,
	room_id    TEXT NOT NULL,
	event_id   {{.Text}} NOT NULL UNIQUE,
	created_at BIGINT,
	PRIMARY KEY (conference, item)
)`

// chatLinesSchema remembers who wrote each chat line of a conference, so that
// an edit or a redaction is taken only from the line's author
// (spec/federation.md §5.2). The author is the signal's sender and, for a
// line bridged from Matrix, its "as" ("" otherwise).
const chatLinesSchema = `
CREATE TABLE chat_lines (
	conference {{.Text}} NOT NULL,
	id         {{.Text}} NOT NULL,
	sender     TEXT NOT NULL,
	as_user    TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (conference, id)
)`

// outboxLeasesSchema holds, per destination, which process may deliver the
// outbox to it and until when (spec/federation.md §8): replicas of a node
// share the outbox, and one at a time delivers to each peer, in order. A
// row is never deleted, so that token only grows: it is the fencing token
// that outcomes are recorded under (see OutboxLease). Times are BIGINT
// milliseconds since the epoch.
const outboxLeasesSchema = `
CREATE TABLE outbox_leases (
	destination {{.Text}} PRIMARY KEY,
	holder      TEXT NOT NULL,
	token       BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL
)`

// healthSchema holds the one row the readiness probe rewrites, so that
// "ready" means the store committed a write just now, not merely that it
// answered a ping (see Store.CheckWritable).
const healthSchema = `
CREATE TABLE health (
	id         INTEGER PRIMARY KEY,
	checked_at BIGINT NOT NULL
)`

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
