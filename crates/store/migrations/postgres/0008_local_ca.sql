-- Postern's local CA, one per deployment and shared by every node: it issues the server
-- certificates and the client certificates of certificate service keys. The private key is
-- sealed (AES-256-GCM) under a key derived from the master key, like the token signing keys.
CREATE TABLE local_ca (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem   TEXT NOT NULL,
    key_enc    BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
