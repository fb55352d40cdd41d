//! The dispatch engine.
//!
//! It holds no state of its own that matters: the store decides (who is
//! claimed, whose turn it is, what is due), the matcher advises. The
//! engine reacts to kicks (an incident just opened, an offer declined, a
//! steward went off duty) at once, and on every tick claims what came due
//! (offers expiring, escalations, retries) and sweeps for incidents whose
//! dispatch turn is due for any other reason, so nothing waits on a kick
//! that was lost in a crash.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Lifecycle;
use super::matcher::{Matcher, Need};
use crate::clock::{Clock, Worker};
use crate::domain::{DispatchTurn, OfferPlan, TakenTurn};
use crate::domain::{IncidentId, Offer, Steward, StewardId};
use crate::fence::Fence;
use crate::rules::RuleBook;
use crate::store::{EngineStore, StoreError};

/// How often the matcher is rebuilt from the store when nobody tells the
/// engine of changes made elsewhere (see [`Engine::told_of_changes`]).
const REBUILD_EVERY: StdDuration = StdDuration::from_secs(30);
/// Incidents swept per tick.
const SWEEP_LIMIT: i64 = 200;

/// Something the engine should look at now.
#[derive(Debug, Clone, PartialEq)]
enum Kick {
    /// An incident may need offers (opened, declined, offer withdrawn).
    Incident(IncidentId),
    /// An incident's stewards may have changed status: re-read them.
    Released(IncidentId),
    /// These stewards may have changed status: re-read them, and offer
    /// waiting incidents if one became free.
    Stewards(Vec<StewardId>),
    /// Changes may have been missed: re-read every steward, offer what
    /// waits.
    Resync,
    /// These stewards can take an offer, newly or from somewhere new:
    /// waiting incidents they could be offered are offered now, not at
    /// their retry.
    Offerable(Vec<StewardId>),
}

/// Whose coming free brings a waiting incident's turn forward.
#[derive(Debug, Clone, Copy)]
enum Whom<'a> {
    /// Anyone the matcher now ranks for it (after missed changes).
    Anyone,
    /// One of these stewards, ranked for it.
    These(&'a [StewardId]),
}

impl Whom<'_> {
    fn among(self, plan: &OfferPlan) -> bool {
        match self {
            Whom::Anyone => !plan.candidates.is_empty(),
            Whom::These(ids) => plan.candidates.iter().any(|c| ids.contains(&c.steward_id)),
        }
    }
}

/// What the rest of the dispatcher holds to talk to the engine: cheap to
/// clone, never blocks.
#[derive(Clone)]
pub struct EngineHandle {
    kicks: mpsc::UnboundedSender<Kick>,
    matcher: Arc<Matcher>,
    store: Arc<dyn EngineStore>,
}

impl EngineHandle {
    /// The incident may need offers now.
    pub fn kick(&self, incident: &IncidentId) {
        let _ = self.kicks.send(Kick::Incident(incident.clone()));
    }

    /// The stewards an incident offered or assigned may have changed
    /// status (it was accepted, declined, closed…): re-read them.
    pub fn released(&self, incident: &IncidentId) {
        let _ = self.kicks.send(Kick::Released(incident.clone()));
    }

    /// A turn taken outside the engine (ingest's first offers): the
    /// claimed stewards go into the matcher as claimed, and the engine
    /// re-reads the runners-up off the caller's path.
    pub fn turn_taken(&self, taken: &TakenTurn) {
        for steward in &taken.stewards {
            self.matcher.upsert(steward);
        }
        let ids = runners_up(taken);
        if !ids.is_empty() {
            let _ = self.kicks.send(Kick::Stewards(ids));
        }
    }

    /// A steward changed; keep the matcher current.
    pub fn steward_changed(&self, steward: &Steward) {
        if self.matcher.upsert(steward) {
            let _ = self.kicks.send(Kick::Offerable(vec![steward.id.clone()]));
        }
    }

    /// These stewards' rows changed (on any instance): re-read them.
    pub fn stewards_changed(&self, ids: Vec<StewardId>) {
        if !ids.is_empty() {
            let _ = self.kicks.send(Kick::Stewards(ids));
        }
    }

    /// Changes may have been missed (the change feed reconnected): re-read
    /// every steward and offer whatever waits.
    pub fn resync(&self) {
        let _ = self.kicks.send(Kick::Resync);
    }

    /// Re-reads one steward into the matcher (after a store change that
    /// returned no steward row).
    pub async fn refresh_steward(&self, id: &StewardId) {
        if let Ok(Some(s)) = self.store.steward(id).await {
            self.matcher.upsert(&s);
        }
    }

    pub fn matcher(&self) -> &Arc<Matcher> {
        &self.matcher
    }

    /// Whom to offer a turn to at `now` ([`plan_offers`]).
    pub fn plan(
        &self,
        rules: &RuleBook,
        turn: &DispatchTurn,
        now: DateTime<Utc>,
    ) -> Option<OfferPlan> {
        plan_offers(&self.matcher, rules, turn, now)
    }
}

/// Whom to offer a turn to: the matcher's ranking, as many offers as the
/// priority wants beside those still live, expiring and retried as the
/// site's dispatch settings say, and how each steward offered is reached
/// (the priority's ladder, [`crate::notify::ladder`]). None for an incident without an elder.
/// Runs inside the turn's transaction: the matcher is in memory and
/// answers in microseconds.
pub fn plan_offers(
    matcher: &Matcher,
    rules: &RuleBook,
    turn: &DispatchTurn,
    now: DateTime<Utc>,
) -> Option<OfferPlan> {
    let settings = rules.dispatch();
    let elder = turn.elder.as_ref()?;
    let priority = turn.incident.priority;
    let want = (settings.parallel_offers.get(priority) as usize)
        .max(1)
        .saturating_sub(turn.live_offers);
    let ranking = matcher.rank(
        &Need {
            elder,
            kind: turn.incident.kind,
            escalation_level: turn.incident.escalation_level,
            exclude: &turn.already_offered,
            now,
        },
        settings,
    );
    let timeout = i64::from(settings.offer_timeout_s.get(priority));
    let expires_at = now + Duration::seconds(timeout);
    Some(OfferPlan {
        candidates: ranking.candidates,
        want: want.max(1),
        expires_at,
        notes: ranking.notes,
        retry_at: now + Duration::seconds(i64::from(settings.retry_s)),
        reach: crate::notify::ladder::reach_steps(rules.notify(), priority, now, expires_at),
    })
}

/// The engine task's parts.
pub struct Engine {
    store: Arc<dyn EngineStore>,
    rules: Arc<RuleBook>,
    matcher: Arc<Matcher>,
    clock: Clock,
    /// Called after every commit that wrote stream or outbox rows.
    on_commit: Arc<dyn Fn() + Send + Sync>,
    kicks: mpsc::UnboundedReceiver<Kick>,
    /// `None` when a change feed tells the engine of every steward change.
    rebuild_every: Option<StdDuration>,
    /// Turns are taken only while this instance acts ([`crate::fence`]);
    /// the matcher is kept current all the same.
    fence: Arc<Fence>,
}

impl Engine {
    /// The engine and its handle. `on_commit` nudges the stream hub and
    /// the outbox worker.
    pub fn new(
        store: Arc<dyn EngineStore>,
        rules: Arc<RuleBook>,
        clock: Clock,
        on_commit: Arc<dyn Fn() + Send + Sync>,
        fence: Arc<Fence>,
    ) -> (Self, EngineHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let matcher = Arc::new(Matcher::default());
        let handle = EngineHandle {
            kicks: tx,
            matcher: matcher.clone(),
            store: store.clone(),
        };
        let engine = Self {
            store,
            rules,
            matcher,
            clock,
            on_commit,
            kicks: rx,
            rebuild_every: Some(REBUILD_EVERY),
            fence,
        };
        (engine, handle)
    }

    /// Every steward change, on any instance, reaches the engine through
    /// [`EngineHandle::stewards_changed`] and [`EngineHandle::resync`]:
    /// no periodic rebuild.
    pub fn told_of_changes(mut self) -> Self {
        self.rebuild_every = None;
        self
    }

    /// Loads the matcher from the store.
    pub async fn rebuild(&self) -> Result<(), StoreError> {
        self.matcher.rebuild(self.store.stewards().await?);
        Ok(())
    }

    /// Runs until `stop`: kicks at once, due work every `tick`.
    pub async fn run(mut self, tick: StdDuration, stop: CancellationToken) {
        if let Err(e) = self.rebuild().await {
            tracing::warn!(error = %e, "could not load stewards into the matcher; retrying on the next rebuild");
        }
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rebuild = tokio::time::Instant::now();
        let mut stepped_back = false;
        loop {
            // Due work (expiries, escalations) comes before kicks: a storm
            // of new incidents must not starve the offers already out.
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = ticker.tick() => {
                    if self.rebuild_every.is_some_and(|every| last_rebuild.elapsed() >= every) {
                        last_rebuild = tokio::time::Instant::now();
                        if let Err(e) = self.rebuild().await {
                            tracing::warn!(error = %e, "matcher rebuild failed");
                        }
                    }
                    // While this instance steps back the others do the
                    // due work; it is no pass of ours.
                    if !self.fence.may_act() {
                        stepped_back = true;
                        continue;
                    }
                    // Kicks it let go meanwhile ("a steward came free")
                    // may have had no one else to hear them.
                    if std::mem::take(&mut stepped_back) {
                        self.offer_waiting(Whom::Anyone).await;
                    }
                    let began = self.clock.now();
                    match self.tick().await {
                        Ok(()) => self.clock.pass_done(Worker::Engine, began),
                        Err(e) => {
                            tracing::warn!(error = %e, "dispatch tick failed; retrying next tick");
                        }
                    }
                }
                kick = self.kicks.recv() => match kick {
                    Some(Kick::Incident(id)) => self.dispatch_logged(&id).await,
                    Some(Kick::Released(id)) => self.refresh_stewards_of(&id).await,
                    Some(Kick::Stewards(ids)) => self.reread_and_offer(&ids).await,
                    Some(Kick::Resync) => {
                        match self.rebuild().await {
                            Ok(()) => last_rebuild = tokio::time::Instant::now(),
                            Err(e) => tracing::warn!(error = %e, "could not re-read stewards after missed changes; the next tick's turns re-read before escalating"),
                        }
                        self.offer_waiting(Whom::Anyone).await;
                    }
                    Some(Kick::Offerable(ids)) => self.offer_waiting(Whom::These(&ids)).await,
                    None => return,
                },
            }
        }
    }

    /// Claims due work: expired offers, due escalations, due dispatch turns.
    pub async fn tick(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let rules = &self.rules;
        let expired = self.store.expire_offers(now, rules).await?;
        let escalated = self.store.escalate_due(now, rules).await?;
        if expired.changed.stream || escalated.changed.stream {
            (self.on_commit)();
        }
        // Expiry frees stewards: the matcher sees them as it left them.
        for steward in &expired.changed.stewards {
            self.matcher.upsert(steward);
        }
        for id in self.store.due_dispatches(now, SWEEP_LIMIT).await? {
            self.dispatch_logged(&id).await;
        }
        Ok(())
    }

    /// Incidents waiting for a retry because nobody could be offered are
    /// offered now if `whom` could take them: only those, so an incident
    /// out of a freed steward's reach keeps its retry instead of finding
    /// nobody again early and escalating before its time.
    async fn offer_waiting(&self, whom: Whom<'_>) {
        if !self.fence.may_act() {
            return;
        }
        let now = self.clock.now();
        let waiting = match self.store.waiting_turns(now, SWEEP_LIMIT).await {
            Ok(waiting) => waiting,
            Err(e) => {
                tracing::warn!(error = %e, "could not read waiting incidents; they wait for their retry");
                return;
            }
        };
        for turn in waiting {
            let reachable = plan_offers(&self.matcher, &self.rules, &turn, now)
                .is_some_and(|plan| whom.among(&plan));
            let id = &turn.incident.id;
            if !reachable {
                continue;
            }
            match self.store.bring_turn_forward(id, now).await {
                Ok(true) => self.dispatch_logged(id).await,
                // Another instance, or a kick, took it first.
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(incident = %id, error = %e, "could not bring a waiting incident forward; it waits for its retry")
                }
            }
        }
    }

    async fn refresh_stewards_of(&self, incident: &IncidentId) {
        let Ok(Some(detail)) = self.store.incident(incident).await else {
            return;
        };
        let ids: Vec<StewardId> = detail
            .offers
            .iter()
            .map(|o| &o.steward_id)
            .chain(detail.incident.steward_id.as_ref())
            .cloned()
            .collect();
        self.reread_and_offer(&ids).await;
    }

    /// Re-reads these stewards; offers what waits to those who can now
    /// take it.
    async fn reread_and_offer(&self, ids: &[StewardId]) {
        let offerable = self.reread(ids).await;
        if !offerable.is_empty() {
            self.offer_waiting(Whom::These(&offerable)).await;
        }
    }

    /// Reads these stewards into the matcher; returns those who can take
    /// an offer newly or from somewhere new ([`Matcher::upsert`]). One
    /// that cannot be read stays as it was (a turn that finds nobody
    /// re-reads them all before escalating).
    async fn reread(&self, ids: &[StewardId]) -> Vec<StewardId> {
        let mut offerable = Vec::new();
        for id in ids {
            if let Ok(Some(s)) = self.store.steward(id).await
                && self.matcher.upsert(&s)
            {
                offerable.push(s.id);
            }
        }
        offerable
    }

    async fn dispatch_logged(&self, incident: &IncidentId) {
        if !self.fence.may_act() {
            // Still due: another instance's sweep takes it, or ours once
            // this instance acts again.
            tracing::debug!(%incident, "not taking the turn: this instance steps back");
            return;
        }
        if let Err(e) = self.dispatch(incident).await {
            // The turn stays due (or is retried by the sweep): log and go on.
            tracing::warn!(%incident, error = %e, "dispatch failed; the next tick retries");
        }
    }

    /// Offers the incident if its dispatch turn is due: to the best
    /// candidates, or escalates when there is nobody.
    ///
    /// "Nobody" is the matcher's view, which may lag the store (a change
    /// on another instance not yet heard, a notice lost). So before
    /// escalating, the engine re-reads every steward: if the store has
    /// someone after all, the turn is taken again at once, and only a
    /// second "nobody", on a matcher just read, escalates.
    pub async fn dispatch(&self, incident: &IncidentId) -> Result<(), StoreError> {
        let mut checked_with_store = false;
        loop {
            let now = self.clock.now();
            let plan = |turn: &DispatchTurn| plan_offers(&self.matcher, &self.rules, turn, now);
            let Some(taken) = self.store.take_turn(incident, now, &plan).await? else {
                return Ok(());
            };
            if taken.plan.is_none() {
                tracing::warn!(%incident, "an incident without an elder cannot be dispatched");
                return Ok(());
            }
            for offer in &taken.offers {
                log_offered(incident, offer);
            }
            let nobody = taken.offers.is_empty() && taken.turn.live_offers == 0;
            if nobody && !checked_with_store {
                checked_with_store = true;
                if self.store_has_someone(&taken.turn, now).await?
                    && self.store.bring_turn_forward(incident, now).await?
                {
                    tracing::info!(%incident, "the matcher was behind the store; offering again at once");
                    continue;
                }
            }
            if nobody {
                let priority = taken.turn.incident.priority;
                tracing::warn!(%incident, %priority, "nobody available; escalating");
                // It changes no steward; `on_commit` below tells the stream.
                let _escalated = self
                    .store
                    .escalate(incident, "nobody available", now, &self.rules)
                    .await?;
            }
            (self.on_commit)();
            // Claims changed stewards' status: the claimed ones as claimed,
            // the runners-up as they are now.
            for steward in &taken.stewards {
                self.matcher.upsert(steward);
            }
            self.reread(&runners_up(&taken)).await;
            return Ok(());
        }
    }

    /// Re-reads every steward into the matcher and says whether it now
    /// finds anyone for the turn.
    async fn store_has_someone(
        &self,
        turn: &DispatchTurn,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.rebuild().await?;
        Ok(plan_offers(&self.matcher, &self.rules, turn, now)
            .is_some_and(|plan| Whom::Anyone.among(&plan)))
    }
}

/// The candidates a turn's claims may have reached besides those it
/// claimed (another incident may have claimed them first): the first
/// `offers + 2` of the ranking, to re-read after the turn.
fn runners_up(taken: &TakenTurn) -> Vec<StewardId> {
    let Some(plan) = &taken.plan else {
        return Vec::new();
    };
    plan.candidates
        .iter()
        .take(taken.offers.len() + 2)
        .map(|c| &c.steward_id)
        .filter(|id| !taken.stewards.iter().any(|s| s.id == **id))
        .cloned()
        .collect()
}

/// One line per offer made, by whoever made it (the engine, or ingest for
/// an incident's first offers).
pub fn log_offered(incident: &IncidentId, offer: &Offer) {
    tracing::info!(
        %incident,
        steward = %offer.steward_id,
        distance_m = offer.distance_m.unwrap_or_default(),
        expires_at = %offer.expires_at,
        "offered"
    );
}
