//! The HTTP API (API.md): one router per resource, all sharing [`AppState`].
//!
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/api/openapi.json`.
//! - [`auth`]: login, sessions, the [`auth::AuthUser`] extractor and role
//!   checks, the first admin.
//! - [`elders`], [`devices`], [`stewards`], [`users`]: the registry;
//!   [`areas`]: where each grid belongs (community, district).
//! - [`scope`]: what a supervisor scoped to a community or a district
//!   sees and acts on; every handler asks it.
//! - [`events`]: stored device events and unknown devices.
//! - [`incidents`]: list, read, cancel; [`lifecycle`]: accept, decline,
//!   arrive, resolve, assign; [`follow_ups`]: the follow-up after every
//!   resolved incident of an elder (complete, hand back, reassign).
//! - [`push`]: the phones a steward registered for Web Push, the server's
//!   key, the test alert; [`offer_tokens`]: a notification's buttons and
//!   an SMS's link acting on their offer; [`inbound`]: replies by SMS or
//!   by a key on a call; [`reachability`]: who cannot be reached.
//! - [`stream`]: `GET /api/v1/stream`, Server-Sent Events from the
//!   [`crate::notify::hub::Hub`].
//! - [`reports`]: response times against the targets.
//! - [`duty`]: the devices' test calls due or missed, false-alarm rates
//!   and the rule changes they suggest.
//! - [`sim`]: the device simulator inside the server (demos, tests).
//! - [`config`]: the settings the web pages need.
//!
//! Shared pieces: [`error`] (the one error type and body), [`extract`]
//! (body, path and query extractors that never answer in plain text),
//! [`query`] (query parameters parsed by name), [`patch`] (JSON merge
//! patch), [`validate`], [`routes`] (a router that remembers its routes
//! for the OpenAPI test) and [`openapi`].

pub mod areas;
pub mod auth;
pub mod care;
pub mod config;
pub mod devices;
pub mod duty;
pub mod elders;
pub mod error;
pub mod events;
pub mod extract;
pub mod follow_ups;
pub mod inbound;
pub mod incidents;
pub mod lifecycle;
pub mod login_limits;
pub mod offer_tokens;
pub mod openapi;
pub mod ops;
pub mod patch;
pub mod push;
pub mod query;
pub mod reachability;
pub mod reports;
pub mod routes;
pub mod scope;
pub mod session_ends;
pub mod sim;
pub mod stewards;
pub mod stream;
pub mod users;
pub mod validate;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, Uri};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::clock::Clock;
use crate::dispatch::{Engine, EngineHandle};
use crate::ingest::Liveness;
use crate::metrics::Metrics;
use crate::notify::hub::Hub;
use crate::rules::RuleBook;
use crate::settings::Settings;
use crate::store::Store;

pub use auth::{AuthUser, bootstrap_admin};
pub use error::ApiError;
pub use routes::Routes;

/// The largest request body: an elder with every field filled in is a few
/// KiB; anything near this is a mistake or an attack.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub rules: Arc<RuleBook>,
    /// Set by the MQTT loop while it holds a broker connection; `/readyz`
    /// reports it.
    pub broker_connected: Arc<AtomicBool>,
    /// Whether this instance may take turns, fire deadlines and send
    /// ([`crate::fence`]); `/readyz` reports it.
    pub fence: Arc<crate::fence::Fence>,
    /// Failed-login counts and the password-hashing pool: process-wide
    /// state that login needs and that each test's app must have its own
    /// of (a global would let one test's lockout leak into another).
    pub login_guard: Arc<auth::LoginGuard>,
    /// The in-memory liveness table: registering a device starts its
    /// heartbeat clock at once instead of at the next refresh.
    pub liveness: Arc<Liveness>,
    /// Talks to the dispatch engine: kick an incident, keep the matcher
    /// current.
    pub engine: EngineHandle,
    /// The engine itself, until start-up takes it to run.
    pub engine_task: Arc<std::sync::Mutex<Option<Engine>>>,
    /// The stream hub: SSE connections subscribe to it, and whoever
    /// commits an incident change calls [`Hub::nudge`]. Its reader runs
    /// once [`Hub::start`]ed (`startup` does; tests may).
    pub hub: Arc<Hub>,
    /// The in-server device simulator (`/api/v1/sim`); start-up tells it
    /// where the broker and the API are.
    pub sim: Arc<crate::sim::SimControl>,
    /// Pushes, SMS and calls to stewards; shared with the outbox worker.
    pub reach: Arc<crate::notify::Reach>,
    /// Sessions ending (logout, a user deleted or changed): open streams
    /// listen and close.
    pub session_ends: Arc<session_ends::SessionEnds>,
    /// The devices connected through the embedded broker, so rotating or
    /// revoking a secret closes the connection using the old one.
    pub device_links: Arc<crate::credentials::DeviceLinks>,
    /// An external Mosquitto's device accounts (`mqtt.dynsec`): a secret
    /// issued, rotated or revoked takes effect there first.
    pub dynsec: Option<Arc<crate::dynsec::Dynsec>>,
}

impl AppState {
    /// A state with a fresh [`auth::LoginGuard`].
    pub fn new(
        store: Arc<dyn Store>,
        settings: Arc<Settings>,
        clock: Clock,
        metrics: Arc<Metrics>,
        rules: Arc<RuleBook>,
        broker_connected: Arc<AtomicBool>,
    ) -> Self {
        let liveness = Arc::new(Liveness::new(
            settings.ingest.missed_heartbeats,
            std::time::Duration::from_secs(settings.ingest.heartbeat_write_s.into()),
        ));
        let hub = Arc::new(Hub::new(store.clone()));
        let on_commit = {
            let hub = hub.clone();
            Arc::new(move || hub.nudge())
        };
        let fence = Arc::new(crate::fence::Fence::new(broker_connected.clone()));
        let (engine_task, engine) = Engine::new(
            store.clone(),
            rules.clone(),
            clock.clone(),
            on_commit,
            fence.clone(),
        );
        let reach = Arc::new(crate::notify::Reach::new(
            store.clone(),
            settings.clone(),
            clock.clone(),
            metrics.clone(),
        ));
        Self {
            reach,
            engine,
            engine_task: Arc::new(std::sync::Mutex::new(Some(engine_task))),
            store,
            liveness,
            hub,
            settings,
            clock,
            metrics,
            rules,
            broker_connected,
            fence,
            login_guard: Arc::default(),
            sim: Arc::default(),
            session_ends: Arc::default(),
            device_links: Arc::default(),
            dynsec: None,
        }
    }
}

/// Every route, with its table (for the OpenAPI test).
pub fn routes() -> Routes {
    Routes::new()
        .merge(ops::routes())
        .merge(auth::routes())
        .merge(elders::routes())
        .merge(devices::routes())
        .merge(stewards::routes())
        .merge(users::routes())
        .merge(events::routes())
        .merge(incidents::routes())
        .merge(lifecycle::routes())
        .merge(follow_ups::routes())
        .merge(push::routes())
        .merge(offer_tokens::routes())
        .merge(inbound::routes())
        .merge(reachability::routes())
        .merge(stream::routes())
        .merge(reports::routes())
        .merge(duty::routes())
        .merge(sim::routes())
        .merge(config::routes())
        .merge(care::routes())
        .merge(areas::routes())
}

/// The whole HTTP surface: the API and `pages` (the web app's routes,
/// `crate::web::router()`, which build on the API and so are handed in).
pub fn router(state: AppState, pages: axum::Router<AppState>) -> axum::Router {
    routes()
        .into_router()
        .merge(pages)
        // After the routes: it applies to those already added.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::Internal(
                "the request failed; it was logged".into(),
            ))
        }))
        .layer(
            TraceLayer::new_for_http()
                // Method and path only: a query may hold `access_token`.
                .make_span_with(|req: &Request| {
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                // A failure worth an operator's look is logged where it
                // happens, with its cause (`ApiError`); a 503 from /readyz
                // while the broker connects is an answer, not an ERROR.
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG)),
        )
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}; see /api/openapi.json", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!(
        "{method} is not allowed on {}; see /api/openapi.json",
        uri.path()
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use utoipa::OpenApi;

    use super::openapi::ApiDoc;

    #[test]
    fn every_route_is_in_the_openapi_document_and_back() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let documented: BTreeSet<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| {
                        [
                            "get", "post", "put", "patch", "delete", "head", "options", "trace",
                        ]
                        .contains(&k.as_str())
                    })
                    .map(move |m| (m.to_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = super::routes()
            .table()
            .iter()
            .map(|(m, p)| (m.to_string(), (*p).to_owned()))
            .collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from the document: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
        assert!(routed.len() >= 29, "{}", routed.len());
    }

    #[test]
    fn the_document_declares_bearer_auth() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["Elder"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }
}
