-- Binary parameters of partners (SAP's BinaryParameters: content type + value up to 256 KiB), and
-- an index for the Pid -> alternative partners lookups a partner delete makes.
CREATE TABLE binary_parameters (
    pid          TEXT COLLATE "C" NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    id           TEXT COLLATE "C" NOT NULL,
    content_type TEXT COLLATE "C" NOT NULL,
    value        BYTEA NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL,
    modified_by  TEXT COLLATE "C" NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (pid, id)
);
CREATE INDEX alternative_partners_pid ON alternative_partners(pid);
