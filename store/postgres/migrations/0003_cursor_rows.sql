-- Every registered consumer gets its cursor row for a session when the
-- session's first record is appended (and, for sessions that already have
-- records, when the consumer registers), so that ClaimWork finds all its
-- work through pending_work joined with cursors, without searching for
-- sessions whose cursor rows are missing.

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
	-- ... and any new record is work for every consumer.
	INSERT INTO pending_work (consumer, session_id)
	SELECT k.name, n.id
	FROM new_sessions n
	JOIN old_sessions o ON o.id = n.id
	CROSS JOIN consumers k
	WHERE n.last_seq > o.last_seq
	ORDER BY n.id, k.name
	ON CONFLICT DO NOTHING;
	RETURN NULL;
END
$$;

-- Databases migrated by 0002 may have sessions with records and no cursor
-- rows: add them, with appends held off so that none slips past.
LOCK TABLE sessions IN SHARE MODE;
INSERT INTO cursors (consumer, session_id)
SELECT k.name, s.id
FROM consumers k
CROSS JOIN sessions s
WHERE s.last_seq > 0
ORDER BY s.id, k.name
ON CONFLICT DO NOTHING;
