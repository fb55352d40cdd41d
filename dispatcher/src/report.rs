//! Response-time reports: how fast incidents were acknowledged and
//! reached, per group, against the configured targets. Pure computation
//! over incidents already read from the store; the route is
//! `GET /api/v1/reports/response-times` (`api::reports`).
//!
//! - Every figure is measured from the incident's `created_at` (when the
//!   dispatcher received the first event) to `acknowledged_at` (`ack_s`)
//!   and to `on_site_at` (`arrive_s`), in seconds.
//! - `count` is every incident created in the window, cancelled ones
//!   included; each percentile and each within-target share is over the
//!   incidents that have that timestamp (`ack_n`, `arrive_n`). No sample:
//!   `null`.
//! - Percentiles are **nearest-rank**: the `p`th percentile of `n` sorted
//!   samples is the one at rank `ceil(p / 100 × n)` (1-based). It is
//!   always an observed value, never an interpolation: "90 % of
//!   incidents were acknowledged within this time, and one took exactly
//!   that long".
//! - `*_within_target_pct` is the share of samples at or below the target,
//!   in percent.
//! - Groups: `priority` (most urgent first), `steward` (the assigned
//!   steward's id, `unassigned` without one), `grid` (the elder's grid,
//!   `unknown` for an incident without a known elder), `hour` (`00`–`23`,
//!   the hour of `created_at` in the site's local time). Only groups with
//!   incidents appear.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use chrono::{DateTime, FixedOffset, Timelike, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{ElderId, Incident, Priority};

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Priority,
    Steward,
    Grid,
    Hour,
}

crate::domain::incident::text_enum!(GroupBy {
    Priority => "priority",
    Steward => "steward",
    Grid => "grid",
    Hour => "hour",
});

/// The targets shares are measured against, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Targets {
    pub ack_s: u32,
    pub arrive_s: u32,
}

/// Nearest-rank percentiles and the maximum, in seconds; `null` without
/// a sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReportRow {
    /// The group's key: `critical`, a steward id, a grid, `07`.
    pub group: String,
    /// Incidents created in the window, cancelled ones included.
    pub count: usize,
    /// Incidents acknowledged: the samples of `ack_s`.
    pub ack_n: usize,
    pub ack_s: Percentiles,
    /// Share of `ack_n` acknowledged within the target, percent.
    pub ack_within_target_pct: Option<f64>,
    /// Incidents reached on site: the samples of `arrive_s`.
    pub arrive_n: usize,
    pub arrive_s: Percentiles,
    /// Share of `arrive_n` reached within the target, percent.
    pub arrive_within_target_pct: Option<f64>,
}

/// The `p`th nearest-rank percentile of `sorted` (ascending).
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

fn percentiles(sorted: &[f64]) -> Percentiles {
    Percentiles {
        p50: nearest_rank(sorted, 50.0),
        p90: nearest_rank(sorted, 90.0),
        p95: nearest_rank(sorted, 95.0),
        max: sorted.last().copied(),
    }
}

fn within(sorted: &[f64], target_s: u32) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let hits = sorted.iter().filter(|s| **s <= f64::from(target_s)).count();
    Some(round(hits as f64 * 100.0 / sorted.len() as f64, 1))
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Seconds from `from` to `to`, to the millisecond; never negative (two
/// instances' clocks may disagree by a little).
fn seconds(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    round(((to - from).num_milliseconds().max(0)) as f64 / 1000.0, 3)
}

/// The group an incident falls in.
fn key(
    incident: &Incident,
    group_by: GroupBy,
    grids: &HashMap<ElderId, String>,
    offset: FixedOffset,
) -> (u8, String) {
    match group_by {
        GroupBy::Priority => (
            Priority::ALL
                .iter()
                .position(|p| *p == incident.priority)
                .unwrap_or(u8::MAX as usize) as u8,
            incident.priority.to_string(),
        ),
        GroupBy::Steward => (
            0,
            incident
                .steward_id
                .as_ref()
                .map_or_else(|| "unassigned".to_owned(), ToString::to_string),
        ),
        GroupBy::Grid => (
            0,
            incident
                .elder_id
                .as_ref()
                .and_then(|e| grids.get(e))
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned()),
        ),
        GroupBy::Hour => (
            0,
            format!("{:02}", incident.created_at.with_timezone(&offset).hour()),
        ),
    }
}

/// The report over `incidents` (those created in the window).
/// `grids` maps elders to their grid (only read for [`GroupBy::Grid`]);
/// `utc_offset_min` is the site's offset (only read for [`GroupBy::Hour`]).
pub fn response_times(
    incidents: &[Incident],
    group_by: GroupBy,
    grids: &HashMap<ElderId, String>,
    targets: Targets,
    utc_offset_min: i32,
) -> Vec<ReportRow> {
    let offset = crate::domain::SiteClock::offset(utc_offset_min);
    #[derive(Default)]
    struct Acc {
        count: usize,
        ack: Vec<f64>,
        arrive: Vec<f64>,
    }
    let mut groups: BTreeMap<(u8, String), Acc> = BTreeMap::new();
    for i in incidents {
        let acc = groups.entry(key(i, group_by, grids, offset)).or_default();
        acc.count += 1;
        if let Some(at) = i.acknowledged_at {
            acc.ack.push(seconds(i.created_at, at));
        }
        if let Some(at) = i.on_site_at {
            acc.arrive.push(seconds(i.created_at, at));
        }
    }
    groups
        .into_iter()
        .map(|((_, group), mut acc)| {
            acc.ack.sort_by(f64::total_cmp);
            acc.arrive.sort_by(f64::total_cmp);
            ReportRow {
                group,
                count: acc.count,
                ack_n: acc.ack.len(),
                ack_s: percentiles(&acc.ack),
                ack_within_target_pct: within(&acc.ack, targets.ack_s),
                arrive_n: acc.arrive.len(),
                arrive_s: percentiles(&acc.arrive),
                arrive_within_target_pct: within(&acc.arrive, targets.arrive_s),
            }
        })
        .collect()
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "group,count,ack_n,ack_p50_s,ack_p90_s,ack_p95_s,ack_max_s,ack_within_target_pct,arrive_n,arrive_p50_s,arrive_p90_s,arrive_p95_s,arrive_max_s,arrive_within_target_pct";

/// The rows as CSV (RFC 4180, `\r\n` line ends) with a header line; a
/// missing figure is an empty field.
pub fn to_csv(rows: &[ReportRow]) -> String {
    let mut out = String::new();
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&r.group),
            r.count,
            r.ack_n,
            num(r.ack_s.p50),
            num(r.ack_s.p90),
            num(r.ack_s.p95),
            num(r.ack_s.max),
            num(r.ack_within_target_pct),
            r.arrive_n,
            num(r.arrive_s.p50),
            num(r.arrive_s.p90),
            num(r.arrive_s.p95),
            num(r.arrive_s.max),
            num(r.arrive_within_target_pct),
        );
    }
    out
}

/// Quotes a field that needs it. A leading `=`, `+`, `-` or `@` is
/// prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::domain::{IncidentId, IncidentKind, IncidentState, StewardId};

    fn t0() -> DateTime<Utc> {
        "2026-11-28T13:30:00Z".parse().unwrap()
    }

    fn incident(n: u32, priority: Priority, ack_s: Option<i64>, arrive_s: Option<i64>) -> Incident {
        let created = t0() + Duration::minutes(i64::from(n));
        Incident {
            id: IncidentId::parse(format!("i-{n}")).unwrap(),
            elder_id: Some(ElderId::parse(format!("e-{}", n % 2)).unwrap()),
            device_id: None,
            kind: IncidentKind::Call,
            priority,
            status: if arrive_s.is_some() {
                IncidentState::OnSite
            } else if ack_s.is_some() {
                IncidentState::Acknowledged
            } else {
                IncidentState::Cancelled
            },
            created_at: created,
            updated_at: created,
            acknowledged_at: ack_s.map(|s| created + Duration::seconds(s)),
            on_site_at: arrive_s.map(|s| created + Duration::seconds(s)),
            resolved_at: None,
            steward_id: ack_s.map(|_| StewardId::parse(format!("s-{}", n % 3)).unwrap()),
            escalation_level: 0,
            outcome: None,
            notes: None,
            event_count: 1,
            last_event_at: created,
            summary: String::new(),
        }
    }

    const TARGETS: Targets = Targets {
        ack_s: 60,
        arrive_s: 900,
    };

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(nearest_rank(&s, 50.0), Some(5.0));
        assert_eq!(nearest_rank(&s, 90.0), Some(9.0));
        assert_eq!(nearest_rank(&s, 95.0), Some(10.0));
        assert_eq!(nearest_rank(&s, 100.0), Some(10.0));
        assert_eq!(nearest_rank(&s, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&[7.0], 50.0), Some(7.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
        // The textbook example: 15, 20, 35, 40, 50.
        let s = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(nearest_rank(&s, 30.0), Some(20.0));
        assert_eq!(nearest_rank(&s, 40.0), Some(20.0));
        assert_eq!(nearest_rank(&s, 50.0), Some(35.0));
    }

    #[test]
    fn per_priority_with_cancelled_incidents_counted_but_not_sampled() {
        let incidents = vec![
            incident(1, Priority::Urgent, Some(30), Some(600)),
            incident(2, Priority::Critical, Some(20), Some(400)),
            incident(3, Priority::Critical, Some(90), None),
            incident(4, Priority::Critical, None, None),
            incident(5, Priority::Critical, Some(40), Some(1000)),
        ];
        let rows = response_times(&incidents, GroupBy::Priority, &HashMap::new(), TARGETS, 480);
        assert_eq!(
            rows.iter().map(|r| r.group.as_str()).collect::<Vec<_>>(),
            ["critical", "urgent"]
        );
        let c = &rows[0];
        assert_eq!((c.count, c.ack_n, c.arrive_n), (4, 3, 2));
        assert_eq!(
            c.ack_s,
            Percentiles {
                p50: Some(40.0),
                p90: Some(90.0),
                p95: Some(90.0),
                max: Some(90.0)
            }
        );
        assert_eq!(c.arrive_s.p50, Some(400.0));
        assert_eq!(c.arrive_s.max, Some(1000.0));
        assert_eq!(c.ack_within_target_pct, Some(66.7));
        assert_eq!(c.arrive_within_target_pct, Some(50.0));
        let u = &rows[1];
        assert_eq!((u.count, u.ack_within_target_pct), (1, Some(100.0)));

        // A group with no sample has nulls, not zeros.
        let rows = response_times(
            &[incident(4, Priority::Routine, None, None)],
            GroupBy::Priority,
            &HashMap::new(),
            TARGETS,
            0,
        );
        assert_eq!(rows[0].count, 1);
        assert_eq!(rows[0].ack_s, Percentiles::default());
        assert_eq!(rows[0].ack_within_target_pct, None);
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert!(json["ack_s"]["p50"].is_null());
    }

    #[test]
    fn exactly_on_target_counts_as_within() {
        let rows = response_times(
            &[incident(1, Priority::Urgent, Some(60), Some(900))],
            GroupBy::Priority,
            &HashMap::new(),
            TARGETS,
            0,
        );
        assert_eq!(rows[0].ack_within_target_pct, Some(100.0));
        assert_eq!(rows[0].arrive_within_target_pct, Some(100.0));
    }

    #[test]
    fn by_steward_grid_and_local_hour() {
        let incidents: Vec<_> = (0..6)
            .map(|n| {
                incident(
                    n * 20 + n % 2,
                    Priority::Urgent,
                    (n != 5).then_some(10),
                    None,
                )
            })
            .collect();
        let rows = response_times(&incidents, GroupBy::Steward, &HashMap::new(), TARGETS, 0);
        let groups: Vec<_> = rows.iter().map(|r| (r.group.as_str(), r.count)).collect();
        assert_eq!(
            groups,
            [("s-0", 2), ("s-1", 2), ("s-2", 1), ("unassigned", 1)]
        );

        let grids = HashMap::from([(ElderId::parse("e-0").unwrap(), "grid-a".to_owned())]);
        let rows = response_times(&incidents, GroupBy::Grid, &grids, TARGETS, 0);
        let groups: Vec<_> = rows.iter().map(|r| (r.group.as_str(), r.count)).collect();
        // e-1 has no grid known: unknown.
        assert_eq!(groups, [("grid-a", 3), ("unknown", 3)]);

        // 13:30Z + 0, 21, 40, 61, 80, 101 min at UTC+8: 21:30, 21:51, 22:10,
        // 22:31, 22:50, 23:11.
        let rows = response_times(&incidents, GroupBy::Hour, &HashMap::new(), TARGETS, 480);
        let groups: Vec<_> = rows.iter().map(|r| (r.group.as_str(), r.count)).collect();
        assert_eq!(groups, [("21", 2), ("22", 3), ("23", 1)]);
        // A negative offset.
        let rows = response_times(
            &incidents[..1],
            GroupBy::Hour,
            &HashMap::new(),
            TARGETS,
            -300,
        );
        assert_eq!(rows[0].group, "08");
    }

    #[test]
    fn csv_has_a_header_and_the_same_rows() {
        let incidents = vec![
            incident(1, Priority::Urgent, Some(30), Some(600)),
            incident(2, Priority::Critical, None, None),
        ];
        let rows = response_times(&incidents, GroupBy::Priority, &HashMap::new(), TARGETS, 0);
        let csv = to_csv(&rows);
        let lines: Vec<_> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "critical,1,0,,,,,,0,,,,,");
        assert_eq!(lines[2], "urgent,1,1,30,30,30,30,100,1,600,600,600,600,100");
        assert_eq!(lines[3], "");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("grid-1"), "grid-1");
    }

    #[test]
    fn group_names_parse() {
        assert_eq!("hour".parse::<GroupBy>().unwrap(), GroupBy::Hour);
        assert!("day".parse::<GroupBy>().is_err());
    }
}
