//! Deadlines: a bed exit at night is due unless the elder returns; a
//! rebound device speaks for its new elder; a claimed deadline waits for
//! its lease.

use chrono::{DateTime, Duration, Utc};
use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;

use dispatcher::domain::{DeviceKind, IncidentKind, Priority};
use dispatcher::rules::Effect;
use dispatcher::store::{EventAction, IncidentFilter, Store};
use protocol::EventType;

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

/// A fall-risk elder with a bed sensor.
async fn fall_risk_home(s: &dyn Store) {
    let mut e = elder("e-1");
    e.risks.fall = true;
    s.insert_elder(&e).await.unwrap();
    s.insert_device(&device("bed-1", Some("e-1"), DeviceKind::BedSensor))
        .await
        .unwrap();
}

pub(crate) async fn bed_exit_at_night_without_return_raises(h: Harness) {
    let s = &*h.store;
    fall_risk_home(s).await;
    let r = rules();
    let t0 = night();
    let got = s
        .ingest(&[event("bed-1", "x-1", EventType::BedExit, t0)], &r)
        .await
        .unwrap();
    assert_eq!(
        (got[0].action, &got[0].incident),
        (EventAction::Scheduled, &None)
    );
    let due = t0 + Duration::minutes(20);
    let pending = s.deadlines().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].key.as_str(), pending[0].due_at),
        ("bed-return:e-1", due)
    );
    assert!(matches!(
        pending[0].effects.as_slice(),
        [Effect::Raise {
            kind: IncidentKind::BedNoReturn,
            ..
        }]
    ));

    let lease = Duration::seconds(30);
    assert!(
        s.claim_due(due - Duration::seconds(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let fire_at = due + Duration::seconds(1);
    let claimed = s.claim_due(fire_at, lease, 10).await.unwrap();
    let unclaimed: Vec<_> = claimed
        .iter()
        .map(|d| dispatcher::store::Deadline {
            claimed_until: None,
            ..d.clone()
        })
        .collect();
    assert_eq!(unclaimed, pending);
    assert!(claimed[0].claimed_until.is_some());

    let fired = s
        .fire_deadline(&claimed[0], fire_at, &rules())
        .await
        .unwrap();
    assert_eq!(actions(&fired), vec![EventAction::Opened]);
    let inc = fired[0].incident.clone().unwrap();
    assert_eq!(
        (inc.kind, inc.priority, inc.created_at),
        (IncidentKind::BedNoReturn, Priority::Urgent, fire_at)
    );
    assert!(s.deadlines().await.unwrap().is_empty());
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(detail.timeline.len(), 1);
    assert_eq!(detail.timeline[0].actor, "system");
    assert!(
        detail.timeline[0]
            .what
            .starts_with("opened: out of bed at night")
    );

    // Firing the same claim twice (a retry, a second instance) does
    // nothing the second time.
    assert!(
        s.fire_deadline(&claimed[0], fire_at, &rules())
            .await
            .unwrap()
            .is_empty()
    );
    let open = s.incidents(&open_only()).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].event_count, 1);
}

pub(crate) async fn bed_return_before_due_unschedules(h: Harness) {
    let s = &*h.store;
    fall_risk_home(s).await;
    // Not fall-risk: a bed exit at night means nothing.
    home(s, "e-2", "bed-2", DeviceKind::BedSensor).await;
    let r = rules();
    let t0 = night();
    let got = s
        .ingest(
            &[
                event("bed-1", "x-1", EventType::BedExit, t0),
                event("bed-2", "x-1", EventType::BedExit, t0),
            ],
            &r,
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&got),
        vec![EventAction::Scheduled, EventAction::Recorded]
    );
    let claimed_early = s.deadlines().await.unwrap();
    assert_eq!(claimed_early.len(), 1);

    let back = s
        .ingest(
            &[event(
                "bed-1",
                "r-1",
                EventType::BedReturn,
                t0 + Duration::minutes(5),
            )],
            &r,
        )
        .await
        .unwrap();
    assert_eq!(back[0].action, EventAction::Recorded);
    assert!(s.deadlines().await.unwrap().is_empty());
    let late = t0 + Duration::hours(1);
    assert!(
        s.claim_due(late, Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A deadline held from before the return is not fired either.
    assert!(
        s.fire_deadline(&claimed_early[0], late, &rules())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .is_empty()
    );

    // By day the same bed exit schedules nothing.
    let by_day = s
        .ingest(&[event("bed-1", "x-2", EventType::BedExit, day())], &r)
        .await
        .unwrap();
    assert_eq!(by_day[0].action, EventAction::Recorded);
    assert!(s.deadlines().await.unwrap().is_empty());
}

/// Deadlines are written once per batch: only the last word on a key
/// counts, in arrival order.
pub(crate) async fn an_exit_and_its_return_in_one_batch_leave_no_deadline(h: Harness) {
    let s = &*h.store;
    fall_risk_home(s).await;
    let r = rules();
    let t0 = night();
    let bed = |id: &str, kind: EventType, minute: i64| {
        event("bed-1", id, kind, t0 + Duration::minutes(minute))
    };
    let (exit, back) = (EventType::BedExit, EventType::BedReturn);
    let got = s
        .ingest(
            &[bed("x-1", exit.clone(), 0), bed("r-1", back.clone(), 1)],
            &r,
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&got),
        vec![EventAction::Scheduled, EventAction::Recorded]
    );
    assert!(s.deadlines().await.unwrap().is_empty(), "back in bed");

    // Out again after the return, in one batch: the later exit stands,
    // due from its own time.
    let again = [
        bed("x-2", exit.clone(), 2),
        bed("r-2", back, 3),
        bed("x-3", exit, 4),
    ];
    let got = s.ingest(&again, &r).await.unwrap();
    assert_eq!(
        actions(&got),
        vec![
            EventAction::Scheduled,
            EventAction::Recorded,
            EventAction::Scheduled
        ]
    );
    let due = s.deadlines().await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].due_at, t0 + Duration::minutes(4 + 20));
}

/// Ingest keeps the devices and elders it has read; a change to either,
/// by this store or by another instance on the same database, is seen by
/// the next batch.
pub(crate) async fn a_rebound_device_speaks_for_its_new_elder(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    s.insert_elder(&elder("e-2")).await.unwrap();
    assert!(s.warm_registry().await.unwrap() >= 1);
    let r = rules();
    let t0 = day();
    let elder_of = |applied: &[dispatcher::store::Applied]| {
        applied[0]
            .incident
            .as_ref()
            .and_then(|i| i.elder_id.clone())
            .map(|e| e.to_string())
    };
    let got = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    assert_eq!(elder_of(&got).as_deref(), Some("e-1"));

    // Another instance moves the button to e-2's home.
    let other = dispatcher::store::connect(&h.url).await.expect("connect");
    other
        .update_device(&device("btn-1", Some("e-2"), DeviceKind::CallButton))
        .await
        .unwrap();
    let got = s
        .ingest(&[press("btn-1", "p-2", t0 + Duration::seconds(1))], &r)
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
    assert_eq!(elder_of(&got).as_deref(), Some("e-2"), "the new home");

    // An elder's change is seen too: e-2 now wanders, and a door at night
    // is an incident only for an elder who wanders.
    s.insert_device(&device("door-2", Some("e-2"), DeviceKind::Door))
        .await
        .unwrap();
    let door = |id: &str, at| {
        let mut e = event("door-2", id, EventType::DoorOpen, at);
        e.message = e.message.with_data("door", "front");
        e
    };
    let got = s.ingest(&[door("d-1", night())], &r).await.unwrap();
    assert_eq!(got[0].action, EventAction::Recorded);
    let mut wanders = elder("e-2");
    wanders.risks.wandering = true;
    other.update_elder(&wanders).await.unwrap();
    let got = s
        .ingest(&[door("d-2", night() + Duration::minutes(1))], &r)
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);

    // Removed: unknown again, not the copy's old binding.
    other.delete_device(&device_id("btn-1")).await.unwrap();
    let got = s
        .ingest(&[press("btn-1", "p-3", t0 + Duration::seconds(2))], &r)
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::UnknownDevice);
}

pub(crate) async fn a_claimed_deadline_waits_for_its_lease(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    let schedule = |key: &str, due: DateTime<Utc>| Effect::Schedule {
        key: key.into(),
        due_at: due,
        effects: vec![raise("elder:e-1:call", "e-1")],
    };
    let got = s
        .apply(
            &[
                schedule("k-2", t0 + Duration::seconds(2)),
                schedule("k-1", t0),
            ],
            &dispatcher::domain::Actor::System,
            t0,
            &rules(),
        )
        .await
        .unwrap();
    assert_eq!(actions(&got), vec![EventAction::Scheduled; 2]);

    let lease = Duration::seconds(60);
    let now = t0 + Duration::seconds(5);
    let first = s.claim_due(now, lease, 10).await.unwrap();
    let keys: Vec<_> = first.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, vec!["k-1", "k-2"], "oldest first");
    assert!(
        s.claim_due(now + Duration::seconds(30), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The claimer died: after the lease both come due again, `limit` at a time.
    let later = now + Duration::seconds(61);
    let again = s.claim_due(later, lease, 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].key, "k-1");
    let k2 = s.claim_due(later, lease, 1).await.unwrap();
    assert_eq!(k2[0].key, "k-2");
    assert!(s.claim_due(later, lease, 0).await.unwrap().is_empty());
    // It was not dead but stalled past its lease (a pause, a suspended
    // VM): its old claim fires nothing now another holds the deadline.
    assert!(
        s.fire_deadline(&first[1], later, &rules())
            .await
            .unwrap()
            .is_empty(),
        "a lost claim fires nothing"
    );
    assert_eq!(
        s.deadlines().await.unwrap().len(),
        2,
        "and takes nothing out"
    );

    // Scheduling a key again moves it and releases its claim.
    let _ = s
        .apply(
            &[schedule("k-1", later + Duration::minutes(1))],
            &dispatcher::domain::Actor::System,
            later,
            &rules(),
        )
        .await
        .unwrap();
    assert!(s.claim_due(later, lease, 10).await.unwrap().is_empty());
    let moved = s
        .claim_due(later + Duration::minutes(1), lease, 10)
        .await
        .unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].due_at, later + Duration::minutes(1));
    // The old claim of k-1 no longer fires anything.
    assert!(
        s.fire_deadline(&again[0], later, &rules())
            .await
            .unwrap()
            .is_empty()
    );
    let unscheduled = s
        .apply(
            &[Effect::Unschedule { key: "k-1".into() }],
            &dispatcher::domain::Actor::System,
            later,
            &rules(),
        )
        .await
        .unwrap();
    assert_eq!(unscheduled[0].action, EventAction::Recorded);
    let keys: Vec<_> = s
        .deadlines()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(keys, vec!["k-2"]);
}
