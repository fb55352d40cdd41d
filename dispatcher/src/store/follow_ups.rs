//! The store's side of follow-ups ([`crate::domain::follow_up`]): the
//! lists, and the three changes after one is made (completed, handed
//! back, reassigned), each one transaction that says by compare-and-set
//! whether it found the follow-up as the caller thought. Written once for
//! both backends in [`super::follow_ups_sql`]. The first follow-up of an
//! incident is written by the resolve itself, in dispatch's transaction
//! ([`super::dispatch_tx::DispatchTx::open_follow_up`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StoreError, StoreResult};
use crate::domain::{
    ElderId, FollowUp, FollowUpDetail, FollowUpId, FollowUpKind, FollowUpOutcome, FollowUpStatus,
    IncidentId, Reassignment, StewardId,
};

/// Which follow-ups to list; every part optional.
#[derive(Debug, Clone, Default)]
pub struct FollowUpFilter {
    pub status: Option<FollowUpStatus>,
    /// Open and due before this time (overdue at it).
    pub due_before: Option<DateTime<Utc>>,
    pub steward_id: Option<StewardId>,
    /// Only those with nobody assigned.
    pub unassigned: bool,
    pub elder_id: Option<ElderId>,
    /// Only follow-ups of elders in these grids (a scoped supervisor's);
    /// `None`: all.
    pub grids: Option<Vec<String>>,
    pub limit: i64,
    pub offset: i64,
}

/// A follow-up completed.
#[derive(Debug, Clone)]
pub struct Completion<'a> {
    pub outcome: FollowUpOutcome,
    pub note: &'a str,
    /// Who: `steward:{id}` or `user:{name}`.
    pub by: &'a str,
    /// A steward completes only their own: the compare-and-set checks it.
    pub as_steward: Option<&'a StewardId>,
    /// The follow-up the outcome asks for next, and when it is due.
    pub next: Option<(FollowUpKind, DateTime<Utc>)>,
    pub now: DateTime<Utc>,
}

/// What a completion wrote: the follow-up done, and the next one if its
/// outcome asked for one.
#[derive(Debug, Clone)]
pub struct Completed {
    pub done: FollowUp,
    pub next: Option<FollowUp>,
}

/// Follow-ups; every [`super::Store`] implements it.
#[async_trait]
pub trait FollowUpStore: Send + Sync {
    /// One follow-up with who it passed through.
    async fn follow_up(&self, id: &FollowUpId) -> StoreResult<Option<FollowUpDetail>>;

    /// Follow-ups by the filter, soonest due first.
    async fn follow_ups(&self, filter: &FollowUpFilter) -> StoreResult<Vec<FollowUp>>;

    /// Every follow-up of an elder, newest first (the elder's notebook).
    async fn follow_ups_of_elder(&self, elder: &ElderId) -> StoreResult<Vec<FollowUp>>;

    /// The follow-ups after an incident, oldest first.
    async fn follow_ups_of_incident(&self, incident: &IncidentId) -> StoreResult<Vec<FollowUp>>;

    /// Marks an open follow-up done (compare-and-set on `open`, and on the
    /// steward for a steward) and writes the next one, if asked, with the
    /// same steward. `NotFound`; `Conflict(not_open)` when already done;
    /// `Conflict(not_assigned)` when a steward's is no longer theirs.
    async fn complete_follow_up(
        &self,
        id: &FollowUpId,
        completion: &Completion<'_>,
    ) -> StoreResult<Completed>;

    /// The assigned steward cannot go: it needs someone (compare-and-set
    /// on `open` and on them). Same errors as completing.
    async fn hand_back_follow_up(
        &self,
        id: &FollowUpId,
        steward: &StewardId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<FollowUp>;

    /// A supervisor sends `to` (compare-and-set on `open`). `Invalid` for
    /// an unknown steward; to the steward already assigned it changes
    /// nothing.
    async fn reassign_follow_up(
        &self,
        id: &FollowUpId,
        to: &StewardId,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<FollowUp>;
}

/// A `follow_ups` row.
#[derive(sqlx::FromRow)]
pub(crate) struct FollowUpRow {
    id: String,
    incident_id: Option<String>,
    visit_id: Option<String>,
    follows_id: Option<String>,
    elder_id: String,
    steward_id: Option<String>,
    kind: String,
    created_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    status: String,
    outcome: Option<String>,
    note: String,
    done_at: Option<DateTime<Utc>>,
    done_by: Option<String>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("follow_ups.{what}: {e}"))
}

impl FollowUpRow {
    /// The follow-up, `overdue` unset (the API sets it by its clock).
    pub(crate) fn into_domain(self) -> StoreResult<FollowUp> {
        if self.incident_id.is_some() == self.visit_id.is_some() {
            return Err(corrupt(
                "incident_id",
                format!("follow-up {} must follow an incident or a visit", self.id),
            ));
        }
        Ok(FollowUp {
            id: FollowUpId::parse(self.id).map_err(|e| corrupt("id", e))?,
            incident_id: self
                .incident_id
                .map(IncidentId::parse)
                .transpose()
                .map_err(|e| corrupt("incident_id", e))?,
            visit_id: self.visit_id,
            follows_id: self
                .follows_id
                .map(FollowUpId::parse)
                .transpose()
                .map_err(|e| corrupt("follows_id", e))?,
            elder_id: ElderId::parse(self.elder_id).map_err(|e| corrupt("elder_id", e))?,
            steward_id: self
                .steward_id
                .map(StewardId::parse)
                .transpose()
                .map_err(|e| corrupt("steward_id", e))?,
            kind: self.kind.parse().map_err(|e| corrupt("kind", e))?,
            created_at: self.created_at,
            due_at: self.due_at,
            status: self.status.parse().map_err(|e| corrupt("status", e))?,
            outcome: self
                .outcome
                .map(|o| o.parse())
                .transpose()
                .map_err(|e| corrupt("outcome", e))?,
            note: self.note,
            done_at: self.done_at,
            done_by: self.done_by,
            overdue: false,
        })
    }
}

/// A `follow_up_reassignments` row.
#[derive(sqlx::FromRow)]
pub(crate) struct ReassignmentRow {
    at: DateTime<Utc>,
    by_actor: String,
    from_steward: Option<String>,
    to_steward: Option<String>,
    reason: String,
}

impl ReassignmentRow {
    pub(crate) fn into_domain(self) -> StoreResult<Reassignment> {
        let steward = |s: Option<String>| {
            s.map(StewardId::parse)
                .transpose()
                .map_err(|e| corrupt("reassignment steward", e))
        };
        Ok(Reassignment {
            at: self.at,
            by: self.by_actor,
            from_steward: steward(self.from_steward)?,
            to_steward: steward(self.to_steward)?,
            reason: self.reason,
        })
    }
}

/// The timeline's words for a follow-up due: "follow-up call due by
/// 2026-12-06T10:00:00Z".
pub(crate) fn due_words(kind: FollowUpKind, due_at: DateTime<Utc>) -> String {
    format!(
        "follow-up {kind} due by {}",
        crate::domain::lifecycle::when(due_at)
    )
}

/// The timeline's words for a follow-up done: "follow-up call done: well
/// — eating again".
pub(crate) fn done_words(f: &FollowUp) -> String {
    let outcome = f.outcome.map_or("", FollowUpOutcome::as_str);
    if f.note.trim().is_empty() {
        format!("follow-up {} done: {outcome}", f.kind)
    } else {
        format!("follow-up {} done: {outcome} — {}", f.kind, f.note)
    }
}

/// The one INSERT of a follow-up, for its three writers (the resolve's
/// transaction, a visit's end and a completion's): nothing when the
/// incident or visit already has its first, or the completed one its
/// next.
pub(crate) const INSERT_FOLLOW_UP: &str = "INSERT INTO follow_ups
         (id, incident_id, visit_id, follows_id, elder_id, steward_id, kind, created_at, due_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT DO NOTHING
     RETURNING *";
