//! Device health: heartbeats, and the incident a silent device raises.

use chrono::{DateTime, Duration, Utc};
use dispatcher::dispatch::Lifecycle;

use dispatcher::domain::{DeviceKind, IncidentKind, IncidentState, Outcome, Priority};
use dispatcher::store::{EventAction, Heartbeat};

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

pub(crate) async fn heartbeats_flush_and_read_back(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    s.insert_device(&device("pad-1", Some("e-1"), DeviceKind::VitalsPad))
        .await
        .unwrap();
    let t0 = day();
    let beat = |id: &str, at: DateTime<Utc>, online: bool, battery: Option<u8>| Heartbeat {
        device_id: device_id(id),
        last_seen: at,
        online,
        battery_pct: battery,
        rssi_dbm: battery.map(|_| -67),
        fw: battery.map(|_| "1.4.2".to_owned()),
    };
    s.flush_heartbeats(&[
        beat("btn-1", t0, true, Some(81)),
        beat("pad-1", t0, true, Some(50)),
        beat("btn-1", t0 - Duration::seconds(60), true, Some(90)), // older, same batch
        beat("ghost", t0, true, Some(10)),                         // unknown: skipped
    ])
    .await
    .unwrap();
    s.flush_heartbeats(&[]).await.unwrap();

    let btn = s.device(&device_id("btn-1")).await.unwrap().unwrap();
    assert_eq!(
        (
            btn.last_seen,
            btn.online,
            btn.battery_pct,
            btn.rssi_dbm,
            btn.fw.as_deref()
        ),
        (Some(t0), true, Some(81), Some(-67), Some("1.4.2"))
    );
    assert_eq!(s.device(&device_id("ghost")).await.unwrap(), None);

    // A last will carries no readings: the last known ones stay. A late
    // flush of an older beat does not move anything back.
    let t1 = t0 + Duration::seconds(90);
    s.flush_heartbeats(&[
        beat("btn-1", t1, false, None),
        beat("pad-1", t0 - Duration::seconds(5), true, Some(1)),
    ])
    .await
    .unwrap();
    let live = s.liveness().await.unwrap();
    assert_eq!(live.len(), 2);
    let btn = live
        .iter()
        .find(|l| l.device_id.as_str() == "btn-1")
        .unwrap();
    assert_eq!(
        (btn.last_seen, btn.online, btn.heartbeat_s),
        (Some(t1), false, 60)
    );
    let pad = s.device(&device_id("pad-1")).await.unwrap().unwrap();
    assert_eq!((pad.last_seen, pad.battery_pct), (Some(t0), Some(50)));
    let btn = s.device(&device_id("btn-1")).await.unwrap().unwrap();
    assert_eq!(btn.battery_pct, Some(81));
}

pub(crate) async fn offline_incident_clears_itself(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let r = rules();
    let d = s.device(&device_id("btn-1")).await.unwrap().unwrap();
    let t0 = day();
    let raised = s
        .apply(
            &r.device_offline(&d, "3 heartbeats missed"),
            &dispatcher::domain::Actor::System,
            t0,
            &r,
        )
        .await
        .unwrap();
    assert_eq!(raised[0].action, EventAction::Opened);
    let inc = raised[0].incident.clone().unwrap();
    assert_eq!(
        (inc.kind, inc.priority),
        (IncidentKind::DeviceOffline, Priority::Technical)
    );

    let t1 = t0 + Duration::minutes(3);
    let cleared = s
        .apply(
            &r.device_heard(&d.id),
            &dispatcher::domain::Actor::System,
            t1,
            &r,
        )
        .await
        .unwrap();
    assert_eq!(cleared[0].action, EventAction::Cleared);
    let done = cleared[0].incident.clone().unwrap();
    assert_eq!(
        (done.id, done.status, done.outcome, done.resolved_at),
        (
            inc.id.clone(),
            IncidentState::Resolved,
            Some(Outcome::Cleared),
            Some(t1)
        )
    );
    let again = s
        .apply(
            &r.device_heard(&d.id),
            &dispatcher::domain::Actor::System,
            t1,
            &r,
        )
        .await
        .unwrap();
    assert_eq!(
        (again[0].action, &again[0].incident),
        (EventAction::Recorded, &None)
    );
    let lines: Vec<_> = s
        .incident(&inc.id)
        .await
        .unwrap()
        .unwrap()
        .timeline
        .into_iter()
        .map(|l| l.what)
        .collect();
    assert_eq!(lines[1], "cleared: device heard again");
}
