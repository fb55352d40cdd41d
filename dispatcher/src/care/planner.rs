//! The care planner: every `care.tick_s` (and every tick of a manual
//! clock) it plans the next visit of every elder without one, keeps a
//! check-in deadline for every elder on check-in, and raises each visit
//! gone overdue. Each step is a query and idempotent writes, so a pass
//! interrupted anywhere is finished by the next one, on any instance.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Worker};
use crate::dispatch::{Changed, EngineHandle, Lifecycle, after_commit};
use crate::domain::care::{self, Visit, VisitStatus};
use crate::domain::{Actor, IncidentKind};
use crate::metrics::Metrics;
use crate::notify::hub::Hub;
use crate::rules::{Effect, RuleBook};
use crate::settings::Settings;
use crate::store::{EventAction, Store, StoreResult};

/// Elders planned per query; overdue visits raised per pass.
const BATCH: usize = 500;
/// A long planning pass refreshes the visits' statistics after this many
/// batches.
const REFRESH_EVERY: usize = 10;

/// What the planner needs.
#[derive(Clone)]
pub struct CareDeps {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub rules: Arc<RuleBook>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// Incidents an overdue visit opens go to dispatch at once.
    pub engine: EngineHandle,
    pub hub: Arc<Hub>,
    /// The planner acts only while this instance does.
    pub fence: Arc<crate::fence::Fence>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub visits_planned: usize,
    pub checkins_watched: usize,
    pub overdue_raised: usize,
}

/// Runs a pass every tick until `stop`. Under a manual clock it ticks as
/// often as the timers do, so a test that moves the clock sees the plan
/// follow at once.
pub async fn care_loop(deps: CareDeps, stop: CancellationToken) {
    let every = if deps.clock.is_manual() {
        Duration::from_millis(deps.settings.ingest.tick_ms)
    } else {
        Duration::from_secs(deps.settings.care.tick_s)
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !deps.fence.may_act() {
            continue;
        }
        let began = deps.clock.now();
        match pass(&deps, began).await {
            Ok(_) => deps.clock.pass_done(Worker::Care, began),
            Err(e) => tracing::warn!(error = %e, "care planner pass failed; retrying next tick"),
        }
    }
}

/// One pass at `now`. Public so tests and benchmarks can drive it.
pub async fn pass(deps: &CareDeps, now: DateTime<Utc>) -> StoreResult<Pass> {
    let checkins_watched = watch_checkins(deps, now).await?;
    if !deps.settings.care.plan_visits {
        return Ok(Pass {
            checkins_watched,
            ..Pass::default()
        });
    }
    Ok(Pass {
        checkins_watched,
        visits_planned: plan_visits(deps, now).await?,
        overdue_raised: raise_overdue(deps, now).await?,
    })
}

/// Every elder on check-in has a deadline at their `by` (today's if it is
/// still ahead, else tomorrow's); a changed `by` moves it on its day; an
/// elder taken off check-in loses theirs. A deadline that fired is made
/// again here for the next day.
async fn watch_checkins(deps: &CareDeps, now: DateTime<Utc>) -> StoreResult<usize> {
    let clock = deps.rules.site_clock();
    let mut wanted = std::collections::HashMap::new();
    for watch in deps.store.checkin_watches().await? {
        let Some(checkin) = watch.plan.checkin else {
            continue;
        };
        let want = match watch.due_at {
            None => checkin.first_deadline(&clock, now),
            Some(due) => checkin.moved(&clock, due),
        };
        if watch.due_at != Some(want) {
            wanted.insert(watch.elder_id, want);
        }
    }
    // The elders whose deadline is new or moved, read together: a new
    // site's first pass sets thousands.
    let ids: Vec<_> = wanted.keys().cloned().collect();
    let mut effects = Vec::with_capacity(ids.len());
    for elder in deps.store.elders_by_id(&ids).await? {
        if let Some(want) = wanted.get(&elder.id) {
            effects.push(deps.rules.checkin_deadline(&elder, *want));
        }
    }
    for key in deps.store.orphan_checkin_deadlines().await? {
        effects.push(Effect::Unschedule { key });
    }
    if effects.is_empty() {
        return Ok(0);
    }
    let done = deps
        .store
        .apply(&effects, &Actor::System, now, &deps.rules)
        .await?;
    after_commit(&deps.hub, &deps.engine, Changed::committed(done.changed));
    Ok(effects.len())
}

/// Plans the next visit of every elder without one: due `every` days
/// after their last (by risk or their plan), in the site's visiting hours,
/// with the steward paired with them or else their grid's.
async fn plan_visits(deps: &CareDeps, now: DateTime<Utc>) -> StoreResult<usize> {
    let clock = deps.rules.site_clock();
    let today = clock.date(now);
    let s = &deps.settings.care;
    let cadence = s.cadence();
    let recent_since = now - chrono::Duration::days(i64::from(s.recent_within_days));
    let mut planned = 0;
    // The elders to plan, found in one read, then planned a batch at a
    // time (a new site of 100,000 elders plans them all in one pass).
    let ids = deps.store.elders_needing_plan().await?;
    for (n, chunk) in ids.chunks(BATCH).enumerate() {
        let batch = deps.store.elders_to_plan(recent_since, chunk).await?;
        let visits: Vec<Visit> = batch
            .iter()
            .filter_map(|p| {
                let every =
                    care::visit_every_days(&p.plan, p.lives_alone, p.recent_incident, &cadence);
                if every == 0 {
                    return None;
                }
                let last = p.last_done_at.map(|t| clock.date(t));
                let mut due_on = care::next_due_on(&p.elder_id, last, every, today);
                // Today's hours already over: tomorrow, not overdue at birth.
                if clock.at(due_on, s.visit_until) <= now {
                    due_on += chrono::Duration::days(1);
                }
                Some(Visit {
                    id: format!("v-{}", uuid::Uuid::new_v4().simple()),
                    elder_id: p.elder_id.clone(),
                    steward_id: p.steward_id.clone(),
                    due_on,
                    window_start: clock.at(due_on, s.visit_from),
                    window_end: clock.at(due_on, s.visit_until),
                    status: VisitStatus::Planned,
                    started_at: None,
                    started_how: None,
                    ended_at: None,
                    done_by: None,
                    note: None,
                    overdue_at: None,
                    incident_id: None,
                })
            })
            .collect();
        planned += deps.store.insert_visits(&visits).await?;
        // Every 10 batches of a long pass: the lookups of the next batches
        // stay on the visits' indexes (measured: g. in docs/BENCHMARKS.md).
        if (n + 1) % REFRESH_EVERY == 0
            && let Err(e) = deps.store.refresh_visit_statistics().await
        {
            // Only slower without it: the pass goes on.
            tracing::warn!(error = %e, "refreshing the visits' statistics failed; planning goes on");
        }
    }
    if planned > 0 {
        tracing::info!(planned, "visits planned");
    }
    Ok(planned)
}

/// Each planned visit whose window passed raises one routine incident,
/// dispatched like any other (the grid's steward is preferred, then the
/// ladder to supervisors).
async fn raise_overdue(deps: &CareDeps, now: DateTime<Utc>) -> StoreResult<usize> {
    let mut raised = 0;
    for visit in deps.store.overdue_visits(now, BATCH as i64).await? {
        let Some(elder) = deps.store.elder(&visit.elder_id).await? else {
            continue;
        };
        let raise = deps.rules.raise_about(
            &elder,
            None,
            IncidentKind::VisitOverdue,
            format!(
                "visit due {} not begun by {}",
                visit.due_on, deps.settings.care.visit_until
            ),
        );
        let done = deps
            .store
            .raise_overdue_visit(&visit.id, &raise, now, &deps.rules)
            .await?;
        let mut changed = Changed::committed(done.changed);
        if let Some(applied) = done.value {
            raised += 1;
            if let (EventAction::Opened, Some(i)) = (applied.action, &applied.incident) {
                deps.metrics.incident_opened(i.kind, i.priority);
                tracing::info!(incident = %i.id, visit = %visit.id, "visit overdue: incident opened");
                changed.to_offer.push(i.id.clone());
            }
        }
        after_commit(&deps.hub, &deps.engine, changed);
    }
    Ok(raised)
}
