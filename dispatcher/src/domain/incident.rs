//! Incidents: one need of one elder, from the first event to its close.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::{ElderId, IncidentId, StewardId};
use protocol::DeviceId;

/// How urgently help is needed, highest first. The order of the variants
/// is the order of urgency (`Critical < Urgent` sorts critical first).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Critical,
    Urgent,
    Routine,
    Technical,
}

/// Where an incident stands. `Dispatching`, `Acknowledged` and `OnSite`
/// are open; the store allows one open incident per dedup key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Dispatching,
    Acknowledged,
    OnSite,
    Resolved,
    Cancelled,
}

impl IncidentState {
    pub const OPEN: [IncidentState; 3] = [Self::Dispatching, Self::Acknowledged, Self::OnSite];

    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }

    /// Nobody has reached the elder yet: an elder's cancel still closes it.
    pub fn is_unreached(self) -> bool {
        matches!(self, Self::Dispatching | Self::Acknowledged)
    }
}

/// What kind of need. Elder kinds are keyed per elder; technical kinds
/// (`battery.low`, `tamper`, `device.offline`) per device, since two
/// devices of one elder can fail separately.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum IncidentKind {
    #[serde(rename = "call")]
    Call,
    #[serde(rename = "fall")]
    Fall,
    #[serde(rename = "vitals")]
    Vitals,
    #[serde(rename = "smoke")]
    Smoke,
    #[serde(rename = "inactivity")]
    Inactivity,
    /// A wandering-risk elder's door opened at night.
    #[serde(rename = "door.night")]
    DoorAtNight,
    /// A fall-risk elder left the bed at night and did not come back.
    #[serde(rename = "bed.no_return")]
    BedNoReturn,
    /// An elder on daily check-in showed no sign of life by their time:
    /// a welfare check.
    #[serde(rename = "checkin.missed")]
    CheckinMissed,
    /// A planned visit's window passed with nobody at the door.
    #[serde(rename = "visit.overdue")]
    VisitOverdue,
    #[serde(rename = "battery.low")]
    BatteryLow,
    #[serde(rename = "tamper")]
    Tamper,
    #[serde(rename = "device.offline")]
    DeviceOffline,
}

impl IncidentKind {
    /// Technical kinds belong to a device, not to the elder's care.
    pub fn is_technical(self) -> bool {
        matches!(self, Self::BatteryLow | Self::Tamper | Self::DeviceOffline)
    }
}

/// The outcomes a steward or supervisor resolves with (`cleared` is the
/// system's own): the schema of `ResolveRequest.outcome`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolveOutcome {
    Assisted,
    FalseAlarm,
    Hospital,
    Other,
}

/// How a resolved incident ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Assisted,
    FalseAlarm,
    Hospital,
    Other,
    /// A technical incident that cleared itself (the device was heard again).
    Cleared,
}

/// Text forms for the store and query strings. The serde names are the
/// same (a test checks), so there is one spelling of each.
macro_rules! text_enum {
    ($t:ident { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$(Self::$v),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(Self::$v),)*
                    _ => Err(format!(
                        "unknown {} {s:?}; one of: {}",
                        stringify!($t),
                        [$($s),*].join(", ")
                    )),
                }
            }
        }

        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(Priority { Critical => "critical", Urgent => "urgent", Routine => "routine", Technical => "technical" });
text_enum!(IncidentState {
    Dispatching => "dispatching",
    Acknowledged => "acknowledged",
    OnSite => "on_site",
    Resolved => "resolved",
    Cancelled => "cancelled",
});
text_enum!(Outcome {
    Assisted => "assisted",
    FalseAlarm => "false_alarm",
    Hospital => "hospital",
    Other => "other",
    Cleared => "cleared",
});
text_enum!(IncidentKind {
    Call => "call",
    Fall => "fall",
    Vitals => "vitals",
    Smoke => "smoke",
    Inactivity => "inactivity",
    DoorAtNight => "door.night",
    BedNoReturn => "bed.no_return",
    CheckinMissed => "checkin.missed",
    VisitOverdue => "visit.overdue",
    BatteryLow => "battery.low",
    Tamper => "tamper",
    DeviceOffline => "device.offline",
});

/// The key that makes "one open incident per elder and kind" a store
/// constraint: `elder:{id}:{kind}` or, for technical kinds,
/// `device:{id}:{kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(String);

impl DedupKey {
    pub fn for_elder(elder: &ElderId, kind: IncidentKind) -> Self {
        Self(format!("elder:{elder}:{kind}"))
    }

    pub fn for_device(device: &DeviceId, kind: IncidentKind) -> Self {
        Self(format!("device:{device}:{kind}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An incident as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Incident {
    pub id: IncidentId,
    pub elder_id: Option<ElderId>,
    #[schema(value_type = Option<super::DeviceIdSchema>)]
    pub device_id: Option<DeviceId>,
    pub kind: IncidentKind,
    pub priority: Priority,
    pub status: IncidentState,
    /// When the dispatcher received the first event; every response time
    /// is measured from here.
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub on_site_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub steward_id: Option<StewardId>,
    pub escalation_level: i32,
    pub outcome: Option<Outcome>,
    /// The steward's or supervisor's closing note, or the cancel reason.
    pub notes: Option<String>,
    /// How many events joined this incident (1 for the one that opened it).
    pub event_count: i64,
    pub last_event_at: DateTime<Utc>,
    /// A human summary of what raised it: "heart rate 38/min below 45".
    pub summary: String,
}

/// How an offer ended; `None` while it is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferResponse {
    Accepted,
    Declined,
    Expired,
    /// Taken back: another steward accepted first, the incident was
    /// cancelled or reassigned, or the steward went off duty.
    Withdrawn,
}

text_enum!(OfferResponse {
    Accepted => "accepted",
    Declined => "declined",
    Expired => "expired",
    Withdrawn => "withdrawn",
});

/// One offer of an incident to a steward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Offer {
    pub id: String,
    pub incident_id: IncidentId,
    pub steward_id: StewardId,
    pub offered_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub response: Option<OfferResponse>,
    pub responded_at: Option<DateTime<Utc>>,
    /// Estimated travel distance (straight line times the detour factor).
    pub distance_m: Option<f64>,
}

/// Why a steward was or was not offered an incident, kept on the incident
/// so a supervisor can see the matcher's reasoning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CandidateNote {
    pub steward_id: StewardId,
    pub name: String,
    pub distance_m: Option<f64>,
    /// `offered`, `passed` or `lost` (claimed by another incident first).
    pub verdict: String,
    /// In words: "nearest available, 420 m", "off duty", "location 2 h old".
    pub reason: String,
}

/// One outside notification of an incident and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    /// `webhook`, `device`, `push`, `sms` or `voice`.
    pub channel: String,
    /// The webhook's name, the device id, or the steward id.
    pub target: String,
    /// `incident.opened`, `incident.escalated`, `incident.update`…; for
    /// a steward `offer`, `offer.repeat`, `offer.close`, `offer.sms`,
    /// `offer.voice`.
    pub event: String,
    /// `pending`, `delivered`, `failed`, or `cancelled` (a step of an
    /// offer's ladder that was not needed: the offer ended first).
    pub state: String,
    pub attempts: i32,
    /// Why it failed, is being retried, or was cancelled.
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it was (or is) due: a ladder step's time.
    pub due_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The offer a push, SMS or call was about.
    pub offer_id: Option<String>,
    /// The steward it tried to reach.
    #[schema(value_type = Option<String>)]
    pub steward_id: Option<String>,
}

/// One line of an incident's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// What happened, in words an operator reads: "opened by call.pressed".
    pub what: String,
    /// Who did it: `device:{id}`, `steward:{id}`, `user:{name}`, `system`.
    pub actor: String,
}

/// An incident with its offers and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: Incident,
    pub offers: Vec<Offer>,
    pub timeline: Vec<TimelineEntry>,
    /// The matcher's reasoning at the latest dispatch round.
    pub candidates: Vec<CandidateNote>,
    /// Outside notifications (webhooks, device commands) and their state.
    pub deliveries: Vec<Delivery>,
}

impl Incident {
    /// The incident as the steward `me` may see it: the assigned steward
    /// only if it is `me`.
    pub fn as_seen_by(mut self, me: &StewardId) -> Self {
        if self.steward_id.as_ref() != Some(me) {
            self.steward_id = None;
        }
        self
    }
}

impl IncidentDetail {
    /// The incident as the steward `me` may see it: no other steward in
    /// it. Only `me`'s offers, matcher notes and deliveries; no timeline
    /// line done by another steward or naming one (their ids, names,
    /// distances and answers are theirs and the supervisors'). What the
    /// elder needs and what happened stays.
    pub fn as_seen_by(self, me: &StewardId) -> Self {
        let mut others: Vec<String> = self
            .offers
            .iter()
            .map(|o| o.steward_id.to_string())
            .chain(self.candidates.iter().map(|c| c.steward_id.to_string()))
            .chain(self.deliveries.iter().filter_map(|d| d.steward_id.clone()))
            .chain(self.incident.steward_id.iter().map(ToString::to_string))
            .filter(|id| id != me.as_str())
            .collect();
        others.sort_unstable();
        others.dedup();
        let names_another = |entry: &TimelineEntry| {
            let by_another = entry
                .actor
                .strip_prefix("steward:")
                .is_some_and(|id| id != me.as_str());
            // Steward ids are [A-Za-z0-9_-]: split on anything else.
            by_another
                || entry
                    .what
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .any(|word| others.binary_search_by(|o| o.as_str().cmp(word)).is_ok())
        };
        Self {
            incident: self.incident.as_seen_by(me),
            offers: self
                .offers
                .into_iter()
                .filter(|o| &o.steward_id == me)
                .collect(),
            timeline: self
                .timeline
                .into_iter()
                .filter(|t| !names_another(t))
                .collect(),
            candidates: self
                .candidates
                .into_iter()
                .filter(|c| &c.steward_id == me)
                .collect(),
            deliveries: self
                .deliveries
                .into_iter()
                .filter(|d| d.steward_id.as_deref() == Some(me.as_str()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip() {
        for &k in IncidentKind::ALL {
            assert_eq!(k.as_str().parse::<IncidentKind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(Priority::Critical.as_str(), "critical");
        assert_eq!(
            "on_site".parse::<IncidentState>().unwrap(),
            IncidentState::OnSite
        );
        assert_eq!(Outcome::FalseAlarm.to_string(), "false_alarm");
        assert!(Priority::Critical < Priority::Technical);
    }
}
