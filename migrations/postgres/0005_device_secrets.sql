-- Device credentials (PROTOCOL.md, Transport): each device's own secret,
-- stored only as its SHA-256 in hex. No row, or a NULL hash (revoked):
-- the device cannot connect to the embedded broker.
--
-- changed_at lets a running dispatcher notice a rotation or revocation
-- made by another process (`dispatcher device-secret`) and close the
-- connection still using the old secret.

CREATE TABLE device_secrets (
    device_id   TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    secret_hash TEXT,
    changed_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX device_secrets_changed ON device_secrets (changed_at);
