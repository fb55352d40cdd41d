//! The store's side of dispatch: the transaction dispatch's transitions
//! run in ([`super::dispatch_tx`]), the lists the timers walk, and what
//! the stream and the reports read. The transitions themselves are
//! [`crate::dispatch::lifecycle`]'s.
//!
//! Every transition is one transaction that writes the change, its timeline
//! rows, its stream rows (what SSE clients see) and its outbox rows (what
//! webhooks and devices are told) together (ARCHITECTURE.md rule 2). A
//! steward is claimed by compare-and-set (`… WHERE status = 'available'`,
//! rows affected checked), and the partial unique index
//! `offers_one_live_per_steward` makes "no steward holds two offers" a
//! store constraint (rule 3). Every deadline is a column with a due time
//! (`offers.expires_at`, `incidents.escalate_at`, `incidents.next_dispatch_at`,
//! `outbox.due_at`) claimed by the timer loop (rule 4).
//!
//! What is written to the stream and the outbox for each change:
//!
//! | change | stream (audience: event) | outbox |
//! |---|---|---|
//! | incident opened (ingest) | supervisors: `incident` | device `received`; supervisors webhooks `incident.opened` |
//! | incident joined | supervisors: `incident` | |
//! | offer made | steward: `offer`; supervisors: `incident`, `steward` | |
//! | offer declined / expired / withdrawn | steward: `offer.withdrawn` (reason); supervisors: `incident`, `steward` | |
//! | accepted / assigned | supervisors + the steward: `incident`; other offered stewards: `offer.withdrawn`; supervisors: `steward` | device `acknowledged`; webhooks `incident.acknowledged` |
//! | on site | supervisors + the steward: `incident` | device `on_site`; webhooks `incident.on_site` |
//! | resolved / cancelled / cleared | supervisors + the steward: `incident`; supervisors: `steward` | device `resolved` / `cancelled`; webhooks `incident.resolved` / `incident.cancelled` |
//! | escalated | supervisors: `incident` | webhooks `incident.escalated`; family webhooks too when critical |
//!
//! Built in one place, [`super::notices`]. `incident` always goes to the
//! supervisors and, when the incident has an assigned steward, to them too
//! (API.md: "the incident after any change"), once per transaction. A
//! reassignment tells the previous steward `offer.withdrawn` (reason
//! `reassigned`). Device rows go to `incident.device_id` (none without
//! one) and carry `protocol::CommandMessage`; a clear sends `resolved`.
//! Webhook rows go to each configured target whose audience applies
//! (supervisors: every row above; family: critical escalations), with
//! `{"event", "incident", "elder": {id, name, address, lat, lon,
//! conditions, medications, contacts} | null, "at"}`.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::StoreResult;
use super::dispatch_tx::DispatchTx;
use crate::domain::{
    ContactChannel, Delivery, DispatchTurn, Incident, IncidentId, Offer, StewardId,
};

/// How long a dispatch turn taken with nothing to offer (an incident
/// without an elder) waits before it comes due again. A caller that dies
/// mid-turn leaves nothing behind: the turn is one transaction.
pub const DISPATCH_LEASE: Duration = Duration::seconds(15);

pub use crate::domain::Actor;

/// Who a stream event is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "to", content = "id")]
pub enum Audience {
    /// Admins and supervisors.
    Supervisors,
    Steward(StewardId),
}

impl Audience {
    /// The text stored in `stream.audience`: `supervisors` or `steward:{id}`.
    pub fn as_text(&self) -> String {
        match self {
            Self::Supervisors => "supervisors".into(),
            Self::Steward(id) => format!("steward:{id}"),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.strip_prefix("steward:") {
            Some(id) => StewardId::parse(id).ok().map(Self::Steward),
            None if text == "supervisors" => Some(Self::Supervisors),
            None => None,
        }
    }
}

/// One row of the stream log: an SSE event with its id (`seq`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StreamEvent {
    /// Increasing; the SSE `id`, and what `Last-Event-ID` names.
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[schema(value_type = String)]
    pub audience: Audience,
    #[schema(value_type = String)]
    pub event: StreamKind,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The names of the stream's events (API.md, Stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum StreamKind {
    /// The first frame of every connection; never stored.
    #[serde(rename = "snapshot")]
    Snapshot,
    /// A new offer, to its steward.
    #[serde(rename = "offer")]
    Offer,
    /// An offer that went away, to its steward, with the reason.
    #[serde(rename = "offer.withdrawn")]
    OfferWithdrawn,
    /// An incident after a change.
    #[serde(rename = "incident")]
    Incident,
    /// A steward after a status change, to supervisors.
    #[serde(rename = "steward")]
    Steward,
}

impl StreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Offer => "offer",
            Self::OfferWithdrawn => "offer.withdrawn",
            Self::Incident => "incident",
            Self::Steward => "steward",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Snapshot,
            Self::Offer,
            Self::OfferWithdrawn,
            Self::Incident,
            Self::Steward,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an outbox row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A JSON POST to a configured webhook (target = its name).
    Webhook,
    /// An MQTT command to a device (target = the device id).
    Device,
    /// Web Push to every phone a steward registered (target = the
    /// steward id).
    Push,
    /// A text message through the SMS gateway (target = the steward id,
    /// or a phone number for a reply).
    Sms,
    /// A call through the voice gateway (target = the steward id).
    Voice,
}

impl Channel {
    pub const ALL: [Channel; 5] = [
        Channel::Webhook,
        Channel::Device,
        Channel::Push,
        Channel::Sms,
        Channel::Voice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Device => "device",
            Self::Push => "push",
            Self::Sms => "sms",
            Self::Voice => "voice",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

impl From<ContactChannel> for Channel {
    fn from(c: ContactChannel) -> Self {
        match c {
            ContactChannel::Push => Self::Push,
            ContactChannel::Sms => Self::Sms,
            ContactChannel::Voice => Self::Voice,
        }
    }
}

/// An outside notification due for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub id: String,
    pub incident_id: Option<IncidentId>,
    pub channel: Channel,
    pub target: String,
    /// `incident.opened`, …, or `incident.update` for device commands.
    pub event: String,
    /// The JSON body to send (the device command, or the webhook payload;
    /// for pushes, SMS and calls what they say: an
    /// [`crate::domain::OfferView`] or [`crate::domain::CloseNote`]).
    pub payload: serde_json::Value,
    /// The offer a push, SMS or call is about.
    pub offer_id: Option<String>,
    /// When it was due: a ladder step's time.
    pub due_at: DateTime<Utc>,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// Until when the claim that returned it holds, as stored: the
    /// fencing token [`super::outbox::OutboxStore::finish_outbox`]
    /// checks, so a worker that comes back from a pause past its lease
    /// records nothing over whoever claimed the row next.
    pub claimed_until: Option<DateTime<Utc>>,
}

impl OutboxItem {
    /// Whether the claim still holds at `now` by this instance's clock:
    /// a worker sends nothing it no longer holds (after a stall, a
    /// suspended VM), and leaves it to whoever claims it next.
    pub fn claim_holds(&self, now: DateTime<Utc>) -> bool {
        self.claimed_until.is_some_and(|until| now < until)
    }
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Failed; try again at this time.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Failed for good (attempts exhausted, or the target is gone).
    Failed {
        error: String,
    },
    /// Not sent, and never will be: the offer it was about was answered
    /// or ended first.
    Cancelled {
        reason: String,
    },
}

/// Dispatch's part of the store; every [`super::Store`] implements it.
/// The transitions themselves are
/// [`crate::dispatch::lifecycle`]'s, over [`DispatchTx`].
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Opens dispatch's write transaction (SQLite: in this process's
    /// write turn).
    #[allow(private_interfaces)]
    async fn begin_dispatch(&self) -> StoreResult<Box<dyn DispatchTx + '_>>;

    /// Incidents whose dispatch turn is due, oldest first: the safety net
    /// that dispatches whatever a crash or a lost hook left waiting.
    async fn due_dispatches(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<IncidentId>>;

    /// The turns of `dispatching` incidents waiting for a later turn
    /// (nobody could be offered, or a failed turn's lease), soonest
    /// first, read as a planner sees them: a steward became free or moved,
    /// and the engine asks whom they could be offered.
    async fn waiting_turns(&self, now: DateTime<Utc>, limit: i64)
    -> StoreResult<Vec<DispatchTurn>>;

    /// Makes one `dispatching` incident's turn due at `now`; false when it
    /// is not dispatching or already due.
    async fn bring_turn_forward(
        &self,
        incident: &IncidentId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Incidents with a live offer past its `expires_at`, by id.
    async fn expiring_incidents(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<IncidentId>>;

    /// `dispatching` incidents whose `escalate_at` is due, oldest first.
    async fn escalations_due(&self, now: DateTime<Utc>, limit: i64)
    -> StoreResult<Vec<IncidentId>>;

    /// Leases a due dispatch turn that failed for anything but an
    /// unavailable store (a damaged row) for [`DISPATCH_LEASE`], in its
    /// own statement, so it does not come back every tick.
    async fn lease_failed_turn(&self, incident: &IncidentId, now: DateTime<Utc>)
    -> StoreResult<()>;

    /// A steward's live offers with their incidents, for the stream's
    /// snapshot.
    async fn live_offers_of(&self, steward: &StewardId) -> StoreResult<Vec<Offer>>;

    /// An incident's deliveries, oldest first.
    async fn deliveries(&self, incident: &IncidentId) -> StoreResult<Vec<Delivery>>;

    /// Incidents created in `[from, to)`, for reports.
    async fn incidents_created_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Incident>>;
}

#[cfg(test)]
mod tests {
    use super::StreamKind;

    #[test]
    fn a_stream_kind_reads_back_as_written_and_serialises_as_named() {
        for kind in [
            StreamKind::Snapshot,
            StreamKind::Offer,
            StreamKind::OfferWithdrawn,
            StreamKind::Incident,
            StreamKind::Steward,
        ] {
            assert_eq!(StreamKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(StreamKind::parse("offer.accepted"), None);
        assert_eq!(StreamKind::parse("Incident"), None);
    }
}
