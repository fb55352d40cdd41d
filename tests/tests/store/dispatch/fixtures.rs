//! Dispatch: the fixtures its sections share.

use chrono::{DateTime, Duration, Utc};
use dispatcher::dispatch::Lifecycle;

use dispatcher::domain::{Candidate, DispatchTurn, OfferPlan, TakenTurn};
use dispatcher::domain::{Incident, IncidentId, IncidentKind, Offer, Priority, StewardStatus};
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::settings::{
    DispatchSettings, NotifySettings, RuleSettings, Secret, WebhookAudience, WebhookTarget,
};
use dispatcher::store::{EventAction, Store, StoreError};

use eldercare_tests::store_harness::Harness;

use crate::fixtures::*;

/// The default rules with two webhooks: the supervisors' board and the
/// families' notifier.
pub(crate) fn hooked_rules() -> RuleBook {
    let hook = |name: &str, audience| WebhookTarget {
        name: name.into(),
        url: format!("http://127.0.0.1:9/{name}"),
        secret: Secret::new("test-key"),
        audience,
        max_attempts: 3,
    };
    RuleBook::new(RuleSettings::default()).with_dispatch(
        DispatchSettings::default(),
        NotifySettings {
            webhooks: vec![
                hook("board", WebhookAudience::Supervisors),
                hook("family", WebhookAudience::Family),
            ],
            ..Default::default()
        },
    )
}

/// A steward on duty and available.
pub(crate) async fn on_duty(s: &dyn Store, id: &str) {
    s.insert_steward(&steward(id)).await.unwrap();
    let st = s
        .set_steward_duty(&steward_id(id), true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(st.status, StewardStatus::Available);
}

pub(crate) fn raise_as(key: &str, elder: &str, priority: Priority, device: Option<&str>) -> Effect {
    Effect::Raise {
        key: key.into(),
        elder_id: Some(elder_id(elder)),
        device_id: device.map(device_id),
        kind: IncidentKind::Call,
        priority,
        summary: "call pressed (bedside)".into(),
    }
}

/// Opens an incident of an elder, as ingest or a timer would.
pub(crate) async fn open(
    s: &dyn Store,
    key: &str,
    priority: Priority,
    device: Option<&str>,
    at: DateTime<Utc>,
    r: &RuleBook,
) -> Incident {
    let got = s
        .apply(
            &[raise_as(key, "e-1", priority, device)],
            &dispatcher::domain::Actor::Device(
                dispatcher::domain::DeviceId::parse("btn-1").unwrap(),
            ),
            at,
            r,
        )
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
    got[0].incident.clone().unwrap()
}

/// Stewards in order, 100 m apart.
pub(crate) fn candidates(ids: &[&str]) -> Vec<Candidate> {
    ids.iter()
        .enumerate()
        .map(|(n, id)| Candidate {
            steward_id: steward_id(id),
            distance_m: 100.0 * (n + 1) as f64,
        })
        .collect()
}

/// Takes the incident's dispatch turn and offers it, for 30 s.
pub(crate) async fn offer(
    s: &dyn Store,
    incident: &IncidentId,
    stewards: &[&str],
    want: usize,
    at: DateTime<Utc>,
) -> Vec<Offer> {
    let until = at + Duration::seconds(30);
    take(s, incident, at, plan(candidates(stewards), want, until))
        .await
        .expect("the dispatch turn is due")
        .offers
}

/// Offers `want` of `candidates` in order, each until `until`; if nobody
/// could be offered, the next turn is due then too.
pub(crate) fn plan(candidates: Vec<Candidate>, want: usize, until: DateTime<Utc>) -> OfferPlan {
    OfferPlan {
        candidates,
        want,
        expires_at: until,
        notes: Vec::new(),
        retry_at: until,
        reach: Vec::new(),
    }
}

/// Takes the incident's dispatch turn, if it is due, and offers it as
/// planned.
pub(crate) async fn take(
    s: &dyn Store,
    incident: &IncidentId,
    at: DateTime<Utc>,
    plan: OfferPlan,
) -> Option<TakenTurn> {
    s.take_turn(incident, at, &move |_: &DispatchTurn| Some(plan.clone()))
        .await
        .unwrap()
}

/// Takes the incident's dispatch turn, if it is due, with nothing to offer
/// (the turn stays leased): the turn as the planner saw it.
pub(crate) async fn claim(
    s: &dyn Store,
    incident: &IncidentId,
    at: DateTime<Utc>,
) -> Option<DispatchTurn> {
    s.take_turn(incident, at, &|_: &DispatchTurn| None)
        .await
        .unwrap()
        .map(|taken| taken.turn)
}

/// The code a conflict's message starts with.
pub(crate) fn code<T: std::fmt::Debug>(got: Result<T, StoreError>) -> String {
    match got {
        Err(StoreError::Conflict { code, .. }) => code.as_str().to_owned(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub(crate) async fn status_of(s: &dyn Store, id: &str) -> StewardStatus {
    s.steward(&steward_id(id)).await.unwrap().unwrap().status
}

pub(crate) async fn timeline(s: &dyn Store, id: &IncidentId) -> Vec<String> {
    s.incident(id)
        .await
        .unwrap()
        .unwrap()
        .timeline
        .into_iter()
        .map(|l| l.what)
        .collect()
}

/// The stream after `seq` as `(audience, event)`, and the new head.
pub(crate) async fn stream_since(s: &dyn Store, seq: i64) -> (Vec<(String, String)>, i64) {
    let rows = s.stream_after(seq, 1000).await.unwrap();
    let head = rows.last().map_or(seq, |r| r.seq);
    let got = rows
        .into_iter()
        .map(|r| (r.audience.as_text(), r.event.to_string()))
        .collect();
    (got, head)
}

pub(crate) fn ev(audience: &str, event: &str) -> (String, String) {
    (audience.to_owned(), event.to_owned())
}

/// Every pending outbox row, as `(channel, target, event)`, claimed far
/// in the future so none is left out.
pub(crate) async fn outbox(s: &dyn Store) -> Vec<dispatcher::store::dispatch::OutboxItem> {
    s.claim_outbox(t("2030-01-01T00:00:00Z"), Duration::seconds(1), 1000)
        .await
        .unwrap()
}

/// The steward and incident invariants, checked in SQL on the tables.
pub(crate) async fn assert_no_double_booking(h: &Harness, when: &str) {
    let checks: [(&str, &'static str); 8] = [
        (
            "a steward holds two live offers",
            "SELECT COUNT(*) FROM (SELECT steward_id FROM offers WHERE response IS NULL
             GROUP BY steward_id HAVING COUNT(*) > 1) x",
        ),
        (
            "a steward holds two open incidents",
            "SELECT COUNT(*) FROM (SELECT steward_id FROM incidents
             WHERE status IN ('acknowledged', 'on_site') AND steward_id IS NOT NULL
             GROUP BY steward_id HAVING COUNT(*) > 1) x",
        ),
        (
            "an offered steward without their live offer",
            "SELECT COUNT(*) FROM stewards s WHERE s.status = 'offered' AND NOT EXISTS
             (SELECT 1 FROM offers o WHERE o.steward_id = s.id AND o.response IS NULL
              AND o.incident_id = s.incident_id)",
        ),
        (
            "a live offer whose steward is not offered that incident",
            "SELECT COUNT(*) FROM offers o JOIN stewards s ON s.id = o.steward_id
             WHERE o.response IS NULL
               AND (s.status <> 'offered' OR s.incident_id IS NULL OR s.incident_id <> o.incident_id)",
        ),
        (
            "a busy steward without an open incident",
            "SELECT COUNT(*) FROM stewards s WHERE s.status = 'busy' AND NOT EXISTS
             (SELECT 1 FROM incidents i WHERE i.id = s.incident_id AND i.steward_id = s.id
              AND i.status IN ('acknowledged', 'on_site'))",
        ),
        (
            "an assigned incident whose steward is not busy with it",
            "SELECT COUNT(*) FROM incidents i JOIN stewards s ON s.id = i.steward_id
             WHERE i.status IN ('acknowledged', 'on_site')
               AND (s.status <> 'busy' OR s.incident_id IS NULL OR s.incident_id <> i.id)",
        ),
        (
            "an idle steward holding an incident",
            "SELECT COUNT(*) FROM stewards
             WHERE status IN ('available', 'off_duty') AND incident_id IS NOT NULL",
        ),
        (
            "a live offer of an incident no longer dispatching",
            "SELECT COUNT(*) FROM offers o JOIN incidents i ON i.id = o.incident_id
             WHERE o.response IS NULL AND i.status <> 'dispatching'",
        ),
    ];
    for (what, sql) in checks {
        assert_eq!(h.count(sql).await, 0, "{when}: {what}");
    }
}
