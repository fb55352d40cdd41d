//! A steward declines their offer.
//!
//! Their offer ends `declined` and they are free again (or `off_duty`).
//! The decline counts as a failed offer: when no offer of the incident is
//! left live its next dispatch is due now (the engine offers the next
//! steward at once), and every `escalate_after_failed` failures escalate
//! it. The same refusals as an accept: the offer must be theirs and live.

use chrono::{DateTime, Utc};

use crate::domain::lifecycle;
use crate::domain::{Incident, IncidentId, OfferResponse, StewardId};
use crate::rules::RuleBook;
use crate::store::dispatch::Actor;
use crate::store::dispatch_sql::{Which, conflict};
use crate::store::dispatch_tx::DispatchTx;
use crate::store::notices::WithdrawReason;
use crate::store::{ConflictCode, StoreResult};

use super::escalate::save_failures;
use super::must_lock;

pub(crate) async fn decline(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    steward: &StewardId,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let (i, d) = must_lock(tx, incident).await?;
    tx.steward_hold(steward, false).await?;
    let offer = tx.offer_of(incident, steward).await?;
    lifecycle::answerable(&i, offer.as_ref(), steward, now)?;
    let actor = Actor::Steward(steward.clone());
    let ended = tx
        .end_offers(
            incident,
            Which::Only(steward),
            OfferResponse::Declined,
            WithdrawReason::Declined,
            None,
            &actor,
            now,
        )
        .await?;
    if ended.is_empty() {
        return Err(conflict(
            ConflictCode::OfferExpired,
            format!("the offer to {steward} is no longer live"),
        ));
    }
    save_failures(tx, i, d, 1, &actor, now, rules).await
}
