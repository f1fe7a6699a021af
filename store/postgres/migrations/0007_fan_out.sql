-- Fan-out at commit (store.FanOut): the transaction of a change enqueues
-- the deliveries it causes. Append enqueues a record's deliveries itself
-- (append.go); the journal trigger now also enqueues, for each webhook
-- destination that takes it, the delivery of the session event it
-- journals, so every writer of sessions (Append, SetState, CreateSession,
-- Bind) fans its events out. The router's outbox and webhook followers are
-- gone: Open enqueues their backlog once and drops their cursors
-- (drainLegacyFollowers in fanout.go).

-- new_delivery_id makes a delivery id like ids.New("dlv"): "dlv_", then 48
-- bits of Unix milliseconds and 80 random bits, in hex, so ids sort by time.
CREATE FUNCTION new_delivery_id() RETURNS text
LANGUAGE sql VOLATILE
AS $$
	SELECT 'dlv_' || lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
		|| substr(replace(gen_random_uuid()::text, '-', ''), 13)
$$;

-- webhook_takes is store.Webhook.Takes: whether destination w takes an
-- event of type t of session s.
CREATE FUNCTION webhook_takes(w webhooks, t text, s text) RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
	SELECT NOT w.disabled
		AND (w.event_types = '[]'::jsonb OR w.event_types ? t)
		AND (w.sessions = '[]'::jsonb OR w.sessions ? s)
$$;

CREATE OR REPLACE FUNCTION journal_session_event() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
	prev xid8;
	ev   session_events;
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO session_events (session_id, type, state, previous, after_seq, at)
		VALUES (NEW.id, 'session.created', NEW.state, '', NEW.last_seq, NEW.created_at)
		RETURNING * INTO ev;
	ELSE
		-- A fresh snapshot: it sees the event of the lock's previous holder.
		SELECT e.xid INTO prev FROM session_events e
		WHERE e.session_id = NEW.id
		ORDER BY e.after_seq DESC, e.eid DESC
		LIMIT 1;
		INSERT INTO session_events (xid, session_id, type, state, previous, after_seq, at)
		VALUES (greatest(pg_current_xact_id(), prev), NEW.id, 'session.state_changed', NEW.state, OLD.state,
			NEW.last_seq, NEW.updated_at)
		RETURNING * INTO ev;
	END IF;

	-- The event's webhook deliveries, after the deliveries of the records
	-- the transaction appended (Append enqueues those before it updates the
	-- session), under the conversations' locks (see outbox.go) taken in key
	-- order.
	PERFORM pg_advisory_xact_lock(k) FROM (
		SELECT DISTINCT hashtextextended(current_schema() || '/webhook/' || w.id || '/' || NEW.id, 0) AS k
		FROM webhooks w
		WHERE webhook_takes(w, ev.type, NEW.id) AND w.created_at <= ev.at
		ORDER BY k
	) AS keys;
	INSERT INTO deliveries (id, session_id, seq, event, conv_source, conv_ref, status, waiting,
		next_attempt, created_at, updated_at)
	SELECT new_delivery_id(), NEW.id, ev.after_seq, ev.eid, 'webhook', w.id || '/' || NEW.id, 'pending',
		EXISTS (SELECT 1 FROM deliveries o
			WHERE o.status = 'pending' AND o.conv_source = 'webhook' AND o.conv_ref = w.id || '/' || NEW.id),
		now(), now(), now()
	FROM webhooks w
	WHERE webhook_takes(w, ev.type, NEW.id) AND w.created_at <= ev.at
	ORDER BY w.id
	ON CONFLICT (session_id, seq, event, conv_source, conv_ref) DO NOTHING;

	-- The payload limit is 8000 bytes; longer ids are signalled in this
	-- process only.
	IF octet_length(NEW.id) < 8000 THEN
		PERFORM pg_notify(notify_channel(TG_TABLE_SCHEMA), NEW.id);
	END IF;
	RETURN NULL;
END
$$;

-- A consumer's work is the records a runtime acts on: inbound, not system
-- notices (store.Cursors). woken_seq is the newest of them in the session's
-- log; outputs and notices, which raise only last_seq, make no work.
ALTER TABLE sessions ADD COLUMN woken_seq bigint NOT NULL DEFAULT 0;
UPDATE sessions SET woken_seq = last_seq WHERE last_seq > 0;

CREATE OR REPLACE FUNCTION mark_pending_work() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
	-- A session's first records: its cursors start at 0 ...
	INSERT INTO cursors (consumer, session_id)
	SELECT k.name, n.id
	FROM new_sessions n
	JOIN old_sessions o ON o.id = n.id
	CROSS JOIN consumers k
	WHERE o.last_seq = 0 AND n.last_seq > 0
	ORDER BY n.id, k.name
	ON CONFLICT DO NOTHING;
	-- ... and a new record for the runtime is work for every consumer.
	INSERT INTO pending_work (consumer, session_id)
	SELECT k.name, n.id
	FROM new_sessions n
	JOIN old_sessions o ON o.id = n.id
	CROSS JOIN consumers k
	WHERE n.woken_seq > o.woken_seq
	ORDER BY n.id, k.name
	ON CONFLICT DO NOTHING;
	RETURN NULL;
END
$$;
