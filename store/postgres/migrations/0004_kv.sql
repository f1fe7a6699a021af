-- kv is the channel adapters' own durable state (store.KV): an opaque value
-- per namespace and key, replaced as a whole. updated_at is informational.
CREATE TABLE kv (
	namespace  text COLLATE "C" NOT NULL,
	key        text COLLATE "C" NOT NULL,
	value      bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (namespace, key)
);
