-- The conversation of each session's newest inbound record that has one,
-- kept by Append in the session's row: an output to no conversation goes
-- there. Append used to find it by walking the session's records back, a
-- read that, planned without statistics, took in every record of the
-- session on every output.
ALTER TABLE sessions
	ADD COLUMN latest_source text NOT NULL DEFAULT '',
	ADD COLUMN latest_ref    text NOT NULL DEFAULT '';

UPDATE sessions s SET latest_source = l.conv_source, latest_ref = l.conv_ref
FROM (
	SELECT DISTINCT ON (session_id) session_id, conv_source, conv_ref
	FROM records
	WHERE direction = 'inbound' AND conv_source <> ''
	ORDER BY session_id, seq DESC
) AS l
WHERE s.id = l.session_id;
