-- deliveries_status (status, id) served only ListDeliveries by status, and
-- cost more than that. Every delivery wrote two entries to it, one when
-- enqueued and one when settled, and its 'pending' range kept an entry of
-- every delivery ever enqueued until a vacuum removed the dead ones. A
-- connection that planned Append's enqueue at the wrong moment took it for
-- the probe of a conversation's pending tail (deliveries_queue's job), its
-- condition on status looking selective, and read that whole range at
-- every call: 394 buffers where deliveries_queue reads 4, with 4,200
-- deliveries pending (TestEnqueueFindsTailsByConversation).
--
-- The listings by status now read one index each, in id order: the pending
-- deliveries and the dead ones have their own, on id alone; the delivered
-- ones, most of the table, are read along the primary key. A delivered
-- settlement writes no entry to either. The pending ones' predicate is not
-- status = 'pending': an index with that predicate, planned at 200 to 300
-- pending deliveries, was taken for the probe again (read whole, as the
-- probe's condition on status matched its predicate exactly); with this
-- one, the probe's condition stays a filter and the planner keeps to
-- deliveries_queue, at every backlog the test plans it at.
--
-- Replicas of the previous version still list by status without the old
-- index, so this migration needs none stopped.
DROP INDEX IF EXISTS deliveries_status;
CREATE INDEX IF NOT EXISTS deliveries_unsettled ON deliveries (id) WHERE status <> 'delivered' AND status <> 'dead';
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries (id) WHERE status = 'dead';
