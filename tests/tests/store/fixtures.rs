//! The fixtures every section shares: fixed times, the rules, and the
//! elders, devices, stewards, users and events the tests are made of.

use chrono::{DateTime, Utc};

use dispatcher::domain::{
    Contact, Device, DeviceId, DeviceKind, Elder, ElderId, EventId, IncidentKind, IncidentState,
    LatLon, Limits, Priority, Risks, Role, Steward, StewardId, StewardStatus, User,
};
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::settings::RuleSettings;
use dispatcher::store::dispatch::Actor;
use dispatcher::store::{EventAction, IncidentFilter, IncomingEvent, Store};
use protocol::{EventMessage, EventType};

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

/// Local midnight at the site: night.
pub(crate) fn night() -> DateTime<Utc> {
    t("2026-11-28T16:00:00Z")
}

/// Local noon at the site: day.
pub(crate) fn day() -> DateTime<Utc> {
    t("2026-11-28T04:00:00Z")
}

pub(crate) fn rules() -> RuleBook {
    RuleBook::new(RuleSettings::default())
}

/// A supervisor, as the timeline names them.
pub(crate) fn sup() -> Actor {
    Actor::User("sup".into())
}

pub(crate) fn elder_id(s: &str) -> ElderId {
    ElderId::parse(s).unwrap()
}

pub(crate) fn device_id(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

pub(crate) fn steward_id(s: &str) -> StewardId {
    StewardId::parse(s).unwrap()
}

pub(crate) fn elder(id: &str) -> Elder {
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
        care: Default::default(),
    }
}

pub(crate) fn device(id: &str, elder: Option<&str>, kind: DeviceKind) -> Device {
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

pub(crate) fn steward(id: &str) -> Steward {
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

pub(crate) fn user(name: &str, role: Role, steward: Option<&str>) -> User {
    User {
        username: name.into(),
        role,
        steward_id: steward.map(steward_id),
        scope: Default::default(),
        password_hash: "$argon2id$test".into(),
    }
}

/// An event as ingest hands it to the store, received when the device saw
/// it.
pub(crate) fn event(device: &str, id: &str, kind: EventType, at: DateTime<Utc>) -> IncomingEvent {
    IncomingEvent {
        device_id: device_id(device),
        message: EventMessage::new(EventId::parse(id).unwrap(), kind, at),
        received_at: at,
        rate_limited: false,
    }
}

pub(crate) fn press(device: &str, id: &str, at: DateTime<Utc>) -> IncomingEvent {
    let mut e = event(device, id, EventType::CallPressed, at);
    e.message = e.message.with_data("button", "bedside");
    e
}

pub(crate) fn vitals(device: &str, id: &str, heart_rate: f64, at: DateTime<Utc>) -> IncomingEvent {
    let mut e = event(device, id, EventType::Vitals, at);
    e.message = e.message.with_data("heart_rate", heart_rate);
    e
}

/// An elder at home with one device bound to them.
pub(crate) async fn home(store: &dyn Store, elder_name: &str, device_name: &str, kind: DeviceKind) {
    store.insert_elder(&elder(elder_name)).await.unwrap();
    store
        .insert_device(&device(device_name, Some(elder_name), kind))
        .await
        .unwrap();
}

pub(crate) fn actions(applied: &[dispatcher::store::Applied]) -> Vec<EventAction> {
    applied.iter().map(|a| a.action).collect()
}

pub(crate) fn raise(key: &str, elder: &str) -> Effect {
    Effect::Raise {
        key: key.into(),
        elder_id: Some(elder_id(elder)),
        device_id: None,
        kind: IncidentKind::Call,
        priority: Priority::Urgent,
        summary: "call pressed (bedside)".into(),
    }
}

pub(crate) fn open_only() -> IncidentFilter {
    IncidentFilter {
        status: IncidentState::OPEN.to_vec(),
        ..Default::default()
    }
}
