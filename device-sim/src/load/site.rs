//! A generated site for load runs: homes of five devices each around a
//! centre, and stewards with logins, written as a `dispatcher import`
//! file (JSON, streamed: a million devices is about 100 MB).
//!
//! Ids are derived from numbers, so the load generator knows every
//! device's id, kind and home without reading the file back.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Devices per home: a call button, a bed sensor, a vitals pad, a door
/// sensor and a smoke detector, in that order.
pub const DEVICES_PER_HOME: usize = 5;
const KINDS: [&str; DEVICES_PER_HOME] =
    ["call_button", "bed_sensor", "vitals_pad", "door", "smoke"];

/// Tama community, Chengguan district, Lhasa.
pub const CENTRE: (f64, f64) = (29.66, 91.14);
/// Homes lie within this many metres of the centre: close enough that a
/// steward is always within the dispatcher's default 5 km radius.
const HOMES_RADIUS_M: f64 = 2_000.0;
const STEWARDS_RADIUS_M: f64 = 1_000.0;

/// The id of device `n` under `prefix`.
pub fn device_id(prefix: &str, n: usize) -> String {
    format!("{prefix}d{n:07}")
}

/// The id of the elder living with device `n`.
pub fn elder_id(prefix: &str, n: usize) -> String {
    format!("{prefix}e{:07}", n / DEVICES_PER_HOME)
}

/// The kind of device `n`.
pub fn device_kind(n: usize) -> &'static str {
    KINDS[n % DEVICES_PER_HOME]
}

/// The steward `k`'s id; their login has the same name.
pub fn steward_id(prefix: &str, k: usize) -> String {
    format!("{prefix}s{k:04}")
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub prefix: String,
    pub devices: usize,
    pub heartbeat_s: u32,
    pub stewards: usize,
    /// Every generated steward login's password.
    pub steward_password: String,
    pub seed: u64,
}

/// A point uniformly spread within `radius_m` of the centre.
fn scatter(rng: &mut StdRng, radius_m: f64) -> (f64, f64) {
    let r = radius_m * rng.random::<f64>().sqrt();
    let a = rng.random::<f64>() * std::f64::consts::TAU;
    let dlat = r * a.cos() / 111_320.0;
    let dlon = r * a.sin() / (111_320.0 * CENTRE.0.to_radians().cos());
    (CENTRE.0 + dlat, CENTRE.1 + dlon)
}

/// Where steward `k` stands: within 1 km of the centre, the same on
/// every run with this seed (load mode re-sends it to keep it fresh).
pub fn steward_position(seed: u64, k: usize) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_57e3 ^ (k as u64).wrapping_mul(7919));
    scatter(&mut rng, STEWARDS_RADIUS_M)
}

/// Writes the site file; returns (elders, devices, stewards) written.
pub fn write(spec: &SiteSpec, path: &Path) -> anyhow::Result<(usize, usize, usize)> {
    let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let homes = spec.devices.div_ceil(DEVICES_PER_HOME);
    let p = &spec.prefix;
    write!(
        out,
        "{{\"site\":\"load test, {} devices\",\"elders\":[",
        spec.devices
    )?;
    for h in 0..homes {
        let (lat, lon) = scatter(&mut rng, HOMES_RADIUS_M);
        let elder = json!({
            "id": elder_id(p, h * DEVICES_PER_HOME), "name": format!("Load elder {h}"),
            "birth_year": 1936 + (h % 25) as i32, "address": format!("load home {h}"),
            "lat": lat, "lon": lon, "grid": format!("grid-{}", h % 50),
            "conditions": [], "medications": [], "risks": {"fall": false, "wandering": false},
            "lives_alone": true, "languages": ["bo", "zh"], "contacts": [], "notes": "",
            "limits": {},
        });
        if h > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &elder)?;
    }
    out.write_all(b"],\"devices\":[")?;
    for n in 0..spec.devices {
        if n > 0 {
            out.write_all(b",")?;
        }
        write!(
            out,
            "{{\"id\":\"{}\",\"elder_id\":\"{}\",\"kind\":\"{}\",\"heartbeat_s\":{}}}",
            device_id(p, n),
            elder_id(p, n),
            device_kind(n),
            spec.heartbeat_s
        )?;
    }
    out.write_all(b"],\"stewards\":[")?;
    for k in 0..spec.stewards {
        let (lat, lon) = steward_position(spec.seed, k);
        let steward = json!({
            "id": steward_id(p, k), "name": format!("Load steward {k}"),
            "phone": format!("139{k:08}"), "grid": format!("grid-{}", k % 50),
            "skills": ["first_aid"], "languages": ["bo", "zh"], "on_duty": true,
            "lat": lat, "lon": lon,
        });
        if k > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &steward)?;
    }
    out.write_all(b"],\"users\":[")?;
    for k in 0..spec.stewards {
        if k > 0 {
            out.write_all(b",")?;
        }
        let id = steward_id(p, k);
        serde_json::to_writer(
            &mut out,
            &json!({"username": id, "password": spec.steward_password,
                    "role": "steward", "steward_id": id}),
        )?;
    }
    out.write_all(b"]}\n")?;
    out.flush()?;
    Ok((homes, spec.devices, spec.stewards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_kinds_and_homes_follow_the_numbers() {
        assert_eq!(device_id("ld-", 7), "ld-d0000007");
        assert_eq!(elder_id("ld-", 7), "ld-e0000001");
        assert_eq!(device_kind(5), "call_button");
        assert_eq!(device_kind(7), "vitals_pad");
    }

    #[test]
    fn the_file_lists_every_device_home_and_steward() {
        let dir = std::env::temp_dir().join(format!("load-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("site.json");
        let spec = SiteSpec {
            prefix: "t-".into(),
            devices: 12,
            heartbeat_s: 60,
            stewards: 2,
            steward_password: "pw".into(),
            seed: 1,
        };
        assert_eq!(write(&spec, &path).unwrap(), (3, 12, 2));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["elders"].as_array().unwrap().len(), 3);
        assert_eq!(v["devices"].as_array().unwrap().len(), 12);
        assert_eq!(v["devices"][11]["elder_id"], "t-e0000002");
        assert_eq!(v["users"][1]["steward_id"], "t-s0001");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
