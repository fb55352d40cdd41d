//! Concurrency and volume: racing writers, big batches, damaged rows.

use chrono::Duration;
use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;

use dispatcher::domain::DeviceKind;
use dispatcher::rules::Effect;
use dispatcher::store::{EventAction, EventFilter, StoreError};

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

pub(crate) async fn concurrent_raises_make_one_incident(h: Harness) {
    s_insert(&h, "e-1").await;
    let t0 = day();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .apply(
                        &[raise("elder:e-1:call", "e-1")],
                        &dispatcher::domain::Actor::Device(
                            dispatcher::domain::DeviceId::parse("btn-1").unwrap(),
                        ),
                        t0 + Duration::milliseconds(i),
                        &rules(),
                    )
                    .await
            })
        })
        .collect();
    let mut opened = 0;
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let applied = task.await.unwrap().expect("no writer fails, they wait");
        if applied[0].action == EventAction::Opened {
            opened += 1;
        }
        ids.insert(applied[0].incident.clone().unwrap().id);
    }
    assert_eq!(opened, 1);
    assert_eq!(ids.len(), 1);
    let open = h.store.incidents(&open_only()).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].event_count, 20);
    let detail = h.store.incident(&open[0].id).await.unwrap().unwrap();
    assert_eq!(detail.timeline.len(), 20);
}

async fn s_insert(h: &Harness, elder_name: &str) {
    h.store.insert_elder(&elder(elder_name)).await.unwrap();
}

pub(crate) async fn concurrent_redeliveries_store_one_event(h: Harness) {
    home(&*h.store, "e-1", "btn-1", DeviceKind::CallButton).await;
    let at = night();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = h.store.clone();
            tokio::spawn(async move { store.ingest(&[press("btn-1", "p-1", at)], &rules()).await })
        })
        .collect();
    let mut acted = 0;
    for task in tasks {
        let applied = task.await.unwrap().unwrap();
        match applied[0].action {
            EventAction::Duplicate => {}
            EventAction::Opened => acted += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acted, 1);
    let open = h.store.incidents(&open_only()).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].event_count, 1);
}

pub(crate) async fn concurrent_claims_never_share_a_deadline(h: Harness) {
    s_insert(&h, "e-1").await;
    let t0 = day();
    let effects: Vec<_> = (0..50)
        .map(|i| Effect::Schedule {
            key: format!("k-{i:02}"),
            due_at: t0 + Duration::seconds(i),
            effects: vec![raise("elder:e-1:call", "e-1")],
        })
        .collect();
    let _ = h
        .store
        .apply(&effects, &dispatcher::domain::Actor::System, t0, &rules())
        .await
        .unwrap();
    // Five instances' timer loops tick at once.
    let now = t0 + Duration::minutes(5);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let store = h.store.clone();
            tokio::spawn(async move { store.claim_due(now, Duration::seconds(30), 20).await })
        })
        .collect();
    let mut keys = Vec::new();
    for task in tasks {
        let claimed = task.await.unwrap().unwrap();
        assert!(claimed.len() <= 20);
        keys.extend(claimed.into_iter().map(|d| d.key));
    }
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), keys.len(), "a deadline was claimed twice");
    // Skipped rows are not lost: whatever one tick left, the next takes.
    let rest = h
        .store
        .claim_due(now, Duration::seconds(30), 100)
        .await
        .unwrap();
    assert_eq!(keys.len() + rest.len(), 50);
}

pub(crate) async fn a_big_batch_ingests(h: Harness) {
    let s = &*h.store;
    const DEVICES: usize = 20;
    const EVENTS: usize = 2_000;
    for i in 0..DEVICES {
        home(
            s,
            &format!("e-{i}"),
            &format!("pad-{i}"),
            DeviceKind::VitalsPad,
        )
        .await;
    }
    let t0 = day();
    // Mostly normal vitals; every 50th event a press.
    let batch: Vec<_> = (0..EVENTS)
        .map(|n| {
            let dev = format!("pad-{}", n % DEVICES);
            let at = t0 + Duration::milliseconds(n as i64);
            if n % 50 == 0 {
                press(&dev, &format!("ev-{n}"), at)
            } else {
                vitals(&dev, &format!("ev-{n}"), 70.0, at)
            }
        })
        .collect();
    let r = rules();
    let got = s.ingest(&batch, &r).await.unwrap();
    assert_eq!(got.len(), EVENTS);
    let count = |a: EventAction| got.iter().filter(|x| x.action == a).count();
    // Presses land on pads 0, 10 (n % 50 == 0 → n % 20 ∈ {0, 10}).
    assert_eq!(count(EventAction::Opened), 2);
    assert_eq!(count(EventAction::Joined), EVENTS / 50 - 2);
    assert_eq!(count(EventAction::Recorded), EVENTS - EVENTS / 50);

    let again = s.ingest(&batch, &r).await.unwrap();
    assert!(again.iter().all(|a| a.action == EventAction::Duplicate));

    for i in 0..DEVICES {
        let stored = s
            .events(&EventFilter {
                device_id: Some(device_id(&format!("pad-{i}"))),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(stored.len(), EVENTS / DEVICES, "pad-{i}");
    }
    let capped = s
        .events(&EventFilter {
            limit: 5000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(capped.len(), 1000, "lists are capped");
    assert_eq!(
        s.events(&EventFilter::default()).await.unwrap().len(),
        100,
        "no limit means the default"
    );
    let open = s.incidents(&open_only()).await.unwrap();
    assert_eq!(
        open.iter().map(|i| i.event_count).sum::<i64>(),
        (EVENTS / 50) as i64
    );
}

pub(crate) async fn a_damaged_row_is_corrupt_not_a_panic(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    home(s, "e-2", "btn-2", DeviceKind::CallButton).await;
    h.exec("UPDATE elders SET limits = 'not json' WHERE id = 'e-1'")
        .await;
    assert!(matches!(
        s.elder(&elder_id("e-1")).await,
        Err(StoreError::Corrupt(m)) if m.contains("e-1") && m.contains("limits")
    ));
    assert!(matches!(s.elders().await, Err(StoreError::Corrupt(_))));

    // One damaged elder must not stop a batch: their press is kept (as
    // from an unknown device, visible to supervisors) and the other
    // elder's press is dispatched.
    let got = s
        .ingest(
            &[press("btn-1", "p-1", day()), press("btn-2", "p-1", day())],
            &rules(),
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&got),
        vec![EventAction::UnknownDevice, EventAction::Opened]
    );

    h.exec("UPDATE devices SET kind = 'toaster' WHERE id = 'btn-2'")
        .await;
    assert!(matches!(
        s.device(&device_id("btn-2")).await,
        Err(StoreError::Corrupt(_))
    ));
}
