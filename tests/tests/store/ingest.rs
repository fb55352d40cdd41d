//! Ingest: events stored once, presses joined, vitals judged, unknown devices kept.

use chrono::Duration;
use dispatcher::ingest::IngestBatch;

use dispatcher::domain::{DedupKey, DeviceKind, IncidentId, IncidentKind, IncidentState, Priority};
use dispatcher::store::{EventAction, EventFilter};
use protocol::EventType;

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

pub(crate) async fn ingest_is_idempotent(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let r = rules();
    let at = day();
    let batch = vec![
        vitals("btn-1", "v-1", 70.0, at),
        vitals("btn-1", "v-2", 72.0, at + Duration::seconds(1)),
        event("btn-1", "u-1", EventType::from("gas.detected"), at),
    ];
    let first = s.ingest(&batch, &r).await.unwrap();
    use EventAction::*;
    assert_eq!(actions(&first), vec![Recorded, Recorded, UnknownType]);
    let again = s.ingest(&batch, &r).await.unwrap();
    assert_eq!(actions(&again), vec![Duplicate, Duplicate, Duplicate]);

    // A repeat inside one batch is a duplicate of its first occurrence,
    // and a rate-limited event is stored but not acted on.
    let mut limited = press("btn-1", "p-2", at);
    limited.rate_limited = true;
    let batch = vec![
        vitals("btn-1", "v-3", 70.0, at),
        vitals("btn-1", "v-3", 70.0, at),
        limited,
        vitals("btn-1", "v-1", 70.0, at),
    ];
    let mixed = s.ingest(&batch, &r).await.unwrap();
    assert_eq!(
        actions(&mixed),
        vec![Recorded, Duplicate, RateLimited, Duplicate]
    );
    assert!(s.incidents(&open_only()).await.unwrap().is_empty());
    assert_eq!(s.ingest(&[], &r).await.unwrap(), vec![]);

    let stored = s.events(&EventFilter::default()).await.unwrap();
    assert_eq!(stored.len(), 5, "each event once: {stored:?}");
    let limited = stored
        .iter()
        .find(|e| e.event_id.as_str() == "p-2")
        .unwrap();
    assert_eq!(limited.action, RateLimited);
    assert_eq!(limited.elder_id, Some(elder_id("e-1")));
    assert_eq!(limited.event_type, "call.pressed");
    assert_eq!(limited.data["button"], "bedside");
}

pub(crate) async fn presses_join_until_the_elder_cancels(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let r = rules();
    let t0 = night();

    let opened = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    assert_eq!(opened[0].action, EventAction::Opened);
    let first = opened[0].incident.clone().unwrap();
    assert_eq!(first.status, IncidentState::Dispatching);
    assert_eq!(first.kind, IncidentKind::Call);
    assert_eq!(first.priority, Priority::Urgent);
    assert_eq!(first.created_at, t0);
    assert_eq!(first.event_count, 1);
    assert_eq!(first.elder_id, Some(elder_id("e-1")));
    assert_eq!(first.device_id, Some(device_id("btn-1")));
    assert_eq!(first.summary, "call pressed (bedside)");

    // Five more presses and a redelivery of the first, in one batch.
    let mut batch: Vec<_> = (2..=6)
        .map(|i| press("btn-1", &format!("p-{i}"), t0 + Duration::seconds(i)))
        .collect();
    batch.push(press("btn-1", "p-1", t0));
    let joined = s.ingest(&batch, &r).await.unwrap();
    use EventAction::*;
    assert_eq!(
        actions(&joined),
        vec![Joined, Joined, Joined, Joined, Joined, Duplicate]
    );
    let last = joined[4].incident.clone().unwrap();
    assert_eq!(last.id, first.id);
    assert_eq!(last.event_count, 6);
    assert_eq!(last.last_event_at, t0 + Duration::seconds(6));
    assert_eq!(last.created_at, t0, "response times count from the first");
    let key = DedupKey::for_elder(&elder_id("e-1"), IncidentKind::Call);
    assert_eq!(s.open_incident(&key).await.unwrap(), Some(last.clone()));

    let cancel_at = t0 + Duration::seconds(30);
    let cancelled = s
        .ingest(
            &[event("btn-1", "c-1", EventType::CallCancelled, cancel_at)],
            &r,
        )
        .await
        .unwrap();
    assert_eq!(cancelled[0].action, Cancelled);
    let closed = cancelled[0].incident.clone().unwrap();
    assert_eq!(closed.id, first.id);
    assert_eq!(closed.status, IncidentState::Cancelled);
    assert_eq!(closed.resolved_at, Some(cancel_at));
    assert_eq!(
        closed.notes.as_deref(),
        Some("cancelled by the elder at the device")
    );
    assert_eq!(s.open_incident(&key).await.unwrap(), None);

    // A second cancel finds nothing to close.
    let nothing = s
        .ingest(
            &[event("btn-1", "c-2", EventType::CallCancelled, cancel_at)],
            &r,
        )
        .await
        .unwrap();
    assert_eq!((nothing[0].action, &nothing[0].incident), (Recorded, &None));

    let again = s
        .ingest(&[press("btn-1", "p-7", t0 + Duration::minutes(5))], &r)
        .await
        .unwrap();
    assert_eq!(again[0].action, Opened);
    assert_ne!(again[0].incident.as_ref().unwrap().id, first.id);

    let detail = s.incident(&first.id).await.unwrap().unwrap();
    assert_eq!(detail.incident, closed);
    assert!(detail.offers.is_empty());
    let lines: Vec<_> = detail
        .timeline
        .iter()
        .map(|l| (l.what.as_str(), l.actor.as_str()))
        .collect();
    let mut expected = vec![("opened: call pressed (bedside)", "device:btn-1")];
    expected.extend([("joined: call pressed (bedside)", "device:btn-1"); 5]);
    expected.push((
        "cancelled: cancelled by the elder at the device",
        "device:btn-1",
    ));
    assert_eq!(lines, expected);
    assert_eq!(detail.timeline[0].at, t0);
    assert_eq!(
        s.incident(&IncidentId::parse("inc-none").unwrap())
            .await
            .unwrap(),
        None
    );

    // Each stored event says what it did.
    let stored = s
        .events(&EventFilter {
            device_id: Some(device_id("btn-1")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 9);
    assert_eq!(stored[0].event_id.as_str(), "p-7", "newest first");
    let p1 = stored
        .iter()
        .find(|e| e.event_id.as_str() == "p-1")
        .unwrap();
    assert_eq!(
        (p1.action, p1.incident_id.clone()),
        (Opened, Some(first.id.clone()))
    );
    let c1 = stored
        .iter()
        .find(|e| e.event_id.as_str() == "c-1")
        .unwrap();
    assert_eq!(
        (c1.action, c1.incident_id.clone()),
        (Cancelled, Some(first.id))
    );
}

pub(crate) async fn vitals_use_each_elders_limits(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "pad-1", DeviceKind::VitalsPad).await;
    // e-2's resting heart rate is low: their own limit is 35.
    let mut e2 = elder("e-2");
    e2.limits.heart_rate_min = Some(35.0);
    s.insert_elder(&e2).await.unwrap();
    s.insert_device(&device("pad-2", Some("e-2"), DeviceKind::VitalsPad))
        .await
        .unwrap();

    let got = s
        .ingest(
            &[
                vitals("pad-1", "v-1", 40.0, day()),
                vitals("pad-2", "v-1", 40.0, day()),
            ],
            &rules(),
        )
        .await
        .unwrap();
    assert_eq!(
        actions(&got),
        vec![EventAction::Opened, EventAction::Recorded]
    );
    let inc = got[0].incident.as_ref().unwrap();
    assert_eq!(
        (inc.kind, inc.priority, inc.elder_id.clone()),
        (
            IncidentKind::Vitals,
            Priority::Critical,
            Some(elder_id("e-1"))
        )
    );
    assert!(
        inc.summary.contains("heart rate 40/min below 45"),
        "{}",
        inc.summary
    );
    assert_eq!(got[1].incident, None);
}

pub(crate) async fn unknown_devices_are_kept_and_listed(h: Harness) {
    let s = &*h.store;
    s.insert_device(&device("loose-1", None, DeviceKind::CallButton))
        .await
        .unwrap();
    let t0 = day();
    let got = s
        .ingest(
            &[
                press("ghost-1", "p-1", t0),
                press("ghost-1", "p-2", t0 + Duration::seconds(5)),
                event(
                    "ghost-1",
                    "f-1",
                    EventType::FallDetected,
                    t0 + Duration::seconds(9),
                ),
                press("loose-1", "p-1", t0 + Duration::seconds(1)),
            ],
            &rules(),
        )
        .await
        .unwrap();
    assert!(
        got.iter()
            .all(|a| a.action == EventAction::UnknownDevice && a.incident.is_none()),
        "{got:?}"
    );

    let unknown = s.unknown_devices(100, 0).await.unwrap();
    assert_eq!(unknown.len(), 2, "{unknown:?}");
    let ghost = &unknown[0];
    assert_eq!(ghost.device_id, device_id("ghost-1"));
    assert_eq!(ghost.events, 3);
    assert_eq!(ghost.first_seen, t0);
    assert_eq!(ghost.last_seen, t0 + Duration::seconds(9));
    assert_eq!(ghost.last_type, "fall.detected");
    assert_eq!(unknown[1].device_id, device_id("loose-1"));

    // Once registered and bound, a device is no longer unknown, and its
    // next press is dispatched.
    s.insert_elder(&elder("e-1")).await.unwrap();
    s.update_device(&device("loose-1", Some("e-1"), DeviceKind::CallButton))
        .await
        .unwrap();
    let ids: Vec<_> = s
        .unknown_devices(100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.device_id)
        .collect();
    assert_eq!(ids, vec![device_id("ghost-1")]);
    let got = s
        .ingest(
            &[press("loose-1", "p-2", t0 + Duration::minutes(1))],
            &rules(),
        )
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
}
