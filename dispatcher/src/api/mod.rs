//! The HTTP API (API.md): one router per resource, all sharing [`AppState`].

pub mod error;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::rules::RuleBook;
use crate::settings::Settings;
use crate::store::Store;

pub use error::ApiError;

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
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new().with_state(state)
}
