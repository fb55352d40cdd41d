-- A counter that every change to what ingest decides with moves on: a
-- device added, removed or rebound, an elder added, changed or removed.
-- A dispatcher keeps the devices and elders it has read in memory and
-- checks this one row per batch instead of reading them again; any
-- writer (another instance, `dispatcher import`, a hand-typed UPDATE)
-- moves it, so the copy is never used stale.

CREATE TABLE registry_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

-- Heartbeat flushes write last_seen, online, battery_pct, rssi_dbm and fw
-- only, and do not move it.
CREATE TRIGGER devices_added AFTER INSERT ON devices
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER devices_changed AFTER UPDATE OF id, elder_id, kind, heartbeat_s ON devices
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER devices_removed AFTER DELETE ON devices
BEGIN UPDATE registry_version SET version = version + 1; END;

CREATE TRIGGER elders_added AFTER INSERT ON elders
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER elders_changed AFTER UPDATE ON elders
BEGIN UPDATE registry_version SET version = version + 1; END;
CREATE TRIGGER elders_removed AFTER DELETE ON elders
BEGIN UPDATE registry_version SET version = version + 1; END;
