package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"
)

// migrations is the schema, one step per entry: migration i brings the
// database to version i+1. Steps are append-only: never edit one that has
// shipped; add a new one. Each runs once, in its own transaction, recorded in
// schema_migrations.
//
// Times are Unix nanoseconds (UTC). Sessions carry an integer key, sid, that
// the log refers to, so the log's indexes stay small whatever the session ids
// look like. Later tables (conversation bindings, the outbox, webhook
// destinations, IMAP cursors) are new steps at the end.
var migrations = []string{
	// 1: sessions, their logs, and API tokens.
	`
-- A session's last seq and the time of its last append are not stored here
-- but read from its log, so that an append writes the log alone. updated_at
-- is when the session was created or its state last changed.
CREATE TABLE sessions (
	sid        INTEGER PRIMARY KEY,
	id         TEXT    NOT NULL UNIQUE,
	state      TEXT    NOT NULL CHECK (state IN ('idle', 'running')),
	metadata   TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);

-- records is every session's log. Rows are stored in the order they were
-- committed (rid), so a batch's new rows fill a few adjacent pages whatever
-- sessions they belong to; per session, only the two small index entries
-- land apart. The envelope is stored as columns, except raw, which is a BLOB
-- kept byte for byte.
CREATE TABLE records (
	rid           INTEGER PRIMARY KEY,
	sid           INTEGER NOT NULL REFERENCES sessions (sid),
	seq           INTEGER NOT NULL,
	envelope_id   TEXT    NOT NULL,
	direction     TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
	stored_at     INTEGER NOT NULL,
	source        TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	actor_id      TEXT    NOT NULL,
	actor_display TEXT    NOT NULL,
	actor_type    TEXT    NOT NULL,
	conv_source   TEXT    NOT NULL,
	conv_ref      TEXT    NOT NULL,
	text          TEXT    NOT NULL,
	refs          TEXT,             -- JSON object of strings; NULL when empty
	ts            INTEGER NOT NULL,
	raw           BLOB
);

-- A session's log in order.
CREATE UNIQUE INDEX records_seq ON records (sid, seq);

-- The idempotency key: one envelope id per session.
CREATE UNIQUE INDEX records_envelope ON records (sid, envelope_id);

CREATE TABLE tokens (
	id         TEXT    PRIMARY KEY,
	hash       BLOB    NOT NULL UNIQUE,
	name       TEXT    NOT NULL,
	scopes     TEXT    NOT NULL, -- JSON array
	sessions   TEXT    NOT NULL, -- JSON array
	created_at INTEGER NOT NULL
);
`,
}

// migrate brings the database behind conn to the newest schema. It is safe
// to run from several processes at once: each step checks, inside its
// IMMEDIATE transaction, whether another already applied it.
func migrate(ctx context.Context, conn *sql.Conn, log *slog.Logger) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", current, len(migrations))
	}
	for i := current; i < len(migrations); i++ {
		version := i + 1
		applied, err := applyMigration(ctx, conn, version, migrations[i])
		if err != nil {
			return fmt.Errorf("migration %d: %w", version, err)
		}
		if applied {
			log.Info("sqlite: applied schema migration", "version", version)
		}
	}
	return nil
}

// applyMigration runs one step in its own transaction unless it was applied
// already, and reports whether it ran.
func applyMigration(ctx context.Context, conn *sql.Conn, version int, stmts string) (applied bool, err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return false, err
	}
	if _, err := conn.ExecContext(ctx, stmts); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		version, time.Now().UnixNano()); err != nil {
		return false, err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return false, err
	}
	return true, nil
}
