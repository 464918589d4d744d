-- Kept in step with migrations/postgres/0007_changes.sql: there, triggers record every change so
-- the nodes of a multi-node deployment follow each other. A SQLite database serves one node,
-- which applies its own changes as it makes them, so the table exists and stays empty.
CREATE TABLE changes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    entity TEXT NOT NULL,
    key    TEXT NOT NULL
);
