//! `/api/v1/push/…`: a steward's phones registered for Web Push, the
//! server's public key they subscribe with, and "send me a test alert".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::AuthUser;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::domain::{Lang, PushSubscription, StewardId, SubscriptionJson};
use crate::notify::TestResult;
use crate::store::{ConflictCode, StoreError};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/push/key", key)
        .get("/api/v1/push/subscriptions", list)
        .post("/api/v1/push/subscriptions", subscribe)
        .post("/api/v1/push/subscriptions/renew", renew)
        .delete("/api/v1/push/subscriptions/{id}", remove)
        .post("/api/v1/push/test", test)
}

/// The server's VAPID public key.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushKey {
    /// base64url of the uncompressed P-256 point: the browser's
    /// `applicationServerKey`.
    pub public_key: String,
}

/// A phone to register: the browser's `PushSubscription.toJSON()`, and
/// the language its notifications should speak.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    pub endpoint: String,
    /// Milliseconds since the epoch, or null.
    #[serde(default)]
    pub expiration_time: Option<f64>,
    pub keys: crate::domain::reach::SubscriptionKeys,
    /// `zh` or `en` (others read as the site's language).
    #[serde(default)]
    pub lang: Option<String>,
}

/// A renewed subscription, proved by the old one's secret (a service
/// worker has no login).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub old: OldSubscription,
    #[serde(rename = "new")]
    pub renewed: SubscribeRequest,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OldSubscription {
    pub endpoint: String,
    pub keys: OldKeys,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OldKeys {
    pub auth: String,
}

/// What a test alert did on each phone.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestReport {
    /// Phones that took it.
    pub sent: usize,
    pub results: Vec<TestResult>,
}

fn steward_of<'a>(user: &'a AuthUser, what: &str) -> Result<&'a StewardId, ApiError> {
    user.own_steward().ok_or_else(|| {
        ApiError::Forbidden(format!(
            "only a steward can {what}: it is about their own phone"
        ))
    })
}

fn parse(
    body: SubscribeRequest,
    state: &AppState,
) -> Result<(crate::domain::NewSubscription, Lang), ApiError> {
    let lang = body
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .unwrap_or(state.settings.notify.language);
    let sub = SubscriptionJson {
        endpoint: body.endpoint,
        expiration_time: body.expiration_time,
        keys: body.keys,
    }
    .parse(state.settings.notify.push.allow_http)
    .map_err(|e| ApiError::Unprocessable {
        code: "invalid_subscription",
        message: e,
    })?;
    Ok((sub, lang))
}

/// The server's VAPID public key, for `pushManager.subscribe`. Public: a
/// service worker renewing its subscription has no login.
#[utoipa::path(get, path = "/api/v1/push/key", tag = "push",
    responses((status = 200, body = PushKey), (status = 503, body = ErrorBody)))]
pub async fn key(State(state): State<AppState>) -> Result<Json<PushKey>, ApiError> {
    let keys = state.reach.keys().await?;
    Ok(Json(PushKey {
        public_key: keys.vapid.public_key().to_owned(),
    }))
}

/// The caller's phones registered for alerts.
#[utoipa::path(get, path = "/api/v1/push/subscriptions", tag = "push", security(("bearer" = [])),
    responses((status = 200, body = Vec<PushSubscription>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<Json<Vec<PushSubscription>>, ApiError> {
    let me = steward_of(&user, "list their phones")?;
    Ok(Json(state.store.subscriptions_of(me).await?))
}

/// Registers this phone for alerts (or updates it: the same endpoint is
/// one phone).
#[utoipa::path(post, path = "/api/v1/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = SubscribeRequest,
    responses(
        (status = 201, description = "Registered", body = PushSubscription),
        (status = 200, description = "Already registered: updated", body = PushSubscription),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`too_many_subscriptions`, or `subscription_taken` (the endpoint is another steward's phone and the keys differ)", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "`invalid_subscription`: the endpoint or a key, named", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn subscribe(
    user: AuthUser,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SubscribeRequest>,
) -> Result<(StatusCode, Json<PushSubscription>), ApiError> {
    let me = steward_of(&user, "register a phone")?;
    let (sub, lang) = parse(body, &state)?;
    let (saved, created) = state
        .store
        .save_subscription(
            me,
            &sub,
            lang,
            state.settings.notify.push.max_per_steward,
            state.clock.now(),
        )
        .await
        .map_err(subscription_error)?;
    tracing::info!(subscription = %saved.id, created, "phone registered for alerts");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(saved)))
}

fn subscription_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict {
            code: code @ (ConflictCode::TooManySubscriptions | ConflictCode::SubscriptionTaken),
            message,
        } => ApiError::conflict(code.as_str(), message),
        other => other.into(),
    }
}

/// A browser renewed its subscription (`pushsubscriptionchange`): the
/// old one's auth secret proves it is the same phone.
#[utoipa::path(post, path = "/api/v1/push/subscriptions/renew", tag = "push",
    request_body = RenewRequest,
    responses(
        (status = 200, body = PushSubscription),
        (status = 401, description = "`bad_proof`: no such subscription, or not its secret", body = ErrorBody),
        (status = 409, description = "`subscription_taken`: the new endpoint is another steward's", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn renew(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RenewRequest>,
) -> Result<Json<PushSubscription>, ApiError> {
    let refused = || ApiError::Refused {
        code: "bad_proof",
        message: "no registered phone has that endpoint and secret".into(),
    };
    let old = state
        .store
        .subscription_by_endpoint(&body.old.endpoint)
        .await?
        .ok_or_else(refused)?;
    let given = body.old.keys.auth.trim_end_matches('=');
    if !constant_time_eq(given.as_bytes(), old.auth.as_bytes()) {
        return Err(refused());
    }
    let (sub, _) = parse(body.renewed, &state)?;
    // The app may have registered the new one first: keep that, drop
    // the old.
    if let Some(known) = state.store.subscription_by_endpoint(&sub.endpoint).await?
        && known.id != old.id
        && known.steward_id == old.steward_id
    {
        state.store.delete_subscription(&old.id).await?;
        return Ok(Json(known));
    }
    let renewed = state
        .store
        .renew_subscription(&old.id, &sub, state.clock.now())
        .await
        .map_err(|e| match e {
            StoreError::Database(ref d) if !e.is_transient() => {
                tracing::info!(error = %d, "renewal names an endpoint already registered");
                ApiError::conflict(
                    ConflictCode::SubscriptionTaken.as_str(),
                    "the new endpoint is already registered to another steward",
                )
            }
            other => other.into(),
        })?;
    tracing::info!(subscription = %renewed.id, steward = %renewed.steward_id, "push subscription renewed");
    Ok(Json(renewed))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Unregisters a phone: its steward's own, or any for a supervisor.
#[utoipa::path(delete, path = "/api/v1/push/subscriptions/{id}", tag = "push", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound(format!("push subscription {id} not found"));
    let mine = match user.own_steward() {
        Some(me) => state
            .store
            .subscriptions_of(me)
            .await?
            .into_iter()
            .any(|s| s.id == id),
        None if !user.sees_everything() => false,
        None if user.view.is_site() => true,
        // A scoped supervisor: their stewards' phones only.
        None => match state
            .store
            .all_subscriptions()
            .await?
            .into_iter()
            .find(|s| s.id == id)
        {
            Some(sub) => super::scope::check_steward(&state, &user, &sub.steward_id)
                .await
                .is_ok(),
            None => false,
        },
    };
    if !mine || !state.store.delete_subscription(&id).await? {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// "Send me a test alert": a push to each of the caller's phones, now.
#[utoipa::path(post, path = "/api/v1/push/test", tag = "push", security(("bearer" = [])),
    responses(
        (status = 200, body = TestReport),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "`no_subscription`: no phone is registered", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn test(
    user: AuthUser,
    State(state): State<AppState>,
) -> Result<Json<TestReport>, ApiError> {
    let me = steward_of(&user, "send themselves a test alert")?;
    let results = state.reach.test_push(me).await?;
    if results.is_empty() {
        return Err(ApiError::conflict(
            "no_subscription",
            "this steward has no phone registered for alerts: enable alerts in the app first",
        ));
    }
    let sent = results.iter().filter(|r| r.ok).count();
    tracing::info!(sent, phones = results.len(), "test alert");
    Ok(Json(TestReport { sent, results }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}
