-- Reaching stewards whose app is not on screen (Web Push, SMS, voice).
--
-- Each offer writes one outbox row per step of its priority's ladder
-- (pushes and their repeats, SMS, calls), due at the step's time and
-- tagged with the offer and steward; when the offer ends, the steps not
-- yet sent become 'cancelled' in the same transaction.
--
-- Upgrading several instances: stop those of the previous version before
-- this migration runs. Their outbox worker claims rows of every channel
-- and cannot read the new ones, so beside this version it would hold up
-- device commands for a lease at a time. (From this version on a worker
-- claims only the channels it knows.)

-- Widened checks, added NOT VALID and validated after: the validation
-- scans the outbox without blocking its writers.
ALTER TABLE outbox DROP CONSTRAINT outbox_channel_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_channel_check
    CHECK (channel IN ('webhook', 'device', 'push', 'sms', 'voice')) NOT VALID;
ALTER TABLE outbox VALIDATE CONSTRAINT outbox_channel_check;
ALTER TABLE outbox DROP CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_state_check
    CHECK (state IN ('pending', 'delivered', 'failed', 'cancelled')) NOT VALID;
ALTER TABLE outbox VALIDATE CONSTRAINT outbox_state_check;
ALTER TABLE outbox ADD COLUMN offer_id TEXT;
ALTER TABLE outbox ADD COLUMN steward_id TEXT;
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
    expiration_time TIMESTAMPTZ,
    lang            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_push_at    TIMESTAMPTZ,
    last_ok         BOOLEAN,
    last_error      TEXT
);
CREATE INDEX push_subscriptions_steward ON push_subscriptions (steward_id);

-- Keys the server makes at its first start and every instance shares:
-- the VAPID key pair, the key offer tokens are signed with.
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- An SMS link opens its offer once.
ALTER TABLE offers ADD COLUMN link_used_at TIMESTAMPTZ;
