-- The change feed of a multi-node deployment: every change to configuration, security or
-- Partner Directory data is recorded here by statement-level triggers, in the writing transaction,
-- and announced with NOTIFY postern_changes (one notification per transaction). Nodes read the
-- rows after the last sequence number they applied. Only key columns are recorded (never secrets):
-- the Partner Directory's keys so nodes update just those entries; for the other tables the table
-- name alone, on which nodes rebuild their security snapshot.
CREATE TABLE changes (
    seq    BIGSERIAL PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    entity TEXT NOT NULL,
    key    JSONB NOT NULL
);
CREATE INDEX changes_at ON changes (at);

CREATE FUNCTION postern_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO changes (entity, key)
        SELECT TG_TABLE_NAME,
               COALESCE((SELECT jsonb_object_agg(c, to_jsonb(o) -> c) FROM unnest(TG_ARGV) AS c), '{}'::jsonb)
        FROM old_rows o;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO changes (entity, key)
        SELECT TG_TABLE_NAME,
               COALESCE((SELECT jsonb_object_agg(c, to_jsonb(n) -> c) FROM unnest(TG_ARGV) AS c), '{}'::jsonb)
        FROM new_rows n;
    END IF;
    PERFORM pg_notify('postern_changes', '');
    RETURN NULL;
END $$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('roles', ''), ('service_instances', ''), ('instance_roles', ''), ('service_keys', ''),
        ('users', ''), ('user_roles', ''), ('flows', ''), ('flow_roles', ''), ('token_keys', ''),
        ('trusted_cas', ''), ('cert_mappings', ''), ('partners', '''pid'''),
        ('alternative_partners', '''agency'', ''scheme'', ''id'''),
        ('authorized_users', '''user_name'''), ('string_parameters', '''pid'', ''id'''),
        ('binary_parameters', '''pid'', ''id''')
    ) AS v(name, args)
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION postern_record_changes(%s)',
                       t.name || '_changes_ins', t.name, t.args);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION postern_record_changes(%s)',
                       t.name || '_changes_upd', t.name, t.args);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION postern_record_changes(%s)',
                       t.name || '_changes_del', t.name, t.args);
    END LOOP;
END $$;
