//! Rules: what a device event means for an elder, as PROTOCOL.md says.
//!
//! [`RuleBook::decide`] is a pure function of the event, the device, the
//! elder and the settings; it returns [`Effect`]s that the store applies in
//! the same transaction that stores the event. Nothing here does I/O, so
//! every rule is tested without a database.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::care::StartedHow;
use crate::domain::{
    DedupKey, Device, DeviceId, Elder, ElderId, IncidentKind, Priority, SiteClock,
};
use crate::settings::{
    DeviceDutySettings, DispatchSettings, FollowUpSettings, NotifySettings, RuleSettings,
};
use protocol::{EventId, EventMessage, EventType};

/// A change the store makes for an event, a timer or the offline detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Open an incident under `key`, or join the open one (a repeated
    /// press, a redelivered event).
    Raise {
        key: String,
        elder_id: Option<ElderId>,
        device_id: Option<DeviceId>,
        kind: IncidentKind,
        priority: Priority,
        /// What raised it, for the timeline and the board.
        summary: String,
    },
    /// Close the open incident under `key` as cancelled, if nobody has
    /// reached the elder yet.
    Cancel {
        key: String,
        reason: String,
    },
    /// Resolve the open (technical) incident under `key` as cleared.
    Clear {
        key: String,
        note: String,
    },
    /// Apply `effects` at `due_at` unless unscheduled first. Scheduling a
    /// key again moves it.
    Schedule {
        key: String,
        due_at: DateTime<Utc>,
        effects: Vec<Effect>,
    },
    Unschedule {
        key: String,
    },
    /// Begin the elder's planned visit: the steward is at the door.
    StartVisit {
        elder_id: ElderId,
        how: StartedHow,
    },
    /// Record a scheduled test call of the device (once per event id) and
    /// answer it with a `test.ack` command. Never opens an incident.
    TestCall {
        device: DeviceId,
        event_id: EventId,
        /// A confirmation after this is late: the test does not pass.
        confirm_by: DateTime<Utc>,
    },
    /// The device confirms it received the answer to its test call
    /// `test_event_id`: the test passes if in time. An unknown test, or
    /// one already confirmed, changes nothing.
    TestConfirmed {
        device: DeviceId,
        test_event_id: EventId,
    },
}

/// What the rules made of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The device is not registered, or not bound to an elder and the
    /// event is not about the device itself: stored and shown as unknown.
    UnknownDevice,
    /// A type this dispatcher does not know.
    UnknownType,
    /// Apply these (possibly none: a bed return by day).
    Effects(Vec<Effect>),
}

/// The site's rules with the settings they read: what events mean, how
/// incidents are dispatched and who is notified. The store reads the last
/// two inside its transactions to write offers and notifications.
#[derive(Debug, Clone)]
pub struct RuleBook {
    settings: RuleSettings,
    dispatch: DispatchSettings,
    notify: NotifySettings,
    follow_ups: FollowUpSettings,
    duty: DeviceDutySettings,
}

impl RuleBook {
    pub fn new(settings: RuleSettings) -> Self {
        Self {
            settings,
            dispatch: DispatchSettings::default(),
            notify: NotifySettings::default(),
            follow_ups: FollowUpSettings::default(),
            duty: DeviceDutySettings::default(),
        }
    }

    /// With follow-up times other than the defaults.
    pub fn with_follow_ups(mut self, follow_ups: FollowUpSettings) -> Self {
        self.follow_ups = follow_ups;
        self
    }

    /// How soon a follow-up is due after a resolve.
    pub fn follow_ups(&self) -> &FollowUpSettings {
        &self.follow_ups
    }

    /// With device-duty settings other than the defaults (how long a
    /// test call waits for its confirmation).
    pub fn with_duty(mut self, duty: DeviceDutySettings) -> Self {
        self.duty = duty;
        self
    }

    pub fn duty(&self) -> &DeviceDutySettings {
        &self.duty
    }

    /// With dispatch and notification settings other than the defaults.
    pub fn with_dispatch(mut self, dispatch: DispatchSettings, notify: NotifySettings) -> Self {
        self.dispatch = dispatch;
        self.notify = notify;
        self
    }

    pub fn settings(&self) -> &RuleSettings {
        &self.settings
    }

    pub fn dispatch(&self) -> &DispatchSettings {
        &self.dispatch
    }

    pub fn notify(&self) -> &NotifySettings {
        &self.notify
    }

    /// Whether incidents of this priority are offered to stewards.
    pub fn dispatches(&self, priority: Priority) -> bool {
        self.dispatch.priorities.contains(&priority)
    }

    /// The priority of a kind for this elder: their override, else the
    /// site's.
    pub fn priority(&self, kind: IncidentKind, elder: Option<&Elder>) -> Priority {
        elder
            .and_then(|e| e.limits.priorities.get(&kind).copied())
            .unwrap_or_else(|| self.settings.priority(kind))
    }

    /// Whether `at` falls in the site's night, in the site's local time.
    pub fn is_night(&self, at: DateTime<Utc>) -> bool {
        self.settings.night.contains(at)
    }

    /// The effects that clear a device's offline incident when it is heard
    /// again.
    pub fn device_heard(&self, device: &DeviceId) -> Vec<Effect> {
        vec![Effect::Clear {
            key: DedupKey::for_device(device, IncidentKind::DeviceOffline).to_string(),
            note: "device heard again".into(),
        }]
    }

    /// The effects of a device going silent or reporting itself offline.
    pub fn device_offline(&self, device: &Device, why: &str) -> Vec<Effect> {
        let kind = IncidentKind::DeviceOffline;
        vec![Effect::Raise {
            key: DedupKey::for_device(&device.id, kind).to_string(),
            elder_id: device.elder_id.clone(),
            device_id: Some(device.id.clone()),
            kind,
            priority: self.settings.priority(kind),
            summary: format!("{} {} offline: {why}", device.kind, device.id),
        }]
    }

    /// What one event means. `received_at` is the dispatcher's clock, used
    /// for "at night" and for timers, never the device's.
    pub fn decide(
        &self,
        event: &EventMessage,
        received_at: DateTime<Utc>,
        device: Option<&Device>,
        elder: Option<&Elder>,
    ) -> Verdict {
        let Some(device) = device else {
            return Verdict::UnknownDevice;
        };
        // Technical events concern the device, bound or not.
        match event.event_type {
            EventType::BatteryLow => {
                let level = event
                    .level_pct()
                    .map(|l| format!(" ({l:.0}%)"))
                    .unwrap_or_default();
                return Verdict::Effects(vec![self.raise_for_device(
                    device,
                    elder,
                    IncidentKind::BatteryLow,
                    format!("battery low{level}"),
                )]);
            }
            EventType::Tamper => {
                return Verdict::Effects(vec![self.raise_for_device(
                    device,
                    elder,
                    IncidentKind::Tamper,
                    "device tampered with".into(),
                )]);
            }
            // A test concerns the device, bound or not: a button in stock
            // is tested before it goes to a home.
            EventType::TestCall => {
                return Verdict::Effects(vec![Effect::TestCall {
                    device: device.id.clone(),
                    event_id: event.event_id.clone(),
                    confirm_by: received_at
                        + Duration::seconds(i64::from(self.duty.confirm_within_s)),
                }]);
            }
            EventType::TestConfirmed => {
                return Verdict::Effects(match event.test_event_id() {
                    Some(test_event_id) => vec![Effect::TestConfirmed {
                        device: device.id.clone(),
                        test_event_id,
                    }],
                    // Nothing to confirm: stored, and otherwise ignored.
                    None => vec![],
                });
            }
            EventType::Unknown(_) => return Verdict::UnknownType,
            _ => {}
        }
        let Some(elder) = elder else {
            return Verdict::UnknownDevice;
        };
        let verdict = self.decide_for_elder(event, received_at, device, elder);
        match verdict {
            Verdict::Effects(mut effects) => {
                effects.extend(self.checked_in(&event.event_type, received_at, elder));
                Verdict::Effects(effects)
            }
            other => other,
        }
    }

    /// A steward at the elder's door: their planned visit begins, and the
    /// incident its lateness raised (if any) clears.
    pub fn visit_begun(elder: &Elder, how: StartedHow) -> Vec<Effect> {
        vec![
            Effect::StartVisit {
                elder_id: elder.id.clone(),
                how,
            },
            Effect::Clear {
                key: DedupKey::for_elder(&elder.id, IncidentKind::VisitOverdue).to_string(),
                note: "the steward is at the door for the visit".into(),
            },
        ]
    }

    /// The site's clock, for "today" and "by 10:00".
    pub fn site_clock(&self) -> SiteClock {
        SiteClock::new(self.settings.night.utc_offset_min)
    }

    /// The check-in deadline's key for an elder.
    pub fn checkin_key(elder: &ElderId) -> String {
        format!("checkin:{elder}")
    }

    /// The deadline that watches an elder's check-in: at `due_at`, a
    /// welfare check unless a sign of life moves it first.
    pub fn checkin_deadline(&self, elder: &Elder, due_at: DateTime<Utc>) -> Effect {
        let by = self.site_clock().time_of_day(due_at).format("%H:%M");
        Effect::Schedule {
            key: Self::checkin_key(&elder.id),
            due_at,
            effects: vec![self.raise_about(
                elder,
                None,
                IncidentKind::CheckinMissed,
                format!("no check-in by {by}: welfare check"),
            )],
        }
    }

    /// What a sign of life means for an elder on daily check-in: inside
    /// the day's window (`from` to `by`) it is the day's check-in and moves
    /// the deadline to tomorrow; a check-in press after `by` is late, and
    /// closes the welfare check nobody has reached yet. A call and the
    /// morning's bed exit count as signs of life; nothing before `from`
    /// does (a bed exit at 02:00 is the night's).
    fn checked_in(&self, what: &EventType, at: DateTime<Utc>, elder: &Elder) -> Vec<Effect> {
        let Some(checkin) = elder.care.checkin else {
            return vec![];
        };
        let sign_of_life = matches!(
            what,
            EventType::CheckinPressed | EventType::CallPressed | EventType::BedExit
        );
        if !sign_of_life {
            return vec![];
        }
        let clock = self.site_clock();
        let today = clock.date(at);
        if at < clock.at(today, checkin.from) {
            return vec![];
        }
        if at < clock.at(today, checkin.by) {
            return vec![self.checkin_deadline(elder, checkin.next_deadline(&clock, at))];
        }
        if *what == EventType::CheckinPressed {
            return vec![Effect::Cancel {
                key: DedupKey::for_elder(&elder.id, IncidentKind::CheckinMissed).to_string(),
                reason: "the elder checked in late".into(),
            }];
        }
        vec![]
    }

    /// What an event of a bound device means for its elder's safety.
    fn decide_for_elder(
        &self,
        event: &EventMessage,
        received_at: DateTime<Utc>,
        device: &Device,
        elder: &Elder,
    ) -> Verdict {
        let raise = |kind: IncidentKind, summary: String| {
            Verdict::Effects(vec![self.raise_for_elder(device, elder, kind, summary)])
        };
        let bed_key = format!("bed-return:{}", elder.id);
        match &event.event_type {
            EventType::CallPressed => raise(
                IncidentKind::Call,
                format!("call pressed ({})", event.button().unwrap_or("button")),
            ),
            EventType::CallCancelled => Verdict::Effects(vec![Effect::Cancel {
                key: DedupKey::for_elder(&elder.id, IncidentKind::Call).to_string(),
                reason: "cancelled by the elder at the device".into(),
            }]),
            EventType::FallDetected => raise(
                IncidentKind::Fall,
                match event.confidence() {
                    Some(c) => format!("fall detected (confidence {c:.2})"),
                    None => "fall detected".into(),
                },
            ),
            EventType::SmokeDetected => raise(IncidentKind::Smoke, "smoke detected".into()),
            EventType::Vitals => match self.vitals_breaches(event, elder) {
                breaches if breaches.is_empty() => Verdict::Effects(vec![]),
                breaches => raise(IncidentKind::Vitals, breaches.join("; ")),
            },
            EventType::Inactivity => {
                let limit = elder
                    .limits
                    .inactivity_min
                    .unwrap_or(self.settings.inactivity_min);
                match event.minutes() {
                    Some(m) if m < f64::from(limit) => Verdict::Effects(vec![]),
                    Some(m) => raise(
                        IncidentKind::Inactivity,
                        format!("no movement for {m:.0} min"),
                    ),
                    None => raise(IncidentKind::Inactivity, "no movement".into()),
                }
            }
            EventType::DoorOpen if elder.risks.wandering && self.is_night(received_at) => raise(
                IncidentKind::DoorAtNight,
                format!("{} door opened at night", event.door().unwrap_or("a")),
            ),
            EventType::DoorOpen => Verdict::Effects(vec![]),
            EventType::BedExit if elder.risks.fall && self.is_night(received_at) => {
                let minutes = elder
                    .limits
                    .bed_return_min
                    .unwrap_or(self.settings.bed_return_min);
                Verdict::Effects(vec![Effect::Schedule {
                    key: bed_key,
                    due_at: received_at + Duration::minutes(i64::from(minutes)),
                    effects: vec![self.raise_for_elder(
                        device,
                        elder,
                        IncidentKind::BedNoReturn,
                        format!("out of bed at night for {minutes} min without returning"),
                    )],
                }])
            }
            EventType::BedExit => Verdict::Effects(vec![]),
            EventType::BedReturn => Verdict::Effects(vec![Effect::Unschedule { key: bed_key }]),
            // The care extensions (docs/PROTOCOL-EXTENSIONS.md).
            EventType::StewardHere => {
                Verdict::Effects(Self::visit_begun(elder, StartedHow::Button))
            }
            // Its meaning is the check-in's, added to every event below.
            EventType::CheckinPressed => Verdict::Effects(vec![]),
            // Handled before the elder is needed.
            EventType::BatteryLow
            | EventType::Tamper
            | EventType::TestCall
            | EventType::TestConfirmed
            | EventType::Unknown(_) => Verdict::Effects(vec![]),
        }
    }

    /// Each reading outside the elder's limits, in words.
    fn vitals_breaches(&self, event: &EventMessage, elder: &Elder) -> Vec<String> {
        let v = event.vitals();
        let (d, l) = (&self.settings.vitals, &elder.limits);
        let mut out = Vec::new();
        let mut check =
            |name: &str, unit: &str, value: Option<f64>, min: Option<f64>, max: Option<f64>| {
                let Some(value) = value else { return };
                if let Some(min) = min.filter(|m| value < *m) {
                    out.push(format!("{name} {value}{unit} below {min}"));
                }
                if let Some(max) = max.filter(|m| value > *m) {
                    out.push(format!("{name} {value}{unit} above {max}"));
                }
            };
        check(
            "heart rate",
            "/min",
            v.heart_rate,
            l.heart_rate_min.or(d.heart_rate_min),
            l.heart_rate_max.or(d.heart_rate_max),
        );
        check(
            "respiration",
            "/min",
            v.resp_rate,
            l.resp_rate_min.or(d.resp_rate_min),
            l.resp_rate_max.or(d.resp_rate_max),
        );
        check("SpO2", "%", v.spo2, l.spo2_min.or(d.spo2_min), None);
        out
    }

    fn raise_for_elder(
        &self,
        device: &Device,
        elder: &Elder,
        kind: IncidentKind,
        summary: String,
    ) -> Effect {
        self.raise_about(elder, Some(&device.id), kind, summary)
    }

    /// Opens (or joins) the elder's incident of `kind`, at their priority;
    /// `device` is none when no device raised it (a missed check-in, a
    /// late visit).
    pub fn raise_about(
        &self,
        elder: &Elder,
        device: Option<&DeviceId>,
        kind: IncidentKind,
        summary: String,
    ) -> Effect {
        Effect::Raise {
            key: DedupKey::for_elder(&elder.id, kind).to_string(),
            elder_id: Some(elder.id.clone()),
            device_id: device.cloned(),
            kind,
            priority: self.priority(kind, Some(elder)),
            summary,
        }
    }

    fn raise_for_device(
        &self,
        device: &Device,
        elder: Option<&Elder>,
        kind: IncidentKind,
        summary: String,
    ) -> Effect {
        Effect::Raise {
            key: DedupKey::for_device(&device.id, kind).to_string(),
            elder_id: device.elder_id.clone(),
            device_id: Some(device.id.clone()),
            kind,
            priority: self.priority(kind, elder),
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceKind, LatLon, Limits, Risks};
    use crate::settings::NightWindow;
    use serde_json::json;

    fn book() -> RuleBook {
        RuleBook::new(RuleSettings::default())
    }

    fn elder(limits: Limits, risks: Risks) -> Elder {
        Elder {
            id: ElderId::parse("e-1").unwrap(),
            name: "次仁卓玛".into(),
            birth_year: 1946,
            address: "塔玛社区 1组 7号".into(),
            location: LatLon::new(29.66, 91.14).unwrap(),
            grid: "grid-1".into(),
            conditions: vec![],
            medications: vec![],
            risks,
            lives_alone: true,
            languages: vec!["bo".into()],
            contacts: vec![],
            notes: String::new(),
            limits,
            care: Default::default(),
        }
    }

    fn device(elder: Option<&Elder>) -> Device {
        Device {
            id: DeviceId::parse("dev-1").unwrap(),
            elder_id: elder.map(|e| e.id.clone()),
            kind: DeviceKind::CallButton,
            heartbeat_s: 60,
            online: true,
            last_seen: None,
            battery_pct: None,
            rssi_dbm: None,
            fw: None,
        }
    }

    fn event(kind: &str) -> EventMessage {
        EventMessage::new(EventId::parse("1").unwrap(), EventType::from(kind), night())
    }

    /// 23:30 in Lhasa.
    fn night() -> DateTime<Utc> {
        "2026-11-28T15:30:00Z".parse().unwrap()
    }

    /// 14:00 in Lhasa.
    fn day() -> DateTime<Utc> {
        "2026-11-28T06:00:00Z".parse().unwrap()
    }

    fn raised(v: &Verdict) -> Vec<(IncidentKind, Priority)> {
        match v {
            Verdict::Effects(e) => e
                .iter()
                .filter_map(|e| match e {
                    Effect::Raise { kind, priority, .. } => Some((*kind, *priority)),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn a_press_is_urgent_and_a_fall_critical() {
        let e = elder(Limits::default(), Risks::default());
        let d = device(Some(&e));
        let b = book();
        assert_eq!(
            raised(&b.decide(&event("call.pressed"), day(), Some(&d), Some(&e))),
            [(IncidentKind::Call, Priority::Urgent)]
        );
        assert_eq!(
            raised(&b.decide(&event("fall.detected"), day(), Some(&d), Some(&e))),
            [(IncidentKind::Fall, Priority::Critical)]
        );
        assert_eq!(
            raised(&b.decide(&event("smoke.detected"), day(), Some(&d), Some(&e))),
            [(IncidentKind::Smoke, Priority::Critical)]
        );
    }

    #[test]
    fn an_elders_override_beats_the_site_priority() {
        let mut limits = Limits::default();
        limits
            .priorities
            .insert(IncidentKind::Call, Priority::Critical);
        let e = elder(limits, Risks::default());
        let d = device(Some(&e));
        assert_eq!(
            raised(&book().decide(&event("call.pressed"), day(), Some(&d), Some(&e))),
            [(IncidentKind::Call, Priority::Critical)]
        );
    }

    #[test]
    fn vitals_use_the_elders_limits_first() {
        let high = elder(
            Limits {
                spo2_min: Some(84.0),
                ..Limits::default()
            },
            Risks::default(),
        );
        let standard = elder(Limits::default(), Risks::default());
        let reading = event("vitals")
            .with_data("spo2", 86)
            .with_data("heart_rate", 80);
        let b = book();
        assert!(
            raised(&b.decide(&reading, day(), Some(&device(Some(&high))), Some(&high))).is_empty()
        );
        assert_eq!(
            raised(&b.decide(
                &reading,
                day(),
                Some(&device(Some(&standard))),
                Some(&standard)
            )),
            [(IncidentKind::Vitals, Priority::Critical)]
        );
        let slow = event("vitals").with_data("heart_rate", 38);
        assert_eq!(
            raised(&b.decide(&slow, day(), Some(&device(Some(&high))), Some(&high))).len(),
            1
        );
    }

    #[test]
    fn night_rules_need_the_risk_and_the_night() {
        let risky = elder(
            Limits::default(),
            Risks {
                fall: true,
                wandering: true,
            },
        );
        let safe = elder(Limits::default(), Risks::default());
        let b = book();
        let exit = event("bed.exit");
        let at_night = b.decide(&exit, night(), Some(&device(Some(&risky))), Some(&risky));
        assert!(
            matches!(&at_night, Verdict::Effects(e) if matches!(&e[..], [Effect::Schedule { due_at, .. }] if *due_at == night() + Duration::minutes(20)))
        );
        assert_eq!(
            b.decide(&exit, day(), Some(&device(Some(&risky))), Some(&risky)),
            Verdict::Effects(vec![])
        );
        assert_eq!(
            b.decide(&exit, night(), Some(&device(Some(&safe))), Some(&safe)),
            Verdict::Effects(vec![])
        );
        assert!(matches!(
            b.decide(&event("bed.return"), night(), Some(&device(Some(&risky))), Some(&risky)),
            Verdict::Effects(e) if matches!(&e[..], [Effect::Unschedule { .. }])
        ));
        let door = event("door.open");
        assert_eq!(
            raised(&b.decide(&door, night(), Some(&device(Some(&risky))), Some(&risky))),
            [(IncidentKind::DoorAtNight, Priority::Urgent)]
        );
        assert!(
            raised(&b.decide(&door, day(), Some(&device(Some(&risky))), Some(&risky))).is_empty()
        );
    }

    #[test]
    fn unknown_devices_and_types_are_kept_not_acted_on() {
        let e = elder(Limits::default(), Risks::default());
        let b = book();
        assert_eq!(
            b.decide(&event("call.pressed"), day(), None, None),
            Verdict::UnknownDevice
        );
        assert_eq!(
            b.decide(&event("call.pressed"), day(), Some(&device(None)), None),
            Verdict::UnknownDevice
        );
        assert_eq!(
            b.decide(
                &event("gas.detected"),
                day(),
                Some(&device(Some(&e))),
                Some(&e)
            ),
            Verdict::UnknownType
        );
        // A device's own trouble counts even when it is not bound.
        assert_eq!(
            raised(&b.decide(&event("battery.low"), day(), Some(&device(None)), None)),
            [(IncidentKind::BatteryLow, Priority::Technical)]
        );
    }

    #[test]
    fn a_test_call_is_answered_and_never_raises() {
        let e = elder(Limits::default(), Risks::default());
        let b = book();
        for d in [device(Some(&e)), device(None)] {
            let elder = d.elder_id.as_ref().map(|_| &e);
            let call = b.decide(&event("test.call"), day(), Some(&d), elder);
            assert_eq!(
                call,
                Verdict::Effects(vec![Effect::TestCall {
                    device: d.id.clone(),
                    event_id: EventId::parse("1").unwrap(),
                    confirm_by: day() + Duration::seconds(300),
                }])
            );
            let confirmed = event("test.confirmed").with_data("test_event_id", "1");
            assert_eq!(
                b.decide(&confirmed, day(), Some(&d), elder),
                Verdict::Effects(vec![Effect::TestConfirmed {
                    device: d.id.clone(),
                    test_event_id: EventId::parse("1").unwrap(),
                }])
            );
            // Naming no test (or no valid id): stored, nothing to do.
            for bad in [json!(null), json!(7), json!(""), json!("é")] {
                let confirmed = event("test.confirmed").with_data("test_event_id", bad);
                assert_eq!(
                    b.decide(&confirmed, day(), Some(&d), elder),
                    Verdict::Effects(vec![])
                );
            }
        }
        // An unregistered device's test is kept as unknown, like its presses.
        assert_eq!(
            b.decide(&event("test.call"), day(), None, None),
            Verdict::UnknownDevice
        );
    }

    #[test]
    fn a_stored_test_effect_reads_back_the_same() {
        let effect = Effect::TestCall {
            device: DeviceId::parse("dev-1").unwrap(),
            event_id: EventId::parse("t-1").unwrap(),
            confirm_by: day(),
        };
        let text = serde_json::to_string(&effect).unwrap();
        assert_eq!(serde_json::from_str::<Effect>(&text).unwrap(), effect);
    }

    #[test]
    fn the_night_window_wraps_midnight() {
        let n = NightWindow::default();
        assert!(n.contains(night()));
        assert!(!n.contains(day()));
        // 06:59 and 07:00 local.
        assert!(n.contains("2026-11-28T22:59:00Z".parse().unwrap()));
        assert!(!n.contains("2026-11-28T23:00:00Z".parse().unwrap()));
    }
}
