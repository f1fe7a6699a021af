-- A record appended NoTurn (store.AppendRequest) asks its session's runtime
-- for no turn: the router marks so the inbound messages of sessions whose
-- agent reads the log itself. Such a record raises last_seq but not
-- woken_seq, so it makes no work for the cursors' consumers; the column
-- keeps the decision with the record, for a runtime that reads it later.
-- Adding a column with a constant default rewrites nothing, and replicas
-- of the previous version, which do not name it, store false: this
-- migration needs no replica stopped.
ALTER TABLE records ADD COLUMN no_turn boolean NOT NULL DEFAULT false;
