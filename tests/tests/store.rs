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
    Contact, DedupKey, Device, DeviceId, DeviceKind, Elder, ElderId, EventId, IncidentId,
    IncidentKind, IncidentState, LatLon, Limits, Outcome, Priority, Risks, Role, Steward,
    StewardId, StewardStatus, User,
};
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::settings::RuleSettings;
use dispatcher::store::{
    Backend, EventAction, EventFilter, Heartbeat, IncidentFilter, IncomingEvent, Store, StoreError,
};
use protocol::{EventMessage, EventType};

// --- running each test on both backends ---

/// A store on a fresh database, and that database's URL for the few tests
/// that must reach under the store (to damage a row, to assign a steward
/// before dispatch exists).
struct Harness {
    store: Arc<dyn Store>,
    url: String,
}

impl Harness {
    /// Runs raw SQL on the test database, beside the store.
    async fn exec(&self, sql: &'static str) {
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use eldercare_tests::db::TestDb;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = eldercare_tests::db::fresh_sqlite();
                    let store = dispatcher::store::connect(db.url()).await.expect("connect");
                    assert_eq!(store.backend(), super::Backend::Sqlite);
                    super::$name(super::Harness { store, url: db.url().to_owned() }).await;
                }
            )*
        }
        mod postgres {
            use eldercare_tests::db::TestDb;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = eldercare_tests::db::fresh_postgres().await.expect("test database");
                    let store = dispatcher::store::connect(db.url()).await.expect("connect");
                    assert_eq!(store.backend(), super::Backend::Postgres);
                    super::$name(super::Harness { store, url: db.url().to_owned() }).await;
                }
            )*
        }
    };
}

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
    let on = s.set_steward_duty(&st.id, true).await.unwrap();
    assert_eq!((on.on_duty, on.status), (true, StewardStatus::Available));
    let off = s.set_steward_duty(&st.id, false).await.unwrap();
    assert_eq!((off.on_duty, off.status), (false, StewardStatus::OffDuty));
    let mut busy = steward("s-2");
    busy.on_duty = true;
    busy.status = StewardStatus::Busy;
    s.insert_steward(&busy).await.unwrap();
    let still = s.set_steward_duty(&busy.id, false).await.unwrap();
    assert_eq!((still.on_duty, still.status), (false, StewardStatus::Busy));
    let mut offered = steward("s-3");
    offered.status = StewardStatus::Offered;
    s.insert_steward(&offered).await.unwrap();
    let still = s.set_steward_duty(&offered.id, true).await.unwrap();
    assert_eq!(
        (still.on_duty, still.status),
        (true, StewardStatus::Offered)
    );
    assert!(matches!(
        s.set_steward_duty(&steward_id("s-9"), true).await,
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

    let unknown = s.unknown_devices().await.unwrap();
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
        .unknown_devices()
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

    let fired = s.fire_deadline(&claimed[0], fire_at).await.unwrap();
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
        s.fire_deadline(&claimed[0], fire_at)
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
        s.fire_deadline(&claimed_early[0], late)
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
    assert!(s.fire_deadline(&again[0], later).await.unwrap().is_empty());
    let unscheduled = s
        .apply(&[Effect::Unschedule { key: "k-1".into() }], "system", later)
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
        .apply(&r.device_offline(&d, "3 heartbeats missed"), "system", t0)
        .await
        .unwrap();
    assert_eq!(raised[0].action, EventAction::Opened);
    let inc = raised[0].incident.clone().unwrap();
    assert_eq!(
        (inc.kind, inc.priority),
        (IncidentKind::DeviceOffline, Priority::Technical)
    );

    let t1 = t0 + Duration::minutes(3);
    let cleared = s.apply(&r.device_heard(&d.id), "system", t1).await.unwrap();
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
    let again = s.apply(&r.device_heard(&d.id), "system", t1).await.unwrap();
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
        .apply(&[raise("elder:e-1:call", "e-1")], "device:btn-1", t0)
        .await
        .unwrap();
    let inc = got[0].incident.clone().unwrap();
    let at = t0 + Duration::minutes(2);
    let cancelled = s
        .cancel_incident(&inc.id, "duplicate of a phone call", "user:sup", at)
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
        s.cancel_incident(&inc.id, "again", "user:sup", at).await,
        Err(StoreError::Conflict(m)) if m.contains("already cancelled")
    ));
    let unknown = IncidentId::parse("inc-unknown").unwrap();
    assert!(matches!(
        s.cancel_incident(&unknown, "x", "user:sup", at).await,
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

    s.cancel_incident(&all[0].id, "test", "user:sup", t0 + Duration::minutes(1))
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
    s.apply(&[raise("elder:e-1:call", "e-1")], "system", day())
        .await
        .unwrap();
    let (pema, e1, e2) = (steward_id("s-1"), elder_id("e-1"), elder_id("e-2"));
    assert!(!s.steward_sees_elder(&pema, &e1).await.unwrap());
    // Dispatch (not yet written) assigns stewards; do it by hand here.
    h.exec("UPDATE incidents SET steward_id = 's-1' WHERE elder_id = 'e-1'")
        .await;
    assert!(s.steward_sees_elder(&pema, &e1).await.unwrap());
    assert!(!s.steward_sees_elder(&pema, &e2).await.unwrap());
    // Still after the incident closes.
    let inc = s.incidents(&open_only()).await.unwrap().remove(0);
    s.cancel_incident(&inc.id, "done", "user:sup", day())
        .await
        .unwrap();
    assert!(s.steward_sees_elder(&pema, &e1).await.unwrap());
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
    h.store.apply(&effects, "system", t0).await.unwrap();
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
