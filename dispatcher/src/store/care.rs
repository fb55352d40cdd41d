//! The store's side of the stewards' daily work ([`crate::care`]): visits
//! and what they changed in an elder's record, and what the planner
//! reads to plan visits and watch check-ins. Written once for both
//! backends in [`super::care_sql`]. The transitions that raise or clear
//! incidents (a visit begun, one gone overdue) are dispatch's
//! ([`super::dispatch_tx::DispatchTx`]), so they commit with the incident.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::StoreResult;
use crate::domain::care::{CarePlan, ListChange, Visit, VisitNote};
use crate::domain::{ElderId, StewardId};

/// An elder on daily check-in and the deadline watching them, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckinWatch {
    pub elder_id: ElderId,
    pub plan: CarePlan,
    pub due_at: Option<DateTime<Utc>>,
}

/// An elder with no pending visit, and what their next one depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct ToPlan {
    pub elder_id: ElderId,
    pub plan: CarePlan,
    pub lives_alone: bool,
    /// An incident in the recent window (visited more often).
    pub recent_incident: bool,
    /// When their last visit ended.
    pub last_done_at: Option<DateTime<Utc>>,
    /// Who the visit is for: the steward paired with them (while a
    /// steward), else their grid's (the first by id), if any.
    pub steward_id: Option<StewardId>,
}

/// A change to an elder's conditions or medicines, with who and when.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ElderChange {
    #[schema(value_type = String)]
    pub elder_id: ElderId,
    pub at: DateTime<Utc>,
    /// Who made it (a username).
    pub actor: String,
    /// `conditions` or `medications`.
    pub field: String,
    #[serde(flatten)]
    pub change: ListChange,
    /// The visit whose note made it.
    pub visit_id: Option<String>,
}

/// Visits due, begun, done and overdue in one grid on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct GridVisits {
    pub grid: String,
    /// Planned for the day (every status).
    pub due: i64,
    pub in_progress: i64,
    pub done: i64,
    /// Still planned past their window (the day's and earlier days').
    pub overdue: i64,
}

/// What a visit's note changed, written with it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub visit: Visit,
    pub changes: Vec<ElderChange>,
    /// The follow-up the note asked for.
    pub follow_up: Option<crate::domain::FollowUp>,
}

/// Visits and elder changes; every [`super::Store`] implements it.
#[async_trait]
pub trait CareStore: Send + Sync {
    /// Elders whose plan has a check-in, with their deadline.
    async fn checkin_watches(&self) -> StoreResult<Vec<CheckinWatch>>;

    /// Check-in deadlines of elders no longer on check-in (or gone).
    async fn orphan_checkin_deadlines(&self) -> StoreResult<Vec<String>>;

    /// Brings the database's statistics of `visits` up to date (after a
    /// pass wrote many; PostgreSQL only).
    async fn refresh_visit_statistics(&self) -> StoreResult<()>;

    /// The elders without a pending visit whose plan visits them, by id:
    /// one anti-join, so a pass with nothing to plan reads the elders once.
    async fn elders_needing_plan(&self) -> StoreResult<Vec<ElderId>>;

    /// What the next visit of each of these elders depends on (at most a
    /// few hundred; one who got a visit meanwhile is left out);
    /// `recent_since` dates "a recent incident".
    async fn elders_to_plan(
        &self,
        recent_since: DateTime<Utc>,
        ids: &[ElderId],
    ) -> StoreResult<Vec<ToPlan>>;

    /// The elders of these ids that exist, in one read per few hundred.
    async fn elders_by_id(&self, ids: &[ElderId]) -> StoreResult<Vec<crate::domain::Elder>>;

    /// Writes planned visits; an elder who got one meanwhile (another
    /// instance) is skipped. The number written.
    async fn insert_visits(&self, visits: &[Visit]) -> StoreResult<usize>;

    /// Planned visits whose window ended before `now`, not yet marked.
    async fn overdue_visits(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Visit>>;

    async fn visit(&self, id: &str) -> StoreResult<Option<Visit>>;

    /// An elder's visits, newest due first.
    async fn visits_of_elder(&self, elder: &ElderId, limit: i64) -> StoreResult<Vec<Visit>>;

    /// A steward's round: their pending visits due on or before `day`,
    /// and their grid's that have no steward.
    async fn round(
        &self,
        steward: &StewardId,
        grid: &str,
        day: NaiveDate,
    ) -> StoreResult<Vec<Visit>>;

    /// Per grid: the visits due on `day`, and all still overdue at `now`.
    async fn visits_by_grid(
        &self,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<GridVisits>>;

    /// Ends a visit in progress with its note (compare-and-set: `Conflict`
    /// when it is not in progress), and applies the note's changes to the
    /// elder's conditions and medicines with a change row each, and
    /// writes the follow-up the note asked for, in one transaction.
    async fn finish_visit(
        &self,
        id: &str,
        note: &VisitNote,
        follow_up: Option<&crate::domain::NewFollowUp>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Finished>;

    /// Forgets the elder's pending visit if it is only planned (not begun,
    /// not overdue), so the planner plans it again by the elder's plan as
    /// it is now. True when there was one.
    async fn drop_planned_visit(&self, elder: &ElderId) -> StoreResult<bool>;

    /// The devices in an elder's home.
    async fn devices_of_elder(&self, elder: &ElderId) -> StoreResult<Vec<crate::domain::Device>>;

    /// Changes to an elder's record, newest first.
    async fn elder_changes(&self, elder: &ElderId, limit: i64) -> StoreResult<Vec<ElderChange>>;
}
