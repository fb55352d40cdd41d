//! Incidents: cancelled by a supervisor, listed, and seen by their stewards.

use chrono::Duration;
use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;

use dispatcher::domain::{DeviceKind, IncidentId, IncidentKind, IncidentState, Priority};
use dispatcher::store::{ConflictCode, EventFilter, IncidentFilter, StoreError};
use protocol::EventType;

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

pub(crate) async fn supervisor_cancels(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    let got = s
        .apply(
            &[raise("elder:e-1:call", "e-1")],
            &dispatcher::domain::Actor::Device(
                dispatcher::domain::DeviceId::parse("btn-1").unwrap(),
            ),
            t0,
            &rules(),
        )
        .await
        .unwrap();
    let inc = got[0].incident.clone().unwrap();
    let at = t0 + Duration::minutes(2);
    let cancelled = s
        .cancel(&inc.id, &sup(), "duplicate of a phone call", at, &rules())
        .await
        .unwrap();
    assert_eq!(
        (
            cancelled.status,
            cancelled.resolved_at,
            cancelled.notes.as_deref()
        ),
        (
            IncidentState::Cancelled,
            Some(at),
            Some("duplicate of a phone call")
        )
    );
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    let last = detail.timeline.last().unwrap();
    assert_eq!(
        (last.what.as_str(), last.actor.as_str(), last.at),
        ("cancelled: duplicate of a phone call", "user:sup", at)
    );
    assert!(matches!(
        s.cancel(&inc.id, &sup(), "again", at, &rules()).await,
        Err(StoreError::Conflict { code: ConflictCode::NotOpen, message: m }) if m == format!("not_open: incident {} is already cancelled", inc.id)
    ));
    let unknown = IncidentId::parse("inc-unknown").unwrap();
    assert!(matches!(
        s.cancel(&unknown, &sup(), "x", at, &rules()).await,
        Err(StoreError::NotFound(m)) if m == "incident inc-unknown"
    ));
}

pub(crate) async fn incidents_list_newest_first_with_filters(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    home(s, "e-2", "btn-2", DeviceKind::CallButton).await;
    let r = rules();
    let t0 = day();
    s.ingest(
        &[
            press("btn-1", "p-1", t0),
            event(
                "btn-2",
                "f-1",
                EventType::FallDetected,
                t0 + Duration::seconds(1),
            ),
            event(
                "btn-1",
                "s-1",
                EventType::SmokeDetected,
                t0 + Duration::seconds(2),
            ),
            press("btn-2", "p-1", t0 + Duration::seconds(3)),
        ],
        &r,
    )
    .await
    .unwrap();
    let kinds = |list: Vec<dispatcher::domain::Incident>| -> Vec<IncidentKind> {
        list.into_iter().map(|i| i.kind).collect()
    };
    use IncidentKind::*;
    let all = s.incidents(&IncidentFilter::default()).await.unwrap();
    assert_eq!(kinds(all.clone()), vec![Call, Smoke, Fall, Call]);
    let critical = s
        .incidents(&IncidentFilter {
            priority: Some(Priority::Critical),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kinds(critical), vec![Smoke, Fall]);
    let of_e1 = s
        .incidents(&IncidentFilter {
            elder_id: Some(elder_id("e-1")),
            kind: Some(Call),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_e1.len(), 1);
    assert_eq!(of_e1[0].elder_id, Some(elder_id("e-1")));
    let recent = s
        .incidents(&IncidentFilter {
            since: Some(t0 + Duration::seconds(2)),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].id, all[0].id);

    let _ = s
        .cancel(&all[0].id, &sup(), "test", t0 + Duration::minutes(1), &r)
        .await
        .unwrap();
    assert_eq!(s.incidents(&open_only()).await.unwrap().len(), 3);
    let closed = s
        .incidents(&IncidentFilter {
            status: vec![IncidentState::Cancelled, IncidentState::Resolved],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(closed.len(), 1);

    let events = s
        .events(&EventFilter {
            since: Some(t0 + Duration::seconds(2)),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].device_id, device_id("btn-2"));
}

pub(crate) async fn steward_sees_only_their_elders(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    s.insert_elder(&elder("e-2")).await.unwrap();
    s.insert_steward(&steward("s-1")).await.unwrap();
    let _ = s
        .apply(
            &[raise("elder:e-1:call", "e-1")],
            &dispatcher::domain::Actor::System,
            day(),
            &rules(),
        )
        .await
        .unwrap();
    let (pema, e1, e2) = (steward_id("s-1"), elder_id("e-1"), elder_id("e-2"));
    let now = day();
    assert!(!s.steward_sees_elder(&pema, &e1, now).await.unwrap());
    // Assigned by hand here.
    h.exec("UPDATE incidents SET steward_id = 's-1' WHERE elder_id = 'e-1'")
        .await;
    assert!(s.steward_sees_elder(&pema, &e1, now).await.unwrap());
    assert!(!s.steward_sees_elder(&pema, &e2, now).await.unwrap());
    // No longer once the incident closes (it stays in their list).
    let inc = s.incidents(&open_only()).await.unwrap().remove(0);
    let _ = s
        .cancel(&inc.id, &sup(), "done", day(), &rules())
        .await
        .unwrap();
    assert!(!s.steward_sees_elder(&pema, &e1, now).await.unwrap());
    let mine = s
        .incidents(&IncidentFilter {
            steward_id: Some(pema),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
}
