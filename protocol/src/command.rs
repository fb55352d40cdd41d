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
