//! The matcher: who is nearest and free.
//!
//! An R-tree holds only the stewards who could take an offer now (on duty,
//! `available`, with a location), as points on the unit sphere, so a
//! nearest-first walk is great-circle order and costs microseconds even
//! with a million stewards (PERFORMANCE.md). It is a cache: rebuilt from
//! the store at start-up and every so often, and kept current as stewards
//! move and change status. A stale entry costs nothing worse than a lost
//! compare-and-set in the store, which has the final word.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Duration, Utc};
use rstar::RTree;
use rstar::primitives::GeomWithData;

use crate::domain::Candidate;
use crate::domain::{
    CandidateNote, Elder, IncidentKind, LatLon, Steward, StewardId, StewardStatus,
};
use crate::settings::DispatchSettings;

/// Metres per unit of chord length on the unit sphere.
const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Candidates kept per round: enough for parallel offers and lost claims.
const MAX_CANDIDATES: usize = 12;
/// Below this many stewards, the notes also explain why busy and off-duty
/// stewards nearby were passed over (a linear scan).
const EXPLAIN_ALL_BELOW: usize = 5_000;

type Point = GeomWithData<[f64; 3], StewardId>;

fn unit_vector(at: LatLon) -> [f64; 3] {
    let (lat, lon) = (at.lat.to_radians(), at.lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// Straight-line distance on the surface for a squared chord length.
fn arc_m(chord2: f64) -> f64 {
    2.0 * (chord2.sqrt() / 2.0).clamp(0.0, 1.0).asin() * EARTH_RADIUS_M
}

/// What to rank for.
#[derive(Debug, Clone)]
pub struct Need<'a> {
    pub elder: &'a Elder,
    pub kind: IncidentKind,
    pub escalation_level: i32,
    /// Stewards already offered this incident.
    pub exclude: &'a [StewardId],
    pub now: DateTime<Utc>,
}

/// A ranking: whom to offer, in order, and why each was or was not chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ranking {
    pub candidates: Vec<Candidate>,
    pub notes: Vec<CandidateNote>,
}

#[derive(Default)]
struct Index {
    tree: RTree<Point>,
    /// Every steward, for filters and for explaining who was passed over.
    stewards: HashMap<StewardId, Steward>,
    /// Where each indexed steward sits in the tree.
    points: HashMap<StewardId, [f64; 3]>,
}

/// The spatial index of available stewards.
#[derive(Default)]
pub struct Matcher {
    index: RwLock<Index>,
}

impl Matcher {
    /// Replaces the whole index (start-up, periodic refresh).
    pub fn rebuild(&self, stewards: Vec<Steward>) {
        let mut points = HashMap::new();
        let mut elements = Vec::new();
        for s in &stewards {
            if let Some(p) = indexable(s) {
                points.insert(s.id.clone(), p);
                elements.push(Point::new(p, s.id.clone()));
            }
        }
        let index = Index {
            tree: RTree::bulk_load(elements),
            stewards: stewards.into_iter().map(|s| (s.id.clone(), s)).collect(),
            points,
        };
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = index;
    }

    /// One steward changed (moved, went on or off duty, was offered…).
    ///
    /// True when the steward can take an offer now and either could not
    /// before (on duty, freed, a first location) or can from somewhere
    /// new (moved, or a fresh report of where they are): an incident
    /// waiting for someone may now be in their reach.
    pub fn upsert(&self, steward: &Steward) -> bool {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let was = index.points.remove(&steward.id);
        if let Some(old) = was {
            index.tree.remove(&Point::new(old, steward.id.clone()));
        }
        let now = indexable(steward);
        if let Some(p) = now {
            index.points.insert(steward.id.clone(), p);
            index.tree.insert(Point::new(p, steward.id.clone()));
        }
        let before = index.stewards.insert(steward.id.clone(), steward.clone());
        let reported_again = before.is_some_and(|b| b.location_at != steward.location_at);
        now.is_some() && (was != now || reported_again)
    }

    /// How many stewards could take an offer now.
    pub fn available(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .tree
            .size()
    }

    /// Ranks the stewards for a need: nearest by travel estimate, the
    /// elder's own grid steward preferred by up to `grid_preference_m`,
    /// within `max_distance_m` times (1 + escalation level).
    pub fn rank(&self, need: &Need<'_>, settings: &DispatchSettings) -> Ranking {
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let origin = unit_vector(need.elder.location);
        let radius_m = settings.max_distance_m * f64::from(1 + need.escalation_level.max(0));
        let max_age = Duration::seconds(i64::from(settings.location_max_age_s));
        let required: &[String] = settings
            .required_skills
            .get(&need.kind)
            .map(Vec::as_slice)
            .unwrap_or(&[]);

        let mut ranked: Vec<(f64, Candidate, &Steward)> = Vec::new();
        let mut notes = Vec::new();
        for (point, chord2) in index.tree.nearest_neighbor_iter_with_distance_2(&origin) {
            let straight = arc_m(chord2);
            // Beyond the radius plus the grid preference nobody can rank.
            if straight > radius_m + settings.grid_preference_m {
                break;
            }
            let Some(steward) = index.stewards.get(&point.data) else {
                continue;
            };
            let travel = straight * settings.detour_factor;
            let pass = |reason: String| CandidateNote {
                steward_id: steward.id.clone(),
                name: steward.name.clone(),
                distance_m: Some(travel.round()),
                verdict: "passed".into(),
                reason,
            };
            if need.exclude.contains(&steward.id) {
                notes.push(pass("already offered this incident".into()));
                continue;
            }
            match steward.location_at {
                Some(at) if need.now - at <= max_age => {}
                Some(at) => {
                    notes.push(pass(format!(
                        "location {} min old",
                        (need.now - at).num_minutes()
                    )));
                    continue;
                }
                None => {
                    notes.push(pass("no location".into()));
                    continue;
                }
            }
            if let Some(missing) = required.iter().find(|s| !steward.skills.contains(s)) {
                notes.push(pass(format!("lacks the skill {missing}")));
                continue;
            }
            let own_grid = !need.elder.grid.is_empty() && steward.grid == need.elder.grid;
            if travel > radius_m && !(own_grid && travel <= radius_m + settings.grid_preference_m) {
                notes.push(pass(format!(
                    "too far ({:.0} m, limit {radius_m:.0} m)",
                    travel
                )));
                continue;
            }
            let score = if own_grid {
                travel - settings.grid_preference_m
            } else {
                travel
            };
            ranked.push((
                score,
                Candidate {
                    steward_id: steward.id.clone(),
                    distance_m: travel.round(),
                },
                steward,
            ));
            if ranked.len() >= MAX_CANDIDATES * 2 {
                break;
            }
        }
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        ranked.truncate(MAX_CANDIDATES);
        let mut candidates = Vec::with_capacity(ranked.len());
        for (rank, (_, c, steward)) in ranked.into_iter().enumerate() {
            let own = if steward.grid == need.elder.grid {
                format!(", the elder's own grid ({})", steward.grid)
            } else {
                String::new()
            };
            notes.push(CandidateNote {
                steward_id: c.steward_id.clone(),
                name: steward.name.clone(),
                distance_m: Some(c.distance_m),
                verdict: "ranked".into(),
                reason: format!("available, rank {}, {:.0} m{own}", rank + 1, c.distance_m),
            });
            candidates.push(c);
        }
        if index.stewards.len() < EXPLAIN_ALL_BELOW {
            explain_unavailable(&index, need.elder.location, radius_m, settings, &mut notes);
        }
        Ranking { candidates, notes }
    }
}

/// Notes for stewards who are not in the tree at all: busy, offered,
/// off duty or without a location.
fn explain_unavailable(
    index: &Index,
    at: LatLon,
    radius_m: f64,
    settings: &DispatchSettings,
    notes: &mut Vec<CandidateNote>,
) {
    for s in index.stewards.values() {
        if index.points.contains_key(&s.id) {
            continue;
        }
        let distance = s
            .location()
            .map(|l| (l.haversine_m(at) * settings.detour_factor).round());
        if distance.is_some_and(|d| d > radius_m) {
            continue;
        }
        let reason = match (s.on_duty, s.status) {
            (false, _) | (_, StewardStatus::OffDuty) => "off duty",
            (_, StewardStatus::Busy) => "busy with another incident",
            (_, StewardStatus::Offered) => "holding another offer",
            (_, StewardStatus::Available) => "no location",
        };
        notes.push(CandidateNote {
            steward_id: s.id.clone(),
            name: s.name.clone(),
            distance_m: distance,
            verdict: "passed".into(),
            reason: reason.into(),
        });
    }
}

/// The point of a steward who could take an offer now, if they can.
fn indexable(s: &Steward) -> Option<[f64; 3]> {
    (s.on_duty && s.status == StewardStatus::Available)
        .then(|| s.location())
        .flatten()
        .map(unit_vector)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ElderId, Limits, Risks};

    fn t0() -> DateTime<Utc> {
        "2026-11-28T15:30:00Z".parse().unwrap()
    }

    fn steward(id: &str, grid: &str, lat: f64, lon: f64, status: StewardStatus) -> Steward {
        Steward {
            id: StewardId::parse(id).unwrap(),
            name: id.to_uppercase(),
            phone: "13900000000".into(),
            grid: grid.into(),
            skills: vec!["first_aid".into()],
            languages: vec![],
            on_duty: status != StewardStatus::OffDuty,
            status,
            lat: Some(lat),
            lon: Some(lon),
            location_at: Some(t0()),
            accuracy_m: None,
        }
    }

    fn elder() -> Elder {
        Elder {
            id: ElderId::parse("e-1").unwrap(),
            name: "次仁卓玛".into(),
            birth_year: 1946,
            address: String::new(),
            location: LatLon::new(29.66, 91.14).unwrap(),
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

    fn rank(m: &Matcher, settings: &DispatchSettings, exclude: &[StewardId]) -> Ranking {
        let e = elder();
        m.rank(
            &Need {
                elder: &e,
                kind: IncidentKind::Call,
                escalation_level: 0,
                exclude,
                now: t0(),
            },
            settings,
        )
    }

    fn ids(r: &Ranking) -> Vec<&str> {
        r.candidates.iter().map(|c| c.steward_id.as_str()).collect()
    }

    #[test]
    fn nearest_available_first_busy_and_off_duty_passed_over() {
        let m = Matcher::default();
        // ~100 m, ~500 m, ~1 km north; a busy one and an off-duty one at 50 m.
        m.rebuild(vec![
            steward("far", "grid-2", 29.669, 91.14, StewardStatus::Available),
            steward("near", "grid-2", 29.6609, 91.14, StewardStatus::Available),
            steward("mid", "grid-2", 29.6645, 91.14, StewardStatus::Available),
            steward("busy", "grid-2", 29.6604, 91.14, StewardStatus::Busy),
            steward("home", "grid-2", 29.6604, 91.14, StewardStatus::OffDuty),
        ]);
        let s = DispatchSettings::default();
        let r = rank(&m, &s, &[]);
        assert_eq!(ids(&r), ["near", "mid", "far"]);
        let reason = |id: &str| {
            r.notes
                .iter()
                .find(|n| n.steward_id.as_str() == id)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(reason("busy"), "busy with another incident");
        assert_eq!(reason("home"), "off duty");
        assert!(reason("near").starts_with("available, rank 1"));
    }

    #[test]
    fn the_own_grid_steward_wins_within_the_preference() {
        let m = Matcher::default();
        m.rebuild(vec![
            steward("near", "grid-2", 29.6609, 91.14, StewardStatus::Available),
            steward("own", "grid-1", 29.6627, 91.14, StewardStatus::Available),
        ]);
        let mut s = DispatchSettings {
            grid_preference_m: 400.0,
            ..DispatchSettings::default()
        };
        assert_eq!(ids(&rank(&m, &s, &[])), ["own", "near"]);
        s.grid_preference_m = 100.0;
        assert_eq!(ids(&rank(&m, &s, &[])), ["near", "own"]);
    }

    #[test]
    fn moves_status_changes_exclusions_and_stale_locations() {
        let m = Matcher::default();
        let mut a = steward("a", "g", 29.6609, 91.14, StewardStatus::Available);
        let b = steward("b", "g", 29.6645, 91.14, StewardStatus::Available);
        m.rebuild(vec![a.clone(), b.clone()]);
        let s = DispatchSettings::default();
        assert_eq!(ids(&rank(&m, &s, std::slice::from_ref(&b.id))), ["a"]);
        a.status = StewardStatus::Offered;
        assert!(!m.upsert(&a), "offered: cannot take another");
        assert_eq!(m.available(), 1);
        assert_eq!(ids(&rank(&m, &s, &[])), ["b"]);
        a.status = StewardStatus::Available;
        a.lat = Some(29.68);
        assert!(m.upsert(&a), "freed, somewhere else");
        assert_eq!(ids(&rank(&m, &s, &[])), ["b", "a"]);
        assert!(!m.upsert(&a), "nothing new");
        a.lat = Some(29.67);
        assert!(m.upsert(&a), "moved");
        a.location_at = Some(t0() - Duration::hours(2));
        assert!(m.upsert(&a), "reported again (here, an old report)");
        assert_eq!(ids(&rank(&m, &s, &[])), ["b"]);
        a.on_duty = false;
        assert!(!m.upsert(&a), "off duty");
    }

    #[test]
    fn the_radius_grows_with_escalation() {
        let m = Matcher::default();
        m.rebuild(vec![steward(
            "x",
            "g",
            29.72,
            91.14,
            StewardStatus::Available,
        )]);
        let s = DispatchSettings {
            max_distance_m: 5_000.0,
            ..DispatchSettings::default()
        };
        assert!(rank(&m, &s, &[]).candidates.is_empty());
        let e = elder();
        let wider = m.rank(
            &Need {
                elder: &e,
                kind: IncidentKind::Call,
                escalation_level: 1,
                exclude: &[],
                now: t0(),
            },
            &s,
        );
        assert_eq!(ids(&wider), ["x"]);
    }
}
