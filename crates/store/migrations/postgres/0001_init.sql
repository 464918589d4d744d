-- Postern schema, PostgreSQL dialect, in step with migrations/sqlite (same numbers and names).
-- Times are Unix milliseconds (BIGINT) and every integer is BIGINT, so both backends read the same
-- Rust types (i64); binary values are BYTEA. Text that is sorted or compared with < and > is
-- COLLATE "C" (byte order, as SQLite's BINARY), so lists come back in the same order as on SQLite
-- whatever the database's locale.

CREATE TABLE roles (
    name        TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    builtin     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    modified_at BIGINT NOT NULL
);
INSERT INTO roles (name, description, builtin, created_at, modified_at) VALUES
    ('ESBMessaging.send', 'Process messages sent to integration flows (predefined)', TRUE, 0, 0),
    ('API.invoke', 'Invoke APIs (predefined)', TRUE, 0, 0);

CREATE TABLE service_instances (
    name           TEXT COLLATE "C" PRIMARY KEY,
    plan           TEXT NOT NULL,
    client_id      TEXT NOT NULL UNIQUE,
    grant_types    TEXT NOT NULL,   -- JSON array
    redirect_uris  TEXT NOT NULL,   -- JSON array
    token_validity BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL
);

CREATE TABLE instance_roles (
    instance TEXT COLLATE "C" NOT NULL REFERENCES service_instances(name) ON DELETE CASCADE,
    role     TEXT COLLATE "C" NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (instance, role)
);
CREATE INDEX instance_roles_role ON instance_roles(role);

CREATE TABLE service_keys (
    instance    TEXT COLLATE "C" NOT NULL REFERENCES service_instances(name) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    key_type    TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (instance, name)
);

CREATE TABLE users (
    name         TEXT COLLATE "C" PRIMARY KEY,
    password_phc TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE user_roles (
    user_name TEXT COLLATE "C" NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (user_name, role)
);
CREATE INDEX user_roles_role ON user_roles(role);

CREATE TABLE flows (
    id          TEXT COLLATE "C" PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE,
    yaml        TEXT NOT NULL,
    deployed_at BIGINT NOT NULL,
    deployed_by TEXT NOT NULL
);

CREATE TABLE flow_roles (
    flow TEXT COLLATE "C" NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    role TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (flow, role)
);
CREATE INDEX flow_roles_role ON flow_roles(role);

CREATE TABLE mpl (
    guid        TEXT COLLATE "C" PRIMARY KEY,
    flow_id     TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    user_name   TEXT COLLATE "C" NOT NULL,
    sender      TEXT COLLATE "C" NOT NULL,
    receiver    TEXT COLLATE "C" NOT NULL,
    log_start   BIGINT NOT NULL,
    log_end     BIGINT NOT NULL,
    http_status BIGINT NOT NULL,
    error       TEXT
);
CREATE INDEX mpl_log_end ON mpl(log_end);
CREATE INDEX mpl_flow ON mpl(flow_id, log_end);
CREATE INDEX mpl_status ON mpl(status, log_end);

-- Identity ids only grow, as SQLite's AUTOINCREMENT (a rolled-back insert leaves a gap).
CREATE TABLE audit (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);
