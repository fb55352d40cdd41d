//! Identifiers of the things the dispatcher owns. All share the device id
//! alphabet (`[A-Za-z0-9_-]{1,64}`) so they are safe in URLs, topics and logs.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        // The schema says what `parse` enforces (the OpenAPI document
        // must): the id alphabet and length.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema("e-0001")
            }
        }

        impl ToSchema for $name {}

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, protocol::IdError> {
                protocol::DeviceId::parse(s).map(|d| Self(String::from(d)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = protocol::IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// What every id accepts: `[A-Za-z0-9_-]{1,64}` (`protocol::DeviceId`).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// The OpenAPI schema of an id: a string of [`ID_PATTERN`].
pub fn id_schema(example: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(ID_PATTERN))
        .min_length(Some(1))
        .max_length(Some(protocol::DeviceId::MAX_LEN))
        .examples([serde_json::json!(example)])
        .into()
}

/// The OpenAPI schema of a `protocol::DeviceId` (that crate knows
/// nothing of OpenAPI): `#[schema(value_type = DeviceIdSchema)]`.
pub struct DeviceIdSchema;

impl utoipa::PartialSchema for DeviceIdSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        id_schema("btn-0001")
    }
}

impl ToSchema for DeviceIdSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "DeviceId".into()
    }
}

string_id!(
    /// An elder, as the registry knows them.
    ElderId
);
string_id!(
    /// A steward: a grid worker, property staff member or volunteer.
    StewardId
);
string_id!(
    /// One need of one elder.
    IncidentId
);

string_id!(
    /// One follow-up (a call or a visit) after an incident.
    FollowUpId
);

impl FollowUpId {
    /// A fresh, unguessable id.
    pub fn generate() -> Self {
        Self(format!("fu-{}", uuid::Uuid::new_v4().simple()))
    }
}

impl IncidentId {
    /// A fresh, unguessable id.
    pub fn generate() -> Self {
        Self(format!("inc-{}", uuid::Uuid::new_v4().simple()))
    }
}
