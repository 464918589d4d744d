-- Service key expiry (secret rotation with overlap): from expires_at (Unix ms) on, the key no
-- longer authenticates. NULL: the key does not expire.
ALTER TABLE service_keys ADD COLUMN expires_at INTEGER;
