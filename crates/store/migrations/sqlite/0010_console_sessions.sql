-- Web console sessions. The browser holds a random 256-bit session id in an HttpOnly cookie; the
-- database holds only its SHA-256, so reading this table does not let anyone log in. Every node
-- reads the same table, so a session works whichever node the load balancer picks.
CREATE TABLE console_sessions (
    id_hash    BLOB PRIMARY KEY,
    user_name  TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);
