//! WGS84 positions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A valid WGS84 position in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "RawLatLon")]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Deserialize)]
struct RawLatLon {
    lat: f64,
    lon: f64,
}

impl TryFrom<RawLatLon> for LatLon {
    type Error = OffTheGlobe;
    fn try_from(r: RawLatLon) -> Result<Self, OffTheGlobe> {
        LatLon::new(r.lat, r.lon)
    }
}

/// A coordinate that is not one: which of the two, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} {value} is outside {range}")]
pub struct OffTheGlobe {
    /// `lat` or `lon`, as the API's fields are named.
    pub field: &'static str,
    pub value: f64,
    range: &'static str,
}

impl LatLon {
    /// Rejects NaN, infinities and anything off the globe.
    pub fn new(lat: f64, lon: f64) -> Result<Self, OffTheGlobe> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(OffTheGlobe {
                field: "lat",
                value: lat,
                range: "-90..90",
            });
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(OffTheGlobe {
                field: "lon",
                value: lon,
                range: "-180..180",
            });
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance in metres.
    pub fn haversine_m(self, other: LatLon) -> f64 {
        const EARTH_RADIUS_M: f64 = 6_371_008.8;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().asin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_refused() {
        assert!(LatLon::new(29.66, 91.14).is_ok());
        assert!(LatLon::new(91.0, 0.0).is_err());
        assert!(LatLon::new(0.0, -181.0).is_err());
        assert!(LatLon::new(f64::NAN, 0.0).is_err());
    }

    #[test]
    fn a_kilometre_is_a_kilometre() {
        let a = LatLon::new(29.66, 91.14).unwrap();
        let b = LatLon::new(29.669, 91.14).unwrap();
        assert!((a.haversine_m(b) - 1000.8).abs() < 2.0);
    }
}
