//! The store's contract, proved on both backends: every test below runs
//! once on a fresh SQLite file (`sqlite::…`) and once on a fresh
//! PostgreSQL database (`postgres::…`).
//!
//! Times are fixed, never `Utc::now()`: the site's night is 22:00 to
//! 07:00 at UTC+8, so `NIGHT` (16:00 UTC) is local midnight and `DAY`
//! (04:00 UTC) local noon.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sqlx::Connection;

use dispatcher::domain::{
    CandidateNote, Contact, DedupKey, Device, DeviceId, DeviceKind, Elder, ElderId, EventId,
    Incident, IncidentId, IncidentKind, IncidentState, LatLon, Limits, Offer, OfferResponse,
    Outcome, Priority, Risks, Role, Steward, StewardId, StewardStatus, User,
};
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::settings::{
    DispatchSettings, NotifySettings, RuleSettings, Secret, WebhookAudience, WebhookTarget,
};
use dispatcher::store::dispatch::{
    Actor, Audience, Candidate, Channel, DISPATCH_LEASE, DeliveryOutcome, DispatchTurn,
    FirstOffers, OfferPlan, TakenTurn,
};
use dispatcher::store::{
    EventAction, EventFilter, Heartbeat, IncidentFilter, IncomingEvent, Store, StoreError,
};
use protocol::{EventMessage, EventType};

use eldercare_tests::on_both_backends;
use eldercare_tests::store_harness::Harness;

on_both_backends!(
    elders_crud,
    devices_crud,
    stewards_crud,
    users_and_sessions,
    ingest_is_idempotent,
    presses_join_until_the_elder_cancels,
    vitals_use_each_elders_limits,
    unknown_devices_are_kept_and_listed,
    bed_exit_at_night_without_return_raises,
    bed_return_before_due_unschedules,
    an_exit_and_its_return_in_one_batch_leave_no_deadline,
    a_rebound_device_speaks_for_its_new_elder,
    a_claimed_deadline_waits_for_its_lease,
    heartbeats_flush_and_read_back,
    offline_incident_clears_itself,
    supervisor_cancels,
    incidents_list_newest_first_with_filters,
    steward_sees_only_their_elders,
    concurrent_raises_make_one_incident,
    concurrent_redeliveries_store_one_event,
    concurrent_claims_never_share_a_deadline,
    a_big_batch_ingests,
    a_damaged_row_is_corrupt_not_a_panic,
    // dispatch
    an_opened_incident_is_due_for_dispatch,
    a_press_is_offered_in_the_transaction_that_opens_it,
    a_press_nobody_could_take_stays_due_for_the_engine,
    a_press_cancelled_in_its_own_batch_is_not_offered,
    first_offers_that_fail_fail_the_batch_and_change_nothing,
    a_turn_that_cannot_be_taken_waits_out_the_lease,
    two_incidents_racing_for_one_steward_never_share_them,
    two_hundred_incidents_fifty_stewards_never_double_booked,
    declines_and_expiries_escalate_then_a_steward_goes_and_resolves,
    a_critical_incident_offered_twice_goes_to_the_first_to_accept,
    a_long_wait_escalates_and_keeps_escalating,
    going_off_duty_withdraws_offers,
    supervisors_assign_and_reassign_by_hand,
    every_change_writes_its_notices,
    the_elders_cancel_and_a_clear_write_their_notices,
    the_outbox_is_claimed_leased_retried_and_finished,
    the_stream_reads_in_order_and_prunes,
    the_detail_shows_offers_candidates_and_deliveries,
    a_steward_sees_an_elder_only_while_offered,
);

// --- fixtures ---

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

/// Local midnight at the site: night.
fn night() -> DateTime<Utc> {
    t("2026-11-28T16:00:00Z")
}

/// Local noon at the site: day.
fn day() -> DateTime<Utc> {
    t("2026-11-28T04:00:00Z")
}

fn rules() -> RuleBook {
    RuleBook::new(RuleSettings::default())
}

/// A supervisor, as the timeline names them.
fn sup() -> Actor {
    Actor::User("sup".into())
}

fn elder_id(s: &str) -> ElderId {
    ElderId::parse(s).unwrap()
}

fn device_id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

fn steward_id(s: &str) -> StewardId {
    StewardId::parse(s).unwrap()
}

fn elder(id: &str) -> Elder {
    Elder {
        id: elder_id(id),
        name: format!("Elder {id}"),
        birth_year: 1941,
        address: "12 Barkhor Street".into(),
        location: LatLon::new(29.653, 91.132).unwrap(),
        grid: "g-1".into(),
        conditions: vec!["hypertension".into()],
        medications: vec!["amlodipine 5 mg, morning".into()],
        risks: Risks::default(),
        lives_alone: true,
        languages: vec!["bo".into(), "zh".into()],
        contacts: vec![Contact {
            name: "Dolma".into(),
            relation: "daughter".into(),
            phone: "+86 138 0000 0000".into(),
        }],
        notes: String::new(),
        limits: Limits::default(),
    }
}

fn device(id: &str, elder: Option<&str>, kind: DeviceKind) -> Device {
    Device {
        id: device_id(id),
        elder_id: elder.map(elder_id),
        kind,
        heartbeat_s: 60,
        online: false,
        last_seen: None,
        battery_pct: None,
        rssi_dbm: None,
        fw: None,
    }
}

fn steward(id: &str) -> Steward {
    Steward {
        id: steward_id(id),
        name: format!("Steward {id}"),
        phone: "+86 139 0000 0000".into(),
        grid: "g-1".into(),
        skills: vec!["first_aid".into()],
        languages: vec!["bo".into()],
        on_duty: false,
        status: StewardStatus::OffDuty,
        lat: None,
        lon: None,
        location_at: None,
        accuracy_m: None,
    }
}

fn user(name: &str, role: Role, steward: Option<&str>) -> User {
    User {
        username: name.into(),
        role,
        steward_id: steward.map(steward_id),
        password_hash: "$argon2id$test".into(),
    }
}

/// An event as ingest hands it to the store, received when the device saw
/// it.
fn event(device: &str, id: &str, kind: EventType, at: DateTime<Utc>) -> IncomingEvent {
    IncomingEvent {
        device_id: device_id(device),
        message: EventMessage::new(EventId::parse(id).unwrap(), kind, at),
        received_at: at,
        rate_limited: false,
    }
}

fn press(device: &str, id: &str, at: DateTime<Utc>) -> IncomingEvent {
    let mut e = event(device, id, EventType::CallPressed, at);
    e.message = e.message.with_data("button", "bedside");
    e
}

fn vitals(device: &str, id: &str, heart_rate: f64, at: DateTime<Utc>) -> IncomingEvent {
    let mut e = event(device, id, EventType::Vitals, at);
    e.message = e.message.with_data("heart_rate", heart_rate);
    e
}

/// An elder at home with one device bound to them.
async fn home(store: &dyn Store, elder_name: &str, device_name: &str, kind: DeviceKind) {
    store.insert_elder(&elder(elder_name)).await.unwrap();
    store
        .insert_device(&device(device_name, Some(elder_name), kind))
        .await
        .unwrap();
}

fn actions(applied: &[dispatcher::store::Applied]) -> Vec<EventAction> {
    applied.iter().map(|a| a.action).collect()
}

fn raise(key: &str, elder: &str) -> Effect {
    Effect::Raise {
        key: key.into(),
        elder_id: Some(elder_id(elder)),
        device_id: None,
        kind: IncidentKind::Call,
        priority: Priority::Urgent,
        summary: "call pressed (bedside)".into(),
    }
}

fn open_only() -> IncidentFilter {
    IncidentFilter {
        status: IncidentState::OPEN.to_vec(),
        ..Default::default()
    }
}

// --- the registry ---

async fn elders_crud(h: Harness) {
    let s = &*h.store;
    let mut e = elder("e-1");
    e.risks = Risks {
        fall: true,
        wandering: false,
    };
    e.limits.heart_rate_min = Some(40.0);
    e.limits
        .priorities
        .insert(IncidentKind::Call, Priority::Critical);
    s.insert_elder(&e).await.unwrap();
    assert_eq!(s.elder(&e.id).await.unwrap(), Some(e.clone()));

    match s.insert_elder(&e).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "elder e-1 already exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    e.name = "Tashi".into();
    e.contacts.clear();
    s.update_elder(&e).await.unwrap();
    assert_eq!(s.elder(&e.id).await.unwrap(), Some(e.clone()));

    s.insert_elder(&elder("e-2")).await.unwrap();
    let all: Vec<_> = s
        .elders()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all, vec![elder_id("e-1"), elder_id("e-2")]);

    match s.update_elder(&elder("e-9")).await {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "elder e-9"),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(matches!(
        s.delete_elder(&elder_id("e-9")).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.elder(&elder_id("e-9")).await.unwrap(), None);

    // Deleting an elder unbinds their devices; the devices stay.
    s.insert_device(&device("btn-1", Some("e-1"), DeviceKind::CallButton))
        .await
        .unwrap();
    s.delete_elder(&e.id).await.unwrap();
    assert_eq!(s.elder(&e.id).await.unwrap(), None);
    let d = s.device(&device_id("btn-1")).await.unwrap().unwrap();
    assert_eq!(d.elder_id, None);
}

async fn devices_crud(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    let mut d = device("btn-1", Some("e-1"), DeviceKind::CallButton);
    s.insert_device(&d).await.unwrap();
    assert_eq!(s.device(&d.id).await.unwrap(), Some(d.clone()));

    match s.insert_device(&d).await {
        Err(StoreError::Conflict(m)) => assert_eq!(m, "device btn-1 already exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match s
        .insert_device(&device("btn-2", Some("e-9"), DeviceKind::Pendant))
        .await
    {
        Err(StoreError::Invalid(m)) => assert_eq!(m, "elder e-9 does not exist"),
        other => panic!("expected invalid, got {other:?}"),
    }
    assert_eq!(s.device(&device_id("btn-2")).await.unwrap(), None);

    // An update replaces the registry fields only.
    d.kind = DeviceKind::Pendant;
    d.heartbeat_s = 30;
    d.elder_id = None;
    d.online = true; // ignored: health is the heartbeats' to write
    s.update_device(&d).await.unwrap();
    let got = s.device(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (got.kind, got.heartbeat_s, got.elder_id, got.online),
        (DeviceKind::Pendant, 30, None, false)
    );
    d.elder_id = Some(elder_id("e-9"));
    assert!(matches!(
        s.update_device(&d).await,
        Err(StoreError::Invalid(_))
    ));
    match s
        .update_device(&device("nope", None, DeviceKind::Other))
        .await
    {
        Err(StoreError::NotFound(m)) => assert_eq!(m, "device nope"),
        other => panic!("expected not found, got {other:?}"),
    }

    s.insert_device(&device("bed-1", Some("e-1"), DeviceKind::BedSensor))
        .await
        .unwrap();
    let ids: Vec<_> = s
        .devices()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![device_id("bed-1"), device_id("btn-1")]);
    s.delete_device(&d.id).await.unwrap();
    assert!(matches!(
        s.delete_device(&d.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.devices().await.unwrap().len(), 1);
}

async fn stewards_crud(h: Harness) {
    let s = &*h.store;
    let mut st = steward("s-1");
    s.insert_steward(&st).await.unwrap();
    assert_eq!(s.steward(&st.id).await.unwrap(), Some(st.clone()));
    assert!(matches!(
        s.insert_steward(&st).await,
        Err(StoreError::Conflict(m)) if m == "steward s-1 already exists"
    ));

    st.name = "Pema".into();
    st.skills = vec!["nurse".into(), "driver".into()];
    s.update_steward(&st).await.unwrap();
    assert_eq!(s.steward(&st.id).await.unwrap(), Some(st.clone()));
    assert!(matches!(
        s.update_steward(&steward("s-9")).await,
        Err(StoreError::NotFound(m)) if m == "steward s-9"
    ));

    // Duty moves only the idle states.
    let on = s
        .set_steward_duty(&st.id, true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((on.on_duty, on.status), (true, StewardStatus::Available));
    let off = s
        .set_steward_duty(&st.id, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((off.on_duty, off.status), (false, StewardStatus::OffDuty));
    let mut busy = steward("s-2");
    busy.on_duty = true;
    busy.status = StewardStatus::Busy;
    s.insert_steward(&busy).await.unwrap();
    let still = s
        .set_steward_duty(&busy.id, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((still.on_duty, still.status), (false, StewardStatus::Busy));
    let mut offered = steward("s-3");
    offered.status = StewardStatus::Offered;
    s.insert_steward(&offered).await.unwrap();
    let still = s
        .set_steward_duty(&offered.id, true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        (still.on_duty, still.status),
        (true, StewardStatus::Offered)
    );
    assert!(matches!(
        s.set_steward_duty(&steward_id("s-9"), true, chrono::Utc::now())
            .await,
        Err(StoreError::NotFound(_))
    ));

    let at = LatLon::new(29.65, 91.13).unwrap();
    let moved = s
        .set_steward_location(&st.id, at, Some(12.5), day())
        .await
        .unwrap();
    assert_eq!(moved.location(), Some(at));
    assert_eq!(moved.location_at, Some(day()));
    assert_eq!(moved.accuracy_m, Some(12.5));
    assert!(matches!(
        s.set_steward_location(&steward_id("s-9"), at, None, day())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.stewards().await.unwrap().len(), 3);
}

async fn users_and_sessions(h: Harness) {
    let s = &*h.store;
    s.insert_steward(&steward("s-1")).await.unwrap();
    let admin = user("admin", Role::Admin, None);
    let pema = user("pema", Role::Steward, Some("s-1"));
    s.insert_user(&admin).await.unwrap();
    s.insert_user(&pema).await.unwrap();
    assert_eq!(s.user("pema").await.unwrap(), Some(pema.clone()));
    assert_eq!(s.users().await.unwrap(), vec![admin.clone(), pema.clone()]);
    assert!(matches!(
        s.insert_user(&admin).await,
        Err(StoreError::Conflict(m)) if m == "user admin already exists"
    ));
    assert!(matches!(
        s.insert_user(&user("ghost", Role::Steward, Some("s-9"))).await,
        Err(StoreError::Invalid(m)) if m == "steward s-9 does not exist"
    ));
    // A steward login must name its steward.
    assert!(matches!(
        s.insert_user(&user("nobody", Role::Steward, None)).await,
        Err(StoreError::Invalid(_))
    ));

    let now = day();
    s.insert_session("hash-1", "pema", now + Duration::hours(1))
        .await
        .unwrap();
    s.insert_session("hash-2", "admin", now + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(s.session_user("hash-1", now).await.unwrap(), Some(pema));
    assert_eq!(s.session_user("hash-x", now).await.unwrap(), None);
    // A session ends at its expiry, not a moment later.
    assert_eq!(
        s.session_user("hash-1", now + Duration::hours(1))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        s.insert_session("hash-3", "ghost", now).await,
        Err(StoreError::Invalid(m)) if m == "user ghost does not exist"
    ));

    s.delete_user("admin").await.unwrap();
    assert_eq!(s.session_user("hash-2", now).await.unwrap(), None);
    assert!(matches!(
        s.delete_user("admin").await,
        Err(StoreError::NotFound(m)) if m == "user admin"
    ));
}

// --- ingest ---

async fn ingest_is_idempotent(h: Harness) {
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

async fn presses_join_until_the_elder_cancels(h: Harness) {
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

async fn vitals_use_each_elders_limits(h: Harness) {
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

async fn unknown_devices_are_kept_and_listed(h: Harness) {
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

// --- deadlines ---

/// A fall-risk elder with a bed sensor.
async fn fall_risk_home(s: &dyn Store) {
    let mut e = elder("e-1");
    e.risks.fall = true;
    s.insert_elder(&e).await.unwrap();
    s.insert_device(&device("bed-1", Some("e-1"), DeviceKind::BedSensor))
        .await
        .unwrap();
}

async fn bed_exit_at_night_without_return_raises(h: Harness) {
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
    assert_eq!(claimed, pending);

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

async fn bed_return_before_due_unschedules(h: Harness) {
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
async fn an_exit_and_its_return_in_one_batch_leave_no_deadline(h: Harness) {
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
async fn a_rebound_device_speaks_for_its_new_elder(h: Harness) {
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

async fn a_claimed_deadline_waits_for_its_lease(h: Harness) {
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
            "system",
            t0,
            &rules(),
        )
        .await
        .unwrap();
    assert_eq!(actions(&got), vec![EventAction::Scheduled; 2]);

    let lease = Duration::seconds(60);
    let now = t0 + Duration::seconds(5);
    let first: Vec<_> = s
        .claim_due(now, lease, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(first, vec!["k-1", "k-2"], "oldest first");
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
    assert_eq!(s.claim_due(later, lease, 1).await.unwrap()[0].key, "k-2");
    assert!(s.claim_due(later, lease, 0).await.unwrap().is_empty());

    // Scheduling a key again moves it and releases its claim.
    s.apply(
        &[schedule("k-1", later + Duration::minutes(1))],
        "system",
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
            "system",
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

// --- device health ---

async fn heartbeats_flush_and_read_back(h: Harness) {
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

async fn offline_incident_clears_itself(h: Harness) {
    let s = &*h.store;
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let r = rules();
    let d = s.device(&device_id("btn-1")).await.unwrap().unwrap();
    let t0 = day();
    let raised = s
        .apply(
            &r.device_offline(&d, "3 heartbeats missed"),
            "system",
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
        .apply(&r.device_heard(&d.id), "system", t1, &r)
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
        .apply(&r.device_heard(&d.id), "system", t1, &r)
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

// --- incidents ---

async fn supervisor_cancels(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    let got = s
        .apply(
            &[raise("elder:e-1:call", "e-1")],
            "device:btn-1",
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
        Err(StoreError::Conflict(m)) if m == format!("not_open: incident {} is already cancelled", inc.id)
    ));
    let unknown = IncidentId::parse("inc-unknown").unwrap();
    assert!(matches!(
        s.cancel(&unknown, &sup(), "x", at, &rules()).await,
        Err(StoreError::NotFound(m)) if m == "incident inc-unknown"
    ));
}

async fn incidents_list_newest_first_with_filters(h: Harness) {
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

    s.cancel(&all[0].id, &sup(), "test", t0 + Duration::minutes(1), &r)
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

async fn steward_sees_only_their_elders(h: Harness) {
    let s = &*h.store;
    s.insert_elder(&elder("e-1")).await.unwrap();
    s.insert_elder(&elder("e-2")).await.unwrap();
    s.insert_steward(&steward("s-1")).await.unwrap();
    s.apply(&[raise("elder:e-1:call", "e-1")], "system", day(), &rules())
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
    s.cancel(&inc.id, &sup(), "done", day(), &rules())
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

// --- concurrency and volume ---

async fn concurrent_raises_make_one_incident(h: Harness) {
    s_insert(&h, "e-1").await;
    let t0 = day();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = h.store.clone();
            tokio::spawn(async move {
                store
                    .apply(
                        &[raise("elder:e-1:call", "e-1")],
                        "device:btn-1",
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

async fn concurrent_redeliveries_store_one_event(h: Harness) {
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

async fn concurrent_claims_never_share_a_deadline(h: Harness) {
    s_insert(&h, "e-1").await;
    let t0 = day();
    let effects: Vec<_> = (0..50)
        .map(|i| Effect::Schedule {
            key: format!("k-{i:02}"),
            due_at: t0 + Duration::seconds(i),
            effects: vec![raise("elder:e-1:call", "e-1")],
        })
        .collect();
    h.store
        .apply(&effects, "system", t0, &rules())
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

async fn a_big_batch_ingests(h: Harness) {
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

async fn a_damaged_row_is_corrupt_not_a_panic(h: Harness) {
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

// --- dispatch: fixtures ---

/// The default rules with two webhooks: the supervisors' board and the
/// families' notifier.
fn hooked_rules() -> RuleBook {
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
async fn on_duty(s: &dyn Store, id: &str) {
    s.insert_steward(&steward(id)).await.unwrap();
    let st = s
        .set_steward_duty(&steward_id(id), true, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(st.status, StewardStatus::Available);
}

fn raise_as(key: &str, elder: &str, priority: Priority, device: Option<&str>) -> Effect {
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
async fn open(
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
            "device:btn-1",
            at,
            r,
        )
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
    got[0].incident.clone().unwrap()
}

/// Stewards in order, 100 m apart.
fn candidates(ids: &[&str]) -> Vec<Candidate> {
    ids.iter()
        .enumerate()
        .map(|(n, id)| Candidate {
            steward_id: steward_id(id),
            distance_m: 100.0 * (n + 1) as f64,
        })
        .collect()
}

/// Takes the incident's dispatch turn and offers it, for 30 s.
async fn offer(
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
fn plan(candidates: Vec<Candidate>, want: usize, until: DateTime<Utc>) -> OfferPlan {
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
async fn take(
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
async fn claim(s: &dyn Store, incident: &IncidentId, at: DateTime<Utc>) -> Option<DispatchTurn> {
    s.take_turn(incident, at, &|_: &DispatchTurn| None)
        .await
        .unwrap()
        .map(|taken| taken.turn)
}

/// The code a conflict's message starts with.
fn code<T: std::fmt::Debug>(got: Result<T, StoreError>) -> String {
    match got {
        Err(StoreError::Conflict(m)) => m.split(':').next().unwrap().to_owned(),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

async fn status_of(s: &dyn Store, id: &str) -> StewardStatus {
    s.steward(&steward_id(id)).await.unwrap().unwrap().status
}

async fn timeline(s: &dyn Store, id: &IncidentId) -> Vec<String> {
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
async fn stream_since(s: &dyn Store, seq: i64) -> (Vec<(String, String)>, i64) {
    let rows = s.stream_after(seq, 1000).await.unwrap();
    let head = rows.last().map_or(seq, |r| r.seq);
    let got = rows
        .into_iter()
        .map(|r| (r.audience.as_text(), r.event))
        .collect();
    (got, head)
}

fn ev(audience: &str, event: &str) -> (String, String) {
    (audience.to_owned(), event.to_owned())
}

/// Every pending outbox row, as `(channel, target, event)`, claimed far
/// in the future so none is left out.
async fn outbox(s: &dyn Store) -> Vec<dispatcher::store::dispatch::OutboxItem> {
    s.claim_outbox(t("2030-01-01T00:00:00Z"), Duration::seconds(1), 1000)
        .await
        .unwrap()
}

/// The steward and incident invariants, checked in SQL on the tables.
async fn assert_no_double_booking(h: &Harness, when: &str) {
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

// --- dispatch: offers and claims ---

async fn an_opened_incident_is_due_for_dispatch(h: Harness) {
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
        .apply(&r.device_offline(&d, "silent"), "system", t0, &r)
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
            "system",
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

async fn a_press_is_offered_in_the_transaction_that_opens_it(h: Harness) {
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

async fn a_press_nobody_could_take_stays_due_for_the_engine(h: Harness) {
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

async fn a_press_cancelled_in_its_own_batch_is_not_offered(h: Harness) {
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

async fn first_offers_that_fail_fail_the_batch_and_change_nothing(h: Harness) {
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

async fn a_turn_that_cannot_be_taken_waits_out_the_lease(h: Harness) {
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

async fn two_incidents_racing_for_one_steward_never_share_them(h: Harness) {
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

async fn two_hundred_incidents_fifty_stewards_never_double_booked(h: Harness) {
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
                    .apply(&[raise_as(&key, "e-1", priority, None)], "system", at, &r)
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
                    Err(StoreError::Conflict(m))
                        if m.starts_with("already_taken") || m.starts_with("offer_expired") => {}
                    Err(e) => panic!("answer failed: {e:?}"),
                }
            }));
        }
    }
    for _ in 0..2 {
        let (s, r) = (s.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            s.expire_offers(t0 + Duration::seconds(31), &r)
                .await
                .unwrap();
            s.escalate_due(t0 + Duration::seconds(31), &r)
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
                s.resolve(&i.id, &who, Outcome::Assisted, "", t2, &r)
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

// --- dispatch: the lifecycle ---

async fn declines_and_expiries_escalate_then_a_steward_goes_and_resolves(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    for id in ["s-1", "s-2", "s-3"] {
        on_duty(s, id).await;
    }
    let (s1, s2, s3) = (steward_id("s-1"), steward_id("s-2"), steward_id("s-3"));
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    let made = offer(s, &inc.id, &["s-1"], 1, t0).await;
    assert_eq!(made.len(), 1);
    assert_eq!(
        (made[0].expires_at, made[0].response, made[0].distance_m),
        (t0 + Duration::seconds(30), None, Some(100.0))
    );
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Offered);
    assert!(claim(s, &inc.id, t0).await.is_none(), "an offer is live");

    // s-1 declines: free again, and the next offer is due at once.
    let t1 = t0 + Duration::seconds(10);
    let after = s.decline(&inc.id, &s1, t1, &r).await.unwrap();
    assert_eq!(
        (after.status, after.escalation_level),
        (IncidentState::Dispatching, 0)
    );
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    assert_eq!(code(s.accept(&inc.id, &s1, t1, &r).await), "offer_expired");
    assert_eq!(code(s.decline(&inc.id, &s1, t1, &r).await), "offer_expired");
    assert_eq!(code(s.accept(&inc.id, &s3, t1, &r).await), "no_offer");
    assert!(matches!(
        s.accept(&inc.id, &steward_id("s-9"), t1, &r).await,
        Err(StoreError::NotFound(m)) if m == "steward s-9"
    ));
    let unknown = IncidentId::parse("inc-nope").unwrap();
    assert!(matches!(
        s.accept(&unknown, &s1, t1, &r).await,
        Err(StoreError::NotFound(m)) if m == "incident inc-nope"
    ));
    // s-2 is offered (s-1, already asked, is skipped) and never answers.
    let expires = t1 + Duration::seconds(30);
    let taken = take(
        s,
        &inc.id,
        t1,
        plan(candidates(&["s-1", "s-2"]), 1, expires),
    )
    .await
    .expect("due at once");
    assert_eq!(
        (taken.turn.already_offered.clone(), taken.turn.live_offers),
        (vec![s1.clone()], 0)
    );
    let made = taken.offers;
    assert_eq!(made[0].steward_id, s2);
    assert!(
        s.expire_offers(expires - Duration::seconds(1), &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.expire_offers(expires, &r).await.unwrap(),
        vec![inc.id.clone()]
    );
    assert!(
        s.expire_offers(expires, &r).await.unwrap().is_empty(),
        "once only"
    );
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Available);
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(
        detail.incident.escalation_level, 1,
        "two failed offers escalate"
    );
    let responses: Vec<_> = detail.offers.iter().map(|o| o.response).collect();
    assert_eq!(
        responses,
        vec![Some(OfferResponse::Declined), Some(OfferResponse::Expired)]
    );
    let lines = timeline(s, &inc.id).await;
    assert_eq!(
        lines,
        vec![
            "opened: call pressed (bedside)",
            "offered to Steward s-1 (s-1), 100 m",
            "declined by s-1",
            "offered to Steward s-2 (s-2), 200 m",
            "offer to s-2 expired",
            "escalated to level 1: 2 offers declined or expired",
        ]
    );

    // s-3 is offered; too late is too late, even before the timer runs.
    let t2 = expires;
    let made = offer(s, &inc.id, &["s-3"], 1, t2).await;
    let late = made[0].expires_at;
    assert_eq!(
        code(s.accept(&inc.id, &s3, late, &r).await),
        "offer_expired"
    );
    let t3 = t2 + Duration::seconds(5);
    let acked = s.accept(&inc.id, &s3, t3, &r).await.unwrap();
    assert_eq!(
        (
            acked.status,
            acked.steward_id.clone(),
            acked.acknowledged_at
        ),
        (IncidentState::Acknowledged, Some(s3.clone()), Some(t3))
    );
    assert_eq!(status_of(s, "s-3").await, StewardStatus::Busy);
    assert_eq!(
        s.accept(&inc.id, &s3, t3, &r).await.unwrap(),
        acked,
        "a retried tap"
    );
    assert_eq!(code(s.decline(&inc.id, &s3, t3, &r).await), "already_taken");
    // Acknowledged: no more escalation, no more dispatch.
    assert!(
        s.escalate_due(t0 + Duration::days(1), &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.due_dispatches(t0 + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // On site, then resolved by the steward, who went off duty meanwhile.
    assert_eq!(code(s.arrive(&inc.id, &s2, t3, &r).await), "not_assigned");
    let t4 = t3 + Duration::minutes(7);
    let there = s.arrive(&inc.id, &s3, t4, &r).await.unwrap();
    assert_eq!(
        (there.status, there.on_site_at),
        (IncidentState::OnSite, Some(t4))
    );
    assert_eq!(s.arrive(&inc.id, &s3, t4, &r).await.unwrap(), there);
    assert_eq!(
        code(
            s.resolve(
                &inc.id,
                &Actor::Steward(s1.clone()),
                Outcome::Assisted,
                "",
                t4,
                &r
            )
            .await
        ),
        "not_assigned"
    );
    let still = s
        .set_steward_duty(&s3, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(still.status, StewardStatus::Busy);
    let t5 = t4 + Duration::minutes(20);
    let who = Actor::Steward(s3.clone());
    let done = s
        .resolve(
            &inc.id,
            &who,
            Outcome::Assisted,
            "helped up from the floor",
            t5,
            &r,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.outcome, done.resolved_at),
        (IncidentState::Resolved, Some(Outcome::Assisted), Some(t5))
    );
    assert_eq!(status_of(s, "s-3").await, StewardStatus::OffDuty);
    assert_eq!(code(s.arrive(&inc.id, &s3, t5, &r).await), "not_open");
    assert_eq!(code(s.accept(&inc.id, &s3, t5, &r).await), "not_open");
    assert_eq!(
        code(s.cancel(&inc.id, &sup(), "late", t5, &r).await),
        "not_open"
    );
    assert_eq!(
        code(s.resolve(&inc.id, &sup(), Outcome::Other, "", t5, &r).await),
        "not_open"
    );
    assert_eq!(code(s.escalate(&inc.id, "x", t5, &r).await), "not_open");
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    let tail: Vec<_> = detail.timeline[6..]
        .iter()
        .map(|l| (l.what.as_str(), l.actor.as_str()))
        .collect();
    assert_eq!(
        tail,
        vec![
            ("offered to Steward s-3 (s-3), 100 m", "system"),
            ("accepted by s-3", "steward:s-3"),
            ("on site", "steward:s-3"),
            (
                "resolved: assisted — helped up from the floor",
                "steward:s-3"
            ),
        ]
    );
    assert_no_double_booking(&h, "after resolve").await;
}

async fn a_critical_incident_offered_twice_goes_to_the_first_to_accept(h: Harness) {
    let s = h.store.clone();
    let r = Arc::new(rules());
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(&*s, "s-1").await;
    on_duty(&*s, "s-2").await;
    let t0 = day();
    let inc = open(&*s, "elder:e-1:fall", Priority::Critical, None, t0, &r).await;
    let made = offer(&*s, &inc.id, &["s-1", "s-2"], 2, t0).await;
    assert_eq!(made.len(), 2);
    let head = s.stream_head().await.unwrap();
    let at = t0 + Duration::seconds(3);
    let tasks: Vec<_> = ["s-1", "s-2"]
        .into_iter()
        .map(|st| {
            let (s, r, id) = (s.clone(), r.clone(), inc.id.clone());
            tokio::spawn(async move { (st, s.accept(&id, &steward_id(st), at, &r).await) })
        })
        .collect();
    let mut won = Vec::new();
    let mut lost = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (st, Ok(i)) => won.push((st, i)),
            (st, Err(e)) => lost.push((st, code::<()>(Err(e)))),
        }
    }
    assert_eq!(won.len(), 1, "one winner");
    assert_eq!(lost.len(), 1);
    let (winner, incident) = &won[0];
    let (loser, why) = &lost[0];
    assert_eq!(why, "already_taken");
    assert_eq!(incident.steward_id, Some(steward_id(winner)));
    assert_eq!(status_of(&*s, winner).await, StewardStatus::Busy);
    assert_eq!(status_of(&*s, loser).await, StewardStatus::Available);
    let offers = s.incident(&inc.id).await.unwrap().unwrap().offers;
    let of = |st: &str| {
        offers
            .iter()
            .find(|o| o.steward_id.as_str() == st)
            .unwrap()
            .response
    };
    assert_eq!(of(winner), Some(OfferResponse::Accepted));
    assert_eq!(of(loser), Some(OfferResponse::Withdrawn));
    let told: Vec<_> = s
        .stream_after(head, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.audience == Audience::Steward(steward_id(loser)))
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].event, "offer.withdrawn");
    assert_eq!(told[0].data["reason"], "taken");
    assert_eq!(told[0].data["incident_id"], inc.id.as_str());
    assert_no_double_booking(&h, "after the race").await;
}

async fn a_long_wait_escalates_and_keeps_escalating(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    // Urgent: 180 s without acceptance escalates.
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    let retry = t0 + Duration::seconds(30);
    let none = take(s, &inc.id, t0, plan(Vec::new(), 1, retry))
        .await
        .expect("due")
        .offers;
    assert!(none.is_empty());
    let sec = Duration::seconds;
    assert!(s.escalate_due(t0 + sec(179), &r).await.unwrap().is_empty());
    assert_eq!(
        s.escalate_due(t0 + sec(180), &r).await.unwrap(),
        vec![inc.id.clone()]
    );
    let level =
        |i: Option<dispatcher::domain::IncidentDetail>| i.unwrap().incident.escalation_level;
    assert_eq!(level(s.incident(&inc.id).await.unwrap()), 1);
    // The radius grows with the level: the next dispatch is due now.
    assert!(claim(s, &inc.id, t0 + sec(180)).await.is_some());
    assert!(s.escalate_due(t0 + sec(300), &r).await.unwrap().is_empty());
    assert_eq!(s.escalate_due(t0 + sec(360), &r).await.unwrap().len(), 1);
    // The engine escalates at once when nobody is available.
    let up = s
        .escalate(&inc.id, "nobody available", t0 + sec(400), &r)
        .await
        .unwrap();
    assert_eq!(up.escalation_level, 3);
    let lines = timeline(s, &inc.id).await;
    assert_eq!(
        lines[1..],
        [
            "nobody could be offered; trying again in 30 s",
            "escalated to level 1: not accepted after 180 s",
            "escalated to level 2: not accepted after 360 s",
            "escalated to level 3: nobody available",
        ]
    );
    // A timer down for an hour escalates once, not twenty times.
    assert_eq!(s.escalate_due(t0 + sec(4000), &r).await.unwrap().len(), 1);
    assert!(s.escalate_due(t0 + sec(4001), &r).await.unwrap().is_empty());
    s.cancel(&inc.id, &sup(), "phoned the family", t0 + sec(4100), &r)
        .await
        .unwrap();
    assert!(
        s.escalate_due(t0 + Duration::days(1), &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.due_dispatches(t0 + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.escalate(&IncidentId::parse("inc-x").unwrap(), "x", t0, &r)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn going_off_duty_withdraws_offers(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(s, "s-1").await;
    let s1 = steward_id("s-1");
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    offer(s, &inc.id, &["s-1"], 1, t0).await;
    assert_eq!(s.live_offers_of(&s1).await.unwrap().len(), 1);
    let off = s
        .set_steward_duty(&s1, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((off.on_duty, off.status), (false, StewardStatus::Offered));
    let head = s.stream_head().await.unwrap();
    let t1 = t0 + Duration::seconds(5);
    let touched = s.withdraw_offers_of(&s1, "off_duty", t1, &r).await.unwrap();
    assert_eq!(touched, vec![inc.id.clone()]);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::OffDuty);
    assert!(s.live_offers_of(&s1).await.unwrap().is_empty());
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(detail.offers[0].response, Some(OfferResponse::Withdrawn));
    assert_eq!(detail.incident.escalation_level, 0);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM incidents WHERE failed_offers = 0")
            .await,
        1,
        "going off duty is not a failed offer"
    );
    assert_eq!(
        detail.timeline.last().unwrap().what,
        "offer to s-1 withdrawn: steward went off duty"
    );
    let turn = claim(s, &inc.id, t1).await.expect("due at once");
    assert_eq!(turn.live_offers, 0);
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("steward:s-1", "offer.withdrawn"),
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
        ]
    );
    let data = &s.stream_after(head, 1).await.unwrap()[0].data;
    assert_eq!(data["reason"], "off_duty");
    assert!(
        s.withdraw_offers_of(&s1, "off_duty", t1, &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.withdraw_offers_of(&steward_id("s-9"), "off_duty", t1, &r)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Off duty, never offered again.
    let after_lease = t1 + DISPATCH_LEASE;
    let none = take(
        s,
        &inc.id,
        after_lease,
        plan(candidates(&["s-1"]), 1, after_lease),
    )
    .await
    .expect("due again after the lease")
    .offers;
    assert!(none.is_empty());
}

async fn supervisors_assign_and_reassign_by_hand(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    for id in ["s-1", "s-2", "s-3"] {
        on_duty(s, id).await;
    }
    s.insert_steward(&steward("s-4")).await.unwrap(); // off duty
    let (s1, s2, s3) = (steward_id("s-1"), steward_id("s-2"), steward_id("s-3"));
    let t0 = day();
    let a = open(s, "elder:e-1:a", Priority::Urgent, None, t0, &r).await;
    let b = open(s, "elder:e-1:b", Priority::Urgent, None, t0, &r).await;
    offer(s, &a.id, &["s-1"], 1, t0).await;
    offer(s, &b.id, &["s-2"], 1, t0).await;

    // A goes to s-2, who held B's offer: B gets it back, A's offer to s-1
    // is withdrawn.
    let t1 = t0 + Duration::seconds(20);
    let assigned = s.assign(&a.id, &s2, &sup(), t1, &r).await.unwrap();
    assert_eq!(
        (
            assigned.status,
            assigned.steward_id.clone(),
            assigned.acknowledged_at
        ),
        (IncidentState::Acknowledged, Some(s2.clone()), Some(t1))
    );
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Busy);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    let turn = claim(s, &b.id, t1).await.expect("B is due again");
    assert_eq!(turn.live_offers, 0);
    let detail = s.incident(&a.id).await.unwrap().unwrap();
    assert_eq!(detail.offers[0].response, Some(OfferResponse::Withdrawn));
    assert_eq!(
        detail
            .timeline
            .last()
            .map(|l| (l.what.as_str(), l.actor.as_str())),
        Some(("assigned to Steward s-2 (s-2)", "user:sup"))
    );
    assert_eq!(
        s.assign(&a.id, &s2, &sup(), t1, &r).await.unwrap(),
        assigned
    );

    // Busy and off-duty stewards cannot be assigned.
    assert_eq!(
        code(s.assign(&b.id, &s2, &sup(), t1, &r).await),
        "steward_busy"
    );
    assert_eq!(
        code(s.assign(&b.id, &steward_id("s-4"), &sup(), t1, &r).await),
        "steward_busy"
    );
    assert!(matches!(
        s.assign(&b.id, &steward_id("s-9"), &sup(), t1, &r).await,
        Err(StoreError::NotFound(_))
    ));

    // Reassigned: s-2 is freed and told.
    let head = s.stream_head().await.unwrap();
    let moved = s.assign(&a.id, &s3, &sup(), t1, &r).await.unwrap();
    assert_eq!(moved.steward_id, Some(s3.clone()));
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Available);
    assert_eq!(status_of(s, "s-3").await, StewardStatus::Busy);
    let (events, _) = stream_since(s, head).await;
    assert!(events.contains(&ev("steward:s-2", "offer.withdrawn")));
    assert!(events.contains(&ev("steward:s-3", "incident")));
    assert_eq!(
        timeline(s, &a.id).await.last().unwrap(),
        "reassigned from s-2 to Steward s-3 (s-3)"
    );
    let _ = s1;
    s.cancel(&a.id, &sup(), "done", t1, &r).await.unwrap();
    assert_eq!(status_of(s, "s-3").await, StewardStatus::Available);
    assert_eq!(code(s.assign(&a.id, &s3, &sup(), t1, &r).await), "not_open");
    assert_no_double_booking(&h, "after assignments").await;
}

// --- dispatch: notices, the stream and the outbox ---

async fn every_change_writes_its_notices(h: Harness) {
    let s = &*h.store;
    let r = hooked_rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    let s1 = steward_id("s-1");
    let t0 = day();

    // Opened (urgent call, through ingest).
    let (_, head) = stream_since(s, 0).await; // the steward going on duty
    let got = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    let inc = got[0].incident.clone().unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(events, vec![ev("supervisors", "incident")]);
    // Joined.
    s.ingest(&[press("btn-1", "p-2", t0)], &r).await.unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(events, vec![ev("supervisors", "incident")]);

    // Offered.
    let t1 = t0 + Duration::seconds(1);
    offer(s, &inc.id, &["s-1"], 1, t1).await;
    let rows = s.stream_after(head, 100).await.unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("steward:s-1", "offer"),
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
        ]
    );
    let o = &rows[0].data;
    assert_eq!(o["incident"]["id"], inc.id.as_str());
    assert_eq!(o["elder"]["name"], "Elder e-1");
    assert_eq!(o["elder"]["medications"][0], "amlodipine 5 mg, morning");
    assert_eq!(o["distance_m"], 100.0);
    assert_eq!(o["expires_at"], json_time(t1 + Duration::seconds(30)));
    assert_eq!(rows[1].data["status"], "offered");

    // Accepted, on site, resolved.
    s.accept(&inc.id, &s1, t1 + Duration::seconds(4), &r)
        .await
        .unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("supervisors", "incident"),
            ev("steward:s-1", "incident"),
            ev("supervisors", "steward"),
        ]
    );
    s.arrive(&inc.id, &s1, t1 + Duration::minutes(6), &r)
        .await
        .unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![ev("supervisors", "incident"), ev("steward:s-1", "incident")]
    );
    let who = Actor::Steward(s1.clone());
    s.resolve(
        &inc.id,
        &who,
        Outcome::FalseAlarm,
        "pressed by mistake",
        t1 + Duration::minutes(9),
        &r,
    )
    .await
    .unwrap();
    let rows = s.stream_after(head, 100).await.unwrap();
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
            ev("steward:s-1", "incident"),
        ]
    );
    assert_eq!(rows[0].data["status"], "available");
    assert_eq!(rows[1].data["status"], "resolved");

    // The outbox, in the order it was written: the device hears each
    // step, the board every change, the family nothing (not critical).
    let items = outbox(s).await;
    let got: Vec<_> = items
        .iter()
        .map(|i| {
            let state = i.payload["state"].as_str().unwrap_or("").to_owned();
            (i.channel, i.target.clone(), i.event.clone(), state)
        })
        .collect();
    let d = |state: &str| {
        (
            Channel::Device,
            "btn-1".to_owned(),
            "incident.update".to_owned(),
            state.to_owned(),
        )
    };
    let w = |event: &str| {
        (
            Channel::Webhook,
            "board".to_owned(),
            event.to_owned(),
            String::new(),
        )
    };
    assert_eq!(
        got,
        vec![
            d("received"),
            w("incident.opened"),
            d("acknowledged"),
            w("incident.acknowledged"),
            d("on_site"),
            w("incident.on_site"),
            d("resolved"),
            w("incident.resolved"),
        ]
    );
    assert!(
        items
            .iter()
            .all(|i| i.incident_id.as_ref() == Some(&inc.id) && i.attempts == 0)
    );
    let device = &items[0].payload;
    assert_eq!(
        (device["type"].as_str(), device["incident_id"].as_str()),
        (Some("incident.update"), Some(inc.id.as_str()))
    );
    let hook = &items[1].payload;
    assert_eq!(hook["event"], "incident.opened");
    assert_eq!(hook["incident"]["id"], inc.id.as_str());
    assert_eq!(hook["elder"]["address"], "12 Barkhor Street");
    assert_eq!(hook["elder"]["contacts"][0]["phone"], "+86 138 0000 0000");
    assert!(
        hook["elder"].get("notes").is_none(),
        "only the essentials leave"
    );
    assert_eq!(hook["at"], json_time(t0));

    // Escalations: the family hears only of critical ones.
    let urgent = open(s, "elder:e-1:u", Priority::Urgent, None, t0, &r).await;
    let critical = open(s, "elder:e-1:c", Priority::Critical, Some("btn-1"), t0, &r).await;
    outbox(s).await; // the openings, out of the way
    s.escalate(&urgent.id, "nobody available", t1, &r)
        .await
        .unwrap();
    s.escalate(&critical.id, "nobody available", t1, &r)
        .await
        .unwrap();
    let items = outbox(s).await;
    let got: Vec<_> = items
        .iter()
        .map(|i| {
            (
                i.incident_id.clone().unwrap(),
                i.target.as_str(),
                i.event.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (urgent.id.clone(), "board", "incident.escalated"),
            (critical.id.clone(), "board", "incident.escalated"),
            (critical.id.clone(), "family", "incident.escalated"),
        ]
    );
    assert_eq!(items[2].payload["elder"]["contacts"][0]["name"], "Dolma");

    // A supervisor's cancel.
    s.cancel(&critical.id, &sup(), "daughter is there", t1, &r)
        .await
        .unwrap();
    let got: Vec<_> = outbox(s)
        .await
        .into_iter()
        .map(|i| {
            (
                i.target,
                i.event,
                i.payload["state"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "btn-1".into(),
                "incident.update".into(),
                Some("cancelled".into())
            ),
            ("board".into(), "incident.cancelled".into(), None),
        ]
    );
}

/// A time as the JSON payloads carry it.
fn json_time(t: DateTime<Utc>) -> serde_json::Value {
    serde_json::to_value(t).unwrap()
}

async fn the_elders_cancel_and_a_clear_write_their_notices(h: Harness) {
    let s = &*h.store;
    let r = hooked_rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    let t0 = day();
    let got = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    let inc = got[0].incident.clone().unwrap();
    offer(s, &inc.id, &["s-1"], 1, t0).await;
    outbox(s).await;
    let head = s.stream_head().await.unwrap();

    // The elder cancels while the offer is live.
    let at = t0 + Duration::seconds(8);
    let got = s
        .ingest(&[event("btn-1", "c-1", EventType::CallCancelled, at)], &r)
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Cancelled);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("steward:s-1", "offer.withdrawn"),
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
        ]
    );
    assert_eq!(
        s.stream_after(head - 3, 1).await.unwrap()[0].data["reason"],
        "cancelled"
    );
    let got: Vec<_> = outbox(s)
        .await
        .into_iter()
        .map(|i| {
            (
                i.target,
                i.event,
                i.payload["state"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "btn-1".into(),
                "incident.update".into(),
                Some("cancelled".into())
            ),
            ("board".into(), "incident.cancelled".into(), None),
        ]
    );
    let lines = timeline(s, &inc.id).await;
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "offer to s-1 withdrawn: incident cancelled",
            "cancelled: cancelled by the elder at the device",
        ]
    );
    assert!(claim(s, &inc.id, at).await.is_none());

    // A device offline, then heard again: the board hears both.
    let d = device("btn-1", Some("e-1"), DeviceKind::CallButton);
    let raised = s
        .apply(&r.device_offline(&d, "silent"), "system", at, &r)
        .await
        .unwrap();
    let tech = raised[0].incident.clone().unwrap();
    s.apply(&r.device_heard(&d.id), "system", at, &r)
        .await
        .unwrap();
    let got: Vec<_> = outbox(s)
        .await
        .into_iter()
        .map(|i| {
            (
                i.channel,
                i.event,
                i.payload["state"].as_str().map(str::to_owned),
            )
        })
        .collect();
    // A technical incident never lights the elder's button: webhooks only.
    assert_eq!(
        got,
        vec![
            (Channel::Webhook, "incident.opened".into(), None),
            (Channel::Webhook, "incident.resolved".into(), None),
        ]
    );
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![ev("supervisors", "incident"), ev("supervisors", "incident")]
    );
    let detail = s.incident(&tech.id).await.unwrap().unwrap();
    assert_eq!(detail.incident.outcome, Some(Outcome::Cleared));
    assert_eq!(detail.deliveries.len(), 2);
}

async fn the_outbox_is_claimed_leased_retried_and_finished(h: Harness) {
    let s = h.store.clone();
    let r = hooked_rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    for n in 0..3 {
        let key = format!("elder:e-1:n{n}");
        open(
            &*s,
            &key,
            Priority::Urgent,
            Some("btn-1"),
            t0 + Duration::seconds(n),
            &r,
        )
        .await;
    }
    // Six rows: a device command and a board webhook per incident.
    let lease = Duration::seconds(30);
    let now = t0 + Duration::minutes(1);
    assert!(
        s.claim_outbox(t0 - Duration::seconds(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let first = s.claim_outbox(now, lease, 4).await.unwrap();
    assert_eq!(first.len(), 4);
    let ids: Vec<_> = first.iter().map(|i| i.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first");
    assert_eq!(first[0].channel, Channel::Device);
    assert_eq!(first[1].channel, Channel::Webhook);
    let rest = s.claim_outbox(now, lease, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(
        s.claim_outbox(now, lease, 10).await.unwrap().is_empty(),
        "all leased"
    );

    // One delivered, one to retry in a minute, one failed for good.
    s.finish_outbox(&first[0].id, &DeliveryOutcome::Delivered, now)
        .await
        .unwrap();
    let retry_at = now + Duration::minutes(2);
    let retry = DeliveryOutcome::Retry {
        at: retry_at,
        error: "HTTP 503".into(),
    };
    s.finish_outbox(&first[1].id, &retry, now).await.unwrap();
    let failed = DeliveryOutcome::Failed {
        error: "HTTP 410 Gone".into(),
    };
    s.finish_outbox(&first[2].id, &failed, now).await.unwrap();
    assert!(matches!(
        s.finish_outbox("out-nope", &DeliveryOutcome::Delivered, now)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // The lease runs out: the unfinished come back, the finished do not,
    // the retry waits for its time.
    let later = now + lease + Duration::seconds(1);
    let back: Vec<_> = s
        .claim_outbox(later, lease, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    let mut expected = vec![first[3].id.clone(), rest[0].id.clone(), rest[1].id.clone()];
    expected.sort();
    assert_eq!(back, expected);
    let again = s.claim_outbox(retry_at, lease, 10).await.unwrap();
    let retried = again.iter().find(|i| i.id == first[1].id).expect("retried");
    assert_eq!(retried.attempts, 1);

    // A late report (lease gone, someone else delivered) undoes nothing.
    s.finish_outbox(&first[0].id, &retry, later).await.unwrap();
    let incident = first[0].incident_id.clone().unwrap();
    let deliveries = s.deliveries(&incident).await.unwrap();
    let delivered = deliveries.iter().find(|d| d.id == first[0].id).unwrap();
    assert_eq!(
        (
            delivered.state.as_str(),
            delivered.attempts,
            delivered.delivered_at
        ),
        ("delivered", 1, Some(now))
    );
    let all_rows: Vec<_> = [&first[1], &first[2]]
        .iter()
        .map(|i| i.incident_id.clone().unwrap())
        .collect();
    let mut states = Vec::new();
    for id in all_rows {
        for d in s.deliveries(&id).await.unwrap() {
            if d.id == first[1].id || d.id == first[2].id {
                states.push((d.state, d.attempts, d.last_error));
            }
        }
    }
    states.sort();
    assert_eq!(
        states,
        vec![
            ("failed".into(), 1, Some("HTTP 410 Gone".into())),
            ("pending".into(), 1, Some("HTTP 503".into())),
        ]
    );

    // Instances claiming at once never share a row.
    let far = t0 + Duration::hours(1);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_outbox(far, lease, 2).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap().into_iter().map(|i| i.id));
    }
    let distinct: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a row was claimed twice");
    assert_eq!(seen.len(), 4, "the four pending rows");
}

async fn the_stream_reads_in_order_and_prunes(h: Harness) {
    let s = h.store.clone();
    let r = Arc::new(rules());
    s.insert_elder(&elder("e-1")).await.unwrap();
    assert_eq!(s.stream_head().await.unwrap(), 0);
    let t0 = day();
    // Writers at once still give strictly increasing, gapless-to-readers seqs.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (s, r) = (s.clone(), r.clone());
            tokio::spawn(async move {
                let key = format!("elder:e-1:n{n}");
                let at = t0 + Duration::seconds(n);
                s.apply(
                    &[raise_as(&key, "e-1", Priority::Urgent, None)],
                    "system",
                    at,
                    &r,
                )
                .await
                .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let all = s.stream_after(0, 1000).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
    let head = s.stream_head().await.unwrap();
    assert_eq!(head, all[19].seq);
    let tail = s.stream_after(all[14].seq, 3).await.unwrap();
    let seqs: Vec<_> = tail.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![all[15].seq, all[16].seq, all[17].seq]);
    assert!(s.stream_after(head, 10).await.unwrap().is_empty());
    assert_eq!(all[0].audience, Audience::Supervisors);
    assert_eq!(all[0].event, "incident");
    // Pruning forgets the old rows, never the sequence.
    let pruned = s.prune_stream(t0 + Duration::seconds(10)).await.unwrap();
    assert_eq!(pruned, 10);
    assert_eq!(s.stream_after(0, 1000).await.unwrap().len(), 10);
    s.apply(
        &[raise_as("elder:e-1:late", "e-1", Priority::Urgent, None)],
        "system",
        t0,
        &r,
    )
    .await
    .unwrap();
    assert!(s.stream_head().await.unwrap() > head);
}

async fn the_detail_shows_offers_candidates_and_deliveries(h: Harness) {
    let s = &*h.store;
    let r = hooked_rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(s, "s-1").await;
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, Some("btn-1"), t0, &r).await;
    let note = |id: &str, verdict: &str, reason: &str| CandidateNote {
        steward_id: steward_id(id),
        name: format!("Steward {id}"),
        distance_m: Some(420.0),
        verdict: verdict.into(),
        reason: reason.into(),
    };
    let notes = vec![
        note("s-1", "offered", "nearest available, 420 m"),
        note("s-7", "passed", "location 2 h old"),
    ];
    let expires = t0 + Duration::seconds(45);
    let cands = vec![Candidate {
        steward_id: steward_id("s-1"),
        distance_m: 420.0,
    }];
    let plan = OfferPlan {
        notes: notes.clone(),
        ..plan(cands, 1, expires)
    };
    take(s, &inc.id, t0, plan).await.expect("due");
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(detail.candidates, notes);
    assert_eq!(detail.offers.len(), 1);
    let o = &detail.offers[0];
    assert_eq!(
        (
            o.steward_id.as_str(),
            o.offered_at,
            o.expires_at,
            o.response,
            o.distance_m
        ),
        ("s-1", t0, expires, None, Some(420.0))
    );
    let deliveries: Vec<_> = detail
        .deliveries
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.target.as_str(),
                d.event.as_str(),
                d.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        vec![
            ("device", "btn-1", "incident.update", "pending"),
            ("webhook", "board", "incident.opened", "pending"),
        ]
    );
    assert_eq!(
        detail.timeline.last().unwrap().what,
        "offered to Steward s-1 (s-1), 420 m"
    );
    // Reports read incidents by creation time.
    let between = s
        .incidents_created_between(t0, t0 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(between.len(), 1);
    assert!(
        s.incidents_created_between(t0 + Duration::seconds(1), t0 + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_steward_sees_an_elder_only_while_offered(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    s.insert_elder(&elder("e-2")).await.unwrap();
    on_duty(s, "s-1").await;
    let (s1, e1, e2) = (steward_id("s-1"), elder_id("e-1"), elder_id("e-2"));
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    assert!(!s.steward_sees_elder(&s1, &e1, t0).await.unwrap());
    offer(s, &inc.id, &["s-1"], 1, t0).await;
    assert!(s.steward_sees_elder(&s1, &e1, t0).await.unwrap());
    assert!(!s.steward_sees_elder(&s1, &e2, t0).await.unwrap());
    // Not past the offer's expiry, even before the timer marks it.
    let later = t0 + Duration::hours(1);
    assert!(!s.steward_sees_elder(&s1, &e1, later).await.unwrap());
    let mine = IncidentFilter {
        steward_id: Some(s1.clone()),
        ..Default::default()
    };
    let listed: Vec<_> = s
        .incidents(&mine)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![inc.id.clone()]);
    // Declining ends it; the incident stays in their list.
    let t3 = t0 + Duration::seconds(3);
    s.decline(&inc.id, &s1, t3, &r).await.unwrap();
    assert!(!s.steward_sees_elder(&s1, &e1, t3).await.unwrap());
    assert_eq!(s.incidents(&mine).await.unwrap().len(), 1);
}

// --- outside the pair ---

#[tokio::test]
async fn an_in_memory_sqlite_store_works() {
    let s = dispatcher::store::connect("sqlite::memory:").await.unwrap();
    s.ping().await.unwrap();
    home(&*s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let got = s
        .ingest(&[press("btn-1", "p-1", day())], &rules())
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
    assert_eq!(s.elders().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_database_url_says_what_to_use() {
    let err = dispatcher::store::connect("mysql://x").await.err().unwrap();
    assert!(err.to_string().contains("sqlite://"), "{err}");
}

#[tokio::test]
async fn a_sqlite_file_is_created_with_its_directory_in_wal_mode() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    let s = dispatcher::store::connect(db.url()).await.unwrap();
    s.ping().await.unwrap();
    assert!(db.dir().join("data").join("eldercare.db").exists());
    let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // Connecting again finds the migrations applied and changes nothing.
    drop(s);
    let again = dispatcher::store::connect(db.url()).await.unwrap();
    assert!(again.elders().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_write_ahead_log_starts_over_under_steady_writes() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    let s = dispatcher::store::connect(db.url()).await.unwrap();
    let devices: Vec<Device> = (0..2000)
        .map(|n| device(&format!("d-{n}"), None, DeviceKind::BedSensor))
        .collect();
    s.upsert_devices(&devices).await.unwrap();
    // Heartbeat flushes back to back: a checkpoint beside them never finds
    // the log all copied unless it finishes in a write turn.
    let wal = db.dir().join("data").join("eldercare.db-wal");
    // The log's header counts its starts over (the checkpoint sequence,
    // bytes 12 to 16).
    let starts = || {
        use std::io::Read;
        let mut head = [0u8; 16];
        let mut file = std::fs::File::open(&wal).ok()?;
        file.read_exact(&mut head).ok()?;
        Some(u32::from_be_bytes([head[12], head[13], head[14], head[15]]))
    };
    let first = starts().unwrap_or(0);
    // A start over, with up to 60 s for it on a busy machine (64 MiB of
    // log takes a few seconds here; without the checkpointer's write
    // turn none comes at all).
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut flushes = 0u32;
    while starts().unwrap_or(0) <= first {
        assert!(
            std::time::Instant::now() < give_up,
            "the log never started over in {flushes} flushes over 60 s"
        );
        let at = day() + Duration::seconds(i64::from(flushes));
        let beats: Vec<Heartbeat> = devices
            .iter()
            .map(|d| Heartbeat {
                device_id: d.id.clone(),
                last_seen: at,
                online: true,
                battery_pct: Some(80),
                rssi_dbm: None,
                fw: None,
            })
            .collect();
        s.flush_heartbeats(&beats).await.unwrap();
        flushes += 1;
    }
}

#[tokio::test]
async fn the_write_ahead_log_is_checkpointed_beside_the_writers() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    let s = dispatcher::store::connect(db.url()).await.unwrap();
    s.ping().await.unwrap();
    // A megabyte written with automatic checkpoints off, as the store's
    // own connections write: it stays in the log until someone copies it.
    let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    for sql in [
        "PRAGMA wal_autocheckpoint = 0",
        "CREATE TABLE filler (b BLOB)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO filler SELECT randomblob(1000) FROM n",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let file = db.dir().join("data").join("eldercare.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&file).unwrap().len() < 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not copied into {} within 10 s",
            file.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The store kept working beside it.
    s.ping().await.unwrap();
}
