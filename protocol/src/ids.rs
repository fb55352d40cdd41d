//! Identifiers that arrive from devices, parsed once so nothing downstream
//! has to check them again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be 1 to {max} characters long")]
    Length { max: usize },
    #[error("may only contain {allowed}")]
    Characters { allowed: &'static str },
}

/// A device's identity: its MQTT client id, username and topic segment.
/// `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(IdError::Length { max: Self::MAX_LEN });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(IdError::Characters {
                allowed: "letters, digits, '_' and '-'",
            });
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event's identity, unique per device: 1 to 64 printable ASCII
/// characters. A repeat is a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(IdError::Length { max: Self::MAX_LEN });
        }
        if !s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(IdError::Characters {
                allowed: "printable ASCII",
            });
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

impl From<EventId> for String {
    fn from(id: EventId) -> String {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_follow_the_topic_rules() {
        assert!(DeviceId::parse("bed-0042_A").is_ok());
        assert!(DeviceId::parse("").is_err());
        assert!(DeviceId::parse("a/b").is_err());
        assert!(DeviceId::parse("+").is_err());
        assert!(DeviceId::parse("x".repeat(65)).is_err());
        assert!(DeviceId::parse("x".repeat(64)).is_ok());
    }

    #[test]
    fn event_ids_are_printable_ascii() {
        assert!(EventId::parse("b1f4c2d0-6a53 #1").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("tab\there").is_err());
        assert!(EventId::parse("é").is_err());
        assert!(EventId::parse("x".repeat(65)).is_err());
    }
}
