//! Offers run out of time.
//!
//! Every live offer past its `expires_at` ends `expired`, as a decline
//! would: the steward is free again (or `off_duty`), the failures count,
//! the next dispatch is due now when none is left live, and enough
//! failures escalate ([`super::escalate::save_failures`]). Each incident
//! expires in its own transaction; one another instance is changing is
//! skipped this tick.

use chrono::{DateTime, Utc};

use crate::domain::{IncidentId, OfferResponse};
use crate::rules::RuleBook;
use crate::store::StoreResult;
use crate::store::dispatch::{Actor, DispatchStore};
use crate::store::dispatch_sql::Which;
use crate::store::dispatch_tx::Committed;
use crate::store::dispatch_tx::DispatchTx;
use crate::store::notices::WithdrawReason;

use super::escalate::save_failures;
use super::{Done, TIMER_BATCH, finish, keep_going};

/// Expires every offer past its time. Returns the incidents touched.
pub(crate) async fn expire_due<S: DispatchStore + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Done<Vec<IncidentId>>> {
    let mut touched = Vec::new();
    let mut changed = Committed::default();
    for id in store.expiring_incidents(now, TIMER_BATCH).await? {
        let mut tx = store.begin_dispatch().await?;
        let result = expire_incident(&mut *tx, &id, now, rules).await;
        let done = keep_going(finish(tx, result).await, &id)?;
        changed = changed.and(done.changed);
        touched.extend(done.value);
    }
    Ok(Done {
        value: touched,
        changed,
    })
}

/// One incident's expired offers: none when another transaction holds
/// it or nothing had expired by the time it was locked.
async fn expire_incident(
    tx: &mut dyn DispatchTx,
    id: &IncidentId,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Option<IncidentId>> {
    let Some((i, d)) = tx.lock_unless_held(id).await? else {
        return Ok(None);
    };
    let actor = Actor::System;
    let ended = tx
        .end_offers(
            &i.id,
            Which::ExpiredBy(now),
            OfferResponse::Expired,
            WithdrawReason::Expired,
            None,
            &actor,
            now,
        )
        .await?;
    if ended.is_empty() {
        return Ok(None);
    }
    let failed = i32::try_from(ended.len()).unwrap_or(i32::MAX);
    let saved = save_failures(tx, i, d, failed, &actor, now, rules).await?;
    Ok(Some(saved.id))
}
