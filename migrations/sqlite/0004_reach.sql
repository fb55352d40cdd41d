-- Reaching stewards whose app is not on screen (Web Push, SMS, voice).
--
-- Each offer writes one outbox row per step of its priority's ladder
-- (pushes and their repeats, SMS, calls), due at the step's time and
-- tagged with the offer and steward; when the offer ends, the steps not
-- yet sent become 'cancelled' in the same transaction.
--
-- SQLite cannot change a CHECK constraint: the outbox is copied into a
-- table with the wider ones.

CREATE TABLE outbox_reach (
    id            TEXT PRIMARY KEY,
    incident_id   TEXT,
    channel       TEXT NOT NULL CHECK (channel IN ('webhook', 'device', 'push', 'sms', 'voice')),
    target        TEXT NOT NULL,
    event         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    due_at        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')),
    last_error    TEXT,
    delivered_at  TEXT,
    claimed_until TEXT,
    offer_id      TEXT,
    steward_id    TEXT
);
INSERT INTO outbox_reach (id, incident_id, channel, target, event, payload, created_at, due_at,
                          attempts, state, last_error, delivered_at, claimed_until)
    SELECT id, incident_id, channel, target, event, payload, created_at, due_at,
           attempts, state, last_error, delivered_at, claimed_until
    FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_reach RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';
CREATE INDEX outbox_incident ON outbox (incident_id);
CREATE INDEX outbox_offer ON outbox (offer_id) WHERE offer_id IS NOT NULL;

-- The phones each steward registered for Web Push. An endpoint belongs to
-- one browser: registered again (another login on a shared phone), it
-- moves to the new steward.
CREATE TABLE push_subscriptions (
    id              TEXT PRIMARY KEY,
    steward_id      TEXT NOT NULL REFERENCES stewards(id) ON DELETE CASCADE,
    endpoint        TEXT NOT NULL UNIQUE,
    p256dh          TEXT NOT NULL,
    auth            TEXT NOT NULL,
    expiration_time TEXT,
    lang            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    last_push_at    TEXT,
    last_ok         BOOLEAN,
    last_error      TEXT
);
CREATE INDEX push_subscriptions_steward ON push_subscriptions (steward_id);

-- Keys the server makes at its first start: the VAPID key pair, the key
-- offer tokens are signed with.
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- An SMS link opens its offer once.
ALTER TABLE offers ADD COLUMN link_used_at TEXT;
