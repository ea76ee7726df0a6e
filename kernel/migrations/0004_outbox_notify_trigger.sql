-- The relay sleeps until a NOTIFY on 'nexuscart_outbox' (kernel/outbox.py NOTIFY_CHANNEL) names a schema whose
-- outbox has new rows. Postgres sends it itself, once per inserting statement and delivered at commit (never
-- for a rolled-back one; identical notifications of one transaction are delivered once), so writing an event
-- is one statement, not an insert and a separate pg_notify call.
CREATE OR REPLACE FUNCTION {schema}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nexuscart_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS outbox_notify ON {schema}.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.outbox_notify();
