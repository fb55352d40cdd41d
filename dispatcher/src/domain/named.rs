//! serde's derive takes a JSON array for a struct, its fields by position
//! (`"limits": [null, 60]`); the API's objects have named fields only,
//! as its OpenAPI document says. A type derives with
//! `#[serde(remote = "Self")]` and implements the traits through
//! [`named_fields!`], which refuses an array.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};

/// Forwards everything to `D`, but a struct only from a map.
pub struct NamedOnly<D>(pub D);

struct MapOnly<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for MapOnly<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(map)
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for NamedOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_struct(name, fields, MapOnly(visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// `Serialize` and `Deserialize` for a type whose derives say
/// `#[serde(remote = "Self")]`, refusing an array for it.
macro_rules! named_fields {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$t>::deserialize($crate::domain::named::NamedOnly(d))
            }
        }
    };
}
pub(crate) use named_fields;

#[cfg(test)]
mod tests {
    use crate::domain::{Limits, Risks};

    #[test]
    fn an_array_is_no_object() {
        assert!(serde_json::from_str::<Limits>("[null, null]").is_err());
        assert!(serde_json::from_str::<Risks>("[true, false]").is_err());
        let l: Limits = serde_json::from_str(r#"{"inactivity_min": 60}"#).unwrap();
        assert_eq!(l.inactivity_min, Some(60));
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            serde_json::json!({"inactivity_min": 60})
        );
        let r: Risks = serde_json::from_str(r#"{"fall": true}"#).unwrap();
        assert!(r.fall && !r.wandering);
    }
}
