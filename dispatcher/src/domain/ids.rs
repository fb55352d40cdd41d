//! Identifiers of the things the dispatcher owns. All share the device id
//! alphabet (`[A-Za-z0-9_-]{1,64}`) so they are safe in URLs, topics and logs.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String, example = "e-0001")]
        pub struct $name(String);

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

impl IncidentId {
    /// A fresh, unguessable id.
    pub fn generate() -> Self {
        Self(format!("inc-{}", uuid::Uuid::new_v4().simple()))
    }
}
