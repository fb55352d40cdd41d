//! District, community and grid: where an elder, a steward and a
//! supervisor belong on a site larger than one community.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One grid and the community and district it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// The grid as elders and stewards name it.
    pub grid: String,
    pub community: String,
    /// Empty when the site has no districts.
    #[serde(default)]
    pub district: String,
}

/// The longest community or district name a scope may give.
pub const MAX_AREA_NAME: usize = 100;

/// What a supervisor sees: the whole site, one community or one district.
/// Stored in `users.scope` as `NULL`, `community:<name>` or
/// `district:<name>`; parsed once, here, so nothing past the edge reads
/// the text again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything: admins, stewards (whose own rules limit them) and
    /// supervisors of the whole site.
    #[default]
    Site,
    Community(String),
    District(String),
}

impl Scope {
    /// Reads the stored or sent form; `None` is the whole site.
    pub fn parse(text: Option<&str>) -> Result<Self, String> {
        let Some(text) = text else {
            return Ok(Self::Site);
        };
        let (kind, name) = text.split_once(':').ok_or_else(|| {
            format!("{text:?} is not \"community:<name>\" or \"district:<name>\"")
        })?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_AREA_NAME || name.contains('\0') {
            return Err(format!(
                "the name after \"{kind}:\" must be 1 to {MAX_AREA_NAME} characters"
            ));
        }
        match kind {
            "community" => Ok(Self::Community(name.to_owned())),
            "district" => Ok(Self::District(name.to_owned())),
            _ => Err(format!(
                "{kind:?} is not a scope; use \"community:<name>\" or \"district:<name>\""
            )),
        }
    }

    /// The stored form: `None` for the whole site.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Site => None,
            Self::Community(name) => Some(format!("community:{name}")),
            Self::District(name) => Some(format!("district:{name}")),
        }
    }

    /// Whether `area` lies inside this scope.
    pub fn covers(&self, area: &Area) -> bool {
        match self {
            Self::Site => true,
            Self::Community(name) => area.community == *name,
            Self::District(name) => !area.district.is_empty() && area.district == *name,
        }
    }

    /// The grids this scope covers among `areas`; `None` for the whole
    /// site (every grid, with a place or not).
    pub fn grids(&self, areas: &[Area]) -> Option<std::collections::BTreeSet<String>> {
        match self {
            Self::Site => None,
            _ => Some(
                areas
                    .iter()
                    .filter(|a| self.covers(a))
                    .map(|a| a.grid.clone())
                    .collect(),
            ),
        }
    }

    /// Whether some area names this community or district (a scope naming
    /// nothing would see nothing: refused when set).
    pub fn exists_in(&self, areas: &[Area]) -> bool {
        match self {
            Self::Site => true,
            _ => areas.iter().any(|a| self.covers(a)),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_text() {
            Some(t) => f.write_str(&t),
            None => f.write_str("site"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_text().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        Self::parse(text.as_deref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area(grid: &str, community: &str, district: &str) -> Area {
        Area {
            grid: grid.into(),
            community: community.into(),
            district: district.into(),
        }
    }

    #[test]
    fn scopes_parse_once() {
        assert_eq!(Scope::parse(None), Ok(Scope::Site));
        assert_eq!(
            Scope::parse(Some("community:东城")),
            Ok(Scope::Community("东城".into()))
        );
        assert_eq!(
            Scope::parse(Some("district:d1")),
            Ok(Scope::District("d1".into()))
        );
        for bad in ["", "community", "community:", "community: ", "city:x", "x"] {
            assert!(Scope::parse(Some(bad)).is_err(), "{bad:?}");
        }
        let s = Scope::Community("a b".into());
        assert_eq!(Scope::parse(s.as_text().as_deref()), Ok(s));
    }

    #[test]
    fn a_scope_covers_its_grids() {
        let areas = [
            area("g-1", "east", "d1"),
            area("g-2", "east", "d1"),
            area("g-3", "west", "d1"),
            area("g-4", "north", ""),
        ];
        let east = Scope::Community("east".into()).grids(&areas).unwrap();
        assert_eq!(east.into_iter().collect::<Vec<_>>(), ["g-1", "g-2"]);
        let d1 = Scope::District("d1".into()).grids(&areas).unwrap();
        assert_eq!(d1.len(), 3);
        assert!(Scope::Site.grids(&areas).is_none());
        assert!(!Scope::Community("south".into()).exists_in(&areas));
        // An empty district is no district.
        assert!(!Scope::District(String::new()).exists_in(&areas));
    }
}
