//! Escalation: the incident's level goes up, so the matcher looks wider
//! and the webhooks (the family's too when critical) hear of it.
//!
//! It escalates when it was not accepted in time (`escalate_at`, moved on
//! by `escalate_after_s` each time, so a long wait keeps escalating),
//! when nobody is there to offer it to (the engine says so), and when
//! every `escalate_after_failed` offers were declined or expired
//! ([`save_failures`]). Only a `dispatching` incident escalates: one
//! acknowledged meanwhile has somebody on the way.

use chrono::{DateTime, Duration, Utc};

use crate::domain::lifecycle;
use crate::domain::{Incident, IncidentId, IncidentState};
use crate::rules::RuleBook;
use crate::store::StoreResult;
use crate::store::dispatch::{Actor, DispatchStore};
use crate::store::dispatch_sql::not_open;
use crate::store::dispatch_tx::Committed;
use crate::store::dispatch_tx::{DispatchState, DispatchTx};
use crate::store::notices::Transition;

use super::{Done, TIMER_BATCH, finish, keep_going, must_lock};

/// Escalates one incident now, for `reason`.
pub(crate) async fn escalate(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    reason: &str,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let (i, d) = must_lock(tx, incident).await?;
    if !i.status.is_open() {
        return Err(not_open(&i));
    }
    // Taken meanwhile (a supervisor assigned it between the engine's
    // claim and its offers): nothing to escalate.
    if i.status != IncidentState::Dispatching {
        return Ok(i);
    }
    let mut changed = i.clone();
    changed.escalation_level += 1;
    changed.updated_at = now;
    let saved = tx.save(i.status, &changed, &d).await?;
    let actor = Actor::System;
    escalated(tx, &saved, reason, &actor, now, rules).await?;
    tx.notices().incident(&saved, now);
    Ok(saved)
}

/// Every incident whose escalation is due, each in its own transaction.
pub(crate) async fn escalate_due<S: DispatchStore + ?Sized>(
    store: &S,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Done<Vec<IncidentId>>> {
    let mut escalated = Vec::new();
    let mut changed = Committed::default();
    for id in store.escalations_due(now, TIMER_BATCH).await? {
        let mut tx = store.begin_dispatch().await?;
        let result = escalate_if_due(&mut *tx, &id, now, rules).await;
        let done = keep_going(finish(tx, result).await, &id)?;
        changed = changed.and(done.changed);
        escalated.extend(done.value);
    }
    Ok(Done {
        value: escalated,
        changed,
    })
}

/// One incident's due escalation; none when another transaction holds
/// it, or it was acknowledged or escalated meanwhile.
async fn escalate_if_due(
    tx: &mut dyn DispatchTx,
    id: &IncidentId,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Option<IncidentId>> {
    let Some((i, mut d)) = tx.lock_unless_held(id).await? else {
        return Ok(None);
    };
    let due = matches!(d.escalate_at, Some(at) if at <= now);
    if i.status != IncidentState::Dispatching || !due {
        return Ok(None);
    }
    let every = Duration::seconds(i64::from(rules.dispatch().escalate_after_s.get(i.priority)));
    let next = d.escalate_at.map_or(now, |at| at + every);
    d.escalate_at = Some(if next <= now { now + every } else { next });
    // The radius grows with the level: look again now.
    d.next_dispatch_at = Some(now);
    let mut changed = i.clone();
    changed.escalation_level += 1;
    changed.updated_at = now;
    let saved = tx.save(i.status, &changed, &d).await?;
    let waited = (now - i.created_at).num_seconds();
    let reason = format!("not accepted after {waited} s");
    escalated(tx, &saved, &reason, &Actor::System, now, rules).await?;
    tx.notices().incident(&saved, now);
    Ok(Some(saved.id))
}

/// Saves an incident after `failed` of its offers were declined or
/// expired: while it is dispatching they count, its next dispatch is due
/// now when no offer is left live, and it escalates when the count
/// reaches a multiple of `escalate_after_failed`.
pub(crate) async fn save_failures(
    tx: &mut dyn DispatchTx,
    i: Incident,
    mut d: DispatchState,
    failed: i32,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let mut escalate = None;
    if i.status == IncidentState::Dispatching {
        let before = d.failed_offers;
        d.failed_offers += failed;
        if tx.live_count(&i.id).await? == 0 {
            d.next_dispatch_at = Some(now);
        }
        let every = rules.dispatch().escalate_after_failed;
        if lifecycle::failures_escalate(before, failed, every) {
            escalate = Some(format!("{} offers declined or expired", d.failed_offers));
        }
    }
    let mut changed = i.clone();
    changed.updated_at = now;
    if escalate.is_some() {
        changed.escalation_level += 1;
    }
    let saved = tx.save(i.status, &changed, &d).await?;
    if let Some(reason) = escalate {
        escalated(tx, &saved, &reason, actor, now, rules).await?;
    }
    tx.notices().incident(&saved, now);
    Ok(saved)
}

/// Queues what an escalation of the saved incident tells: its timeline
/// line and the webhooks (family too when critical). The caller raised
/// the level before saving.
async fn escalated(
    tx: &mut dyn DispatchTx,
    saved: &Incident,
    reason: &str,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<()> {
    tx.line(
        &saved.id,
        now,
        escalated_words(saved.escalation_level, reason),
        actor,
    );
    let elder = tx.elder_for_hooks(saved, rules).await?;
    tx.notices()
        .transition(Transition::Escalated, saved, elder.as_ref(), rules, now);
    Ok(())
}

/// "escalated to level 1: nobody available".
fn escalated_words(level: i32, reason: &str) -> String {
    format!("escalated to level {level}: {reason}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_escalation_says_its_level_and_why() {
        assert_eq!(
            super::escalated_words(1, "nobody available"),
            "escalated to level 1: nobody available"
        );
    }
}
