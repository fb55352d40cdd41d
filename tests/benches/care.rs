//! The care planner at a city's size (issue 16): one pass of
//! `dispatcher::care::pass` (check-in deadlines, visit plans, overdue
//! visits) over 100,000 elders on PostgreSQL, first when nothing is
//! planned yet (every elder gets a visit, every elder on check-in a
//! deadline) and then as it runs every `care.tick_s` when there is
//! nothing to do, against a baseline measured in the same run: reading
//! every elder's id and plan once.
//!
//! ```sh
//! cargo bench --profile dev -p eldercare-tests --bench care
//! ELDERCARE_BENCH_ELDERS=20000 cargo bench -p eldercare-tests --bench care
//! ```
//!
//! It runs the dispatcher in process (`TestApp`, a manual clock, its own
//! care loop slowed to an hour so only the bench's passes plan) on a fresh
//! PostgreSQL database, generates the site with set-based SQL and prints
//! each figure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use dispatcher::care::{CareDeps, pass};
use eldercare_tests::app::{Db, Options, TestApp};
use eldercare_tests::bench::{env_num, generating, median, ms};
use sqlx::PgPool;

/// Monday 2026-12-07, 07:00 in Lhasa (UTC+8): before the check-ins and
/// the visiting hours.
const MONDAY_7AM: &str = "2026-12-06T23:00:00Z";

async fn exec(pool: &PgPool, what: &str, sql: &'static str, elders: i64) {
    generating(pool, what, sqlx::query(sql).bind(elders)).await;
}

/// 1,000 grids of 100 elders with two stewards each; one elder in five on
/// check-in by 10:00, one in twenty on watch, one in three living alone.
async fn generate(pool: &PgPool, elders: i64) {
    println!("generating {elders} elders");
    exec(
        pool,
        "areas",
        "INSERT INTO areas (grid, community, district)
         SELECT 'g' || lpad(g::text, 4, '0'), 'c' || lpad((g / 10)::text, 3, '0'), 'd' || (g / 100)
         FROM generate_series(0, GREATEST($1 / 100, 1) - 1) g",
        elders,
    )
    .await;
    exec(
        pool,
        "stewards",
        "INSERT INTO stewards (id, name, phone, grid)
         SELECT 's' || g || x, 'Steward ' || g || x, '+86138' || lpad(g::text, 5, '0') || x,
                'g' || lpad(g::text, 4, '0')
         FROM generate_series(0, GREATEST($1 / 100, 1) - 1) g, (VALUES ('a'), ('b')) v(x)",
        elders,
    )
    .await;
    exec(
        pool,
        "elders",
        "INSERT INTO elders (id, name, birth_year, address, lat, lon, grid, lives_alone, care)
         SELECT 'e' || n, 'Elder ' || n, 1930 + n % 30, 'Address ' || n,
                29.6 + (n % 1000) * 0.0001, 91.1 + (n / 1000) * 0.0001,
                'g' || lpad((n % GREATEST($1 / 100, 1))::text, 4, '0'),
                n % 3 = 0,
                CASE WHEN n % 5 = 0 THEN '{\"checkin\":{\"from\":\"05:00\",\"by\":\"10:00\"},\"on_watch\":false}'
                     WHEN n % 20 = 1 THEN '{\"on_watch\":true}'
                     ELSE '{\"on_watch\":false}' END
         FROM generate_series(0, $1 - 1) n",
        elders,
    )
    .await;
    sqlx::query("VACUUM ANALYZE")
        .execute(pool)
        .await
        .expect("vacuum");
}

/// The baseline: every elder's id and plan read once.
async fn baseline(pool: &PgPool) -> Duration {
    let started = Instant::now();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, care FROM elders")
        .fetch_all(pool)
        .await
        .expect("baseline");
    assert!(!rows.is_empty());
    started.elapsed()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let elders = env_num("ELDERCARE_BENCH_ELDERS", 100_000) as i64;
    let rounds = env_num("ELDERCARE_BENCH_ROUNDS", 5) as usize;
    let t0: DateTime<Utc> = MONDAY_7AM.parse().unwrap();
    let app = TestApp::spawn(Options {
        db: Db::Postgres,
        clock: Some(t0),
        // The app's own care loop ticks once at start, on an empty site,
        // then not for an hour: only the bench's passes plan.
        env: vec![("ELDERCARE__INGEST__TICK_MS".into(), "3600000".into())],
        ..Options::default()
    })
    .await;
    let pool = PgPool::connect(&app.state.settings.database.url)
        .await
        .expect("the bench's database");
    let started = Instant::now();
    generate(&pool, elders).await;
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());

    let deps_with = |plan_visits: bool| {
        let mut settings = (*app.state.settings).clone();
        settings.care.plan_visits = plan_visits;
        let s = &app.state;
        CareDeps {
            settings: Arc::new(settings),
            store: s.store.clone(),
            rules: s.rules.clone(),
            metrics: s.metrics.clone(),
            clock: s.clock.clone(),
            engine: s.engine.clone(),
            hub: s.hub.clone(),
            fence: s.fence.clone(),
        }
    };
    let deps = deps_with(true);

    baseline(&pool).await;
    let base_cold = baseline(&pool).await;
    // The first pass in its two parts: the check-in deadlines alone (a
    // pass with planning off), then the visits.
    let started = Instant::now();
    let checkins = pass(&deps_with(false), t0).await.expect("the check-ins");
    let cold_checkins = started.elapsed();
    let started = Instant::now();
    let mut first = pass(&deps, t0).await.expect("the first pass");
    let cold_visits = started.elapsed();
    first.checkins_watched += checkins.checkins_watched;
    let cold = cold_checkins + cold_visits;
    println!(
        "  of which the check-in deadlines {:.0} ms, the visits {:.0} ms",
        ms(cold_checkins),
        ms(cold_visits)
    );
    let visits = count(&pool, "SELECT count(*) FROM visits").await;
    let deadlines = count(
        &pool,
        "SELECT count(*) FROM deadlines WHERE key LIKE 'checkin:%'",
    )
    .await;
    println!(
        "the first pass: {:.0} ms ({} visits planned, {} check-in deadlines set, {} raised); \
         baseline {:.1} ms, ratio {:.0}; rows: {visits} visits, {deadlines} deadlines",
        ms(cold),
        first.visits_planned,
        first.checkins_watched,
        first.overdue_raised,
        ms(base_cold),
        cold.as_secs_f64() / base_cold.as_secs_f64(),
    );
    assert_eq!(visits, elders, "one visit per elder");
    assert_eq!(deadlines, elders / 5, "a deadline per elder on check-in");

    let (mut base, mut steady) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        base.push(baseline(&pool).await);
        let started = Instant::now();
        // A second later each time: nothing new to plan, nothing due.
        let done = pass(&deps, t0 + chrono::Duration::seconds(i as i64 + 1))
            .await
            .expect("a pass");
        steady.push(started.elapsed());
        assert_eq!(
            (
                done.visits_planned,
                done.checkins_watched,
                done.overdue_raised
            ),
            (0, 0, 0),
            "nothing to do"
        );
    }
    let (b, p) = (median(&base), median(&steady));
    println!(
        "a pass with nothing to do: {:.1} ms (max {:.1}); baseline {:.1} ms; ratio {:.2}; \
         every care.tick_s = {} s that is {:.1} % of a core",
        ms(p),
        ms(*steady.iter().max().unwrap()),
        ms(b),
        p.as_secs_f64() / b.as_secs_f64(),
        app.state.settings.care.tick_s,
        100.0 * p.as_secs_f64() / app.state.settings.care.tick_s as f64,
    );
    pool.close().await;
    app.stop().await.expect("stop");
}
