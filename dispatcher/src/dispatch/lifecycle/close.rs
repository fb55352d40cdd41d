//! An open incident closes: resolved (with an outcome and notes) or
//! cancelled (with a reason).
//!
//! A steward may resolve only the incident they are assigned; a
//! supervisor may resolve or cancel any open one. Closing withdraws the
//! live offers (reason `resolved` or `cancelled`), frees the assigned
//! steward, stops the clocks, and tells the device and the webhooks
//! ([`close_in`], which the elder's own cancel and a rule's clear go
//! through too, [`super::effects`]). A resolve of an elder's incident
//! also makes its follow-up (回访), in the same transaction.

use chrono::{DateTime, Utc};

use crate::domain::{
    Actor, Incident, IncidentId, IncidentState, OfferResponse, Outcome, StewardId, WithdrawReason,
};
use crate::domain::{follow_up, lifecycle};
use crate::rules::RuleBook;
use crate::store::StoreResult;
use crate::store::dispatch_sql::{Which, not_open};
use crate::store::dispatch_tx::{DispatchState, DispatchTx};
use crate::store::notices::Transition;

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
    let saved = close_in(tx, i, d, how, actor, now, rules).await?;
    follow_up(tx, &saved, outcome, steward, now, rules).await?;
    Ok(saved)
}

/// The follow-up (回访) a resolve makes, in its transaction: a call, or
/// after `hospital` a visit, due after `follow_ups.*_within_h`, with a
/// line on the timeline. Only a resolve by a person makes one (neither a
/// cancel nor a rule's clear), and only for an elder's incident.
async fn follow_up(
    tx: &mut dyn DispatchTx,
    resolved: &Incident,
    outcome: Outcome,
    resolver: Option<&StewardId>,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<()> {
    let within = rules.follow_ups().within();
    let Some(new) = follow_up::after_resolve(resolved, outcome, resolver, within, now) else {
        return Ok(());
    };
    if tx.open_follow_up(&new).await?.is_some() {
        let words = crate::store::follow_ups::due_words(new.kind, new.due_at);
        tx.line(&resolved.id, now, words, &Actor::System);
    }
    Ok(())
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
    close_in(tx, i, d, how, actor, now, rules).await
}

/// How an open incident closes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Closing<'a> {
    Resolved {
        outcome: Outcome,
        notes: &'a str,
    },
    Cancelled {
        reason: &'a str,
    },
    /// A rule resolved it by itself (a device heard again).
    Cleared {
        note: &'a str,
    },
}

impl Closing<'_> {
    fn status(self) -> IncidentState {
        match self {
            Self::Cancelled { .. } => IncidentState::Cancelled,
            Self::Resolved { .. } | Self::Cleared { .. } => IncidentState::Resolved,
        }
    }

    fn outcome(self) -> Option<Outcome> {
        match self {
            Self::Resolved { outcome, .. } => Some(outcome),
            Self::Cleared { .. } => Some(Outcome::Cleared),
            Self::Cancelled { .. } => None,
        }
    }

    fn notes(self) -> String {
        match self {
            Self::Resolved { notes, .. } => notes.to_owned(),
            Self::Cancelled { reason } => reason.to_owned(),
            Self::Cleared { note } => note.to_owned(),
        }
    }

    /// Why the live offers are withdrawn.
    fn withdraw_reason(self) -> WithdrawReason {
        match self {
            Self::Cancelled { .. } => WithdrawReason::Cancelled,
            Self::Resolved { .. } | Self::Cleared { .. } => WithdrawReason::Resolved,
        }
    }

    /// What the device and the webhooks hear.
    fn transition(self) -> Transition {
        match self {
            Self::Cancelled { .. } => Transition::Cancelled,
            Self::Resolved { .. } | Self::Cleared { .. } => Transition::Resolved,
        }
    }

    /// The timeline's words: "resolved: assisted — helped back to bed".
    fn words(self) -> String {
        match self {
            Self::Resolved { outcome, notes } if notes.trim().is_empty() => {
                format!("resolved: {outcome}")
            }
            Self::Resolved { outcome, notes } => format!("resolved: {outcome} — {notes}"),
            Self::Cancelled { reason } => format!("cancelled: {reason}"),
            Self::Cleared { note } => format!("cleared: {note}"),
        }
    }
}

/// Closes a locked open incident: live offers withdrawn, the assigned
/// steward released, the dispatch clocks stopped, the device and the
/// webhooks told.
pub(crate) async fn close_in(
    tx: &mut dyn DispatchTx,
    mut i: Incident,
    mut d: DispatchState,
    how: Closing<'_>,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let from = i.status;
    tx.end_offers(
        &i.id,
        Which::All,
        OfferResponse::Withdrawn,
        how.withdraw_reason(),
        None,
        actor,
        now,
    )
    .await?;
    if let Some(s) = &i.steward_id
        && let Some(steward) = tx.release_assigned(s, &i.id).await?
    {
        tx.notices().steward(&steward, now);
    }
    i.status = how.status();
    i.outcome = how.outcome();
    i.notes = Some(how.notes());
    i.resolved_at = Some(now);
    i.updated_at = now;
    d.next_dispatch_at = None;
    d.escalate_at = None;
    let saved = tx.save(from, &i, &d).await?;
    tx.line(&saved.id, now, how.words(), actor);
    tx.notices().incident(&saved, now);
    let elder = tx.elder_for_hooks(&saved, rules).await?;
    tx.notices()
        .transition(how.transition(), &saved, elder.as_ref(), rules, now);
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closing_reads_like_an_operator_wrote_it() {
        let how = Closing::Resolved {
            outcome: Outcome::Assisted,
            notes: "helped back to bed",
        };
        assert_eq!(how.words(), "resolved: assisted — helped back to bed");
        let quiet = Closing::Resolved {
            outcome: Outcome::Assisted,
            notes: " ",
        };
        assert_eq!(quiet.words(), "resolved: assisted");
        assert_eq!(
            Closing::Cleared {
                note: "device heard again"
            }
            .words(),
            "cleared: device heard again"
        );
    }
}
