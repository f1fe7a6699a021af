-- Sessions, their ordered envelope logs, and API tokens.
--
-- Identifiers use the "C" collation so that ordering and cursors follow byte
-- order, as in Go and in the SQLite backend, whatever the database's locale.

CREATE TABLE sessions (
	id         text COLLATE "C" PRIMARY KEY,
	state      text NOT NULL CHECK (state IN ('idle', 'running')),
	metadata   jsonb NOT NULL DEFAULT '{}',
	-- last_seq is the seq of the newest record; appenders lock this row, which
	-- serialises appends to one session across processes.
	last_seq   bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

-- records is every session's log: one row per envelope, inbound or outbound.
CREATE TABLE records (
	session_id    text COLLATE "C" NOT NULL REFERENCES sessions (id),
	seq           bigint NOT NULL CHECK (seq > 0),
	direction     text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
	envelope_id   text COLLATE "C" NOT NULL,
	source        text NOT NULL,
	kind          text NOT NULL,
	actor_id      text NOT NULL,
	actor_display text NOT NULL,
	actor_type    text NOT NULL,
	conv_source   text NOT NULL,
	conv_ref      text NOT NULL,
	text          text NOT NULL,
	refs          jsonb NOT NULL,
	-- ts keeps microseconds; ts_nanos the nanoseconds below them, so that the
	-- envelope's timestamp comes back exactly.
	ts            timestamptz NOT NULL,
	ts_nanos      smallint NOT NULL CHECK (ts_nanos BETWEEN 0 AND 999),
	-- raw is the original payload byte for byte (never jsonb, which
	-- reformats); NULL when the envelope had none.
	raw           bytea,
	stored_at     timestamptz NOT NULL,
	PRIMARY KEY (session_id, seq),
	-- The idempotency backstop: appenders check under the session lock first.
	UNIQUE (session_id, envelope_id)
);

CREATE TABLE tokens (
	id         text COLLATE "C" PRIMARY KEY,
	hash       bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
	name       text NOT NULL,
	scopes     text[] NOT NULL,
	sessions   text[] NOT NULL,
	created_at timestamptz NOT NULL
);
