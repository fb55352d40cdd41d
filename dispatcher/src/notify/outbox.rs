//! The outbox worker: delivers the notifications every incident change
//! wrote into the `outbox` table in the same transaction
//! (ARCHITECTURE.md rule 2), so none is lost to a crash and each can be
//! retried.
//!
//! Every tick (`ingest.tick_ms`) and whenever nudged ([`crate::notify::hub::Hub::nudge`])
//! the worker claims due rows for [`LEASE`] (`claim_outbox`: on PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, so several instances share the work and a dead
//! one's rows come due again when its lease ends), delivers each and
//! records the outcome (`finish_outbox`). Delivery is at least once: a
//! receiver deduplicates on `X-Eldercare-Delivery`.
//!
//! - **Webhooks** ([`Channel::Webhook`], target = a configured
//!   [`WebhookTarget`]'s name): `POST` of the payload as JSON with
//!   `Content-Type: application/json`, `X-Eldercare-Event`,
//!   `X-Eldercare-Delivery` (the outbox row id) and
//!   `X-Eldercare-Signature: sha256=<hex HMAC-SHA256 of the exact body
//!   bytes, keyed with the target's secret>` ([`signature`]); timeout
//!   [`WEBHOOK_TIMEOUT`], no redirects. A 2xx is delivered; anything else
//!   is retried after [`backoff`] (2 s, 4 s, 8 s … capped at 5 min; a
//!   `Retry-After` within the cap is honoured) until the target's
//!   `max_attempts`, then failed. A target no longer in the settings
//!   fails at once. Up to [`WEBHOOKS_AT_ONCE`] deliveries run
//!   concurrently, and the worker claims more while they run, so one slow
//!   receiver does not hold up the others.
//! - **Device commands** ([`Channel::Device`], target = the device id):
//!   the payload JSON published QoS 1 on `Topics::commands(device)`
//!   through the dispatcher's MQTT client, in claim order (a lamp must not
//!   show "received" after "acknowledged"). While the broker connection
//!   is down, or the client refuses the request, the command is retried
//!   with a shorter cap ([`DEVICE_BACKOFF_CAP_S`]); after
//!   [`DEVICE_MAX_ATTEMPTS`] it is failed: feedback that old would mislead
//!   the elder more than help.
//!
//! Shutdown stops claiming and lets deliveries in flight finish, for a
//! bounded grace; what does not finish is retried when its lease ends, and
//! what had not begun is given back at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use protocol::{DeviceId, Topics};
use sha2::Sha256;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Worker};
use crate::settings::{Settings, WebhookTarget};
use crate::store::dispatch::{Channel, DeliveryOutcome, OutboxItem};
use crate::store::outbox::OutboxStore;
use crate::untrusted;

/// How long a claimed row is ours before another instance may take it:
/// well above [`WEBHOOK_TIMEOUT`].
pub const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// One webhook request, connection included, at most this long.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook deliveries in flight at once.
pub const WEBHOOKS_AT_ONCE: usize = 16;
/// The first retry waits this long; each further one twice as long…
pub const BACKOFF_BASE_S: i64 = 2;
/// …up to this.
pub const BACKOFF_CAP_S: i64 = 300;
/// Device commands retry at most this far apart: the link comes back
/// soon and the elder is waiting for the lamp.
pub const DEVICE_BACKOFF_CAP_S: i64 = 30;
/// Device command attempts before it is failed (about 20 minutes).
pub const DEVICE_MAX_ATTEMPTS: i32 = 45;
/// Publishing one command waits at most this long for the MQTT client.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Error texts kept on the row are cut to this many characters.
const MAX_ERROR_CHARS: usize = 300;

/// The `X-Eldercare-Signature` value for `body`: `sha256=<hex>` of
/// HMAC-SHA256 keyed with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The wait before the next try after attempt number `attempt` (1 for the
/// first) failed: `2^attempt` seconds, at most `cap_s`.
pub fn backoff(attempt: i32, cap_s: i64) -> chrono::Duration {
    let exp = attempt.clamp(1, 20) as u32;
    chrono::Duration::seconds(BACKOFF_BASE_S.saturating_pow(exp).min(cap_s))
}

/// What a failed attempt number `attempt` leads to: a retry after
/// [`backoff`] (or `retry_after` when the receiver asked for it, within
/// the cap), or failure once `max_attempts` are spent.
pub fn after_failure(
    attempt: i32,
    max_attempts: i32,
    cap_s: i64,
    retry_after: Option<chrono::Duration>,
    now: DateTime<Utc>,
    error: String,
) -> DeliveryOutcome {
    let error = truncate(error);
    if attempt >= max_attempts.max(1) {
        return DeliveryOutcome::Failed {
            error: format!("gave up after {attempt} attempts: {error}"),
        };
    }
    let wait = retry_after
        .filter(|d| *d > chrono::Duration::zero())
        .map_or_else(
            || backoff(attempt, cap_s),
            |d| d.min(chrono::Duration::seconds(cap_s)),
        );
    DeliveryOutcome::Retry {
        at: now + wait,
        error,
    }
}

fn truncate(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_ERROR_CHARS) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// Sends a command to a device. The MQTT client in production
/// ([`MqttCommands`]); tests record.
#[async_trait]
pub trait CommandSender: Send + Sync {
    /// `Err` when the command could not be handed to the broker
    /// connection: retried later.
    async fn send(&self, device: &DeviceId, payload: Vec<u8>) -> Result<(), String>;
}

/// Device commands through the dispatcher's own MQTT client
/// ([`crate::ingest::Ingest::client`]).
pub struct MqttCommands {
    pub client: rumqttc::AsyncClient,
    pub topics: Topics,
    /// Set by the MQTT loop while connected: a command queued while the
    /// link is down would only be as safe as this process's memory.
    pub connected: Arc<AtomicBool>,
}

#[async_trait]
impl CommandSender for MqttCommands {
    async fn send(&self, device: &DeviceId, payload: Vec<u8>) -> Result<(), String> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err("not connected to the broker".into());
        }
        let topic = self.topics.commands(device);
        match tokio::time::timeout(
            PUBLISH_TIMEOUT,
            self.client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("MQTT client refused the publish: {e}")),
            Err(_) => Err("MQTT client busy: publish not queued within 5 s".into()),
        }
    }
}

/// Sends what reaches a steward about an offer: pushes, SMS, calls
/// ([`crate::notify::Reach`] in production; tests record).
#[async_trait]
pub trait ReachSender: Send + Sync {
    /// One attempt at a push, SMS or call row.
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome;
}

/// What the worker needs.
#[derive(Clone)]
pub struct OutboxDeps {
    pub store: Arc<dyn OutboxStore>,
    /// Webhook targets (by name) and the tick.
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub commands: Arc<dyn CommandSender>,
    /// Pushes, SMS and calls to stewards.
    pub reach: Arc<dyn ReachSender>,
    /// Nudged after commits ([`crate::notify::hub::Hub::outbox_wakeup`]).
    pub wake: Arc<Notify>,
    /// One HTTP client (connection pool) for every webhook.
    pub http: reqwest::Client,
    /// Rows are claimed only while this instance acts.
    pub fence: Arc<crate::fence::Fence>,
}

/// A response's `Retry-After` in seconds, when it gives a number.
pub fn retry_after_s(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The HTTP client webhooks, pushes and gateway messages are sent with.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        // A signed POST is not followed somewhere else.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("eldercare-dispatcher/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

/// The running worker.
pub struct Outbox {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Outbox {
    /// Starts the worker; deliveries in flight finish within `grace` on
    /// shutdown.
    pub fn start(deps: OutboxDeps, grace: Duration) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(deps, stop.clone(), grace));
        Self { stop, task }
    }

    /// Stops claiming and waits for deliveries in flight (bounded by the
    /// grace given to [`Outbox::start`]).
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "outbox worker failed");
        }
    }
}

/// Rows claimed per pass.
const CLAIM_BATCH: i64 = 64;

/// Deliveries of one kind that run beside each other: at most `at_once`
/// at a time, at most `max_tasks` running or waiting. While a pool is
/// full the worker stops claiming its channels, and only those: a slow
/// webhook receiver never holds up a device command or a push, nor a
/// slow push service an SMS.
struct Pool {
    name: &'static str,
    channels: &'static [Channel],
    permits: Arc<Semaphore>,
    tasks: JoinSet<()>,
    max_tasks: usize,
    /// Shutdown: a delivery still waiting for its turn gives its claim
    /// back instead of being abandoned with it.
    stop: CancellationToken,
}

impl Pool {
    fn new(
        name: &'static str,
        channels: &'static [Channel],
        at_once: usize,
        max_tasks: usize,
        stop: &CancellationToken,
    ) -> Self {
        Self {
            name,
            channels,
            permits: Arc::new(Semaphore::new(at_once)),
            tasks: JoinSet::new(),
            max_tasks,
            stop: stop.clone(),
        }
    }

    fn reap(&mut self) {
        while let Some(done) = self.tasks.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error = %e, pool = self.name, "a delivery task failed");
            }
        }
    }

    fn has_room(&self) -> bool {
        self.tasks.len() < self.max_tasks
    }

    fn spawn(&mut self, deps: &OutboxDeps, item: OutboxItem, claimed_at: std::time::Instant) {
        let deps = deps.clone();
        let permits = self.permits.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let permit = tokio::select! {
                biased;
                p = permits.acquire_owned() => p,
                // Shutting down before its turn came: not begun, so given
                // back for whoever claims next (another instance at once,
                // or this one after its restart).
                _ = stop.cancelled() => {
                    give_back(&deps, &item).await;
                    return;
                }
            };
            let Ok(_permit) = permit else {
                return;
            };
            deliver_claimed(&deps, &item, claimed_at).await;
        });
    }
}

/// Sends one claimed row (claimed at `claimed_at`) and records how it
/// went. A row whose claim ran out before it was sent, or whose claim
/// others may have taken over because this instance's heartbeat went
/// silent since (it stalled, its VM was suspended, it was cut off), is
/// not sent: another worker may hold it now.
async fn deliver_claimed(deps: &OutboxDeps, item: &OutboxItem, claimed_at: std::time::Instant) {
    if !item.claim_holds(deps.clock.now()) || !deps.fence.still_holds(claimed_at) {
        tracing::warn!(
            delivery = %item.id,
            "an outbox claim is no longer trusted (this process stalled, or lost the store, since it claimed it); given back unsent"
        );
        give_back(deps, item).await;
        return;
    }
    let outcome = match item.channel {
        Channel::Webhook => deliver_webhook(deps, item).await,
        Channel::Device => deliver_device(deps, item).await,
        Channel::Push | Channel::Sms | Channel::Voice => deps.reach.deliver(item).await,
    };
    finish(deps, item, outcome).await;
}

/// Gives an unsent claim back: claimable at once again, by this instance
/// or another; a claim already taken over is left alone.
async fn give_back(deps: &OutboxDeps, item: &OutboxItem) {
    if let Err(e) = deps.store.release_outbox(item).await {
        tracing::warn!(delivery = %item.id, error = %e, "could not give an outbox claim back; it comes due when its lease ends");
    }
}

/// Webhook deliveries at most running or waiting: with 16 at once and a
/// 10 s timeout, the last waits 40 s, inside its 60 s lease.
const MAX_WEBHOOK_TASKS: usize = 64;
/// Pushes at once: each is one request per phone, to a handful of push
/// services; a slow one holds only its own.
pub const PUSHES_AT_ONCE: usize = 32;
/// With 32 at once and a 10 s timeout, the last waits 20 s: well inside
/// its 60 s lease, so a row is never sent twice for taking too long.
const MAX_PUSH_TASKS: usize = 64;
/// SMS and calls at once.
pub const GATEWAY_AT_ONCE: usize = 8;
const MAX_GATEWAY_TASKS: usize = 32;

/// The worker loop: claim, deliver, record, until `stop`.
pub async fn run(deps: OutboxDeps, stop: CancellationToken, grace: Duration) {
    let mut tick =
        tokio::time::interval(Duration::from_millis(deps.settings.ingest.tick_ms.max(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pools = [
        Pool::new(
            "webhooks",
            &[Channel::Webhook],
            WEBHOOKS_AT_ONCE,
            MAX_WEBHOOK_TASKS,
            &stop,
        ),
        Pool::new(
            "pushes",
            &[Channel::Push],
            PUSHES_AT_ONCE,
            MAX_PUSH_TASKS,
            &stop,
        ),
        Pool::new(
            "gateways",
            &[Channel::Sms, Channel::Voice],
            GATEWAY_AT_ONCE,
            MAX_GATEWAY_TASKS,
            &stop,
        ),
    ];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
            _ = deps.wake.notified() => {}
        }
        if !deps.fence.may_act() {
            continue;
        }
        // Device commands ("help is coming" on the elder's button) are
        // always claimed and sent here, in order; other channels only
        // while their pool has room.
        let mut channels = vec![Channel::Device];
        for pool in &mut pools {
            pool.reap();
            if pool.has_room() {
                channels.extend_from_slice(pool.channels);
            }
        }
        let limit = CLAIM_BATCH;
        let began = deps.clock.now();
        let claimed_at = std::time::Instant::now();
        let inflight: usize = pools.iter().map(|p| p.tasks.len()).sum();
        let items = match deps
            .store
            .claim_outbox_for(began, LEASE, limit, &channels)
            .await
        {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(error = %e, "could not claim outbox rows; retrying next tick");
                continue;
            }
        };
        let claimed = items.len() as i64;
        if claimed == 0 && inflight == 0 {
            // Nothing was due at `began` and nothing is on its way.
            deps.clock.pass_done(Worker::Outbox, began);
        }
        for item in items {
            if item.channel == Channel::Device {
                deliver_claimed(&deps, &item, claimed_at).await;
                continue;
            }
            match pools
                .iter_mut()
                .find(|p| p.channels.contains(&item.channel))
            {
                Some(pool) => pool.spawn(&deps, item, claimed_at),
                None => tracing::error!(
                    channel = item.channel.as_str(),
                    "no pool delivers this channel"
                ),
            }
        }
        if claimed >= limit {
            // More may be due: look again without waiting for the tick.
            deps.wake.notify_one();
        }
    }
    let inflight: usize = pools.iter().map(|p| p.tasks.len()).sum();
    if inflight == 0 {
        return;
    }
    tracing::info!(
        deliveries = inflight,
        "outbox: finishing deliveries in flight"
    );
    let drained = tokio::time::timeout(grace, async {
        for pool in &mut pools {
            while pool.tasks.join_next().await.is_some() {}
        }
    })
    .await;
    if drained.is_err() {
        let left: usize = pools.iter().map(|p| p.tasks.len()).sum();
        tracing::warn!(
            deliveries = left,
            "outbox: deliveries still in flight after {grace:?}; they are retried when their lease ends"
        );
        for pool in &mut pools {
            pool.tasks.abort_all();
        }
    }
}

/// Claims and delivers everything due now, waiting for every delivery:
/// for tests and tools that drive the outbox by hand.
pub async fn deliver_due(deps: &OutboxDeps) -> Result<usize, crate::store::StoreError> {
    let mut total = 0;
    loop {
        let claimed_at = std::time::Instant::now();
        let items = deps
            .store
            .claim_outbox(deps.clock.now(), LEASE, WEBHOOKS_AT_ONCE as i64)
            .await?;
        if items.is_empty() {
            return Ok(total);
        }
        total += items.len();
        let mut others = Pool::new(
            "by hand",
            &[],
            WEBHOOKS_AT_ONCE,
            usize::MAX,
            &CancellationToken::new(),
        );
        for item in items {
            if item.channel == Channel::Device {
                deliver_claimed(deps, &item, claimed_at).await;
            } else {
                others.spawn(deps, item, claimed_at);
            }
        }
        while others.tasks.join_next().await.is_some() {}
    }
}

#[tracing::instrument(skip_all, fields(delivery = %item.id, target = %item.target, event = %item.event))]
async fn finish(deps: &OutboxDeps, item: &OutboxItem, outcome: DeliveryOutcome) {
    match &outcome {
        DeliveryOutcome::Delivered => tracing::debug!("delivered"),
        DeliveryOutcome::Retry { at, error } => {
            // The error may quote a gateway's or a webhook's reply.
            let error = untrusted::text(error);
            tracing::info!(%error, retry_at = %at, attempt = item.attempts + 1, "delivery failed; will retry");
        }
        // A steward's phone that could not be reached shows on the
        // incident, on the board's roster and in `dispatcher_reach_total`;
        // a line per push in the log would only bury the ones an
        // operator must act on. SMS and calls go through a gateway the
        // site pays for: its failures are the operator's to see.
        DeliveryOutcome::Failed { error } if item.channel == Channel::Push => {
            let error = untrusted::text(error);
            tracing::debug!(%error, attempt = item.attempts + 1, "could not reach the steward by push");
        }
        DeliveryOutcome::Failed { error } => {
            let error = untrusted::text(error);
            tracing::warn!(%error, attempt = item.attempts + 1, "delivery failed for good");
        }
        DeliveryOutcome::Cancelled { reason } => tracing::debug!(%reason, "not sent"),
    }
    match deps
        .store
        .finish_outbox(item, &outcome, deps.clock.now())
        .await
    {
        Ok(true) => {}
        // Sent after the lease ran out: at least once, and the other
        // worker's record stands.
        Ok(false) => {
            tracing::warn!("the outbox claim ran out while sending; another worker's record stands")
        }
        // The lease ends and the row is delivered again: at least once.
        Err(e) => {
            tracing::warn!(error = %e, "could not record the delivery outcome; it will be retried")
        }
    }
}

/// One webhook attempt.
#[tracing::instrument(skip_all, fields(delivery = %item.id, target = %item.target, event = %item.event))]
pub async fn deliver_webhook(deps: &OutboxDeps, item: &OutboxItem) -> DeliveryOutcome {
    let attempt = item.attempts + 1;
    let Some(target) = deps
        .settings
        .notify
        .webhooks
        .iter()
        .find(|w| w.name == item.target)
    else {
        return DeliveryOutcome::Failed {
            error: format!(
                "no webhook named {:?} is configured (the settings changed since it was queued)",
                item.target
            ),
        };
    };
    let max_attempts = i32::try_from(target.max_attempts).unwrap_or(i32::MAX);
    let body = match serde_json::to_vec(&item.payload) {
        Ok(b) => b,
        Err(e) => {
            return DeliveryOutcome::Failed {
                error: format!("payload does not serialise: {e}"),
            };
        }
    };
    let fail = |error: String, retry_after| {
        after_failure(
            attempt,
            max_attempts,
            BACKOFF_CAP_S,
            retry_after,
            deps.clock.now(),
            error,
        )
    };
    match post(&deps.http, target, item, body).await {
        Ok(response) if response.status().is_success() => DeliveryOutcome::Delivered,
        Ok(response) => {
            let status = response.status();
            let retry_after = retry_after_s(response.headers())
                .and_then(|s| i64::try_from(s).ok())
                .map(chrono::Duration::seconds);
            let text = response.text().await.unwrap_or_default();
            let text = text.trim();
            let error = if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            };
            fail(error, retry_after)
        }
        // Without the URL: it may carry a token.
        Err(e) => fail(e.without_url().to_string(), None),
    }
}

async fn post(
    http: &reqwest::Client,
    target: &WebhookTarget,
    item: &OutboxItem,
    body: Vec<u8>,
) -> Result<reqwest::Response, reqwest::Error> {
    let sig = signature(target.secret.expose().as_bytes(), &body);
    http.post(&target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Eldercare-Event", &item.event)
        .header("X-Eldercare-Delivery", &item.id)
        .header("X-Eldercare-Signature", sig)
        .body(body)
        .send()
        .await
}

/// One device command attempt.
#[tracing::instrument(skip_all, fields(delivery = %item.id, device = %item.target))]
pub async fn deliver_device(deps: &OutboxDeps, item: &OutboxItem) -> DeliveryOutcome {
    let Ok(device) = DeviceId::parse(item.target.clone()) else {
        return DeliveryOutcome::Failed {
            error: format!("{:?} is not a device id", item.target),
        };
    };
    let payload = match serde_json::to_vec(&item.payload) {
        Ok(p) => p,
        Err(e) => {
            return DeliveryOutcome::Failed {
                error: format!("payload does not serialise: {e}"),
            };
        }
    };
    match deps.commands.send(&device, payload).await {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(error) => after_failure(
            item.attempts + 1,
            DEVICE_MAX_ATTEMPTS,
            DEVICE_BACKOFF_CAP_S,
            None,
            deps.clock.now(),
            error,
        ),
    }
}

/// Commands sent, by device, for tests.
#[derive(Default)]
pub struct RecordedCommands {
    pub sent: std::sync::Mutex<Vec<(DeviceId, serde_json::Value)>>,
    /// While set, every send fails as if disconnected.
    pub offline: AtomicBool,
}

#[async_trait]
impl CommandSender for RecordedCommands {
    async fn send(&self, device: &DeviceId, payload: Vec<u8>) -> Result<(), String> {
        if self.offline.load(Ordering::SeqCst) {
            return Err("not connected to the broker".into());
        }
        let value = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
        self.sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((device.clone(), value));
        Ok(())
    }
}

impl RecordedCommands {
    /// Commands sent to each device, in order.
    pub fn by_device(&self) -> HashMap<String, Vec<serde_json::Value>> {
        let mut out: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
        for (d, v) in self.sent.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            out.entry(d.to_string()).or_default().push(v.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use serde_json::json;

    use super::*;
    use crate::fake_dispatch::FakeDispatch;
    use crate::settings::{Secret, WebhookAudience};

    /// A webhook receiver answering with `statuses` in turn (then 200),
    /// recording every request.
    #[derive(Clone, Default)]
    struct Receiver {
        statuses: Arc<Mutex<Vec<u16>>>,
        got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    }

    async fn receiver(statuses: Vec<u16>) -> (SocketAddr, Receiver) {
        let r = Receiver {
            statuses: Arc::new(Mutex::new(statuses)),
            ..Default::default()
        };
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |axum::extract::State(r): axum::extract::State<Receiver>,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        r.got.lock().unwrap().push((headers, body));
                        let mut s = r.statuses.lock().unwrap();
                        let code = if s.is_empty() { 200 } else { s.remove(0) };
                        StatusCode::from_u16(code).unwrap()
                    },
                ),
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, r)
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-28T21:00:00Z".parse().unwrap()
    }

    fn item(id: &str, channel: Channel, target: &str) -> OutboxItem {
        OutboxItem {
            id: id.into(),
            incident_id: None,
            channel,
            target: target.into(),
            event: "incident.opened".into(),
            payload: json!({"event": "incident.opened", "incident": {"id": "i-1", "summary": "呼叫"}}),
            attempts: 0,
            created_at: t0(),
            offer_id: None,
            due_at: t0(),
            claimed_until: None,
        }
    }

    /// Pushes, SMS and calls that take `delay` each and then succeed,
    /// counted.
    #[derive(Default)]
    struct SlowReach {
        delay: Duration,
        sent: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl ReachSender for SlowReach {
        async fn deliver(&self, _: &OutboxItem) -> DeliveryOutcome {
            tokio::time::sleep(self.delay).await;
            self.sent.fetch_add(1, Ordering::SeqCst);
            DeliveryOutcome::Delivered
        }
    }

    fn deps(store: Arc<FakeDispatch>, url: String, commands: Arc<RecordedCommands>) -> OutboxDeps {
        let mut settings = Settings::default();
        settings.ingest.tick_ms = 20;
        settings.notify.webhooks.push(WebhookTarget {
            name: "ops".into(),
            url,
            secret: Secret::new("s3cret"),
            audience: WebhookAudience::Supervisors,
            max_attempts: 3,
        });
        OutboxDeps {
            store,
            settings: Arc::new(settings),
            clock: Clock::manual(t0()),
            commands,
            reach: Arc::new(SlowReach::default()),
            wake: Arc::new(Notify::new()),
            http: http_client(),
            fence: Arc::new(crate::fence::Fence::new(Arc::default())),
        }
    }

    #[tokio::test]
    async fn a_slow_push_service_holds_up_neither_device_commands_nor_webhooks() {
        let (addr, rx) = receiver(vec![]).await;
        let store = Arc::new(FakeDispatch::default());
        let commands = Arc::new(RecordedCommands::default());
        let mut deps = deps(
            store.clone(),
            format!("http://{addr}/hook"),
            commands.clone(),
        );
        let reach = Arc::new(SlowReach {
            delay: Duration::from_secs(30),
            ..Default::default()
        });
        deps.reach = reach.clone();
        // More stuck pushes than the push pool holds, queued first.
        for n in 0..(MAX_PUSH_TASKS + 10) {
            let mut push = item(&format!("p-{n:04}"), Channel::Push, "s-1");
            push.event = "offer".into();
            store.queue(push, t0());
        }
        let worker = Outbox::start(deps.clone(), Duration::from_millis(100));
        store.queue(item("z-webhook", Channel::Webhook, "ops"), t0());
        store.queue(item("z-device", Channel::Device, "btn-1"), t0());
        deps.wake.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.row("z-device").state != "delivered"
            || store.row("z-webhook").state != "delivered"
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "held up behind the pushes"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rx.got.lock().unwrap().len(), 1);
        assert_eq!(
            reach.sent.load(Ordering::SeqCst),
            0,
            "the pushes are still stuck"
        );
        worker.shutdown().await;
        // Shut down: the pushes being sent keep their claims (they may
        // have gone out); those that were waiting their turn gave theirs
        // back, for whoever claims next.
        let claimed = (0..(MAX_PUSH_TASKS + 10))
            .filter(|n| store.row(&format!("p-{n:04}")).claimed_until.is_some())
            .count();
        assert_eq!(claimed, PUSHES_AT_ONCE);
    }

    #[tokio::test]
    async fn a_failing_webhook_is_retried_with_backoff_and_every_attempt_is_signed() {
        let (addr, rx) = receiver(vec![500, 503]).await;
        let store = Arc::new(FakeDispatch::default());
        let deps = deps(store.clone(), format!("http://{addr}/hook"), Arc::default());
        store.queue(item("d-1", Channel::Webhook, "ops"), t0());

        assert_eq!(deliver_due(&deps).await.unwrap(), 1);
        let row = store.row("d-1");
        assert_eq!((row.state, row.item.attempts), ("pending", 1));
        assert_eq!(row.due_at, t0() + chrono::Duration::seconds(2));
        // Not due yet.
        assert_eq!(deliver_due(&deps).await.unwrap(), 0);

        deps.clock.advance(chrono::Duration::seconds(2));
        assert_eq!(deliver_due(&deps).await.unwrap(), 1);
        let row = store.row("d-1");
        assert_eq!(row.due_at, deps.clock.now() + chrono::Duration::seconds(4));
        assert!(
            matches!(&row.outcomes[1], DeliveryOutcome::Retry { error, .. } if error.contains("503")),
            "{:?}",
            row.outcomes
        );

        deps.clock.advance(chrono::Duration::seconds(4));
        assert_eq!(deliver_due(&deps).await.unwrap(), 1);
        let row = store.row("d-1");
        assert_eq!((row.state, row.item.attempts), ("delivered", 3));

        let got = rx.got.lock().unwrap().clone();
        assert_eq!(got.len(), 3);
        for (headers, body) in &got {
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(headers["x-eldercare-event"], "incident.opened");
            assert_eq!(headers["x-eldercare-delivery"], "d-1");
            assert_eq!(
                headers["x-eldercare-signature"].to_str().unwrap(),
                signature(b"s3cret", body)
            );
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            assert_eq!(v["incident"]["summary"], "呼叫");
        }
    }

    #[tokio::test]
    async fn attempts_run_out_and_unknown_targets_fail_at_once() {
        let (addr, _rx) = receiver(vec![500, 500, 500, 500]).await;
        let store = Arc::new(FakeDispatch::default());
        let deps = deps(store.clone(), format!("http://{addr}/hook"), Arc::default());
        store.queue(item("d-1", Channel::Webhook, "ops"), t0());
        store.queue(item("d-2", Channel::Webhook, "removed"), t0());
        for _ in 0..3 {
            deliver_due(&deps).await.unwrap();
            deps.clock.advance(chrono::Duration::minutes(5));
        }
        let row = store.row("d-1");
        assert_eq!((row.state, row.item.attempts), ("failed", 3));
        let row = store.row("d-2");
        assert_eq!((row.state, row.item.attempts), ("failed", 1));
        assert!(
            matches!(&row.outcomes[0], DeliveryOutcome::Failed { error } if error.contains("removed"))
        );
    }

    #[tokio::test]
    async fn an_unreachable_webhook_is_retried() {
        // A port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = Arc::new(FakeDispatch::default());
        let deps = deps(
            store.clone(),
            format!("http://127.0.0.1:{port}/hook?token=secret"),
            Arc::default(),
        );
        store.queue(item("d-1", Channel::Webhook, "ops"), t0());
        deliver_due(&deps).await.unwrap();
        let row = store.row("d-1");
        let DeliveryOutcome::Retry { error, .. } = &row.outcomes[0] else {
            panic!("{:?}", row.outcomes)
        };
        assert!(!error.contains("secret"), "{error}");
    }

    #[tokio::test]
    async fn device_commands_wait_for_the_broker_and_keep_their_order() {
        let store = Arc::new(FakeDispatch::default());
        let commands = Arc::new(RecordedCommands::default());
        let deps = deps(
            store.clone(),
            "http://127.0.0.1:9/".into(),
            commands.clone(),
        );
        let mut received = item("c-1", Channel::Device, "btn-1");
        received.event = "incident.update".into();
        received.payload = json!({"type": "incident.update", "state": "received"});
        let mut acked = received.clone();
        acked.id = "c-2".into();
        acked.payload = json!({"type": "incident.update", "state": "acknowledged"});
        store.queue(received, t0());
        store.queue(acked, t0());

        commands.offline.store(true, Ordering::SeqCst);
        deliver_due(&deps).await.unwrap();
        assert_eq!(store.row("c-1").state, "pending");
        assert_eq!(store.row("c-2").due_at, t0() + chrono::Duration::seconds(2));

        commands.offline.store(false, Ordering::SeqCst);
        deps.clock.advance(chrono::Duration::seconds(2));
        deliver_due(&deps).await.unwrap();
        assert_eq!(store.row("c-1").state, "delivered");
        let sent = commands.by_device();
        let states: Vec<_> = sent["btn-1"].iter().map(|v| v["state"].clone()).collect();
        assert_eq!(states, [json!("received"), json!("acknowledged")]);

        let mut bad = item("c-3", Channel::Device, "not a device");
        bad.event = "incident.update".into();
        store.queue(bad, deps.clock.now());
        deliver_due(&deps).await.unwrap();
        assert_eq!(store.row("c-3").state, "failed");
    }

    #[tokio::test]
    async fn the_worker_delivers_when_nudged_and_finishes_in_flight_work_on_shutdown() {
        let (addr, rx) = receiver(vec![]).await;
        let store = Arc::new(FakeDispatch::default());
        let commands = Arc::new(RecordedCommands::default());
        let deps = deps(
            store.clone(),
            format!("http://{addr}/hook"),
            commands.clone(),
        );
        let wake = deps.wake.clone();
        let worker = Outbox::start(deps.clone(), Duration::from_secs(5));
        store.queue(item("d-1", Channel::Webhook, "ops"), t0());
        store.queue(item("c-1", Channel::Device, "btn-1"), t0());
        wake.notify_one();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.row("d-1").state != "delivered" || store.row("c-1").state != "delivered" {
            assert!(tokio::time::Instant::now() < deadline, "not delivered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(rx.got.lock().unwrap().len(), 1);
        worker.shutdown().await;
    }

    #[test]
    fn the_signature_is_hmac_sha256_hex_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // A key longer than the block is hashed first (RFC 4231, case 6).
        assert_eq!(
            signature(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "sha256=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = |a| backoff(a, BACKOFF_CAP_S).num_seconds();
        assert_eq!([s(1), s(2), s(3), s(4)], [2, 4, 8, 16]);
        assert_eq!(s(8), 256);
        assert_eq!(s(9), 300);
        assert_eq!(s(1000), 300);
        assert_eq!(s(0), 2);
        assert_eq!(backoff(6, DEVICE_BACKOFF_CAP_S).num_seconds(), 30);
    }

    #[test]
    fn failures_retry_until_the_attempts_are_spent() {
        let now: DateTime<Utc> = "2026-11-28T21:00:00Z".parse().unwrap();
        assert_eq!(
            after_failure(1, 3, BACKOFF_CAP_S, None, now, "HTTP 500".into()),
            DeliveryOutcome::Retry {
                at: now + chrono::Duration::seconds(2),
                error: "HTTP 500".into()
            }
        );
        assert_eq!(
            after_failure(2, 3, BACKOFF_CAP_S, None, now, "x".into()),
            DeliveryOutcome::Retry {
                at: now + chrono::Duration::seconds(4),
                error: "x".into()
            }
        );
        assert!(matches!(
            after_failure(3, 3, BACKOFF_CAP_S, None, now, "x".into()),
            DeliveryOutcome::Failed { .. }
        ));
        // Zero configured attempts still makes one.
        assert!(matches!(
            after_failure(1, 0, BACKOFF_CAP_S, None, now, "x".into()),
            DeliveryOutcome::Failed { .. }
        ));
        // Retry-After is honoured within the cap.
        let r = after_failure(
            1,
            8,
            BACKOFF_CAP_S,
            Some(chrono::Duration::seconds(30)),
            now,
            "HTTP 429".into(),
        );
        assert_eq!(
            r,
            DeliveryOutcome::Retry {
                at: now + chrono::Duration::seconds(30),
                error: "HTTP 429".into()
            }
        );
        let r = after_failure(
            1,
            8,
            BACKOFF_CAP_S,
            Some(chrono::Duration::hours(5)),
            now,
            "x".into(),
        );
        assert!(
            matches!(r, DeliveryOutcome::Retry { at, .. } if at == now + chrono::Duration::seconds(300))
        );
        // Long error texts are cut.
        let DeliveryOutcome::Retry { error, .. } =
            after_failure(1, 8, 300, None, now, "e".repeat(10_000))
        else {
            panic!()
        };
        assert!(error.chars().count() <= MAX_ERROR_CHARS + 1);
    }
}
