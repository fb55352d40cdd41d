//! Logins and what each role may do.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ids::StewardId;
use super::incident::text_enum;

/// The three roles of API.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including logins and the simulator.
    Admin,
    /// Sees everything, acts on any incident, reads reports.
    Supervisor,
    /// Own offers and incidents, the elders of those, own location and duty.
    Steward,
}

text_enum!(Role {
    Admin => "admin",
    Supervisor => "supervisor",
    Steward => "steward",
});

impl Role {
    /// Admins and supervisors see every incident and elder.
    pub fn sees_everything(self) -> bool {
        matches!(self, Self::Admin | Self::Supervisor)
    }
}

/// A login. The password hash never leaves the store layer in a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
    pub role: Role,
    /// Set exactly when `role` is `steward`: the steward this login acts as.
    pub steward_id: Option<StewardId>,
    /// What a supervisor sees: `null` the whole site, else
    /// `community:<name>` or `district:<name>`. Only supervisors have one.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "community:东城")]
    pub scope: super::area::Scope,
    #[serde(skip)]
    pub password_hash: String,
}
