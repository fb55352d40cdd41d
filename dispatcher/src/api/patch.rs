//! PATCH as JSON merge patch (RFC 7396): the stored resource is
//! serialized, the body merged over it, and the result deserialized into
//! the same input type a POST takes, so one set of checks guards both.
//!
//! Fields the server owns are refused rather than ignored: a supervisor
//! who PATCHes `{"on_duty": true}` must learn it did nothing and where
//! duty is set, not see a 200 and believe the steward is on duty.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;
use super::extract::from_value;

/// RFC 7396: objects merge key by key, `null` removes a key, anything
/// else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (key, value) in patch {
            if value.is_null() {
                t.remove(key);
            } else {
                merge(t.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A field a PATCH may not change, and where it is changed instead.
pub struct ReadOnly {
    pub field: &'static str,
    pub hint: &'static str,
}

/// Merges `patch` over `current` (the stored resource as JSON) and reads
/// the result as `T`, the resource's input type.
///
/// `id` may be repeated but not changed (422 `immutable_field`); each of
/// `read_only` likewise (422 `read_only_field`, with its hint). Those
/// fields are then dropped, since the input type does not carry them.
pub fn apply<T: DeserializeOwned>(
    current: Value,
    patch: &Value,
    read_only: &[ReadOnly],
) -> Result<T, ApiError> {
    let Value::Object(fields) = patch else {
        return Err(ApiError::invalid_body(
            "",
            "a merge patch must be a JSON object of the fields to change",
        ));
    };
    let unchanged = |key: &str| fields.get(key).is_none_or(|v| current.get(key) == Some(v));
    if !unchanged("id") {
        return Err(ApiError::Unprocessable {
            code: "immutable_field",
            message: "id: cannot change; create a new one and delete this one".into(),
        });
    }
    if let Some(ro) = read_only.iter().find(|ro| !unchanged(ro.field)) {
        return Err(ApiError::Unprocessable {
            code: "read_only_field",
            message: format!("{}: cannot be changed here; {}", ro.field, ro.hint),
        });
    }
    // A null removes a key, so an unknown one would merge away to nothing
    // and the PATCH answer 200 as if it had done something: refuse it as
    // a non-null unknown field is refused.
    let known = fields_of::<T>();
    if !known.is_empty()
        && let Some(key) = fields.iter().find_map(|(key, value)| {
            let known = known.contains(&key.as_str())
                || key == "id"
                || read_only.iter().any(|ro| ro.field == key);
            (value.is_null() && !known).then_some(key)
        })
    {
        return Err(ApiError::invalid_body(
            key,
            format!("unknown field; the fields are {}", known.join(", ")),
        ));
    }
    let mut merged = current;
    merge(&mut merged, patch);
    if let Value::Object(m) = &mut merged {
        for ro in read_only {
            m.remove(ro.field);
        }
    }
    from_value(merged)
}

/// The field names `T`'s derived `Deserialize` accepts, as serde hands
/// them to `deserialize_struct`; empty for a type that is not a plain
/// derived struct (nothing is then checked here, and `from_value` still
/// refuses what it does not know).
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only records the struct fields asked for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldNames<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("only its field names were wanted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[test]
    fn rfc_7396_examples() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Input {
        id: String,
        name: String,
        #[serde(default)]
        tags: Vec<String>,
        note: Option<String>,
    }

    const RO: &[ReadOnly] = &[ReadOnly {
        field: "on_duty",
        hint: "use PUT /duty",
    }];

    fn current() -> Value {
        json!({"id": "s-1", "name": "Dawa", "tags": ["a"], "note": "x", "on_duty": false})
    }

    #[test]
    fn apply_merges_and_validates_again() {
        let got: Input = apply(current(), &json!({"name": "Pema", "note": null}), RO).unwrap();
        assert_eq!(
            got,
            Input {
                id: "s-1".into(),
                name: "Pema".into(),
                tags: vec!["a".into()],
                note: None
            }
        );
        // Repeating unchanged id and read-only fields is fine.
        let got: Input = apply(current(), &json!({"id": "s-1", "on_duty": false}), RO).unwrap();
        assert_eq!(got.name, "Dawa");
    }

    #[test]
    fn apply_refuses_what_it_cannot_do() {
        let e = apply::<Input>(current(), &json!({"id": "s-2"}), RO).unwrap_err();
        assert!(matches!(
            e,
            ApiError::Unprocessable {
                code: "immutable_field",
                ..
            }
        ));
        let e = apply::<Input>(current(), &json!({"on_duty": true}), RO).unwrap_err();
        assert!(matches!(
            e,
            ApiError::Unprocessable {
                code: "read_only_field",
                ..
            }
        ));
        assert!(e.to_string().contains("PUT /duty"));
        let e = apply::<Input>(current(), &json!({"name": null}), RO).unwrap_err();
        assert!(matches!(
            e,
            ApiError::Unprocessable {
                code: "invalid_body",
                ..
            }
        ));
        assert!(e.to_string().contains("name"));
        let e = apply::<Input>(current(), &json!({"name": 5}), RO).unwrap_err();
        assert!(e.to_string().starts_with("name: "), "{e}");
        let e = apply::<Input>(current(), &json!({"nmae": "x"}), RO).unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");
        let e = apply::<Input>(current(), &json!(["x"]), RO).unwrap_err();
        assert!(matches!(
            e,
            ApiError::Unprocessable {
                code: "invalid_body",
                ..
            }
        ));
    }
}
