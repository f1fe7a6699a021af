-- Outbound webhook destinations and the log of their delivery attempts.

-- A destination's secrets are kept in clear: the gateway signs with them.
-- prev_secret signs alongside secret until prev_expires (a rotation's grace
-- period); NULL times mean none.
CREATE TABLE webhooks (
	id              text COLLATE "C" PRIMARY KEY,
	url             text NOT NULL,
	description     text NOT NULL DEFAULT '',
	event_types     jsonb NOT NULL DEFAULT '[]',
	sessions        jsonb NOT NULL DEFAULT '[]',
	metadata        jsonb NOT NULL DEFAULT '{}',
	secret          text NOT NULL,
	prev_secret     text NOT NULL DEFAULT '',
	prev_expires    timestamptz,
	disabled        boolean NOT NULL DEFAULT false,
	disabled_reason text NOT NULL DEFAULT '',
	failing_since   timestamptz,
	origin          text NOT NULL DEFAULT 'api',
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL
);

-- Every attempt at a webhook delivery; ids sort in the order recorded.
CREATE TABLE webhook_attempts (
	id          text COLLATE "C" PRIMARY KEY,
	webhook_id  text COLLATE "C" NOT NULL,
	delivery_id text NOT NULL,
	event_id    text NOT NULL,
	session_id  text NOT NULL,
	seq         bigint NOT NULL,
	attempt     integer NOT NULL,
	status_code integer NOT NULL,
	latency_ns  bigint NOT NULL,
	response    text NOT NULL,
	error       text NOT NULL,
	at          timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, id);
