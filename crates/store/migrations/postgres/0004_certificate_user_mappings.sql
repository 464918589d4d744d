-- Certificate-to-user mappings: a whole client certificate maps to a user name, whose roles then
-- authorize it. Id: the first 32 hex digits of the certificate's SHA-256.
CREATE TABLE cert_mappings (
    id         TEXT COLLATE "C" PRIMARY KEY,
    sha256     BYTEA NOT NULL UNIQUE,
    user_name  TEXT COLLATE "C" NOT NULL,
    pem        TEXT NOT NULL,
    subject    TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    serial     TEXT NOT NULL,
    not_after  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX cert_mappings_user ON cert_mappings(user_name);
