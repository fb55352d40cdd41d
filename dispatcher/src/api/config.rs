//! `/api/v1/config/web`: the settings the web pages need to show what
//! they show (the response-time targets a timer turns red at, the map's
//! tile server). Read-only, for any logged-in user; nothing secret.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthUser;
use super::error::ErrorBody;
use super::routes::Routes;

pub fn routes() -> Routes {
    Routes::new().get("/api/v1/config/web", web)
}

/// Seconds per priority.
#[derive(Debug, Serialize, ToSchema)]
pub struct PerPrioritySeconds {
    pub critical: u32,
    pub urgent: u32,
    pub routine: u32,
    pub technical: u32,
}

/// What the dashboard and the steward app are configured with.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebConfig {
    /// An incident not acknowledged this many seconds after `created_at`
    /// is past its target (the report's target too).
    pub target_ack_s: u32,
    /// …and not on site after this many.
    pub target_arrive_s: u32,
    /// Seconds without acceptance before an incident escalates.
    pub escalate_after_s: PerPrioritySeconds,
    /// Seconds a steward has to accept an offer.
    pub offer_timeout_s: PerPrioritySeconds,
    /// A Leaflet tile URL template, or null: no tiles, positions to scale.
    pub map_tile_url: Option<String>,
}

/// The settings the web pages need.
#[utoipa::path(get, path = "/api/v1/config/web", tag = "ops", security(("bearer" = [])),
    responses(
        (status = 200, body = WebConfig),
        (status = 401, body = ErrorBody),
    ))]
pub async fn web(_user: AuthUser, State(state): State<AppState>) -> Json<WebConfig> {
    let s = &state.settings;
    let per = |p: &crate::settings::PerPriority<u32>| PerPrioritySeconds {
        critical: p.critical,
        urgent: p.urgent,
        routine: p.routine,
        technical: p.technical,
    };
    Json(WebConfig {
        target_ack_s: s.notify.target_ack_s(),
        target_arrive_s: s.notify.target_arrive_s(),
        escalate_after_s: per(&s.dispatch.escalate_after_s),
        offer_timeout_s: per(&s.dispatch.offer_timeout_s),
        map_tile_url: s.http.map_tile_url.clone(),
    })
}
