//! Operations: liveness, readiness, metrics and the OpenAPI document. No
//! login: load balancers, orchestrators and Prometheus call these.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::AppState;
use super::error::ErrorDetail;
use super::openapi::ApiDoc;
use super::routes::Routes;

/// The Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A store that does not answer in this long counts as down.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Routes {
    Routes::new()
        .get("/healthz", healthz)
        .get("/readyz", readyz)
        .get("/metrics", metrics)
        .get("/api/openapi.json", openapi)
}

/// The operations routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Running", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// `ok` or what is wrong with the store.
    pub store: String,
    /// `ok` or `disconnected`.
    pub broker: String,
    /// `acting` while this instance takes dispatch turns, fires deadlines
    /// and sends; otherwise why it stepped back (the store silent, or off
    /// the broker while another instance is on it).
    pub dispatch: String,
    /// Other instances the database saw in the last few seconds.
    pub peers_alive: u32,
    /// Present when not ready, in the shape of every error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Readiness: 200 when the store answers, the broker is connected and
/// this instance acts, else 503 naming what is not.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "The store or the broker is not connected, or this instance stepped back", body = Readiness),
    ))]
#[tracing::instrument(skip_all)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = match tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "store not ready");
            "unavailable".to_owned()
        }
        Err(_) => "timed out".to_owned(),
    };
    let broker = if state.broker_connected.load(Ordering::Relaxed) {
        "ok"
    } else {
        "disconnected"
    };
    let mut down = Vec::new();
    if store != "ok" {
        down.push(format!("store {store}"));
    }
    if broker != "ok" {
        down.push(format!("broker {broker}"));
    }
    let standing = state.fence.standing();
    if standing != crate::fence::Standing::Acting {
        down.push(standing.as_str().to_owned());
    }
    let ready = down.is_empty();
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        store,
        broker: broker.to_owned(),
        dispatch: standing.as_str().to_owned(),
        peers_alive: state.fence.peers().alive,
        error: (!ready).then(|| ErrorDetail {
            code: "not_ready".into(),
            message: down.join("; "),
        }),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Counters and gauges in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render();
    // Several instances should agree on this; one that differs for long
    // is not hearing the others (see dispatcher_change_feed_connected).
    crate::metrics::write_gauge(
        &mut text,
        "dispatcher_matcher_available_stewards",
        "Stewards this instance's matcher holds as on duty, available and located.",
        state.engine.matcher().available() as i64,
    );
    // Where this instance stands now, as /readyz says it.
    crate::metrics::write_gauge(
        &mut text,
        "dispatcher_acting",
        "1 while this instance takes dispatch turns, fires deadlines and sends; 0 while it steps back (the store silent, or off the broker while another instance is on it).",
        i64::from(state.fence.may_act()),
    );
    crate::metrics::write_gauge(
        &mut text,
        "dispatcher_peers_alive",
        "Other instances whose heartbeat the database saw in the last 3 s (PostgreSQL; 0 on SQLite).",
        i64::from(state.fence.peers().alive),
    );
    ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

/// This API, as OpenAPI 3.1.
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub async fn openapi() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    });
    ([(CONTENT_TYPE, "application/json")], doc.as_str()).into_response()
}
