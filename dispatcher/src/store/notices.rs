//! What each incident change tells the world, written once for both
//! backends: the stream rows SSE clients read (audience, event, JSON data)
//! and the outbox rows delivered after the commit (device commands,
//! webhooks). Pure: the store builds a [`Notices`] while it changes an
//! incident and inserts its rows in the same transaction
//! (ARCHITECTURE.md rule 2). The table of what each change writes is in
//! [`super::dispatch`]; the methods below are its rows.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::dispatch::{Audience, Channel, StreamKind};
use crate::domain::{
    AssignedView, CloseNote, ContactChannel, Elder, Incident, IncidentId, LiveOffer, Offer,
    OfferView, Priority, ReachStep, Steward, StewardId,
};
use crate::rules::RuleBook;
use crate::settings::WebhookAudience;
use protocol::{CommandMessage, DeviceId, EventId, IncidentUpdateState, TestAck};

pub use crate::domain::WithdrawReason;

/// An incident change that reaches outside: the device in the home and
/// the webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened,
    /// Accepted by a steward or assigned by a supervisor.
    Acknowledged,
    OnSite,
    /// Resolved by a person or cleared by a rule.
    Resolved,
    Cancelled,
    Escalated,
}

impl Transition {
    /// The webhook event name.
    pub fn event(self) -> &'static str {
        match self {
            Self::Opened => "incident.opened",
            Self::Acknowledged => "incident.acknowledged",
            Self::OnSite => "incident.on_site",
            Self::Resolved => "incident.resolved",
            Self::Cancelled => "incident.cancelled",
            Self::Escalated => "incident.escalated",
        }
    }

    /// What the elder's device shows; an escalation is not the elder's news.
    fn device_state(self) -> Option<IncidentUpdateState> {
        match self {
            Self::Opened => Some(IncidentUpdateState::Received),
            Self::Acknowledged => Some(IncidentUpdateState::Acknowledged),
            Self::OnSite => Some(IncidentUpdateState::OnSite),
            Self::Resolved => Some(IncidentUpdateState::Resolved),
            Self::Cancelled => Some(IncidentUpdateState::Cancelled),
            Self::Escalated => None,
        }
    }

    /// Whether a webhook of this audience hears about it.
    fn reaches(self, audience: WebhookAudience, priority: Priority) -> bool {
        match audience {
            WebhookAudience::Supervisors => true,
            WebhookAudience::Family => self == Self::Escalated && priority == Priority::Critical,
        }
    }
}

/// One stream row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStream {
    pub at: DateTime<Utc>,
    pub audience: Audience,
    pub event: StreamKind,
    pub data: Value,
}

/// One outbox row to insert (`state` pending).
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub id: String,
    pub incident_id: Option<String>,
    pub channel: Channel,
    pub target: String,
    pub event: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    /// Now, or a ladder step's time.
    pub due_at: DateTime<Utc>,
    /// The offer a push, SMS or call is about.
    pub offer_id: Option<String>,
    /// The steward a push, SMS or call reaches.
    pub steward_id: Option<String>,
}

/// Outbox events of the rows that reach a steward.
pub const REACH_OFFER: &str = "offer";
pub const REACH_REPEAT: &str = "offer.repeat";
pub const REACH_CLOSE: &str = "offer.close";
pub const REACH_SMS: &str = "offer.sms";
pub const REACH_VOICE: &str = "offer.voice";
/// A supervisor assigned the steward an incident.
pub const REACH_ASSIGNED: &str = "assigned";

/// The outbox event of a ladder step.
pub fn reach_event(step: &ReachStep) -> &'static str {
    match (step.channel, step.repeat) {
        (ContactChannel::Push, 0) => REACH_OFFER,
        (ContactChannel::Push, _) => REACH_REPEAT,
        (ContactChannel::Sms, _) => REACH_SMS,
        (ContactChannel::Voice, _) => REACH_VOICE,
    }
}

/// The notices of one transaction, in the order they happened.
#[derive(Debug, Default)]
pub struct Notices {
    pub stream: Vec<NewStream>,
    pub outbox: Vec<NewOutbox>,
    /// Stewards whose row changed, as the transaction left them (not
    /// written: the matcher hears of them after the commit).
    pub stewards: Vec<Steward>,
}

impl Notices {
    pub fn is_empty(&self) -> bool {
        self.stream.is_empty() && self.outbox.is_empty()
    }

    /// The incident after a change, to supervisors and to its assigned
    /// steward. One transaction may change an incident twice (a decline
    /// that escalates): each audience gets it once, as it ends.
    pub fn incident(&mut self, incident: &Incident, now: DateTime<Utc>) {
        let data = json!(incident);
        self.push_once(
            Audience::Supervisors,
            StreamKind::Incident,
            data.clone(),
            now,
        );
        if let Some(s) = &incident.steward_id {
            self.push_once(
                Audience::Steward(s.clone()),
                StreamKind::Incident,
                data,
                now,
            );
        }
    }

    /// A steward after a status change, to supervisors.
    pub fn steward(&mut self, steward: &Steward, now: DateTime<Utc>) {
        self.push_once(
            Audience::Supervisors,
            StreamKind::Steward,
            json!(steward),
            now,
        );
        match self.stewards.iter_mut().find(|s| s.id == steward.id) {
            Some(earlier) => *earlier = steward.clone(),
            None => self.stewards.push(steward.clone()),
        }
    }

    /// A new offer, to its steward, with what they need to decide and go;
    /// and one outbox row per step of `reach` (the pushes, SMS and calls
    /// that reach them while the app is not on screen), each due at its
    /// step's time and carrying only what a lock screen may show.
    pub fn offer(
        &mut self,
        incident: &Incident,
        elder: Option<&Elder>,
        offer: &Offer,
        reach: &[ReachStep],
        now: DateTime<Utc>,
    ) {
        self.stream.push(NewStream {
            at: now,
            audience: Audience::Steward(offer.steward_id.clone()),
            event: StreamKind::Offer,
            data: json!(LiveOffer {
                incident: incident.clone(),
                elder: elder.cloned(),
                distance_m: offer.distance_m,
                expires_at: offer.expires_at,
            }),
        });
        for step in reach {
            let view = OfferView {
                incident_id: incident.id.clone(),
                offer_id: offer.id.clone(),
                steward_id: offer.steward_id.clone(),
                priority: incident.priority,
                kind: incident.kind,
                elder_name: elder.map(|e| e.name.clone()),
                distance_m: offer.distance_m,
                expires_at: offer.expires_at,
                repeat: step.repeat,
            };
            self.outbox.push(NewOutbox {
                id: outbox_id(now),
                incident_id: Some(incident.id.to_string()),
                channel: step.channel.into(),
                target: offer.steward_id.to_string(),
                event: reach_event(step).to_owned(),
                payload: json!(view),
                created_at: now,
                due_at: step.at,
                offer_id: Some(offer.id.clone()),
                steward_id: Some(offer.steward_id.to_string()),
            });
        }
    }

    /// A push telling a steward a supervisor assigned them the incident:
    /// their app may be closed, and nobody else is going.
    pub fn assigned(&mut self, view: &AssignedView, now: DateTime<Utc>) {
        self.outbox.push(NewOutbox {
            id: outbox_id(now),
            incident_id: Some(view.incident_id.to_string()),
            channel: Channel::Push,
            target: view.steward_id.to_string(),
            event: REACH_ASSIGNED.to_owned(),
            payload: json!(view),
            created_at: now,
            due_at: now,
            offer_id: None,
            steward_id: Some(view.steward_id.to_string()),
        });
    }

    /// A push that closes an offer's notification on the steward's phones
    /// (the offer was answered, taken, withdrawn or expired).
    pub fn close(&mut self, note: &CloseNote, now: DateTime<Utc>) {
        self.outbox.push(NewOutbox {
            id: outbox_id(now),
            incident_id: Some(note.incident_id.to_string()),
            channel: Channel::Push,
            target: note.steward_id.to_string(),
            event: REACH_CLOSE.to_owned(),
            payload: json!(note),
            created_at: now,
            due_at: now,
            offer_id: Some(note.offer_id.clone()),
            steward_id: Some(note.steward_id.to_string()),
        });
    }

    /// An offer that went away, to its steward.
    pub fn withdrawn(
        &mut self,
        steward: &StewardId,
        incident: &IncidentId,
        reason: WithdrawReason,
        now: DateTime<Utc>,
    ) {
        self.stream.push(NewStream {
            at: now,
            audience: Audience::Steward(steward.clone()),
            event: StreamKind::OfferWithdrawn,
            data: json!({"incident_id": incident, "reason": reason.as_str()}),
        });
    }

    /// The outside side of a transition: the command to the elder's
    /// device (when the incident has one) and one row per webhook whose
    /// audience it reaches. `elder` fills the webhooks' elder (null when
    /// the incident has none).
    pub fn transition(
        &mut self,
        t: Transition,
        incident: &Incident,
        elder: Option<&Elder>,
        rules: &RuleBook,
        now: DateTime<Utc>,
    ) {
        // The elder's button says "help is coming" only for their own
        // needs: a lamp lit for a low battery or a lost connection would
        // tell the elder help is on the way when nobody is.
        let for_the_elder = !incident.kind.is_technical();
        if let (Some(state), Some(device), true) =
            (t.device_state(), &incident.device_id, for_the_elder)
        {
            let command = CommandMessage::incident_update(incident.id.as_str(), state, now);
            self.push_outbox(
                incident,
                Channel::Device,
                device.to_string(),
                CommandMessage::INCIDENT_UPDATE,
                json!(command),
                now,
            );
        }
        let hooks: Vec<_> = rules
            .notify()
            .webhooks
            .iter()
            .filter(|w| t.reaches(w.audience, incident.priority))
            .map(|w| w.name.clone())
            .collect();
        if hooks.is_empty() {
            return;
        }
        let payload = json!({
            "event": t.event(),
            "incident": incident,
            "elder": elder.map(elder_essentials),
            "at": now,
        });
        for name in hooks {
            self.push_outbox(
                incident,
                Channel::Webhook,
                name,
                t.event(),
                payload.clone(),
                now,
            );
        }
    }

    /// The answer to a device's test call: `test.ack` on its commands
    /// topic, so its lamp proves the round trip (docs/PROTOCOL-EXTENSIONS.md).
    pub fn test_ack(&mut self, device: &DeviceId, event_id: &EventId, now: DateTime<Utc>) {
        self.outbox.push(NewOutbox {
            id: outbox_id(now),
            incident_id: None,
            channel: Channel::Device,
            target: device.to_string(),
            event: TestAck::TYPE.to_owned(),
            payload: json!(TestAck::new(event_id.as_str(), now)),
            created_at: now,
            due_at: now,
            offer_id: None,
            steward_id: None,
        });
    }

    fn push_once(
        &mut self,
        audience: Audience,
        event: StreamKind,
        data: Value,
        now: DateTime<Utc>,
    ) {
        let same = |s: &NewStream| {
            s.event == event && s.audience == audience && s.data.get("id") == data.get("id")
        };
        match self.stream.iter_mut().find(|s| same(s)) {
            Some(earlier) => {
                earlier.data = data;
                earlier.at = now;
            }
            None => self.stream.push(NewStream {
                at: now,
                audience,
                event,
                data,
            }),
        }
    }

    fn push_outbox(
        &mut self,
        incident: &Incident,
        channel: Channel,
        target: String,
        event: &str,
        payload: Value,
        now: DateTime<Utc>,
    ) {
        self.outbox.push(NewOutbox {
            id: outbox_id(now),
            incident_id: Some(incident.id.to_string()),
            channel,
            target,
            event: event.to_owned(),
            payload,
            created_at: now,
            due_at: now,
            offer_id: None,
            steward_id: None,
        });
    }
}

/// Outbox ids sort by creation time and then by order of writing in this
/// process, so a claimer ordering by id tells a device `received` before
/// `cancelled` even when both were written at one instant (a controlled
/// clock, one ingest batch). The random tail keeps instances apart.
pub fn outbox_id(now: DateTime<Utc>) -> String {
    static WRITTEN: AtomicU64 = AtomicU64::new(0);
    let micros = now.timestamp_micros().max(0);
    let n = WRITTEN.fetch_add(1, Ordering::Relaxed);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("out-{micros:016x}-{n:016x}-{}", &random[..12])
}

/// What a webhook (a supervisors' group, a family notifier) is told about
/// the elder: who, where, what to know on arrival, whom to call.
pub fn elder_essentials(elder: &Elder) -> Value {
    json!({
        "id": elder.id,
        "name": elder.name,
        "address": elder.address,
        "lat": elder.location.lat,
        "lon": elder.location.lon,
        "conditions": elder.conditions,
        "medications": elder.medications,
        "contacts": elder.contacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Contact, ElderId, IncidentKind, IncidentState, LatLon, StewardStatus};
    use crate::settings::{NotifySettings, RuleSettings, Secret, WebhookTarget};

    fn now() -> DateTime<Utc> {
        "2026-11-28T16:00:00Z".parse().unwrap()
    }

    fn incident(priority: Priority, device: Option<&str>) -> Incident {
        Incident {
            id: IncidentId::parse("inc-1").unwrap(),
            elder_id: Some(ElderId::parse("e-1").unwrap()),
            device_id: device.map(|d| DeviceId::parse(d).unwrap()),
            kind: IncidentKind::Call,
            priority,
            status: IncidentState::Dispatching,
            created_at: now(),
            updated_at: now(),
            acknowledged_at: None,
            on_site_at: None,
            resolved_at: None,
            steward_id: None,
            escalation_level: 0,
            outcome: None,
            notes: None,
            event_count: 1,
            last_event_at: now(),
            summary: "call pressed".into(),
        }
    }

    fn elder() -> Elder {
        Elder {
            id: ElderId::parse("e-1").unwrap(),
            name: "Yangzom".into(),
            birth_year: 1940,
            address: "12 Barkhor Street".into(),
            location: LatLon::new(29.65, 91.13).unwrap(),
            grid: "g-1".into(),
            conditions: vec!["hypertension".into()],
            medications: vec![],
            risks: Default::default(),
            lives_alone: true,
            languages: vec![],
            contacts: vec![Contact {
                name: "Dolma".into(),
                relation: "daughter".into(),
                phone: "+86".into(),
            }],
            notes: "key under the mat".into(),
            limits: Default::default(),
            care: Default::default(),
        }
    }

    fn hook(name: &str, audience: WebhookAudience) -> WebhookTarget {
        WebhookTarget {
            name: name.into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: Secret::new("k"),
            audience,
            max_attempts: 3,
        }
    }

    fn rules_with_hooks() -> RuleBook {
        RuleBook::new(RuleSettings::default()).with_dispatch(
            Default::default(),
            NotifySettings {
                webhooks: vec![
                    hook("board", WebhookAudience::Supervisors),
                    hook("family", WebhookAudience::Family),
                ],
                ..Default::default()
            },
        )
    }

    fn targets(n: &Notices) -> Vec<(Channel, &str, &str)> {
        n.outbox
            .iter()
            .map(|o| (o.channel, o.target.as_str(), o.event.as_str()))
            .collect()
    }

    #[test]
    fn an_opened_incident_tells_the_device_and_the_supervisors_hook() {
        let mut n = Notices::default();
        let inc = incident(Priority::Urgent, Some("btn-1"));
        n.incident(&inc, now());
        n.transition(
            Transition::Opened,
            &inc,
            Some(&elder()),
            &rules_with_hooks(),
            now(),
        );
        assert_eq!(n.stream.len(), 1);
        assert_eq!(n.stream[0].audience, Audience::Supervisors);
        assert_eq!(n.stream[0].event, StreamKind::Incident);
        assert_eq!(
            targets(&n),
            vec![
                (Channel::Device, "btn-1", "incident.update"),
                (Channel::Webhook, "board", "incident.opened"),
            ]
        );
        assert_eq!(n.outbox[0].payload["state"], "received");
        assert_eq!(n.outbox[0].payload["incident_id"], "inc-1");
        let hook = &n.outbox[1].payload;
        assert_eq!(hook["event"], "incident.opened");
        assert_eq!(hook["elder"]["name"], "Yangzom");
        assert_eq!(hook["elder"]["contacts"][0]["name"], "Dolma");
        assert!(hook["elder"].get("notes").is_none(), "essentials only");
        assert!(n.outbox[0].id < n.outbox[1].id, "ids sort in writing order");
    }

    #[test]
    fn family_hears_only_critical_escalations() {
        let r = rules_with_hooks();
        let mut urgent = Notices::default();
        urgent.transition(
            Transition::Escalated,
            &incident(Priority::Urgent, None),
            None,
            &r,
            now(),
        );
        assert_eq!(
            targets(&urgent),
            vec![(Channel::Webhook, "board", "incident.escalated")]
        );
        assert_eq!(urgent.outbox[0].payload["elder"], Value::Null);

        let mut critical = Notices::default();
        let inc = incident(Priority::Critical, Some("btn-1"));
        critical.transition(Transition::Escalated, &inc, Some(&elder()), &r, now());
        assert_eq!(
            targets(&critical),
            vec![
                (Channel::Webhook, "board", "incident.escalated"),
                (Channel::Webhook, "family", "incident.escalated"),
            ],
            "no device command for an escalation"
        );
        let mut opened = Notices::default();
        opened.transition(Transition::Opened, &inc, None, &r, now());
        assert!(!targets(&opened).iter().any(|t| t.1 == "family"));
    }

    #[test]
    fn each_audience_gets_an_incident_once_per_change() {
        let mut n = Notices::default();
        let mut inc = incident(Priority::Urgent, None);
        n.incident(&inc, now());
        inc.steward_id = Some(StewardId::parse("s-1").unwrap());
        inc.escalation_level = 1;
        n.incident(&inc, now());
        let got: Vec<_> = n
            .stream
            .iter()
            .map(|s| (s.audience.as_text(), s.event.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("supervisors".to_owned(), "incident"),
                ("steward:s-1".to_owned(), "incident"),
            ]
        );
        assert_eq!(
            n.stream[0].data["escalation_level"], 1,
            "the last state wins"
        );
    }

    #[test]
    fn offers_and_withdrawals_reach_their_steward() {
        let mut n = Notices::default();
        let inc = incident(Priority::Critical, None);
        let s1 = StewardId::parse("s-1").unwrap();
        let offer = Offer {
            id: "off-1".into(),
            incident_id: inc.id.clone(),
            steward_id: s1.clone(),
            offered_at: now(),
            expires_at: now() + chrono::Duration::seconds(30),
            response: None,
            responded_at: None,
            distance_m: Some(420.0),
        };
        n.offer(&inc, Some(&elder()), &offer, &[], now());
        n.withdrawn(&s1, &inc.id, WithdrawReason::Taken, now());
        let steward = Steward {
            id: s1.clone(),
            name: "Pema".into(),
            phone: "+86".into(),
            grid: "g-1".into(),
            skills: vec![],
            languages: vec![],
            on_duty: true,
            status: StewardStatus::Available,
            lat: None,
            lon: None,
            location_at: None,
            accuracy_m: None,
        };
        n.steward(&steward, now());
        assert_eq!(n.stream[0].audience, Audience::Steward(s1.clone()));
        assert_eq!(n.stream[0].data["distance_m"], 420.0);
        assert_eq!(n.stream[0].data["elder"]["notes"], "key under the mat");
        assert_eq!(n.stream[1].event, StreamKind::OfferWithdrawn);
        assert_eq!(
            n.stream[1].data,
            json!({"incident_id": "inc-1", "reason": "taken"})
        );
        assert_eq!(n.stream[2].audience, Audience::Supervisors);
        assert_eq!(n.stream[2].data["status"], "available");
        assert!(n.outbox.is_empty());
    }
}
