//! What follows a commit, in one place.
//!
//! Whoever commits a change to incidents, offers or stewards (ingest, the
//! API, the timers) says what it changed in a [`Changed`], and
//! [`after_commit`] does everything that must follow, in the order it
//! must. Each caller used to make its own calls to the matcher, the
//! engine and the stream hub, and forgetting one was a silent bug: a
//! steward the matcher still thought busy, an offer nobody re-made, a
//! board a tick behind.

use crate::domain::TakenTurn;
use crate::domain::{IncidentId, Steward};
use crate::notify::hub::Hub;
use crate::store::dispatch_tx::Committed;

use super::EngineHandle;

/// What a committed transaction changed.
#[derive(Debug, Default)]
#[must_use = "hand it to after_commit, or the matcher and the stream fall behind"]
pub struct Changed<'a> {
    /// It wrote stream or outbox rows (nearly every change does).
    pub stream: bool,
    /// Incidents whose offered or assigned stewards may be free again.
    pub released: Vec<IncidentId>,
    /// Stewards as the transaction left them.
    pub stewards: Vec<Steward>,
    /// Dispatch turns the transaction took (ingest's first offers).
    pub turns: &'a [TakenTurn],
    /// Incidents that may need offers now: opened and not offered yet,
    /// declined, or whose offer was withdrawn.
    pub to_offer: Vec<IncidentId>,
}

impl Changed<'_> {
    /// What a dispatch transition's commit said it changed.
    pub fn committed(c: Committed) -> Self {
        Self {
            stream: c.stream,
            stewards: c.stewards,
            to_offer: c.due_now,
            ..Self::default()
        }
    }

    /// Only stream or outbox rows.
    pub fn stream() -> Self {
        Self {
            stream: true,
            ..Self::default()
        }
    }
}

/// Everything that follows `changed`. The matcher hears of stewards
/// first, so that the re-offers kicked next rank them as they are now
/// (the engine takes its kicks in order); the stream and the outbox look
/// at the store last.
pub fn after_commit(hub: &Hub, engine: &EngineHandle, changed: Changed<'_>) {
    for incident in &changed.released {
        engine.released(incident);
    }
    for steward in &changed.stewards {
        engine.steward_changed(steward);
    }
    for turn in changed.turns {
        engine.turn_taken(turn);
    }
    for incident in &changed.to_offer {
        engine.kick(incident);
    }
    if changed.stream {
        hub.nudge();
    }
}
