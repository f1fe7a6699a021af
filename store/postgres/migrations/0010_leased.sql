-- The deliveries under a lease, per conversation: Claim and SettleNext check
-- that no other delivery of a conversation is in flight by probing this
-- small index, where deliveries_queue would walk the conversation's whole
-- pending backlog.
CREATE INDEX IF NOT EXISTS deliveries_leased ON deliveries (conv_source, conv_ref)
	WHERE status = 'pending' AND lease_owner <> '';
