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
use crate::credentials::DeviceLinks;
use crate::dynsec::Dynsec;
use crate::ingest::{Ingest, IngestDeps};
use crate::metrics::Metrics;
use crate::mqtt::BrokerUrl;
use crate::notify::hub::HubTask;
use crate::notify::outbox::{self, MqttCommands, Outbox, OutboxDeps};
use crate::rules::RuleBook;
use crate::settings::Settings;
use crate::sim::SimTarget;
use crate::store;
use crate::timers::{self, TimerDeps};

/// A dispatcher ready to run.
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    /// Where devices connect.
    broker: BrokerUrl,
    /// Where ingest connects: the same, or the embedded broker's internal
    /// port.
    ingest_broker: BrokerUrl,
    /// Stops the embedded broker's listeners and device connections.
    embedded_stop: Option<CancellationToken>,
    /// The embedded broker's: told of what ingest stored.
    receipts: Option<Arc<dyn crate::ingest::StoredReceipts>>,
    state: AppState,
    /// The admin password when this start created the account with a
    /// random one: printed once.
    pub generated_admin_password: Option<String>,
    /// This process's heartbeat id ([`crate::fence::instance_id`]).
    instance: String,
}

impl Application {
    /// Opens the store (applying migrations), makes sure an admin exists,
    /// starts the embedded broker unless an external one is set, and binds
    /// the HTTP port.
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let mut settings = settings;
        let instance = crate::fence::instance_id(&settings.mqtt.client_id);
        let store = store::connect_as(&settings.database.url, &instance)
            .await
            .with_context(|| {
                format!(
                    "ELDERCARE_DATABASE_URL {}: cannot open the database; check that it runs and the URL is right",
                    redact(&settings.database.url)
                )
            })?;
        let generated_admin_password = api::bootstrap_admin(store.as_ref(), &settings).await?;

        let metrics = Arc::new(Metrics::default());
        let device_links = Arc::new(DeviceLinks::default());
        let (broker, ingest_broker, embedded_stop, receipts) = match &settings.mqtt.url {
            Some(url) => {
                let url = BrokerUrl::parse(url)
                    .map_err(|e| anyhow::anyhow!("ELDERCARE_MQTT_URL: {e}"))?;
                if url.tls {
                    // A CA file that cannot be read fails the start, not
                    // every connection attempt after it.
                    crate::mqtt::tls_client_config(settings.mqtt.ca_file.as_deref())?;
                }
                (url.clone(), url, None, None)
            }
            None => {
                let embedded =
                    embedded_broker(&mut settings, &store, &metrics, &device_links).await?;
                (
                    embedded.public,
                    embedded.internal,
                    embedded.stop,
                    embedded.receipts,
                )
            }
        };
        let settings = Arc::new(settings);

        let listener = TcpListener::bind(settings.http.addr).await.map_err(|e| {
            anyhow::anyhow!(
                "ELDERCARE_HTTP_ADDR {}: cannot listen ({e}); stop whatever uses it or choose another address",
                settings.http.addr
            )
        })?;
        let http_addr = listener.local_addr()?;

        let rules = Arc::new(
            RuleBook::new(settings.rules.clone())
                .with_dispatch(settings.dispatch.clone(), settings.notify.clone())
                .with_follow_ups(settings.follow_ups.clone())
                .with_duty(settings.device_duty.clone()),
        );
        let mut state = AppState::new(
            store,
            settings,
            clock,
            metrics,
            rules,
            Arc::new(AtomicBool::new(false)),
        );
        state.device_links = device_links;
        state.dynsec = dynsec_accounts(&state.settings, &broker)?;
        if let Some(dynsec) = &state.dynsec {
            tokio::spawn(reconcile_accounts(state.store.clone(), dynsec.clone()));
        }
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
            ingest_broker,
            embedded_stop,
            receipts,
            state,
            generated_admin_password,
            instance,
        })
    }

    /// Where the HTTP API listens (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The broker devices connect to.
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
            ingest_broker: broker,
            embedded_stop,
            receipts,
            state,
            instance,
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
            receipts,
        };
        let ingest = Ingest::start(ingest_deps)?;
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
            fence: state.fence.clone(),
        };
        timers::reload(&timer_deps).await;

        let stop_timers = CancellationToken::new();
        let engine = state
            .engine_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("the dispatch engine was already started"))?;
        // On a shared PostgreSQL every instance hears every change as it
        // commits: the engine needs no periodic rebuild.
        let feed = state.store.changes();
        let engine = match feed {
            Some(_) => engine.told_of_changes(),
            None => engine,
        };
        let tick = Duration::from_millis(state.settings.ingest.tick_ms);
        let mut timer_tasks = Vec::new();
        // Several instances share PostgreSQL: each acts only while it
        // hears the store, and steps back when the others can do better.
        // Watched before any worker starts, so none acts unfenced. A
        // SQLite site has one instance; stepping back would help nobody.
        if feed.is_some() {
            state.fence.watch();
            timer_tasks.push(tokio::spawn(crate::fence::heartbeat_loop(
                state.fence.clone(),
                state.store.clone(),
                instance,
                stop_timers.clone(),
            )));
        }
        timer_tasks.extend([
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
            tokio::spawn(crate::care::care_loop(
                crate::care::CareDeps {
                    settings: state.settings.clone(),
                    store: state.store.clone(),
                    rules: state.rules.clone(),
                    metrics: state.metrics.clone(),
                    clock: state.clock.clone(),
                    engine: state.engine.clone(),
                    hub: state.hub.clone(),
                    fence: state.fence.clone(),
                },
                stop_timers.clone(),
            )),
            tokio::spawn(api::auth::sweep_expired(
                state.store.clone(),
                state.clock.clone(),
                stop_timers.clone(),
            )),
            tokio::spawn(crate::retention::run(
                crate::retention::RetentionDeps {
                    settings: state.settings.retention.clone(),
                    store: state.store.clone(),
                    metrics: state.metrics.clone(),
                    clock: state.clock.clone(),
                },
                stop_timers.clone(),
            )),
        ]);
        if let Some(feed) = feed {
            timer_tasks.push(tokio::spawn(crate::peers::follow(
                feed,
                state.engine.clone(),
                state.hub.clone(),
                state.metrics.clone(),
                stop_timers.clone(),
            )));
        }

        let (hub_task, outbox) = start_notify(&state, &ingest);

        let stop_http = CancellationToken::new();
        let http = {
            let stop = stop_http.clone();
            let app = api::router(state.clone(), crate::web::router());
            let (limits, how) = crate::http_server::Limits::from_settings(&state.settings.http);
            tracing::info!(
                max_connections = limits.max_connections,
                header_timeout_s = limits.header_timeout.as_secs(),
                idle_timeout_s = limits.idle_timeout.as_secs(),
                "HTTP connection cap: {how}"
            );
            tokio::spawn(crate::http_server::serve(listener, app, limits, stop))
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
        // Devices of the embedded broker last: until ingest is done they
        // may still send what it must hear.
        if let Some(stop) = embedded_stop {
            stop.cancel();
        }
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

/// The external Mosquitto's device accounts, when `mqtt.dynsec` is set;
/// without it an external broker checks nobody's secret, which the
/// operator is told.
fn dynsec_accounts(settings: &Settings, broker: &BrokerUrl) -> anyhow::Result<Option<Arc<Dynsec>>> {
    if settings.mqtt.url.is_none() {
        return Ok(None);
    }
    let Some(login) = &settings.mqtt.dynsec else {
        tracing::warn!(
            "mqtt.dynsec is not set: the external broker is not told of device secrets, so it must \
             check devices itself; config/mosquitto.conf and config/mosquitto-setup.sh set up one that does"
        );
        return Ok(None);
    };
    Ok(Some(Arc::new(Dynsec::new(
        login,
        broker,
        settings.mqtt.ca_file.as_deref(),
        protocol::Topics::new(settings.mqtt.topic_root.clone()),
    )?)))
}

/// Brings the broker's device accounts in line with the registry, trying
/// again while the broker is away.
async fn reconcile_accounts(store: Arc<dyn store::Store>, dynsec: Arc<Dynsec>) {
    let mut wait = Duration::from_secs(1);
    loop {
        let registered = match store.devices().await {
            Ok(devices) => devices.into_iter().map(|d| d.id).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?wait, "cannot list devices to check the broker's accounts");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
                continue;
            }
        };
        match dynsec.reconcile(&registered).await {
            Ok(missing) => {
                for device in &missing {
                    tracing::warn!(
                        device = %device,
                        "the broker has no account for this registered device, so it cannot connect: \
                         rotate its secret (POST /api/v1/devices/{{id}}/secret) and give the device the new one"
                    );
                }
                tracing::info!(
                    devices = registered.len(),
                    without_account = missing.len(),
                    "broker accounts checked"
                );
                return;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?wait, "cannot check the broker's device accounts yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot check the broker's device accounts");
                return;
            }
        }
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
            store: state.store.clone(),
            settings: state.settings.clone(),
            clock: state.clock.clone(),
            commands: Arc::new(commands),
            reach: state.reach.clone(),
            wake: state.hub.outbox_wakeup(),
            http: outbox::http_client(),
            fence: state.fence.clone(),
        },
        OUTBOX_GRACE,
    );
    (hub_task, outbox)
}

/// The embedded broker's addresses: where devices connect, and where
/// ingest does.
struct Embedded {
    public: BrokerUrl,
    internal: BrokerUrl,
    stop: Option<CancellationToken>,
    receipts: Option<Arc<dyn crate::ingest::StoredReceipts>>,
}

/// Starts the embedded broker and gives ingest its credential there.
#[cfg(feature = "embedded-broker")]
async fn embedded_broker(
    settings: &mut Settings,
    store: &Arc<dyn crate::store::Store>,
    metrics: &Arc<Metrics>,
    links: &Arc<DeviceLinks>,
) -> anyhow::Result<Embedded> {
    let deps = crate::broker::BrokerDeps {
        store: store.clone(),
        links: links.clone(),
        metrics: metrics.clone(),
        topic_root: settings.mqtt.topic_root.clone(),
        dispatcher_id: settings.mqtt.client_id.clone(),
    };
    let broker =
        crate::broker::start(settings.mqtt.embedded_addr, &settings.embedded_broker, deps).await?;
    match broker.tls_addr {
        Some(tls) => {
            tracing::info!(addr = %broker.addr, %tls, "embedded MQTT broker listening (and over TLS)")
        }
        None => tracing::info!(addr = %broker.addr, "embedded MQTT broker listening"),
    }
    settings.mqtt.username = Some(broker.dispatcher_username.clone());
    settings.mqtt.password = Some(broker.dispatcher_password.clone());
    Ok(Embedded {
        public: BrokerUrl::plain(broker.addr.ip().to_string(), broker.addr.port()),
        internal: BrokerUrl::plain(broker.internal.ip().to_string(), broker.internal.port()),
        stop: Some(broker.stop),
        receipts: Some(broker.receipts),
    })
}

#[cfg(not(feature = "embedded-broker"))]
async fn embedded_broker(
    _settings: &mut Settings,
    _store: &Arc<dyn crate::store::Store>,
    _metrics: &Arc<Metrics>,
    _links: &Arc<DeviceLinks>,
) -> anyhow::Result<Embedded> {
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
