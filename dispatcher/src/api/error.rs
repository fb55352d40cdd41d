//! The API's one error type: the right status and the body
//! `{"error": {"code": "…", "message": "…"}}` of API.md.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// An error a client can act on. Never a 500 for anything a client sent:
/// only a failure of ours (`Internal`) is one.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    /// A credential other than a login was refused (an offer token, a
    /// gateway's signature), with its own code.
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// As `NotFound`, with a code of its own (`unknown_phone`).
    #[error("{message}")]
    Missing { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// What the request names existed but is over for good (an SMS
    /// link whose offer ended).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("{0}")]
    TooManyRequests(String),
    /// As `TooManyRequests`, telling the client when to try again
    /// (`Retry-After`): a locked-out login.
    #[error("{message}")]
    RetryLater { message: String, retry_after_s: u64 },
    /// The body is over the size limit ([`super::BODY_LIMIT`]).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body is not `application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The path exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The store or the broker is down; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// Too busy right now (connections, password hashing): 503 with
    /// `Retry-After`.
    #[error("{message}")]
    Overloaded { message: String, retry_after_s: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `offer_expired`, `invalid_body`…
    pub code: String,
    /// For a person.
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "bad_request",
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Unprocessable {
            code: "invalid",
            message: message.into(),
        }
    }

    /// A body that parsed as JSON but does not fit: a wrong type, a
    /// missing or unknown field, a value out of range. `field` is the JSON
    /// path (`contacts[0].phone`) so a client can point at it.
    pub fn invalid_body(field: &str, problem: impl std::fmt::Display) -> Self {
        let message = if field.is_empty() || field == "." {
            problem.to_string()
        } else {
            format!("{field}: {problem}")
        };
        Self::Unprocessable {
            code: "invalid_body",
            message,
        }
    }

    /// A query parameter that cannot be used, naming it.
    pub fn invalid_query(param: &str, problem: impl std::fmt::Display) -> Self {
        Self::BadRequest {
            code: "invalid_query",
            message: format!("query parameter {param}: {problem}"),
        }
    }

    /// A conflict with a stable code (`not_open`, `duplicate`, …).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Refused { code, .. } => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Missing { code, .. } => (StatusCode::NOT_FOUND, code),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::Gone { code, .. } => (StatusCode::GONE, code),
            Self::TooManyRequests(_) | Self::RetryLater { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Overloaded { .. } => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        // A shed request is the plan working, not a failure to look into.
        if status.is_server_error() && !matches!(self, Self::Overloaded { .. }) {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::RetryLater { retry_after_s, .. } | Self::Overloaded { retry_after_s, .. } => {
                headers.insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after_s),
                );
            }
            // RFC 6750: say which scheme to use.
            Self::Unauthorized(_) => {
                headers.insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            _ => {}
        }
        response
    }
}

/// A position off the globe names its field, `lat` or `lon`.
impl From<crate::domain::OffTheGlobe> for ApiError {
    fn from(e: crate::domain::OffTheGlobe) -> Self {
        Self::invalid_body(e.field, &e)
    }
}

impl From<crate::auth::HashError> for ApiError {
    fn from(e: crate::auth::HashError) -> Self {
        match e {
            crate::auth::HashError::Busy { retry_after_s } => Self::Overloaded {
                message: e.to_string(),
                retry_after_s,
            },
            crate::auth::HashError::Failed(m) => Self::Internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            StoreError::Conflict { message, .. } => Self::Conflict {
                code: "conflict",
                message,
            },
            StoreError::Invalid(m) => Self::invalid(m),
            StoreError::Database(e) => {
                tracing::error!(error = %e, "store failed");
                Self::Unavailable("the database is unavailable; try again shortly".into())
            }
            StoreError::Corrupt(m) => Self::Internal(m),
        }
    }
}
