-- Kept in step with migrations/postgres/0011_change_keys.sql, which makes the PostgreSQL change
-- feed name the instance or user a security change touched. A SQLite database has no feed.
SELECT 1;
