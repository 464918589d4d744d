-- Service key expiry (secret rotation with overlap): from expires_at (Unix ms) on, the key no
-- longer authenticates. NULL: the key does not expire. Setting it updates service_keys, which
-- the change feed records by instance, so every node re-reads that instance.
ALTER TABLE service_keys ADD COLUMN expires_at BIGINT;
