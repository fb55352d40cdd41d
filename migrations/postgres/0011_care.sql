-- The stewards' daily work (issue 16): each elder's care plan, their
-- visits, and what a visit changed in their record.

-- The elder's plan: daily check-in, how often they are visited, on watch.
-- JSON like limits; '{}' is the default plan (visits by risk, no check-in).
ALTER TABLE elders ADD COLUMN care TEXT NOT NULL DEFAULT '{}';

-- One row per visit. The planner keeps one pending visit (planned or in
-- progress) per elder; a done visit stays as the notebook's record.
CREATE TABLE visits (
    id           TEXT PRIMARY KEY,
    elder_id     TEXT NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    -- The grid's steward when it was planned; NULL when the grid has none.
    steward_id   TEXT,
    -- The site's local date it is due on, YYYY-MM-DD.
    due_on       TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('planned', 'in_progress', 'done')),
    started_at   TIMESTAMPTZ,
    -- 'location' (checked in at the door), 'button' (steward.here), 'manual'.
    started_how  TEXT,
    ended_at     TIMESTAMPTZ,
    done_by      TEXT,
    -- The structured note (wellbeing, changes, needs, follow-up) as JSON.
    note         TEXT,
    -- When the visit was found overdue and its routine incident raised.
    overdue_at   TIMESTAMPTZ,
    incident_id  TEXT
);
CREATE UNIQUE INDEX visits_one_pending ON visits (elder_id)
    WHERE status IN ('planned', 'in_progress');
CREATE INDEX visits_due ON visits (due_on);
CREATE INDEX visits_elder ON visits (elder_id, due_on);
CREATE INDEX visits_overdue ON visits (window_end) WHERE status = 'planned' AND overdue_at IS NULL;

-- Changes to an elder's conditions and medicines made from a visit note,
-- with who and when: the notebook shows them.
CREATE TABLE elder_changes (
    seq      BIGSERIAL PRIMARY KEY,
    elder_id TEXT NOT NULL REFERENCES elders(id) ON DELETE CASCADE,
    at       TIMESTAMPTZ NOT NULL,
    actor    TEXT NOT NULL,
    field    TEXT NOT NULL CHECK (field IN ('conditions', 'medications')),
    added    TEXT NOT NULL DEFAULT '[]',
    removed  TEXT NOT NULL DEFAULT '[]',
    visit_id TEXT
);
CREATE INDEX elder_changes_elder ON elder_changes (elder_id, at);
