-- The journal trigger locks the tails of the webhook conversations it
-- enqueues a session event to in conversation order (in the columns'
-- collation, "C"), the order a settle takes its locks in. It locked them in
-- the order it scanned webhooks, and a state change (SetState) to two
-- destinations could hold one conversation's tail and wait for another's
-- that a settle held while the settle waited for the first: a deadlock,
-- which PostgreSQL broke after a second. An append locks the trigger's
-- tails beforehand, in its own sorted pass (queueEnqueue). The function is
-- 0008's but for the order of that scan.

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
	-- session). A delivery waits when its conversation has a pending tail,
	-- locked here as Enqueue locks it (see "How the outbox keeps order"
	-- in outbox.go).
	WITH tails AS MATERIALIZED (
		SELECT w.id
		FROM (
			SELECT w.id FROM webhooks w
			WHERE webhook_takes(w, ev.type, NEW.id) AND w.created_at <= ev.at
			ORDER BY (w.id || '/' || NEW.id) COLLATE "C"
		) AS w
		CROSS JOIN LATERAL (
			SELECT 1 FROM deliveries o
			WHERE o.status = 'pending' AND o.conv_source = 'webhook' AND o.conv_ref = w.id || '/' || NEW.id
			ORDER BY o.ord DESC
			LIMIT 1
			FOR KEY SHARE
		) AS t
	)
	INSERT INTO deliveries (id, session_id, seq, event, conv_source, conv_ref, status, waiting,
		next_attempt, created_at, updated_at)
	SELECT new_delivery_id(), NEW.id, ev.after_seq, ev.eid, 'webhook', w.id || '/' || NEW.id, 'pending',
		EXISTS (SELECT 1 FROM tails t WHERE t.id = w.id),
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
