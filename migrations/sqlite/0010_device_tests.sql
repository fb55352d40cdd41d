-- Device duty (issue 16, docs/PROTOCOL-EXTENSIONS.md): each device's
-- scheduled test calls, and since when each device has been on duty.
-- Times are RFC 3339 UTC text written by the dispatcher's clock.

-- One row per test call, keyed like the events table: a redelivered
-- test.call is the same test. No foreign key: ingest writes it in the
-- batch's transaction and must never fail on a device deleted meanwhile
-- (the insert selects the device, so a deleted one writes nothing).
CREATE TABLE device_tests (
    device_id    TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    -- received_at + device_duty.confirm_within_s: a confirmation after
    -- it is late and does not pass the test.
    confirm_by   TEXT NOT NULL,
    confirmed_at TEXT,
    passed       BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (device_id, event_id)
);
CREATE INDEX device_tests_device ON device_tests (device_id, received_at);

-- When the device went on duty (registered): a device that never passed
-- a test is due device_duty.grace_days after this.
CREATE TABLE device_duty (
    device_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    enrolled_at TEXT NOT NULL
);
-- Devices registered before this migration start their duty now.
INSERT INTO device_duty (device_id, enrolled_at)
SELECT id, strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now') FROM devices;
