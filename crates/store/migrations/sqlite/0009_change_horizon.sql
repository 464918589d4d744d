-- Kept in step with the PostgreSQL migrations (see 0007_changes.sql): a single SQLite node has
-- no change feed, so this table stays at 0.
CREATE TABLE change_horizon (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO change_horizon (id, seq) VALUES (1, 0);
