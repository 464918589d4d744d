-- Token signing keys. The private key is sealed (AES-256-GCM) under a key derived from the master
-- key, so the database alone cannot sign tokens.
CREATE TABLE token_keys (
    kid         TEXT COLLATE "C" PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_enc BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
