-- Postern schema, SQLite dialect. Times are Unix milliseconds (INTEGER) so both backends read the
-- same Rust types.

CREATE TABLE roles (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL
);
INSERT INTO roles (name, description, builtin, created_at, modified_at) VALUES
    ('ESBMessaging.send', 'Process messages sent to integration flows (predefined)', 1, 0, 0),
    ('API.invoke', 'Invoke APIs (predefined)', 1, 0, 0);

CREATE TABLE service_instances (
    name           TEXT PRIMARY KEY,
    plan           TEXT NOT NULL,
    client_id      TEXT NOT NULL UNIQUE,
    grant_types    TEXT NOT NULL,   -- JSON array
    redirect_uris  TEXT NOT NULL,   -- JSON array
    token_validity INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL
);

CREATE TABLE instance_roles (
    instance TEXT NOT NULL REFERENCES service_instances(name) ON DELETE CASCADE,
    role     TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (instance, role)
);
CREATE INDEX instance_roles_role ON instance_roles(role);

CREATE TABLE service_keys (
    instance    TEXT NOT NULL REFERENCES service_instances(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    key_type    TEXT NOT NULL,
    secret_hash BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (instance, name)
);

CREATE TABLE users (
    name         TEXT PRIMARY KEY,
    password_phc TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE user_roles (
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role      TEXT NOT NULL,
    PRIMARY KEY (user_name, role)
);
CREATE INDEX user_roles_role ON user_roles(role);

CREATE TABLE flows (
    id          TEXT PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE,
    yaml        TEXT NOT NULL,
    deployed_at INTEGER NOT NULL,
    deployed_by TEXT NOT NULL
);

CREATE TABLE flow_roles (
    flow TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (flow, role)
);
CREATE INDEX flow_roles_role ON flow_roles(role);

CREATE TABLE mpl (
    guid        TEXT PRIMARY KEY,
    flow_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    sender      TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    log_start   INTEGER NOT NULL,
    log_end     INTEGER NOT NULL,
    http_status INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX mpl_log_end ON mpl(log_end);
CREATE INDEX mpl_flow ON mpl(flow_id, log_end);
CREATE INDEX mpl_status ON mpl(status, log_end);

CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT NOT NULL
);
