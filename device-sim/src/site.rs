//! The homes and stewards to simulate, read from the same site file the
//! dispatcher imports (`config/demo-site.toml`). Only the fields the
//! simulator needs; everything else in the file is ignored.

use serde::Deserialize;

/// A site: elders, their devices, stewards and logins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Site {
    pub site: Option<String>,
    pub elders: Vec<SiteElder>,
    pub devices: Vec<SiteDevice>,
    pub stewards: Vec<SiteSteward>,
    pub users: Vec<SiteUser>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SiteElder {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub risks: Risks,
    pub care: Care,
}

/// The part of an elder's care plan the simulator acts on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Care {
    /// Present when the elder checks in daily (docs/PROTOCOL-EXTENSIONS.md).
    pub checkin: Option<toml::Value>,
}

impl SiteElder {
    pub fn on_checkin(&self) -> bool {
        self.care.checkin.is_some()
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Risks {
    pub fall: bool,
    pub wandering: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SiteDevice {
    pub id: String,
    pub elder_id: Option<String>,
    pub kind: String,
    pub heartbeat_s: Option<u32>,
    /// The device's MQTT password (its username is its id), as
    /// `dispatcher import --secrets-out` wrote it; never in a site file:
    /// filled in from a secrets file or, in the server, in memory.
    #[serde(skip)]
    pub secret: Option<String>,
}

impl Site {
    /// Gives each device its secret from `secrets` (device id to secret);
    /// returns the ids of the devices left without one.
    pub fn with_secrets(
        &mut self,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Vec<String> {
        let mut missing = Vec::new();
        for d in &mut self.devices {
            d.secret = secrets.get(&d.id).cloned();
            if d.secret.is_none() {
                missing.push(d.id.clone());
            }
        }
        missing
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SiteSteward {
    pub id: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SiteUser {
    pub username: String,
    pub password: String,
    pub role: String,
    pub steward_id: Option<String>,
}

impl Site {
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    pub fn elder(&self, id: &str) -> Option<&SiteElder> {
        self.elders.iter().find(|e| e.id == id)
    }

    /// The devices of one elder.
    pub fn devices_of<'a>(&'a self, elder: &'a str) -> impl Iterator<Item = &'a SiteDevice> {
        self.devices
            .iter()
            .filter(move |d| d.elder_id.as_deref() == Some(elder))
    }

    /// The stewards the simulator can play: those with a steward login.
    pub fn playable_stewards(&self) -> Vec<(SiteSteward, SiteUser)> {
        self.users
            .iter()
            .filter(|u| u.role == "steward")
            .filter_map(|u| {
                let sid = u.steward_id.as_deref()?;
                let s = self.stewards.iter().find(|s| s.id == sid)?;
                Some((s.clone(), u.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_demo_site() {
        let site = Site::from_toml(include_str!("../../config/demo-site.toml")).unwrap();
        assert_eq!(site.elders.len(), 38);
        assert_eq!(site.devices.len(), 163);
        let playable = site.playable_stewards();
        assert_eq!(playable.len(), 3);
        assert_eq!(playable[0].0.id, "s-01");
        assert!(site.devices_of("e-001").any(|d| d.kind == "call_button"));
    }
}
