//! Deadlines: every timer a rule sets is a row, claimed when due.

use super::*;

/// Deadlines; every [`Store`] implements it.
#[async_trait]
pub trait DeadlineStore: Send + Sync {
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
