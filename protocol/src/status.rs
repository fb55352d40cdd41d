//! Heartbeats and last wills (`{root}/devices/{id}/status`, retained).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::reject::{RejectReason, Rejection};

/// A device's health. The last will is `{"online": false}`, so every
/// field but `online` is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub online: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_pct: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fw: Option<String>,
    /// How often the device promises to report; the dispatcher's default
    /// (60 s) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_s: Option<u32>,
}

impl StatusMessage {
    /// The last will every device registers.
    pub fn offline() -> Self {
        Self {
            online: false,
            ts: None,
            battery_pct: None,
            rssi_dbm: None,
            fw: None,
            heartbeat_s: None,
        }
    }

    pub fn online(ts: DateTime<Utc>) -> Self {
        Self {
            online: true,
            ts: Some(ts),
            ..Self::offline()
        }
    }
}

/// Validates a status payload. The size limit is the events' one.
pub fn parse_status(payload: &[u8]) -> Result<StatusMessage, Rejection> {
    if payload.len() > crate::event::MAX_EVENT_BYTES {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!("{} bytes", payload.len()),
        ));
    }
    // Heartbeats are most of the traffic: parse straight into the struct,
    // and only a payload that fails goes through a `Value` to say exactly
    // what is wrong with it. The straight path takes only objects of
    // known fields: a struct would also accept a JSON array, and serde
    // skims an unknown field without checking its text or numbers, which
    // the `Value` path refuses.
    let status = match payload.trim_ascii_start().first() {
        Some(b'{') => serde_json::from_slice::<KnownFields>(payload)
            .ok()
            .map(StatusMessage::from),
        _ => None,
    };
    let status = match status {
        Some(status) => status,
        None => explain(payload)?,
    };
    check_fw(status)
}

/// A status with nothing but the fields this version knows: what the
/// straight path parses.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownFields {
    online: bool,
    #[serde(default)]
    ts: Option<DateTime<Utc>>,
    #[serde(default)]
    battery_pct: Option<u8>,
    #[serde(default)]
    rssi_dbm: Option<i16>,
    #[serde(default)]
    fw: Option<String>,
    #[serde(default)]
    heartbeat_s: Option<u32>,
}

impl From<KnownFields> for StatusMessage {
    fn from(k: KnownFields) -> Self {
        Self {
            online: k.online,
            ts: k.ts,
            battery_pct: k.battery_pct,
            rssi_dbm: k.rssi_dbm,
            fw: k.fw,
            heartbeat_s: k.heartbeat_s,
        }
    }
}

/// Parses a payload the straight path refused, naming what is wrong.
fn explain(payload: &[u8]) -> Result<StatusMessage, Rejection> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| Rejection::new(RejectReason::InvalidJson, e.to_string()))?;
    if !value.is_object() {
        return Err(Rejection::new(
            RejectReason::InvalidJson,
            "not a JSON object",
        ));
    }
    if value.get("online").is_none() {
        return Err(Rejection::new(
            RejectReason::MissingField,
            "online is required",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Rejection::new(RejectReason::WrongType, e.to_string()))
}

fn check_fw(status: StatusMessage) -> Result<StatusMessage, Rejection> {
    if status
        .fw
        .as_deref()
        .is_some_and(|fw| fw.len() > 64 || fw.chars().any(char::is_control))
    {
        return Err(Rejection::new(
            RejectReason::WrongType,
            "fw must be at most 64 printable characters",
        ));
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_and_last_will_parse() {
        let s = parse_status(
            br#"{ "online": true, "ts": "2026-11-28T21:04:00Z", "battery_pct": 81, "rssi_dbm": -67, "fw": "1.4.2" }"#,
        )
        .unwrap();
        assert!(s.online);
        assert_eq!(s.battery_pct, Some(81));
        assert_eq!(
            parse_status(br#"{"online": false}"#).unwrap(),
            StatusMessage::offline()
        );
        assert_eq!(
            parse_status(b"{}").unwrap_err().reason,
            RejectReason::MissingField
        );
        assert_eq!(
            parse_status(br#"{"online":"yes"}"#).unwrap_err().reason,
            RejectReason::WrongType
        );
        assert_eq!(
            parse_status(b"nope").unwrap_err().reason,
            RejectReason::InvalidJson
        );
        assert_eq!(
            parse_status(br#"{"online":true,"fw":"1.0\u0000"}"#)
                .unwrap_err()
                .reason,
            RejectReason::WrongType
        );
    }

    #[test]
    fn the_straight_path_agrees_with_the_explaining_one() {
        let payloads: [&[u8]; 15] = [
            br#"{"online":true,"ts":"2026-11-28T21:04:00Z","heartbeat_s":30}"#,
            br#"{"online":true,"note":"\ud800"}"#,
            br#"{"online":true,"x":1e400}"#,
            b"{\"online\":true,\"x\":\"\xff\"}",
            b"{\"online\":true,\"fw\":\"\xff\"}",
            br#"{"online":true,"ts":null,"fw":null}"#,
            br#"  {"online":false,"extra":{"ignored":[1,2]}}"#,
            br#"{"online":true,"online":false}"#,
            br#"[true]"#,
            br#"{"online":true,"battery_pct":300}"#,
            br#"{"online":true,"battery_pct":81.5}"#,
            br#"{"online":true,"ts":"yesterday"}"#,
            br#"{"online":true} trailing"#,
            br#"{"online":null}"#,
            br#""#,
        ];
        for payload in payloads {
            let straight = parse_status(payload).map_err(|r| r.reason);
            let explained = explain(payload).and_then(check_fw).map_err(|r| r.reason);
            assert_eq!(straight, explained, "{}", String::from_utf8_lossy(payload));
        }
        let deep = format!(
            r#"{{"online":true,"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            parse_status(deep.as_bytes()).map_err(|r| r.reason),
            Err(RejectReason::InvalidJson),
            "nesting past serde_json's limit is refused, as before"
        );
        // A JSON array would make a struct; a status is an object.
        assert_eq!(
            parse_status(b"[true]").unwrap_err().reason,
            RejectReason::InvalidJson
        );
    }
}
