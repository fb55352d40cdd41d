-- Retention (dispatcher/src/retention.rs) finds what it prunes, oldest
-- first, through these indexes instead of scanning the tables: events and
-- stream rows already have theirs (events_received, stream_at).

-- Notifications done with (sent, failed or cancelled), by age.
CREATE INDEX outbox_done_created ON outbox (created_at) WHERE state <> 'pending';
-- Closed incidents, by when they last changed.
CREATE INDEX incidents_closed_updated ON incidents (updated_at)
    WHERE status IN ('resolved', 'cancelled');
