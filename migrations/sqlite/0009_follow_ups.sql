-- Follow-ups (回访): after an elder's incident is resolved, a call or a
-- visit within a set time, with how the elder was found
-- (dispatcher/src/domain/follow_up.rs). Times are RFC 3339 UTC text written
-- by the dispatcher's clock, as in 0001.
--
-- Exactly one follow-up per resolved incident: the first (follows_id NULL)
-- is unique per incident, written in the resolve's own transaction. A
-- completion that asks for another (needs_visit, unreachable) writes it
-- with follows_id naming the one completed, unique too, so a completion
-- raced twice cannot make two.

CREATE TABLE follow_ups (
    id          TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    follows_id  TEXT UNIQUE REFERENCES follow_ups(id) ON DELETE CASCADE,
    -- No reference, as incidents.elder_id: removing an elder keeps the record.
    elder_id    TEXT NOT NULL,
    -- NULL: it needs someone (handed back, or nobody was assigned).
    steward_id  TEXT REFERENCES stewards(id) ON DELETE SET NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('call', 'visit')),
    created_at  TEXT NOT NULL,
    due_at      TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    outcome     TEXT CHECK (outcome IN ('well', 'needs_visit', 'referred', 'hospitalised',
                                        'unreachable', 'declined', 'other')),
    note        TEXT NOT NULL DEFAULT '',
    done_at     TEXT,
    done_by     TEXT,
    CHECK ((status = 'done') = (outcome IS NOT NULL AND done_at IS NOT NULL AND done_by IS NOT NULL))
);
CREATE UNIQUE INDEX follow_ups_one_per_incident ON follow_ups (incident_id)
    WHERE follows_id IS NULL;
-- The open list and the overdue list, soonest due first.
CREATE INDEX follow_ups_open_due ON follow_ups (due_at) WHERE status = 'open';
-- A steward's own.
CREATE INDEX follow_ups_steward ON follow_ups (steward_id, due_at);
-- An elder's notebook.
CREATE INDEX follow_ups_elder ON follow_ups (elder_id, created_at);

-- Who was to go, and why it changed: a steward handing one back (to NULL)
-- or a supervisor reassigning it.
CREATE TABLE follow_up_reassignments (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    follow_up_id TEXT NOT NULL REFERENCES follow_ups(id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    by_actor     TEXT NOT NULL,
    from_steward TEXT,
    to_steward   TEXT,
    reason       TEXT NOT NULL
);
CREATE INDEX follow_up_reassignments_of ON follow_up_reassignments (follow_up_id, seq);
