//! The monthly report (issue 16, item 6) over a small seeded month:
//! November 2026 in Lhasa (UTC+8), two communities of three grids, a grid
//! without a place and an incident without an elder, with rows on both
//! sides of each edge of the month. Every figure is worked out by hand
//! below, from the seed, and compared exactly with the JSON, the CSV and
//! the PDF's text (`pdftotext`), on SQLite and on PostgreSQL.

use chrono::{DateTime, Duration, Utc};
use dispatcher::domain::Area;
use eldercare_tests::app::{Db, Options, TestApp, elder_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// The store's rows, written under the API as the dispatcher would have.
enum Pool {
    Lite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

#[derive(Clone)]
enum Arg {
    S(Option<&'static str>),
    T(Option<DateTime<Utc>>),
    B(bool),
}

macro_rules! run {
    ($pool:expr, $sql:expr, $args:expr) => {{
        let args: Vec<Arg> = $args;
        let sql: &'static str = $sql;
        match $pool {
            Pool::Lite(p) => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match a {
                        Arg::S(v) => q.bind(v),
                        Arg::T(v) => q.bind(v),
                        Arg::B(v) => q.bind(v),
                    };
                }
                q.execute(p).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Pool::Pg(p) => {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match a {
                        Arg::S(v) => q.bind(v),
                        Arg::T(v) => q.bind(v),
                        Arg::B(v) => q.bind(v),
                    };
                }
                q.execute(p).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }};
}

/// An incident: created at `created`, acknowledged, on site and resolved
/// so many seconds (and milliseconds) later.
struct Inc {
    id: &'static str,
    elder: Option<&'static str>,
    kind: &'static str,
    created: &'static str,
    ack_ms: Option<i64>,
    arrive_ms: Option<i64>,
    /// `Some(outcome)`: resolved; `None`: cancelled.
    outcome: Option<&'static str>,
}

async fn seed(app: &TestApp) {
    // Two communities, a grid without a place (g-x).
    app.state
        .store
        .put_areas(&[
            area("g-a1", "Alpha"),
            area("g-a2", "Alpha"),
            area("吉崩岗一网格", "吉崩岗社区"),
        ])
        .await
        .expect("areas");
    for (elder, grid) in [
        ("e-a1", "g-a1"),
        ("e-a1b", "g-a1"),
        ("e-a2", "g-a2"),
        ("e-b1", "吉崩岗一网格"),
        ("e-x", "g-x"),
    ] {
        let mut body = elder_body(elder, json!({}));
        body["grid"] = json!(grid);
        app.post("/api/v1/elders", body).await;
    }
    // On duty since the clock's 2026-10-15: buttons and a pendant; the
    // bed sensor never sent a test call, so it is not tested.
    for (device, elder, kind) in [
        ("btn-a1", "e-a1", "call_button"),
        ("pend-a2", "e-a2", "pendant"),
        ("btn-b1", "e-b1", "call_button"),
        ("bed-b1", "e-b1", "bed_sensor"),
        ("btn-x", "e-x", "call_button"),
    ] {
        app.register_device(
            json!({"id": device, "elder_id": elder, "kind": kind, "heartbeat_s": 60}),
        )
        .await;
    }

    let pool = if app.db_url().starts_with("postgres") {
        Pool::Pg(sqlx::PgPool::connect(app.db_url()).await.expect("pg"))
    } else {
        Pool::Lite(
            sqlx::SqlitePool::connect(app.db_url())
                .await
                .expect("sqlite"),
        )
    };
    let s = |v: &'static str| Arg::S(Some(v));
    let incidents = [
        // g-a1: answered at exactly 60 s, on site at exactly 900 s.
        Inc {
            id: "i1",
            elder: Some("e-a1"),
            kind: "call",
            created: "2026-11-03T02:00:00Z",
            ack_ms: Some(60_000),
            arrive_ms: Some(900_000),
            outcome: Some("assisted"),
        },
        // g-a1: a millisecond late for 60 s, a second late on site; a false alarm.
        Inc {
            id: "i2",
            elder: Some("e-a1b"),
            kind: "fall",
            created: "2026-11-04T10:00:00Z",
            ack_ms: Some(60_001),
            arrive_ms: Some(901_000),
            outcome: Some("false_alarm"),
        },
        // g-a1: 23:59:59 on 31 October in Lhasa: October's.
        Inc {
            id: "i3",
            elder: Some("e-a1"),
            kind: "call",
            created: "2026-10-31T15:59:59Z",
            ack_ms: Some(5_000),
            arrive_ms: None,
            outcome: Some("assisted"),
        },
        // g-a1: a device's own trouble is no call.
        Inc {
            id: "i4",
            elder: Some("e-a1"),
            kind: "battery.low",
            created: "2026-11-05T00:00:00Z",
            ack_ms: Some(5_000),
            arrive_ms: None,
            outcome: Some("assisted"),
        },
        // g-a1: nobody answered; cancelled.
        Inc {
            id: "i5",
            elder: Some("e-a1"),
            kind: "call",
            created: "2026-11-20T00:00:00Z",
            ack_ms: None,
            arrive_ms: None,
            outcome: None,
        },
        // g-a2: 23:59:59 on 30 November in Lhasa; answered at exactly
        // 180 s, a false alarm settled without going.
        Inc {
            id: "i6",
            elder: Some("e-a2"),
            kind: "call",
            created: "2026-11-30T15:59:59Z",
            ack_ms: Some(180_000),
            arrive_ms: None,
            outcome: Some("false_alarm"),
        },
        // g-a2: an overdue visit is the care plan's, not a call.
        Inc {
            id: "i7",
            elder: Some("e-a2"),
            kind: "visit.overdue",
            created: "2026-11-06T09:00:00Z",
            ack_ms: Some(500_000),
            arrive_ms: None,
            outcome: Some("assisted"),
        },
        // g-b1: midnight on 1 December in Lhasa: December's.
        Inc {
            id: "i8",
            elder: Some("e-b1"),
            kind: "call",
            created: "2026-11-30T16:00:00Z",
            ack_ms: Some(5_000),
            arrive_ms: None,
            outcome: Some("assisted"),
        },
        // g-b1: quick and in time.
        Inc {
            id: "i9",
            elder: Some("e-b1"),
            kind: "call",
            created: "2026-11-10T08:00:00Z",
            ack_ms: Some(30_000),
            arrive_ms: Some(600_000),
            outcome: Some("assisted"),
        },
        // g-b1: answered after 200 s, on site after 20 minutes.
        Inc {
            id: "i10",
            elder: Some("e-b1"),
            kind: "inactivity",
            created: "2026-11-11T08:00:00Z",
            ack_ms: Some(200_000),
            arrive_ms: Some(1_200_000),
            outcome: Some("other"),
        },
        // No elder (a device bound to nobody): grid "", unassigned.
        Inc {
            id: "i11",
            elder: None,
            kind: "call",
            created: "2026-11-15T00:00:00Z",
            ack_ms: Some(10_000),
            arrive_ms: None,
            outcome: Some("assisted"),
        },
    ];
    for i in &incidents {
        let created = t(i.created);
        let ack = i.ack_ms.map(|ms| created + Duration::milliseconds(ms));
        let arrive = i.arrive_ms.map(|ms| created + Duration::milliseconds(ms));
        let closed = created + Duration::hours(1);
        run!(
            &pool,
            "INSERT INTO incidents (id, dedup_key, elder_id, device_id, kind, priority, status,
                 created_at, updated_at, acknowledged_at, on_site_at, resolved_at, outcome,
                 last_event_at, summary)
             VALUES ($1, $2, $3, NULL, $4, 'urgent', $5, $6, $7, $8, $9, $10, $11, $6, 'seeded')",
            vec![
                s(i.id),
                s(i.id),
                Arg::S(i.elder),
                s(i.kind),
                s(if i.outcome.is_some() {
                    "resolved"
                } else {
                    "cancelled"
                }),
                Arg::T(Some(created)),
                Arg::T(Some(closed)),
                Arg::T(ack),
                Arg::T(arrive),
                Arg::T(Some(closed)),
                Arg::S(i.outcome),
            ]
        );
    }

    // Visits, due on Lhasa dates.
    for (id, elder, due_on, status) in [
        ("v1", "e-a1", "2026-11-05", "done"),
        ("v2", "e-a1", "2026-11-19", "planned"),
        ("v3", "e-a1b", "2026-11-30", "done"),
        ("v4", "e-a1b", "2026-12-01", "done"),
        ("v5", "e-a1b", "2026-10-31", "done"),
        ("v6", "e-a2", "2026-11-12", "in_progress"),
        ("v7", "e-x", "2026-11-01", "done"),
    ] {
        run!(
            &pool,
            "INSERT INTO visits (id, elder_id, due_on, window_start, window_end, status)
             VALUES ($1, $2, $3, $4, $4, $5)",
            vec![
                s(id),
                s(elder),
                s(due_on),
                Arg::T(Some(t("2026-11-01T01:00:00Z"))),
                s(status)
            ]
        );
    }

    // Follow-ups, by when they were due.
    for (id, incident, elder, due, done_at) in [
        (
            "f1",
            "i1",
            "e-a1",
            "2026-11-04T02:00:00Z",
            Some("2026-11-04T01:00:00Z"),
        ),
        // 00:30 on 1 December in Lhasa: December's.
        ("f2", "i2", "e-a1b", "2026-11-30T16:30:00Z", None),
        ("f3", "i6", "e-a2", "2026-11-10T00:00:00Z", None),
        // Done a day late: done.
        (
            "f4",
            "i9",
            "e-b1",
            "2026-11-11T08:00:00Z",
            Some("2026-11-12T08:00:00Z"),
        ),
        // Midnight on 1 November in Lhasa: November's; still open.
        ("f5", "i10", "e-b1", "2026-10-31T16:00:00Z", None),
    ] {
        let done_at = done_at.map(t);
        run!(
            &pool,
            "INSERT INTO follow_ups (id, incident_id, elder_id, kind, created_at, due_at, status,
                 outcome, done_at, done_by)
             VALUES ($1, $2, $3, 'call', $4, $5, $6, $7, $8, $9)",
            vec![
                s(id),
                s(incident),
                s(elder),
                Arg::T(Some(t("2026-10-20T00:00:00Z"))),
                Arg::T(Some(t(due))),
                s(if done_at.is_some() { "done" } else { "open" }),
                Arg::S(done_at.map(|_| "well")),
                Arg::T(done_at),
                Arg::S(done_at.map(|_| "admin")),
            ]
        );
    }

    // Test calls, by when they were received.
    for (device, event, received, passed) in [
        ("btn-a1", "t1", "2026-11-10T03:00:00Z", true),
        ("pend-a2", "t2", "2026-10-20T03:00:00Z", true),
        ("pend-a2", "t3", "2026-11-05T03:00:00Z", false),
        // 01:00 on 1 December in Lhasa: December's.
        ("btn-b1", "t4", "2026-11-30T17:00:00Z", true),
        // 01:00 on 1 November in Lhasa: November's.
        ("btn-x", "t5", "2026-10-31T17:00:00Z", true),
    ] {
        let received = t(received);
        run!(
            &pool,
            "INSERT INTO device_tests (device_id, event_id, received_at, confirm_by, confirmed_at, passed)
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                s(device),
                s(event),
                Arg::T(Some(received)),
                Arg::T(Some(received + Duration::minutes(5))),
                Arg::T(passed.then(|| received + Duration::seconds(20))),
                Arg::B(passed),
            ]
        );
    }
    match pool {
        Pool::Lite(p) => p.close().await,
        Pool::Pg(p) => p.close().await,
    }
}

fn area(grid: &str, community: &str) -> Area {
    Area {
        grid: grid.into(),
        community: community.into(),
        district: "Chengguan".into(),
    }
}

/// One expected row, worked out by hand from the seed above: counts, and
/// each share as its numerator over its denominator.
struct Want {
    level: &'static str,
    community: &'static str,
    grid: &'static str,
    elders: i64,
    calls: i64,
    answered: i64,
    a60: i64,
    a180: i64,
    arrived: i64,
    in_target: i64,
    resolved: i64,
    false_alarms: i64,
    visits: (i64, i64),
    follow_ups: (i64, i64),
    tests: (i64, i64),
    /// The shares, each rounded by hand to one decimal (None: nothing to
    /// count): 60 s, 180 s, arrival, false alarms, visits, follow-ups, tests.
    pct: [Option<f64>; 7],
}

#[rustfmt::skip]
fn wanted() -> Vec<Want> {
    vec![
        // g-a1: calls i1, i2, i5 (i3 is October's, i4 a battery). Answered
        // i1 (60.000 s: within) and i2 (60.001 s: not within 60, within
        // 180): 1/3 = 33.3 %, 2/3 = 66.7 %. On site i1 (900 s: in time),
        // i2 (901 s: late): 1/2. Resolved i1, i2; i2 false: 1/2. Visits v1
        // done, v2 planned, v3 done (v4 December's, v5 October's): 2/3.
        // Follow-up f1 done (f2 December's): 1/1. btn-a1 passed: 1/1.
        Want { level: "grid", community: "Alpha", grid: "g-a1", elders: 2, calls: 3, answered: 2,
               a60: 1, a180: 2, arrived: 2, in_target: 1, resolved: 2, false_alarms: 1,
               visits: (2, 3), follow_ups: (1, 1), tests: (1, 1),
               pct: [Some(33.3), Some(66.7), Some(50.0), Some(50.0), Some(66.7), Some(100.0), Some(100.0)] },
        // g-a2: i6 (the last second of November) at exactly 180 s, never on
        // site, false (i7 is a visit's). v6 in progress: 0/1. f3 open: 0/1.
        // pend-a2 failed in November (passed only in October): 0/1.
        Want { level: "grid", community: "Alpha", grid: "g-a2", elders: 1, calls: 1, answered: 1,
               a60: 0, a180: 1, arrived: 0, in_target: 0, resolved: 1, false_alarms: 1,
               visits: (0, 1), follow_ups: (0, 1), tests: (0, 1),
               pct: [Some(0.0), Some(100.0), None, Some(100.0), Some(0.0), Some(0.0), Some(0.0)] },
        // Alpha: the sums. 1/4, 3/4, 1/2, 2/3, 2/4, 1/2, 1/2.
        Want { level: "community", community: "Alpha", grid: "", elders: 3, calls: 4, answered: 3,
               a60: 1, a180: 3, arrived: 2, in_target: 1, resolved: 3, false_alarms: 2,
               visits: (2, 4), follow_ups: (1, 2), tests: (1, 2),
               pct: [Some(25.0), Some(75.0), Some(50.0), Some(66.7), Some(50.0), Some(50.0), Some(50.0)] },
        // g-b1: i9 (30 s, 600 s) and i10 (200 s, 1200 s) (i8 is
        // December's). No visits. f4 done late, f5 (the first minute of
        // November) open: 1/2. btn-b1 passed in December: 0/1; the bed
        // sensor is not on duty.
        Want { level: "grid", community: "吉崩岗社区", grid: "吉崩岗一网格", elders: 1, calls: 2, answered: 2,
               a60: 1, a180: 1, arrived: 2, in_target: 1, resolved: 2, false_alarms: 0,
               visits: (0, 0), follow_ups: (1, 2), tests: (0, 1),
               pct: [Some(50.0), Some(50.0), Some(50.0), Some(0.0), None, Some(50.0), Some(0.0)] },
        Want { level: "community", community: "吉崩岗社区", grid: "", elders: 1, calls: 2, answered: 2,
               a60: 1, a180: 1, arrived: 2, in_target: 1, resolved: 2, false_alarms: 0,
               visits: (0, 0), follow_ups: (1, 2), tests: (0, 1),
               pct: [Some(50.0), Some(50.0), Some(50.0), Some(0.0), None, Some(50.0), Some(0.0)] },
        // g-x, without a place: no calls; v7 done; btn-x passed on the
        // first hour of November.
        Want { level: "grid", community: "", grid: "g-x", elders: 1, calls: 0, answered: 0,
               a60: 0, a180: 0, arrived: 0, in_target: 0, resolved: 0, false_alarms: 0,
               visits: (1, 1), follow_ups: (0, 0), tests: (1, 1),
               pct: [None, None, None, None, Some(100.0), None, Some(100.0)] },
        // i11, without an elder: grid "".
        Want { level: "grid", community: "", grid: "", elders: 0, calls: 1, answered: 1,
               a60: 1, a180: 1, arrived: 0, in_target: 0, resolved: 1, false_alarms: 0,
               visits: (0, 0), follow_ups: (0, 0), tests: (0, 0),
               pct: [Some(100.0), Some(100.0), None, Some(0.0), None, None, None] },
        Want { level: "community", community: "", grid: "", elders: 1, calls: 1, answered: 1,
               a60: 1, a180: 1, arrived: 0, in_target: 0, resolved: 1, false_alarms: 0,
               visits: (1, 1), follow_ups: (0, 0), tests: (1, 1),
               pct: [Some(100.0), Some(100.0), None, Some(0.0), Some(100.0), None, Some(100.0)] },
        // The site: 3/7 = 42.9, 5/7 = 71.4, 2/4, 2/6 = 33.3, 3/5, 2/4, 2/4.
        Want { level: "total", community: "", grid: "", elders: 5, calls: 7, answered: 6,
               a60: 3, a180: 5, arrived: 4, in_target: 2, resolved: 6, false_alarms: 2,
               visits: (3, 5), follow_ups: (2, 4), tests: (2, 4),
               pct: [Some(42.9), Some(71.4), Some(50.0), Some(33.3), Some(60.0), Some(50.0), Some(50.0)] },
    ]
}

impl Want {
    fn json(&self) -> Value {
        let p = |i: usize| json!(self.pct[i]);
        json!({
            "elders": self.elders, "calls": self.calls, "answered": self.answered,
            "answered_60s": self.a60, "answered_60s_pct": p(0),
            "answered_180s": self.a180, "answered_180s_pct": p(1),
            "arrived": self.arrived, "arrived_in_target": self.in_target, "arrived_in_target_pct": p(2),
            "resolved": self.resolved, "false_alarms": self.false_alarms, "false_alarm_pct": p(3),
            "visits_planned": self.visits.1, "visits_done": self.visits.0, "visits_done_pct": p(4),
            "follow_ups_due": self.follow_ups.1, "follow_ups_done": self.follow_ups.0, "follow_ups_done_pct": p(5),
            "test_devices": self.tests.1, "test_devices_passed": self.tests.0, "test_devices_passed_pct": p(6),
        })
    }

    fn pct_text(&self, i: usize, none: &str) -> String {
        self.pct[i].map_or_else(|| none.to_owned(), |v| format!("{v:.1}"))
    }

    fn csv(&self) -> String {
        let p = |i| self.pct_text(i, "");
        let district = if self.community.is_empty() {
            ""
        } else {
            "Chengguan"
        };
        let district = if self.level == "total" { "" } else { district };
        [
            self.level.to_owned(),
            district.to_owned(),
            self.community.to_owned(),
            self.grid.to_owned(),
            self.elders.to_string(),
            self.calls.to_string(),
            self.answered.to_string(),
            self.a60.to_string(),
            p(0),
            self.a180.to_string(),
            p(1),
            self.arrived.to_string(),
            self.in_target.to_string(),
            p(2),
            self.resolved.to_string(),
            self.false_alarms.to_string(),
            p(3),
            self.visits.1.to_string(),
            self.visits.0.to_string(),
            p(4),
            self.follow_ups.1.to_string(),
            self.follow_ups.0.to_string(),
            p(5),
            self.tests.1.to_string(),
            self.tests.0.to_string(),
            p(6),
        ]
        .join(",")
    }

    /// The PDF's table line in `lang`, its words separated by single
    /// spaces.
    fn pdf(&self, lang: &str) -> String {
        let p = |i| self.pct_text(i, "-");
        let (unassigned, total, no_elder) = match lang {
            "zh" => ("未划分", "合计", "（无老人）"),
            _ => ("unassigned", "TOTAL", "(no elder)"),
        };
        let community = if self.community.is_empty() {
            unassigned
        } else {
            self.community
        };
        let name = match self.level {
            "total" => total.to_owned(),
            "community" => format!("= {community}"),
            _ if self.grid.is_empty() => no_elder.to_owned(),
            _ => self.grid.to_owned(),
        };
        format!(
            "{name} {} {} {} {} {} {} {}/{} {} {}/{} {} {}/{} {}",
            self.elders,
            self.calls,
            p(0),
            p(1),
            p(2),
            p(3),
            self.visits.0,
            self.visits.1,
            p(4),
            self.follow_ups.0,
            self.follow_ups.1,
            p(5),
            self.tests.0,
            self.tests.1,
            p(6),
        )
    }
}

async fn app_on(db: Db) -> TestApp {
    TestApp::spawn(Options {
        db,
        clock: Some(t("2026-10-15T00:00:00Z")),
        env: vec![(
            "ELDERCARE__RULES__NIGHT__UTC_OFFSET_MIN".into(),
            "480".into(),
        )],
        ..Options::default()
    })
    .await
}

/// GET with the admin's token: status, content type, body bytes.
async fn fetch(app: &TestApp, path: &str, accept: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    fetch_in(app, path, accept, None).await
}

/// [`fetch`] with an `Accept-Language`.
async fn fetch_in(
    app: &TestApp,
    path: &str,
    accept: Option<&str>,
    language: Option<&str>,
) -> (StatusCode, String, Vec<u8>) {
    let mut req = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(&app.admin);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    if let Some(l) = language {
        req = req.header("accept-language", l);
    }
    let resp = req.send().await.expect("HTTP");
    let status = resp.status();
    let mime = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, mime, resp.bytes().await.expect("body").to_vec())
}

fn pdf_lines(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("monthly.pdf");
    std::fs::write(&path, pdf).expect("write the PDF");
    // To look at it: ELDERCARE_TEST_KEEP_PDF=/some/dir.
    if let Some(keep) = std::env::var_os("ELDERCARE_TEST_KEEP_PDF") {
        let _ = std::fs::copy(&path, std::path::Path::new(&keep).join("monthly.pdf"));
    }
    let out = std::process::Command::new("pdftotext")
        .arg("-layout")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; .ci/run installs it)");
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

async fn the_month_by_hand(db: Db) {
    let app = app_on(db).await;
    seed(&app).await;
    let want = wanted();

    // JSON.
    let r = app.get("/api/v1/reports/monthly?month=2026-11").await;
    assert_eq!(r["month"], "2026-11");
    assert_eq!(r["from"], "2026-10-31T16:00:00Z");
    assert_eq!(r["to"], "2026-11-30T16:00:00Z");
    assert_eq!(r["utc_offset_min"], 480);
    assert_eq!(
        r["targets"],
        json!({"answered_60s_reference_pct": 97.5, "answered_180s_reference_pct": 99.0, "arrive_s": 900})
    );
    let grids: Vec<&Want> = want.iter().filter(|w| w.level == "grid").collect();
    assert_eq!(r["grids"].as_array().unwrap().len(), grids.len(), "{r:#}");
    for (got, w) in r["grids"].as_array().unwrap().iter().zip(&grids) {
        let mut expected = w.json();
        expected["grid"] = json!(w.grid);
        expected["community"] = json!(w.community);
        expected["district"] = json!(if w.community.is_empty() {
            ""
        } else {
            "Chengguan"
        });
        assert_eq!(got, &expected, "grid {:?}", w.grid);
    }
    let communities: Vec<&Want> = want.iter().filter(|w| w.level == "community").collect();
    assert_eq!(
        r["communities"].as_array().unwrap().len(),
        communities.len()
    );
    for (got, w) in r["communities"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&communities)
    {
        assert_eq!(got["community"], w.community);
        let mut got = got.clone();
        for k in ["community", "district", "grids"] {
            got.as_object_mut().unwrap().remove(k);
        }
        assert_eq!(got, w.json(), "community {:?}", w.community);
    }
    assert_eq!(r["communities"][0]["grids"], json!(["g-a1", "g-a2"]));
    assert_eq!(r["communities"][2]["grids"], json!(["g-x", ""]));
    assert_eq!(r["total"], want.last().unwrap().json());

    // CSV, by format and by Accept.
    let mut lines = vec![
        "level,district,community,grid,elders,calls,answered,answered_60s,answered_60s_pct,\
         answered_180s,answered_180s_pct,arrived,arrived_in_target,arrived_in_target_pct,\
         resolved,false_alarms,false_alarm_pct,visits_planned,visits_done,visits_done_pct,\
         follow_ups_due,follow_ups_done,follow_ups_done_pct,test_devices,test_devices_passed,\
         test_devices_passed_pct"
            .to_owned(),
    ];
    lines.extend(want.iter().map(Want::csv));
    for (path, accept) in [
        ("/api/v1/reports/monthly?month=2026-11&format=csv", None),
        ("/api/v1/reports/monthly?month=2026-11", Some("text/csv")),
    ] {
        let (status, mime, body) = fetch(&app, path, accept).await;
        assert_eq!(status, StatusCode::OK);
        assert!(mime.starts_with("text/csv"), "{mime}");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>(), lines, "{text}");
    }

    // The PDF's text, in English (asked by lang or Accept-Language) and
    // in Chinese (the site's default here); the Chinese names print as
    // they are in both.
    for (path, accept, language, lang) in [
        (
            "/api/v1/reports/monthly?month=2026-11&format=pdf&lang=en",
            None,
            None,
            "en",
        ),
        (
            "/api/v1/reports/monthly?month=2026-11",
            Some("application/pdf"),
            Some("en-GB,en;q=0.9,zh;q=0.5"),
            "en",
        ),
        (
            "/api/v1/reports/monthly?month=2026-11&format=pdf",
            None,
            None,
            "zh",
        ),
        (
            "/api/v1/reports/monthly?month=2026-11&format=pdf&lang=zh",
            None,
            Some("en"),
            "zh",
        ),
    ] {
        let (status, mime, body) = fetch_in(&app, path, accept, language).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(mime, "application/pdf");
        assert!(body.starts_with(b"%PDF-"));
        // The font is subset: the document is not the font's 3.5 MB.
        assert!(body.len() < 200_000, "{path}: {} bytes", body.len());
        let text = pdf_lines(&body);
        let (title, header, bar) = match lang {
            "zh" => (
                "月度报告 2026-11",
                "网格 老人 呼叫 60秒% 180秒% 到场% 误报% 走访 % 回访 % 测试 %",
                ("60 秒内接听", "42.9 %（参考线 97.5 %）"),
            ),
            _ => (
                "Monthly report 2026-11",
                "grid elders calls 60s% 180s% arrive% false% visits % followups % tests %",
                ("answered within 60 s", "42.9 % (reference 97.5 %)"),
            ),
        };
        assert!(text.iter().any(|l| l == title), "{path}: {text:#?}");
        assert!(text.iter().any(|l| l == header), "{path}: {text:#?}");
        for w in &want {
            let line = w.pdf(lang);
            assert!(
                text.contains(&line),
                "{path}: the PDF has no line {line:?}:\n{text:#?}"
            );
        }
        assert!(
            text.iter()
                .any(|l| l.starts_with(bar.0) && l.ends_with(bar.1)),
            "{path}: {text:#?}"
        );
    }
    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::GET,
            "/api/v1/reports/monthly?month=2026-11&format=pdf&lang=fr",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");

    // One community: its grids, its sums as the total.
    let r = app
        .get("/api/v1/reports/monthly?month=2026-11&community=Alpha")
        .await;
    assert_eq!(r["community"], "Alpha");
    let names: Vec<&str> = r["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grid"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["g-a1", "g-a2"]);
    assert_eq!(r["total"], want[2].json());
    // A community without grids: nothing to count, nothing invented.
    let r = app
        .get("/api/v1/reports/monthly?month=2026-11&community=Nowhere")
        .await;
    assert_eq!(r["grids"], json!([]));
    assert_eq!(r["total"]["calls"], 0);
    assert_eq!(r["total"]["answered_60s_pct"], Value::Null);
    // Without a month: the clock's (15 October in Lhasa): i3 only.
    let r = app.get("/api/v1/reports/monthly").await;
    assert_eq!(r["month"], "2026-10");
    assert_eq!(r["total"]["calls"], 1);
    assert_eq!(r["total"]["visits_planned"], 1);

    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_month_by_hand_on_sqlite() {
    the_month_by_hand(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_month_by_hand_on_postgres() {
    the_month_by_hand(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_month_or_format_is_a_clear_400_and_others_may_not_look() {
    let app = app_on(Db::Sqlite).await;
    for (query, names) in [
        ("month=2026-13", "month"),
        ("month=2026-1", "month"),
        ("month=November", "month"),
        ("month=1999-12", "month"),
        ("month=2026-11-01", "month"),
        ("month=2026-11&format=xml", "format"),
    ] {
        let (status, body) = app
            .call(
                Some(&app.admin),
                Method::GET,
                &format!("/api/v1/reports/monthly?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_query", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
    let steward = app.steward("s-1", "g-a1", 29.66, 91.14).await;
    let (status, _) = app
        .call(
            Some(&steward),
            Method::GET,
            "/api/v1/reports/monthly?month=2026-11",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            None,
            Method::GET,
            "/api/v1/reports/monthly?month=2026-11",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await.unwrap();
}

/// The board's Monthly report view in a real browser: the seeded month's
/// figures, the reference lines, the community choice, Chinese.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_shows_the_month_with_its_reference_lines() {
    use eldercare_tests::browser::Browser;
    let app = app_on(Db::Sqlite).await;
    seed(&app).await;
    app.post(
        "/api/v1/users",
        json!({"username": "sup", "password": "supervisor-password", "role": "supervisor"}),
    )
    .await;
    let browser = Browser::start_sized(1600, 1000, "en").await.unwrap();
    browser
        .log_in(&app.base, "sup", "supervisor-password")
        .await
        .unwrap();
    browser.wait_path("/board/").await.unwrap();
    browser.click("nav a[data-view=monthly]").await.unwrap();
    browser
        .wait_text("#mon-out", |t| !t.contains("Loading"))
        .await
        .unwrap();
    browser
        .eval("document.getElementById('mon-month').value = '2026-11'")
        .await
        .unwrap();
    browser.click("#mon-show").await.unwrap();
    let total = browser
        .wait_text("#mon-total", |t| t.contains("42.9%"))
        .await
        .unwrap();
    for figure in ["71.4%", "50.0%", "33.3%", "3/5 (60.0%)", "2/4 (50.0%)"] {
        assert!(total.contains(figure), "{figure} in {total}");
    }
    let table = browser
        .wait_text("#mon-table", |t| t.contains("g-a1"))
        .await
        .unwrap();
    assert!(
        table.contains("Unassigned") && table.contains("(no elder)"),
        "{table}"
    );
    // The references at 97.5 % and 99 %, where the scale puts them.
    let refs = browser
        .eval(
            "return [...document.querySelectorAll('#mon-out line.target')]
               .map((l) => l.getAttribute('class') + ' ' + l.getAttribute('x1'))",
        )
        .await
        .unwrap();
    let refs: Vec<String> = serde_json::from_value(refs).unwrap();
    assert_eq!(refs.len(), 2, "{refs:?}");
    // x = 120 + v / 100 × 330.
    assert!(
        refs[0].ends_with(" 441.75") && refs[1].ends_with(" 446.7"),
        "{refs:?}"
    );
    // One community: its grids in the charts.
    let options = browser
        .wait_text("#mon-community", |t| t.contains("吉崩岗社区"))
        .await
        .unwrap();
    assert!(options.contains("Alpha"), "{options}");
    browser
        .eval("const s = document.getElementById('mon-community'); s.value = '吉崩岗社区';")
        .await
        .unwrap();
    browser.click("#mon-show").await.unwrap();
    browser
        .wait_text("#mon-heading", |t| t == "2026-11: 吉崩岗社区")
        .await
        .unwrap();
    let table = browser
        .wait_text("#mon-table", |t| t.contains("吉崩岗一网格"))
        .await
        .unwrap();
    assert!(!table.contains("g-a1"), "{table}");
    if let Ok(dir) = std::env::var("ELDERCARE_TEST_KEEP_PDF") {
        let _ = std::fs::write(
            std::path::Path::new(&dir).join("monthly.png"),
            browser.screenshot().await.unwrap(),
        );
    }
    browser.click("#lang").await.unwrap();
    browser
        .wait_text("#view-monthly h2", |t| t == "月度报告")
        .await
        .unwrap();
    browser.assert_no_console_errors().await;
    app.stop().await.unwrap();
}
