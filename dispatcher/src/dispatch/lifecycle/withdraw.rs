//! A steward's live offers are withdrawn: they went off duty (or a
//! supervisor assigned them elsewhere, [`super::assign`]).
//!
//! Each offer ends `withdrawn` with the reason, the steward hears
//! `offer.withdrawn`, and an incident left with no live offer is due for
//! dispatch now, so it never waits on a steward who is not coming.

use chrono::{DateTime, Utc};

use crate::domain::{Incident, IncidentId, IncidentState, OfferResponse, StewardId};
use crate::store::dispatch::{Actor, DispatchStore};
use crate::store::dispatch_sql::{Which, conflict};
use crate::store::dispatch_tx::{DispatchState, DispatchTx};
use crate::store::notices::WithdrawReason;
use crate::store::{ConflictCode, StoreResult};

use super::{Done, finish, lock_all};

/// Withdraws every live offer of `steward`. Returns those incidents.
pub(crate) async fn withdraw_offers_of<S: DispatchStore + ?Sized>(
    store: &S,
    steward: &StewardId,
    why: WithdrawReason,
    now: DateTime<Utc>,
) -> StoreResult<Done<Vec<IncidentId>>> {
    // Their incidents are locked before their offers are read again; if
    // those changed meanwhile, start over.
    for _ in 0..3 {
        let mut tx = store.begin_dispatch().await?;
        let result = withdraw_all(&mut *tx, steward, why, now).await;
        let done = finish(tx, result).await?;
        if let Some(touched) = done.value {
            return Ok(Done {
                value: touched,
                changed: done.changed,
            });
        }
    }
    Err(conflict(
        ConflictCode::StewardBusy,
        format!("steward {steward}'s offers kept changing; try again"),
    ))
}

/// None when the steward's offers changed before their incidents were
/// locked.
async fn withdraw_all(
    tx: &mut dyn DispatchTx,
    steward: &StewardId,
    why: WithdrawReason,
    now: DateTime<Utc>,
) -> StoreResult<Option<Vec<IncidentId>>> {
    tx.steward_hold(steward, false).await?;
    let seen = tx.live_offer_incidents(steward).await?;
    if seen.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let locked = lock_all(tx, &seen).await?;
    if tx.live_offer_incidents(steward).await? != seen {
        return Ok(None);
    }
    let actor = Actor::System;
    let mut touched = Vec::new();
    for (id, (i, d)) in locked {
        if withdraw_one(tx, i, d, steward, why, &actor, now).await? {
            touched.push(id);
        }
    }
    Ok(Some(touched))
}

/// Withdraws one steward's live offer of a locked incident; its next
/// dispatch is due now if that was its last live offer. False when they
/// held none.
pub(crate) async fn withdraw_one(
    tx: &mut dyn DispatchTx,
    i: Incident,
    mut d: DispatchState,
    steward: &StewardId,
    reason: WithdrawReason,
    actor: &Actor,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let ended = tx
        .end_offers(
            &i.id,
            Which::Only(steward),
            OfferResponse::Withdrawn,
            reason,
            None,
            actor,
            now,
        )
        .await?;
    if ended.is_empty() {
        return Ok(false);
    }
    let mut changed = i.clone();
    changed.updated_at = now;
    if i.status == IncidentState::Dispatching && tx.live_count(&i.id).await? == 0 {
        d.next_dispatch_at = Some(now);
    }
    let saved = tx.save(i.status, &changed, &d).await?;
    tx.notices().incident(&saved, now);
    Ok(true)
}
