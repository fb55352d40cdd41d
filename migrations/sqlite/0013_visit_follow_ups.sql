-- A follow-up may follow a visit as well as an incident: the steward who
-- ends a visit with "follow-up wanted" gets a call to make, in the same
-- transaction as the note (dispatcher/src/domain/follow_up.rs,
-- after_visit). Each follow-up follows exactly one of the two; a follow-up
-- asked for by another's outcome follows what that one followed.
--
-- SQLite cannot drop a NOT NULL, so both tables are rebuilt. The
-- reassignments are copied before the old follow-ups go, because dropping
-- a table deletes its rows first and that would cascade into them. Each
-- rename rewrites the references to the renamed table.

CREATE TABLE follow_ups_v2 (
    id          TEXT PRIMARY KEY,
    incident_id TEXT REFERENCES incidents(id) ON DELETE CASCADE,
    -- No reference, as elder_id: removing the elder, and with them their
    -- visits, keeps the follow-up and who it passed through.
    visit_id    TEXT,
    follows_id  TEXT UNIQUE REFERENCES follow_ups_v2(id) ON DELETE CASCADE,
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
    CHECK ((status = 'done') = (outcome IS NOT NULL AND done_at IS NOT NULL AND done_by IS NOT NULL)),
    CHECK ((incident_id IS NULL) <> (visit_id IS NULL))
);
INSERT INTO follow_ups_v2
    (id, incident_id, visit_id, follows_id, elder_id, steward_id, kind, created_at, due_at,
     status, outcome, note, done_at, done_by)
SELECT id, incident_id, NULL, follows_id, elder_id, steward_id, kind, created_at, due_at,
       status, outcome, note, done_at, done_by
FROM follow_ups;

CREATE TABLE follow_up_reassignments_v2 (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    follow_up_id TEXT NOT NULL REFERENCES follow_ups_v2(id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    by_actor     TEXT NOT NULL,
    from_steward TEXT,
    to_steward   TEXT,
    reason       TEXT NOT NULL
);
INSERT INTO follow_up_reassignments_v2
    (seq, follow_up_id, at, by_actor, from_steward, to_steward, reason)
SELECT seq, follow_up_id, at, by_actor, from_steward, to_steward, reason
FROM follow_up_reassignments;

DROP TABLE follow_up_reassignments;
DROP TABLE follow_ups;
ALTER TABLE follow_ups_v2 RENAME TO follow_ups;
ALTER TABLE follow_up_reassignments_v2 RENAME TO follow_up_reassignments;

CREATE UNIQUE INDEX follow_ups_one_per_incident ON follow_ups (incident_id)
    WHERE follows_id IS NULL;
-- One first follow-up per visit, as per incident.
CREATE UNIQUE INDEX follow_ups_one_per_visit ON follow_ups (visit_id)
    WHERE follows_id IS NULL;
-- The open list and the overdue list, soonest due first.
CREATE INDEX follow_ups_open_due ON follow_ups (due_at) WHERE status = 'open';
-- A steward's own.
CREATE INDEX follow_ups_steward ON follow_ups (steward_id, due_at);
-- An elder's notebook.
CREATE INDEX follow_ups_elder ON follow_ups (elder_id, created_at);
-- The monthly report's (0012).
CREATE INDEX follow_ups_due ON follow_ups (due_at);
CREATE INDEX follow_up_reassignments_of ON follow_up_reassignments (follow_up_id, seq);
