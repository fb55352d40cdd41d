//! The one transaction dispatch's transitions run in: what they may ask
//! of the store, and nothing else.
//!
//! [`crate::dispatch::lifecycle`] decides (open, accept, decline, expire,
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

use super::dispatch::Actor;
use super::dispatch_sql::Which;
use super::notices::{Notices, WithdrawReason};
pub(crate) use super::rows::{DispatchState, StewardHold};
use super::{Deadline, StoreResult};
use crate::domain::care::StartedHow;
use crate::domain::{
    CloseReason, DeviceId, DispatchTurn, Elder, ElderId, EventId, FollowUp, Incident, IncidentId,
    IncidentKind, IncidentState, NewFollowUp, Offer, OfferResponse, Priority, Steward, StewardId,
};
use crate::rules::{Effect, RuleBook};

/// An incident to open under its dedup key (or to join, if one is open).
#[derive(Debug, Clone)]
pub(crate) struct NewIncident<'a> {
    pub key: &'a str,
    pub elder_id: Option<&'a ElderId>,
    pub device_id: Option<&'a DeviceId>,
    pub kind: IncidentKind,
    pub priority: Priority,
    pub summary: &'a str,
    pub at: DateTime<Utc>,
    /// Set when it is to be dispatched: due at once.
    pub next_dispatch_at: Option<DateTime<Utc>>,
    /// When it escalates unless acknowledged.
    pub escalate_at: Option<DateTime<Utc>>,
}

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

    /// Claims a steward for the incident's offer: `available` and on duty
    /// → `offered` (compare-and-set; a row another transaction holds is
    /// skipped, not waited for). None when they were not free.
    async fn claim_steward(
        &mut self,
        steward: &StewardId,
        incident: &IncidentId,
    ) -> StoreResult<Option<Steward>>;

    /// Gives back a claim whose offer could not be written.
    async fn unclaim_steward(
        &mut self,
        steward: &StewardId,
        incident: &IncidentId,
    ) -> StoreResult<()>;

    /// Writes a live offer; none when the steward already holds one (the
    /// one-live-offer-per-steward index).
    async fn write_offer(
        &mut self,
        incident: &IncidentId,
        steward: &StewardId,
        expires_at: DateTime<Utc>,
        distance_m: f64,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Offer>>;

    /// Opens an incident under its dedup key, or joins the open one (the
    /// partial unique index decides, so two writers racing on one key
    /// make one incident): the incident, its dispatch state, and whether
    /// it is new.
    async fn raise(
        &mut self,
        new: &NewIncident<'_>,
    ) -> StoreResult<(Incident, DispatchState, bool)>;

    /// The open incident under a dedup key, locked: `unreached_only` for
    /// an elder's cancel (only while nobody is with them yet).
    async fn lock_open_by_key(
        &mut self,
        key: &str,
        unreached_only: bool,
    ) -> StoreResult<Option<(Incident, DispatchState)>>;

    /// Sets (due time and effects as JSON) or removes a deadline, written
    /// with the commit; the last word on a key counts.
    fn schedule(&mut self, key: &str, due: Option<(DateTime<Utc>, String)>);

    /// Records a device's test call, once per `(device, event id)`: true
    /// when it is new (a registered device's first word of it). Nothing
    /// for a device no longer registered.
    async fn record_test_call(
        &mut self,
        device: &DeviceId,
        event_id: &EventId,
        confirm_by: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// The device confirmed its test call `event_id` at `now`: marks it
    /// confirmed, and passed if by its `confirm_by`. False when there is
    /// no such test or it was confirmed before (nothing changes).
    async fn confirm_test(
        &mut self,
        device: &DeviceId,
        event_id: &EventId,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Takes a claimed deadline out, with its effects: none when it was
    /// unscheduled, moved or fired since it was claimed.
    async fn take_deadline(&mut self, deadline: &Deadline) -> StoreResult<Option<Vec<Effect>>>;

    // --- the stewards' daily work ---

    /// Starts the elder's pending visit (planned → in progress, with how
    /// the steward showed they were there): its id, or none when the
    /// elder has no planned visit (already begun, or none planned).
    async fn start_visit(
        &mut self,
        elder: &ElderId,
        how: StartedHow,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;

    /// Marks a planned visit overdue (compare-and-set): false when it was
    /// begun, or marked, since it was read.
    async fn claim_overdue_visit(&mut self, visit: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Records the incident a visit's lateness raised.
    async fn link_visit_incident(&mut self, visit: &str, incident: &IncidentId) -> StoreResult<()>;

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

    /// Writes the follow-up a resolve makes; none when the incident already
    /// has one (exactly one per incident, whatever races).
    async fn open_follow_up(&mut self, new: &NewFollowUp) -> StoreResult<Option<FollowUp>>;

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
