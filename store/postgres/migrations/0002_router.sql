-- The router's state: conversation bindings, per-consumer log cursors with
-- leases, and the delivery outbox.

-- bindings ties conversation anchors to sessions: a conversation is bound to
-- at most one session, a session may have many conversations.
CREATE TABLE bindings (
	id            text COLLATE "C" PRIMARY KEY,
	session_id    text COLLATE "C" NOT NULL REFERENCES sessions (id),
	conv_source   text COLLATE "C" NOT NULL,
	conv_ref      text COLLATE "C" NOT NULL,
	route         text NOT NULL,
	-- paused_until, when in the future, pauses the binding; NULL when never
	-- paused or resumed.
	paused_until  timestamptz,
	paused_reason text NOT NULL,
	created_at    timestamptz NOT NULL,
	UNIQUE (conv_source, conv_ref)
);
CREATE INDEX bindings_session ON bindings (session_id, created_at, id);

-- consumers names every cursor consumer ("runtime", "outbox") that has ever
-- claimed work; the pending_work trigger marks work for each of them.
CREATE TABLE consumers (
	name       text COLLATE "C" PRIMARY KEY,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- cursors is how far each consumer has got through each session's log, and
-- which process holds the session for that consumer (lease_owner '' when
-- free; a lease past lease_until may be taken over).
CREATE TABLE cursors (
	consumer    text COLLATE "C" NOT NULL,
	session_id  text COLLATE "C" NOT NULL REFERENCES sessions (id),
	seq         bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
	lease_owner text NOT NULL DEFAULT '',
	lease_until timestamptz,
	PRIMARY KEY (consumer, session_id)
);

-- pending_work holds, per consumer, the sessions whose log may have records
-- past the consumer's cursor, so that finding work never scans every
-- session. A row is added (by the trigger below) in the transaction that
-- raises a session's last_seq, and deleted by Advance once the cursor has
-- reached last_seq, under a share lock on the session row that keeps
-- appenders out. It has no foreign keys: it is bookkeeping on the append
-- path, kept exact by those two writers alone.
CREATE TABLE pending_work (
	consumer   text COLLATE "C" NOT NULL,
	session_id text COLLATE "C" NOT NULL,
	-- since orders claims: sessions that have waited longest come first.
	since      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (consumer, session_id)
);
CREATE INDEX pending_work_since ON pending_work (consumer, since, session_id);

-- mark_pending_work runs once per UPDATE of sessions and marks every session
-- whose last_seq rose as pending for every consumer. A trigger rather than a
-- statement of the append path, so that every writer (an older gateway
-- during a rolling upgrade included) keeps pending_work exact.
CREATE FUNCTION mark_pending_work() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
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

CREATE TRIGGER sessions_mark_pending_work
AFTER UPDATE ON sessions
REFERENCING OLD TABLE AS old_sessions NEW TABLE AS new_sessions
FOR EACH STATEMENT EXECUTE FUNCTION mark_pending_work();

-- deliveries is the outbox: one row per record to post to a conversation.
CREATE TABLE deliveries (
	id           text COLLATE "C" PRIMARY KEY,
	-- ord is the enqueue order, which orders deliveries within a
	-- conversation.
	ord          bigint GENERATED ALWAYS AS IDENTITY,
	session_id   text COLLATE "C" NOT NULL,
	seq          bigint NOT NULL,
	conv_source  text COLLATE "C" NOT NULL,
	conv_ref     text COLLATE "C" NOT NULL,
	status       text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
	-- waiting marks a pending delivery known to queue behind an older
	-- pending one of its conversation, so that Claim's walk over due
	-- deliveries skips backlogs. The oldest pending delivery of a
	-- conversation never has it: Enqueue, Settle and RetryDelivery keep that
	-- true under a per-conversation advisory lock.
	waiting      boolean NOT NULL DEFAULT false,
	attempts     integer NOT NULL DEFAULT 0,
	next_attempt timestamptz NOT NULL,
	last_error   text NOT NULL DEFAULT '',
	channel_id   text COLLATE "C" NOT NULL DEFAULT '',
	lease_owner  text NOT NULL DEFAULT '',
	lease_until  timestamptz,
	created_at   timestamptz NOT NULL,
	updated_at   timestamptz NOT NULL,
	FOREIGN KEY (session_id, seq) REFERENCES records (session_id, seq),
	UNIQUE (session_id, seq, conv_source, conv_ref)
);
-- Claim walks due pending deliveries that may head their conversation, in
-- due order ...
CREATE INDEX deliveries_due ON deliveries (next_attempt, ord) WHERE status = 'pending' AND NOT waiting;
-- ... and checks each against its conversation's queue.
CREATE INDEX deliveries_queue ON deliveries (conv_source, conv_ref, ord) WHERE status = 'pending';
CREATE INDEX deliveries_status ON deliveries (status, id);
CREATE INDEX deliveries_posted ON deliveries (conv_source, channel_id) WHERE channel_id <> '';
