//! `/api/v1/areas`: where each grid belongs (community, district), for
//! sites larger than one community. Supervisors read the areas of their
//! scope; admins set and remove them. A supervisor's scope names a
//! community or a district of these ([`super::users`]), and covers their
//! grids ([`super::scope`]).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{Admin, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::routes::Routes;
use super::{ApiError, AppState, validate};
use crate::domain::Area;
use crate::domain::area::MAX_AREA_NAME;
use crate::store::StoreError;

/// The most areas one `PUT` sets.
pub const MAX_AREAS: usize = 10_000;

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/areas", list)
        .put("/api/v1/areas", put)
        .delete("/api/v1/areas/{grid}", remove)
}

/// The areas routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// One grid's place, as an admin sends it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaInput {
    /// The grid as elders and stewards name it.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub grid: String,
    /// The community it belongs to (what a `community:<name>` scope
    /// names); no `:`.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000:]*[^\\u0000:\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000:]*$"
    )]
    pub community: String,
    /// The district it belongs to; empty (or left out) when the site has
    /// none; no `:`.
    #[serde(default)]
    #[schema(max_length = 100, pattern = "^[^\\u0000:]*$")]
    pub district: String,
}

impl AreaInput {
    fn validate(self, at: usize) -> Result<Area, ApiError> {
        let field = |name: &str| format!("[{at}].{name}");
        let name = |f: &str, v: String, required: bool| -> Result<String, ApiError> {
            let v = if required {
                validate::required(&field(f), v)?
            } else {
                validate::optional(&field(f), v)?
            };
            if v.chars().count() > MAX_AREA_NAME {
                return Err(ApiError::invalid_body(
                    &field(f),
                    format!("must be at most {MAX_AREA_NAME} characters"),
                ));
            }
            if f != "grid" && v.contains(':') {
                return Err(ApiError::invalid_body(&field(f), "must not contain ':'"));
            }
            Ok(v)
        };
        Ok(Area {
            grid: name("grid", self.grid, true)?,
            community: name("community", self.community, true)?,
            district: name("district", self.district, false)?,
        })
    }
}

/// The grids with a place: a supervisor's scope's only, a whole-site
/// supervisor's or an admin's all; by district, community and grid.
#[utoipa::path(get, path = "/api/v1/areas", tag = "areas", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Area>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
) -> Result<Json<Vec<Area>>, ApiError> {
    let mut areas = state.store.areas().await?;
    areas.retain(|a| user.view.sees_grid(&a.grid));
    Ok(Json(areas))
}

/// Sets where each listed grid belongs (a grid listed twice: the last
/// wins); grids not listed keep theirs. Answers with every area.
#[utoipa::path(put, path = "/api/v1/areas", tag = "areas", security(("bearer" = [])),
    request_body(content = Vec<AreaInput>, description = "At most 10,000 areas"),
    responses(
        (status = 200, description = "Every area after the change", body = Vec<Area>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 422, description = "A grid or community missing or too long, a ':' in a name, too many areas", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, areas = body.len()))]
pub async fn put(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Vec<AreaInput>>,
) -> Result<Json<Vec<Area>>, ApiError> {
    if body.len() > MAX_AREAS {
        return Err(ApiError::invalid_body(
            "",
            format!("at most {MAX_AREAS} areas at once"),
        ));
    }
    let mut areas: Vec<Area> = Vec::with_capacity(body.len());
    for (at, input) in body.into_iter().enumerate() {
        let area = input.validate(at)?;
        // One row per grid in one statement (PostgreSQL refuses to
        // update a row twice in one upsert): the last one listed wins.
        match areas.iter_mut().find(|a| a.grid == area.grid) {
            Some(earlier) => *earlier = area,
            None => areas.push(area),
        }
    }
    state.store.put_areas(&areas).await?;
    tracing::info!(count = areas.len(), "areas set");
    Ok(Json(state.store.areas().await?))
}

/// Forgets a grid's place: only whole-site supervisors see its elders
/// and stewards from then on.
#[utoipa::path(delete, path = "/api/v1/areas/{grid}", tag = "areas", security(("bearer" = [])),
    params(("grid" = String, Path, description = "The grid")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, grid = ?grid))]
pub async fn remove(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiPath(grid): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    match state.store.remove_area(&grid).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("grid {grid} has no area")));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!("area removed");
    Ok(StatusCode::NO_CONTENT)
}
