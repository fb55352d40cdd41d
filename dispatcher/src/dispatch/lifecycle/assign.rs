//! A supervisor sends a steward by hand.
//!
//! The steward must be on duty and not busy with another incident
//! (`steward_busy`); an offer they hold for another incident goes back to
//! it ([`super::withdraw::withdraw_one`], reason `reassigned`). This
//! incident's live offers are withdrawn (theirs too, silently: they hear
//! of the assignment instead). A steward assigned before is released and
//! told `offer.withdrawn`, reason `reassigned`. The incident is
//! `acknowledged` with the steward, who becomes `busy`; assigning it to
//! its steward again changes nothing.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::domain::{AssignedView, Incident, IncidentId, IncidentState, OfferResponse, StewardId};
use crate::rules::RuleBook;
use crate::store::dispatch::{Actor, DispatchStore};
use crate::store::dispatch_sql::{Which, conflict, not_open};
use crate::store::dispatch_tx::{BusyFrom, DispatchTx};
use crate::store::notices::{Transition, WithdrawReason};
use crate::store::{ConflictCode, StoreError, StoreResult};

use super::withdraw::withdraw_one;
use super::{Done, finish, lock_all};

pub(crate) async fn assign<S: DispatchStore + ?Sized>(
    store: &S,
    incident: &IncidentId,
    steward: &StewardId,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Done<Incident>> {
    // The steward's other incident (an offer they hold) is locked with
    // this one, in id order; if it changed before the locks were held,
    // start again.
    for _ in 0..3 {
        let mut tx = store.begin_dispatch().await?;
        let result = assign_in(&mut *tx, incident, steward, actor, now, rules).await;
        let done = finish(tx, result).await?;
        if let Some(saved) = done.value {
            return Ok(Done {
                value: saved,
                changed: done.changed,
            });
        }
    }
    Err(conflict(
        ConflictCode::StewardBusy,
        format!("steward {steward} kept changing; try again"),
    ))
}

/// None when the steward's other incident changed before it was locked.
async fn assign_in(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    steward: &StewardId,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Option<Incident>> {
    let seen = tx.steward_hold(steward, false).await?;
    let other = seen.incident()?;
    let mut ids = BTreeSet::from([incident.clone()]);
    ids.extend(other.clone());
    let mut locked = lock_all(tx, &ids).await?;
    let Some((i, mut d)) = locked.remove(incident) else {
        return Err(StoreError::NotFound(format!("incident {incident}")));
    };
    let hold = tx.steward_hold(steward, true).await?;
    if hold.incident_id != seen.incident_id {
        return Ok(None);
    }
    if !i.status.is_open() {
        return Err(not_open(&i));
    }
    if i.steward_id.as_ref() == Some(steward) {
        return Ok(Some(i));
    }
    if !hold.on_duty {
        return Err(conflict(
            ConflictCode::StewardBusy,
            format!("steward {steward} is off duty"),
        ));
    }
    if hold.status == "busy" {
        let on = hold.incident_id.as_deref().unwrap_or("another incident");
        return Err(conflict(
            ConflictCode::StewardBusy,
            format!("steward {steward} is busy with {on}"),
        ));
    }
    // Their offer of another incident goes back to it.
    if let Some(other) = other.filter(|o| o != incident)
        && let Some((oi, od)) = locked.remove(&other)
    {
        withdraw_one(tx, oi, od, steward, WithdrawReason::Reassigned, actor, now).await?;
    }
    // This incident's live offers (their own included) are withdrawn;
    // they hear of the assignment instead.
    tx.end_offers(
        incident,
        Which::All,
        OfferResponse::Withdrawn,
        WithdrawReason::Reassigned,
        Some(steward),
        actor,
        now,
    )
    .await?;
    let previous = i.steward_id.clone();
    if let Some(p) = &previous {
        if let Some(freed) = tx.release_assigned(p, incident).await? {
            tx.notices().steward(&freed, now);
        }
        tx.notices()
            .withdrawn(p, incident, WithdrawReason::Reassigned, now);
    }
    let Some(busy) = tx.make_busy(steward, incident, BusyFrom::Available).await? else {
        return Err(conflict(
            ConflictCode::StewardBusy,
            format!("steward {steward} is {}", hold.status),
        ));
    };
    let mut changed = i.clone();
    changed.status = IncidentState::Acknowledged;
    changed.steward_id = Some(steward.clone());
    changed.acknowledged_at = i.acknowledged_at.or(Some(now));
    changed.on_site_at = None;
    changed.updated_at = now;
    d.next_dispatch_at = None;
    d.escalate_at = None;
    let saved = tx.save(i.status, &changed, &d).await?;
    let words = match &previous {
        Some(p) => format!("reassigned from {p} to {busy}"),
        None => format!("assigned to {busy}"),
    };
    tx.line(&saved.id, now, words, actor);
    tx.notices().incident(&saved, now);
    tx.notices().steward(&busy, now);
    let elder_name = tx.elder_name(&saved).await;
    tx.notices().assigned(
        &AssignedView {
            incident_id: saved.id.clone(),
            steward_id: steward.clone(),
            priority: saved.priority,
            kind: saved.kind,
            elder_name,
        },
        now,
    );
    let elder = tx.elder_for_hooks(&saved, rules).await?;
    tx.notices()
        .transition(Transition::Acknowledged, &saved, elder.as_ref(), rules, now);
    Ok(Some(saved))
}
