//! The event mix of a load run: what a fleet of homes sends besides its
//! heartbeats. Mostly readings and comings and goings that open nothing,
//! a few presses (which do), now and then a cancel or a low battery.

use anyhow::{Context, bail};
use rand::Rng;
use serde_json::{Map, Value, json};

/// One kind of event and its share of the rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub event_type: &'static str,
    pub weight: f64,
}

/// Event types with weights; `pick` draws one.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    shares: Vec<Share>,
    total: f64,
}

/// The types a load run knows how to send, with the device (by its place
/// in the home, see [`super::site`]) that sends each.
const TYPES: [(&str, usize); 8] = [
    ("vitals", 2),
    ("bed.exit", 1),
    ("bed.return", 1),
    ("door.open", 3),
    ("call.pressed", 0),
    ("call.cancelled", 0),
    ("battery.low", 4),
    ("smoke.detected", 4),
];

impl Default for Mix {
    /// Normal vitals 55 %, bed exits and returns 15 % each, doors 8 %,
    /// presses 4 %, cancels 2 %, low batteries 1 %.
    fn default() -> Self {
        Self::parse("vitals=55,bed.exit=15,bed.return=15,door.open=8,call.pressed=4,call.cancelled=2,battery.low=1")
            .expect("the default mix parses")
    }
}

impl Mix {
    /// `type=weight,…`, e.g. `vitals=55,call.pressed=4`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut shares = Vec::new();
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("{part:?}: expected type=weight"))?;
            let weight: f64 = weight
                .trim()
                .parse()
                .with_context(|| format!("{part:?}: the weight is not a number"))?;
            let Some((event_type, _)) = TYPES.iter().find(|(t, _)| *t == name.trim()) else {
                bail!(
                    "{name:?} is not a type load mode sends; one of {:?}",
                    TYPES.map(|t| t.0)
                );
            };
            if weight > 0.0 {
                shares.push(Share { event_type, weight });
            }
        }
        let total = shares.iter().map(|s| s.weight).sum();
        if shares.is_empty() {
            bail!("the mix has no event type with a positive weight");
        }
        Ok(Self { shares, total })
    }

    /// Draws an event type.
    pub fn pick(&self, rng: &mut impl Rng) -> &'static str {
        let mut x = rng.random::<f64>() * self.total;
        for s in &self.shares {
            if x < s.weight {
                return s.event_type;
            }
            x -= s.weight;
        }
        self.shares[self.shares.len() - 1].event_type
    }

    /// This type's share of the rate, 0 to 1.
    pub fn fraction(&self, event_type: &str) -> f64 {
        self.shares
            .iter()
            .filter(|s| s.event_type == event_type)
            .map(|s| s.weight)
            .sum::<f64>()
            / self.total
    }
}

/// Which device of a home sends this type (0 = the call button).
pub fn device_slot(event_type: &str) -> usize {
    TYPES
        .iter()
        .find(|(t, _)| *t == event_type)
        .map_or(0, |(_, slot)| *slot)
}

/// Plausible data for a type: vitals inside every default limit, so
/// readings are stored without opening incidents.
pub fn data_for(event_type: &str, rng: &mut impl Rng) -> Map<String, Value> {
    let v = match event_type {
        "vitals" => json!({
            "heart_rate": rng.random_range(58..96),
            "resp_rate": rng.random_range(12..20),
            "spo2": rng.random_range(94..100),
        }),
        "call.pressed" => json!({"button": "bedside"}),
        "door.open" => json!({"door": "front"}),
        "battery.low" => json!({"level_pct": rng.random_range(5..20)}),
        _ => json!({}),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_default_mix_draws_roughly_its_shares() {
        let mix = Mix::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let presses = (0..10_000)
            .filter(|_| mix.pick(&mut rng) == "call.pressed")
            .count();
        assert!((300..500).contains(&presses), "{presses}");
        assert!((mix.fraction("vitals") - 0.55).abs() < 1e-9);
    }

    #[test]
    fn unknown_types_and_empty_mixes_are_refused() {
        assert!(Mix::parse("sneeze=3").is_err());
        assert!(Mix::parse("vitals=0").is_err());
        assert_eq!(
            Mix::parse("vitals=1").unwrap().pick(&mut rand::rng()),
            "vitals"
        );
    }
}
