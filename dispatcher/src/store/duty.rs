//! The store's side of device duty (issue 16): since when each device is
//! on duty, its test calls, and the outcomes of resolved incidents the
//! false-alarm figures are made of. Reads only, but for the enrolment a
//! registration writes; the tests themselves are written by ingest's
//! transaction (`DispatchTx::record_test_call`, `confirm_test`). What a
//! row means (due, missed, a flag) is [`crate::duty`]'s to say. Written
//! once for both backends in [`super::duty_sql`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{DeviceId, DeviceKind, ElderId, EventId, IncidentKind, Outcome};

/// One test call, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTest {
    pub event_id: EventId,
    pub received_at: DateTime<Utc>,
    /// A confirmation after this was late.
    pub confirm_by: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Confirmed by `confirm_by`.
    pub passed: bool,
}

/// One registered device and what its duty is judged from.
#[derive(Debug, Clone, PartialEq)]
pub struct DutyRow {
    pub device_id: DeviceId,
    pub elder_id: Option<ElderId>,
    pub kind: DeviceKind,
    /// When it went on duty (registered); None for a device no
    /// registration path enrolled.
    pub enrolled_at: Option<DateTime<Utc>>,
    /// Its first stored event, if any.
    pub first_heard_at: Option<DateTime<Utc>>,
    /// Its latest passed test call.
    pub last_passed_at: Option<DateTime<Utc>>,
    /// Its latest test call, whatever came of it.
    pub last_test: Option<StoredTest>,
}

/// How many resolved incidents of one elder, device and kind ended with
/// one outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeCount {
    pub elder_id: Option<ElderId>,
    pub device_id: Option<DeviceId>,
    pub kind: IncidentKind,
    pub outcome: Outcome,
    pub count: i64,
}

/// Device duty's rows; every [`super::Store`] implements it.
#[async_trait]
pub trait DutyStore: Send + Sync {
    /// Every registered device not yet on duty goes on duty at `now`
    /// (it was just registered): how many. A device enrolled before keeps
    /// its date; one deleted and registered again loses the tests of its
    /// previous registration. One statement however large the import.
    async fn enrol_new_devices(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Every registered device with its duty, by id.
    async fn duty_roster(&self) -> StoreResult<Vec<DutyRow>>;

    /// A device's test calls, newest first, at most `limit`.
    async fn device_tests(&self, device: &DeviceId, limit: i64) -> StoreResult<Vec<StoredTest>>;

    /// Resolved incidents created at or after `since`, not technical, by
    /// elder, device, kind and outcome (the system's own `cleared` left
    /// out).
    async fn outcome_counts(&self, since: DateTime<Utc>) -> StoreResult<Vec<OutcomeCount>>;
}
