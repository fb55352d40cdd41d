//! Ingest: device messages from the broker into the store, never losing one.
//!
//! The tasks:
//!
//! - the **MQTT loop** ([`mqtt_loop`]) polls the connection, reconnects with
//!   capped backoff and resubscribes, and passes each message to the
//!   **classifier** beside it, which validates it (the `protocol` crate),
//!   feeds heartbeats to the in-memory [`Liveness`] table and hands every
//!   QoS 1 message, in arrival order, to the writer;
//! - the **writer** ([`writer`]), two tasks in a pipeline: the committer
//!   stores events in batches (one transaction each, rules included) while
//!   the next batch gathers, and the acker acknowledges every message in
//!   the order it arrived, once the events up to it are committed. A crash
//!   before the commit loses nothing: the broker redelivers and the store
//!   drops duplicates. The committer's queue is bounded
//!   (`ingest.queue_max`): when it is full the classifier, then the loop,
//!   stop reading and the broker holds the rest;
//! - the **health** task applies devices going offline and coming back.
//!
//! Bad input is acknowledged (so the broker stops redelivering it), logged
//! with its reason and counted; it never stops ingestion.

pub mod batch;
pub mod liveness;
pub mod mqtt_loop;
pub mod ratelimit;
pub mod writer;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use rumqttc::Publish;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::dispatch::EngineHandle;
use crate::metrics::Metrics;
use crate::mqtt::BrokerUrl;
use crate::rules::RuleBook;
use crate::settings::Settings;
use crate::store::{IncomingEvent, IngestWorkerStore};
pub use batch::IngestBatch;
pub use liveness::{HealthChange, Liveness};

/// One message for the writer, in arrival order.
pub(crate) enum Item {
    /// A valid event: store it, then acknowledge.
    Event(Publish, IncomingEvent),
    /// Rejected input or a QoS 1 heartbeat: only acknowledge, in order.
    AckOnly(Publish),
}

/// Told of each message ingest acknowledges to the broker, which it does
/// only once the message is stored or rejected for good: the embedded
/// broker then acknowledges it to the device.
pub trait StoredReceipts: Send + Sync {
    fn acknowledged(&self, topic: &str, payload: &[u8]);
}

/// What ingest needs from the rest of the dispatcher.
#[derive(Clone)]
pub struct IngestDeps {
    pub settings: Arc<Settings>,
    pub broker: BrokerUrl,
    pub store: Arc<dyn IngestWorkerStore>,
    pub rules: Arc<RuleBook>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub liveness: Arc<Liveness>,
    pub broker_connected: Arc<AtomicBool>,
    /// Opened incidents are handed to dispatch at once.
    pub engine: EngineHandle,
    /// Nudged after a commit: wakes the stream hub and the outbox.
    pub hub: Arc<crate::notify::hub::Hub>,
    /// The embedded broker's, when it runs.
    pub receipts: Option<Arc<dyn StoredReceipts>>,
}

/// The running ingest tasks.
pub struct Ingest {
    client: rumqttc::AsyncClient,
    stop_intake: CancellationToken,
    mqtt: JoinHandle<()>,
    committer: JoinHandle<()>,
    acker: JoinHandle<()>,
    health: JoinHandle<()>,
    /// Where the timer loop reports devices that went silent.
    pub health_tx: mpsc::UnboundedSender<HealthChange>,
    /// Connected to the embedded broker.
    embedded: bool,
}

/// A filter nothing publishes to: subscribing to it marks, in the
/// client's queue, the point after the last acknowledgement.
pub(crate) const GOODBYE_BARRIER: &str = "eldercare-dispatcher/goodbye";

impl Ingest {
    /// Connects (in the background: an unreachable broker is retried, not
    /// fatal) and starts the tasks.
    pub fn start(deps: IngestDeps) -> anyhow::Result<Self> {
        let mqtt_settings = &deps.settings.mqtt;
        let mut options = crate::mqtt::dispatcher_options(mqtt_settings, &deps.broker)?;
        // Acks travel through this channel; it must hold a whole inflight
        // window of them and more.
        let capacity = usize::from(mqtt_settings.inflight).max(1000) * 4;
        options.set_request_channel_capacity(capacity);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, capacity);
        eventloop.set_network_options(crate::mqtt::network_options());

        let stop_intake = CancellationToken::new();
        let (event_tx, event_rx) = mpsc::channel(deps.settings.ingest.queue_max);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let (committed_tx, committed_rx) = watch::channel(0);
        let (health_tx, health_rx) = mpsc::unbounded_channel();

        let mqtt = tokio::spawn(mqtt_loop::run(
            deps.clone(),
            client.clone(),
            eventloop,
            writer::Intake::new(event_tx, ack_tx),
            health_tx.clone(),
            stop_intake.clone(),
        ));
        let committer = tokio::spawn(writer::commit_loop(deps.clone(), event_rx, committed_tx));
        let acker = tokio::spawn(writer::ack_loop(
            deps.clone(),
            client.clone(),
            ack_rx,
            committed_rx,
        ));
        let embedded = deps.receipts.is_some();
        let health = tokio::spawn(writer::health(deps, health_rx));
        Ok(Self {
            client,
            stop_intake,
            mqtt,
            committer,
            acker,
            health,
            health_tx,
            embedded,
        })
    }

    /// The client, for publishing commands back to devices.
    pub fn client(&self) -> &rumqttc::AsyncClient {
        &self.client
    }

    /// Stops taking messages, commits and acknowledges what is in flight,
    /// then disconnects, keeping the broker session so nothing sent while
    /// we are away is lost. From the embedded broker, which stops with
    /// us, it only closes the connection: rumqttd takes a DISCONNECT and
    /// then the close as two ends, and logs an ERROR for the second.
    /// The health task goes on while the timers may still report to it:
    /// [`HealthStopping::finish`] once they stopped.
    pub async fn shutdown(self, grace: Duration) -> HealthStopping {
        self.stop_intake.cancel();
        let writer = async {
            let _ = self.committer.await;
            let _ = self.acker.await;
        };
        if tokio::time::timeout(grace, writer).await.is_err() {
            tracing::warn!(
                "ingest writer did not finish within {grace:?}; unacknowledged messages will be redelivered"
            );
        }
        if self.embedded {
            // Queued behind the last acknowledgement: once the broker
            // answers it, it has read them all, and the loop closes the
            // connection.
            let _ = self
                .client
                .try_subscribe(GOODBYE_BARRIER, rumqttc::QoS::AtMostOnce);
        } else {
            let _ = self.client.try_disconnect();
        }
        if tokio::time::timeout(Duration::from_secs(5), self.mqtt)
            .await
            .is_err()
        {
            tracing::warn!("MQTT connection did not close within 5 s");
        }
        drop(self.health_tx);
        HealthStopping(self.health)
    }
}

/// The health task, ending once every sender of health changes is gone.
pub struct HealthStopping(JoinHandle<()>);

impl HealthStopping {
    /// Waits for the changes already sent to be applied. Drop every
    /// `health_tx` (the timers' included) first, or this waits its 5 s.
    pub async fn finish(self) {
        if tokio::time::timeout(Duration::from_secs(5), self.0)
            .await
            .is_err()
        {
            tracing::warn!("device health changes were not all applied within 5 s");
        }
    }
}
