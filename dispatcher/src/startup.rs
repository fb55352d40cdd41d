//! Builds the dispatcher from its settings and runs it until shutdown.
//!
//! [`Application::build`] does everything that can fail for a reason an
//! operator must fix (the database, the ports, the broker address) and
//! fails with one line naming the setting; [`Application::run_until`] then
//! runs ingest, the timers, the stream hub, the outbox and the HTTP API,
//! and on shutdown stops taking messages, finishes what is in flight,
//! flushes heartbeats and returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::clock::Clock;
use crate::hub::HubTask;
use crate::ingest::{Ingest, IngestDeps};
use crate::metrics::Metrics;
use crate::mqtt::BrokerUrl;
use crate::outbox::{self, MqttCommands, Outbox, OutboxDeps};
use crate::rules::RuleBook;
use crate::settings::Settings;
use crate::sim::SimTarget;
use crate::store;
use crate::timers::{self, TimerDeps};

/// A dispatcher ready to run.
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    broker: BrokerUrl,
    state: AppState,
    /// The admin password when this start created the account with a
    /// random one: printed once.
    pub generated_admin_password: Option<String>,
}

impl Application {
    /// Opens the store (applying migrations), makes sure an admin exists,
    /// starts the embedded broker unless an external one is set, and binds
    /// the HTTP port.
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let store = store::connect(&settings.database.url)
            .await
            .with_context(|| {
                format!(
                    "ELDERCARE_DATABASE_URL {}: cannot open the database; check that it runs and the URL is right",
                    redact(&settings.database.url)
                )
            })?;
        let generated_admin_password = api::bootstrap_admin(store.as_ref(), &settings).await?;

        let broker = match &settings.mqtt.url {
            Some(url) => {
                BrokerUrl::parse(url).map_err(|e| anyhow::anyhow!("ELDERCARE_MQTT_URL: {e}"))?
            }
            None => embedded_broker(settings.mqtt.embedded_addr)?,
        };

        let listener = TcpListener::bind(settings.http.addr).await.map_err(|e| {
            anyhow::anyhow!(
                "ELDERCARE_HTTP_ADDR {}: cannot listen ({e}); stop whatever uses it or choose another address",
                settings.http.addr
            )
        })?;
        let http_addr = listener.local_addr()?;

        let rules = Arc::new(
            RuleBook::new(settings.rules.clone())
                .with_dispatch(settings.dispatch.clone(), settings.notify.clone()),
        );
        let state = AppState::new(
            store,
            settings,
            clock,
            Arc::new(Metrics::default()),
            rules,
            Arc::new(AtomicBool::new(false)),
        );
        state.sim.set_target(sim_target(&state, &broker, http_addr));
        let public_site = state.settings.http.public_url.is_some();
        for warning in state
            .settings
            .notify
            .warnings(&state.settings.dispatch, public_site)
        {
            tracing::warn!("{warning}");
        }
        // Made at the first start and kept: every push is signed with it,
        // and phones subscribed with its public half.
        state
            .reach
            .keys()
            .await
            .context("reading or making the server's push and token keys in the database")?;
        Ok(Self {
            listener,
            http_addr,
            broker,
            state,
            generated_admin_password,
        })
    }

    /// Where the HTTP API listens (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The broker ingest connects to.
    pub fn broker(&self) -> &BrokerUrl {
        &self.broker
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until `shutdown` completes, then stops gracefully.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            broker,
            state,
            ..
        } = self;
        let liveness = state.liveness.clone();
        // Before connecting: a backlog kept by the broker arrives at once.
        let warming = std::time::Instant::now();
        match state.store.warm_registry().await {
            Ok(devices) => tracing::info!(
                devices,
                took_ms = warming.elapsed().as_millis() as u64,
                "registry read ahead for ingest"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the registry ahead; ingest reads it as events need it")
            }
        }
        let listening_since = state.clock.now();
        let ingest_deps = IngestDeps {
            settings: state.settings.clone(),
            broker,
            store: state.store.clone(),
            rules: state.rules.clone(),
            metrics: state.metrics.clone(),
            clock: state.clock.clone(),
            liveness: liveness.clone(),
            broker_connected: state.broker_connected.clone(),
            engine: state.engine.clone(),
            hub: state.hub.clone(),
        };
        let ingest = Ingest::start(ingest_deps);
        let timer_deps = TimerDeps {
            settings: state.settings.clone(),
            store: state.store.clone(),
            rules: state.rules.clone(),
            metrics: state.metrics.clone(),
            clock: state.clock.clone(),
            liveness: liveness.clone(),
            health_tx: ingest.health_tx.clone(),
            listening_since,
            engine: state.engine.clone(),
            hub: state.hub.clone(),
        };
        timers::reload(&timer_deps).await;

        let stop_timers = CancellationToken::new();
        let engine = state
            .engine_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("the dispatch engine was already started"))?;
        let tick = Duration::from_millis(state.settings.ingest.tick_ms);
        let timer_tasks = [
            tokio::spawn(engine.run(tick, stop_timers.clone())),
            tokio::spawn(timers::deadline_loop(
                timer_deps.clone(),
                stop_timers.clone(),
            )),
            tokio::spawn(timers::liveness_loop(
                timer_deps.clone(),
                stop_timers.clone(),
            )),
            tokio::spawn(timers::flush_loop(timer_deps.clone(), stop_timers.clone())),
        ];

        let (hub_task, outbox) = start_notify(&state, &ingest);

        let stop_http = CancellationToken::new();
        let http = {
            let stop = stop_http.clone();
            let app = api::router(state.clone());
            tokio::spawn(async move {
                // Offers travel as small SSE writes: Nagle would hold them back.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            })
        };

        shutdown.await;
        tracing::info!("shutting down: no new messages; finishing what is in flight");
        // The simulator first, while the broker and the store still run:
        // its devices say goodbye (no last wills) and its logins go.
        {
            let mut slot = state.sim.lock().await;
            let logins = crate::sim::SimControl::stop_in(&mut slot, state.clock.now()).await;
            crate::sim::remove_logins(state.store.as_ref(), &logins).await;
        }
        stop_http.cancel();
        // SSE connections never end by themselves: close them so the
        // HTTP server can finish.
        state.hub.close();
        // Before ingest: device commands need its MQTT client.
        outbox.shutdown().await;
        let health = ingest.shutdown(Duration::from_secs(20)).await;
        stop_timers.cancel();
        for task in timer_tasks {
            let _ = task.await;
        }
        // The last sender of health changes: the health task can end.
        drop(timer_deps);
        health.finish().await;
        hub_task.stop().await;
        match tokio::time::timeout(Duration::from_secs(10), http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
            Err(_) => tracing::warn!("open HTTP connections did not close within 10 s"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Where the in-server simulator connects: this server's broker and API,
/// over loopback when they listen on every interface.
fn sim_target(state: &AppState, broker: &BrokerUrl, http_addr: SocketAddr) -> SimTarget {
    let mut http = http_addr;
    if http.ip().is_unspecified() {
        http.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let broker_host = match broker.host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        _ => broker.host.clone(),
    };
    SimTarget {
        broker_host,
        broker_port: broker.port,
        topic_root: state.settings.mqtt.topic_root.clone(),
        http_base: format!("http://{http}"),
    }
}

/// Deliveries in flight get this long to finish on shutdown.
const OUTBOX_GRACE: Duration = Duration::from_secs(10);

/// Starts the stream hub's reader and the outbox worker (which publishes
/// device commands through ingest's MQTT client).
fn start_notify(state: &AppState, ingest: &Ingest) -> (HubTask, Outbox) {
    let hub_task = state.hub.start(state.clock.clone());
    let commands = MqttCommands {
        client: ingest.client().clone(),
        topics: protocol::Topics::new(state.settings.mqtt.topic_root.clone()),
        connected: state.broker_connected.clone(),
    };
    let outbox = Outbox::start(
        OutboxDeps {
            store: state.hub.store().clone(),
            settings: state.settings.clone(),
            clock: state.clock.clone(),
            commands: Arc::new(commands),
            reach: state.reach.clone(),
            wake: state.hub.outbox_wakeup(),
            http: outbox::http_client(),
        },
        OUTBOX_GRACE,
    );
    (hub_task, outbox)
}

#[cfg(feature = "embedded-broker")]
fn embedded_broker(addr: SocketAddr) -> anyhow::Result<BrokerUrl> {
    let broker = crate::broker::start(addr)?;
    tracing::info!(addr = %broker.addr, "embedded MQTT broker listening");
    Ok(BrokerUrl {
        host: broker.addr.ip().to_string(),
        port: broker.addr.port(),
    })
}

#[cfg(not(feature = "embedded-broker"))]
fn embedded_broker(_addr: SocketAddr) -> anyhow::Result<BrokerUrl> {
    anyhow::bail!(
        "ELDERCARE_MQTT_URL is unset and this build has no embedded broker; set ELDERCARE_MQTT_URL=mqtt://host:1883"
    )
}

/// A database URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
