-- Binary parameters of partners (SAP's BinaryParameters: content type + value up to 256 KiB), and
-- an index for the Pid -> alternative partners lookups a partner delete makes.
CREATE TABLE binary_parameters (
    pid          TEXT NOT NULL REFERENCES partners(pid) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    content_type TEXT NOT NULL,
    value        BLOB NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    modified_by  TEXT NOT NULL,
    modified_at  INTEGER NOT NULL,
    PRIMARY KEY (pid, id)
);
CREATE INDEX alternative_partners_pid ON alternative_partners(pid);
