//! Deadlines: every timer a rule sets is a row, claimed when due (and
//! fired by [`crate::dispatch::Lifecycle::fire_deadline`]).

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
    async fn deadlines(&self) -> StoreResult<Vec<Deadline>>;
}
