//! Settings, layered: built-in defaults, then a TOML file, then the
//! environment. Every name is checked: an unknown key or a bad value stops
//! start-up with one line naming the setting and the fix.
//!
//! Environment: the variables of API.md (`ELDERCARE_HTTP_ADDR`,
//! `ELDERCARE_DATABASE_URL`, `ELDERCARE_MQTT_URL`,
//! `ELDERCARE_EMBEDDED_MQTT_ADDR`, `ELDERCARE_ADMIN_PASSWORD`), plus any
//! setting as `ELDERCARE__SECTION__KEY` (`ELDERCARE__INGEST__RATE_LIMIT_PER_S=50`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use chrono::{DateTime, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{ClockTime, ContactChannel, IncidentKind, Lang, Priority};

/// Everything the dispatcher can be told.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub mqtt: MqttSettings,
    pub auth: AuthSettings,
    pub ingest: IngestSettings,
    pub rules: RuleSettings,
    pub dispatch: DispatchSettings,
    pub notify: NotifySettings,
    pub sim: SimSettings,
    pub retention: RetentionSettings,
    pub care: CareSettings,
    pub embedded_broker: EmbeddedBrokerSettings,
    pub follow_ups: FollowUpSettings,
    pub device_duty: DeviceDutySettings,
}

/// Device duty (issue 16): each device's scheduled test call, and the
/// false alarms stewards record, per device and per elder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceDutySettings {
    /// A device is due for a test this many days after its last passed
    /// one (telecare standards ask for monthly).
    pub test_every_days: u32,
    /// A device that never passed a test is due this many days after it
    /// was registered; a due device has missed its test this many days
    /// after it fell due.
    pub grace_days: u32,
    /// A test passes when the device confirms the lamp within this many
    /// seconds of its test call; later, or never, it failed.
    pub confirm_within_s: u32,
    /// A device or an elder whose share of false alarms is above this
    /// (0 to 1) is flagged…
    pub false_alarm_threshold: f64,
    /// …once it has at least this many resolved incidents in the window.
    pub false_alarm_min_incidents: u32,
    /// The window of incidents (by creation) the rates cover, in days.
    pub false_alarm_window_days: u32,
}

impl Default for DeviceDutySettings {
    fn default() -> Self {
        Self {
            test_every_days: 30,
            grace_days: 7,
            confirm_within_s: 300,
            false_alarm_threshold: 0.5,
            false_alarm_min_incidents: 4,
            false_alarm_window_days: 90,
        }
    }
}

impl DeviceDutySettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let b = |setting: &str, problem: String, fix: &str| {
            Err(SettingsError {
                setting: format!("device_duty.{setting}"),
                problem,
                fix: fix.into(),
            })
        };
        if !(1..=366).contains(&self.test_every_days) {
            return b(
                "test_every_days",
                format!("{} is not between 1 and 366", self.test_every_days),
                "30 is usual (a test call a month)",
            );
        }
        if self.grace_days > 366 {
            return b(
                "grace_days",
                format!("{} is over 366", self.grace_days),
                "7 is usual",
            );
        }
        if !(10..=86_400).contains(&self.confirm_within_s) {
            return b(
                "confirm_within_s",
                format!("{} is not between 10 and 86400", self.confirm_within_s),
                "300 is usual (five minutes)",
            );
        }
        if !(0.0..=1.0).contains(&self.false_alarm_threshold) {
            return b(
                "false_alarm_threshold",
                format!("{} is not between 0 and 1", self.false_alarm_threshold),
                "0.5 is usual (half of the incidents were false alarms)",
            );
        }
        if self.false_alarm_min_incidents == 0 {
            return b(
                "false_alarm_min_incidents",
                "is 0".into(),
                "set 1 or more (4 is usual)",
            );
        }
        if !(1..=400).contains(&self.false_alarm_window_days) {
            return b(
                "false_alarm_window_days",
                format!("{} is not between 1 and 400", self.false_alarm_window_days),
                "90 is usual",
            );
        }
        Ok(())
    }
}

/// The follow-up (回访) after every resolved incident of an elder
/// ([`crate::domain::follow_up`]): how soon someone calls or visits.
/// Hours from the resolve (or from the follow-up that asked for a visit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FollowUpSettings {
    /// A call is due this many hours after the incident is resolved.
    pub call_within_h: u32,
    /// A visit (after `hospital`, or when a call found the elder needing
    /// one or not answering) is due this many hours later.
    pub visit_within_h: u32,
}

impl Default for FollowUpSettings {
    fn default() -> Self {
        Self {
            call_within_h: 24,
            visit_within_h: 72,
        }
    }
}

impl FollowUpSettings {
    /// The longest either may be: a follow-up a month away is no
    /// follow-up.
    pub const MAX_H: u32 = 24 * 31;

    /// The due times as durations.
    pub fn within(&self) -> crate::domain::FollowUpWithin {
        crate::domain::FollowUpWithin {
            call: chrono::Duration::hours(i64::from(self.call_within_h)),
            visit: chrono::Duration::hours(i64::from(self.visit_within_h)),
        }
    }
}

/// The stewards' daily work ([`crate::care`]): how often elders are
/// visited by risk, the visiting hours, and how near the home a steward
/// must be to check in at the door. Times are the site's
/// (`rules.night.utc_offset_min`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CareSettings {
    /// Plan visits and raise overdue ones. Off, elders are visited only
    /// as stewards choose (check-ins are watched either way).
    pub plan_visits: bool,
    /// Days between visits for an elder on watch.
    pub on_watch_days: u16,
    /// … with an incident in the last `recent_incident_days`.
    pub recent_incident_days: u16,
    /// … living alone.
    pub lives_alone_days: u16,
    /// … everyone else.
    pub default_days: u16,
    /// How far back an incident makes an elder "recently in need".
    pub recent_within_days: u16,
    /// The visiting hours: a visit not begun by `visit_until` is overdue
    /// and raises a routine incident to the grid's steward.
    #[serde(with = "clock_time")]
    pub visit_from: ClockTime,
    #[serde(with = "clock_time")]
    pub visit_until: ClockTime,
    /// How near the home (plus the phone's reported accuracy, at most
    /// 200 m of it) a steward checks in at the door.
    pub door_radius_m: f64,
    /// How often the planner looks for elders without a next visit or a
    /// check-in deadline, and for visits gone overdue.
    pub tick_s: u64,
}

impl Default for CareSettings {
    fn default() -> Self {
        Self {
            plan_visits: true,
            on_watch_days: 1,
            recent_incident_days: 3,
            lives_alone_days: 7,
            default_days: 14,
            recent_within_days: 14,
            visit_from: ClockTime::hm(9, 0).expect("09:00"),
            visit_until: ClockTime::hm(17, 0).expect("17:00"),
            door_radius_m: 150.0,
            tick_s: 5,
        }
    }
}

impl CareSettings {
    pub fn cadence(&self) -> crate::domain::care::VisitCadence {
        crate::domain::care::VisitCadence {
            on_watch_days: self.on_watch_days,
            recent_incident_days: self.recent_incident_days,
            lives_alone_days: self.lives_alone_days,
            default_days: self.default_days,
        }
    }
}

/// `HH:MM` in TOML, as in the API.
mod clock_time {
    use crate::domain::ClockTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &ClockTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ClockTime, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How long what grows without bound is kept ([`crate::retention`]). Each
/// age in days; 0 keeps that kind for ever. An open incident keeps
/// everything it needs whatever its age.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Raw device events (and so the unknown-devices list), except those
    /// of an open incident.
    pub events_days: u32,
    /// Stream rows: what an SSE client replays after a reconnection.
    pub stream_days: u32,
    /// Notifications sent, failed or cancelled (an incident's deliveries).
    pub outbox_days: u32,
    /// Resolved and cancelled incidents, with their timelines and offers:
    /// response-time reports reach back this far.
    pub incidents_days: u32,
    /// How often a pruning pass starts.
    pub interval_s: u64,
    /// Rows removed per statement: small, so no statement holds a lock
    /// for long.
    pub batch: u32,
    /// Pause between two batches, so ingest and dispatch always get turns.
    pub pause_ms: u64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            events_days: 30,
            stream_days: 7,
            outbox_days: 90,
            incidents_days: 365,
            interval_s: 600,
            batch: 500,
            pause_ms: 20,
        }
    }
}

/// The embedded broker (only when `mqtt.url` is unset): its TLS listener
/// and its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedBrokerSettings {
    /// A TLS listener beside `mqtt.embedded_addr` (e.g. 0.0.0.0:8883);
    /// needs `tls_cert` and `tls_key`.
    pub tls_addr: Option<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<std::path::PathBuf>,
    /// Device connections at once; beyond, new ones are closed at once.
    pub max_connections: usize,
    /// The largest MQTT packet a device may send; a larger one closes its
    /// connection. Above the protocol's 4 KiB, so an oversized event
    /// still reaches the dispatcher to be rejected and counted.
    pub max_packet_bytes: usize,
    /// QoS 1 messages in flight to or from one client. A device with
    /// this many events not yet stored is not read until one is.
    pub max_inflight: usize,
    /// Each topic's recent payloads are kept in memory in `segments`
    /// segments of `segment_kib` KiB: what a device sent while the
    /// dispatcher restarts or falls behind, and no more. rumqttd drops
    /// the oldest segment when a topic outgrows this, even if the
    /// dispatcher has not read it. So the gate lets devices get at most
    /// `segments - 1` segments' worth of unstored messages ahead, and
    /// acknowledges each message only once it is stored.
    pub segment_kib: usize,
    pub segments: usize,
    /// A device's message not stored this many seconds after the gate
    /// handed it to rumqttd is handed over again (rumqttd may have
    /// dropped it). Duplicates are harmless: ingest drops them by
    /// `event_id`.
    pub redeliver_after_s: u64,
    /// Seconds a new connection has to send its CONNECT (and finish TLS).
    pub connect_timeout_s: u64,
}

impl Default for EmbeddedBrokerSettings {
    fn default() -> Self {
        Self {
            tls_addr: None,
            tls_cert: None,
            tls_key: None,
            max_connections: 10_000,
            max_packet_bytes: 65_536,
            max_inflight: 100,
            segment_kib: 256,
            segments: 4,
            redeliver_after_s: 30,
            connect_timeout_s: 10,
        }
    }
}

impl EmbeddedBrokerSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        let b = |setting: &str, problem: String, fix: &str| {
            Err(SettingsError {
                setting: format!("embedded_broker.{setting}"),
                problem,
                fix: fix.into(),
            })
        };
        if self.tls_addr.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return b(
                "tls_addr",
                "is set without tls_cert and tls_key".into(),
                "set both to PEM files, or unset tls_addr",
            );
        }
        if !(8 * 1024..=16 * 1024 * 1024).contains(&self.max_packet_bytes) {
            return b(
                "max_packet_bytes",
                format!("{} is not between 8 KiB and 16 MiB", self.max_packet_bytes),
                "65536 is usual (Mosquitto's shipped limit)",
            );
        }
        if self.max_connections == 0 || self.max_inflight == 0 || self.segments == 0 {
            return b(
                "max_connections / max_inflight / segments",
                "is 0".into(),
                "set 1 or more",
            );
        }
        if self.segment_kib < 64 || self.segment_kib * 1024 < self.max_packet_bytes {
            return b(
                "segment_kib",
                format!(
                    "{} KiB cannot hold a packet of max_packet_bytes",
                    self.segment_kib
                ),
                "set at least max_packet_bytes / 1024 (and 64)",
            );
        }
        if !(1..=3600).contains(&self.redeliver_after_s) {
            return b(
                "redeliver_after_s",
                format!("{} is not between 1 and 3600", self.redeliver_after_s),
                "30 is usual",
            );
        }
        if !(1..=60).contains(&self.connect_timeout_s) {
            return b(
                "connect_timeout_s",
                format!("{} is not between 1 and 60", self.connect_timeout_s),
                "10 is usual",
            );
        }
        Ok(())
    }
}

/// The device simulator inside the server (`/api/v1/sim`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    /// Lets an admin play simulated devices and stewards against this
    /// server. For demos and tests only: a simulated press reaches a
    /// steward's phone like a real one. `dispatcher demo` turns it on.
    pub enabled: bool,
}

/// A value per priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerPriority<T> {
    pub critical: T,
    pub urgent: T,
    pub routine: T,
    pub technical: T,
}

impl<T: Copy> PerPriority<T> {
    pub fn get(&self, p: Priority) -> T {
        *self.of(p)
    }
}

impl<T> PerPriority<T> {
    pub fn of(&self, p: Priority) -> &T {
        match p {
            Priority::Critical => &self.critical,
            Priority::Urgent => &self.urgent,
            Priority::Routine => &self.routine,
            Priority::Technical => &self.technical,
        }
    }
}

/// How incidents reach stewards (ARCHITECTURE.md, Matching).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchSettings {
    /// Priorities offered to stewards. Technical incidents (a low battery,
    /// a device offline) go to the maintainer's webhook and the board, not
    /// to a steward's phone at midnight.
    pub priorities: Vec<Priority>,
    /// Seconds a steward has to accept an offer.
    pub offer_timeout_s: PerPriority<u32>,
    /// Stewards offered at once; the first to accept wins.
    pub parallel_offers: PerPriority<u32>,
    /// Declined or expired offers that escalate the incident.
    pub escalate_after_failed: u32,
    /// Seconds without acceptance that escalate the incident.
    pub escalate_after_s: PerPriority<u32>,
    /// With nobody available, try again this often (each try escalates).
    pub retry_s: u32,
    /// Candidates farther than this (at escalation level 0) are passed
    /// over; each escalation level adds the same again.
    pub max_distance_m: f64,
    /// Straight-line distance times this is the travel estimate.
    pub detour_factor: f64,
    /// The elder's own grid steward is preferred over a nearer one by up
    /// to this many metres: they know the elder and the home.
    pub grid_preference_m: f64,
    /// A steward whose last location is older than this is not offered.
    pub location_max_age_s: u32,
    /// Skills an incident kind needs (e.g. `vitals = ["first_aid"]`).
    pub required_skills: BTreeMap<IncidentKind, Vec<String>>,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            priorities: vec![Priority::Critical, Priority::Urgent, Priority::Routine],
            offer_timeout_s: PerPriority {
                critical: 30,
                urgent: 45,
                routine: 90,
                technical: 90,
            },
            parallel_offers: PerPriority {
                critical: 2,
                urgent: 1,
                routine: 1,
                technical: 1,
            },
            escalate_after_failed: 2,
            escalate_after_s: PerPriority {
                critical: 90,
                urgent: 180,
                routine: 600,
                technical: 3600,
            },
            retry_s: 30,
            max_distance_m: 5_000.0,
            detour_factor: 1.3,
            grid_preference_m: 400.0,
            location_max_age_s: 900,
            required_skills: BTreeMap::new(),
        }
    }
}

/// Who hears about incidents outside the apps, and how stewards are
/// reached about an offer when their app is not on screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Webhook targets: a supervisors' group, the families' notifier.
    pub webhooks: Vec<WebhookTarget>,
    /// Report targets: acknowledged within this many seconds…
    pub target_ack_s: Option<u32>,
    /// …and on site within this many.
    pub target_arrive_s: Option<u32>,
    /// While an offer is live and unanswered, its push is sent again this
    /// often, so a phone in a pocket rings again. 0: once only.
    pub repush_s: u32,
    /// Web Push to the stewards' phones.
    pub push: PushSettings,
    /// How each priority's offers reach the steward, step by step: a
    /// channel and the seconds after the offer (GoAlert's notification
    /// rules). Steps at or after the offer's expiry are not taken; SMS and
    /// voice steps need their gateway below.
    pub ladder: PerPriority<Vec<LadderStep>>,
    /// The SMS gateway (any provider with an HTTP API); unset: no SMS.
    pub sms: Option<GatewaySettings>,
    /// The voice-call gateway; unset: no calls.
    pub voice: Option<GatewaySettings>,
    /// The language of SMS and calls (and of pushes to a phone that did
    /// not say), unless the steward's own languages name one we speak.
    pub language: Lang,
}

impl Default for NotifySettings {
    fn default() -> Self {
        let step = |channel, after_s| LadderStep { channel, after_s };
        Self {
            webhooks: Vec::new(),
            target_ack_s: None,
            target_arrive_s: None,
            repush_s: 15,
            push: PushSettings::default(),
            ladder: PerPriority {
                // A call needs time to ring, be answered and speak: at
                // 15 s it leaves 15 s of a critical offer's 30.
                critical: vec![
                    step(ContactChannel::Push, 0),
                    step(ContactChannel::Sms, 10),
                    step(ContactChannel::Voice, 15),
                ],
                urgent: vec![step(ContactChannel::Push, 0), step(ContactChannel::Sms, 20)],
                routine: vec![step(ContactChannel::Push, 0)],
                technical: vec![step(ContactChannel::Push, 0)],
            },
            sms: None,
            voice: None,
            language: Lang::Zh,
        }
    }
}

impl NotifySettings {
    /// What an operator should hear at start-up about how offers reach
    /// stewards: ladder steps that come too late to be answered, and, on
    /// a site phones reach (`public_url` set), a placeholder push contact.
    /// Steps whose gateway is not configured are skipped quietly: that is
    /// the default until a site wires one.
    pub fn warnings(&self, dispatch: &DispatchSettings, public_site: bool) -> Vec<String> {
        let mut out = Vec::new();
        if public_site && self.push.subject.ends_with(".invalid") {
            out.push(format!(
                "notify.push.subject is the placeholder {:?}: set an address the push services can write to about this server",
                self.push.subject
            ));
        }
        for p in &dispatch.priorities {
            let timeout = dispatch.offer_timeout_s.get(*p);
            for step in self.ladder.of(*p) {
                let channel = step.channel.as_str();
                if !self.can_use(step.channel) {
                    continue;
                }
                if step.after_s >= timeout {
                    out.push(format!(
                        "notify.ladder.{p}: the {channel} step at {} s never happens: {p} offers expire after {timeout} s",
                        step.after_s
                    ));
                } else if step.channel != ContactChannel::Push && timeout - step.after_s < 10 {
                    out.push(format!(
                        "notify.ladder.{p}: the {channel} step at {} s leaves {} s to answer before the offer expires; move it earlier",
                        step.after_s,
                        timeout - step.after_s
                    ));
                }
            }
        }
        out
    }

    pub fn target_ack_s(&self) -> u32 {
        self.target_ack_s.unwrap_or(60)
    }

    pub fn target_arrive_s(&self) -> u32 {
        self.target_arrive_s.unwrap_or(900)
    }

    /// The gateway a channel goes through; push needs none (`None` for it
    /// too).
    pub fn gateway(&self, channel: ContactChannel) -> Option<&GatewaySettings> {
        match channel {
            ContactChannel::Push => None,
            ContactChannel::Sms => self.sms.as_ref(),
            ContactChannel::Voice => self.voice.as_ref(),
        }
    }

    /// Whether offers can go out on this channel at all.
    pub fn can_use(&self, channel: ContactChannel) -> bool {
        channel == ContactChannel::Push || self.gateway(channel).is_some()
    }
}

/// One step of a priority's ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LadderStep {
    pub channel: ContactChannel,
    /// Seconds after the offer was made.
    pub after_s: u32,
}

/// Web Push (RFC 8030, encrypted per RFC 8291, signed per RFC 8292).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Accept subscriptions whose endpoint is plain `http://`: for tests
    /// and a push service on loopback only. Browsers' push services are
    /// all `https://`.
    pub allow_http: bool,
    /// Who runs this server, for the push services (RFC 8292 `sub`): a
    /// `mailto:` or `https:` address they can write to about our traffic.
    pub subject: String,
    /// Phones one steward may register; more is refused.
    pub max_per_steward: u32,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            allow_http: false,
            subject: "mailto:operator@eldercare.invalid".into(),
            max_per_steward: 5,
        }
    }
}

/// An SMS or voice gateway: any provider with an HTTP API (Aliyun,
/// Tencent Cloud, Twilio, a GSM modem's web interface), wired by settings.
/// The request is `method url` with `headers` and `body`, where
/// `{placeholder}`s are filled in ([`crate::notify::gateway`] lists them),
/// escaped for the content type (JSON string contents, form encoding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    /// Sent with every request (an API key); never logged.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The body template, e.g. `{"to": "{phone}", "text": "{text}"}`.
    pub body: String,
    /// Attempts before a message is marked failed (never past the offer's
    /// expiry).
    #[serde(default = "default_gateway_attempts")]
    pub max_attempts: u32,
    /// Replies (an SMS answered `1`, a key pressed on the call) posted
    /// back to `/api/v1/notify/inbound/{sms|voice}`; unset: none taken.
    pub inbound: Option<InboundSettings>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_content_type() -> String {
    "application/json".into()
}

fn default_gateway_attempts() -> u32 {
    3
}

/// How a gateway's replies are read and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundSettings {
    /// The HMAC-SHA256 key the gateway signs the raw body with.
    pub secret: Secret,
    /// The header carrying the signature: `sha256=<hex>`, `<hex>` or
    /// base64.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// The field (JSON or form) with the sender's phone number…
    #[serde(default = "default_from_field")]
    pub from_field: String,
    /// …and the one with the reply's text or the keys pressed.
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// The field in which a gateway echoes the offer it asked about (a
    /// template's `{offer_id}`), when it can: the reply then answers that
    /// offer only. Without it, a reply answers the steward's live offer if
    /// an SMS (or call) about it reached them.
    #[serde(default = "default_offer_field")]
    pub offer_field: String,
}

fn default_offer_field() -> String {
    "offer_id".into()
}

fn default_signature_header() -> String {
    "X-Eldercare-Signature".into()
}

fn default_from_field() -> String {
    "from".into()
}

fn default_text_field() -> String {
    "text".into()
}

/// Whom a webhook speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookAudience {
    /// Every incident change (the board's events), e.g. a supervisors' group.
    Supervisors,
    /// Escalations of critical incidents, with the elder's family contacts.
    Family,
}

/// One webhook: a JSON POST signed with HMAC-SHA256 of the body, retried
/// with capped exponential backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// A short name shown on the incident's delivery list.
    pub name: String,
    pub url: String,
    /// The HMAC key; the signature is `X-Eldercare-Signature: sha256=<hex>`.
    pub secret: Secret,
    pub audience: WebhookAudience,
    /// Attempts before the delivery is marked failed.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_attempts() -> u32 {
    8
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Where the API, the dashboard and the steward app listen.
    pub addr: SocketAddr,
    /// A map tile server for the dashboard's map, as a Leaflet URL
    /// template (`https://tiles.example/{z}/{x}/{y}.png`). Unset, the map
    /// shows positions to scale on a plain background: a site with no
    /// internet still has a map.
    pub map_tile_url: Option<String>,
    /// The address stewards' phones reach this server at
    /// (`https://eldercare.example.org`): the links in SMS and the voice
    /// gateway's callback are built on it. Unset, SMS carry no link.
    pub public_url: Option<String>,
    /// Open HTTP connections at most; at the cap the idlest is closed, or
    /// a new one gets a 503. Unset: half the open-file limit
    /// (`RLIMIT_NOFILE`) at start, the rest left for the broker, its
    /// devices and the database.
    pub max_connections: Option<usize>,
    /// A new connection must send its first request's headers within this.
    pub header_timeout_s: u32,
    /// A kept-alive connection with no request in flight is closed after
    /// this (a stream is never idle).
    pub idle_timeout_s: u32,
    /// Take a login's source address from the last `X-Forwarded-For`
    /// entry (the one the proxy added) instead of the connection's: only
    /// when every request comes through a reverse proxy that sets it.
    pub trust_forwarded_for: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".parse().expect("valid address"),
            map_tile_url: None,
            public_url: None,
            max_connections: None,
            header_timeout_s: 10,
            idle_timeout_s: 60,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://path` (created if missing) or `postgres://…`.
    pub url: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/eldercare.db".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// An external broker (`mqtt://host:1883`, or `mqtts://host:8883`
    /// for TLS); unset runs the embedded one.
    pub url: Option<String>,
    /// With `mqtts://`: the PEM certificate(s) of the CA that signed the
    /// broker's certificate; unset trusts the system's CAs.
    pub ca_file: Option<std::path::PathBuf>,
    /// Where the embedded broker listens.
    pub embedded_addr: SocketAddr,
    /// Topics live under `{topic_root}/devices/…`. Tests sharing a broker
    /// give each run its own root.
    pub topic_root: String,
    /// The dispatcher's MQTT client id. The broker keeps this session's
    /// queue while the dispatcher is down, so it must be stable across
    /// restarts and distinct per instance.
    pub client_id: String,
    /// No longer used (a warning at start says so): several instances
    /// each receive every event on their own session, since a shared
    /// subscription on Mosquitto keeps handing a dead member its share.
    /// Still read, so an older configuration starts.
    pub share_group: Option<String>,
    /// Unacknowledged messages the broker may have in flight to us.
    pub inflight: u16,
    pub keep_alive_s: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// An external Mosquitto with the dynamic security plugin: the login
    /// that keeps its device accounts in step with the registry. Unset
    /// with an external broker: device secrets are checked by nobody.
    pub dynsec: Option<DynsecSettings>,
}

/// The login, with the `eldercare-accounts` role, that manages devices'
/// accounts (`config/mosquitto-setup.sh` makes it). Its own, not the
/// dispatcher's: Mosquitto pins each login to one connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynsecSettings {
    pub username: String,
    pub password: Secret,
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            embedded_addr: "127.0.0.1:1883".parse().expect("valid address"),
            topic_root: protocol::Topics::DEFAULT_ROOT.into(),
            client_id: "eldercare-dispatcher".into(),
            share_group: None,
            inflight: 100,
            keep_alive_s: 30,
            username: None,
            password: None,
            dynsec: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The `admin` password when the store is new; unset: a random one,
    /// printed once.
    pub admin_password: Option<Secret>,
    /// How long a login lasts.
    pub session_hours: u32,
    /// Failed logins from one source address (from unknown devices)
    /// within 15 minutes before it is locked out for 5. Behind a reverse
    /// proxy every login comes from the proxy's address: raise it.
    pub failures_per_address: u32,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            admin_password: None,
            session_hours: 12,
            failures_per_address: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSettings {
    /// The most events stored in one transaction.
    pub batch_max: usize,
    /// The most events received and waiting for their commit. When it is
    /// full, ingest stops reading and the broker keeps the rest.
    pub queue_max: usize,
    /// Events per second per device before the excess is not acted on.
    pub rate_limit_per_s: u32,
    /// Of a flooding device's excess, how many events are stored per
    /// minute, as a sample for whoever looks into it; the rest is counted
    /// and acknowledged, not stored. 0 stores none.
    pub flood_sample_per_min: u32,
    /// How often the heartbeat table is written to the store.
    pub heartbeat_flush_ms: u64,
    /// A device's heartbeat is written at most once per this many seconds
    /// while it stays online; going offline or coming back is written at
    /// the next flush. The API shows newer heartbeats from memory. 0: every
    /// flush.
    pub heartbeat_write_s: u32,
    /// Heartbeat interval assumed for devices that do not state one.
    pub default_heartbeat_s: u32,
    /// Missed heartbeats in a row that raise `device.offline`.
    pub missed_heartbeats: u32,
    /// How often the timer loop looks for due deadlines and silent devices.
    pub tick_ms: u64,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            batch_max: 500,
            queue_max: 10_000,
            rate_limit_per_s: 20,
            flood_sample_per_min: 10,
            heartbeat_flush_ms: 1000,
            heartbeat_write_s: 30,
            default_heartbeat_s: 60,
            missed_heartbeats: 3,
            tick_ms: 500,
        }
    }
}

/// Site-wide vital-sign limits; each elder may override any of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VitalLimits {
    pub heart_rate_min: Option<f64>,
    pub heart_rate_max: Option<f64>,
    pub resp_rate_min: Option<f64>,
    pub resp_rate_max: Option<f64>,
    pub spo2_min: Option<f64>,
}

impl Default for VitalLimits {
    fn default() -> Self {
        Self {
            heart_rate_min: Some(45.0),
            heart_rate_max: Some(130.0),
            resp_rate_min: Some(8.0),
            resp_rate_max: Some(28.0),
            spo2_min: Some(90.0),
        }
    }
}

/// What the rules read: priorities per kind and the default limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSettings {
    pub priorities: BTreeMap<IncidentKind, Priority>,
    pub vitals: VitalLimits,
    /// Minutes a fall-risk elder may be out of bed at night.
    pub bed_return_min: u32,
    /// Minutes of reported inactivity that make an incident.
    pub inactivity_min: u32,
    pub night: NightWindow,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            priorities: default_priorities(),
            vitals: VitalLimits::default(),
            bed_return_min: 20,
            inactivity_min: 60,
            night: NightWindow::default(),
        }
    }
}

impl RuleSettings {
    pub fn priority(&self, kind: IncidentKind) -> Priority {
        // A file may name only the kinds it changes; the rest keep their
        // defaults.
        self.priorities
            .get(&kind)
            .copied()
            .or_else(|| default_priorities().get(&kind).copied())
            .unwrap_or(Priority::Urgent)
    }
}

/// A value that must never reach a log.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The environment variables of API.md and the setting each sets.
const NAMED_VARIABLES: [(&str, &[&str]); 5] = [
    ("ELDERCARE_HTTP_ADDR", &["http", "addr"]),
    ("ELDERCARE_DATABASE_URL", &["database", "url"]),
    ("ELDERCARE_MQTT_URL", &["mqtt", "url"]),
    ("ELDERCARE_EMBEDDED_MQTT_ADDR", &["mqtt", "embedded_addr"]),
    ("ELDERCARE_ADMIN_PASSWORD", &["auth", "admin_password"]),
];

/// A broker address from `ELDERCARE_MQTT_URL`: `mqtt://host:port` (or
/// `tcp://`), or `mqtts://host:port` (or `ssl://`) for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl BrokerUrl {
    /// A plain-TCP address.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: false,
        }
    }

    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, tls) = if let Some(rest) = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
        {
            (rest, false)
        } else if let Some(rest) = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))
        {
            (rest, true)
        } else {
            return Err(format!("{url:?} must start with mqtt:// or mqtts://"));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?} has a bad port {p:?}"))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            tls,
        })
    }

    /// `host:port`, for logs.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl GatewaySettings {
    /// Checks a gateway's settings at start-up: `Err((field, problem, fix))`.
    pub fn check(&self) -> Result<(), (String, String, &'static str)> {
        let g = self;
        let url_ok = reqwest::Url::parse(&g.url.replace(['{', '}'], ""))
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !url_ok {
            return Err((
                "url".into(),
                format!("{:?} is not an http(s) URL", g.url),
                "give the gateway's full address, e.g. https://sms.example.com/send",
            ));
        }
        if !matches!(g.method.as_str(), "GET" | "POST" | "PUT") {
            return Err((
                "method".into(),
                format!("{:?} is not GET, POST or PUT", g.method),
                "use POST unless the gateway's documentation says otherwise",
            ));
        }
        for (name, value) in &g.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value.expose()).is_err()
            {
                return Err((
                    format!("headers.{name}"),
                    "is not a valid HTTP header".into(),
                    "use a plain header name and a value without line breaks",
                ));
            }
        }
        if http::HeaderValue::from_str(&g.content_type).is_err() {
            return Err((
                "content_type".into(),
                format!("{:?} is not a header value", g.content_type),
                "e.g. application/json",
            ));
        }
        for (field, template) in [("url", &g.url), ("body", &g.body)] {
            if let Some(unknown) = crate::template::placeholders(template)
                .into_iter()
                .find(|p| !crate::template::PLACEHOLDERS.contains(p))
            {
                return Err((
                    field.into(),
                    format!("names {{{unknown}}}, which is not a placeholder"),
                    "use {phone}, {text}, {link}, {incident_id}, {offer_id}, {priority}, {kind}, \
                 {elder_name}, {distance_m}, {seconds_left}, {expires_at}, {steward_id}, \
                 {steward_name}, {lang} or {reply_url}",
                ));
            }
        }
        if g.max_attempts == 0 {
            return Err((
                "max_attempts".into(),
                "is 0".into(),
                "set 1 or more (3 is usual)",
            ));
        }
        if let Some(i) = &g.inbound {
            if http::HeaderName::from_bytes(i.signature_header.as_bytes()).is_err() {
                return Err((
                    "inbound.signature_header".into(),
                    format!("{:?} is not a header name", i.signature_header),
                    "e.g. X-Eldercare-Signature",
                ));
            }
            // Anyone can sign with an empty or short key.
            if i.secret.expose().len() < 16 {
                return Err((
                    "inbound.secret".into(),
                    "is shorter than 16 characters".into(),
                    "use a long random secret, the same the gateway signs with",
                ));
            }
        }
        Ok(())
    }
}

/// A setting that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("bad setting {setting}: {problem}; {fix}")]
pub struct SettingsError {
    pub setting: String,
    pub problem: String,
    pub fix: String,
}

impl Settings {
    /// Defaults, then `file` if given, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut tree = toml::Value::try_from(Settings::default()).map_err(|e| SettingsError {
            setting: "defaults".into(),
            problem: e.to_string(),
            fix: "this is a bug; report it".into(),
        })?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| SettingsError {
                setting: format!("--config {}", path.display()),
                problem: e.to_string(),
                fix: "give the path of a readable TOML file".into(),
            })?;
            let overlay: toml::Value = toml::from_str(&text).map_err(|e| SettingsError {
                setting: format!("--config {}", path.display()),
                problem: e.message().to_owned(),
                fix: "fix the TOML syntax (see config/production.example.toml)".into(),
            })?;
            merge(&mut tree, overlay);
        }
        for (name, value) in env {
            if value.is_empty() {
                continue;
            }
            // API.md's variables are all text (a password of digits stays
            // text); the generic ones are read as TOML scalars.
            let (path, value): (Vec<String>, toml::Value) =
                if let Some((_, p)) = NAMED_VARIABLES.iter().find(|(n, _)| *n == name) {
                    (
                        p.iter().map(|s| (*s).to_owned()).collect(),
                        toml::Value::String(value),
                    )
                } else if let Some(rest) = name.strip_prefix("ELDERCARE__") {
                    (
                        rest.split("__").map(str::to_lowercase).collect(),
                        scalar(&value),
                    )
                } else {
                    continue;
                };
            set_path(&mut tree, &path, value);
        }
        Settings::deserialize(tree)
            .map_err(|e| SettingsError {
                setting: "configuration".into(),
                problem: e.message().to_owned(),
                fix: "check the names and values against config/default.toml".into(),
            })?
            .validated()
    }

    fn validated(self) -> Result<Self, SettingsError> {
        self.embedded_broker.validate()?;
        self.device_duty.validate()?;
        let bad = |setting: &str, problem: String, fix: &str| SettingsError {
            setting: setting.into(),
            problem,
            fix: fix.into(),
        };
        if self.ingest.batch_max == 0 {
            return Err(bad(
                "ingest.batch_max",
                "is 0".into(),
                "set 1 or more (500 is usual)",
            ));
        }
        if self.ingest.queue_max == 0 {
            return Err(bad(
                "ingest.queue_max",
                "is 0".into(),
                "set 1 or more (10000 is usual)",
            ));
        }
        if self.care.visit_until <= self.care.visit_from {
            return Err(bad(
                "care.visit_until",
                format!(
                    "{} is not after care.visit_from ({})",
                    self.care.visit_until, self.care.visit_from
                ),
                "set the visiting hours in order, e.g. visit_from = \"09:00\", visit_until = \"17:00\"",
            ));
        }
        if self.care.tick_s == 0 {
            return Err(bad(
                "care.tick_s",
                "is 0".into(),
                "set 1 or more (5 is usual)",
            ));
        }
        if [
            self.care.on_watch_days,
            self.care.recent_incident_days,
            self.care.lives_alone_days,
            self.care.default_days,
        ]
        .contains(&0)
        {
            return Err(bad(
                "care.*_days",
                "a visit cadence is 0".into(),
                "set each cadence to 1 day or more; one elder's plan (care.visit_every_days = 0) opts them out",
            ));
        }
        if self.retention.batch == 0 || self.retention.interval_s == 0 {
            return Err(bad(
                "retention.batch and retention.interval_s",
                "is 0".into(),
                "set 1 or more (500 rows every 600 s is usual); to keep something for ever set its *_days to 0",
            ));
        }
        if self.ingest.rate_limit_per_s == 0 {
            return Err(bad(
                "ingest.rate_limit_per_s",
                "is 0".into(),
                "set 1 or more (20 is usual)",
            ));
        }
        if self.ingest.missed_heartbeats == 0 || self.ingest.default_heartbeat_s == 0 {
            return Err(bad(
                "ingest.missed_heartbeats / ingest.default_heartbeat_s",
                "is 0".into(),
                "set 1 or more (3 and 60 are usual)",
            ));
        }
        if self.mqtt.inflight == 0 {
            return Err(bad(
                "mqtt.inflight",
                "is 0".into(),
                "set 1 or more (100 is usual)",
            ));
        }
        if let Some(url) = &self.mqtt.url {
            BrokerUrl::parse(url).map_err(|e| {
                bad(
                    "ELDERCARE_MQTT_URL",
                    e,
                    "use mqtt://host:port, e.g. mqtt://127.0.0.1:1883, or mqtts://host:8883 for TLS",
                )
            })?;
        }
        if protocol::DeviceId::parse(self.mqtt.client_id.clone()).is_err() {
            return Err(bad(
                "mqtt.client_id",
                format!("{:?} is not a valid client id", self.mqtt.client_id),
                "use letters, digits, '-' and '_'",
            ));
        }
        let db = &self.database.url;
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres:")
            || db.starts_with("postgresql:"))
        {
            return Err(bad(
                "ELDERCARE_DATABASE_URL",
                format!("{db:?} is neither SQLite nor PostgreSQL"),
                "use sqlite://data/eldercare.db or postgres://user@host/db",
            ));
        }
        if let Some(url) = &self.http.public_url {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(bad(
                    "http.public_url",
                    format!("{url:?} is not an http(s) address"),
                    "use the address phones reach this server at, e.g. https://eldercare.example.org",
                ));
            }
        }
        if self.auth.failures_per_address == 0 {
            return Err(bad(
                "auth.failures_per_address",
                "is 0".into(),
                "set 1 or more (20 is usual)",
            ));
        }
        if self.http.max_connections == Some(0)
            || self.http.header_timeout_s == 0
            || self.http.idle_timeout_s == 0
        {
            return Err(bad(
                "http.max_connections / http.header_timeout_s / http.idle_timeout_s",
                "is 0".into(),
                "set 1 or more, or leave max_connections unset for half the open-file limit",
            ));
        }
        let subject = &self.notify.push.subject;
        if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
            return Err(bad(
                "notify.push.subject",
                format!("{subject:?} is neither a mailto: nor an https: address"),
                "give an address the push services can write to, e.g. mailto:ops@example.org",
            ));
        }
        if self.notify.push.max_per_steward == 0 {
            return Err(bad(
                "notify.push.max_per_steward",
                "is 0".into(),
                "set 1 or more (5 is usual)",
            ));
        }
        for (name, hours) in [
            ("follow_ups.call_within_h", self.follow_ups.call_within_h),
            ("follow_ups.visit_within_h", self.follow_ups.visit_within_h),
        ] {
            if hours == 0 || hours > FollowUpSettings::MAX_H {
                return Err(bad(
                    name,
                    format!("is {hours}"),
                    "set 1 to 744 hours (24 for a call and 72 for a visit are usual)",
                ));
            }
        }
        for (name, gateway) in [("sms", &self.notify.sms), ("voice", &self.notify.voice)] {
            if let Some(g) = gateway {
                g.check().map_err(|(field, problem, fix)| {
                    bad(&format!("notify.{name}.{field}"), problem, fix)
                })?;
            }
        }
        Ok(self)
    }
}

/// An environment value as TOML if it reads as a scalar, else a string.
fn scalar(value: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn set_path(tree: &mut toml::Value, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        let Some(table) = node.as_table_mut() else {
            return;
        };
        node = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    if let Some(table) = node.as_table_mut() {
        table.insert(last.clone(), value);
    }
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The hours the site calls night, in its local time. The window may wrap
/// midnight (22:00 to 07:00).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NightWindow {
    /// "22:00"
    pub start: NaiveTime,
    /// "07:00"
    pub end: NaiveTime,
    /// The site's offset from UTC in minutes (Lhasa: 480).
    pub utc_offset_min: i32,
}

impl Default for NightWindow {
    fn default() -> Self {
        Self {
            start: NaiveTime::from_hms_opt(22, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(7, 0, 0).expect("valid time"),
            utc_offset_min: 480,
        }
    }
}

impl NightWindow {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let offset = crate::domain::SiteClock::offset(self.utc_offset_min);
        let local = at
            .with_timezone(&offset)
            .time()
            .with_nanosecond(0)
            .unwrap_or_default();
        if self.start <= self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

/// Default priorities per kind (PROTOCOL.md's "default meaning").
pub fn default_priorities() -> BTreeMap<IncidentKind, Priority> {
    use IncidentKind::*;
    use Priority::*;
    BTreeMap::from([
        (Call, Urgent),
        (Fall, Critical),
        (Vitals, Critical),
        (Smoke, Critical),
        (Inactivity, Urgent),
        (DoorAtNight, Urgent),
        (BedNoReturn, Urgent),
        (CheckinMissed, Urgent),
        (VisitOverdue, Routine),
        (BatteryLow, Technical),
        (Tamper, Technical),
        (DeviceOffline, Technical),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn defaults_then_environment() {
        let s = Settings::load_from(
            None,
            env(&[
                ("ELDERCARE_HTTP_ADDR", "127.0.0.1:9999"),
                ("ELDERCARE_MQTT_URL", "mqtt://127.0.0.1:1883"),
                ("ELDERCARE__INGEST__RATE_LIMIT_PER_S", "50"),
                ("ELDERCARE__MQTT__TOPIC_ROOT", "t1/eldercare/v1"),
                ("ELDERCARE_ADMIN_PASSWORD", "12345"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(s.http.addr.port(), 9999);
        assert_eq!(s.ingest.rate_limit_per_s, 50);
        assert_eq!(s.mqtt.topic_root, "t1/eldercare/v1");
        // A numeric-looking password stays a string.
        assert_eq!(s.auth.admin_password.unwrap().expose(), "12345");
        assert_eq!(s.rules.priority(IncidentKind::Fall), Priority::Critical);
    }

    #[test]
    fn bad_settings_name_themselves() {
        let e = Settings::load_from(None, env(&[("ELDERCARE_HTTP_ADDR", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("addr"), "{e}");
        let e = Settings::load_from(None, env(&[("ELDERCARE__INGEST__NOPE", "1")])).unwrap_err();
        assert!(!e.to_string().is_empty());
        let s = Settings::load_from(None, env(&[("ELDERCARE__FOLLOW_UPS__CALL_WITHIN_H", "6")]))
            .unwrap();
        assert_eq!(s.follow_ups.call_within_h, 6);
        assert_eq!(s.follow_ups.visit_within_h, 72);
        let e = Settings::load_from(None, env(&[("ELDERCARE__FOLLOW_UPS__VISIT_WITHIN_H", "0")]))
            .unwrap_err();
        assert!(e.to_string().contains("follow_ups.visit_within_h"), "{e}");
        let e = Settings::load_from(None, env(&[("ELDERCARE__INGEST__NOPE", "1")])).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e =
            Settings::load_from(None, env(&[("ELDERCARE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(e.to_string().contains("ELDERCARE_DATABASE_URL"), "{e}");
        let e = Settings::load_from(None, env(&[("ELDERCARE_MQTT_URL", "http://x")])).unwrap_err();
        assert!(e.to_string().contains("ELDERCARE_MQTT_URL"), "{e}");
    }

    #[test]
    fn a_file_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("eldercare-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("s.toml");
        std::fs::write(
            &file,
            "[rules]\nbed_return_min = 5\n[rules.priorities]\ncall = \"critical\"\n",
        )
        .unwrap();
        let s = Settings::load_from(Some(&file), env(&[])).unwrap();
        assert_eq!(s.rules.bed_return_min, 5);
        assert_eq!(s.rules.priority(IncidentKind::Call), Priority::Critical);
        assert_eq!(s.rules.priority(IncidentKind::Smoke), Priority::Critical);
    }
}

#[cfg(test)]
mod shipped_files {
    use super::*;

    #[test]
    fn device_duty_is_set_from_the_environment_and_checked() {
        let s = Settings::load_from(
            None,
            vec![
                (
                    "ELDERCARE__DEVICE_DUTY__TEST_EVERY_DAYS".into(),
                    "14".into(),
                ),
                (
                    "ELDERCARE__DEVICE_DUTY__FALSE_ALARM_THRESHOLD".into(),
                    "0.75".into(),
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.device_duty.test_every_days, 14);
        assert_eq!(s.device_duty.false_alarm_threshold, 0.75);
        assert_eq!(s.device_duty.confirm_within_s, 300);
        let e = Settings::load_from(
            None,
            vec![(
                "ELDERCARE__DEVICE_DUTY__FALSE_ALARM_THRESHOLD".into(),
                "2".into(),
            )],
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("device_duty.false_alarm_threshold"),
            "{e}"
        );
    }

    #[test]
    fn config_default_toml_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml");
        let from_file = Settings::load_from(Some(&path), Vec::new()).unwrap();
        assert_eq!(
            toml::to_string(&from_file).unwrap(),
            toml::to_string(&Settings::default()).unwrap()
        );
        let example =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/production.example.toml");
        let prod = Settings::load_from(Some(&example), Vec::new()).unwrap();
        assert_eq!(prod.mqtt.share_group, None, "no shared subscription");
    }
}
