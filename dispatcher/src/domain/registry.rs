//! The registry: elders, the devices in their homes, and the stewards who
//! come when they call.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::geo::LatLon;
use super::ids::{ElderId, StewardId};
use super::incident::{IncidentKind, Priority, text_enum};
use super::named::named_fields;
use protocol::DeviceId;

named_fields!(Limits);

/// Someone to call about an elder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Contact {
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub name: String,
    /// "daughter", "neighbour", "village doctor".
    #[schema(pattern = "^[^\\u0000]*$")]
    pub relation: String,
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub phone: String,
}

/// What could go wrong for this elder, as their steward assessed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", default)]
pub struct Risks {
    /// Leaving the bed at night without returning raises an incident.
    pub fall: bool,
    /// An outside door opening at night raises an incident.
    pub wandering: bool,
}

named_fields!(Risks);

/// Per-elder overrides of the site's rule settings. Every field is
/// optional: absent means the site default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Limits {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub heart_rate_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub heart_rate_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub resp_rate_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0)]
    pub resp_rate_max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub spo2_min: Option<f64>,
    /// Minutes a fall-risk elder may be out of bed at night.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10080)]
    pub bed_return_min: Option<u32>,
    /// Minutes without movement that make an `inactivity` event an incident.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 10080)]
    pub inactivity_min: Option<u32>,
    /// Priority overrides per incident kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = BTreeMap<String, Priority>)]
    pub priorities: BTreeMap<IncidentKind, Priority>,
}

/// An elder living at home, with what a steward needs to know on arrival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Elder {
    pub id: ElderId,
    pub name: String,
    pub birth_year: i32,
    pub address: String,
    #[serde(flatten)]
    pub location: LatLon,
    /// The community grid the home belongs to; its steward is preferred.
    pub grid: String,
    pub conditions: Vec<String>,
    /// Each a line as the steward wrote it: "amlodipine 5 mg, morning".
    pub medications: Vec<String>,
    pub risks: Risks,
    pub lives_alone: bool,
    pub languages: Vec<String>,
    pub contacts: Vec<Contact>,
    pub notes: String,
    pub limits: Limits,
    /// Daily check-in and visits (the stewards' daily work).
    #[serde(default)]
    pub care: super::care::CarePlan,
}

/// What a device is, which decides how it is shown and maintained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    CallButton,
    Pendant,
    PullCord,
    BedSensor,
    FallRadar,
    VitalsPad,
    Smoke,
    Door,
    Gateway,
    Other,
}

text_enum!(DeviceKind {
    CallButton => "call_button",
    Pendant => "pendant",
    PullCord => "pull_cord",
    BedSensor => "bed_sensor",
    FallRadar => "fall_radar",
    VitalsPad => "vitals_pad",
    Smoke => "smoke",
    Door => "door",
    Gateway => "gateway",
    Other => "other",
});

/// A device in an elder's home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    #[schema(value_type = super::DeviceIdSchema)]
    pub id: DeviceId,
    /// None while the device is in stock or being moved between homes.
    pub elder_id: Option<ElderId>,
    pub kind: DeviceKind,
    /// How often the device promises a heartbeat; 3 missed in a row raise
    /// `device.offline`.
    pub heartbeat_s: u32,
    pub online: bool,
    pub last_seen: Option<DateTime<Utc>>,
    pub battery_pct: Option<u8>,
    pub rssi_dbm: Option<i16>,
    pub fw: Option<String>,
}

/// Where a steward stands in dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StewardStatus {
    Available,
    Offered,
    Busy,
    OffDuty,
}

text_enum!(StewardStatus {
    Available => "available",
    Offered => "offered",
    Busy => "busy",
    OffDuty => "off_duty",
});

/// A steward: the first to arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Steward {
    pub id: StewardId,
    pub name: String,
    pub phone: String,
    pub grid: String,
    /// "first_aid", "nurse", "driver", "tibetan"… matched against what an
    /// incident needs.
    pub skills: Vec<String>,
    pub languages: Vec<String>,
    pub on_duty: bool,
    pub status: StewardStatus,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub location_at: Option<DateTime<Utc>>,
    pub accuracy_m: Option<f64>,
}

impl Steward {
    pub fn location(&self) -> Option<LatLon> {
        LatLon::new(self.lat?, self.lon?).ok()
    }
}

impl fmt::Display for Steward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.id)
    }
}
