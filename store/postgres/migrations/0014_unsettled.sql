-- deliveries_status (status, id) served only ListDeliveries by status, and
-- cost more than that. Every delivery wrote two entries to it, one when
-- enqueued and one when settled, and its 'pending' range kept an entry of
-- every delivery ever enqueued until a vacuum removed the dead ones. A
-- connection that planned Append's enqueue at the wrong moment took it for
-- the probe of a conversation's pending tail (deliveries_queue's job) and
-- read that whole range at every call: 3,300 to 3,900 buffers where
-- deliveries_queue reads about 100.
--
-- deliveries_unsettled holds only the deliveries not delivered: the few
-- pending and the dead, which are what a listing by status needs an index
-- for (delivered ones are most of the table, and a walk of the primary key
-- finds them). It has no column a probe by conversation could use, and a
-- delivered settlement writes no entry to it.
--
-- Replicas of the previous version still list by status without the old
-- index (reading the primary key), so this migration needs none stopped.
DROP INDEX IF EXISTS deliveries_status;
CREATE INDEX IF NOT EXISTS deliveries_unsettled ON deliveries (id) WHERE status <> 'delivered';
