-- Per-credential rate limits configured on a service instance (parameter "rate-limit"): each key
-- of the instance may send this many requests per second on average, in bursts of up to
-- rate_burst. NULL: no limit.
ALTER TABLE service_instances ADD COLUMN rate_per_second BIGINT;
ALTER TABLE service_instances ADD COLUMN rate_burst BIGINT;
