//! Small checks shared by the input types, each failing with a 422
//! `invalid_body` that names the field.

use super::ApiError;

/// What [`required`] takes, as an OpenAPI pattern: some character that
/// is not white space, and no NUL anywhere.
pub const REQUIRED_PATTERN: &str = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$";

/// An entry of a list of [`entries`] (`languages`, `skills`, …), for the
/// OpenAPI document: `#[schema(value_type = Vec<validate::Entry>)]`.
/// Text fields say the same with `#[schema(pattern = …)]` and this
/// module's patterns, spelled out (an attribute takes no constant).
pub struct Entry;

impl utoipa::PartialSchema for Entry {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(REQUIRED_PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for Entry {
    fn name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }
}

/// Trimmed, and not empty.
pub fn required(field: &str, value: String) -> Result<String, ApiError> {
    let v = optional(field, value)?;
    if v.is_empty() {
        return Err(ApiError::invalid_body(field, "must not be empty"));
    }
    Ok(v)
}

/// Trimmed; may be empty. A NUL character is refused: PostgreSQL cannot
/// store one in text, and no name or note needs it.
pub fn optional(field: &str, value: String) -> Result<String, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid_body(
            field,
            "must not contain a NUL character",
        ));
    }
    Ok(value.trim().to_owned())
}

/// Each entry trimmed and not empty (`languages`, `skills`, …).
pub fn entries(field: &str, values: Vec<String>) -> Result<Vec<String>, ApiError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| required(&format!("{field}[{i}]"), v))
        .collect()
}

/// A finite, positive number.
pub fn positive(field: &str, value: Option<f64>) -> Result<(), ApiError> {
    match value {
        Some(v) if !v.is_finite() || v <= 0.0 => Err(ApiError::invalid_body(
            field,
            format!("{v} must be above 0"),
        )),
        _ => Ok(()),
    }
}

/// `min` below `max` when both are set.
pub fn ordered(
    min_field: &str,
    min: Option<f64>,
    max_field: &str,
    max: Option<f64>,
) -> Result<(), ApiError> {
    match (min, max) {
        (Some(lo), Some(hi)) if lo >= hi => Err(ApiError::invalid_body(
            min_field,
            format!("{lo} must be below {max_field} {hi}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert_eq!(required("name", "  Dawa ".into()).unwrap(), "Dawa");
        let e = required("name", "  ".into()).unwrap_err();
        assert_eq!(e.to_string(), "name: must not be empty");
        let e = entries("languages", vec!["bo".into(), "".into()]).unwrap_err();
        assert!(e.to_string().starts_with("languages[1]"), "{e}");
        let e = required("notes", "a\0b".into()).unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert!(optional("notes", "\0".into()).is_err());
        assert_eq!(optional("notes", " ".into()).unwrap(), "");
        assert!(positive("x", Some(0.0)).is_err());
        assert!(positive("x", Some(f64::NAN)).is_err());
        assert!(positive("x", None).is_ok());
        assert!(ordered("min", Some(5.0), "max", Some(4.0)).is_err());
        assert!(ordered("min", Some(5.0), "max", None).is_ok());
    }
}
