-- The change feed names the service instance or technical user a security change touched, so
-- other nodes re-read just that instance (with its keys) or user instead of every key and user.
-- Only key columns are recorded, never secrets or password hashes.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('service_instances', '''name'''), ('instance_roles', '''instance'''),
        ('service_keys', '''instance'''), ('users', '''name'''), ('user_roles', '''user_name''')
    ) AS v(name, args)
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', t.name || '_changes_ins', t.name);
        EXECUTE format('DROP TRIGGER %I ON %I', t.name || '_changes_upd', t.name);
        EXECUTE format('DROP TRIGGER %I ON %I', t.name || '_changes_del', t.name);
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
