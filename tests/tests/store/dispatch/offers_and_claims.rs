//! Dispatch: offers and claims.

use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use dispatcher::domain::{Candidate, DispatchTurn, FirstOffers};
use dispatcher::domain::{
    DeviceKind, IncidentKind, IncidentState, Outcome, Priority, StewardStatus,
};
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::store::dispatch::{Actor, DISPATCH_LEASE};
use dispatcher::store::{
    ConflictCode, EventAction, EventFilter, IncidentFilter, IncomingEvent, Store, StoreError,
};
use protocol::EventType;

use eldercare_tests::store_harness::Harness;

use super::fixtures::*;
use crate::fixtures::*;

pub(crate) async fn an_opened_incident_is_due_for_dispatch(h: Harness) {
    let s = &*h.store;
    let r = rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let t0 = day();
    let got = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    let inc = got[0].incident.clone().unwrap();
    assert_eq!(inc.status, IncidentState::Dispatching);
    assert_eq!(
        s.due_dispatches(t0, 10).await.unwrap(),
        vec![inc.id.clone()]
    );
    assert!(
        claim(s, &inc.id, t0 - Duration::seconds(1)).await.is_none(),
        "not due before it was opened"
    );
    // A join changes nothing of the dispatch clock.
    s.ingest(&[press("btn-1", "p-2", t0 + Duration::seconds(1))], &r)
        .await
        .unwrap();
    let turn = claim(s, &inc.id, t0).await.expect("due");
    assert_eq!(turn.incident.id, inc.id);
    assert_eq!(turn.elder.as_ref().map(|e| &e.id), Some(&elder_id("e-1")));
    assert_eq!((turn.already_offered.len(), turn.live_offers), (0, 0));
    // The turn is ours alone.
    assert!(claim(s, &inc.id, t0).await.is_none());
    assert!(s.due_dispatches(t0, 10).await.unwrap().is_empty());

    // Technical incidents go to the board, not to stewards.
    let d = device("btn-1", Some("e-1"), DeviceKind::CallButton);
    let offline = s
        .apply(
            &r.device_offline(&d, "silent"),
            &dispatcher::domain::Actor::System,
            t0,
            &r,
        )
        .await
        .unwrap();
    let tech = offline[0].incident.clone().unwrap();
    assert!(claim(s, &tech.id, t0).await.is_none());
    // Nor is an incident without an elder dispatched.
    let orphan = s
        .apply(
            &[Effect::Raise {
                key: "device:x:tamper".into(),
                elder_id: None,
                device_id: Some(device_id("x")),
                kind: IncidentKind::Tamper,
                priority: Priority::Urgent,
                summary: "tamper".into(),
            }],
            &dispatcher::domain::Actor::System,
            t0,
            &r,
        )
        .await
        .unwrap();
    let orphan = orphan[0].incident.clone().unwrap();
    assert!(claim(s, &orphan.id, t0).await.is_none());
    // Only the elder's call escalates unless acknowledged.
    assert_eq!(
        s.escalate_due(t0 + Duration::days(1), &r).await.unwrap(),
        vec![inc.id]
    );
}

pub(crate) async fn a_press_is_offered_in_the_transaction_that_opens_it(h: Harness) {
    let s = &*h.store;
    let r = rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    home(s, "e-2", "pad-2", DeviceKind::VitalsPad).await;
    on_duty(s, "s-1").await;
    on_duty(s, "s-2").await;
    let t0 = day();
    let (_, head) = stream_since(s, 0).await;
    let seen = std::sync::Mutex::new(Vec::new());
    let planner = |turn: &DispatchTurn| {
        seen.lock().unwrap().push(turn.clone());
        Some(plan(
            candidates(&["s-2", "s-1"]),
            1,
            t0 + Duration::seconds(30),
        ))
    };
    let first = FirstOffers {
        planner: &planner,
        now: t0,
    };
    let got = s
        .ingest_offering(
            &[press("btn-1", "p-1", t0), vitals("pad-2", "v-1", 72.0, t0)],
            &r,
            Some(&first),
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&got.applied),
        vec![EventAction::Opened, EventAction::Recorded]
    );
    let inc = got.applied[0].incident.clone().unwrap();
    // The planner saw the turn the engine would have: nobody offered yet,
    // the elder as stored.
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 1, "one incident opened, one plan");
    assert_eq!(seen[0].incident.id, inc.id);
    assert_eq!(seen[0].elder, Some(elder("e-1")));
    assert_eq!((seen[0].already_offered.len(), seen[0].live_offers), (0, 0));
    // Offered to the first candidate, who is claimed.
    let [taken] = &got.offered[..] else {
        panic!("one incident offered: {:?}", got.offered);
    };
    assert_eq!(taken.turn.incident.id, inc.id);
    let offered: Vec<_> = taken.offers.iter().map(|o| o.steward_id.clone()).collect();
    assert_eq!(offered, vec![steward_id("s-2")]);
    assert_eq!(taken.stewards[0].status, StewardStatus::Offered);
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Offered);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    // Its turn is spent: nothing is left for the engine.
    assert!(s.due_dispatches(t0, 10).await.unwrap().is_empty());
    assert!(claim(s, &inc.id, t0).await.is_none());
    // Opened before offered, on the stream and on the timeline; the
    // incident goes out once, as the transaction leaves it.
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("supervisors", "incident"),
            ev("steward:s-2", "offer"),
            ev("supervisors", "steward"),
        ]
    );
    let lines = timeline(s, &inc.id).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("offered"), "{lines:?}");
}

/// Ingests a batch, its opened incidents offered to `s-1` for 30 s.
async fn ingest_offering_s1(
    s: &dyn Store,
    batch: &[IncomingEvent],
    t0: DateTime<Utc>,
    r: &RuleBook,
) -> Result<dispatcher::store::Ingested, StoreError> {
    let planner =
        |_: &DispatchTurn| Some(plan(candidates(&["s-1"]), 1, t0 + Duration::seconds(30)));
    let first = FirstOffers {
        planner: &planner,
        now: t0,
    };
    s.ingest_offering(batch, r, Some(&first)).await
}

pub(crate) async fn a_press_nobody_could_take_stays_due_for_the_engine(h: Harness) {
    let s = &*h.store;
    let r = rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    s.set_steward_duty(&steward_id("s-1"), false, chrono::Utc::now())
        .await
        .unwrap();
    let t0 = day();
    // The matcher ranked a steward who has just gone off duty.
    let got = ingest_offering_s1(s, &[press("btn-1", "p-1", t0)], t0, &r)
        .await
        .unwrap();
    assert!(got.offered.is_empty());
    let inc = got.applied[0].incident.clone().unwrap();
    // Untouched: due now, with no retry line; the engine's turn decides
    // (and escalates when nobody is there).
    assert_eq!(
        s.due_dispatches(t0, 10).await.unwrap(),
        vec![inc.id.clone()]
    );
    assert_eq!(timeline(s, &inc.id).await.len(), 1);
    assert!(claim(s, &inc.id, t0).await.is_some());
}

pub(crate) async fn a_press_cancelled_in_its_own_batch_is_not_offered(h: Harness) {
    let s = &*h.store;
    let r = rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    let t0 = day();
    let batch = [
        press("btn-1", "p-1", t0),
        event("btn-1", "c-1", EventType::CallCancelled, t0),
    ];
    let got = ingest_offering_s1(s, &batch, t0, &r).await.unwrap();
    assert_eq!(
        actions(&got.applied),
        vec![EventAction::Opened, EventAction::Cancelled]
    );
    assert!(got.offered.is_empty());
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    assert!(s.incidents(&open_only()).await.unwrap().is_empty());
}

pub(crate) async fn first_offers_that_fail_fail_the_batch_and_change_nothing(h: Harness) {
    let s = &*h.store;
    let r = rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    h.exec("UPDATE stewards SET skills = 'not json' WHERE id = 's-1'")
        .await;
    let t0 = day();
    let batch = [press("btn-1", "p-1", t0)];
    assert!(matches!(
        ingest_offering_s1(s, &batch, t0, &r).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(s.events(&EventFilter::default()).await.unwrap().is_empty());
    assert!(s.incidents(&open_only()).await.unwrap().is_empty());
    // Stored without its offers (what ingest does next), it is due for
    // the engine.
    let got = s.ingest(&batch, &r).await.unwrap();
    assert_eq!(actions(&got), vec![EventAction::Opened]);
    assert_eq!(s.due_dispatches(t0, 10).await.unwrap().len(), 1);
}

pub(crate) async fn a_turn_that_cannot_be_taken_waits_out_the_lease(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(s, "s-1").await;
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    h.exec("UPDATE elders SET limits = 'not json' WHERE id = 'e-1'")
        .await;
    let offer_s1 =
        |_: &DispatchTurn| Some(plan(candidates(&["s-1"]), 1, t0 + Duration::seconds(30)));
    assert!(matches!(
        s.take_turn(&inc.id, t0, &offer_s1).await,
        Err(StoreError::Corrupt(_))
    ));
    // Nothing of the failed turn stays but its lease: no offer, the
    // steward free, and no retry on every tick.
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    assert!(
        s.due_dispatches(t0 + Duration::seconds(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(claim(s, &inc.id, t0 + Duration::seconds(1)).await.is_none());
    let after = t0 + DISPATCH_LEASE;
    assert_eq!(
        s.due_dispatches(after, 10).await.unwrap(),
        vec![inc.id.clone()]
    );
    // Mended, it is dispatched.
    h.exec("UPDATE elders SET limits = '{}' WHERE id = 'e-1'")
        .await;
    let made = take(
        s,
        &inc.id,
        after,
        plan(candidates(&["s-1"]), 1, after + Duration::seconds(30)),
    )
    .await
    .expect("due after the lease")
    .offers;
    assert_eq!(made.len(), 1);
}

pub(crate) async fn two_incidents_racing_for_one_steward_never_share_them(h: Harness) {
    let s = h.store.clone();
    let r = Arc::new(rules());
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(&*s, "s-1").await;
    on_duty(&*s, "s-2").await;
    let t0 = day();
    let a = open(&*s, "elder:e-1:a", Priority::Urgent, None, t0, &r).await;
    let b = open(&*s, "elder:e-1:b", Priority::Urgent, None, t0, &r).await;
    let retry = t0 + Duration::seconds(30);
    let race: Vec<_> = [a.id.clone(), b.id.clone()]
        .into_iter()
        .map(|id| {
            let s = s.clone();
            tokio::spawn(async move {
                let made = take(&*s, &id, t0, plan(candidates(&["s-1"]), 1, retry))
                    .await
                    .expect("due")
                    .offers;
                (id, made)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in race {
        results.push(task.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter(|(_, m)| !m.is_empty()).collect();
    assert_eq!(winners.len(), 1, "exactly one incident claims s-1");
    let (loser, _) = results.iter().find(|(_, m)| m.is_empty()).unwrap().clone();
    assert_eq!(status_of(&*s, "s-1").await, StewardStatus::Offered);
    assert_eq!(s.live_offers_of(&steward_id("s-1")).await.unwrap().len(), 1);
    // The loser notes why, and tries again at the retry time.
    let detail = s.incident(&loser).await.unwrap().unwrap();
    let note = &detail.candidates[0];
    assert_eq!(
        (note.steward_id.as_str(), note.verdict.as_str()),
        ("s-1", "lost")
    );
    assert!(detail.offers.is_empty());
    assert!(
        detail
            .timeline
            .iter()
            .any(|l| l.what == "nobody could be offered; trying again in 30 s")
    );
    assert!(s.due_dispatches(t0, 10).await.unwrap().is_empty());
    assert_eq!(
        s.due_dispatches(retry, 10).await.unwrap(),
        vec![loser.clone()]
    );
    // The next time it gets the next candidate.
    let next = offer(&*s, &loser, &["s-1", "s-2"], 1, retry).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].steward_id, steward_id("s-2"));
    let notes = s.incident(&loser).await.unwrap().unwrap().candidates;
    let verdicts: Vec<_> = notes
        .iter()
        .map(|n| (n.steward_id.as_str(), n.verdict.as_str()))
        .collect();
    assert_eq!(verdicts, vec![("s-1", "lost"), ("s-2", "offered")]);

    // The unique index is the backstop: a steward marked available who
    // somehow holds a live offer is passed over, not an error.
    on_duty(&*s, "s-3").await;
    h.exec(
        "INSERT INTO offers (id, incident_id, steward_id, offered_at, expires_at)
         SELECT 'off-stray', id, 's-3', created_at, created_at FROM incidents
         WHERE dedup_key = 'elder:e-1:a'",
    )
    .await;
    let c = open(&*s, "elder:e-1:c", Priority::Urgent, None, t0, &r).await;
    let none = offer(&*s, &c.id, &["s-3"], 1, t0).await;
    assert!(none.is_empty());
    assert_eq!(status_of(&*s, "s-3").await, StewardStatus::Available);
    let notes = s.incident(&c.id).await.unwrap().unwrap().candidates;
    assert_eq!(notes[0].verdict, "lost");
}

pub(crate) async fn two_hundred_incidents_fifty_stewards_never_double_booked(h: Harness) {
    const INCIDENTS: usize = 200;
    const STEWARDS: usize = 50;
    let s = h.store.clone();
    let r = Arc::new(rules());
    s.insert_elder(&elder("e-1")).await.unwrap();
    for n in 0..STEWARDS {
        on_duty(&*s, &format!("s-{n:02}")).await;
    }
    let t0 = day();
    let ring = |n: usize| -> Vec<Candidate> {
        (0..STEWARDS)
            .map(|k| Candidate {
                steward_id: steward_id(&format!("s-{:02}", (n * 7 + k) % STEWARDS)),
                distance_m: 100.0 + k as f64,
            })
            .collect()
    };
    let want = |p: Priority| if p == Priority::Critical { 2 } else { 1 };

    // Round 1: every incident is raised and dispatched at once.
    let tasks: Vec<_> = (0..INCIDENTS)
        .map(|n| {
            let (s, r, cands) = (s.clone(), r.clone(), ring(n));
            tokio::spawn(async move {
                let priority = if n % 4 == 0 {
                    Priority::Critical
                } else {
                    Priority::Urgent
                };
                let at = t0 + Duration::milliseconds(n as i64);
                let key = format!("elder:e-1:n{n}");
                let got = s
                    .apply(
                        &[raise_as(&key, "e-1", priority, None)],
                        &dispatcher::domain::Actor::System,
                        at,
                        &r,
                    )
                    .await
                    .expect("raise");
                let inc = got[0].incident.clone().unwrap();
                let expires = at + Duration::seconds(30);
                let made = take(&*s, &inc.id, at, plan(cands, want(priority), expires))
                    .await
                    .expect("due at once")
                    .offers;
                (inc, made)
            })
        })
        .collect();
    let mut dispatched = Vec::new();
    for task in tasks {
        dispatched.push(task.await.unwrap());
    }
    let offers: usize = dispatched.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        offers, STEWARDS,
        "every steward is offered exactly one incident"
    );
    assert_no_double_booking(&h, "after dispatch").await;

    // Round 2: answers race each other and the expiry timer.
    let t1 = t0 + Duration::seconds(10);
    let mut tasks = Vec::new();
    for (n, (inc, made)) in dispatched.iter().enumerate() {
        for o in made {
            let (s, r, id, st) = (s.clone(), r.clone(), inc.id.clone(), o.steward_id.clone());
            tasks.push(tokio::spawn(async move {
                let got = if n % 3 == 2 {
                    s.decline(&id, &st, t1, &r).await
                } else {
                    s.accept(&id, &st, t1, &r).await
                };
                match got {
                    Ok(_) => {}
                    Err(StoreError::Conflict {
                        code: ConflictCode::AlreadyTaken | ConflictCode::OfferExpired,
                        ..
                    }) => {}
                    Err(e) => panic!("answer failed: {e:?}"),
                }
            }));
        }
    }
    for _ in 0..2 {
        let (s, r) = (s.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let _ = s
                .expire_offers(t0 + Duration::seconds(31), &r)
                .await
                .unwrap();
            let _ = s
                .escalate_due(t0 + Duration::seconds(31), &r)
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_no_double_booking(&h, "after answers").await;

    // Round 3: whatever is due is dispatched again, concurrently.
    let t2 = t0 + Duration::seconds(60);
    let due = s.due_dispatches(t2, 1000).await.unwrap();
    assert!(!due.is_empty());
    let tasks: Vec<_> = due
        .into_iter()
        .enumerate()
        .map(|(n, id)| {
            let (s, cands) = (s.clone(), ring(n));
            tokio::spawn(async move {
                let expires = t2 + Duration::seconds(30);
                let planner = |turn: &DispatchTurn| {
                    Some(plan(cands.clone(), want(turn.incident.priority), expires))
                };
                s.take_turn(&id, t2, &planner).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_no_double_booking(&h, "after re-dispatch").await;

    // Round 4: every assigned incident is resolved at once; its steward
    // is free again.
    let open_now = s
        .incidents(&IncidentFilter {
            status: vec![IncidentState::Acknowledged],
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    // (Possibly none, if the expiry timer beat every accept.)
    let tasks: Vec<_> = open_now
        .into_iter()
        .map(|i| {
            let (s, r) = (s.clone(), r.clone());
            tokio::spawn(async move {
                let who = Actor::Steward(i.steward_id.clone().unwrap());
                let _ = s
                    .resolve(&i.id, &who, Outcome::Assisted, "", t2, &r)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_no_double_booking(&h, "after resolves").await;
    assert_eq!(
        h.count("SELECT COUNT(*) FROM stewards WHERE status = 'busy'")
            .await,
        0
    );
}
