//! A steward accepts their offer.
//!
//! Their offer is taken (compare-and-set: still live and unexpired), they
//! become `busy` with the incident, every other live offer is withdrawn
//! (reason `taken`) and those stewards are free again, the incident is
//! `acknowledged` with them assigned and its clocks stop, and the elder's
//! device and the webhooks hear `acknowledged`.

use chrono::{DateTime, Utc};

use crate::domain::lifecycle;
use crate::domain::{CloseReason, Incident, IncidentId, IncidentState, OfferResponse, StewardId};
use crate::rules::RuleBook;
use crate::store::dispatch::Actor;
use crate::store::dispatch_sql::{Which, conflict};
use crate::store::dispatch_tx::{BusyFrom, DispatchTx};
use crate::store::notices::{Transition, WithdrawReason};
use crate::store::{ConflictCode, StoreResult};

use super::must_lock;

pub(crate) async fn accept(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    steward: &StewardId,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let (i, mut d) = must_lock(tx, incident).await?;
    tx.steward_hold(steward, false).await?;
    let offer = tx.offer_of(incident, steward).await?;
    let Some(changed) = lifecycle::accept(&i, offer.as_ref(), steward, now)? else {
        // Accepting twice (a retried tap) is not an error.
        return Ok(i);
    };
    let offer = offer.expect("accept refuses a missing offer");
    if !tx.take_offer(&offer, now).await? {
        return Err(conflict(
            ConflictCode::OfferExpired,
            format!("the offer to {steward} is no longer live"),
        ));
    }
    let Some(busy) = tx.make_busy(steward, incident, BusyFrom::Offered).await? else {
        return Err(conflict(
            ConflictCode::StewardBusy,
            format!("steward {steward} is not holding the offer of incident {incident}"),
        ));
    };
    let actor = Actor::Steward(steward.clone());
    tx.end_offers(
        incident,
        Which::Except(steward),
        OfferResponse::Withdrawn,
        WithdrawReason::Taken,
        None,
        &actor,
        now,
    )
    .await?;
    tx.stop_reaching(
        std::slice::from_ref(&offer),
        CloseReason::Accepted,
        None,
        now,
    )
    .await?;
    d.next_dispatch_at = None;
    d.escalate_at = None;
    let saved = tx.save(IncidentState::Dispatching, &changed, &d).await?;
    tx.line(&saved.id, now, format!("accepted by {steward}"), &actor);
    tx.notices().incident(&saved, now);
    tx.notices().steward(&busy, now);
    let elder = tx.elder_for_hooks(&saved, rules).await?;
    tx.notices()
        .transition(Transition::Acknowledged, &saved, elder.as_ref(), rules, now);
    Ok(saved)
}
