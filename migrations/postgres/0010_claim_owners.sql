-- Who holds a claim on an outbox row or a deadline: the application_name
-- of the connection that set its claimed_until, which for a running
-- instance is its heartbeat id in `instances` ("{client id}:{incarnation}").
-- A claim whose holder's heartbeat went silent (a killed, cut-off or
-- stalled instance) is taken over after 3 s instead of waiting out its
-- lease; claimed_until stays the fencing token the holder's report must
-- match.
--
-- A trigger, not the claiming statements, names the holder: every change
-- of claimed_until renames it (NULL when the claim is given back), so a
-- writer that does not know this column (an older release during a
-- rolling upgrade) never claims under another's name. Its connections
-- have no instance name, so its claims wait out their lease as before.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE deadlines ADD COLUMN IF NOT EXISTS claimed_by TEXT;

CREATE OR REPLACE FUNCTION eldercare_claim_owner() RETURNS trigger AS $$
BEGIN
    IF NEW.claimed_until IS NULL THEN
        NEW.claimed_by := NULL;
    ELSE
        NEW.claimed_by := current_setting('application_name');
    END IF;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS outbox_claim_owner ON outbox;
CREATE TRIGGER outbox_claim_owner
    BEFORE UPDATE OF claimed_until ON outbox
    FOR EACH ROW WHEN (NEW.claimed_until IS DISTINCT FROM OLD.claimed_until)
    EXECUTE FUNCTION eldercare_claim_owner();

DROP TRIGGER IF EXISTS deadlines_claim_owner ON deadlines;
CREATE TRIGGER deadlines_claim_owner
    BEFORE UPDATE OF claimed_until ON deadlines
    FOR EACH ROW WHEN (NEW.claimed_until IS DISTINCT FROM OLD.claimed_until)
    EXECUTE FUNCTION eldercare_claim_owner();
