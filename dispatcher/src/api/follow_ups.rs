//! `/api/v1/follow-ups`: the follow-up (回访) after every resolved
//! incident of an elder, and after a visit whose note asked for one
//! ([`crate::domain::follow_up`]).
//!
//! - `GET /follow-ups`: supervisors and admins see all; a steward only
//!   those assigned to them. Filters: `status`, `overdue=true`,
//!   `steward_id`, `unassigned=true`, `elder_id`, `limit`, `offset`.
//! - `GET /follow-ups/{id}`: one, with who it passed through.
//! - `POST /follow-ups/{id}/complete` `{outcome, note}`: the assigned
//!   steward, or a supervisor. `needs_visit` and `unreachable` make the
//!   next follow-up, a visit due after `follow_ups.visit_within_h`, for
//!   the same steward, so nobody is forgotten.
//! - `POST /follow-ups/{id}/hand-back` `{reason}`: the assigned steward
//!   cannot go; it is left with nobody, for a supervisor to reassign.
//! - `POST /follow-ups/{id}/reassign` `{steward_id, reason}`: a
//!   supervisor sends someone (the reason may be empty).
//!
//! Errors: an unknown id 404; a bad body 422 naming the field; a steward
//! acting on one not theirs 403; one already done 409 `already_done`.
//! The store decides every race by compare-and-set.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::routes::Routes;
use super::{ApiError, AppState, query, scope, validate};
use crate::domain::{
    ElderId, FollowUp, FollowUpDetail, FollowUpId, FollowUpOutcome, FollowUpStatus, StewardId,
};
use crate::store::follow_ups::{Completion, FollowUpFilter};
use crate::store::{ConflictCode, StoreError};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/follow-ups", list)
        .get("/api/v1/follow-ups/{id}", read)
        .post("/api/v1/follow-ups/{id}/complete", complete)
        .post("/api/v1/follow-ups/{id}/hand-back", hand_back)
        .post("/api/v1/follow-ups/{id}/reassign", reassign)
}

/// The longest note or reason kept, in characters (the documents'
/// `maxLength`).
const MAX_TEXT: usize = 4000;

/// Which follow-ups; every parameter optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FollowUpQuery {
    /// `open` or `done`.
    #[param(value_type = Option<FollowUpStatus>)]
    pub status: Option<String>,
    /// `true`: only those open and past their due time.
    #[param(value_type = Option<bool>)]
    pub overdue: Option<String>,
    /// Only this steward's (a steward may name only themself).
    #[param(value_type = Option<StewardId>)]
    pub steward_id: Option<String>,
    /// `true`: only those with nobody assigned.
    #[param(value_type = Option<bool>)]
    pub unassigned: Option<String>,
    #[param(value_type = Option<ElderId>)]
    pub elder_id: Option<String>,
    /// At most this many (default 100; more is read as 1000).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Skip this many first (default 0, at most 10,000,000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 10000000)]
    pub offset: Option<String>,
}

/// `true` or `false`, naming the parameter otherwise.
fn flag(name: &str, value: Option<&str>) -> Result<bool, ApiError> {
    match value.map(|v| v.trim_matches(' ')) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::invalid_query(
            name,
            format!("{v:?} is neither true nor false"),
        )),
    }
}

impl FollowUpQuery {
    pub fn filter(&self, now: chrono::DateTime<chrono::Utc>) -> Result<FollowUpFilter, ApiError> {
        Ok(FollowUpFilter {
            status: query::one("status", self.status.as_deref())?,
            due_before: flag("overdue", self.overdue.as_deref())?.then_some(now),
            steward_id: query::id("steward_id", self.steward_id.as_deref(), StewardId::parse)?,
            unassigned: flag("unassigned", self.unassigned.as_deref())?,
            elder_id: query::id("elder_id", self.elder_id.as_deref(), ElderId::parse)?,
            grids: None,
            limit: query::limit(self.limit.as_deref())?,
            offset: query::offset(self.offset.as_deref())?,
        })
    }
}

/// How the elder was found.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    /// `well`, `needs_visit`, `referred`, `hospitalised`, `unreachable`,
    /// `declined` or `other`. `needs_visit` and `unreachable` make a
    /// visit follow.
    pub outcome: FollowUpOutcome,
    /// What the caller wants remembered (at most 4,000 characters).
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$", max_length = 4000)]
    pub note: String,
}

/// What a completion wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompleteResponse {
    /// The follow-up, done.
    pub done: FollowUp,
    /// The visit its outcome asked for, if it did.
    pub next: Option<FollowUp>,
}

/// Why the assigned steward cannot go.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandBackRequest {
    /// Kept in the follow-up's history: must not be empty (at most 4,000
    /// characters).
    #[schema(
        max_length = 4000,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub reason: String,
}

/// Whom a supervisor sends instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignRequest {
    pub steward_id: StewardId,
    /// Kept in the follow-up's history (may be empty; at most 4,000
    /// characters).
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$", max_length = 4000)]
    pub reason: String,
}

/// A store refusal as the client sees it: one already done is 409
/// `already_done`; one that is (no longer) the steward's is 403.
/// The store's message keeps its own code in front (`not_open: …`); the
/// answer has a code of its own, so the message goes without it.
fn refusal(e: StoreError) -> ApiError {
    let words = |code: ConflictCode, message: String| {
        message
            .strip_prefix(&format!("{code}: "))
            .map(str::to_owned)
            .unwrap_or(message)
    };
    match e {
        StoreError::Conflict {
            code: code @ ConflictCode::NotOpen,
            message,
        } => ApiError::conflict("already_done", words(code, message)),
        StoreError::Conflict {
            code: code @ ConflictCode::NotAssigned,
            message,
        } => ApiError::Forbidden(words(code, message)),
        other => other.into(),
    }
}

/// Text of at most [`MAX_TEXT`] bytes, trimmed.
fn text(field: &str, value: String, required: bool) -> Result<String, ApiError> {
    let v = if required {
        validate::required(field, value)?
    } else {
        validate::optional(field, value)?
    };
    let chars = v.chars().count();
    if chars > MAX_TEXT {
        return Err(ApiError::invalid_body(
            field,
            format!("is {chars} characters long; at most {MAX_TEXT}"),
        ));
    }
    Ok(v)
}

/// The follow-up, or 404 (missing, or its elder outside the caller's
/// scope).
async fn load(
    state: &AppState,
    user: &AuthUser,
    id: &FollowUpId,
) -> Result<FollowUpDetail, ApiError> {
    let not_found = || ApiError::NotFound(format!("follow-up {id} not found"));
    let detail = state.store.follow_up(id).await?.ok_or_else(not_found)?;
    if !user
        .view
        .sees_elder_id(state.store.as_ref(), Some(&detail.follow_up.elder_id))
        .await?
    {
        return Err(not_found());
    }
    Ok(detail)
}

/// 403 unless the caller sees everything or it is assigned to them.
fn theirs(user: &AuthUser, f: &FollowUp) -> Result<(), ApiError> {
    if user.sees_everything()
        || user
            .own_steward()
            .is_some_and(|me| f.steward_id.as_ref() == Some(me))
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "follow-up {} is not assigned to you; a steward acts only on their own",
            f.id
        )))
    }
}

/// Follow-ups, soonest due first. A steward gets only their own.
#[utoipa::path(get, path = "/api/v1/follow-ups", tag = "follow-ups", security(("bearer" = [])),
    params(FollowUpQuery),
    responses(
        (status = 200, body = Vec<FollowUp>),
        (status = 403, description = "A steward naming another steward", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FollowUpQuery>,
) -> Result<Json<Vec<FollowUp>>, ApiError> {
    let now = state.clock.now();
    let mut filter = q.filter(now)?;
    if !user.sees_everything() {
        let Some(me) = user.own_steward() else {
            return Ok(Json(Vec::new()));
        };
        if filter.steward_id.as_ref().is_some_and(|s| s != me) {
            return Err(ApiError::Forbidden(
                "a steward sees only their own follow-ups".into(),
            ));
        }
        filter.steward_id = Some(me.clone());
    }
    filter.grids = user.view.grid_list();
    let list = state.store.follow_ups(&filter).await?;
    Ok(Json(list.into_iter().map(|f| f.at(now)).collect()))
}

/// One follow-up with who it passed through.
#[utoipa::path(get, path = "/api/v1/follow-ups/{id}", tag = "follow-ups", security(("bearer" = [])),
    params(("id" = FollowUpId, Path, description = "Follow-up id")),
    responses(
        (status = 200, body = FollowUpDetail),
        (status = 403, description = "A steward it is not assigned to", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, follow_up = %id))]
pub async fn read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<FollowUpId>,
) -> Result<Json<FollowUpDetail>, ApiError> {
    let mut detail = load(&state, &user, &id).await?;
    theirs(&user, &detail.follow_up)?;
    detail.follow_up = detail.follow_up.at(state.clock.now());
    Ok(Json(detail))
}

/// Records how the elder was found (the assigned steward, or a
/// supervisor). `needs_visit` and `unreachable` make a visit follow.
#[utoipa::path(post, path = "/api/v1/follow-ups/{id}/complete", tag = "follow-ups", security(("bearer" = [])),
    params(("id" = FollowUpId, Path, description = "Follow-up id")),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "Done, and the visit that follows if any", body = CompleteResponse),
        (status = 403, description = "A steward it is not assigned to", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_done`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, follow_up = %id))]
pub async fn complete(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<FollowUpId>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<Json<CompleteResponse>, ApiError> {
    let note = text("note", body.note, false)?;
    let current = load(&state, &user, &id).await?.follow_up;
    theirs(&user, &current)?;
    let now = state.clock.now();
    let within = state.rules.follow_ups().within();
    let by = user.actor();
    let completion = Completion {
        outcome: body.outcome,
        note: &note,
        by: &by,
        as_steward: user.own_steward(),
        next: body
            .outcome
            .next()
            .map(|kind| (kind, now + within.of(kind))),
        now,
    };
    let done = state
        .store
        .complete_follow_up(&id, &completion)
        .await
        .map_err(refusal)?;
    tracing::info!(outcome = %body.outcome, next = done.next.is_some(), "follow-up done");
    Ok(Json(CompleteResponse {
        done: done.done.at(now),
        next: done.next.map(|n| n.at(now)),
    }))
}

/// The assigned steward cannot go: it is left with nobody, and the
/// supervisors' board shows it for reassignment.
#[utoipa::path(post, path = "/api/v1/follow-ups/{id}/hand-back", tag = "follow-ups", security(("bearer" = [])),
    params(("id" = FollowUpId, Path, description = "Follow-up id")),
    request_body = HandBackRequest,
    responses(
        (status = 200, description = "Handed back, with nobody assigned", body = FollowUp),
        (status = 403, description = "Not a steward, or not assigned to them", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_done`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, follow_up = %id))]
pub async fn hand_back(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<FollowUpId>,
    ApiJson(body): ApiJson<HandBackRequest>,
) -> Result<Json<FollowUp>, ApiError> {
    let reason = text("reason", body.reason, true)?;
    let Some(me) = user.own_steward() else {
        return Err(ApiError::Forbidden(
            "only the assigned steward hands a follow-up back; supervisors use /reassign".into(),
        ));
    };
    let current = load(&state, &user, &id).await?.follow_up;
    theirs(&user, &current)?;
    let now = state.clock.now();
    let f = state
        .store
        .hand_back_follow_up(&id, me, &reason, now)
        .await
        .map_err(refusal)?;
    tracing::info!("follow-up handed back");
    Ok(Json(f.at(now)))
}

/// A supervisor sends another steward (or the first one, to one handed
/// back).
#[utoipa::path(post, path = "/api/v1/follow-ups/{id}/reassign", tag = "follow-ups", security(("bearer" = [])),
    params(("id" = FollowUpId, Path, description = "Follow-up id")),
    request_body = ReassignRequest,
    responses(
        (status = 200, description = "Assigned to that steward", body = FollowUp),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`already_done`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, follow_up = %id))]
pub async fn reassign(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<FollowUpId>,
    ApiJson(body): ApiJson<ReassignRequest>,
) -> Result<Json<FollowUp>, ApiError> {
    let reason = text("reason", body.reason, false)?;
    // Neither the follow-up nor the steward of another community: 404.
    load(&state, &user, &id).await?;
    scope::check_steward(&state, &user, &body.steward_id).await?;
    let now = state.clock.now();
    let f = state
        .store
        .reassign_follow_up(&id, &body.steward_id, &user.actor(), &reason, now)
        .await
        .map_err(refusal)?;
    tracing::info!(steward = %body.steward_id, "follow-up reassigned");
    Ok(Json(f.at(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_up_queries() {
        let now = chrono::Utc::now();
        let q = FollowUpQuery {
            status: Some("open".into()),
            overdue: Some("true".into()),
            ..Default::default()
        };
        let f = q.filter(now).unwrap();
        assert_eq!(f.status, Some(FollowUpStatus::Open));
        assert_eq!(f.due_before, Some(now));
        for (name, q) in [
            (
                "status",
                FollowUpQuery {
                    status: Some("closed".into()),
                    ..Default::default()
                },
            ),
            (
                "overdue",
                FollowUpQuery {
                    overdue: Some("yes".into()),
                    ..Default::default()
                },
            ),
            (
                "steward_id",
                FollowUpQuery {
                    steward_id: Some("a/b".into()),
                    ..Default::default()
                },
            ),
        ] {
            let e = q.filter(now).unwrap_err();
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }

    #[test]
    fn refusals_keep_their_meaning() {
        let e = refusal(StoreError::Conflict {
            code: ConflictCode::NotOpen,
            message: "not_open: follow-up fu-1 is already done".into(),
        });
        assert!(matches!(
            e,
            ApiError::Conflict {
                code: "already_done",
                ..
            }
        ));
        assert_eq!(e.to_string(), "follow-up fu-1 is already done");
        let e = refusal(StoreError::Conflict {
            code: ConflictCode::NotAssigned,
            message: "not yours".into(),
        });
        assert!(matches!(e, ApiError::Forbidden(_)));
    }
}
