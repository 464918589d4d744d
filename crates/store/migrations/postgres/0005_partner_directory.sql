-- Partner Directory (SAP Cloud Integration's PD): partners, their string parameters, alternative
-- partners (agency + scheme + id -> Pid) and authorized users (user -> Pid). Audit columns as in
-- SAP's API (CreatedBy/CreatedTime/LastModifiedBy/LastModifiedTime). Every text column here can
-- be filtered or sorted through the API, hence COLLATE "C" throughout (see 0001).
CREATE TABLE partners (
    pid        TEXT COLLATE "C" PRIMARY KEY,
    created_at BIGINT NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL
);

CREATE TABLE alternative_partners (
    hexagency   TEXT COLLATE "C" NOT NULL,
    hexscheme   TEXT COLLATE "C" NOT NULL,
    hexid       TEXT COLLATE "C" NOT NULL,
    agency      TEXT COLLATE "C" NOT NULL,
    scheme      TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    pid         TEXT COLLATE "C" NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    created_by  TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_by TEXT COLLATE "C" NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (hexagency, hexscheme, hexid),
    UNIQUE (agency, scheme, pid)
);

CREATE TABLE authorized_users (
    user_name   TEXT COLLATE "C" PRIMARY KEY,
    pid         TEXT COLLATE "C" NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    created_by  TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_by TEXT COLLATE "C" NOT NULL,
    modified_at BIGINT NOT NULL
);
CREATE INDEX authorized_users_pid ON authorized_users(pid);

CREATE TABLE string_parameters (
    pid         TEXT COLLATE "C" NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    id          TEXT COLLATE "C" NOT NULL,
    value       TEXT COLLATE "C" NOT NULL,
    created_by  TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL,
    modified_by TEXT COLLATE "C" NOT NULL,
    modified_at BIGINT NOT NULL,
    PRIMARY KEY (pid, id)
);
