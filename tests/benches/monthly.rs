//! The monthly report at a city's size on PostgreSQL: 100 communities of
//! 10 grids, 100,000 elders with a call button each, and a year of
//! generated history (a call per elder a month, a visit every 14 days,
//! a follow-up per resolved call, a test call per button a month).
//! Timed for one month for the whole site and for one community, the
//! store's five aggregates alone and the route's whole work (the figures,
//! the CSV and the PDF); the baseline, measured in the same run, is
//! counting the month's rows in the four tables the report reads. Goal:
//! the whole site's month under 2 s. Prints each statement's
//! `EXPLAIN (ANALYZE, BUFFERS)` for docs/BENCHMARKS.md.
//!
//! ```sh
//! cargo bench -p eldercare-tests --bench monthly
//! ```
//!
//! Needs the machine's PostgreSQL (`ELDERCARE_TEST_PG_URL`), no broker
//! and no dispatcher binary: the store is the library's, in process.
//! `ELDERCARE_BENCH_ELDERS` (default 100,000), `ELDERCARE_BENCH_ROUNDS`
//! (timings per figure, default 5). The data is made by set-based SQL
//! (`generate_series`), a statement per table.

use std::time::{Duration, Instant};

use dispatcher::domain::Lang;
use dispatcher::monthly::{self, Month};
use eldercare_tests::bench::{env_num, generating, median, ms};
use eldercare_tests::db::{TestDb, fresh_postgres};
use sqlx::PgPool;

/// The generated year: December 2025 to November 2026, UTC+8.
const YEAR_START: &str = "2025-11-30T16:00:00Z";

async fn exec(pool: &PgPool, what: &str, sql: &'static str, elders: i64) {
    let year_start = YEAR_START.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    generating(pool, what, sqlx::query(sql).bind(elders).bind(year_start)).await;
}

/// `$1` elders; `$2` the year's first instant.
async fn generate(pool: &PgPool, elders: i64) {
    println!("generating: {elders} elders, a year of history");
    exec(
        pool,
        "areas",
        "INSERT INTO areas (grid, community, district)
         SELECT 'g' || lpad(g::text, 4, '0'), 'c' || lpad((g / 10)::text, 3, '0'),
                'd' || (g / 100)
         FROM generate_series(0, GREATEST($1 / 100, 1) - 1) g
         WHERE $2::timestamptz IS NOT NULL",
        elders,
    )
    .await;
    exec(
        pool,
        "elders",
        "INSERT INTO elders (id, name, birth_year, address, lat, lon, grid)
         SELECT 'e' || n, 'Elder ' || n, 1930 + n % 30, 'Address ' || n,
                29.6 + (n % 1000) * 0.0001, 91.1 + (n / 1000) * 0.0001,
                'g' || lpad((n % GREATEST($1 / 100, 1))::text, 4, '0')
         FROM generate_series(0, $1 - 1) n
         WHERE $2::timestamptz IS NOT NULL",
        elders,
    )
    .await;
    exec(
        pool,
        "devices",
        "INSERT INTO devices (id, elder_id, kind, heartbeat_s)
         SELECT 'd' || n, 'e' || n, 'call_button', 60 FROM generate_series(0, $1 - 1) n
         WHERE $2::timestamptz IS NOT NULL",
        elders,
    )
    .await;
    exec(
        pool,
        "device duty",
        "INSERT INTO device_duty (device_id, enrolled_at)
         SELECT 'd' || n, $2::timestamptz - interval '30 days' FROM generate_series(0, $1 - 1) n
         ON CONFLICT (device_id) DO UPDATE SET enrolled_at = excluded.enrolled_at",
        elders,
    )
    .await;
    // A call per elder a month, spread evenly over the year: one in ten
    // a battery (no call), one in five false, one in fifty cancelled
    // before anyone answered.
    exec(
        pool,
        "incidents",
        "INSERT INTO incidents (id, dedup_key, elder_id, device_id, kind, priority, status,
             created_at, updated_at, acknowledged_at, on_site_at, resolved_at, outcome,
             last_event_at, summary)
         SELECT 'i' || n, 'k' || n, 'e' || (n % $1), 'd' || (n % $1),
                CASE n % 10 WHEN 0 THEN 'battery.low' WHEN 1 THEN 'fall'
                            WHEN 2 THEN 'inactivity' ELSE 'call' END,
                CASE n % 10 WHEN 0 THEN 'technical' ELSE 'urgent' END,
                CASE WHEN n % 50 = 7 THEN 'cancelled' ELSE 'resolved' END,
                c, c + interval '2 hours',
                CASE WHEN n % 50 = 7 THEN NULL ELSE c + (n * 7919 % 240) * interval '1 second' END,
                CASE WHEN n % 50 = 7 THEN NULL ELSE c + (300 + n * 104729 % 1200) * interval '1 second' END,
                c + interval '2 hours',
                CASE WHEN n % 50 = 7 THEN NULL WHEN n % 5 = 3 THEN 'false_alarm' ELSE 'assisted' END,
                c, 'generated'
         FROM (SELECT n, $2::timestamptz + (n::double precision * 365 * 86400 / ($1 * 12))
                        * interval '1 second' AS c
               FROM generate_series(0, $1 * 12 - 1) n) s",
        elders,
    )
    .await;
    // A visit every 14 days per elder, done but the last (one pending
    // per elder).
    exec(
        pool,
        "visits",
        "INSERT INTO visits (id, elder_id, due_on, window_start, window_end, status, ended_at)
         SELECT 'v' || e || '-' || k, 'e' || e,
                to_char(($2::timestamptz + interval '8 hours')::date + (k * 14 + e % 14)::int, 'YYYY-MM-DD'),
                $2::timestamptz, $2::timestamptz,
                CASE WHEN k = 25 THEN 'planned' ELSE 'done' END,
                CASE WHEN k = 25 THEN NULL ELSE $2::timestamptz + (k * 14 + e % 14) * interval '1 day' END
         FROM generate_series(0, $1 - 1) e, generate_series(0, 25) k",
        elders,
    )
    .await;
    // A follow-up per resolved call, due a day later, one in seven open.
    exec(
        pool,
        "follow-ups",
        "INSERT INTO follow_ups (id, incident_id, elder_id, kind, created_at, due_at, status,
             outcome, done_at, done_by)
         SELECT 'f' || i.id, i.id, i.elder_id, 'call', i.resolved_at, i.resolved_at + interval '1 day',
                CASE WHEN substr(i.id, 2)::bigint % 7 = 0 THEN 'open' ELSE 'done' END,
                CASE WHEN substr(i.id, 2)::bigint % 7 = 0 THEN NULL ELSE 'well' END,
                CASE WHEN substr(i.id, 2)::bigint % 7 = 0 THEN NULL ELSE i.resolved_at + interval '20 hours' END,
                CASE WHEN substr(i.id, 2)::bigint % 7 = 0 THEN NULL ELSE 'bench' END
         FROM incidents i
         WHERE i.status = 'resolved' AND i.kind <> 'battery.low' AND $1 > 0 AND $2::timestamptz IS NOT NULL",
        elders,
    )
    .await;
    // A test call per button a month, one in twenty failed.
    exec(
        pool,
        "test calls",
        "INSERT INTO device_tests (device_id, event_id, received_at, confirm_by, confirmed_at, passed)
         SELECT 'd' || d, 't' || m, r, r + interval '5 minutes',
                CASE WHEN (d + m) % 20 = 0 THEN NULL ELSE r + interval '20 seconds' END,
                (d + m) % 20 <> 0
         FROM (SELECT d, m, $2::timestamptz + (m * 30 + d % 28) * interval '1 day'
                           + (d % 86400) * interval '1 second' AS r
               FROM generate_series(0, $1 - 1) d, generate_series(0, 11) m) s",
        elders,
    )
    .await;
    let started = Instant::now();
    sqlx::query("VACUUM ANALYZE")
        .execute(pool)
        .await
        .expect("vacuum analyze");
    println!("  vacuum analyze: {:.1} s", started.elapsed().as_secs_f64());
}

/// The baseline: counting the month's rows the report reads, each by
/// its index.
async fn baseline(pool: &PgPool, w: &dispatcher::store::monthly::MonthWindow) {
    let (a, b): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM incidents WHERE created_at >= $1 AND created_at < $2),
                (SELECT count(*) FROM follow_ups WHERE due_at >= $1 AND due_at < $2)",
    )
    .bind(w.from)
    .bind(w.to)
    .fetch_one(pool)
    .await
    .expect("baseline");
    let (c, d): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM visits WHERE due_on >= $1 AND due_on < $2),
                (SELECT count(*) FROM device_tests WHERE received_at >= $3 AND received_at < $4)",
    )
    .bind(w.first_day.to_string())
    .bind(w.next_first_day.to_string())
    .bind(w.from)
    .bind(w.to)
    .fetch_one(pool)
    .await
    .expect("baseline");
    std::hint::black_box((a, b, c, d));
}

#[tokio::main]
async fn main() {
    let elders = env_num("ELDERCARE_BENCH_ELDERS", 100_000) as i64;
    let rounds = env_num("ELDERCARE_BENCH_ROUNDS", 5).max(1) as usize;
    let db = fresh_postgres().await.expect("PostgreSQL");
    let store = dispatcher::store::connect(db.url())
        .await
        .expect("the store, migrated");
    let pool = PgPool::connect(db.url()).await.expect("a pool");
    let started = Instant::now();
    generate(&pool, elders).await;
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());

    let month = Month::parse("2026-11").unwrap();
    let offset = 480;
    let mut all_met = true;
    for (label, community) in [("the whole site", None), ("one community", Some("c042"))] {
        let window = month.window(offset, 900, community.map(str::to_owned));
        // Warm the cache once, as a report asked twice would be.
        store.monthly_counts(&window).await.expect("counts");
        baseline(&pool, &window).await;
        let (mut base, mut counts, mut whole, mut pdfs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut sizes = (0, 0, 0);
        for _ in 0..rounds {
            let t = Instant::now();
            baseline(&pool, &window).await;
            base.push(t.elapsed());

            let t = Instant::now();
            let c = store.monthly_counts(&window).await.expect("counts");
            counts.push(t.elapsed());

            let t = Instant::now();
            let c2 = store.monthly_counts(&window).await.expect("counts");
            let report = monthly::build(month, &window, offset, c2);
            let json = serde_json::to_vec(&report).expect("json");
            let csv = monthly::to_csv(&report).expect("csv");
            // In Chinese: the larger subset of the embedded font.
            let p = Instant::now();
            let pdf = monthly::pdf::to_pdf(&report, Lang::Zh).expect("pdf");
            pdfs.push(p.elapsed());
            whole.push(t.elapsed());
            sizes = (c.len(), csv.len() + json.len(), pdf.len());
        }
        let (b, c, w) = (median(&base), median(&counts), median(&whole));
        let met = w < Duration::from_secs(2);
        all_met &= met;
        println!(
            "{label}: {} grids; baseline (count the month's rows) {:.1} ms; the store's counts \
             {:.1} ms (max {:.1}), ratio {:.2}; counts + JSON + CSV + PDF {:.1} ms (max {:.1}), \
             of which the Chinese PDF {:.1} ms; JSON + CSV {} bytes, PDF {} bytes; goal < 2 s: {}",
            sizes.0,
            ms(b),
            ms(c),
            ms(*counts.iter().max().unwrap()),
            c.as_secs_f64() / b.as_secs_f64(),
            ms(w),
            ms(*whole.iter().max().unwrap()),
            ms(median(&pdfs)),
            sizes.1,
            sizes.2,
            if met { "met" } else { "NOT met" }
        );
    }

    let window = month.window(offset, 900, None);
    println!("\nplans, the whole site, 2026-11:");
    let names = [
        "calls",
        "visits",
        "follow-ups",
        "test calls",
        "elders",
        "places",
    ];
    for (name, plan) in names
        .iter()
        .zip(store.explain_monthly(&window).await.expect("plans"))
    {
        println!("--- {name}\n{plan}\n");
    }
    pool.close().await;
    println!(
        "monthly report: goal {}",
        if all_met { "met" } else { "NOT met" }
    );
}
