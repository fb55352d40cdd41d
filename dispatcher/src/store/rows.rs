//! Rows as the tables hold them, and their conversion into domain types.
//!
//! Each struct derives `sqlx::FromRow`, which is generic over the row
//! type, so one struct reads a row from either backend. Column types
//! follow PostgreSQL's strict decoding (`INTEGER` is `i32`, `BIGINT` and
//! `COUNT(*)` are `i64`); SQLite decodes either. Anything a row holds that
//! the domain would refuse (bad JSON, an unknown enum spelling, an id off
//! the alphabet) becomes [`StoreError::Corrupt`] naming the row and field,
//! never a panic.

use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::dispatch::{Audience, Channel, OutboxItem, StreamEvent, StreamKind};
use super::sql::to_json;
use super::{Deadline, Liveness, StoreError, StoreResult, StoredEvent, UnknownDevice};
use crate::domain::{
    CandidateNote, Delivery, Device, DeviceId, Elder, ElderId, EventId, Incident, IncidentId,
    LatLon, Offer, Scope, Steward, StewardId, TimelineEntry, User,
};

/// Where a bad value was found, so `Corrupt` says which row to fix.
struct At<'a> {
    table: &'static str,
    id: &'a str,
}

impl At<'_> {
    fn ok<T, E: Display>(&self, field: &str, r: Result<T, E>) -> StoreResult<T> {
        r.map_err(|e| StoreError::Corrupt(format!("{} {}: {field}: {e}", self.table, self.id)))
    }

    fn json<T: DeserializeOwned>(&self, field: &str, text: &str) -> StoreResult<T> {
        self.ok(field, serde_json::from_str(text))
    }

    fn text<T: FromStr<Err = String>>(&self, field: &str, text: &str) -> StoreResult<T> {
        self.ok(field, text.parse())
    }

    fn opt_id<T, E: Display>(
        &self,
        field: &str,
        text: Option<String>,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> StoreResult<Option<T>> {
        text.map(|s| self.ok(field, parse(s))).transpose()
    }
}

/// `elders` as stored: lists and objects are JSON text.
#[derive(sqlx::FromRow)]
pub(crate) struct ElderRow {
    id: String,
    name: String,
    birth_year: i32,
    address: String,
    lat: f64,
    lon: f64,
    grid: String,
    conditions: String,
    medications: String,
    risks: String,
    lives_alone: bool,
    languages: String,
    contacts: String,
    notes: String,
    limits: String,
    care: String,
    /// The paired steward, kept beside `care` rather than in it, so that
    /// a release that does not know pairing still reads the plan.
    steward_id: Option<String>,
}

impl ElderRow {
    pub(crate) fn into_domain(self) -> StoreResult<Elder> {
        let at = At {
            table: "elder",
            id: &self.id,
        };
        let mut care: crate::domain::CarePlan = at.json("care", &self.care)?;
        care.steward_id = self
            .steward_id
            .map(|s| at.ok("steward_id", crate::domain::StewardId::parse(s)))
            .transpose()?;
        Ok(Elder {
            id: at.ok("id", ElderId::parse(self.id.clone()))?,
            location: at.ok("lat/lon", LatLon::new(self.lat, self.lon))?,
            conditions: at.json("conditions", &self.conditions)?,
            medications: at.json("medications", &self.medications)?,
            risks: at.json("risks", &self.risks)?,
            languages: at.json("languages", &self.languages)?,
            contacts: at.json("contacts", &self.contacts)?,
            limits: at.json("limits", &self.limits)?,
            care,
            name: self.name,
            birth_year: self.birth_year,
            address: self.address,
            grid: self.grid,
            lives_alone: self.lives_alone,
            notes: self.notes,
        })
    }
}

/// An elder's list and object fields as JSON text, ready to bind.
pub(crate) struct ElderJson {
    pub conditions: String,
    pub medications: String,
    pub risks: String,
    pub languages: String,
    pub contacts: String,
    pub limits: String,
    /// The plan without its paired steward, which is `steward_id`.
    pub care: String,
    pub steward_id: Option<String>,
}

impl ElderJson {
    pub(crate) fn of(e: &Elder) -> StoreResult<Self> {
        Ok(Self {
            conditions: to_json("conditions", &e.conditions)?,
            medications: to_json("medications", &e.medications)?,
            risks: to_json("risks", &e.risks)?,
            languages: to_json("languages", &e.languages)?,
            contacts: to_json("contacts", &e.contacts)?,
            limits: to_json("limits", &e.limits)?,
            care: to_json(
                "care",
                &crate::domain::CarePlan {
                    steward_id: None,
                    ..e.care.clone()
                },
            )?,
            steward_id: e.care.steward_id.as_ref().map(|s| s.as_str().to_owned()),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceRow {
    id: String,
    elder_id: Option<String>,
    kind: String,
    heartbeat_s: i32,
    online: bool,
    last_seen: Option<DateTime<Utc>>,
    battery_pct: Option<i32>,
    rssi_dbm: Option<i32>,
    fw: Option<String>,
}

impl DeviceRow {
    pub(crate) fn into_domain(self) -> StoreResult<Device> {
        let at = At {
            table: "device",
            id: &self.id,
        };
        Ok(Device {
            id: at.ok("id", DeviceId::parse(self.id.clone()))?,
            elder_id: at.opt_id("elder_id", self.elder_id, ElderId::parse)?,
            kind: at.text("kind", &self.kind)?,
            heartbeat_s: at.ok("heartbeat_s", u32::try_from(self.heartbeat_s))?,
            battery_pct: self
                .battery_pct
                .map(|b| at.ok("battery_pct", u8::try_from(b)))
                .transpose()?,
            rssi_dbm: self
                .rssi_dbm
                .map(|r| at.ok("rssi_dbm", i16::try_from(r)))
                .transpose()?,
            online: self.online,
            last_seen: self.last_seen,
            fw: self.fw,
        })
    }
}

/// A device's heartbeat interval as the `INTEGER` column holds it.
pub(crate) fn heartbeat_s(d: &Device) -> StoreResult<i32> {
    i32::try_from(d.heartbeat_s)
        .map_err(|_| StoreError::Invalid(format!("heartbeat_s {} is too large", d.heartbeat_s)))
}

#[derive(sqlx::FromRow)]
pub(crate) struct StewardRow {
    id: String,
    name: String,
    phone: String,
    grid: String,
    skills: String,
    languages: String,
    on_duty: bool,
    status: String,
    lat: Option<f64>,
    lon: Option<f64>,
    location_at: Option<DateTime<Utc>>,
    accuracy_m: Option<f64>,
}

impl StewardRow {
    pub(crate) fn into_domain(self) -> StoreResult<Steward> {
        let at = At {
            table: "steward",
            id: &self.id,
        };
        Ok(Steward {
            id: at.ok("id", StewardId::parse(self.id.clone()))?,
            skills: at.json("skills", &self.skills)?,
            languages: at.json("languages", &self.languages)?,
            status: at.text("status", &self.status)?,
            name: self.name,
            phone: self.phone,
            grid: self.grid,
            on_duty: self.on_duty,
            lat: self.lat,
            lon: self.lon,
            location_at: self.location_at,
            accuracy_m: self.accuracy_m,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    username: String,
    password_hash: String,
    role: String,
    steward_id: Option<String>,
    scope: Option<String>,
}

impl UserRow {
    pub(crate) fn into_domain(self) -> StoreResult<User> {
        let at = At {
            table: "user",
            id: &self.username,
        };
        Ok(User {
            role: at.text("role", &self.role)?,
            steward_id: at.opt_id("steward_id", self.steward_id, StewardId::parse)?,
            scope: at.ok("scope", Scope::parse(self.scope.as_deref()))?,
            username: self.username,
            password_hash: self.password_hash,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IncidentRow {
    id: String,
    elder_id: Option<String>,
    device_id: Option<String>,
    kind: String,
    priority: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    acknowledged_at: Option<DateTime<Utc>>,
    on_site_at: Option<DateTime<Utc>>,
    resolved_at: Option<DateTime<Utc>>,
    steward_id: Option<String>,
    escalation_level: i32,
    outcome: Option<String>,
    notes: Option<String>,
    event_count: i64,
    last_event_at: DateTime<Utc>,
    summary: String,
    // Dispatch's clock (migration 0002), not part of what clients see.
    next_dispatch_at: Option<DateTime<Utc>>,
    escalate_at: Option<DateTime<Utc>>,
    failed_offers: i32,
    candidates: String,
}

/// An incident's dispatch clock and reasoning, beside the incident.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DispatchState {
    /// When the incident may next be offered; NULL while offers are live,
    /// while a caller holds the turn, or when it is not dispatched.
    pub next_dispatch_at: Option<DateTime<Utc>>,
    /// When it escalates unless acknowledged.
    pub escalate_at: Option<DateTime<Utc>>,
    /// Declined and expired offers so far.
    pub failed_offers: i32,
    /// The matcher's latest reasoning, as JSON text.
    pub candidates: String,
}

impl DispatchState {
    pub(crate) fn notes(&self, id: &str) -> StoreResult<Vec<CandidateNote>> {
        At {
            table: "incident",
            id,
        }
        .json("candidates", &self.candidates)
    }
}

impl IncidentRow {
    /// The incident and its dispatch state.
    pub(crate) fn into_parts(self) -> StoreResult<(Incident, DispatchState)> {
        let state = DispatchState {
            next_dispatch_at: self.next_dispatch_at,
            escalate_at: self.escalate_at,
            failed_offers: self.failed_offers,
            candidates: self.candidates.clone(),
        };
        Ok((self.into_domain()?, state))
    }

    pub(crate) fn into_domain(self) -> StoreResult<Incident> {
        let at = At {
            table: "incident",
            id: &self.id,
        };
        Ok(Incident {
            id: at.ok("id", IncidentId::parse(self.id.clone()))?,
            elder_id: at.opt_id("elder_id", self.elder_id, ElderId::parse)?,
            device_id: at.opt_id("device_id", self.device_id, DeviceId::parse)?,
            kind: at.text("kind", &self.kind)?,
            priority: at.text("priority", &self.priority)?,
            status: at.text("status", &self.status)?,
            steward_id: at.opt_id("steward_id", self.steward_id, StewardId::parse)?,
            outcome: self
                .outcome
                .as_deref()
                .map(|o| at.text("outcome", o))
                .transpose()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
            acknowledged_at: self.acknowledged_at,
            on_site_at: self.on_site_at,
            resolved_at: self.resolved_at,
            escalation_level: self.escalation_level,
            notes: self.notes,
            event_count: self.event_count,
            last_event_at: self.last_event_at,
            summary: self.summary,
        })
    }
}

/// Converts a list of rows, failing on the first bad one.
pub(crate) fn all<R, T>(rows: Vec<R>, f: impl Fn(R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(f).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct TimelineRow {
    at: DateTime<Utc>,
    what: String,
    actor: String,
}

impl TimelineRow {
    pub(crate) fn into_domain(self) -> TimelineEntry {
        TimelineEntry {
            at: self.at,
            what: self.what,
            actor: self.actor,
        }
    }
}

/// A timeline line waiting to be written with the rest of its
/// transaction's lines in one statement.
#[derive(Debug)]
pub(crate) struct NewTimeline {
    pub incident_id: String,
    pub at: DateTime<Utc>,
    pub what: String,
    pub actor: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    device_id: String,
    event_id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    ts: DateTime<Utc>,
    received_at: DateTime<Utc>,
    data: String,
    elder_id: Option<String>,
    action: String,
    incident_id: Option<String>,
}

impl EventRow {
    pub(crate) fn into_domain(self) -> StoreResult<StoredEvent> {
        let key = format!("{}/{}", self.device_id, self.event_id);
        let at = At {
            table: "event",
            id: &key,
        };
        Ok(StoredEvent {
            device_id: at.ok("device_id", DeviceId::parse(self.device_id.clone()))?,
            event_id: at.ok("event_id", EventId::parse(self.event_id.clone()))?,
            data: at.json("data", &self.data)?,
            elder_id: at.opt_id("elder_id", self.elder_id, ElderId::parse)?,
            action: at.text("action", &self.action)?,
            incident_id: at.opt_id("incident_id", self.incident_id, IncidentId::parse)?,
            event_type: self.event_type,
            ts: self.ts,
            received_at: self.received_at,
        })
    }
}

/// The row `RETURNING` gives for each newly stored event.
#[derive(sqlx::FromRow)]
pub(crate) struct InsertedEvent {
    pub seq: i64,
    pub device_id: String,
    pub event_id: String,
}

#[derive(sqlx::FromRow)]
pub(crate) struct UnknownDeviceRow {
    device_id: String,
    events: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    last_type: Option<String>,
}

impl UnknownDeviceRow {
    pub(crate) fn into_domain(self) -> StoreResult<UnknownDevice> {
        let at = At {
            table: "event of device",
            id: &self.device_id,
        };
        Ok(UnknownDevice {
            device_id: at.ok("device_id", DeviceId::parse(self.device_id.clone()))?,
            events: self.events,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            last_type: self.last_type.unwrap_or_default(),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct LivenessRow {
    id: String,
    last_seen: Option<DateTime<Utc>>,
    online: bool,
    heartbeat_s: i32,
}

impl LivenessRow {
    pub(crate) fn into_domain(self) -> StoreResult<Liveness> {
        let at = At {
            table: "device",
            id: &self.id,
        };
        Ok(Liveness {
            device_id: at.ok("id", DeviceId::parse(self.id.clone()))?,
            heartbeat_s: at.ok("heartbeat_s", u32::try_from(self.heartbeat_s))?,
            last_seen: self.last_seen,
            online: self.online,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeadlineRow {
    key: String,
    due_at: DateTime<Utc>,
    effects: String,
    claimed_until: Option<DateTime<Utc>>,
}

impl DeadlineRow {
    pub(crate) fn into_domain(self) -> StoreResult<Deadline> {
        let at = At {
            table: "deadline",
            id: &self.key,
        };
        Ok(Deadline {
            effects: at.json("effects", &self.effects)?,
            key: self.key,
            due_at: self.due_at,
            claimed_until: self.claimed_until,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OfferRow {
    id: String,
    incident_id: String,
    steward_id: String,
    offered_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    response: Option<String>,
    responded_at: Option<DateTime<Utc>>,
    distance_m: Option<f64>,
}

impl OfferRow {
    pub(crate) fn into_domain(self) -> StoreResult<Offer> {
        let at = At {
            table: "offer",
            id: &self.id,
        };
        Ok(Offer {
            incident_id: at.ok("incident_id", IncidentId::parse(self.incident_id.clone()))?,
            steward_id: at.ok("steward_id", StewardId::parse(self.steward_id.clone()))?,
            response: self
                .response
                .as_deref()
                .map(|r| at.text("response", r))
                .transpose()?,
            offered_at: self.offered_at,
            expires_at: self.expires_at,
            responded_at: self.responded_at,
            distance_m: self.distance_m,
            id: self.id,
        })
    }
}

/// What dispatch needs of a steward beyond [`Steward`]: the incident they
/// are offered or assigned.
#[derive(sqlx::FromRow)]
pub(crate) struct StewardHold {
    pub status: String,
    pub on_duty: bool,
    pub incident_id: Option<String>,
}

impl StewardHold {
    /// The incident they are offered or assigned.
    pub(crate) fn incident(&self) -> StoreResult<Option<IncidentId>> {
        self.incident_id
            .clone()
            .map(|id| {
                IncidentId::parse(id.clone())
                    .map_err(|e| StoreError::Corrupt(format!("steward's incident {id:?}: {e}")))
            })
            .transpose()
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StreamRow {
    seq: i64,
    at: DateTime<Utc>,
    audience: String,
    event: String,
    data: String,
}

impl StreamRow {
    pub(crate) fn into_domain(self) -> StoreResult<StreamEvent> {
        let key = self.seq.to_string();
        let at = At {
            table: "stream",
            id: &key,
        };
        Ok(StreamEvent {
            audience: Audience::parse(&self.audience).ok_or_else(|| {
                StoreError::Corrupt(format!("stream {}: audience {:?}", self.seq, self.audience))
            })?,
            data: at.json("data", &self.data)?,
            event: StreamKind::parse(&self.event).ok_or_else(|| {
                StoreError::Corrupt(format!("stream {}: event {:?}", self.seq, self.event))
            })?,
            seq: self.seq,
            at: self.at,
        })
    }
}

/// The text `outbox.channel` holds.
pub(crate) fn channel_text(c: Channel) -> &'static str {
    c.as_str()
}

fn parse_channel(text: &str) -> Result<Channel, String> {
    Channel::parse(text).ok_or_else(|| format!("unknown channel {text:?}"))
}

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: String,
    incident_id: Option<String>,
    channel: String,
    target: String,
    event: String,
    payload: String,
    created_at: DateTime<Utc>,
    attempts: i32,
    state: String,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
    due_at: DateTime<Utc>,
    offer_id: Option<String>,
    steward_id: Option<String>,
    claimed_until: Option<DateTime<Utc>>,
}

impl OutboxRow {
    pub(crate) fn into_item(self) -> StoreResult<OutboxItem> {
        let at = At {
            table: "outbox",
            id: &self.id,
        };
        Ok(OutboxItem {
            incident_id: at.opt_id("incident_id", self.incident_id, IncidentId::parse)?,
            channel: at.ok("channel", parse_channel(&self.channel))?,
            payload: at.json("payload", &self.payload)?,
            target: self.target,
            event: self.event,
            attempts: self.attempts,
            created_at: self.created_at,
            offer_id: self.offer_id,
            due_at: self.due_at,
            claimed_until: self.claimed_until,
            id: self.id,
        })
    }

    pub(crate) fn into_delivery(self) -> Delivery {
        Delivery {
            id: self.id,
            channel: self.channel,
            target: self.target,
            event: self.event,
            state: self.state,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at: self.created_at,
            delivered_at: self.delivered_at,
            due_at: self.due_at,
            offer_id: self.offer_id,
            steward_id: self.steward_id,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriptionRow {
    id: String,
    steward_id: String,
    endpoint: String,
    p256dh: String,
    auth: String,
    expiration_time: Option<DateTime<Utc>>,
    lang: String,
    created_at: DateTime<Utc>,
    last_push_at: Option<DateTime<Utc>>,
    last_ok: Option<bool>,
    last_error: Option<String>,
}

impl SubscriptionRow {
    pub(crate) fn into_domain(self) -> StoreResult<crate::domain::PushSubscription> {
        let at = At {
            table: "push_subscriptions",
            id: &self.id,
        };
        Ok(crate::domain::PushSubscription {
            steward_id: at.ok("steward_id", StewardId::parse(self.steward_id.clone()))?,
            lang: crate::domain::Lang::parse(&self.lang).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "push_subscriptions {}: lang {:?}",
                    self.id, self.lang
                ))
            })?,
            endpoint: self.endpoint,
            p256dh: self.p256dh,
            auth: self.auth,
            expiration_time: self.expiration_time,
            created_at: self.created_at,
            last_push_at: self.last_push_at,
            last_ok: self.last_ok,
            last_error: self.last_error,
            id: self.id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VisitRow {
    id: String,
    elder_id: String,
    steward_id: Option<String>,
    due_on: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    status: String,
    started_at: Option<DateTime<Utc>>,
    started_how: Option<String>,
    ended_at: Option<DateTime<Utc>>,
    done_by: Option<String>,
    note: Option<String>,
    overdue_at: Option<DateTime<Utc>>,
    incident_id: Option<String>,
}

impl VisitRow {
    pub(crate) fn into_domain(self) -> StoreResult<crate::domain::care::Visit> {
        let at = At {
            table: "visit",
            id: &self.id,
        };
        Ok(crate::domain::care::Visit {
            elder_id: at.ok("elder_id", ElderId::parse(self.elder_id.clone()))?,
            steward_id: self
                .steward_id
                .map(|s| at.ok("steward_id", StewardId::parse(s)))
                .transpose()?,
            due_on: at.ok("due_on", self.due_on.parse::<chrono::NaiveDate>())?,
            status: at.ok("status", self.status.parse())?,
            started_how: self
                .started_how
                .map(|h| at.ok("started_how", h.parse()))
                .transpose()?,
            note: self
                .note
                .as_deref()
                .map(|n| at.json("note", n))
                .transpose()?,
            window_start: self.window_start,
            window_end: self.window_end,
            started_at: self.started_at,
            ended_at: self.ended_at,
            done_by: self.done_by,
            overdue_at: self.overdue_at,
            incident_id: self.incident_id,
            id: self.id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ElderChangeRow {
    elder_id: String,
    at: DateTime<Utc>,
    actor: String,
    field: String,
    added: String,
    removed: String,
    visit_id: Option<String>,
}

impl ElderChangeRow {
    pub(crate) fn into_domain(self) -> StoreResult<crate::store::care::ElderChange> {
        let at = At {
            table: "elder_change",
            id: &self.elder_id,
        };
        Ok(crate::store::care::ElderChange {
            change: crate::domain::care::ListChange {
                add: at.json("added", &self.added)?,
                remove: at.json("removed", &self.removed)?,
            },
            elder_id: at.ok("elder_id", ElderId::parse(self.elder_id.clone()))?,
            at: self.at,
            actor: self.actor,
            field: self.field,
            visit_id: self.visit_id,
        })
    }
}
