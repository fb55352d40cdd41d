-- The registry, logins, device events, incidents and deadlines.
-- Times are RFC 3339 UTC text written by the dispatcher's clock (never by
-- SQL), so they compare correctly as text. Lists and objects are JSON text.

CREATE TABLE elders (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    birth_year  INTEGER NOT NULL,
    address     TEXT NOT NULL,
    lat         REAL NOT NULL,
    lon         REAL NOT NULL,
    grid        TEXT NOT NULL,
    conditions  TEXT NOT NULL DEFAULT '[]',
    medications TEXT NOT NULL DEFAULT '[]',
    risks       TEXT NOT NULL DEFAULT '{}',
    lives_alone BOOLEAN NOT NULL DEFAULT FALSE,
    languages   TEXT NOT NULL DEFAULT '[]',
    contacts    TEXT NOT NULL DEFAULT '[]',
    notes       TEXT NOT NULL DEFAULT '',
    limits      TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    elder_id    TEXT REFERENCES elders(id) ON DELETE SET NULL,
    kind        TEXT NOT NULL,
    heartbeat_s INTEGER NOT NULL,
    online      BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen   TEXT,
    battery_pct INTEGER,
    rssi_dbm    INTEGER,
    fw          TEXT
);
CREATE INDEX devices_elder ON devices (elder_id);

CREATE TABLE stewards (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    phone       TEXT NOT NULL,
    grid        TEXT NOT NULL,
    skills      TEXT NOT NULL DEFAULT '[]',
    languages   TEXT NOT NULL DEFAULT '[]',
    on_duty     BOOLEAN NOT NULL DEFAULT FALSE,
    status      TEXT NOT NULL DEFAULT 'off_duty'
                CHECK (status IN ('available', 'offered', 'busy', 'off_duty')),
    lat         REAL,
    lon         REAL,
    location_at TEXT,
    accuracy_m  REAL
);

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'supervisor', 'steward')),
    steward_id    TEXT REFERENCES stewards(id) ON DELETE CASCADE,
    CHECK ((role = 'steward') = (steward_id IS NOT NULL))
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);
-- Deleting a user cascades to their sessions; without this index each
-- delete scans every session.
CREATE INDEX sessions_username ON sessions (username);

CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    ts          TEXT NOT NULL,
    received_at TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    elder_id    TEXT,
    action      TEXT NOT NULL DEFAULT 'recorded',
    incident_id TEXT,
    UNIQUE (device_id, event_id)
);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_device ON events (device_id, received_at);

CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,
    dedup_key        TEXT NOT NULL,
    elder_id         TEXT,
    device_id        TEXT,
    kind             TEXT NOT NULL,
    priority         TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('dispatching', 'acknowledged', 'on_site', 'resolved', 'cancelled')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    acknowledged_at  TEXT,
    on_site_at       TEXT,
    resolved_at      TEXT,
    steward_id       TEXT,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    outcome          TEXT,
    notes            TEXT,
    event_count      INTEGER NOT NULL DEFAULT 1,
    last_event_at    TEXT NOT NULL,
    summary          TEXT NOT NULL
);
-- One open incident per elder and kind (per device for technical kinds):
-- repeated presses and redelivered events join it.
CREATE UNIQUE INDEX incidents_one_open
    ON incidents (dedup_key) WHERE status IN ('dispatching', 'acknowledged', 'on_site');
CREATE INDEX incidents_created ON incidents (created_at);
CREATE INDEX incidents_elder ON incidents (elder_id);
CREATE INDEX incidents_steward ON incidents (steward_id);

CREATE TABLE timeline (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    what        TEXT NOT NULL,
    actor       TEXT NOT NULL
);
CREATE INDEX timeline_incident ON timeline (incident_id, seq);

CREATE TABLE deadlines (
    key           TEXT PRIMARY KEY,
    due_at        TEXT NOT NULL,
    effects       TEXT NOT NULL,
    claimed_until TEXT
);
CREATE INDEX deadlines_due ON deadlines (due_at);
