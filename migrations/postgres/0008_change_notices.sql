-- Every dispatcher instance on this database hears, at commit, what any
-- of them changed: a steward's row (status, duty, location) and new
-- stream rows. NOTIFY is transactional: a change rolled back is never
-- announced, and one committed is announced after it is visible.
--
-- Triggers rather than application code, so that every writer announces,
-- an older instance during a rolling upgrade included, and no code path
-- can forget to. Payloads are ids only; listeners read the rows.
-- (SQLite has no listeners: a SQLite site runs one instance.)

CREATE FUNCTION eldercare_steward_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eldercare_stewards', NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER steward_added AFTER INSERT ON stewards
    FOR EACH ROW EXECUTE FUNCTION eldercare_steward_changed();

-- A no-op UPDATE announces nothing.
CREATE TRIGGER steward_changed AFTER UPDATE ON stewards
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION eldercare_steward_changed();

-- One notice per statement, and Postgres folds equal notices of one
-- transaction into one: a batch of a thousand stream rows costs one.
CREATE FUNCTION eldercare_stream_grew() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eldercare_stream', '');
    RETURN NULL;
END $$;

CREATE TRIGGER stream_grew AFTER INSERT ON stream
    FOR EACH STATEMENT EXECUTE FUNCTION eldercare_stream_grew();
