-- Certificate service keys: the bound client certificate (PEM), its SHA-256 fingerprint (the
-- lookup key at the TLS edge) and expiry. Secret keys leave these NULL; certificate keys leave
-- secret_hash empty.
ALTER TABLE service_keys ADD COLUMN cert_pem TEXT;
ALTER TABLE service_keys ADD COLUMN cert_sha256 BYTEA;
ALTER TABLE service_keys ADD COLUMN cert_not_after BIGINT;
CREATE UNIQUE INDEX service_keys_cert ON service_keys(cert_sha256) WHERE cert_sha256 IS NOT NULL;

-- CA certificates whose client certificates the HTTPS listener accepts, besides Postern's own CA.
CREATE TABLE trusted_cas (
    sha256     BYTEA PRIMARY KEY,
    pem        TEXT NOT NULL,
    subject    TEXT NOT NULL,
    not_after  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
