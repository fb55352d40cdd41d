//! Retention on both backends (issue 13): old events, stream rows, sent
//! notifications and closed incidents with their timelines are pruned in
//! small batches; nothing an open incident needs is, whatever its age.

use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use dispatcher::clock::Clock;
use dispatcher::domain::{Device, DeviceId, DeviceKind, Elder, ElderId, EventId, LatLon, Risks};
use dispatcher::metrics::Metrics;
use dispatcher::retention::{RetentionDeps, prune_once};
use dispatcher::rules::RuleBook;
use dispatcher::settings::{RetentionSettings, RuleSettings};
use dispatcher::store::dispatch::Actor;
use dispatcher::store::{EventAction, IncomingEvent, Store};
use protocol::{EventMessage, EventType};
use tokio_util::sync::CancellationToken;

use eldercare_tests::on_both_backends;
use eldercare_tests::store_harness::Harness;

on_both_backends!(
    old_rows_are_pruned_in_batches_and_an_open_incident_keeps_all_it_needs,
    zero_days_keeps_for_ever,
);

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

/// Today, and a day 100 days before it (local noon at the site).
fn now() -> DateTime<Utc> {
    t("2026-11-28T04:00:00Z")
}
fn long_ago() -> DateTime<Utc> {
    now() - Duration::days(100)
}

fn elder(id: &str) -> Elder {
    Elder {
        id: ElderId::parse(id).unwrap(),
        name: format!("Elder {id}"),
        birth_year: 1941,
        address: "12 Barkhor Street".into(),
        location: LatLon::new(29.653, 91.132).unwrap(),
        grid: "g-1".into(),
        conditions: vec![],
        medications: vec![],
        risks: Risks::default(),
        lives_alone: true,
        languages: vec![],
        contacts: vec![],
        notes: String::new(),
        limits: Default::default(),
        care: Default::default(),
    }
}

async fn home(s: &dyn Store, elder_id: &str, device: &str) {
    s.insert_elder(&elder(elder_id)).await.unwrap();
    s.insert_device(&Device {
        id: DeviceId::parse(device).unwrap(),
        elder_id: Some(ElderId::parse(elder_id).unwrap()),
        kind: DeviceKind::CallButton,
        heartbeat_s: 60,
        online: false,
        last_seen: None,
        battery_pct: None,
        rssi_dbm: None,
        fw: None,
    })
    .await
    .unwrap();
}

fn press(device: &str, id: &str, at: DateTime<Utc>) -> IncomingEvent {
    IncomingEvent {
        device_id: DeviceId::parse(device).unwrap(),
        message: EventMessage::new(EventId::parse(id).unwrap(), EventType::CallPressed, at),
        received_at: at,
        rate_limited: false,
    }
}

fn rules() -> RuleBook {
    RuleBook::new(RuleSettings::default())
}

fn deps(h: &Harness, settings: RetentionSettings) -> RetentionDeps {
    RetentionDeps {
        settings,
        store: h.store.clone(),
        metrics: Arc::new(Metrics::default()),
        clock: Clock::manual(now()),
    }
}

/// Leaks a formatted statement: the harness takes `&'static str`.
fn sql(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

async fn old_rows_are_pruned_in_batches_and_an_open_incident_keeps_all_it_needs(h: Harness) {
    let s = &*h.store;
    let r = rules();
    home(s, "e-1", "btn-1").await;
    home(s, "e-2", "btn-2").await;
    let old = long_ago();

    // Long ago: e-1 pressed three times and the incident was cancelled;
    // e-2 pressed and nobody has closed it yet; an unknown device spoke.
    let mut batch: Vec<IncomingEvent> = (0..3)
        .map(|i| press("btn-1", &format!("old-{i}"), old))
        .collect();
    batch.push(press("btn-2", "old-open", old));
    batch.push(press("stranger", "old-stranger", old));
    let applied = s.ingest(&batch, &r).await.unwrap();
    assert_eq!(applied[0].action, EventAction::Opened);
    let closed = applied[0].incident.clone().unwrap().id;
    let open = applied[3].incident.clone().unwrap().id;
    let _ = s
        .cancel(&closed, &Actor::User("sup".into()), "false alarm", old, &r)
        .await
        .unwrap();
    // Notifications of both, sent long ago, and one still pending.
    for (id, incident, state) in [
        ("o-closed", closed.as_str(), "delivered"),
        ("o-open", open.as_str(), "delivered"),
        ("o-pending", closed.as_str(), "pending"),
        ("o-none", "", "failed"),
    ] {
        let incident = if incident.is_empty() {
            "NULL".to_owned()
        } else {
            format!("'{incident}'")
        };
        h.exec(sql(format!(
            "INSERT INTO outbox (id, incident_id, channel, target, event, payload, created_at, due_at, state)
             VALUES ('{id}', {incident}, 'webhook', 'board', 'incident.opened', '{{}}',
                     '2026-08-20T04:00:00Z', '2026-08-20T04:00:00Z', '{state}')"
        )))
        .await;
    }
    // Today: e-1 presses again.
    s.ingest(&[press("btn-1", "new-1", now())], &r)
        .await
        .unwrap();
    let stream_before = h.count("SELECT COUNT(*) FROM stream").await;
    let recent_stream = h
        .count(sql(format!(
            "SELECT COUNT(*) FROM stream WHERE at >= '{}'",
            (now() - Duration::days(1)).format("%Y-%m-%d")
        )))
        .await;
    assert!(stream_before > recent_stream && recent_stream > 0);

    let d = deps(
        &h,
        RetentionSettings {
            batch: 2,
            incidents_days: 60,
            ..RetentionSettings::default()
        },
    );
    let removed = prune_once(&d, &CancellationToken::new()).await;

    // Events: the closed incident's and the stranger's went, in batches of
    // two; the open incident's and today's stayed.
    let events = h.count("SELECT COUNT(*) FROM events").await;
    assert_eq!(events, 2);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM events WHERE event_id IN ('old-open', 'new-1')")
            .await,
        2
    );
    assert!(s.unknown_devices(100, 0).await.unwrap().is_empty());
    // The closed incident went with its timeline and its sent
    // notifications; the open one keeps everything.
    assert!(s.incident(&closed).await.unwrap().is_none());
    assert_eq!(
        h.count(sql(format!(
            "SELECT COUNT(*) FROM timeline WHERE incident_id = '{closed}'"
        )))
        .await,
        0
    );
    let kept = s.incident(&open).await.unwrap().expect("the open incident");
    assert!(!kept.timeline.is_empty());
    let outbox: Vec<i64> = vec![
        h.count("SELECT COUNT(*) FROM outbox WHERE id = 'o-closed'")
            .await,
        h.count("SELECT COUNT(*) FROM outbox WHERE id = 'o-open'")
            .await,
        h.count("SELECT COUNT(*) FROM outbox WHERE id = 'o-pending'")
            .await,
        h.count("SELECT COUNT(*) FROM outbox WHERE id = 'o-none'")
            .await,
    ];
    assert_eq!(
        outbox,
        [0, 1, 1, 0],
        "closed, open, pending, without incident"
    );
    // Stream rows: only the recent ones.
    assert_eq!(h.count("SELECT COUNT(*) FROM stream").await, recent_stream);

    let metrics = d.metrics.render();
    let pruned = |table: &str| -> u64 {
        let series = format!("dispatcher_pruned_rows_total{{table=\"{table}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map_or(0, |v| v.parse().unwrap())
    };
    assert_eq!(pruned("events"), 4);
    assert_eq!(pruned("incidents"), 1);
    assert_eq!(pruned("outbox"), 2);
    assert_eq!(pruned("stream") as i64, stream_before - recent_stream);
    assert_eq!(
        removed,
        pruned("events") + pruned("incidents") + pruned("outbox") + pruned("stream")
    );
    // A second pass finds nothing left.
    assert_eq!(prune_once(&d, &CancellationToken::new()).await, 0);
}

async fn zero_days_keeps_for_ever(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1").await;
    s.ingest(&[press("btn-1", "old", long_ago())], &rules())
        .await
        .unwrap();
    let d = deps(
        &h,
        RetentionSettings {
            events_days: 0,
            stream_days: 0,
            outbox_days: 0,
            incidents_days: 0,
            ..RetentionSettings::default()
        },
    );
    assert_eq!(prune_once(&d, &CancellationToken::new()).await, 0);
    assert_eq!(h.count("SELECT COUNT(*) FROM events").await, 1);
}
