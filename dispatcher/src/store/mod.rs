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
//! Dispatch's side ([`dispatch::DispatchStore`] and the transaction its
//! transitions run in, [`dispatch_tx::DispatchTx`]; the transitions
//! themselves are [`crate::dispatch::lifecycle`]'s) is written once in
//! [`dispatch_sql`], beside [`sql`]; reaching stewards' phones
//! ([`reach::ReachStore`]: push subscriptions, server keys) in
//! [`reach_sql`]; retention's pruning ([`retention::RetentionStore`]) in
//! [`retention_sql`]; follow-ups after incidents
//! ([`follow_ups::FollowUpStore`]) in [`follow_ups_sql`].

pub mod areas;
pub mod areas_sql;
pub mod care;
pub mod care_sql;
pub mod changes;
pub mod deadlines;
pub mod dispatch;
pub mod dispatch_sql;
pub mod dispatch_tx;
pub mod duty;
pub mod duty_sql;
pub mod follow_ups;
pub mod follow_ups_sql;
pub mod incidents;
pub mod ingest;
pub mod logins;
pub mod logins_sql;
pub mod monthly;
pub mod monthly_sql;
pub mod notices;
pub mod outbox;
pub mod postgres;
pub mod reach;
pub mod reach_sql;
pub mod registry;
mod registry_cache;
pub mod retention;
pub mod retention_sql;
mod rows;
pub mod secrets;
pub mod secrets_sql;
pub mod sessions;
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
use crate::rules::Effect;
use dispatch::DispatchStore;
use follow_ups::FollowUpStore;
use reach::ReachStore;
use retention::RetentionStore;
use secrets::SecretStore;

pub use crate::domain::lifecycle::ConflictCode;

impl From<crate::domain::lifecycle::Refusal> for StoreError {
    fn from(r: crate::domain::lifecycle::Refusal) -> Self {
        let message = r.to_string();
        Self::Conflict {
            code: r.code,
            message,
        }
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

/// Opens the store the URL names and applies its migrations, for a tool
/// (import, a test): its claims name no running instance.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    connect_as(url, "eldercare-tool").await
}

/// Opens the store for the running instance `instance` (its heartbeat
/// id, [`crate::fence::instance_id`]): the claims it makes are its own,
/// and are taken over if its heartbeat goes silent.
pub async fn connect_as(url: &str, instance: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::connect(url, instance).await?))
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

/// A batch stored ([`crate::ingest::IngestBatch::ingest_offering`]).
#[derive(Debug, Default)]
pub struct Ingested {
    /// One result per event, in order.
    pub applied: Vec<Applied>,
    /// The incidents offered in the batch's transaction.
    pub offered: Vec<crate::domain::TakenTurn>,
    /// What its commit changed besides (stewards an elder's cancel or a
    /// clear freed, incidents due now), for what follows it.
    pub changed: dispatch_tx::Committed,
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
    /// Until when the claim that returned it holds, as stored (None when
    /// unclaimed): firing checks it, so an instance that comes back from
    /// a pause past its lease fires nothing another instance now holds.
    pub claimed_until: Option<DateTime<Utc>>,
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
    /// Only incidents of elders in these grids (a scoped supervisor's);
    /// `None`: every incident.
    pub grids: Option<Vec<String>>,
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
    /// Only events of devices bound to elders in these grids (a scoped
    /// supervisor's); `None`: every event.
    pub grids: Option<Vec<String>>,
    pub limit: i64,
    /// Rows skipped first (paging).
    pub offset: i64,
}

/// What the dispatch engine reads and writes: dispatch's transactions,
/// the stewards it ranks, the incidents whose stewards it re-reads.
pub trait EngineStore: DispatchStore + registry::RegistryStore + incidents::IncidentStore {}
impl<T: DispatchStore + registry::RegistryStore + incidents::IncidentStore + ?Sized> EngineStore
    for T
{
}

/// What the timer loops need: deadlines, dispatch's transactions (a
/// deadline fires through them), the devices' liveness and heartbeats.
pub trait TimerStore: deadlines::DeadlineStore + DispatchStore + registry::RegistryStore {}
impl<T: deadlines::DeadlineStore + DispatchStore + registry::RegistryStore + ?Sized> TimerStore
    for T
{
}

/// What ingest needs: its batches, the devices, dispatch's transactions
/// (a device's health is applied through them).
pub trait IngestWorkerStore: ingest::IngestStore + DispatchStore + registry::RegistryStore {}
impl<T: ingest::IngestStore + DispatchStore + registry::RegistryStore + ?Sized> IngestWorkerStore
    for T
{
}

/// Everything the dispatcher keeps. Object safe: the backend is chosen at
/// start-up and shared as `Arc<dyn Store>`, which also offers dispatch's
/// methods ([`DispatchStore`]), the stream log ([`stream_log::StreamLog`]),
/// the outbox ([`outbox::OutboxStore`]) and those that reach stewards'
/// phones ([`ReachStore`]). A worker takes only what it needs: the hub a
/// `StreamLog`, the outbox worker an `OutboxStore`, retention a
/// `RetentionStore`, the engine an [`EngineStore`], the timers a
/// [`TimerStore`], ingest an [`IngestWorkerStore`]; a test fake implements
/// only that.
#[async_trait]
pub trait Store:
    registry::RegistryStore
    + sessions::SessionStore
    + ingest::IngestStore
    + incidents::IncidentStore
    + deadlines::DeadlineStore
    + DispatchStore
    + outbox::OutboxStore
    + stream_log::StreamLog
    + ReachStore
    + logins::LoginStore
    + RetentionStore
    + SecretStore
    + care::CareStore
    + areas::AreaStore
    + FollowUpStore
    + duty::DutyStore
    + monthly::MonthlyStore
    + EngineStore
    + TimerStore
    + IngestWorkerStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// This instance is alive (and on the broker or not): records it and
    /// says what the database knows of the other instances
    /// ([`crate::fence`]). A round trip, so it is also the ping.
    async fn heartbeat(&self, me: &InstanceBeat) -> StoreResult<Peers>;

    /// What every instance on this database changes, as it commits; `None`
    /// where one instance is all there is (SQLite).
    fn changes(&self) -> Option<Box<dyn changes::ChangeFeed>>;
}

/// What an instance says of itself every [`crate::fence::BEAT_EVERY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceBeat {
    /// Its heartbeat id: its MQTT client id and an incarnation
    /// ([`crate::fence::instance_id`]).
    pub instance: String,
    pub broker_connected: bool,
    /// The release it runs (`CARGO_PKG_VERSION`), for a rolling upgrade.
    pub version: String,
}

/// The other instances the database saw within [`PEER_SEEN_WITHIN_S`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peers {
    pub alive: u32,
    /// Of those, how many hold a broker connection.
    pub on_broker: u32,
}

/// How recent a heartbeat keeps an instance counted as alive.
pub const PEER_SEEN_WITHIN_S: i64 = 3;

/// A claim whose holder's heartbeat is older than this is taken over
/// (`orphaned` in the SQL of `postgres.rs`, which spells it out).
pub const ORPHANED_AFTER_S: i64 = 3;

/// The closing note on an incident a rule resolved by itself.
pub const CLEARED_OUTCOME: Outcome = Outcome::Cleared;
