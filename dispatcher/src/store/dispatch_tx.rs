//! The one transaction dispatch's transitions run in: what they may ask
//! of the store, and nothing else.
//!
//! [`crate::dispatch::lifecycle`] decides (accept, decline, expire,
//! escalate, assign, arrive, resolve, cancel, withdraw, a dispatch turn);
//! this trait only reads, locks and writes. Its methods are statements
//! (a compare-and-set, a locked read) or a few statements that always go
//! together, with the timeline lines and notices they imply queued on the
//! transaction and written by [`DispatchTx::commit`] just before the
//! commit. Both backends implement it once, in
//! [`dispatch_sql!`](super::dispatch_sql).
//!
//! Locking order, for every caller: incidents first (several in id
//! order), stewards after, so two transactions never wait on each other
//! in a circle.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use super::dispatch::Actor;
use super::dispatch_sql::{Closing, Which};
use super::notices::{Notices, WithdrawReason};
pub(crate) use super::rows::{DispatchState, StewardHold};
use crate::domain::{
    CloseReason, DispatchTurn, Elder, Incident, IncidentId, IncidentState, Offer, OfferPlan,
    OfferResponse, Steward, StewardId,
};
use crate::rules::RuleBook;

/// What a committed dispatch transaction changed, beyond its rows.
#[derive(Debug, Default, Clone, PartialEq)]
#[must_use = "what follows a commit needs it: the matcher and the stream fall behind without"]
pub struct Committed {
    /// It wrote stream or outbox rows.
    pub stream: bool,
    /// Stewards whose status changed, as it left them.
    pub stewards: Vec<Steward>,
    /// Dispatching incidents it left due for a dispatch turn now (a
    /// decline, an expiry or a withdrawal took their last live offer).
    pub due_now: Vec<IncidentId>,
}

impl Committed {
    /// Adds what another transaction changed (a timer's pass runs one per
    /// incident).
    pub fn and(mut self, other: Self) -> Self {
        self.stream |= other.stream;
        for s in other.stewards {
            match self.stewards.iter_mut().find(|e| e.id == s.id) {
                Some(earlier) => *earlier = s,
                None => self.stewards.push(s),
            }
        }
        for id in other.due_now {
            if !self.due_now.contains(&id) {
                self.due_now.push(id);
            }
        }
        self
    }
}

/// What a steward is taken from when they become `busy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BusyFrom {
    /// Their offer of this incident (an accept).
    Offered,
    /// Free and on duty (a supervisor's assignment).
    Available,
}

/// An open write transaction of dispatch. Dropped without
/// [`commit`](Self::commit) it writes nothing; say
/// [`rollback`](Self::rollback) so SQLite's write turn passes on only
/// after the rollback.
#[async_trait]
pub(crate) trait DispatchTx: Send {
    // --- reading and locking ---

    /// The incident, locked for the rest of the transaction.
    async fn lock(&mut self, id: &IncidentId) -> StoreResult<Option<(Incident, DispatchState)>>;

    /// The incident, locked, unless another transaction holds it (a timer
    /// moves on and comes back next tick).
    async fn lock_unless_held(
        &mut self,
        id: &IncidentId,
    ) -> StoreResult<Option<(Incident, DispatchState)>>;

    /// What a steward holds; `lock` locks their row (after the incidents).
    async fn steward_hold(&mut self, id: &StewardId, lock: bool) -> StoreResult<StewardHold>;

    /// The steward's offer of the incident (one at most).
    async fn offer_of(
        &mut self,
        incident: &IncidentId,
        steward: &StewardId,
    ) -> StoreResult<Option<Offer>>;

    /// How many of the incident's offers are live.
    async fn live_count(&mut self, incident: &IncidentId) -> StoreResult<i64>;

    /// Incidents where this steward holds a live offer.
    async fn live_offer_incidents(
        &mut self,
        steward: &StewardId,
    ) -> StoreResult<BTreeSet<IncidentId>>;

    /// The elder the webhooks carry: none when no webhook is configured
    /// or the row cannot be read (the change goes ahead without it).
    async fn elder_for_hooks(
        &mut self,
        incident: &Incident,
        rules: &RuleBook,
    ) -> StoreResult<Option<Elder>>;

    /// The elder's name for a steward's lock screen, when it can be read.
    async fn elder_name(&mut self, incident: &Incident) -> Option<String>;

    /// Takes the incident's dispatch turn if it is due (leases it) and
    /// reads what a planner needs.
    async fn take_turn(
        &mut self,
        incident: &IncidentId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(DispatchTurn, DispatchState)>>;

    // --- writing ---

    /// Claims the planned stewards, best first, until `want` are offered,
    /// writes their offers and the incident's next turn (a retry when
    /// nobody could be offered), and queues what that tells.
    async fn make_offers(
        &mut self,
        turn: &DispatchTurn,
        d: DispatchState,
        plan: &OfferPlan,
        now: DateTime<Utc>,
    ) -> StoreResult<(Vec<Offer>, Vec<Steward>)>;

    /// Marks a live, unexpired offer accepted (compare-and-set): false
    /// when it was no longer live.
    async fn take_offer(&mut self, offer: &Offer, now: DateTime<Utc>) -> StoreResult<bool>;

    /// The steward becomes `busy` with the incident (compare-and-set on
    /// `from`): none when they were not in that state.
    async fn make_busy(
        &mut self,
        steward: &StewardId,
        incident: &IncidentId,
        from: BusyFrom,
    ) -> StoreResult<Option<Steward>>;

    /// Frees the steward assigned to the incident: `available` if on duty,
    /// else `off_duty`.
    async fn release_assigned(
        &mut self,
        steward: &StewardId,
        incident: &IncidentId,
    ) -> StoreResult<Option<Steward>>;

    /// Ends live offers of an incident with `response`, releases their
    /// stewards, queues a timeline line per offer, `offer.withdrawn` to
    /// each steward but `quiet`, each released steward to supervisors, and
    /// stops reaching their phones.
    #[allow(clippy::too_many_arguments)]
    async fn end_offers(
        &mut self,
        incident: &IncidentId,
        which: Which<'_>,
        response: OfferResponse,
        reason: WithdrawReason,
        quiet: Option<&StewardId>,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Offer>>;

    /// The offers ended: steps of their ladders not yet sent are cancelled,
    /// and a phone that was shown an offer gets a push that closes it
    /// (`quiet`'s excepted).
    async fn stop_reaching(
        &mut self,
        offers: &[Offer],
        reason: CloseReason,
        quiet: Option<&StewardId>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Closes a locked open incident as `how`: live offers withdrawn, the
    /// assigned steward released, the clocks stopped, the notices queued.
    /// Ingest's cancels and clears close through the same statements.
    #[allow(clippy::too_many_arguments)]
    async fn close(
        &mut self,
        i: Incident,
        d: DispatchState,
        how: Closing<'_>,
        actor: &Actor,
        now: DateTime<Utc>,
        rules: &RuleBook,
    ) -> StoreResult<Incident>;

    /// Writes the incident's changed fields, compare-and-set on the status
    /// it had when locked (`Conflict(not_open)` when it moved).
    async fn save(
        &mut self,
        from: IncidentState,
        i: &Incident,
        d: &DispatchState,
    ) -> StoreResult<Incident>;

    // --- what the change tells ---

    /// Queues a timeline line.
    fn line(&mut self, incident: &IncidentId, at: DateTime<Utc>, what: String, actor: &Actor);

    /// The notices (stream and outbox rows) written with the change.
    fn notices(&mut self) -> &mut Notices;

    /// Writes the queued lines and notices, then commits: what the
    /// transaction changed, for what follows a commit.
    async fn commit(self: Box<Self>) -> StoreResult<Committed>;

    /// Rolls back, writing nothing.
    async fn rollback(self: Box<Self>) -> StoreResult<()>;
}
