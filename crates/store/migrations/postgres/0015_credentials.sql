-- Credentials Postern presents to back ends (SAP's security material "User Credentials" and
-- key pairs): the user name and certificate chain in clear, the password, token or private key
-- sealed (AES-256-GCM) under a key derived from the master key. Flows name them; a change
-- reaches other nodes through the change feed (by name, never the secret).
CREATE TABLE credentials (
    name        TEXT COLLATE "C" PRIMARY KEY,
    kind        TEXT NOT NULL,
    user_name   TEXT NOT NULL,
    certificate TEXT NOT NULL,
    secret_enc  BYTEA NOT NULL,
    modified_at BIGINT NOT NULL,
    modified_by TEXT NOT NULL
);
CREATE TRIGGER credentials_changes_ins AFTER INSERT ON credentials REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postern_record_changes('name');
CREATE TRIGGER credentials_changes_upd AFTER UPDATE ON credentials
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postern_record_changes('name');
CREATE TRIGGER credentials_changes_del AFTER DELETE ON credentials REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION postern_record_changes('name');
