-- Dispatch: offers, the incident's dispatch clock, the stream log and the
-- outbox. Every deadline is a column with a due time, claimed by the timer
-- loop (ARCHITECTURE.md rule 4).

CREATE TABLE offers (
    id           TEXT PRIMARY KEY,
    incident_id  TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    steward_id   TEXT NOT NULL REFERENCES stewards(id) ON DELETE CASCADE,
    offered_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    response     TEXT CHECK (response IN ('accepted', 'declined', 'expired', 'withdrawn')),
    responded_at TIMESTAMPTZ,
    distance_m   DOUBLE PRECISION
);
-- A steward never holds two live offers, whatever the concurrency.
CREATE UNIQUE INDEX offers_one_live_per_steward ON offers (steward_id) WHERE response IS NULL;
CREATE INDEX offers_incident ON offers (incident_id);
CREATE INDEX offers_live_expiry ON offers (expires_at) WHERE response IS NULL;

-- When the incident may next be offered (NULL while offers are live or it
-- is not dispatched at all), when it escalates unless acknowledged, how
-- many offers failed, and the matcher's reasoning (JSON).
ALTER TABLE incidents ADD COLUMN next_dispatch_at TIMESTAMPTZ;
ALTER TABLE incidents ADD COLUMN escalate_at TIMESTAMPTZ;
ALTER TABLE incidents ADD COLUMN failed_offers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN candidates TEXT NOT NULL DEFAULT '[]';
CREATE INDEX incidents_next_dispatch ON incidents (next_dispatch_at) WHERE next_dispatch_at IS NOT NULL;
CREATE INDEX incidents_escalate ON incidents (escalate_at) WHERE escalate_at IS NOT NULL;

-- The incident a steward is offered or assigned (NULL when available).
ALTER TABLE stewards ADD COLUMN incident_id TEXT;

-- What SSE clients see, in order; Last-Event-ID names a seq.
CREATE TABLE stream (
    seq      BIGSERIAL PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL,
    audience TEXT NOT NULL,
    event    TEXT NOT NULL,
    data     TEXT NOT NULL
);
CREATE INDEX stream_at ON stream (at);

-- Outside notifications, written with the change they report.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    incident_id   TEXT,
    channel       TEXT NOT NULL CHECK (channel IN ('webhook', 'device')),
    target        TEXT NOT NULL,
    event         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    due_at        TIMESTAMPTZ NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    last_error    TEXT,
    delivered_at  TIMESTAMPTZ,
    claimed_until TIMESTAMPTZ
);
CREATE INDEX outbox_due ON outbox (due_at) WHERE state = 'pending';
CREATE INDEX outbox_incident ON outbox (incident_id);
