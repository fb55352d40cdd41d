-- A follow-up may follow a visit as well as an incident: the steward who
-- ends a visit with "follow-up wanted" gets a call to make, in the same
-- transaction as the note (dispatcher/src/domain/follow_up.rs,
-- after_visit). Each follow-up follows exactly one of the two; a follow-up
-- asked for by another's outcome follows what that one followed.
ALTER TABLE follow_ups ALTER COLUMN incident_id DROP NOT NULL;
-- No reference, as follow_ups.elder_id: removing the elder, and with them
-- their visits, keeps the follow-up and who it passed through.
ALTER TABLE follow_ups ADD COLUMN visit_id TEXT;
ALTER TABLE follow_ups ADD CONSTRAINT follow_ups_follow_one
    CHECK ((incident_id IS NULL) <> (visit_id IS NULL));
-- One first follow-up per visit, as per incident.
CREATE UNIQUE INDEX follow_ups_one_per_visit ON follow_ups (visit_id)
    WHERE follows_id IS NULL;
