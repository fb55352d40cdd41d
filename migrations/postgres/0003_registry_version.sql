-- A counter that every change to what ingest decides with moves on: a
-- device added, removed or rebound, an elder added, changed or removed.
-- A dispatcher keeps the devices and elders it has read in memory and
-- checks this one row per batch instead of reading them again; any
-- writer (another instance, `dispatcher import`, a hand-typed UPDATE)
-- moves it, so the copy is never used stale.

CREATE TABLE registry_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

CREATE FUNCTION registry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_version SET version = version + 1;
    RETURN NULL;
END
$$;

-- Heartbeat flushes write last_seen, online, battery_pct, rssi_dbm and fw
-- only, and do not move it.
CREATE TRIGGER devices_registry
    AFTER INSERT OR DELETE OR UPDATE OF id, elder_id, kind, heartbeat_s ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
CREATE TRIGGER elders_registry
    AFTER INSERT OR UPDATE OR DELETE ON elders
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
