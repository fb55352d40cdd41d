//! The event message (`{root}/devices/{id}/events`) and its validation.
//!
//! Validation is done once, here, in the order PROTOCOL.md lists the bad
//! inputs; a value of [`EventMessage`] is always a valid event.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{DeviceId, EventId};
use crate::reject::{RejectReason, Rejection};

/// The largest event payload a device may send.
pub const MAX_EVENT_BYTES: usize = 4096;

/// The longest event type name (known names are far shorter).
pub const MAX_TYPE_LEN: usize = 64;

/// How far ahead of the dispatcher's clock a device's `ts` may be.
pub const MAX_FUTURE_SKEW: Duration = Duration::hours(24);

/// The readings a body or a device can physically produce, by event type
/// and `data` field: `(type, field, min, max)`, both ends included. A
/// reading outside its range is a broken sensor, not an emergency, and its
/// message is rejected (`out_of_range`) rather than opening a critical
/// incident; a reading that is absent, `null` or not a number is not
/// checked (the field is then ignored, as before). Wide on purpose: an
/// elder's own limits decide what is alarming, these only what is
/// impossible. A heart rate or breathing rate of 0 is possible (an arrest)
/// and is kept.
///
/// `fall.detected`'s `confidence` is deliberately not here: a fall report
/// is never dropped for a bad confidence (one outside 0..1 is ignored and
/// the fall is acted on).
pub const PHYSICAL_RANGES: [(EventType, &str, f64, f64); 5] = [
    (EventType::Vitals, "heart_rate", 0.0, 350.0),
    (EventType::Vitals, "resp_rate", 0.0, 120.0),
    (EventType::Vitals, "spo2", 0.0, 100.0),
    (EventType::Inactivity, "minutes", 0.0, 525_600.0),
    (EventType::BatteryLow, "level_pct", 0.0, 100.0),
];

/// What happened, as the device names it. Unknown names are kept: newer
/// firmware may send types this dispatcher does not know yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum EventType {
    CallPressed,
    CallCancelled,
    FallDetected,
    BedExit,
    BedReturn,
    Vitals,
    Inactivity,
    SmokeDetected,
    DoorOpen,
    BatteryLow,
    Tamper,
    /// Extension (docs/PROTOCOL-EXTENSIONS.md): the elder's daily "I am
    /// well" press.
    CheckinPressed,
    /// Extension: a steward at the door (the bed's button pressed twice).
    StewardHere,
    /// Extension: a scheduled test call (the button held for 5 s).
    TestCall,
    /// Extension: the device lit its lamp for a test call's answer.
    TestConfirmed,
    Unknown(String),
}

impl EventType {
    pub const KNOWN: [EventType; 15] = [
        Self::CallPressed,
        Self::CallCancelled,
        Self::FallDetected,
        Self::BedExit,
        Self::BedReturn,
        Self::Vitals,
        Self::Inactivity,
        Self::SmokeDetected,
        Self::DoorOpen,
        Self::BatteryLow,
        Self::Tamper,
        Self::CheckinPressed,
        Self::StewardHere,
        Self::TestCall,
        Self::TestConfirmed,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Self::CallPressed => "call.pressed",
            Self::CallCancelled => "call.cancelled",
            Self::FallDetected => "fall.detected",
            Self::BedExit => "bed.exit",
            Self::BedReturn => "bed.return",
            Self::Vitals => "vitals",
            Self::Inactivity => "inactivity",
            Self::SmokeDetected => "smoke.detected",
            Self::DoorOpen => "door.open",
            Self::BatteryLow => "battery.low",
            Self::Tamper => "tamper",
            Self::CheckinPressed => "checkin.pressed",
            Self::StewardHere => "steward.here",
            Self::TestCall => "test.call",
            Self::TestConfirmed => "test.confirmed",
            Self::Unknown(s) => s,
        }
    }
}

impl From<String> for EventType {
    fn from(s: String) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(Self::Unknown(s))
    }
}

impl From<&str> for EventType {
    fn from(s: &str) -> Self {
        Self::from(s.to_owned())
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.as_str().to_owned()
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid event from one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    pub event_id: EventId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the device saw it. Response times use the dispatcher's own
    /// receive time instead: device clocks drift.
    pub ts: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

/// Vital signs; each is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Vitals {
    pub heart_rate: Option<f64>,
    pub resp_rate: Option<f64>,
    pub spo2: Option<f64>,
}

impl EventMessage {
    pub fn new(event_id: EventId, event_type: EventType, ts: DateTime<Utc>) -> Self {
        Self {
            event_id,
            event_type,
            ts,
            data: Map::new(),
        }
    }

    pub fn with_data(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.data.get(key).and_then(Value::as_f64)
    }

    /// A short text field, only if it is printable: it ends up in summaries
    /// an operator reads (and a NUL would be refused by PostgreSQL).
    fn text(&self, key: &str) -> Option<&str> {
        self.data
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| s.len() <= 64 && !s.chars().any(char::is_control))
    }

    /// `call.pressed`: which button.
    pub fn button(&self) -> Option<&str> {
        self.text("button")
    }

    /// `fall.detected`: the detector's confidence, 0 to 1.
    pub fn confidence(&self) -> Option<f64> {
        self.number("confidence")
            .filter(|c| (0.0..=1.0).contains(c))
    }

    /// `vitals`: whichever readings are present and numeric.
    pub fn vitals(&self) -> Vitals {
        Vitals {
            heart_rate: self.number("heart_rate"),
            resp_rate: self.number("resp_rate"),
            spo2: self.number("spo2"),
        }
    }

    /// `inactivity`: minutes without movement.
    pub fn minutes(&self) -> Option<f64> {
        self.number("minutes")
    }

    /// `battery.low`: remaining charge.
    pub fn level_pct(&self) -> Option<f64> {
        self.number("level_pct")
    }

    /// `door.open`: which door.
    pub fn door(&self) -> Option<&str> {
        self.text("door")
    }

    /// `test.confirmed`: the `event_id` of the `test.call` whose answer
    /// the device received; None when absent or not a valid event id.
    pub fn test_event_id(&self) -> Option<EventId> {
        self.data
            .get("test_event_id")
            .and_then(Value::as_str)
            .and_then(|s| EventId::parse(s).ok())
    }
}

/// Validates one payload received on `device`'s events topic.
///
/// The checks run in PROTOCOL.md's order, so a message with several faults
/// is counted under the first.
pub fn parse_event(
    device: &DeviceId,
    payload: &[u8],
    now: DateTime<Utc>,
) -> Result<EventMessage, Rejection> {
    use RejectReason::*;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(Rejection::new(
            TooLarge,
            format!("{} bytes, limit {MAX_EVENT_BYTES}", payload.len()),
        ));
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| Rejection::new(InvalidJson, e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(Rejection::new(InvalidJson, "not a JSON object"));
    };

    let event_id = take_string(&mut obj, "event_id")?;
    let event_type = take_string(&mut obj, "type")?;
    let ts = take_string(&mut obj, "ts")?;

    let event_id = EventId::parse(event_id)
        .map_err(|e| Rejection::new(BadEventId, format!("event_id {e}")))?;
    if event_type.is_empty()
        || event_type.len() > MAX_TYPE_LEN
        || event_type.chars().any(char::is_control)
    {
        return Err(Rejection::new(
            WrongType,
            format!("type must be 1 to {MAX_TYPE_LEN} printable characters"),
        ));
    }
    let ts = DateTime::parse_from_rfc3339(&ts)
        .map_err(|e| Rejection::new(BadTimestamp, format!("ts {ts:?}: {e}")))?
        .with_timezone(&Utc);
    if ts > now + MAX_FUTURE_SKEW {
        return Err(Rejection::new(
            FutureTimestamp,
            format!(
                "ts {} is more than 24 h ahead of {}",
                ts.to_rfc3339(),
                now.to_rfc3339()
            ),
        ));
    }
    match obj.remove("device_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == device.as_str() => {}
        Some(other) => {
            return Err(Rejection::new(
                DeviceMismatch,
                format!("device_id {other} differs from the topic's {device}"),
            ));
        }
    }
    let data = match obj.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Rejection::new(WrongType, "data must be an object")),
    };
    let event_type = EventType::from(event_type);
    check_ranges(&event_type, &data)?;
    Ok(EventMessage {
        event_id,
        event_type,
        ts,
        data,
    })
}

/// Refuses a reading outside [`PHYSICAL_RANGES`].
fn check_ranges(event_type: &EventType, data: &Map<String, Value>) -> Result<(), Rejection> {
    for (kind, field, min, max) in &PHYSICAL_RANGES {
        if kind != event_type {
            continue;
        }
        let Some(value) = data.get(*field).and_then(Value::as_f64) else {
            continue;
        };
        if !(*min..=*max).contains(&value) {
            return Err(Rejection::new(
                RejectReason::OutOfRange,
                format!("{event_type} {field} {value} is outside {min}..={max}"),
            ));
        }
    }
    Ok(())
}

fn take_string(obj: &mut Map<String, Value>, key: &str) -> Result<String, Rejection> {
    match obj.remove(key) {
        None | Some(Value::Null) => Err(Rejection::new(
            RejectReason::MissingField,
            format!("{key} is required"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(Rejection::new(
            RejectReason::WrongType,
            format!("{key} must be a string, got {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-28T21:04:06Z".parse().unwrap()
    }

    fn dev() -> DeviceId {
        DeviceId::parse("btn-1").unwrap()
    }

    fn reason(payload: &str) -> RejectReason {
        parse_event(&dev(), payload.as_bytes(), now())
            .unwrap_err()
            .reason
    }

    #[test]
    fn the_documented_example_parses() {
        let e = parse_event(
            &dev(),
            br#"{"event_id":"b1f4c2d0-6a53-4d6e-9d0e-1f1d2c3b4a59","type":"call.pressed",
                 "ts":"2026-11-28T21:04:05.120Z","data":{"button":"bedside","extra":1}}"#,
            now(),
        )
        .unwrap();
        assert_eq!(e.event_type, EventType::CallPressed);
        assert_eq!(e.button(), Some("bedside"));
    }

    #[test]
    fn unknown_types_are_kept() {
        let e = parse_event(
            &dev(),
            br#"{"event_id":"1","type":"gas.detected","ts":"2026-11-28T21:04:05Z"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(e.event_type, EventType::Unknown("gas.detected".into()));
    }

    #[test]
    fn every_bad_input_has_its_reason() {
        use RejectReason::*;
        assert_eq!(reason("{not json"), InvalidJson);
        assert_eq!(reason("[1,2]"), InvalidJson);
        let big = format!(
            r#"{{"event_id":"1","type":"vitals","ts":"2026-11-28T21:04:05Z","data":{{"pad":"{}"}}}}"#,
            "x".repeat(5000)
        );
        assert_eq!(reason(&big), TooLarge);
        assert_eq!(
            reason(r#"{"type":"vitals","ts":"2026-11-28T21:04:05Z"}"#),
            MissingField
        );
        assert_eq!(
            reason(r#"{"event_id":"1","ts":"2026-11-28T21:04:05Z"}"#),
            MissingField
        );
        assert_eq!(reason(r#"{"event_id":"1","type":"vitals"}"#), MissingField);
        assert_eq!(
            reason(r#"{"event_id":7,"type":"vitals","ts":"2026-11-28T21:04:05Z"}"#),
            WrongType
        );
        assert_eq!(
            reason(r#"{"event_id":"","type":"vitals","ts":"2026-11-28T21:04:05Z"}"#),
            BadEventId
        );
        assert_eq!(
            reason(r#"{"event_id":"é","type":"vitals","ts":"2026-11-28T21:04:05Z"}"#),
            BadEventId
        );
        assert_eq!(
            reason(r#"{"event_id":"1","type":"vitals","ts":"yesterday"}"#),
            BadTimestamp
        );
        assert_eq!(
            reason(r#"{"event_id":"1","type":"x\u0000","ts":"2026-11-28T21:04:05Z"}"#),
            WrongType
        );
        assert_eq!(
            reason(r#"{"event_id":"1","type":"","ts":"2026-11-28T21:04:05Z"}"#),
            WrongType
        );
        assert_eq!(
            reason(r#"{"event_id":"1","type":"vitals","ts":"2026-11-30T21:04:05Z"}"#),
            FutureTimestamp
        );
        assert_eq!(
            reason(
                r#"{"event_id":"1","type":"vitals","ts":"2026-11-28T21:04:05Z","device_id":"other"}"#
            ),
            DeviceMismatch
        );
        assert!(parse_event(
            &dev(),
            br#"{"event_id":"1","type":"vitals","ts":"2026-11-28T21:04:05Z","device_id":"btn-1"}"#,
            now()
        )
        .is_ok());
    }

    #[test]
    fn impossible_readings_are_refused_and_possible_ones_kept() {
        let vitals = |data: &str| {
            format!(
                r#"{{"event_id":"1","type":"vitals","ts":"2026-11-28T21:04:05Z","data":{data}}}"#
            )
        };
        let ok = |payload: String| parse_event(&dev(), payload.as_bytes(), now());
        assert_eq!(reason(&vitals(r#"{"spo2":-5}"#)), RejectReason::OutOfRange);
        assert_eq!(
            reason(&vitals(r#"{"spo2":100.5}"#)),
            RejectReason::OutOfRange
        );
        assert_eq!(
            reason(&vitals(r#"{"heart_rate":900,"spo2":95}"#)),
            RejectReason::OutOfRange
        );
        assert_eq!(
            reason(&vitals(r#"{"resp_rate":-1}"#)),
            RejectReason::OutOfRange
        );
        assert_eq!(
            reason(
                r#"{"event_id":"1","type":"battery.low","ts":"2026-11-28T21:04:05Z","data":{"level_pct":140}}"#
            ),
            RejectReason::OutOfRange
        );
        assert_eq!(
            reason(
                r#"{"event_id":"1","type":"inactivity","ts":"2026-11-28T21:04:05Z","data":{"minutes":-30}}"#
            ),
            RejectReason::OutOfRange
        );
        // Alarming but possible readings are the elder's limits' to judge.
        assert!(ok(vitals(r#"{"heart_rate":0,"resp_rate":0,"spo2":0}"#)).is_ok());
        assert!(ok(vitals(r#"{"heart_rate":350,"resp_rate":120,"spo2":100}"#)).is_ok());
        // Absent, null or non-numeric readings are not checked.
        assert!(ok(vitals(r#"{"spo2":null,"heart_rate":"fast"}"#)).is_ok());
        // The same field on another type is not a reading.
        assert!(ok(r#"{"event_id":"1","type":"tamper","ts":"2026-11-28T21:04:05Z","data":{"spo2":-5}}"#.into()).is_ok());
        // A fall is never dropped for its confidence.
        let fall = ok(r#"{"event_id":"1","type":"fall.detected","ts":"2026-11-28T21:04:05Z","data":{"confidence":7}}"#.into()).unwrap();
        assert_eq!(fall.confidence(), None);
    }
}
