//! Acting on an offer without a login, with a token only that offer's
//! steward received ([`crate::notify::token`]):
//!
//! - `POST /api/v1/offer-actions`: a notification's Accept or Decline
//!   button (the service worker has no login, and a session may have
//!   expired in the night);
//! - `POST /api/v1/offer-links/redeem`: the link in an SMS, which opens
//!   the offer in the app once, logging its steward in if needed.
//!
//! A token dies with its offer: once it is answered, withdrawn or
//! expired, the action is refused as the app's would be, and the link
//! is gone.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{authenticate, bearer_token, start_session};
use super::error::ErrorBody;
use super::extract::ApiJson;
use super::lifecycle::{Answer, answer_offer};
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::domain::{Incident, IncidentId, Offer, Role, StewardId};
use crate::notify::token::Purpose;

pub fn routes() -> Routes {
    Routes::new()
        .post("/api/v1/offer-actions", act)
        .post("/api/v1/offer-links/redeem", redeem)
}

/// A notification button pressed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActRequest {
    /// The `token` of the offer's push.
    pub token: String,
    /// `accept` or `decline`.
    pub action: ActAction,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActAction {
    Accept,
    Decline,
}

/// An SMS link opened.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The `link=` of the SMS link.
    pub token: String,
}

/// Where the link leads, and the session it opened (none when the
/// caller was already logged in as its steward).
#[derive(Debug, Serialize, ToSchema)]
pub struct Redeemed {
    #[schema(value_type = String)]
    pub incident_id: IncidentId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub steward_id: Option<StewardId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// The offer a token names, or 401 `bad_token`.
async fn offer_of(state: &AppState, purpose: Purpose, token: &str) -> Result<Offer, ApiError> {
    let bad = || ApiError::Refused {
        code: "bad_token",
        message: "this link or button is not one we sent; open the app instead".into(),
    };
    let keys = state.reach.keys().await?;
    let offer_id = keys.tokens.verify(purpose, token.trim()).ok_or_else(bad)?;
    state
        .store
        .offer(&offer_id)
        .await?
        .ok_or_else(|| ApiError::Gone {
            code: "offer_gone",
            message: "the offer is no longer kept; open the app".into(),
        })
}

/// Accepts or declines an offer from its notification's buttons.
#[utoipa::path(post, path = "/api/v1/offer-actions", tag = "incidents",
    request_body = ActRequest,
    responses(
        (status = 200, description = "Answered; the incident as it stands", body = Incident),
        (status = 401, description = "`bad_token`", body = ErrorBody),
        (status = 409, description = "`offer_expired` or `already_taken` (by someone else, or, for a decline, by the caller)", body = ErrorBody),
        (status = 410, description = "`offer_gone`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn act(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ActRequest>,
) -> Result<Json<Incident>, ApiError> {
    let offer = offer_of(&state, Purpose::Act, &body.token).await?;
    let answer = match body.action {
        ActAction::Accept => Answer::Accept,
        ActAction::Decline => Answer::Decline,
    };
    let incident = answer_offer(&state, &offer.incident_id, &offer.steward_id, answer).await?;
    tracing::info!(steward = %offer.steward_id, incident = %offer.incident_id, "answered from a notification");
    Ok(Json(incident))
}

/// Opens an SMS link: once, while its offer is live.
#[utoipa::path(post, path = "/api/v1/offer-links/redeem", tag = "incidents",
    request_body = RedeemRequest,
    responses(
        (status = 200, body = Redeemed),
        (status = 401, description = "`bad_token`, or a bearer that is not this offer's steward", body = ErrorBody),
        (status = 409, description = "`no_login`: the steward has no login to open", body = ErrorBody),
        (status = 410, description = "`link_expired`: the offer ended or the link was used", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn redeem(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RedeemRequest>,
) -> Result<Json<Redeemed>, ApiError> {
    let offer = offer_of(&state, Purpose::Link, &body.token).await?;
    let opened = |token, role, steward_id, username, expires_at| Redeemed {
        incident_id: offer.incident_id.clone(),
        token,
        role,
        steward_id,
        username,
        expires_at,
    };
    // Already logged in on this phone as the offer's steward: just go.
    if let Some(bearer) = bearer_token(&headers)? {
        let user = authenticate(&state, bearer).await?;
        if user.steward_id.as_ref() != Some(&offer.steward_id) {
            return Err(ApiError::Unauthorized(format!(
                "this link is for steward {}; log out first to open it",
                offer.steward_id
            )));
        }
        // Spent all the same: nobody else opens it after them.
        state.store.use_link(&offer.id, state.clock.now()).await?;
        return Ok(Json(opened(None, None, None, None, None)));
    }
    let now = state.clock.now();
    if offer.response.is_some() || offer.expires_at <= now {
        return Err(link_expired(&offer));
    }
    let user = state
        .store
        .users()
        .await?
        .into_iter()
        .find(|u| u.steward_id.as_ref() == Some(&offer.steward_id))
        .ok_or_else(|| {
            ApiError::conflict(
                "no_login",
                format!(
                    "steward {} has no login; an admin creates one under Users",
                    offer.steward_id
                ),
            )
        })?;
    if !state.store.use_link(&offer.id, now).await? {
        return Err(link_expired(&offer));
    }
    let hours = state.settings.auth.session_hours.min(LINK_SESSION_HOURS);
    let (token, expires_at) = start_session(&state, &user, hours).await?;
    tracing::info!(steward = %offer.steward_id, incident = %offer.incident_id, "logged in by an SMS link");
    Ok(Json(opened(
        Some(token),
        Some(user.role),
        user.steward_id.clone(),
        Some(user.username.clone()),
        Some(expires_at),
    )))
}

/// A session opened by an SMS link lasts at most this long: a text is
/// seen on a lock screen by whoever holds the phone.
pub const LINK_SESSION_HOURS: u32 = 4;

fn link_expired(offer: &Offer) -> ApiError {
    let what = match offer.response {
        Some(r) => format!("was {r}"),
        None => "expired".to_owned(),
    };
    ApiError::Gone {
        code: "link_expired",
        message: format!(
            "this link has been used or its offer {what}; open the app to see what is yours"
        ),
    }
}
