-- Partner Directory (SAP Cloud Integration's PD): partners, their string parameters, alternative
-- partners (agency + scheme + id -> Pid) and authorized users (user -> Pid). Audit columns as in
-- SAP's API (CreatedBy/CreatedTime/LastModifiedBy/LastModifiedTime).
CREATE TABLE partners (
    pid        TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE alternative_partners (
    hexagency   TEXT NOT NULL,
    hexscheme   TEXT NOT NULL,
    hexid       TEXT NOT NULL,
    agency      TEXT NOT NULL,
    scheme      TEXT NOT NULL,
    id          TEXT NOT NULL,
    pid         TEXT NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_by TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (hexagency, hexscheme, hexid),
    UNIQUE (agency, scheme, pid)
);

CREATE TABLE authorized_users (
    user_name   TEXT PRIMARY KEY,
    pid         TEXT NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_by TEXT NOT NULL,
    modified_at INTEGER NOT NULL
);
CREATE INDEX authorized_users_pid ON authorized_users(pid);

CREATE TABLE string_parameters (
    pid         TEXT NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    value       TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_by TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (pid, id)
);
