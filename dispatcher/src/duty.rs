//! Device duty (issue 16): is each device's alarm path tested on
//! schedule, and which devices and elders cry wolf.
//!
//! Pure functions over what the store reads ([`crate::store::duty`]), so
//! every judgement is tested without a database:
//!
//! - [`on_duty`]: which devices are tested (those with a button, and any
//!   that ever sent a test call).
//! - [`judge`]: a device's duty from its latest tests. A test call passes
//!   when the device confirms its `test.ack` by `confirm_by`; a device is
//!   due `test_every_days` after its last passed test (or `grace_days`
//!   after it went on duty if it never passed one) and has missed its
//!   test `grace_days` after that.
//! - [`false_alarms`]: of the resolved, non-technical incidents created in
//!   the window, the share stewards resolved as `false_alarm`, per device
//!   and per elder; those above the threshold with enough incidents are
//!   flagged, and each flagged elder gets a [`Suggestion`] from the kind
//!   that cried wolf most: a longer bed-exit window, a longer inactivity
//!   limit, or words where no rule of ours is to blame.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{DeviceId, DeviceKind, ElderId, EventId, IncidentKind, Limits, Outcome};
use crate::settings::{DeviceDutySettings, RuleSettings};
use crate::store::duty::{DutyRow, OutcomeCount, StoredTest};

/// Where a device stands with its scheduled test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DutyStatus {
    /// Tested, and not due yet.
    Ok,
    /// Its test is due (or it never told us when it went on duty).
    Due,
    /// Past due by more than the grace: listed for a visit.
    Missed,
}

crate::domain::incident::text_enum!(DutyStatus {
    Ok => "ok",
    Due => "due",
    Missed => "missed",
});

/// What came of one test call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestResult {
    /// Waiting for the device's confirmation, still in time.
    Pending,
    /// Confirmed in time: the round trip works.
    Passed,
    /// Confirmed, but after `confirm_within_s`: does not count.
    Late,
    /// Never confirmed in time.
    Failed,
}

/// One test call, as supervisors read it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceTest {
    /// The `event_id` of the device's `test.call`.
    #[schema(value_type = String)]
    pub event_id: EventId,
    /// When the dispatcher received the test call.
    pub received_at: DateTime<Utc>,
    /// The confirmation had to come by then.
    pub confirm_by: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub result: TestResult,
}

/// One device's duty.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceDuty {
    #[schema(value_type = crate::domain::DeviceIdSchema)]
    pub device_id: DeviceId,
    pub elder_id: Option<ElderId>,
    pub kind: DeviceKind,
    pub status: DutyStatus,
    /// When it went on duty (registered), when known.
    pub enrolled_at: Option<DateTime<Utc>>,
    /// Its latest test call, whatever came of it.
    pub last_test: Option<DeviceTest>,
    /// That test's result (also in `last_test`).
    pub last_result: Option<TestResult>,
    /// Its latest passed test.
    pub last_passed_at: Option<DateTime<Utc>>,
    /// When its next test is (was) due; null when nothing tells when it
    /// went on duty.
    pub due_at: Option<DateTime<Utc>>,
    /// When it counts (counted) as missed.
    pub missed_at: Option<DateTime<Utc>>,
}

/// Whether the device is on test duty: it has a button an elder or a
/// steward can hold for a test call (a call button, a pendant, a pull
/// cord), or its firmware has sent a test call before (a smoke detector's
/// test key). A bed sensor or a radar has no way to run one, and listing
/// it as missed every month would bury the devices that matter.
pub fn on_duty(row: &DutyRow) -> bool {
    matches!(
        row.kind,
        DeviceKind::CallButton | DeviceKind::Pendant | DeviceKind::PullCord
    ) || row.last_test.is_some()
}

/// What came of a test, at `now`.
pub fn result(test: &StoredTest, now: DateTime<Utc>) -> TestResult {
    match test.confirmed_at {
        Some(_) if test.passed => TestResult::Passed,
        Some(_) => TestResult::Late,
        None if now <= test.confirm_by => TestResult::Pending,
        None => TestResult::Failed,
    }
}

/// A stored test as supervisors read it.
pub fn view(test: &StoredTest, now: DateTime<Utc>) -> DeviceTest {
    DeviceTest {
        event_id: test.event_id.clone(),
        received_at: test.received_at,
        confirm_by: test.confirm_by,
        confirmed_at: test.confirmed_at,
        result: result(test, now),
    }
}

/// A device's duty at `now`.
pub fn judge(row: &DutyRow, s: &DeviceDutySettings, now: DateTime<Utc>) -> DeviceDuty {
    let grace = Duration::days(i64::from(s.grace_days));
    let due_at = match row.last_passed_at {
        Some(passed) => Some(passed + Duration::days(i64::from(s.test_every_days))),
        // Never passed: a grace from when it went on duty (or, for a
        // device no registration enrolled, from its first word).
        None => row
            .enrolled_at
            .or(row.first_heard_at)
            .map(|since| since + grace),
    };
    let missed_at = due_at.map(|d| d + grace);
    let status = match (due_at, missed_at) {
        (Some(due), _) if now < due => DutyStatus::Ok,
        (_, Some(missed)) if now >= missed => DutyStatus::Missed,
        _ => DutyStatus::Due,
    };
    let last_test = row.last_test.as_ref().map(|t| view(t, now));
    DeviceDuty {
        device_id: row.device_id.clone(),
        elder_id: row.elder_id.clone(),
        kind: row.kind,
        status,
        enrolled_at: row.enrolled_at,
        last_result: last_test.as_ref().map(|t| t.result),
        last_test,
        last_passed_at: row.last_passed_at,
        due_at,
        missed_at,
    }
}

// --- false alarms ---

/// An elder's limit a suggestion may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitName {
    /// `limits.bed_return_min`: minutes out of bed at night before
    /// `bed.no_return`.
    BedReturnMin,
    /// `limits.inactivity_min`: minutes without movement that make an
    /// `inactivity` event an incident.
    InactivityMin,
}

impl LimitName {
    /// The elder's own value, if set.
    pub fn get(self, limits: &Limits) -> Option<u32> {
        match self {
            Self::BedReturnMin => limits.bed_return_min,
            Self::InactivityMin => limits.inactivity_min,
        }
    }

    /// The value in force for an elder: their own, else the site's.
    pub fn effective(self, limits: &Limits, site: &RuleSettings) -> u32 {
        self.get(limits).unwrap_or(match self {
            Self::BedReturnMin => site.bed_return_min,
            Self::InactivityMin => site.inactivity_min,
        })
    }

    pub fn set(self, limits: &mut Limits, to: u32) {
        match self {
            Self::BedReturnMin => limits.bed_return_min = Some(to),
            Self::InactivityMin => limits.inactivity_min = Some(to),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BedReturnMin => "bed_return_min",
            Self::InactivityMin => "inactivity_min",
        }
    }
}

/// The largest value a suggestion or its application may set (a week, as
/// the elder's limits allow).
pub const MAX_LIMIT_MIN: u32 = 10_080;

/// A change to one of an elder's limits: applied only while the limit in
/// force is still `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitChange {
    pub limit: LimitName,
    /// The value in force when the change was suggested, in minutes.
    #[schema(minimum = 1, maximum = 10080)]
    pub from: u32,
    /// The new value, in minutes.
    #[schema(minimum = 1, maximum = 10080)]
    pub to: u32,
}

/// What to do about an elder whose alarms are mostly false.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Suggestion {
    /// The kind of incident that cried wolf most.
    pub kind: IncidentKind,
    /// In words, for the board (the board words it per `kind` and
    /// `change` in the reader's language).
    pub advice: String,
    /// A change a supervisor can apply
    /// (`POST /api/v1/false-alarms/suggestions/apply`); null when no
    /// rule of ours is to blame (a call button pressed by accident).
    pub change: Option<LimitChange>,
}

/// A bed-exit window is lengthened by this much at a time…
const BED_RETURN_STEP_MIN: u32 = 10;
/// …up to this: longer, and a fall on the floor waits too long.
const BED_RETURN_MAX_MIN: u32 = 60;
/// An inactivity limit is raised by half at a time, in quarter hours…
const INACTIVITY_ROUND_MIN: u32 = 15;
/// …up to a day.
const INACTIVITY_MAX_MIN: u32 = 1_440;

/// The suggestion for an elder whose false alarms are mostly of `kind`,
/// with `limits` and the site's rules in force.
pub fn suggest(kind: IncidentKind, limits: &Limits, site: &RuleSettings) -> Suggestion {
    let change = |limit: LimitName, to: u32| {
        let from = limit.effective(limits, site);
        (to > from).then_some(LimitChange { limit, from, to })
    };
    let (advice, change) = match kind {
        IncidentKind::BedNoReturn => {
            let from = LimitName::BedReturnMin.effective(limits, site);
            let to = (from + BED_RETURN_STEP_MIN).min(BED_RETURN_MAX_MIN);
            match change(LimitName::BedReturnMin, to) {
                Some(c) => (
                    format!(
                        "lengthen the night bed-exit window from {} to {} min",
                        c.from, c.to
                    ),
                    Some(c),
                ),
                None => (
                    "the bed-exit window is already long: check the bed sensor's placement"
                        .to_owned(),
                    None,
                ),
            }
        }
        IncidentKind::Inactivity => {
            let from = LimitName::InactivityMin.effective(limits, site);
            let half = from.div_ceil(2).max(INACTIVITY_ROUND_MIN);
            let to = (from + half).div_ceil(INACTIVITY_ROUND_MIN) * INACTIVITY_ROUND_MIN;
            match change(LimitName::InactivityMin, to.min(INACTIVITY_MAX_MIN)) {
                Some(c) => (
                    format!(
                        "raise the inactivity limit from {} to {} min",
                        c.from, c.to
                    ),
                    Some(c),
                ),
                None => (
                    "the inactivity limit is already long: check the motion sensor's placement"
                        .to_owned(),
                    None,
                ),
            }
        }
        IncidentKind::Call => (
            "check the call button's placement: pressed by accident (a pendant caught, a button by the pillow)?".to_owned(),
            None,
        ),
        IncidentKind::Fall => (
            "check the fall detector's placement and sensitivity".to_owned(),
            None,
        ),
        IncidentKind::Vitals => (
            "review the elder's vital-sign limits with their doctor".to_owned(),
            None,
        ),
        IncidentKind::Smoke => (
            "check the smoke detector's place (steam, cooking)".to_owned(),
            None,
        ),
        IncidentKind::DoorAtNight => (
            "review the wandering risk and the door sensor with the family".to_owned(),
            None,
        ),
        IncidentKind::CheckinMissed => (
            "review the elder's daily check-in time with them and the family".to_owned(),
            None,
        ),
        IncidentKind::VisitOverdue => (
            "a visit plan's own trouble: see the grid's round".to_owned(),
            None,
        ),
        IncidentKind::BatteryLow | IncidentKind::Tamper | IncidentKind::DeviceOffline => (
            "a device's own trouble: see the device".to_owned(),
            None,
        ),
    };
    Suggestion {
        kind,
        advice,
        change,
    }
}

/// Resolved incidents and false alarms of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct KindCount {
    pub kind: IncidentKind,
    pub resolved: i64,
    pub false_alarms: i64,
}

/// A device's false alarms in the window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceFalseAlarms {
    #[schema(value_type = crate::domain::DeviceIdSchema)]
    pub device_id: DeviceId,
    pub elder_id: Option<ElderId>,
    /// Resolved, non-technical incidents it raised.
    pub resolved: i64,
    /// Of those, resolved as `false_alarm`.
    pub false_alarms: i64,
    /// `false_alarms / resolved`.
    pub rate: f64,
    pub flagged: bool,
}

/// An elder's false alarms in the window.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ElderFalseAlarms {
    pub elder_id: ElderId,
    pub resolved: i64,
    pub false_alarms: i64,
    pub rate: f64,
    pub flagged: bool,
    /// By kind, most false alarms first.
    pub kinds: Vec<KindCount>,
    /// For a flagged elder: what to change.
    pub suggestion: Option<Suggestion>,
}

/// False-alarm rates, per device and per elder.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FalseAlarmReport {
    /// Incidents created at or after this count.
    pub since: DateTime<Utc>,
    /// A rate above this is flagged…
    pub threshold: f64,
    /// …with at least this many resolved incidents.
    pub min_incidents: u32,
    /// Flagged first, then by rate, highest first.
    pub devices: Vec<DeviceFalseAlarms>,
    pub elders: Vec<ElderFalseAlarms>,
}

#[derive(Debug, Default)]
struct Tally {
    resolved: i64,
    false_alarms: i64,
}

impl Tally {
    fn add(&mut self, c: &OutcomeCount) {
        self.resolved += c.count;
        if c.outcome == Outcome::FalseAlarm {
            self.false_alarms += c.count;
        }
    }

    fn rate(&self) -> f64 {
        if self.resolved == 0 {
            0.0
        } else {
            self.false_alarms as f64 / self.resolved as f64
        }
    }

    fn flagged(&self, s: &DeviceDutySettings) -> bool {
        self.resolved >= i64::from(s.false_alarm_min_incidents)
            && self.rate() > s.false_alarm_threshold
    }
}

/// The elders [`false_alarms`] flags, so a caller reads only their
/// limits.
pub fn flagged_elders(counts: &[OutcomeCount], s: &DeviceDutySettings) -> Vec<ElderId> {
    let mut elders: BTreeMap<&ElderId, Tally> = BTreeMap::new();
    for c in counts {
        if let Some(e) = &c.elder_id {
            elders.entry(e).or_default().add(c);
        }
    }
    elders
        .into_iter()
        .filter(|(_, t)| t.flagged(s))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The figures from the stored outcome counts; `limits_of` gives a
/// flagged elder's limits (None: the elder is gone, no suggestion).
pub fn false_alarms(
    counts: &[OutcomeCount],
    s: &DeviceDutySettings,
    site: &RuleSettings,
    since: DateTime<Utc>,
    limits_of: impl Fn(&ElderId) -> Option<Limits>,
) -> FalseAlarmReport {
    let mut devices: BTreeMap<&DeviceId, (Option<&ElderId>, Tally)> = BTreeMap::new();
    let mut elders: BTreeMap<&ElderId, (Tally, BTreeMap<IncidentKind, Tally>)> = BTreeMap::new();
    for c in counts {
        if let Some(d) = &c.device_id {
            let entry = devices
                .entry(d)
                .or_insert_with(|| (c.elder_id.as_ref(), Tally::default()));
            entry.1.add(c);
        }
        if let Some(e) = &c.elder_id {
            let entry = elders.entry(e).or_default();
            entry.0.add(c);
            entry.1.entry(c.kind).or_default().add(c);
        }
    }
    let mut device_rows: Vec<DeviceFalseAlarms> = devices
        .into_iter()
        .map(|(id, (elder, t))| DeviceFalseAlarms {
            device_id: id.clone(),
            elder_id: elder.cloned(),
            resolved: t.resolved,
            false_alarms: t.false_alarms,
            rate: t.rate(),
            flagged: t.flagged(s),
        })
        .collect();
    device_rows.sort_by(|a, b| {
        b.flagged
            .cmp(&a.flagged)
            .then(b.rate.total_cmp(&a.rate))
            .then(a.device_id.cmp(&b.device_id))
    });
    let mut elder_rows: Vec<ElderFalseAlarms> = elders
        .into_iter()
        .map(|(id, (t, by_kind))| {
            let mut kinds: Vec<KindCount> = by_kind
                .into_iter()
                .map(|(kind, k)| KindCount {
                    kind,
                    resolved: k.resolved,
                    false_alarms: k.false_alarms,
                })
                .collect();
            // Most false alarms first; a tie goes to the kind listed first.
            kinds.sort_by_key(|k| std::cmp::Reverse(k.false_alarms));
            let flagged = t.flagged(s);
            let suggestion = match (flagged, kinds.first()) {
                (true, Some(top)) if top.false_alarms > 0 => {
                    limits_of(id).map(|limits| suggest(top.kind, &limits, site))
                }
                _ => None,
            };
            ElderFalseAlarms {
                elder_id: id.clone(),
                resolved: t.resolved,
                false_alarms: t.false_alarms,
                rate: t.rate(),
                flagged,
                kinds,
                suggestion,
            }
        })
        .collect();
    elder_rows.sort_by(|a, b| {
        b.flagged
            .cmp(&a.flagged)
            .then(b.rate.total_cmp(&a.rate))
            .then(a.elder_id.cmp(&b.elder_id))
    });
    FalseAlarmReport {
        since,
        threshold: s.false_alarm_threshold,
        min_incidents: s.false_alarm_min_incidents,
        devices: device_rows,
        elders: elder_rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn t0() -> DateTime<Utc> {
        at("2026-11-01T08:00:00Z")
    }

    fn test(passed: bool, confirmed: Option<DateTime<Utc>>) -> StoredTest {
        StoredTest {
            event_id: EventId::parse("t-1").unwrap(),
            received_at: t0(),
            confirm_by: t0() + Duration::minutes(5),
            confirmed_at: confirmed,
            passed,
        }
    }

    fn row(last_passed_at: Option<DateTime<Utc>>, last_test: Option<StoredTest>) -> DutyRow {
        DutyRow {
            device_id: DeviceId::parse("btn-1").unwrap(),
            elder_id: None,
            kind: DeviceKind::CallButton,
            enrolled_at: Some(t0()),
            first_heard_at: None,
            last_passed_at,
            last_test,
        }
    }

    #[test]
    fn buttons_and_devices_that_ever_tested_are_on_duty() {
        assert!(on_duty(&row(None, None)));
        let bed = DutyRow {
            kind: DeviceKind::BedSensor,
            ..row(None, None)
        };
        assert!(!on_duty(&bed));
        let smoke = DutyRow {
            kind: DeviceKind::Smoke,
            ..row(None, Some(test(false, None)))
        };
        assert!(on_duty(&smoke));
    }

    #[test]
    fn a_test_passes_only_when_confirmed_in_time() {
        let s = t0() + Duration::minutes(1);
        assert_eq!(result(&test(false, None), s), TestResult::Pending);
        assert_eq!(
            result(&test(false, None), t0() + Duration::minutes(6)),
            TestResult::Failed
        );
        assert_eq!(result(&test(true, Some(s)), s), TestResult::Passed);
        assert_eq!(
            result(&test(false, Some(t0() + Duration::minutes(9))), s),
            TestResult::Late
        );
    }

    #[test]
    fn a_device_is_due_a_period_after_its_last_pass_and_missed_a_grace_later() {
        let s = DeviceDutySettings::default();
        let tested = row(Some(t0()), Some(test(true, Some(t0()))));
        let status = |r: &DutyRow, days: i64| judge(r, &s, t0() + Duration::days(days)).status;
        assert_eq!(status(&tested, 29), DutyStatus::Ok);
        assert_eq!(status(&tested, 30), DutyStatus::Due);
        assert_eq!(status(&tested, 36), DutyStatus::Due);
        assert_eq!(status(&tested, 37), DutyStatus::Missed);
        let d = judge(&tested, &s, t0());
        assert_eq!(d.due_at, Some(t0() + Duration::days(30)));
        assert_eq!(d.missed_at, Some(t0() + Duration::days(37)));
        assert_eq!(d.last_result, Some(TestResult::Passed));

        // Never passed (one failed test): a grace from going on duty.
        let failed = row(None, Some(test(false, None)));
        assert_eq!(status(&failed, 6), DutyStatus::Ok);
        assert_eq!(status(&failed, 7), DutyStatus::Due);
        assert_eq!(status(&failed, 14), DutyStatus::Missed);
        assert_eq!(
            judge(&failed, &s, t0() + Duration::days(1)).last_result,
            Some(TestResult::Failed)
        );
        // Nothing tells when it went on duty: due, with no date.
        let unknown = DutyRow {
            enrolled_at: None,
            ..row(None, None)
        };
        let d = judge(&unknown, &s, t0());
        assert_eq!((d.status, d.due_at), (DutyStatus::Due, None));
    }

    fn count(
        elder: &str,
        device: &str,
        kind: IncidentKind,
        outcome: Outcome,
        n: i64,
    ) -> OutcomeCount {
        OutcomeCount {
            elder_id: Some(ElderId::parse(elder).unwrap()),
            device_id: Some(DeviceId::parse(device).unwrap()),
            kind,
            outcome,
            count: n,
        }
    }

    #[test]
    fn rates_flag_above_the_threshold_with_enough_incidents() {
        let s = DeviceDutySettings::default();
        let site = RuleSettings::default();
        let counts = [
            // e-1: 3 of 4 false, mostly bed exits: flagged.
            count(
                "e-1",
                "bed-1",
                IncidentKind::BedNoReturn,
                Outcome::FalseAlarm,
                2,
            ),
            count("e-1", "btn-1", IncidentKind::Call, Outcome::FalseAlarm, 1),
            count("e-1", "btn-1", IncidentKind::Call, Outcome::Assisted, 1),
            // e-2: 3 of 3 false, too few to judge.
            count("e-2", "btn-2", IncidentKind::Call, Outcome::FalseAlarm, 3),
            // e-3: 2 of 4, not above one half.
            count("e-3", "btn-3", IncidentKind::Call, Outcome::FalseAlarm, 2),
            count("e-3", "btn-3", IncidentKind::Call, Outcome::Hospital, 2),
        ];
        let r = false_alarms(&counts, &s, &site, t0(), |_| Some(Limits::default()));
        assert_eq!(
            flagged_elders(&counts, &s),
            [ElderId::parse("e-1").unwrap()]
        );
        let elder = |id: &str| r.elders.iter().find(|e| e.elder_id.as_str() == id).unwrap();
        assert!(elder("e-1").flagged);
        assert_eq!((elder("e-1").resolved, elder("e-1").false_alarms), (4, 3));
        assert_eq!(elder("e-1").rate, 0.75);
        assert!(!elder("e-2").flagged);
        assert!(!elder("e-3").flagged);
        assert_eq!(r.elders[0].elder_id.as_str(), "e-1", "flagged first");
        let suggestion = elder("e-1").suggestion.clone().unwrap();
        assert_eq!(suggestion.kind, IncidentKind::BedNoReturn);
        assert_eq!(
            suggestion.change,
            Some(LimitChange {
                limit: LimitName::BedReturnMin,
                from: 20,
                to: 30
            })
        );
        assert!(elder("e-2").suggestion.is_none());
        // Devices: none has four resolved incidents but btn-3.
        let device = |id: &str| {
            r.devices
                .iter()
                .find(|d| d.device_id.as_str() == id)
                .unwrap()
        };
        assert_eq!(
            (device("btn-1").resolved, device("btn-1").false_alarms),
            (2, 1)
        );
        assert!(!device("btn-3").flagged);
        assert!(r.devices.iter().all(|d| !d.flagged));
    }

    #[test]
    fn each_kind_gets_its_own_suggestion() {
        let site = RuleSettings::default();
        let none = Limits::default();
        let inactivity = suggest(IncidentKind::Inactivity, &none, &site);
        let c = inactivity.change.unwrap();
        assert_eq!(c.limit, LimitName::InactivityMin);
        assert_eq!(c.from, site.inactivity_min);
        assert!(c.to > c.from && c.to.is_multiple_of(15), "{c:?}");
        let call = suggest(IncidentKind::Call, &none, &site);
        assert!(call.change.is_none());
        assert!(call.advice.contains("placement"));
        // A window already at its cap: words only.
        let long = Limits {
            bed_return_min: Some(60),
            ..Limits::default()
        };
        assert!(
            suggest(IncidentKind::BedNoReturn, &long, &site)
                .change
                .is_none()
        );
        let own = Limits {
            bed_return_min: Some(55),
            ..Limits::default()
        };
        assert_eq!(
            suggest(IncidentKind::BedNoReturn, &own, &site)
                .change
                .map(|c| (c.from, c.to)),
            Some((55, 60))
        );
    }
}
