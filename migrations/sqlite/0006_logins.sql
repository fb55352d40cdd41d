-- Login limits every instance agrees on, and the devices a user has
-- logged in from (OWASP's "device cookies").

-- One row per limited key: `user:{name}`, `addr:{ip}`, `device:{hash}`.
-- Times in Unix milliseconds, so both databases do the same arithmetic.
CREATE TABLE login_throttle (
    key              TEXT PRIMARY KEY,
    failures         INTEGER NOT NULL,
    last_ms          INTEGER NOT NULL,
    blocked_until_ms INTEGER NOT NULL
);
-- The sweeper deletes rows nobody has touched for a while.
CREATE INDEX login_throttle_last ON login_throttle (last_ms);

-- A token given at a successful login; only its SHA-256 is kept.
CREATE TABLE known_devices (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);
CREATE INDEX known_devices_username ON known_devices (username);
CREATE INDEX known_devices_expires ON known_devices (expires_at);

-- The sweeper deletes expired sessions in small batches.
CREATE INDEX sessions_expires ON sessions (expires_at);
