//! Extractors that turn every bad input into an [`ApiError`] with the
//! `{"error": {"code", "message"}}` body, never axum's plain-text
//! rejections and never a 500:
//!
//! | input | status | code |
//! |---|---|---|
//! | body not `application/json` | 415 | `unsupported_media_type` |
//! | body over [`super::BODY_LIMIT`] | 413 | `payload_too_large` |
//! | body not JSON | 400 | `invalid_json` |
//! | JSON of the wrong shape | 422 | `invalid_body`, naming the field |
//! | a path parameter that cannot be | 400 | `invalid_path` |
//! | a query string that cannot be parsed | 400 | `invalid_query` |

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body, parsed with the field path of any error.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "the body is larger than {} bytes",
                    super::BODY_LIMIT
                ))
            } else {
                ApiError::BadRequest {
                    code: "invalid_body",
                    message: format!("could not read the body: {}", e.body_text()),
                }
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// `application/json` or any `application/…+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses JSON text: broken JSON is a 400 `invalid_json`, JSON that does
/// not fit `T` a 422 `invalid_body` naming the field.
///
/// Two steps, text to `Value` then `Value` to `T`, so that `{}}` is
/// reported as the broken JSON it is rather than as a missing field
/// (a single pass stops at the first error, whichever it meets first).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest {
            code: "invalid_json",
            message: format!("the body is not valid JSON: {e}"),
        })?;
    from_value(value)
}

/// Deserializes an already parsed value (a merged patch) the same way.
pub fn from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        ApiError::invalid_body(&path, e.into_inner())
    })
}

/// JSON has one kind of number: `5.0` is the integer 5 (as JSON Schema's
/// `integer` says), though serde refuses it for an integer field. Whole
/// numbers written with a fraction become integers; a float field takes
/// an integer all the same.
fn whole_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9.0e15
            {
                // Exact below 2^53: the cast loses nothing.
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Path parameters; one that does not parse is a 400 naming it.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(path_error(e)),
        }
    }
}

fn path_error(e: PathRejection) -> ApiError {
    let message = match &e {
        PathRejection::FailedToDeserializePathParams(inner) => inner.kind().to_string(),
        other => other.body_text(),
    };
    if e.status().is_server_error() {
        // A handler declared parameters its route does not have: ours.
        ApiError::Internal(message)
    } else {
        ApiError::BadRequest {
            code: "invalid_path",
            message,
        }
    }
}

/// The query string; handlers take raw text fields and parse each with
/// [`super::query`], so an error names its parameter.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::BadRequest {
                code: "invalid_query",
                message: e.body_text(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        n: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        phone: String,
    }

    fn code_of(e: &ApiError) -> String {
        match e {
            ApiError::BadRequest { code, .. } | ApiError::Unprocessable { code, .. } => {
                (*code).to_owned()
            }
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn broken_json_is_400_and_misfit_json_is_422_naming_the_field() {
        let e = parse_json::<Body>(b"{\"name\": ").unwrap_err();
        assert_eq!(code_of(&e), "invalid_json");
        let e = parse_json::<Body>(b"{\"name\": \"a\", \"n\": 1} trailing").unwrap_err();
        assert_eq!(code_of(&e), "invalid_json");
        let e = parse_json::<Body>(b"{}}").unwrap_err();
        assert_eq!(code_of(&e), "invalid_json");
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let e = parse_json::<Body>(deep.as_bytes()).unwrap_err();
        assert_eq!(code_of(&e), "invalid_json");

        let e = parse_json::<Body>(b"{\"name\": \"a\", \"n\": \"x\"}").unwrap_err();
        assert_eq!(code_of(&e), "invalid_body");
        assert!(e.to_string().starts_with("n: "), "{e}");

        let e = parse_json::<Body>(b"{\"n\": 1}").unwrap_err();
        assert!(e.to_string().contains("name"), "{e}");

        let e = parse_json::<Body>(b"{\"name\": \"a\", \"n\": 1, \"inner\": {\"phone\": 5}}")
            .unwrap_err();
        assert!(e.to_string().starts_with("inner.phone: "), "{e}");

        let e = parse_json::<Body>(b"{\"name\": \"a\", \"n\": 1, \"nmae\": 2}").unwrap_err();
        assert!(e.to_string().contains("nmae"), "{e}");

        assert!(parse_json::<Body>(b"{\"name\": \"a\", \"n\": 1}").is_ok());
        // 1.0 is the integer 1 in JSON; 1.5 is not.
        assert!(parse_json::<Body>(b"{\"name\": \"a\", \"n\": 1.0}").is_ok());
        let e = parse_json::<Body>(b"{\"name\": \"a\", \"n\": 1.5}").unwrap_err();
        assert_eq!(code_of(&e), "invalid_body");
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(is_json(&h));
        h.insert(
            CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(
            CONTENT_TYPE,
            "application/merge-patch+json".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }
}
