//! What a device may do on the embedded broker (PROTOCOL.md, Transport
//! and Topics): publish its own `events` and `status`, have its own
//! `status` as its last will, subscribe to its own `commands`. Nothing
//! else: no wildcard, no other device's topic, no `$SYS`.

use protocol::{DeviceId, Topics};

/// Why the gate closed a connection: the `reason` label of
/// `dispatcher_broker_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// The CONNECT carried no username or password.
    NoCredentials,
    /// An unknown device, a revoked secret, or the wrong one.
    BadCredentials,
    /// A client id that is no device id, that differs from the username,
    /// or that is the dispatcher's own.
    ClientId,
    /// A last will on any topic but the device's own `status`.
    WillTopic,
    /// A PUBLISH outside the device's `events` and `status`.
    PublishTopic,
    /// A SUBSCRIBE to anything but the device's `commands`.
    SubscribeTopic,
    UnsubscribeTopic,
    /// Over `embedded_broker.max_packet_bytes`.
    PacketTooLarge,
    /// Not MQTT 3.1.1, or a packet a client never sends.
    Malformed,
    /// No CONNECT within `embedded_broker.connect_timeout_s`.
    ConnectTimeout,
    /// `embedded_broker.max_connections` reached.
    TooManyConnections,
}

impl Refusal {
    pub const ALL: [Refusal; 11] = [
        Refusal::NoCredentials,
        Refusal::BadCredentials,
        Refusal::ClientId,
        Refusal::WillTopic,
        Refusal::PublishTopic,
        Refusal::SubscribeTopic,
        Refusal::UnsubscribeTopic,
        Refusal::PacketTooLarge,
        Refusal::Malformed,
        Refusal::ConnectTimeout,
        Refusal::TooManyConnections,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoCredentials => "no_credentials",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::ClientId => "client_id",
            Refusal::WillTopic => "will_topic",
            Refusal::PublishTopic => "publish_topic",
            Refusal::SubscribeTopic => "subscribe_topic",
            Refusal::UnsubscribeTopic => "unsubscribe_topic",
            Refusal::PacketTooLarge => "packet_too_large",
            Refusal::Malformed => "malformed",
            Refusal::ConnectTimeout => "connect_timeout",
            Refusal::TooManyConnections => "too_many_connections",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device's topics, computed once per connection.
#[derive(Debug, Clone)]
pub struct DeviceTopics {
    events: String,
    status: String,
    commands: String,
}

impl DeviceTopics {
    pub fn new(topics: &Topics, device: &DeviceId) -> Self {
        Self {
            events: topics.events(device),
            status: topics.status(device),
            commands: topics.commands(device),
        }
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        topic == self.events || topic == self.status
    }

    pub fn may_will(&self, topic: &str) -> bool {
        topic == self.status
    }

    /// Filters are compared as text: a wildcard never equals a device's
    /// own topic, so `#`, `+/…` and `$share/…` are all refused.
    pub fn may_subscribe(&self, filter: &str) -> bool {
        filter == self.commands
    }
}

/// The device a CONNECT claims to be: client id = username = a valid
/// device id, and not one of `reserved` (the dispatcher's own client id).
pub fn claimed_device(
    client_id: &str,
    username: &str,
    reserved: &[&str],
) -> Result<DeviceId, Refusal> {
    if client_id != username || reserved.contains(&client_id) {
        return Err(Refusal::ClientId);
    }
    DeviceId::parse(client_id).map_err(|_| Refusal::ClientId)
}

/// Untrusted text for a log line: quoted and escaped (a `\n` cannot forge
/// a line), and cut short.
pub fn loggable(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_keeps_to_its_own_topics() {
        let topics = Topics::new("site/eldercare/v1");
        let d = DeviceTopics::new(&topics, &DeviceId::parse("bed-1").unwrap());
        assert!(d.may_publish("site/eldercare/v1/devices/bed-1/events"));
        assert!(d.may_publish("site/eldercare/v1/devices/bed-1/status"));
        assert!(d.may_will("site/eldercare/v1/devices/bed-1/status"));
        assert!(d.may_subscribe("site/eldercare/v1/devices/bed-1/commands"));
        for topic in [
            "site/eldercare/v1/devices/bed-2/events",
            "site/eldercare/v1/devices/bed-1/commands",
            "site/eldercare/v1/devices/bed-1/events/x",
            "eldercare/v1/devices/bed-1/events",
            "site/eldercare/v1/devices/+/events",
            "",
        ] {
            assert!(!d.may_publish(topic), "{topic}");
        }
        assert!(!d.may_will("site/eldercare/v1/devices/bed-1/events"));
        for filter in [
            "#",
            "+/#",
            "site/eldercare/v1/devices/+/commands",
            "site/eldercare/v1/devices/bed-1/#",
            "site/eldercare/v1/devices/bed-2/commands",
            "$share/g/site/eldercare/v1/devices/bed-1/commands",
            "site/eldercare/v1/devices/bed-1/events",
            "$SYS/#",
        ] {
            assert!(!d.may_subscribe(filter), "{filter}");
        }
    }

    #[test]
    fn the_client_id_is_the_username_and_a_device_id() {
        let reserved = ["eldercare-dispatcher"];
        assert_eq!(
            claimed_device("bed-1", "bed-1", &reserved)
                .unwrap()
                .as_str(),
            "bed-1"
        );
        for (id, user) in [
            ("bed-1", "bed-2"),
            ("eldercare-dispatcher", "eldercare-dispatcher"),
            ("", ""),
            ("a/b", "a/b"),
            ("bed 1", "bed 1"),
        ] {
            assert_eq!(
                claimed_device(id, user, &reserved).unwrap_err(),
                Refusal::ClientId,
                "{id:?}/{user:?}"
            );
        }
    }

    #[test]
    fn untrusted_text_is_escaped_and_short() {
        assert_eq!(loggable("a\nb"), "\"a\\nb\"");
        assert!(loggable(&"x".repeat(500)).len() < 100);
        assert_eq!(Refusal::ALL.len(), 11);
    }
}
