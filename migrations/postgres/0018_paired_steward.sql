-- The steward paired with an elder (结对帮扶; the API's care.steward_id),
-- kept in a column of its own rather than in the care JSON: a release
-- that does not know pairing reads the plan (its CarePlan refuses unknown
-- fields) and ignores the column, so an upgrade can run both releases
-- side by side. No reference: a pairing naming a steward no longer there
-- plans for the grid's steward (dispatcher/src/store/care_sql.rs).
ALTER TABLE elders ADD COLUMN steward_id TEXT;
