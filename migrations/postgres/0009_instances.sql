-- Every running dispatcher instance says it is alive, and whether it holds
-- a broker connection, every half second (dispatcher/src/fence.rs). An
-- instance cut off from the broker stops acting only while another
-- instance is on the broker; when every instance lost the broker, they
-- all keep offering what the store holds.
--
-- Additive: older instances never read it (docs/PRODUCTION.md, "Upgrading").
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    broker_connected BOOLEAN NOT NULL,
    version TEXT NOT NULL,
    -- The database's own clock, so instances' clocks need not agree.
    seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
