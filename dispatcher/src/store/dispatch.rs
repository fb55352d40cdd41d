//! The store's side of dispatch: offers, claims, the incident lifecycle,
//! escalation, the stream log and the outbox.
//!
//! Every method is one transaction that writes the change, its timeline
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
use crate::domain::{
    ContactChannel, Delivery, Incident, IncidentId, Offer, Outcome, Planner, StewardId, TakenTurn,
};
use crate::rules::RuleBook;

/// How long a dispatch turn taken with nothing to offer (an incident
/// without an elder) waits before it comes due again. A caller that dies
/// mid-turn leaves nothing behind: the turn is one transaction.
pub const DISPATCH_LEASE: Duration = Duration::seconds(15);

/// Who did something, as the timeline names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Steward(StewardId),
    /// A login (supervisor or admin), by username.
    User(String),
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Steward(id) => write!(f, "steward:{id}"),
            Self::User(name) => write!(f, "user:{name}"),
            Self::System => f.write_str("system"),
        }
    }
}

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
    /// `offer`, `offer.withdrawn`, `incident`, `steward`.
    pub event: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
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
#[async_trait]
pub trait DispatchStore: Send + Sync {
    /// Takes the dispatch turn of a `dispatching` incident whose
    /// `next_dispatch_at` is due and offers it, in one transaction, so
    /// concurrent callers (two instances, the ingest hook and the timer)
    /// never both offer, and a press waits for the write lock once, not
    /// twice. `plan` sees the turn (the incident, its elder, who was
    /// offered) and says whom to try; the store then claims them in order
    /// until `want` stewards were claimed (`available` → `offered` by
    /// compare-and-set; a steward lost to another incident is skipped and
    /// noted), records the plan's `notes` with the losers marked, and
    /// clears the turn, or sets `next_dispatch_at = retry_at` when nobody
    /// could be offered. A plan of `None` (nothing to offer, such as an
    /// incident without an elder) leaves the turn leased for
    /// [`DISPATCH_LEASE`], and so does a turn that fails for anything but
    /// an unavailable store (a damaged row): nothing else of it is kept.
    /// `None` when the turn is not due, the incident is not dispatching,
    /// or another caller holds the turn.
    async fn take_turn(
        &self,
        incident: &IncidentId,
        now: DateTime<Utc>,
        plan: &Planner<'_>,
    ) -> StoreResult<Option<TakenTurn>>;

    /// Incidents whose dispatch turn is due, oldest first: the safety net
    /// that dispatches whatever a crash or a lost hook left waiting.
    async fn due_dispatches(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<IncidentId>>;

    /// The steward accepts their live offer: the incident becomes
    /// `acknowledged` with them assigned (compare-and-set on the incident
    /// still `dispatching`), they become `busy`, every other live offer is
    /// withdrawn and those stewards are `available` again (or `off_duty`).
    /// `Conflict("offer_expired")` when their offer expired (even if the
    /// timer has not yet said so), was declined or withdrawn,
    /// `Conflict("already_taken")` when another steward accepted first (or
    /// a supervisor assigned someone), `Conflict("not_open")` when the
    /// incident is closed, `Conflict("no_offer")` when they never had an
    /// offer, `NotFound` for an unknown incident or steward. Accepting
    /// again what one already accepted returns the incident unchanged.
    async fn accept(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// The steward declines their live offer: they are `available` again,
    /// `failed_offers` counts up, and when no offer is left live the next
    /// dispatch is due now. Reaching a multiple of
    /// `escalate_after_failed` escalates. Same errors as `accept`.
    async fn decline(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// Expires every live offer past `expires_at`, as a decline would
    /// (steward `available` if on duty, else `off_duty`). Returns the
    /// incidents touched.
    async fn expire_offers(
        &self,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Vec<IncidentId>>;

    /// Escalates `dispatching` incidents whose `escalate_at` is due: level
    /// up, `escalate_at` moves by `escalate_after_s` (so a long wait keeps
    /// escalating), next dispatch due now (the radius grows with the
    /// level). Returns the incidents escalated.
    async fn escalate_due(
        &self,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Vec<IncidentId>>;

    /// Escalates one incident now, for `reason` ("nobody available").
    async fn escalate(
        &self,
        incident: &IncidentId,
        reason: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// The assigned steward is with the elder: `on_site`.
    /// `Conflict("not_assigned")` for anyone else, `Conflict("not_open")`
    /// on a closed incident.
    async fn arrive(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// Resolves an open incident with an outcome and notes; the assigned
    /// steward is `available` again (or `off_duty` if they went off duty),
    /// live offers are withdrawn. `Conflict("not_open")` when closed;
    /// `Conflict("not_assigned")` when a steward other than the assigned
    /// one tries.
    #[allow(clippy::too_many_arguments)]
    async fn resolve(
        &self,
        incident: &IncidentId,
        actor: &Actor,
        outcome: Outcome,
        notes: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// A supervisor cancels an open incident: as resolve, status
    /// `cancelled`, notes = reason. `Conflict("not_open")` when it is
    /// already closed. The elder's own cancel (ingest) runs the same code.
    async fn cancel(
        &self,
        incident: &IncidentId,
        actor: &Actor,
        reason: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// A supervisor assigns a steward by hand: live offers are withdrawn,
    /// the incident is `acknowledged` with that steward, who becomes
    /// `busy`. The steward must be on duty and not busy with another
    /// incident (`Conflict("steward_busy")`); an offer they hold for
    /// another incident is withdrawn. Assigning an acknowledged or on-site
    /// incident to someone else reassigns it (the previous steward is
    /// released and told `offer.withdrawn`, reason `reassigned`);
    /// assigning it to its steward again changes nothing.
    async fn assign(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        actor: &Actor,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// A steward went off duty: their live offers are withdrawn (each
    /// incident's next dispatch due now). Returns those incidents.
    async fn withdraw_offers_of(
        &self,
        steward: &StewardId,
        reason: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Vec<IncidentId>>;

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
