-- The journal of session events (store.SessionEvents): a row per session
-- created and per change of a session's state, written by triggers in the
-- transaction of the change; and outbox deliveries of those events.
--
-- Requires PostgreSQL 13 or later (xid8).

-- A reader follows the journal in (xid, eid) order, and only up to the
-- oldest transaction still running (pg_snapshot_xmin of its snapshot): eid
-- is taken before commit, so eid order is not commit order across
-- transactions, but every transaction with an xid below the horizon has
-- ended, and a row committed later can only carry an xid at or above it
-- (see ReadSessionEvents).
--
-- xid is the xid of the transaction that journaled the row or, when
-- greater, the xid of the session's previous event. A transaction may have
-- taken its xid before it waited for the session's row lock, so its own xid
-- can be older than that of the session's previous event, committed
-- before; raising it keeps a session's events in eid (that is, commit)
-- order in the journal's order. It is never below the transaction's own
-- xid, which is what the horizon needs.
CREATE TABLE session_events (
	eid        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
	session_id text COLLATE "C" NOT NULL REFERENCES sessions (id),
	type       text NOT NULL,
	state      text NOT NULL,
	previous   text NOT NULL,
	-- after_seq is the session's last_seq when the change was made: the
	-- event comes after that record and before the next.
	after_seq  bigint NOT NULL,
	at         timestamptz NOT NULL
);
CREATE INDEX session_events_by_session ON session_events (session_id, after_seq, eid);
CREATE INDEX session_events_journal ON session_events (xid, eid);

-- notify_channel is the NOTIFY channel of the store in a schema; it must
-- equal channelName in postgres.go.
CREATE FUNCTION notify_channel(schema text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
AS $$
	SELECT CASE
		WHEN octet_length(convert_to('switchboard_log:' || schema, 'UTF8')) <= 63 THEN 'switchboard_log:' || schema
		ELSE 'switchboard_log:' || encode(substring(sha256(convert_to(schema, 'UTF8')) FROM 1 FOR 16), 'hex')
	END
$$;

-- journal_session_event journals the creation or state change of the
-- session row NEW and signals the session's subscribers in every process.
-- It runs after the row is written, so with its lock held: a session's
-- events are journaled one transaction at a time, in commit order.
CREATE FUNCTION journal_session_event() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
	prev xid8;
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO session_events (session_id, type, state, previous, after_seq, at)
		VALUES (NEW.id, 'session.created', NEW.state, '', NEW.last_seq, NEW.created_at);
	ELSE
		-- A fresh snapshot: it sees the event of the lock's previous holder.
		SELECT e.xid INTO prev FROM session_events e
		WHERE e.session_id = NEW.id
		ORDER BY e.after_seq DESC, e.eid DESC
		LIMIT 1;
		INSERT INTO session_events (xid, session_id, type, state, previous, after_seq, at)
		VALUES (greatest(pg_current_xact_id(), prev), NEW.id, 'session.state_changed', NEW.state, OLD.state,
			NEW.last_seq, NEW.updated_at);
	END IF;
	-- The payload limit is 8000 bytes; longer ids are signalled in this
	-- process only.
	IF octet_length(NEW.id) < 8000 THEN
		PERFORM pg_notify(notify_channel(TG_TABLE_SCHEMA), NEW.id);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER sessions_journal_created
AFTER INSERT ON sessions
FOR EACH ROW EXECUTE FUNCTION journal_session_event();

CREATE TRIGGER sessions_journal_state
AFTER UPDATE OF state ON sessions
FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
EXECUTE FUNCTION journal_session_event();

-- A delivery is of a record (event 0) or of a session event (its eid; seq
-- is then the event's after_seq, which may be 0). Event deliveries have no
-- record to reference: Enqueue checks what a delivery names (records and
-- events are never deleted).
ALTER TABLE deliveries ADD COLUMN event bigint NOT NULL DEFAULT 0;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_session_id_seq_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_session_id_seq_conv_source_conv_ref_key;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_item_key UNIQUE (session_id, seq, event, conv_source, conv_ref);
