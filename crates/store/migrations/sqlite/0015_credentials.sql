-- Credentials Postern presents to back ends (SAP's security material "User Credentials" and
-- key pairs): the user name and certificate chain in clear, the password, token or private key
-- sealed (AES-256-GCM) under a key derived from the master key. Flows name them.
CREATE TABLE credentials (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    certificate TEXT NOT NULL,
    secret_enc  BLOB NOT NULL,
    modified_at INTEGER NOT NULL,
    modified_by TEXT NOT NULL
);
