//! Matching benchmark: time per nearest-available query with the R-tree
//! matcher at 1,000, 100,000 and 1,000,000 stewards, against a linear scan
//! over the same stewards in the same run (the baseline).
//!
//! `cargo bench -p eldercare-dispatcher --bench matcher`
//! (`ELDERCARE_BENCH_QUERIES` queries per size, default 2,000.)
//!
//! The query is the dispatcher's own `Matcher::rank` (filters, grid
//! preference, notes), not a bare nearest-neighbour call; the scan does
//! the same filtering and keeps the same number of candidates, and each
//! query checks both agree on the nearest steward.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use eldercare_dispatcher::dispatch::Matcher;
use eldercare_dispatcher::dispatch::matcher::Need;
use eldercare_dispatcher::domain::{
    Elder, ElderId, IncidentKind, LatLon, Limits, Risks, Steward, StewardId, StewardStatus,
};
use eldercare_dispatcher::settings::DispatchSettings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Stewards and elders lie within this radius of the centre: a city.
const CITY_RADIUS_M: f64 = 20_000.0;
const CENTRE: (f64, f64) = (29.66, 91.14);
/// Candidates the matcher keeps per round (its MAX_CANDIDATES).
const KEEP: usize = 12;

fn scatter(rng: &mut StdRng) -> (f64, f64) {
    let r = CITY_RADIUS_M * rng.random::<f64>().sqrt();
    let a = rng.random::<f64>() * std::f64::consts::TAU;
    (
        CENTRE.0 + r * a.cos() / 111_320.0,
        CENTRE.1 + r * a.sin() / (111_320.0 * CENTRE.0.to_radians().cos()),
    )
}

fn stewards(n: usize, now: DateTime<Utc>, rng: &mut StdRng) -> Vec<Steward> {
    (0..n)
        .map(|i| {
            let (lat, lon) = scatter(rng);
            // Four in five available, the rest busy or off duty.
            let status = match i % 10 {
                8 => StewardStatus::Busy,
                9 => StewardStatus::OffDuty,
                _ => StewardStatus::Available,
            };
            Steward {
                id: StewardId::parse(format!("s-{i}")).expect("valid id"),
                name: format!("Steward {i}"),
                phone: "13900000000".into(),
                grid: format!("grid-{}", i % 500),
                skills: vec!["first_aid".into()],
                languages: vec![],
                on_duty: status != StewardStatus::OffDuty,
                status,
                lat: Some(lat),
                lon: Some(lon),
                location_at: Some(now),
                accuracy_m: None,
            }
        })
        .collect()
}

fn elder_at(lat: f64, lon: f64) -> Elder {
    Elder {
        id: ElderId::parse("e-bench").expect("valid id"),
        name: "Elder".into(),
        birth_year: 1946,
        address: String::new(),
        location: LatLon::new(lat, lon).expect("valid location"),
        grid: "grid-1".into(),
        conditions: vec![],
        medications: vec![],
        risks: Risks::default(),
        lives_alone: true,
        languages: vec![],
        contacts: vec![],
        notes: String::new(),
        limits: Limits::default(),
        care: Default::default(),
    }
}

/// The baseline: every steward checked, the same filters, the nearest
/// `KEEP` by travel estimate kept.
fn linear(
    all: &[Steward],
    at: LatLon,
    settings: &DispatchSettings,
    now: DateTime<Utc>,
) -> Vec<(f64, usize)> {
    let max_age = chrono::Duration::seconds(i64::from(settings.location_max_age_s));
    let mut best: Vec<(f64, usize)> = Vec::with_capacity(KEEP + 1);
    for (i, s) in all.iter().enumerate() {
        if !s.on_duty || s.status != StewardStatus::Available {
            continue;
        }
        if s.location_at.is_none_or(|t| now - t > max_age) {
            continue;
        }
        let Some(loc) = s.location() else { continue };
        let travel = loc.haversine_m(at) * settings.detour_factor;
        if travel > settings.max_distance_m {
            continue;
        }
        if best.len() < KEEP || travel < best[best.len() - 1].0 {
            let pos = best.partition_point(|b| b.0 < travel);
            best.insert(pos, (travel, i));
            best.truncate(KEEP);
        }
    }
    best
}

fn per_query(total: Duration, queries: usize) -> f64 {
    total.as_secs_f64() * 1e6 / queries as f64
}

fn main() {
    let queries: usize = std::env::var("ELDERCARE_BENCH_QUERIES")
        .ok()
        .and_then(|q| q.parse().ok())
        .unwrap_or(2_000);
    let now: DateTime<Utc> = Utc::now();
    // The grid preference would let an own-grid steward outrank a nearer
    // one, which the plain scan does not model: compare pure distance.
    let settings = DispatchSettings {
        grid_preference_m: 0.0,
        ..DispatchSettings::default()
    };
    println!(
        "matching: {queries} nearest-available queries per size, stewards within {} km",
        CITY_RADIUS_M / 1000.0
    );
    println!("| stewards | R-tree rank | linear scan | scan / R-tree | build | agree |");
    println!("|---|---|---|---|---|---|");
    for n in [1_000, 100_000, 1_000_000] {
        let mut rng = StdRng::seed_from_u64(n as u64);
        let all = stewards(n, now, &mut rng);
        let matcher = Matcher::default();
        let built = Instant::now();
        matcher.rebuild(all.clone());
        let build = built.elapsed();
        let elders: Vec<Elder> = (0..queries)
            .map(|_| {
                let (lat, lon) = scatter(&mut rng);
                elder_at(lat, lon)
            })
            .collect();

        let started = Instant::now();
        let mut firsts = Vec::with_capacity(queries);
        for e in &elders {
            let ranking = matcher.rank(
                &Need {
                    elder: e,
                    kind: IncidentKind::Call,
                    escalation_level: 0,
                    exclude: &[],
                    now,
                },
                &settings,
            );
            firsts.push(ranking.candidates.first().map(|c| c.steward_id.clone()));
            black_box(ranking);
        }
        let tree = started.elapsed();

        let started = Instant::now();
        let mut agree = 0;
        for (e, first) in elders.iter().zip(&firsts) {
            let best = linear(&all, e.location, &settings, now);
            if best.first().map(|b| &all[b.1].id) == first.as_ref() {
                agree += 1;
            }
            black_box(best);
        }
        let scan = started.elapsed();
        let (t, s) = (per_query(tree, queries), per_query(scan, queries));
        println!(
            "| {n} | {t:.1} µs | {s:.1} µs | {:.0}x | {:.0} ms | {agree}/{queries} |",
            s / t,
            build.as_secs_f64() * 1000.0
        );
    }
}
