-- Who holds a claim on an outbox row or a deadline: the claiming
-- connection's application_name, which is the instance's heartbeat id in
-- `instances` ("{client id}:{incarnation}"). A claim whose holder's
-- heartbeat went silent (a killed or cut-off instance) is taken over after
-- a few seconds instead of waiting out its lease; the claim's
-- claimed_until stays the fencing token the holder's report must match.
--
-- Additive: an older instance neither writes nor reads it, and its claims
-- wait out their lease as before.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_by TEXT;
ALTER TABLE deadlines ADD COLUMN IF NOT EXISTS claimed_by TEXT;
