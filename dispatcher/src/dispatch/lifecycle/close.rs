//! An open incident closes: resolved (with an outcome and notes) or
//! cancelled (with a reason).
//!
//! A steward may resolve only the incident they are assigned; a
//! supervisor may resolve or cancel any open one. Closing withdraws the
//! live offers (reason `resolved` or `cancelled`), frees the assigned
//! steward, stops the clocks, and tells the device and the webhooks
//! ([`DispatchTx::close`], which the elder's own cancel and a rule's
//! clear, in ingest, go through too).

use chrono::{DateTime, Utc};

use crate::domain::lifecycle;
use crate::domain::{Incident, IncidentId, Outcome};
use crate::rules::RuleBook;
use crate::store::StoreResult;
use crate::store::dispatch::Actor;
use crate::store::dispatch_sql::{Closing, not_open};
use crate::store::dispatch_tx::DispatchTx;

use super::must_lock;

pub(crate) async fn resolve(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    actor: &Actor,
    outcome: Outcome,
    notes: &str,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let (i, d) = must_lock(tx, incident).await?;
    let steward = match actor {
        Actor::Steward(s) => Some(s),
        _ => None,
    };
    lifecycle::resolvable(&i, steward)?;
    let how = Closing::Resolved { outcome, notes };
    tx.close(i, d, how, actor, now, rules).await
}

pub(crate) async fn cancel(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    actor: &Actor,
    reason: &str,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let (i, d) = must_lock(tx, incident).await?;
    if !i.status.is_open() {
        return Err(not_open(&i));
    }
    let how = Closing::Cancelled { reason };
    tx.close(i, d, how, actor, now, rules).await
}
