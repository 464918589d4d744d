-- The newest sequence number pruned from the change feed. A node whose last applied change is
-- older than this was away longer than the feed keeps changes: it reloads everything instead of
-- catching up change by change.
CREATE TABLE change_horizon (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO change_horizon (id, seq) VALUES (1, 0);
