//! What the rules decided, applied: an incident opened or joined, the
//! elder's cancel, a rule's clear, a deadline set or taken back.
//!
//! Every event ingest stores goes through here, inside the batch's
//! transaction, and so do effects raised outside ingest (a device going
//! offline, a deadline coming due). Opening is keyed: the open incident
//! under a dedup key is joined, not opened twice (the store's partial
//! unique index decides, not a read first). A new incident of an elder,
//! of a priority the site dispatches, is due for dispatch at once and
//! escalates unless acknowledged in time; the batch makes its first
//! offers before it commits ([`super::turn::first_offers`]).

use chrono::{DateTime, Duration, Utc};

use crate::domain::{Actor, Incident};
use crate::rules::{Effect, RuleBook};
use crate::store::dispatch_tx::{DispatchState, DispatchTx, NewIncident};
use crate::store::notices::Transition;
use crate::store::{Applied, EventAction, StoreError, StoreResult};

use super::close::{Closing, close_in};

/// Incidents a transaction opened that are due for dispatch, for their
/// first offers before it commits. One closed again in the same batch
/// (a press and its cancel) leaves the list.
#[derive(Debug, Default)]
pub(crate) struct Opened(pub Vec<(Incident, DispatchState)>);

impl Opened {
    fn closed(&mut self, incident: &Incident) {
        self.0.retain(|(opened, _)| opened.id != incident.id);
    }
}

/// Applies `effects` in order: one result per effect.
pub(crate) async fn apply(
    tx: &mut dyn DispatchTx,
    effects: &[Effect],
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
    opened: &mut Opened,
) -> StoreResult<Vec<Applied>> {
    let mut out = Vec::with_capacity(effects.len());
    for effect in effects {
        out.push(apply_one(tx, effect, actor, now, rules, opened).await?);
    }
    Ok(out)
}

async fn apply_one(
    tx: &mut dyn DispatchTx,
    effect: &Effect,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
    opened: &mut Opened,
) -> StoreResult<Applied> {
    let recorded = Applied {
        action: EventAction::Recorded,
        incident: None,
    };
    match effect {
        Effect::Raise { .. } => raise(tx, effect, actor, now, rules, opened).await,
        // The elder's cancel closes the incident as a supervisor's would,
        // while nobody has reached them yet.
        Effect::Cancel { key, reason } => {
            let how = Closing::Cancelled { reason };
            close_by_key(tx, key, how, actor, now, rules, opened).await
        }
        Effect::Clear { key, note } => {
            let how = Closing::Cleared { note };
            close_by_key(tx, key, how, actor, now, rules, opened).await
        }
        // Deadlines are written with the transaction's other pending
        // rows, one statement for all.
        Effect::Schedule {
            key,
            due_at,
            effects,
        } => {
            let effects = serde_json::to_string(effects)
                .map_err(|e| StoreError::Invalid(format!("deadline effects: {e}")))?;
            tx.schedule(key, Some((*due_at, effects)));
            Ok(Applied {
                action: EventAction::Scheduled,
                incident: None,
            })
        }
        Effect::Unschedule { key } => {
            tx.schedule(key, None);
            Ok(recorded)
        }
        Effect::StartVisit { elder_id, how } => {
            if let Some(visit) = tx.start_visit(elder_id, *how, now).await? {
                tracing::info!(elder = %elder_id, visit = %visit, how = %how, "visit begun");
            }
            Ok(recorded)
        }
        // A test call is recorded once and answered once: a redelivery
        // never reaches here (the batch drops it by event id), and the
        // store's key makes sure of it.
        Effect::TestCall {
            device,
            event_id,
            confirm_by,
        } => {
            if tx
                .record_test_call(device, event_id, *confirm_by, now)
                .await?
            {
                tx.notices().test_ack(device, event_id, now);
            }
            Ok(recorded)
        }
        Effect::TestConfirmed {
            device,
            test_event_id,
        } => {
            tx.confirm_test(device, test_event_id, now).await?;
            Ok(recorded)
        }
    }
}

/// Closes the open incident under `key`, if there is one (a cancel only
/// while nobody has reached the elder).
async fn close_by_key(
    tx: &mut dyn DispatchTx,
    key: &str,
    how: Closing<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
    opened: &mut Opened,
) -> StoreResult<Applied> {
    let (unreached_only, action) = match how {
        Closing::Cancelled { .. } => (true, EventAction::Cancelled),
        _ => (false, EventAction::Cleared),
    };
    let Some((i, d)) = tx.lock_open_by_key(key, unreached_only).await? else {
        return Ok(Applied {
            action: EventAction::Recorded,
            incident: None,
        });
    };
    let closed = close_in(tx, i, d, how, actor, now, rules).await?;
    opened.closed(&closed);
    Ok(Applied {
        action,
        incident: Some(closed),
    })
}

/// Opens an incident under the key, or joins the open one.
async fn raise(
    tx: &mut dyn DispatchTx,
    effect: &Effect,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
    opened: &mut Opened,
) -> StoreResult<Applied> {
    let Effect::Raise {
        key,
        elder_id,
        device_id,
        kind,
        priority,
        summary,
    } = effect
    else {
        return Err(StoreError::Invalid("raise called without a Raise".into()));
    };
    let dispatched = elder_id.is_some() && rules.dispatches(*priority);
    let escalate_after = rules.dispatch().escalate_after_s.get(*priority);
    let new = NewIncident {
        key,
        elder_id: elder_id.as_ref(),
        device_id: device_id.as_ref(),
        kind: *kind,
        priority: *priority,
        summary,
        at: now,
        next_dispatch_at: dispatched.then_some(now),
        escalate_at: dispatched.then(|| now + Duration::seconds(i64::from(escalate_after))),
    };
    let (incident, d, is_new) = tx.raise(&new).await?;
    if is_new && dispatched {
        opened.0.push((incident.clone(), d));
    }
    tx.line(&incident.id, now, raised_words(is_new, summary), actor);
    tx.notices().incident(&incident, now);
    if is_new {
        let elder = tx.elder_for_hooks(&incident, rules).await?;
        tx.notices()
            .transition(Transition::Opened, &incident, elder.as_ref(), rules, now);
    }
    let action = if is_new {
        EventAction::Opened
    } else {
        EventAction::Joined
    };
    Ok(Applied {
        action,
        incident: Some(incident),
    })
}

/// The timeline's words for a raise: "opened: call pressed (bedside)".
fn raised_words(opened: bool, summary: &str) -> String {
    let verb = if opened { "opened" } else { "joined" };
    format!("{verb}: {summary}")
}

/// What one event did, from what each of its effects did: the first
/// effect that did something names the action (a rule lists the effect
/// that matters first).
pub(crate) fn first_that_acted(applied: Vec<Applied>) -> Applied {
    applied
        .into_iter()
        .find(|a| a.action != EventAction::Recorded)
        .unwrap_or(Applied {
            action: EventAction::Recorded,
            incident: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_named_by_its_first_effect_that_acted() {
        let recorded = Applied {
            action: EventAction::Recorded,
            incident: None,
        };
        let scheduled = Applied {
            action: EventAction::Scheduled,
            incident: None,
        };
        assert_eq!(
            first_that_acted(vec![recorded.clone(), scheduled.clone()]),
            scheduled
        );
        assert_eq!(first_that_acted(vec![recorded.clone()]), recorded);
        assert_eq!(first_that_acted(vec![]), recorded);
    }

    #[test]
    fn a_raise_says_whether_it_opened_or_joined() {
        assert_eq!(raised_words(true, "call pressed"), "opened: call pressed");
        assert_eq!(raised_words(false, "call pressed"), "joined: call pressed");
    }
}
