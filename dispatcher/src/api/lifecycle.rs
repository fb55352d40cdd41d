//! The incident lifecycle of API.md: a steward accepts, declines, arrives
//! and resolves; a supervisor resolves and assigns by hand. The store
//! decides every race (compare-and-set); these handlers check who may ask,
//! map the store's conflicts to their codes, and keep the engine and the
//! matcher in step.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::routes::Routes;
use super::{ApiError, AppState, scope};
use crate::dispatch::lifecycle::Done;
use crate::dispatch::{Changed, Lifecycle, after_commit};
use crate::domain::{Incident, IncidentId, Outcome, StewardId};
use crate::store::dispatch::Actor;
use crate::store::{ConflictCode, StoreError, StoreResult};

pub fn routes() -> Routes {
    Routes::new()
        .post("/api/v1/incidents/{id}/accept", accept)
        .post("/api/v1/incidents/{id}/decline", decline)
        .post("/api/v1/incidents/{id}/arrive", arrive)
        .post("/api/v1/incidents/{id}/resolve", resolve)
        .post("/api/v1/incidents/{id}/assign", assign)
}

/// A store error as the client sees it: a refused transition keeps its
/// code; an offer that was never made is not found.
pub fn lifecycle_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict {
            code: ConflictCode::NoOffer,
            message,
        } => ApiError::NotFound(message),
        StoreError::Conflict { code, message } => ApiError::conflict(
            match code {
                ConflictCode::OfferExpired
                | ConflictCode::AlreadyTaken
                | ConflictCode::NotAssigned
                | ConflictCode::NotOpen
                | ConflictCode::StewardBusy => code.as_str(),
                _ => "conflict",
            },
            message,
        ),
        other => other.into(),
    }
}

/// The steward a login acts as, or 403.
fn steward_of<'a>(user: &'a AuthUser, action: &str) -> Result<&'a StewardId, ApiError> {
    user.own_steward().ok_or_else(|| {
        ApiError::Forbidden(format!(
            "only a steward can {action}; supervisors use /assign or /resolve"
        ))
    })
}

/// How an incident ended, and what the steward wants remembered.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `assisted`, `false_alarm`, `hospital` or `other`.
    #[schema(value_type = crate::domain::ResolveOutcome)]
    pub outcome: Outcome,
    /// What happened, for the record and the next visit.
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub notes: String,
}

/// Whom a supervisor sends.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    pub steward_id: StewardId,
}

/// The steward holding a live offer takes the incident.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/accept", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    responses(
        (status = 200, description = "Acknowledged, assigned to the caller", body = Incident),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No offer of this incident to the caller", body = ErrorBody),
        (status = 409, description = "`offer_expired` or `already_taken`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn accept(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
) -> Result<Json<Incident>, ApiError> {
    let me = steward_of(&user, "accept an offer")?;
    Ok(Json(answer_offer(&state, &id, me, Answer::Accept).await?))
}

/// A steward's answer to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Decline,
}

/// The steward answers their offer, from the app, a notification's
/// button or a reply to an SMS: the store decides, the engine and the
/// stream hear of it, and a decline has the next steward offered at once.
pub async fn answer_offer(
    state: &AppState,
    id: &IncidentId,
    steward: &StewardId,
    answer: Answer,
) -> Result<Incident, ApiError> {
    let now = state.clock.now();
    let result = match answer {
        Answer::Accept => state.store.accept(id, steward, now, &state.rules).await,
        Answer::Decline => state.store.decline(id, steward, now, &state.rules).await,
    };
    let incident = after_change(state, id, result)?;
    tracing::info!(%steward, incident = %id, ?answer, "offer answered");
    Ok(incident)
}

/// The steward cannot go; the next steward is offered at once.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/decline", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    responses(
        (status = 200, description = "Declined; the incident as it stands", body = Incident),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`offer_expired` or `already_taken`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn decline(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
) -> Result<Json<Incident>, ApiError> {
    let me = steward_of(&user, "decline an offer")?;
    Ok(Json(answer_offer(&state, &id, me, Answer::Decline).await?))
}

/// The assigned steward is with the elder.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/arrive", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    responses(
        (status = 200, description = "On site", body = Incident),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_assigned` or `not_open`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn arrive(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
) -> Result<Json<Incident>, ApiError> {
    let me = steward_of(&user, "arrive")?;
    let result = state
        .store
        .arrive(&id, me, state.clock.now(), &state.rules)
        .await;
    Ok(Json(after_change(&state, &id, result)?))
}

/// Closes the incident with an outcome (the assigned steward, or a
/// supervisor).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "Resolved", body = Incident),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_assigned` or `not_open`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn resolve(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<Incident>, ApiError> {
    if body.outcome == Outcome::Cleared {
        return Err(ApiError::invalid(
            "outcome `cleared` is the system's own; use assisted, false_alarm, hospital or other",
        ));
    }
    if body.notes.len() > 4000 || body.notes.contains('\0') {
        return Err(ApiError::invalid(
            "notes must be text of at most 4,000 bytes",
        ));
    }
    let current = scope::incident(&state, &user, &id).await?.incident;
    let actor = if user.sees_everything() {
        Actor::User(user.username.clone())
    } else {
        let me = steward_of(&user, "resolve")?;
        if current.steward_id.as_ref() != Some(me) {
            return Err(ApiError::conflict(
                "not_assigned",
                format!("incident {id} is not assigned to {me}"),
            ));
        }
        Actor::Steward(me.clone())
    };
    let result = state
        .store
        .resolve(
            &id,
            &actor,
            body.outcome,
            &body.notes,
            state.clock.now(),
            &state.rules,
        )
        .await;
    let incident = after_change(&state, &id, result)?;
    tracing::info!(outcome = %body.outcome, "incident resolved");
    Ok(Json(incident))
}

/// A supervisor sends a steward by hand, withdrawing live offers.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/assign", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "Acknowledged, assigned to that steward", body = Incident),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`steward_busy` or `not_open`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn assign(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
    ApiJson(body): ApiJson<AssignRequest>,
) -> Result<Json<Incident>, ApiError> {
    // Neither the incident nor the steward of another community: 404.
    scope::incident(&state, &user, &id).await?;
    scope::check_steward(&state, &user, &body.steward_id).await?;
    let actor = Actor::User(user.username.clone());
    let result = state
        .store
        .assign(
            &id,
            &body.steward_id,
            &actor,
            state.clock.now(),
            &state.rules,
        )
        .await;
    let incident = after_change(&state, &id, result)?;
    tracing::info!(steward = %body.steward_id, "assigned by hand");
    Ok(Json(incident))
}

/// What follows a transition: what its commit changed; after a refusal
/// (nothing written), the incident's stewards are read again, since the
/// matcher may be a timer's tick behind them.
fn after_change(
    state: &AppState,
    incident: &IncidentId,
    result: StoreResult<Done<Incident>>,
) -> Result<Incident, ApiError> {
    match result {
        Ok(done) => {
            after_commit(&state.hub, &state.engine, Changed::committed(done.changed));
            Ok(done.value)
        }
        Err(e) => {
            after_commit(
                &state.hub,
                &state.engine,
                Changed {
                    released: vec![incident.clone()],
                    ..Changed::default()
                },
            );
            Err(lifecycle_error(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_conflicts_keep_their_codes() {
        let conflict = |code, message: &str| StoreError::Conflict {
            code,
            message: message.into(),
        };
        let e = lifecycle_error(conflict(
            ConflictCode::AlreadyTaken,
            "already_taken: s-2 accepted first",
        ));
        assert!(matches!(
            e,
            ApiError::Conflict {
                code: "already_taken",
                ..
            }
        ));
        let e = lifecycle_error(conflict(
            ConflictCode::NoOffer,
            "no_offer: s-1 has no offer",
        ));
        assert!(matches!(e, ApiError::NotFound(_)));
        let e = lifecycle_error(conflict(ConflictCode::Taken, "something else"));
        assert!(matches!(
            e,
            ApiError::Conflict {
                code: "conflict",
                ..
            }
        ));
    }
}
