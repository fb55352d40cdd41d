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
