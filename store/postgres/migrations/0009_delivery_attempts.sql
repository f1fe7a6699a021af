-- webhook_attempts also holds channel deliveries' attempts (with an empty
-- webhook_id); a delivery's attempts are listed by its id.
CREATE INDEX IF NOT EXISTS webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);
