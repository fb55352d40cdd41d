//! The store: the single source of truth. Everything in memory (heartbeat
//! table, rate limiter, later the spatial index and stream hub) is a cache
//! that can be rebuilt from here.
//!
//! One trait, [`Store`], with two implementations chosen once at start-up:
//! [`sqlite::SqliteStore`] (a file, the zero-setup default) and
//! [`postgres::PgStore`] (production, several dispatchers). Both run the
//! same SQL, written once in [`sql`] (rows read back through `rows`), and
//! their own embedded migrations (`migrations/sqlite`,
//! `migrations/postgres`).
//!
//! Every change to an incident is one transaction that writes the new
//! state, its timeline rows, and its notices (stream rows for SSE clients,
//! outbox rows for devices and webhooks, built in [`notices`]) together.
//! Dispatch's side ([`dispatch::DispatchStore`]: offers, the lifecycle,
//! escalation, the stream and the outbox) is written once in
//! [`dispatch_sql`], beside [`sql`]; reaching stewards' phones
//! ([`reach::ReachStore`]: push subscriptions, server keys) in
//! [`reach_sql`]; retention's pruning ([`retention::RetentionStore`]) in
//! [`retention_sql`].

pub mod dispatch;
pub mod dispatch_sql;
pub mod logins;
pub mod logins_sql;
pub mod notices;
pub mod outbox;
pub mod postgres;
pub mod reach;
pub mod reach_sql;
mod registry;
pub mod retention;
pub mod retention_sql;
mod rows;
pub mod secrets;
pub mod secrets_sql;
pub mod sql;
pub mod sqlite;
pub mod stream_log;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    DedupKey, Device, DeviceId, Elder, ElderId, EventId, Incident, IncidentDetail, IncidentId,
    IncidentKind, IncidentState, LatLon, Outcome, Priority, Steward, StewardId, User,
};
use crate::rules::{Effect, RuleBook};
use dispatch::DispatchStore;
use reach::ReachStore;
use retention::RetentionStore;
use secrets::SecretStore;

/// Why the store refused a change; the API answers with it as
/// `{"error": {"code"}}` where a route names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictCode {
    /// A unique key is taken (a duplicate id, a second open incident).
    Taken,
    /// The offer expired (or was withdrawn) before the answer.
    OfferExpired,
    /// Another steward accepted first (or the incident was assigned), or,
    /// for a decline, the caller did.
    AlreadyTaken,
    /// Only the assigned steward may do this.
    NotAssigned,
    /// The incident is resolved or cancelled.
    NotOpen,
    /// The steward is off duty or busy with another incident.
    StewardBusy,
    /// The steward was never offered this incident.
    NoOffer,
    /// A steward with too many phones registered.
    TooManySubscriptions,
    /// A push endpoint registered by another steward's phone.
    SubscriptionTaken,
}

impl ConflictCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taken => "conflict",
            Self::OfferExpired => "offer_expired",
            Self::AlreadyTaken => "already_taken",
            Self::NotAssigned => "not_assigned",
            Self::NotOpen => "not_open",
            Self::StewardBusy => "steward_busy",
            Self::NoOffer => "no_offer",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::SubscriptionTaken => "subscription_taken",
        }
    }
}

impl std::fmt::Display for ConflictCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can go wrong in the store, in terms a handler can map to a status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id names nothing.
    #[error("{0} not found")]
    NotFound(String),
    /// The change contradicts what is stored: a taken id, or a transition
    /// the incident's state refuses. `message` says it to a person.
    #[error("{message}")]
    Conflict { code: ConflictCode, message: String },
    /// A reference names nothing (a device bound to an unknown elder).
    #[error("{0}")]
    Invalid(String),
    /// The database is unreachable or failed; the caller may retry.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A row could not be read back (corrupt or hand-edited data).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed: the database was down or
    /// busy. A constraint or data error is the data's fault and would fail
    /// the same way forever, so retrying it would wedge whoever retries.
    pub fn is_transient(&self) -> bool {
        use sqlx::error::ErrorKind;
        match self {
            Self::Database(sqlx::Error::Database(e)) => {
                let refused_data = matches!(
                    e.kind(),
                    ErrorKind::UniqueViolation
                        | ErrorKind::ForeignKeyViolation
                        | ErrorKind::NotNullViolation
                        | ErrorKind::CheckViolation
                );
                // PostgreSQL's class 22: data exceptions (a NUL in text…).
                let bad_value = e.code().is_some_and(|c| c.starts_with("22"));
                !(refused_data || bad_value)
            }
            Self::Database(_) => true,
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which backend; settings choose it from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Opens the store the URL names and applies its migrations.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::connect(url).await?))
    } else {
        anyhow::bail!("ELDERCARE_DATABASE_URL {url:?} must start with sqlite:// or postgres://")
    }
}

/// A device event that passed validation, about to be stored.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub device_id: DeviceId,
    pub message: protocol::EventMessage,
    /// The dispatcher's clock when the message arrived: the start of every
    /// response time.
    pub received_at: DateTime<Utc>,
    /// Over the device's rate limit, kept as part of the flood's sample:
    /// stored, but the rules are not run.
    pub rate_limited: bool,
}

/// What ingest did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    /// Already stored: a redelivery or a device repeating itself.
    Duplicate,
    /// Stored; no rule applied (a bed return by day, vitals within limits).
    Recorded,
    Opened,
    Joined,
    Cancelled,
    Cleared,
    /// A timer was set (a bed exit at night).
    Scheduled,
    /// The device is not registered or not bound to an elder.
    UnknownDevice,
    /// A type this dispatcher does not know (newer firmware).
    UnknownType,
    RateLimited,
}

crate::domain::incident::text_enum!(EventAction {
    Duplicate => "duplicate",
    Recorded => "recorded",
    Opened => "opened",
    Joined => "joined",
    Cancelled => "cancelled",
    Cleared => "cleared",
    Scheduled => "scheduled",
    UnknownDevice => "unknown_device",
    UnknownType => "unknown_type",
    RateLimited => "rate_limited",
});

/// The result of one event or one effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub action: EventAction,
    /// The incident opened, joined or closed, when there was one.
    pub incident: Option<Incident>,
}

/// A batch stored ([`Store::ingest_offering`]).
#[derive(Debug, Default)]
pub struct Ingested {
    /// One result per event, in order.
    pub applied: Vec<Applied>,
    /// The incidents offered in the batch's transaction.
    pub offered: Vec<dispatch::TakenTurn>,
}

/// A stored device event, as supervisors read it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StoredEvent {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    #[schema(value_type = String)]
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub ts: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub elder_id: Option<ElderId>,
    pub action: EventAction,
    pub incident_id: Option<IncidentId>,
}

/// A device that sent well-formed events but is not in the registry (or
/// not bound to an elder): maybe a real elder nobody registered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnknownDevice {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    pub events: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub last_type: String,
}

/// The latest heartbeat of one device, flushed in batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub device_id: DeviceId,
    pub last_seen: DateTime<Utc>,
    pub online: bool,
    pub battery_pct: Option<u8>,
    pub rssi_dbm: Option<i16>,
    pub fw: Option<String>,
}

/// What the offline detector needs of each registered device.
#[derive(Debug, Clone, PartialEq)]
pub struct Liveness {
    pub device_id: DeviceId,
    pub last_seen: Option<DateTime<Utc>>,
    pub online: bool,
    pub heartbeat_s: u32,
}

/// A due-time row: a bed-exit return window, later offer expiries and
/// escalations. Claimed with a lease so a crashed instance's rows come due
/// again.
#[derive(Debug, Clone, PartialEq)]
pub struct Deadline {
    /// Unique: scheduling the same key again moves the deadline.
    pub key: String,
    pub due_at: DateTime<Utc>,
    /// The effects to apply when it comes due.
    pub effects: Vec<Effect>,
}

/// Which incidents to list.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// Any of these states; empty means all.
    pub status: Vec<IncidentState>,
    pub priority: Option<Priority>,
    pub kind: Option<IncidentKind>,
    pub elder_id: Option<ElderId>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// A steward's own incidents only: assigned to them, or ever offered.
    pub steward_id: Option<StewardId>,
    pub limit: i64,
    /// Rows skipped first (paging).
    pub offset: i64,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub device_id: Option<DeviceId>,
    /// Received at or after.
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
    /// Rows skipped first (paging).
    pub offset: i64,
}

/// Everything the dispatcher keeps. Object safe: the backend is chosen at
/// start-up and shared as `Arc<dyn Store>`, which also offers dispatch's
/// methods ([`DispatchStore`]), the stream log ([`stream_log::StreamLog`]),
/// the outbox ([`outbox::OutboxStore`]) and those that reach stewards'
/// phones ([`ReachStore`]). A worker that needs only one of these takes
/// only that one (the hub a `StreamLog`, the outbox worker an
/// `OutboxStore`), and a test fake implements only that.
#[async_trait]
pub trait Store:
    DispatchStore
    + outbox::OutboxStore
    + stream_log::StreamLog
    + ReachStore
    + logins::LoginStore
    + RetentionStore
    + SecretStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // --- elders ---
    async fn insert_elder(&self, elder: &Elder) -> StoreResult<()>;
    async fn elder(&self, id: &ElderId) -> StoreResult<Option<Elder>>;
    async fn elders(&self) -> StoreResult<Vec<Elder>>;
    /// Replaces every field; `NotFound` when the id is unknown.
    async fn update_elder(&self, elder: &Elder) -> StoreResult<()>;
    /// Unbinds the elder's devices (they keep reporting as unknown).
    async fn delete_elder(&self, id: &ElderId) -> StoreResult<()>;

    // --- devices ---
    /// `Invalid` when `elder_id` names no elder; `Conflict` on a taken id.
    async fn insert_device(&self, device: &Device) -> StoreResult<()>;
    async fn device(&self, id: &DeviceId) -> StoreResult<Option<Device>>;
    async fn devices(&self) -> StoreResult<Vec<Device>>;
    /// Replaces the registry fields (`elder_id`, `kind`, `heartbeat_s`);
    /// health fields are the heartbeats' to write.
    async fn update_device(&self, device: &Device) -> StoreResult<()>;
    async fn delete_device(&self, id: &DeviceId) -> StoreResult<()>;
    /// Bulk registration (`dispatcher import` of a large site): inserts or
    /// replaces elders in multi-row statements, a few hundred per
    /// statement, because one statement per row caps sqlx's SQLite at
    /// about 14,000 rows a second (PERFORMANCE.md). Returns rows written.
    async fn upsert_elders(&self, elders: &[Elder]) -> StoreResult<usize>;
    /// The same for devices: registry fields are inserted or replaced,
    /// health fields of an existing device are left to its heartbeats.
    /// `Invalid` when a device names an elder that does not exist.
    async fn upsert_devices(&self, devices: &[Device]) -> StoreResult<usize>;
    /// Writes a batch of heartbeats in as few statements as the backend
    /// allows, each committed on its own so other writers get turns in
    /// between; a failure part way is harmless to retry (last-seen never
    /// moves backwards). Unknown devices are skipped.
    async fn flush_heartbeats(&self, beats: &[Heartbeat]) -> StoreResult<()>;
    /// Every registered device's last known health, for the offline
    /// detector at start-up.
    async fn liveness(&self) -> StoreResult<Vec<Liveness>>;
    /// Reads devices and their elders into ingest's copy of the registry
    /// (as many as it keeps), so the first batches after a start, often a
    /// backlog the broker kept for us, need not read them one batch at a
    /// time. Returns how many devices it read; 0 if the registry changed
    /// while reading (the copy then fills as batches need it).
    async fn warm_registry(&self) -> StoreResult<usize>;

    // --- stewards ---
    async fn insert_steward(&self, steward: &Steward) -> StoreResult<()>;
    async fn steward(&self, id: &StewardId) -> StoreResult<Option<Steward>>;
    async fn stewards(&self) -> StoreResult<Vec<Steward>>;
    /// Replaces name, phone, grid, skills and languages; status, duty and
    /// location have their own calls.
    async fn update_steward(&self, steward: &Steward) -> StoreResult<()>;
    async fn set_steward_location(
        &self,
        id: &StewardId,
        at: LatLon,
        accuracy_m: Option<f64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Steward>;
    /// On duty makes an off-duty steward `available`; off duty makes an
    /// `available` one `off_duty`. A busy or offered steward keeps the
    /// status (dispatch withdraws offers itself).
    async fn set_steward_duty(
        &self,
        id: &StewardId,
        on_duty: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Steward>;

    // --- logins ---
    /// `Conflict` on a taken username, `Invalid` when `steward_id` names
    /// no steward.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, username: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Also ends the user's sessions.
    async fn delete_user(&self, username: &str) -> StoreResult<()>;
    /// Stores a session; only the token's hash is kept.
    async fn insert_session(
        &self,
        token_hash: &str,
        username: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Ends one session (logout); ending one that is gone is not an error.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// The user a live session belongs to.
    async fn session_user(&self, token_hash: &str, now: DateTime<Utc>)
    -> StoreResult<Option<User>>;

    // --- ingest ---
    /// Stores a batch of events in one transaction, idempotent on
    /// `(device_id, event_id)`, and runs the rules on each new one inside
    /// the same transaction: when it returns Ok, every event and every
    /// incident change it caused is committed, and only then may the
    /// messages be acknowledged. One result per event, in order.
    async fn ingest(&self, batch: &[IncomingEvent], rules: &RuleBook) -> StoreResult<Vec<Applied>> {
        Ok(self.ingest_offering(batch, rules, None).await?.applied)
    }
    /// [`Self::ingest`], and in the same transaction the first offers of
    /// each incident the batch opens that is due for dispatch (a press
    /// then waits for one commit, not two, and for no other writer in
    /// between). An incident nobody could be offered stays due, untouched,
    /// for the engine.
    async fn ingest_offering(
        &self,
        batch: &[IncomingEvent],
        rules: &RuleBook,
        first_offers: Option<&dispatch::FirstOffers<'_>>,
    ) -> StoreResult<Ingested>;
    /// Applies effects raised outside ingest (a device going offline or
    /// coming back, a deadline coming due) in one transaction. `rules`
    /// decide whether an opened incident is dispatched and who is told.
    async fn apply(
        &self,
        effects: &[Effect],
        actor: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Vec<Applied>>;
    async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<StoredEvent>>;
    /// Unknown devices, the most recently heard first: `limit` of them
    /// after skipping `offset`.
    async fn unknown_devices(&self, limit: i64, offset: i64) -> StoreResult<Vec<UnknownDevice>>;

    // --- incidents ---
    async fn incidents(&self, filter: &IncidentFilter) -> StoreResult<Vec<Incident>>;
    /// One incident with its offers, timeline, the matcher's reasoning and
    /// its deliveries. (A supervisor's cancel is
    /// [`DispatchStore::cancel`].)
    async fn incident(&self, id: &IncidentId) -> StoreResult<Option<IncidentDetail>>;
    /// Whether the steward holds a live offer (unanswered, not expired at
    /// `now`) of an open incident of this elder, or is assigned an open
    /// one: the only way a steward may read an elder's health data.
    /// Declined, expired, withdrawn, closed: no longer.
    async fn steward_sees_elder(
        &self,
        steward: &StewardId,
        elder: &ElderId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// The open incident holding a dedup key, if any.
    async fn open_incident(&self, key: &DedupKey) -> StoreResult<Option<Incident>>;

    // --- deadlines ---
    /// Claims up to `limit` due deadlines for `lease`; a claimed row that
    /// is not finished comes due again when the lease ends.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<Deadline>>;
    /// Applies a claimed deadline's effects and deletes it, in one
    /// transaction. The effects applied are the stored row's. Returns no
    /// results, and changes nothing, when the deadline was unscheduled,
    /// moved or already fired since it was claimed.
    async fn fire_deadline(
        &self,
        deadline: &Deadline,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Vec<Applied>>;
    async fn deadlines(&self) -> StoreResult<Vec<Deadline>>;
}

/// The closing note on an incident a rule resolved by itself.
pub const CLEARED_OUTCOME: Outcome = Outcome::Cleared;
