//! The incident's life after it opens, one file per transition.
//!
//! Each transition is plain Rust over one store transaction
//! ([`DispatchTx`]): lock, ask the pure rules of
//! [`crate::domain::lifecycle`] whether the change may happen, write it,
//! queue what it tells (timeline, stream, outbox), commit. The store only
//! reads, locks and writes; what happens when is decided here.
//!
//! | transition | file |
//! |---|---|
//! | opened or joined, the elder's cancel, a rule's clear, a deadline | [`effects`] |
//! | a dispatch turn: plan, claim, offer | [`turn`] |
//! | a steward accepts | [`accept`] |
//! | a steward declines | [`decline`] |
//! | offers run out of time | [`expire`] |
//! | nobody accepted in time, or nobody is there | [`escalate`] |
//! | a supervisor assigns by hand | [`assign`] |
//! | the steward is with the elder | [`arrive`] |
//! | resolved or cancelled | [`close`] |
//! | a steward goes off duty | [`withdraw`] |
//!
//! Callers use them as methods of any [`DispatchStore`], through
//! [`Lifecycle`].

pub mod accept;
pub mod arrive;
pub mod assign;
pub mod close;
pub mod decline;
pub mod effects;
pub mod escalate;
pub mod expire;
pub mod turn;
pub mod withdraw;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Incident, IncidentId, Outcome, Planner, StewardId, TakenTurn, WithdrawReason};
use crate::rules::{Effect, RuleBook};
use crate::store::dispatch::{Actor, DispatchStore};
use crate::store::dispatch_tx::{Committed, DispatchState, DispatchTx};
use crate::store::{Applied, Deadline, StoreError, StoreResult};

/// Incidents a timer pass looks at per call.
const TIMER_BATCH: i64 = 200;

/// The incident's transitions, on any store that dispatches.
#[async_trait]
pub trait Lifecycle: DispatchStore {
    /// Takes the dispatch turn of a `dispatching` incident whose
    /// `next_dispatch_at` is due and offers it, in one transaction, so
    /// concurrent callers (two instances, the ingest hook and the timer)
    /// never both offer. `plan` sees the turn (the incident, its elder,
    /// who was offered) and says whom to try; the stewards are then
    /// claimed in order until `want` were (`available` → `offered` by
    /// compare-and-set; a steward lost to another incident is skipped and
    /// noted), the plan's `notes` are recorded with the losers marked, and
    /// the turn is cleared, or set to `retry_at` when nobody could be
    /// offered. A plan of `None` (an incident without an elder) leaves the
    /// turn leased for [`crate::store::dispatch::DISPATCH_LEASE`], and so
    /// does a turn that fails for anything but an unavailable store.
    /// `None` when the turn is not due, the incident is not dispatching,
    /// or another caller holds the turn.
    async fn take_turn(
        &self,
        incident: &IncidentId,
        now: DateTime<Utc>,
        plan: &Planner<'_>,
    ) -> StoreResult<Option<TakenTurn>> {
        turn::take(self, incident, now, plan).await
    }

    /// The steward accepts their live offer: the incident becomes
    /// `acknowledged` with them assigned, they become `busy`, every other
    /// live offer is withdrawn. `Conflict(offer_expired)` when their offer
    /// expired (even if the timer has not said so), was declined or
    /// withdrawn; `Conflict(already_taken)` when someone else has it;
    /// `Conflict(not_open)` when closed; `Conflict(no_offer)` when they
    /// never had an offer; `NotFound` for an unknown incident or steward.
    /// Accepting again what one accepted returns the incident unchanged.
    async fn accept(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        let mut tx = self.begin_dispatch().await?;
        let result = accept::accept(&mut *tx, incident, steward, now, rules).await;
        finish(tx, result).await
    }

    /// The steward declines their live offer: they are `available` again,
    /// `failed_offers` counts up, and when no offer is left live the next
    /// dispatch is due now. Reaching a multiple of `escalate_after_failed`
    /// escalates. Same errors as `accept`.
    async fn decline(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        let mut tx = self.begin_dispatch().await?;
        let result = decline::decline(&mut *tx, incident, steward, now, rules).await;
        finish(tx, result).await
    }

    /// Expires every live offer past `expires_at`, as a decline would.
    /// Returns the incidents touched.
    async fn expire_offers(
        &self,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Vec<IncidentId>>> {
        expire::expire_due(self, now, rules).await
    }

    /// Escalates `dispatching` incidents whose `escalate_at` is due: level
    /// up, `escalate_at` moves by `escalate_after_s` (a long wait keeps
    /// escalating), next dispatch due now (the radius grows with the
    /// level). Returns the incidents escalated.
    async fn escalate_due(
        &self,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Vec<IncidentId>>> {
        escalate::escalate_due(self, now, rules).await
    }

    /// Escalates one incident now, for `reason` ("nobody available").
    async fn escalate(
        &self,
        incident: &IncidentId,
        reason: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        let mut tx = self.begin_dispatch().await?;
        let result = escalate::escalate(&mut *tx, incident, reason, now, rules).await;
        finish(tx, result).await
    }

    /// The assigned steward is with the elder: `on_site`.
    /// `Conflict(not_assigned)` for anyone else, `Conflict(not_open)` on a
    /// closed incident.
    async fn arrive(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        let mut tx = self.begin_dispatch().await?;
        let result = arrive::arrive(&mut *tx, incident, steward, now, rules).await;
        finish(tx, result).await
    }

    /// Resolves an open incident with an outcome and notes; its steward is
    /// free again, live offers are withdrawn. `Conflict(not_open)` when
    /// closed; `Conflict(not_assigned)` when a steward other than the
    /// assigned one tries.
    #[allow(clippy::too_many_arguments)]
    async fn resolve(
        &self,
        incident: &IncidentId,
        actor: &Actor,
        outcome: Outcome,
        notes: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        let mut tx = self.begin_dispatch().await?;
        let result = close::resolve(&mut *tx, incident, actor, outcome, notes, now, rules).await;
        finish(tx, result).await
    }

    /// Cancels an open incident: as resolve, status `cancelled`, notes =
    /// reason. `Conflict(not_open)` when it is already closed.
    async fn cancel(
        &self,
        incident: &IncidentId,
        actor: &Actor,
        reason: &str,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        let mut tx = self.begin_dispatch().await?;
        let result = close::cancel(&mut *tx, incident, actor, reason, now, rules).await;
        finish(tx, result).await
    }

    /// A supervisor assigns a steward by hand: live offers are withdrawn,
    /// the incident is `acknowledged` with that steward, who becomes
    /// `busy`. The steward must be on duty and not busy elsewhere
    /// (`Conflict(steward_busy)`); an offer they hold for another incident
    /// is withdrawn. Assigning an acknowledged or on-site incident to
    /// someone else reassigns it; to its steward again changes nothing.
    async fn assign(
        &self,
        incident: &IncidentId,
        steward: &StewardId,
        actor: &Actor,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Incident>> {
        assign::assign(self, incident, steward, actor, now, rules).await
    }

    /// Applies effects raised outside ingest (a device going offline or
    /// coming back) in one transaction, as `actor`. `rules` decide whether
    /// an opened incident is dispatched (its offers are the engine's) and
    /// who is told. One result per effect.
    async fn apply(
        &self,
        effects: &[Effect],
        actor: &Actor,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Vec<Applied>>> {
        let mut tx = self.begin_dispatch().await?;
        let mut opened = effects::Opened::default();
        let result = effects::apply(&mut *tx, effects, actor, now, rules, &mut opened).await;
        finish(tx, result).await
    }

    /// Applies a claimed deadline's stored effects and deletes it, in one
    /// transaction. No results, and nothing changed, when it was
    /// unscheduled, moved or already fired since it was claimed.
    async fn fire_deadline(
        &self,
        deadline: &Deadline,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Vec<Applied>>> {
        let mut tx = self.begin_dispatch().await?;
        let result = fire_in(&mut *tx, deadline, now, rules).await;
        finish(tx, result).await
    }

    /// Raises an overdue visit's incident ([`overdue_in`]): none when
    /// another instance did, or the visit began since it was read.
    async fn raise_overdue_visit(
        &self,
        visit: &str,
        raise: &Effect,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Done<Option<Applied>>> {
        let mut tx = self.begin_dispatch().await?;
        let result = overdue_in(&mut *tx, visit, raise, now, rules).await;
        finish(tx, result).await
    }

    /// A steward went off duty: their live offers are withdrawn (each
    /// incident's next dispatch due now). Returns those incidents.
    async fn withdraw_offers_of(
        &self,
        steward: &StewardId,
        reason: WithdrawReason,
        now: DateTime<Utc>,
    ) -> StoreResult<Done<Vec<IncidentId>>> {
        withdraw::withdraw_offers_of(self, steward, reason, now).await
    }
}

impl<S: DispatchStore + ?Sized> Lifecycle for S {}

/// A transition's result, and what its commit changed for
/// [`super::after_commit`].
#[derive(Debug)]
#[must_use = "hand `changed` to after_commit, or the matcher and the stream fall behind"]
pub struct Done<T> {
    pub value: T,
    pub changed: Committed,
}

impl<T> Done<T> {
    pub fn into_value(self) -> T {
        self.value
    }
}

/// A result is compared by its value (what changed is bookkeeping).
impl<T: PartialEq> PartialEq<T> for Done<T> {
    fn eq(&self, other: &T) -> bool {
        self.value == *other
    }
}

impl<T: PartialEq> PartialEq for Done<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T> std::ops::Deref for Done<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// Commits `tx` if `result` is a success, else rolls it back.
pub(crate) async fn finish<T>(
    tx: Box<dyn DispatchTx + '_>,
    result: StoreResult<T>,
) -> StoreResult<Done<T>> {
    match result {
        Ok(value) => {
            let changed = tx.commit().await?;
            Ok(Done { value, changed })
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "could not roll back a refused change");
            }
            Err(e)
        }
    }
}

/// The incident, locked; `NotFound` when there is none.
pub(crate) async fn must_lock(
    tx: &mut dyn DispatchTx,
    id: &IncidentId,
) -> StoreResult<(Incident, DispatchState)> {
    tx.lock(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("incident {id}")))
}

/// A visit's lateness, once: marked overdue and its incident raised (or
/// joined) in one transaction, so two instances finding it together raise
/// it once, and a crash between the two steps leaves neither.
async fn overdue_in(
    tx: &mut dyn DispatchTx,
    visit: &str,
    raise: &Effect,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Option<Applied>> {
    if !tx.claim_overdue_visit(visit, now).await? {
        return Ok(None);
    }
    let mut opened = effects::Opened::default();
    let applied = effects::apply(
        tx,
        std::slice::from_ref(raise),
        &Actor::System,
        now,
        rules,
        &mut opened,
    )
    .await?
    .into_iter()
    .next();
    if let Some(i) = applied.as_ref().and_then(|a| a.incident.as_ref()) {
        tx.link_visit_incident(visit, &i.id).await?;
    }
    Ok(applied)
}

/// Only the deadline that was claimed: if it was unscheduled (a bed
/// return) or moved (a new bed exit) since, or another instance fired it
/// after our lease ran out, there is nothing to do.
async fn fire_in(
    tx: &mut dyn DispatchTx,
    deadline: &Deadline,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Vec<Applied>> {
    let Some(stored) = tx.take_deadline(deadline).await? else {
        return Ok(Vec::new());
    };
    // Incidents a deadline opens are offered by the engine after the
    // commit (the timers kick it).
    let mut opened = effects::Opened::default();
    effects::apply(tx, &stored, &Actor::System, now, rules, &mut opened).await
}

/// A timer pass goes on past one incident it cannot read, so one damaged
/// row delays no other incident; a database failure stops the pass (the
/// next tick retries).
fn keep_going<T>(r: StoreResult<Done<Option<T>>>, id: &IncidentId) -> StoreResult<Done<Option<T>>> {
    match r {
        Err(StoreError::Corrupt(e)) => {
            tracing::error!(incident = %id, error = %e, "incident unreadable; skipped by the timer");
            Ok(Done {
                value: None,
                changed: Committed::default(),
            })
        }
        other => other,
    }
}

/// Locks incidents in id order (the order every transaction that touches
/// several uses); an id with no incident is left out.
async fn lock_all(
    tx: &mut dyn DispatchTx,
    ids: &BTreeSet<IncidentId>,
) -> StoreResult<BTreeMap<IncidentId, (Incident, DispatchState)>> {
    let mut locked = BTreeMap::new();
    for id in ids {
        if let Some(found) = tx.lock(id).await? {
            locked.insert(id.clone(), found);
        }
    }
    Ok(locked)
}
