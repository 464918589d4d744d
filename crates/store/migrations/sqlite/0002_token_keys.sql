-- Token signing keys. The private key is sealed (AES-256-GCM) under a key derived from the master
-- key, so the database alone cannot sign tokens.
CREATE TABLE token_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
