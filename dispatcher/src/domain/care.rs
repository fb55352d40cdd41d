//! The stewards' daily work, in words the rest shares: an elder's care
//! plan (daily check-in, how often they are visited), a visit and its
//! note, and the site's local clock those are planned on.
//!
//! Everything here is pure: when the next check-in is due, when a visit
//! is, what order a round walks in. `care/` does the I/O.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::geo::LatLon;
use super::ids::{ElderId, StewardId};
use super::named::named_fields;

/// A time of day on the site's clock, written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(NaiveTime);

impl ClockTime {
    pub fn hm(hour: u32, minute: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(Self)
    }

    pub fn time(self) -> NaiveTime {
        self.0
    }
}

impl FromStr for ClockTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        NaiveTime::parse_from_str(s, "%H:%M")
            .map(Self)
            .map_err(|_| format!("{s:?} is not a time of day; write it HH:MM, e.g. 09:30"))
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%H:%M"))
    }
}

impl Serialize for ClockTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The site's clock: its offset from UTC, fixed (the sites we serve keep
/// no daylight saving; one that does sets the offset it keeps most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteClock {
    offset: FixedOffset,
}

impl SiteClock {
    pub fn new(utc_offset_min: i32) -> Self {
        Self {
            offset: Self::offset(utc_offset_min),
        }
    }

    /// The site's offset as chrono's: `utc_offset_min` minutes east of
    /// UTC, or UTC itself for an offset beyond a day (settings refuse one).
    pub fn offset(utc_offset_min: i32) -> FixedOffset {
        FixedOffset::east_opt(utc_offset_min * 60)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"))
    }

    /// The site's date at `at`.
    pub fn date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.offset).date_naive()
    }

    /// The instant of `time` on the site's `date`.
    pub fn at(&self, date: NaiveDate, time: ClockTime) -> DateTime<Utc> {
        self.offset
            .from_local_datetime(&date.and_time(time.time()))
            .single()
            .expect("a fixed offset maps every local time once")
            .with_timezone(&Utc)
    }

    /// The site's time of day at `at`.
    pub fn time_of_day(&self, at: DateTime<Utc>) -> NaiveTime {
        at.with_timezone(&self.offset).time()
    }
}

/// The daily check-in: the elder shows they are well between `from` and
/// `by` each day (a check-in press, a call, the morning's bed exit); a
/// day without opens a welfare check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CheckIn {
    /// When the window opens (default 05:00; null or absent: the
    /// default): a bed exit at 02:00 is not the morning's.
    #[serde(
        default = "CheckIn::default_from",
        deserialize_with = "CheckIn::from_or_default"
    )]
    #[schema(value_type = Option<String>, example = "05:00")]
    pub from: ClockTime,
    /// The time by which the elder checks in.
    #[schema(value_type = String, example = "10:00")]
    pub by: ClockTime,
}

named_fields!(CheckIn);

impl CheckIn {
    fn default_from() -> ClockTime {
        ClockTime::hm(5, 0).expect("05:00")
    }

    /// `null` is the default, as an absent `from` is (a merge patch's
    /// null removes a field; a full body may say it outright).
    fn from_or_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ClockTime, D::Error> {
        Ok(Option::<ClockTime>::deserialize(d)?.unwrap_or_else(Self::default_from))
    }

    /// The deadline after `now` that a check-in at `now` does not meet:
    /// today's `by` when `now` is before today's window, tomorrow's when
    /// `now` is inside it or after. Sign of life inside the window moves
    /// the deadline here.
    pub fn next_deadline(&self, clock: &SiteClock, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = clock.date(now);
        if now < clock.at(today, self.from) {
            clock.at(today, self.by)
        } else {
            clock.at(today + Duration::days(1), self.by)
        }
    }

    /// Whether a sign of life at `at` counts as the day's check-in.
    pub fn in_window(&self, clock: &SiteClock, at: DateTime<Utc>) -> bool {
        let today = clock.date(at);
        at >= clock.at(today, self.from)
    }

    /// The first deadline to watch for an elder newly on check-in at
    /// `now`: today's `by` if it has not passed, else tomorrow's.
    pub fn first_deadline(&self, clock: &SiteClock, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = clock.at(clock.date(now), self.by);
        if today > now {
            today
        } else {
            today + Duration::days(1)
        }
    }

    /// `deadline` kept on its day, at this plan's `by` (the plan changed).
    pub fn moved(&self, clock: &SiteClock, deadline: DateTime<Utc>) -> DateTime<Utc> {
        clock.at(clock.date(deadline), self.by)
    }
}

/// What the stewards' daily work plans for one elder. The default plans
/// visits by risk and no check-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct CarePlan {
    /// The daily check-in, if the elder is on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkin: Option<CheckIn>,
    /// Days between visits; absent: by risk (the site's `[care]`
    /// settings). 0: no planned visits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 365)]
    pub visit_every_days: Option<u16>,
    /// Watched closely (back from hospital, a worry): visited daily.
    pub on_watch: bool,
    /// The steward paired with the elder (结对帮扶), who may walk another
    /// grid: their visits are planned for this steward, and the elder's
    /// notebook is theirs to read. Absent: the grid's steward.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub steward_id: Option<StewardId>,
}

named_fields!(CarePlan);

/// Where a visit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    Planned,
    InProgress,
    Done,
}

super::incident::text_enum!(VisitStatus {
    Planned => "planned",
    InProgress => "in_progress",
    Done => "done",
});

/// How a steward showed they were at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartedHow {
    /// The phone's location, near the home.
    Location,
    /// The bed's button pressed twice (`steward.here`).
    Button,
    /// A supervisor recorded it.
    Manual,
}

super::incident::text_enum!(StartedHow {
    Location => "location",
    Button => "button",
    Manual => "manual",
});

/// How the elder seemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Wellbeing {
    Well,
    Fair,
    Poor,
}

/// What the elder needs, as a visit found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    Meals,
    Cleaning,
    Shopping,
    Medicine,
    Doctor,
    Company,
    Repairs,
    Other,
}

/// Items added to and taken off a list (conditions, medicines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct ListChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

named_fields!(ListChange);

impl ListChange {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// `list` with the removals taken off (exact text, ignoring case and
    /// surrounding space) and the additions not already there appended.
    pub fn applied_to(&self, list: &[String]) -> Vec<String> {
        let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
        let mut out: Vec<String> = list
            .iter()
            .filter(|item| !self.remove.iter().any(|r| same(item, r)))
            .cloned()
            .collect();
        for a in &self.add {
            if !out.iter().any(|item| same(item, a)) {
                out.push(a.trim().to_owned());
            }
        }
        out
    }
}

/// The note a visit ends with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct VisitNote {
    pub wellbeing: Wellbeing,
    /// Medicines started and stopped: the elder's record changes with them.
    #[serde(default)]
    pub medication_changes: ListChange,
    /// Conditions found or gone: the elder's record changes with them.
    #[serde(default)]
    pub condition_changes: ListChange,
    #[serde(default)]
    pub needs: Vec<Need>,
    /// The steward wants someone to come back about this.
    #[serde(default)]
    pub follow_up: bool,
    /// In the steward's own words.
    #[serde(default)]
    pub text: String,
}

named_fields!(VisitNote);

/// One visit to one elder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Visit {
    pub id: String,
    #[schema(value_type = String)]
    pub elder_id: ElderId,
    #[schema(value_type = Option<String>)]
    pub steward_id: Option<StewardId>,
    /// The site's local date it is due on.
    #[schema(value_type = String, format = Date)]
    pub due_on: NaiveDate,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: VisitStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub started_how: Option<StartedHow>,
    pub ended_at: Option<DateTime<Utc>>,
    pub done_by: Option<String>,
    pub note: Option<VisitNote>,
    /// When it was found overdue (its window passed unvisited).
    pub overdue_at: Option<DateTime<Utc>>,
    /// The routine incident its lateness raised.
    pub incident_id: Option<String>,
}

impl Visit {
    /// Planned and its window has passed.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == VisitStatus::Planned && now > self.window_end
    }
}

/// Days between visits for an elder, by the plan's override, else risk.
pub fn visit_every_days(
    plan: &CarePlan,
    lives_alone: bool,
    recent_incident: bool,
    by_risk: &VisitCadence,
) -> u16 {
    if plan.on_watch {
        return by_risk.on_watch_days;
    }
    if let Some(days) = plan.visit_every_days {
        return days;
    }
    match (recent_incident, lives_alone) {
        (true, _) => by_risk.recent_incident_days,
        (false, true) => by_risk.lives_alone_days,
        (false, false) => by_risk.default_days,
    }
}

/// How often elders are visited by risk: the site's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VisitCadence {
    pub on_watch_days: u16,
    pub recent_incident_days: u16,
    pub lives_alone_days: u16,
    pub default_days: u16,
}

/// The date an elder's next visit is due on: `every` days after the last
/// one was done, or, for an elder never visited, spread over the first
/// `every` days from `today` by their id, so a new site's rounds are even
/// rather than everyone due on day one. Never before `today`.
pub fn next_due_on(
    elder: &ElderId,
    last_done: Option<NaiveDate>,
    every: u16,
    today: NaiveDate,
) -> NaiveDate {
    let every = i64::from(every.max(1));
    let due = match last_done {
        Some(done) => done + Duration::days(every),
        None => {
            // A stable spread, the same in every release.
            let h = crate::stable_hash::fnv1a(elder.as_str().bytes());
            today + Duration::days((h % every as u64) as i64)
        }
    };
    due.max(today)
}

/// A round's stops in walking order: from `start`, always the nearest
/// not yet visited next (nearest-next is enough for a grid's few dozen
/// homes). Ties keep the given order.
pub fn walking_order<T>(start: Option<LatLon>, stops: Vec<(LatLon, T)>) -> Vec<T> {
    let mut left = stops;
    let mut out = Vec::with_capacity(left.len());
    let mut here = start.or_else(|| left.first().map(|(at, _)| *at));
    while !left.is_empty() {
        let next = match here {
            Some(h) => left
                .iter()
                .enumerate()
                .min_by(|(_, a), (_, b)| h.haversine_m(a.0).total_cmp(&h.haversine_m(b.0)))
                .map(|(i, _)| i)
                .unwrap_or(0),
            None => 0,
        };
        let (at, stop) = left.remove(next);
        here = Some(at);
        out.push(stop);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn lhasa() -> SiteClock {
        SiteClock::new(480)
    }

    fn by10() -> CheckIn {
        CheckIn {
            from: ClockTime::hm(5, 0).unwrap(),
            by: ClockTime::hm(10, 0).unwrap(),
        }
    }

    #[test]
    fn a_check_in_inside_the_window_moves_the_deadline_to_tomorrow() {
        // 08:00 in Lhasa is 00:00 UTC.
        let at = t("2026-12-07T00:00:00Z");
        assert!(by10().in_window(&lhasa(), at));
        assert_eq!(
            by10().next_deadline(&lhasa(), at),
            t("2026-12-08T02:00:00Z")
        );
    }

    #[test]
    fn a_sign_of_life_before_the_window_is_not_the_days_check_in() {
        // 03:00 in Lhasa.
        let at = t("2026-12-06T19:00:00Z");
        assert!(!by10().in_window(&lhasa(), at));
        assert_eq!(
            by10().next_deadline(&lhasa(), at),
            t("2026-12-07T02:00:00Z")
        );
    }

    #[test]
    fn the_first_deadline_is_today_unless_it_passed() {
        assert_eq!(
            by10().first_deadline(&lhasa(), t("2026-12-07T01:00:00Z")),
            t("2026-12-07T02:00:00Z")
        );
        assert_eq!(
            by10().first_deadline(&lhasa(), t("2026-12-07T03:00:00Z")),
            t("2026-12-08T02:00:00Z")
        );
    }

    #[test]
    fn a_changed_time_keeps_the_deadline_on_its_day() {
        let later = CheckIn {
            by: ClockTime::hm(11, 30).unwrap(),
            ..by10()
        };
        assert_eq!(
            later.moved(&lhasa(), t("2026-12-08T02:00:00Z")),
            t("2026-12-08T03:30:00Z")
        );
    }

    #[test]
    fn clock_times_are_hh_mm_and_say_so_when_not() {
        assert_eq!("07:05".parse::<ClockTime>().unwrap().to_string(), "07:05");
        let e = "7am".parse::<ClockTime>().unwrap_err();
        assert!(e.contains("HH:MM"), "{e}");
        let plan: CarePlan = serde_json::from_str(r#"{"checkin": {"by": "09:00"}}"#).unwrap();
        assert_eq!(plan.checkin.unwrap().from, ClockTime::hm(5, 0).unwrap());
        let plan: CarePlan =
            serde_json::from_str(r#"{"checkin": {"from": null, "by": "09:00"}}"#).unwrap();
        assert_eq!(plan.checkin.unwrap().from, ClockTime::hm(5, 0).unwrap());
        assert!(serde_json::from_str::<CarePlan>(r#"{"checkin": {"by": "25:00"}}"#).is_err());
        assert!(serde_json::from_str::<CarePlan>(r#"{"nonsense": 1}"#).is_err());
    }

    #[test]
    fn cadence_follows_watch_then_override_then_risk() {
        let c = VisitCadence {
            on_watch_days: 1,
            recent_incident_days: 3,
            lives_alone_days: 7,
            default_days: 14,
        };
        let plan = CarePlan::default();
        assert_eq!(visit_every_days(&plan, false, false, &c), 14);
        assert_eq!(visit_every_days(&plan, true, false, &c), 7);
        assert_eq!(visit_every_days(&plan, true, true, &c), 3);
        let set = CarePlan {
            visit_every_days: Some(10),
            ..plan
        };
        assert_eq!(visit_every_days(&set, true, true, &c), 10);
        let watched = CarePlan {
            on_watch: true,
            ..set
        };
        assert_eq!(visit_every_days(&watched, false, false, &c), 1);
    }

    #[test]
    fn next_due_follows_the_last_visit_and_spreads_new_elders() {
        let today: NaiveDate = "2026-12-07".parse().unwrap();
        let e = ElderId::parse("e-1".to_owned()).unwrap();
        assert_eq!(
            next_due_on(&e, Some("2026-12-01".parse().unwrap()), 7, today),
            "2026-12-08".parse::<NaiveDate>().unwrap()
        );
        // Late: due today, not in the past.
        assert_eq!(
            next_due_on(&e, Some("2026-11-01".parse().unwrap()), 7, today),
            today
        );
        let spread: std::collections::BTreeSet<NaiveDate> = (0..100)
            .map(|i| next_due_on(&ElderId::parse(format!("e-{i}")).unwrap(), None, 7, today))
            .collect();
        assert_eq!(spread.len(), 7, "{spread:?}");
        assert!(
            spread
                .iter()
                .all(|d| *d >= today && *d < today + Duration::days(7))
        );
    }

    #[test]
    fn a_round_walks_to_the_nearest_home_next() {
        let p = |lat: f64| LatLon::new(lat, 91.0).unwrap();
        let stops = vec![(p(29.70), "far"), (p(29.60), "near"), (p(29.65), "mid")];
        assert_eq!(
            walking_order(Some(p(29.59)), stops),
            vec!["near", "mid", "far"]
        );
    }

    #[test]
    fn list_changes_apply_once_and_ignore_case() {
        let list = vec!["Amlodipine 5 mg".to_owned(), "metformin".to_owned()];
        let change = ListChange {
            add: vec!["aspirin".into(), "METFORMIN".into()],
            remove: vec!["amlodipine 5 MG".into()],
        };
        assert_eq!(
            change.applied_to(&list),
            vec!["metformin".to_owned(), "aspirin".to_owned()]
        );
    }
}
