-- The monthly report (issue 16, item 6) reads each month's follow-ups by
-- when they were due, done or not (follow_ups_open_due holds open ones
-- only), and the month's test calls by when they were received
-- (device_tests_device leads with the device). Its other ranges have
-- their indexes: incidents_created, visits_due.
CREATE INDEX follow_ups_due ON follow_ups (due_at);
CREATE INDEX device_tests_received ON device_tests (received_at);
