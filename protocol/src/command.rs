//! Feedback to the elder's device (`{root}/devices/{id}/commands`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the help is, as the elder's button shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentUpdateState {
    Received,
    Acknowledged,
    OnSite,
    Resolved,
    Cancelled,
}

/// `{"type": "incident.update", "incident_id", "state", "ts"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandMessage {
    #[serde(rename = "type")]
    pub command_type: String,
    pub incident_id: String,
    pub state: IncidentUpdateState,
    pub ts: DateTime<Utc>,
}

impl CommandMessage {
    pub const INCIDENT_UPDATE: &'static str = "incident.update";

    pub fn incident_update(
        incident_id: impl Into<String>,
        state: IncidentUpdateState,
        ts: DateTime<Utc>,
    ) -> Self {
        Self {
            command_type: Self::INCIDENT_UPDATE.to_owned(),
            incident_id: incident_id.into(),
            state,
            ts,
        }
    }
}

/// `{"type": "test.ack", "event_id", "ts"}`: the dispatcher's answer to a
/// scheduled test call (docs/PROTOCOL-EXTENSIONS.md, Commands). The
/// device lights its lamp and sends `test.confirmed` naming `event_id`,
/// which proves the round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestAck {
    #[serde(rename = "type")]
    pub command_type: String,
    /// The `event_id` of the `test.call` this answers.
    pub event_id: String,
    pub ts: DateTime<Utc>,
}

impl TestAck {
    pub const TYPE: &'static str = "test.ack";

    pub fn new(event_id: impl Into<String>, ts: DateTime<Utc>) -> Self {
        Self {
            command_type: Self::TYPE.to_owned(),
            event_id: event_id.into(),
            ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_ack_names_the_test_call_it_answers() {
        let ts: DateTime<Utc> = "2026-11-28T21:04:05Z".parse().unwrap();
        let ack = serde_json::to_value(TestAck::new("t-1", ts)).unwrap();
        assert_eq!(
            ack,
            serde_json::json!({"type": "test.ack", "event_id": "t-1", "ts": "2026-11-28T21:04:05Z"})
        );
    }
}
