//! Dispatch's vocabulary: a dispatch turn, the matcher's candidates, the
//! engine's plan for a turn and what the turn took. The matcher and the
//! engine decide with these; the store carries them out in one
//! transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    CandidateNote, CloseReason, DeviceId, Elder, Incident, Offer, ReachStep, Steward, StewardId,
};

/// A steward the matcher ranked, in the order to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub steward_id: StewardId,
    /// Estimated travel distance.
    pub distance_m: f64,
}

/// An incident whose dispatch turn this caller holds.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchTurn {
    pub incident: Incident,
    /// None for an incident without an elder (never dispatched).
    pub elder: Option<Elder>,
    /// Stewards already offered this incident (any response): not offered
    /// again in this incident's life.
    pub already_offered: Vec<StewardId>,
    /// Offers still live (a critical incident may hold two).
    pub live_offers: usize,
}

/// Whom to offer a turn to, as the engine decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferPlan {
    /// Ranked, best first; more than `want` so a lost claim has a next.
    pub candidates: Vec<Candidate>,
    /// Offers to make.
    pub want: usize,
    /// When each offer made expires.
    pub expires_at: DateTime<Utc>,
    /// The matcher's reasoning, shown on the incident.
    pub notes: Vec<CandidateNote>,
    /// When to try again if nobody could be offered.
    pub retry_at: DateTime<Utc>,
    /// How each steward offered is reached about it beyond the stream
    /// (pushes, their repeats, SMS, calls): one outbox row per step,
    /// written with the offer and cancelled when the offer ends.
    pub reach: Vec<ReachStep>,
}

/// Decides a turn's offers; runs inside the turn's transaction, so it
/// must be quick and must not touch the store.
pub type Planner<'a> = dyn Fn(&DispatchTurn) -> Option<OfferPlan> + Send + Sync + 'a;

/// A turn taken: what it saw, what was planned, what was offered.
#[derive(Debug, Clone, PartialEq)]
pub struct TakenTurn {
    pub turn: DispatchTurn,
    pub plan: Option<OfferPlan>,
    /// The offers made (empty when nobody could be claimed).
    pub offers: Vec<Offer>,
    /// Their stewards, as claimed (now `offered`), in the same order.
    pub stewards: Vec<Steward>,
}

/// What ingest needs to make an opened incident's first offers in the
/// transaction that opens it ([`crate::store::ingest::IngestStore::ingest_offering`]).
pub struct FirstOffers<'a> {
    pub planner: &'a Planner<'a>,
    /// The offers' time.
    pub now: DateTime<Utc>,
}

/// Why a steward's offer went away, as `offer.withdrawn` tells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithdrawReason {
    /// Nobody answered in time.
    Expired,
    /// They said no.
    Declined,
    /// Another steward accepted first.
    Taken,
    Cancelled,
    Resolved,
    /// A supervisor assigned someone (or them elsewhere).
    Reassigned,
    /// They went off duty.
    OffDuty,
}

impl WithdrawReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Declined => "declined",
            Self::Taken => "taken",
            Self::Cancelled => "cancelled",
            Self::Resolved => "resolved",
            Self::Reassigned => "reassigned",
            Self::OffDuty => "off_duty",
        }
    }

    /// What the steward's phones are told when it closes the notification.
    pub fn close_reason(self) -> CloseReason {
        match self {
            Self::Expired => CloseReason::Expired,
            Self::Declined => CloseReason::Declined,
            Self::Taken => CloseReason::Taken,
            Self::Cancelled => CloseReason::Cancelled,
            Self::Resolved => CloseReason::Resolved,
            Self::Reassigned => CloseReason::Reassigned,
            Self::OffDuty => CloseReason::OffDuty,
        }
    }
}

/// Who did something, as the timeline names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Steward(StewardId),
    /// A login (supervisor or admin), by username.
    User(String),
    /// The device in the home (a press, a sensor, the elder's cancel).
    Device(DeviceId),
    /// The dispatcher itself: a timer, the engine, a rule's deadline.
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Steward(id) => write!(f, "steward:{id}"),
            Self::User(name) => write!(f, "user:{name}"),
            Self::Device(id) => write!(f, "device:{id}"),
            Self::System => f.write_str("system"),
        }
    }
}

/// A live offer as the steward's app shows it: the `offer` event of the
/// stream, and each offer of a steward's snapshot. One type, so the two
/// cannot drift apart.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveOffer {
    pub incident: Incident,
    /// The elder, so the steward knows whom they go to.
    pub elder: Option<Elder>,
    pub distance_m: Option<f64>,
    pub expires_at: DateTime<Utc>,
}
