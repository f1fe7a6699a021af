-- pending_work.seq is the newest woken_seq that made the session pending
-- for the consumer. An append that raises woken_seq while the row exists
-- updates it, and Advance deletes the row only when the consumer's cursor
-- has reached its seq. The two meet on the row's lock: a delete waits for
-- an append in flight that updated the row and then rechecks its seq, and
-- an append waits for a delete in flight and then inserts the row anew. So
-- Advance no longer locks the session row, which every append holds until
-- it commits.
ALTER TABLE pending_work ADD COLUMN seq bigint NOT NULL DEFAULT 0;
UPDATE pending_work p SET seq = s.woken_seq FROM sessions s WHERE s.id = p.session_id;

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
	INSERT INTO pending_work (consumer, session_id, seq)
	SELECT k.name, n.id, n.woken_seq
	FROM new_sessions n
	JOIN old_sessions o ON o.id = n.id
	CROSS JOIN consumers k
	WHERE n.woken_seq > o.woken_seq
	ORDER BY n.id, k.name
	ON CONFLICT (consumer, session_id) DO UPDATE SET seq = greatest(pending_work.seq, excluded.seq);
	RETURN NULL;
END
$$;
