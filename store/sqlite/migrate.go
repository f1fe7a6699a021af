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
// look like. Later tables (webhook destinations, IMAP cursors) are new steps
// at the end.
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

	// 2: conversation bindings.
	`
-- A conversation (conv_source, conv_ref) is bound to at most one session; a
-- session may have many. paused_until is NULL when the binding is not
-- paused.
CREATE TABLE bindings (
	bid           INTEGER PRIMARY KEY,
	id            TEXT    NOT NULL UNIQUE,
	sid           INTEGER NOT NULL REFERENCES sessions (sid),
	conv_source   TEXT    NOT NULL,
	conv_ref      TEXT    NOT NULL,
	route         TEXT    NOT NULL,
	paused_until  INTEGER,
	paused_reason TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
);

CREATE UNIQUE INDEX bindings_conversation ON bindings (conv_source, conv_ref);

-- A session's bindings, oldest first.
CREATE INDEX bindings_session ON bindings (sid, created_at);
`,

	// 3: per-consumer log cursors and their leases.
	`
-- cursors holds, per consumer and session, the consumer's cursor (seq) and
-- head, the newest seq of the session's log that ClaimWork has seen. A row
-- with head > seq is work: the partial index below holds those rows only, so
-- finding work costs in proportion to the sessions that have some, however
-- many sessions there are. An append does not touch this table: ClaimWork
-- folds the records committed since its last call into head, finding them
-- by rid (commit order) from consumers.scanned_rid, which is sound because
-- records are never deleted. owner and lease_until are NULL when the
-- session is not leased; claimed_at (the claimer's clock) orders the work so
-- that sessions claimed longest ago go first.
CREATE TABLE cursors (
	consumer    TEXT    NOT NULL,
	sid         INTEGER NOT NULL REFERENCES sessions (sid),
	seq         INTEGER NOT NULL DEFAULT 0,
	head        INTEGER NOT NULL DEFAULT 0,
	owner       TEXT,
	lease_until INTEGER,
	claimed_at  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (consumer, sid)
) WITHOUT ROWID;

CREATE INDEX cursors_work ON cursors (consumer, claimed_at) WHERE head > seq;

-- How far through records (by rid) each consumer's heads are up to date.
CREATE TABLE consumers (
	name        TEXT    PRIMARY KEY,
	scanned_rid INTEGER NOT NULL
) WITHOUT ROWID;
`,

	// 4: the outbox.
	`
-- deliveries is the outbox: the record (sid, seq) to post to the
-- conversation (to_source, to_ref). did is the enqueue order; head is 1 on
-- exactly the oldest pending delivery of each conversation, the only one
-- that may be claimed, so that Claim reads one index entry per conversation
-- with pending deliveries rather than every pending delivery. A zero
-- next_attempt is due at once. owner and lease_until are NULL when the
-- delivery is not leased.
CREATE TABLE deliveries (
	did          INTEGER PRIMARY KEY,
	id           TEXT    NOT NULL UNIQUE,
	sid          INTEGER NOT NULL REFERENCES sessions (sid),
	seq          INTEGER NOT NULL,
	to_source    TEXT    NOT NULL,
	to_ref       TEXT    NOT NULL,
	status       TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
	head         INTEGER NOT NULL DEFAULT 0 CHECK (head = 0 OR status = 'pending'),
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT    NOT NULL DEFAULT '',
	channel_id   TEXT    NOT NULL DEFAULT '',
	owner        TEXT,
	lease_until  INTEGER,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
);

-- Enqueue is idempotent on (session, seq, conversation).
CREATE UNIQUE INDEX deliveries_record ON deliveries (sid, seq, to_source, to_ref);

-- Each conversation's pending deliveries in order, to find its next head.
CREATE INDEX deliveries_queue ON deliveries (to_source, to_ref, did) WHERE status = 'pending';

-- The heads by due time, for Claim.
CREATE INDEX deliveries_due ON deliveries (next_attempt, did) WHERE head = 1;

-- ListDeliveries by status.
CREATE INDEX deliveries_status ON deliveries (status, id);

-- Posted. Only a delivered settlement records a channel id.
CREATE INDEX deliveries_posted ON deliveries (to_source, channel_id) WHERE channel_id <> '';
`,

	// 5: the adapters' key-value state.
	`
-- kv is the channel adapters' own durable state (store.KV): an opaque value
-- per namespace and key, replaced as a whole. updated_at is informational.
CREATE TABLE kv (
	namespace  TEXT    NOT NULL,
	key        TEXT    NOT NULL,
	value      BLOB    NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
`,

	// 6: outbound webhook destinations and the log of delivery attempts.
	`
-- A destination's secrets are kept in clear: the gateway signs with them.
-- prev_secret signs alongside secret until prev_expires (a rotation's grace).
-- Times are Unix nanoseconds, 0 for none.
CREATE TABLE webhooks (
	id              TEXT    PRIMARY KEY,
	url             TEXT    NOT NULL,
	description     TEXT    NOT NULL DEFAULT '',
	event_types     TEXT    NOT NULL DEFAULT '[]', -- JSON array
	sessions        TEXT    NOT NULL DEFAULT '[]', -- JSON array
	metadata        TEXT    NOT NULL DEFAULT '{}', -- JSON object of strings
	secret          TEXT    NOT NULL,
	prev_secret     TEXT    NOT NULL DEFAULT '',
	prev_expires    INTEGER NOT NULL DEFAULT 0,
	disabled        INTEGER NOT NULL DEFAULT 0,
	disabled_reason TEXT    NOT NULL DEFAULT '',
	failing_since   INTEGER NOT NULL DEFAULT 0,
	origin          TEXT    NOT NULL DEFAULT 'api',
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL
);

-- Every attempt at a webhook delivery; ids sort in the order recorded.
CREATE TABLE webhook_attempts (
	id          TEXT    PRIMARY KEY,
	webhook_id  TEXT    NOT NULL,
	delivery_id TEXT    NOT NULL,
	event_id    TEXT    NOT NULL,
	session_id  TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	attempt     INTEGER NOT NULL,
	status_code INTEGER NOT NULL,
	latency_ns  INTEGER NOT NULL,
	response    TEXT    NOT NULL,
	error       TEXT    NOT NULL,
	at          INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, id);
`,
	// 7: the journal of session events, written by triggers in the
	// transaction of the change; deliveries of them.
	`
-- eid never goes back (AUTOINCREMENT), and the one writer commits in eid
-- order, so a reader following eid misses nothing.
CREATE TABLE session_events (
	eid       INTEGER PRIMARY KEY AUTOINCREMENT,
	sid       INTEGER NOT NULL REFERENCES sessions (sid),
	type      TEXT    NOT NULL,
	state     TEXT    NOT NULL,
	previous  TEXT    NOT NULL,
	after_seq INTEGER NOT NULL,
	at        INTEGER NOT NULL
);
CREATE INDEX session_events_by_session ON session_events (sid, after_seq, eid);

CREATE TRIGGER session_events_created AFTER INSERT ON sessions
BEGIN
	INSERT INTO session_events (sid, type, state, previous, after_seq, at)
	VALUES (NEW.sid, 'session.created', NEW.state, '', 0, NEW.created_at);
END;

CREATE TRIGGER session_events_state AFTER UPDATE OF state ON sessions
WHEN OLD.state <> NEW.state
BEGIN
	INSERT INTO session_events (sid, type, state, previous, after_seq, at)
	VALUES (NEW.sid, 'session.state_changed', NEW.state, OLD.state,
		(SELECT coalesce(max(seq), 0) FROM records WHERE sid = NEW.sid), NEW.updated_at);
END;

-- A delivery is of a record (event 0) or of a session event (its eid; seq
-- is then the event's after_seq).
ALTER TABLE deliveries ADD COLUMN event INTEGER NOT NULL DEFAULT 0;
DROP INDEX deliveries_record;
CREATE UNIQUE INDEX deliveries_record ON deliveries (sid, seq, event, to_source, to_ref);
`,

	// 8: the writer fans out at commit (fanout.go): the router's outbox and
	// webhook followers are gone. Their backlog is enqueued and their
	// cursors dropped by the Go step (migrate_fanout.go).
	`
-- Nothing to change in the schema: see drainLegacyFollowers.
SELECT 1;
`,

	// 9: webhook_attempts also holds channel deliveries' attempts (with an
	// empty webhook_id); a delivery's attempts are listed by its id.
	`
CREATE INDEX IF NOT EXISTS webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);
`,

	// 10: a record appended NoTurn (store.AppendRequest) asks its session's
	// runtime for no turn, and the cursors' fold skips it. Adding a column
	// with a constant default rewrites no row.
	`
ALTER TABLE records ADD COLUMN no_turn INTEGER NOT NULL DEFAULT 0;
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
	if step := goSteps[version]; step != nil {
		if err := step(ctx, conn); err != nil {
			return false, err
		}
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
