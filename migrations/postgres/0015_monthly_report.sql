-- The monthly report (issue 16, item 6) reads each month's follow-ups by
-- when they were due, done or not (follow_ups_open_due holds open ones
-- only). Its other ranges have their indexes: incidents_created,
-- visits_due, device_tests_device.
CREATE INDEX follow_ups_due ON follow_ups (due_at);
