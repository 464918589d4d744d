-- Durable queues of `queue` receivers. A message is committed here (with its MPL row, in the same
-- transaction) before the sender gets 202; delivery workers claim due messages with a lease,
-- so a node that dies mid-delivery leaves the message to another after the lease runs out.
-- The outgoing request is stored as rendered at acceptance (method, URL, headers, body).
CREATE TABLE queue_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    guid             TEXT NOT NULL UNIQUE,
    queue            TEXT NOT NULL,
    flow_id          TEXT NOT NULL,
    partner          TEXT NOT NULL,
    user_name        TEXT NOT NULL,
    ordered          INTEGER NOT NULL,
    method           TEXT NOT NULL,
    url              TEXT NOT NULL,
    headers          TEXT NOT NULL,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    last_error       TEXT,
    last_http_status INTEGER,
    idempotency_key  TEXT,
    lease_owner      TEXT,
    lease_until      INTEGER
);
CREATE INDEX queue_due ON queue_messages(status, next_attempt_at);
CREATE INDEX queue_listing ON queue_messages(queue, status, seq);
CREATE INDEX queue_order ON queue_messages(queue, partner, seq);
CREATE UNIQUE INDEX queue_idempotency ON queue_messages(flow_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
