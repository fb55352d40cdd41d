//! `/api/v1/incidents`: list, read and cancel. Supervisors and admins see
//! every incident of their scope ([`super::scope`]: another community's
//! is 404); a steward sees those offered or assigned to them.
//! Accept, decline, arrive, resolve and assign belong to dispatch and
//! come with it.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::routes::Routes;
use super::{ApiError, AppState, query, scope, validate};
use crate::dispatch::{Changed, Lifecycle, after_commit};
use crate::domain::{ElderId, Incident, IncidentDetail, IncidentId};
use crate::store::dispatch::Actor;
use crate::store::{IncidentFilter, StoreError};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/incidents", list)
        .get("/api/v1/incidents/{id}", read)
        .post("/api/v1/incidents/{id}/cancel", cancel)
}

/// The incidents routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// Which incidents; every parameter optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// One state or a comma list: `dispatching,acknowledged,on_site`.
    #[param(
        pattern = "^ *(dispatching|acknowledged|on_site|resolved|cancelled)? *(, *(dispatching|acknowledged|on_site|resolved|cancelled)? *)*$"
    )]
    pub status: Option<String>,
    /// `critical`, `urgent`, `routine` or `technical`.
    #[param(value_type = Option<crate::domain::Priority>)]
    pub priority: Option<String>,
    /// Created at or after this RFC 3339 time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub since: Option<String>,
    /// An incident kind: `call`, `fall`, `door.night`, …
    #[param(value_type = Option<crate::domain::IncidentKind>)]
    pub kind: Option<String>,
    #[param(value_type = Option<ElderId>)]
    pub elder_id: Option<String>,
    /// At most this many (default 100; more is read as 1000).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Skip this many first (default 0, at most 10,000,000): the next
    /// page starts at this offset plus the rows returned.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 10000000)]
    pub offset: Option<String>,
}

impl IncidentQuery {
    pub fn filter(&self) -> Result<IncidentFilter, ApiError> {
        Ok(IncidentFilter {
            status: query::list("status", self.status.as_deref())?,
            priority: query::one("priority", self.priority.as_deref())?,
            kind: query::one("kind", self.kind.as_deref())?,
            elder_id: query::id("elder_id", self.elder_id.as_deref(), ElderId::parse)?,
            since: query::time("since", self.since.as_deref())?,
            steward_id: None,
            grids: None,
            limit: query::limit(self.limit.as_deref())?,
            offset: query::offset(self.offset.as_deref())?,
        })
    }
}

/// Why a supervisor closes an incident.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Kept on the incident and its timeline: must not be empty.
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub reason: String,
}

/// Incidents, newest first, a page at a time. A steward gets their own,
/// naming the assigned steward only when it is them.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", security(("bearer" = [])),
    params(IncidentQuery),
    responses(
        (status = 200, body = Vec<Incident>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    let mut filter = q.filter()?;
    if !user.sees_everything() {
        let Some(own) = user.own_steward() else {
            return Ok(Json(Vec::new()));
        };
        filter.steward_id = Some(own.clone());
        let mine = state.store.incidents(&filter).await?;
        return Ok(Json(mine.into_iter().map(|i| i.as_seen_by(own)).collect()));
    }
    filter.grids = user.view.grid_list();
    Ok(Json(state.store.incidents(&filter).await?))
}

async fn load(state: &AppState, id: &IncidentId) -> Result<IncidentDetail, ApiError> {
    state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("incident {id} not found")))
}

/// One incident with its offers and timeline. A steward sees only their
/// own offers, matcher notes and deliveries, and no timeline line by or
/// naming another steward; the assigned steward only if it is them.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    responses(
        (status = 200, body = IncidentDetail),
        (status = 403, description = "A steward it was neither offered nor assigned to", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
) -> Result<Json<IncidentDetail>, ApiError> {
    if user.sees_everything() {
        return Ok(Json(scope::incident(&state, &user, &id).await?));
    }
    let detail = load(&state, &id).await?;
    let theirs = user.own_steward().filter(|me| {
        detail.incident.steward_id.as_ref() == Some(*me)
            || detail.offers.iter().any(|o| &o.steward_id == *me)
    });
    match theirs {
        // Least privilege: no other steward's name, answer or distance.
        Some(me) => Ok(Json(detail.as_seen_by(me))),
        None => Err(ApiError::Forbidden(
            "a steward sees only incidents offered or assigned to them".into(),
        )),
    }
}

/// Closes an open incident as cancelled (supervisors).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/cancel", tag = "incidents", security(("bearer" = [])),
    params(("id" = IncidentId, Path, description = "Incident id")),
    request_body = CancelRequest,
    responses(
        (status = 200, description = "The cancelled incident", body = Incident),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`not_open`: already resolved or cancelled", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, incident = %id))]
pub async fn cancel(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
    ApiJson(body): ApiJson<CancelRequest>,
) -> Result<Json<Incident>, ApiError> {
    let reason = validate::required("reason", body.reason)?;
    let current = scope::incident(&state, &user, &id).await?.incident;
    let not_open = |status: &dyn std::fmt::Display| {
        ApiError::conflict(
            "not_open",
            format!("incident {id} is {status}, no longer open"),
        )
    };
    if !current.status.is_open() {
        return Err(not_open(&current.status));
    }
    let done = state
        .store
        .cancel(
            &id,
            &Actor::User(user.username.clone()),
            &reason,
            state.clock.now(),
            &state.rules,
        )
        .await
        .map_err(|e| match e {
            // Closed between our read and the store's transaction.
            StoreError::Conflict { .. } => not_open(&"closed"),
            e => e.into(),
        })?;
    // Its stewards are free again.
    after_commit(&state.hub, &state.engine, Changed::committed(done.changed));
    tracing::info!("incident cancelled");
    Ok(Json(done.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentKind, IncidentState, Priority};

    #[test]
    fn incident_queries() {
        let q = IncidentQuery {
            status: Some("dispatching,acknowledged".into()),
            priority: Some("critical".into()),
            kind: Some("door.night".into()),
            since: Some("2025-01-01T00:00:00Z".into()),
            limit: Some("10".into()),
            ..Default::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(
            f.status,
            vec![IncidentState::Dispatching, IncidentState::Acknowledged]
        );
        assert_eq!(f.priority, Some(Priority::Critical));
        assert_eq!(f.kind, Some(IncidentKind::DoorAtNight));
        assert_eq!(f.limit, 10);
        assert!(f.steward_id.is_none());

        for (name, q) in [
            (
                "status",
                IncidentQuery {
                    status: Some("nope".into()),
                    ..Default::default()
                },
            ),
            (
                "since",
                IncidentQuery {
                    since: Some("yesterday".into()),
                    ..Default::default()
                },
            ),
            (
                "priority",
                IncidentQuery {
                    priority: Some("high".into()),
                    ..Default::default()
                },
            ),
            (
                "kind",
                IncidentQuery {
                    kind: Some("flood".into()),
                    ..Default::default()
                },
            ),
            (
                "elder_id",
                IncidentQuery {
                    elder_id: Some("a/b".into()),
                    ..Default::default()
                },
            ),
            (
                "limit",
                IncidentQuery {
                    limit: Some("lots".into()),
                    ..Default::default()
                },
            ),
        ] {
            let e = q.filter().unwrap_err();
            assert!(
                matches!(
                    e,
                    ApiError::BadRequest {
                        code: "invalid_query",
                        ..
                    }
                ),
                "{name}"
            );
            assert!(e.to_string().contains(name), "{name}: {e}");
        }
    }
}
