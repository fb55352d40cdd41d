//! `/api/v1/events` and `/api/v1/unknown-devices`: what devices said, for
//! supervisors tracing an incident back to its events and finding homes
//! whose devices nobody registered.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Supervisor;
use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::routes::Routes;
use super::{ApiError, AppState, query};
use crate::domain::DeviceId;
use crate::store::{EventFilter, StoredEvent, UnknownDevice};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/events", list)
        .get("/api/v1/unknown-devices", unknown_devices)
}

/// The events routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// Which events; every parameter optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// One device's events only.
    #[param(value_type = Option<crate::domain::DeviceIdSchema>)]
    pub device_id: Option<String>,
    /// Received at or after this RFC 3339 time.
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub since: Option<String>,
    /// At most this many (default 100; more is read as 1000).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Skip this many first (default 0, at most 10,000,000): the next
    /// page starts at this offset plus the rows returned.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 10000000)]
    pub offset: Option<String>,
}

impl EventQuery {
    pub fn filter(&self) -> Result<EventFilter, ApiError> {
        Ok(EventFilter {
            device_id: query::id("device_id", self.device_id.as_deref(), DeviceId::parse)?,
            since: query::time("since", self.since.as_deref())?,
            grids: None,
            limit: query::limit(self.limit.as_deref())?,
            offset: query::offset(self.offset.as_deref())?,
        })
    }
}

/// Stored device events, newest first, each once.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(EventQuery),
    responses(
        (status = 200, body = Vec<StoredEvent>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Vec<StoredEvent>>, ApiError> {
    let mut filter = q.filter()?;
    // A scoped supervisor's: their elders' devices' events only.
    filter.grids = user.view.grid_list();
    Ok(Json(state.store.events(&filter).await?))
}

/// A page of unknown devices; both optional.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnknownDeviceQuery {
    /// At most this many (default 100, at most 1000).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Skip this many first (default 0, at most 10,000,000): the next
    /// page starts at this offset plus the rows returned.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 10000000)]
    pub offset: Option<String>,
}

/// Devices that send well-formed events but are not registered (or not
/// bound to an elder): maybe a real elder nobody registered. The most
/// recently heard first, a page at a time.
#[utoipa::path(get, path = "/api/v1/unknown-devices", tag = "events", security(("bearer" = [])),
    params(UnknownDeviceQuery),
    responses(
        (status = 200, body = Vec<UnknownDevice>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn unknown_devices(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UnknownDeviceQuery>,
) -> Result<Json<Vec<UnknownDevice>>, ApiError> {
    let limit = query::limit(q.limit.as_deref())?;
    let offset = query::offset(q.offset.as_deref())?;
    // No elder, no grid: the whole site's supervisors only.
    if !user.view.is_site() {
        return Ok(Json(Vec::new()));
    }
    Ok(Json(state.store.unknown_devices(limit, offset).await?))
}
