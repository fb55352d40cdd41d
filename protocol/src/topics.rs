//! The topic layout: `{root}/devices/{device_id}/{events|status|commands}`.
//!
//! The root is `eldercare/v1` in production. Tests that share one broker
//! give each run its own root so they cannot hear each other.

use crate::ids::DeviceId;

/// Which of a device's topics a message arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Events,
    Status,
    Commands,
}

/// The topic names under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(Self::DEFAULT_ROOT)
    }
}

impl Topics {
    pub const DEFAULT_ROOT: &'static str = "eldercare/v1";

    pub fn new(root: impl Into<String>) -> Self {
        let root: String = root.into();
        Self {
            root: root.trim_end_matches('/').to_owned(),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn events(&self, device: &DeviceId) -> String {
        format!("{}/devices/{device}/events", self.root)
    }

    pub fn status(&self, device: &DeviceId) -> String {
        format!("{}/devices/{device}/status", self.root)
    }

    pub fn commands(&self, device: &DeviceId) -> String {
        format!("{}/devices/{device}/commands", self.root)
    }

    /// What the dispatcher subscribes to for events: shared between
    /// instances when `share_group` is set.
    pub fn events_filter(&self, share_group: Option<&str>) -> String {
        Self::shared(share_group, format!("{}/devices/+/events", self.root))
    }

    /// What the dispatcher subscribes to for heartbeats and last wills.
    pub fn status_filter(&self, share_group: Option<&str>) -> String {
        Self::shared(share_group, format!("{}/devices/+/status", self.root))
    }

    fn shared(group: Option<&str>, filter: String) -> String {
        match group {
            Some(g) => format!("$share/{g}/{filter}"),
            None => filter,
        }
    }

    /// Reads a topic back into the device and the kind of message, or
    /// `None` when it is not a device topic under this root.
    pub fn parse(&self, topic: &str) -> Option<(Result<DeviceId, String>, TopicKind)> {
        let rest = topic.strip_prefix(&self.root)?.strip_prefix("/devices/")?;
        let (device, kind) = rest.rsplit_once('/')?;
        let kind = match kind {
            "events" => TopicKind::Events,
            "status" => TopicKind::Status,
            "commands" => TopicKind::Commands,
            _ => return None,
        };
        Some((DeviceId::parse(device).map_err(|_| device.to_owned()), kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let t = Topics::default();
        let d = DeviceId::parse("btn-1").unwrap();
        assert_eq!(t.events(&d), "eldercare/v1/devices/btn-1/events");
        assert_eq!(
            t.parse("eldercare/v1/devices/btn-1/status"),
            Some((Ok(d), TopicKind::Status))
        );
        assert_eq!(t.parse("other/v1/devices/btn-1/status"), None);
        assert_eq!(t.parse("eldercare/v1/devices/btn-1/nope"), None);
        assert!(matches!(
            t.parse("eldercare/v1/devices/a/b/events"),
            Some((Err(_), TopicKind::Events))
        ));
        assert_eq!(
            t.events_filter(Some("dispatchers")),
            "$share/dispatchers/eldercare/v1/devices/+/events"
        );
    }
}
