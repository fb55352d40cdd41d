//! [`Reach`]: sends the outbox rows that reach a steward (pushes, SMS,
//! calls) and the test alert, checking each offer is still live first.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use utoipa::ToSchema;

use super::push::{self, Message, Sent, Urgency};
use super::text::{self, Lines};
use super::token::{Purpose, TokenKey};
use super::{Keys, TOKEN_KEY, VAPID_KEY, gateway};
use crate::clock::Clock;
use crate::domain::{
    AssignedView, CloseNote, ContactChannel, Lang, OfferView, PushSubscription, StewardId,
};
use crate::metrics::Metrics;
use crate::notify::outbox::{ReachSender, after_failure};
use crate::settings::{GatewaySettings, Settings};
use crate::store::dispatch::{Channel, DeliveryOutcome, OutboxItem};
use crate::store::notices::{
    REACH_ASSIGNED, REACH_CLOSE, REACH_OFFER, REACH_REPEAT, REACH_SMS, REACH_VOICE,
};
use crate::store::{Store, StoreError};

/// The outbox event of an answer to an SMS reply.
pub const REPLY: &str = "reply";

/// Push attempts for one step before it is failed (its repeat follows).
const PUSH_ATTEMPTS: i32 = 4;
/// Retries of a push or a gateway message wait at most this long: the
/// offer expires within a minute or two.
const RETRY_CAP_S: i64 = 8;
/// A close is kept this long by the push service for a phone that is off.
const CLOSE_TTL_S: u64 = 300;

/// How one phone took a test alert.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TestResult {
    pub subscription_id: String,
    pub ok: bool,
    /// The push service's status, when it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// Sends what reaches stewards. One per process, shared by the outbox
/// worker and the API.
pub struct Reach {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    settings: Arc<Settings>,
    clock: Clock,
    http: reqwest::Client,
    keys: OnceCell<Arc<Keys>>,
    /// One push at a time per steward, in claim order: a close never
    /// overtakes the offer it closes.
    in_order: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// When each offer was last pushed from here: repeats that came due
    /// together after a stall ring once.
    pushed: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Stewards told lately that their reply was not understood.
    told_unclear: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// A steward is told "reply not understood" at most this often.
pub const UNCLEAR_EVERY: chrono::Duration = chrono::Duration::minutes(10);

impl Reach {
    pub fn new(
        store: Arc<dyn Store>,
        settings: Arc<Settings>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        // The outbox's own client: no redirects, 10 s a request, which
        // is also each push's and each gateway message's limit.
        let http = crate::notify::outbox::http_client();
        Self {
            store,
            metrics,
            settings,
            clock,
            http,
            keys: OnceCell::new(),
            in_order: Mutex::default(),
            pushed: Mutex::default(),
            told_unclear: Mutex::default(),
        }
    }

    /// The server's keys: read from the store, or made and stored at the
    /// first start.
    pub async fn keys(&self) -> Result<Arc<Keys>, StoreError> {
        self.keys
            .get_or_try_init(|| async {
                let now = self.clock.now();
                let vapid = self
                    .store
                    .server_key(VAPID_KEY, push::Vapid::generate, now)
                    .await?;
                let tokens = self
                    .store
                    .server_key(TOKEN_KEY, TokenKey::generate, now)
                    .await?;
                let vapid = push::Vapid::from_stored(&vapid, &self.settings.notify.push.subject)
                    .map_err(|e| StoreError::Corrupt(format!("server_keys {VAPID_KEY}: {e}")))?;
                let tokens = TokenKey::from_stored(&tokens).ok_or_else(|| {
                    StoreError::Corrupt(format!("server_keys {TOKEN_KEY}: not a 32-byte key"))
                })?;
                Ok(Arc::new(Keys { vapid, tokens }))
            })
            .await
            .cloned()
    }

    /// The offer an offer's push, SMS or call row is about, if it is still
    /// live; else what becomes of the row (cancelled: the offer ended;
    /// failed: the row is damaged; a retry: the store did not answer).
    async fn live_offer(
        &self,
        item: &OutboxItem,
        now: DateTime<Utc>,
    ) -> Result<OfferView, DeliveryOutcome> {
        let view: OfferView = serde_json::from_value(item.payload.clone())
            .map_err(|e| failed(format!("payload is not an offer: {e}")))?;
        match self.offer_over(&view.offer_id, now).await {
            Ok(None) => Ok(view),
            Ok(Some(why)) => Err(DeliveryOutcome::Cancelled { reason: why }),
            Err(e) => Err(self.retry(item, e.to_string(), None, Some(view.expires_at))),
        }
    }

    /// Why an offer's message must not go out now, if it must not.
    async fn offer_over(
        &self,
        offer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        Ok(match self.store.offer(offer_id).await? {
            None => Some("the offer no longer exists".into()),
            Some(o) => match o.response {
                Some(r) => Some(format!("not needed: offer {r}")),
                None if o.expires_at <= now => Some("not needed: offer expired".into()),
                None => None,
            },
        })
    }

    // --- push ---

    async fn deliver_push(&self, item: &OutboxItem) -> DeliveryOutcome {
        let Ok(steward) = StewardId::parse(item.target.clone()) else {
            return failed(format!("{:?} is not a steward id", item.target));
        };
        let lock = self.lock_for(&item.target);
        let _turn = lock.lock().await;
        let now = self.clock.now();
        let keys = match self.keys().await {
            Ok(k) => k,
            Err(e) => return self.retry(item, format!("the server's keys: {e}"), None, None),
        };
        let what = match item.event.as_str() {
            REACH_OFFER | REACH_REPEAT => {
                let view = match self.live_offer(item, now).await {
                    Ok(view) => view,
                    Err(outcome) => return outcome,
                };
                if item.event == REACH_REPEAT
                    && let Some(ago) = self.pushed_lately(&view.offer_id)
                {
                    // Steps that came due together (the worker was held
                    // up): one ring is enough.
                    return DeliveryOutcome::Cancelled {
                        reason: format!(
                            "not needed: this offer was pushed {} s ago",
                            ago.as_secs()
                        ),
                    };
                }
                let token = keys.tokens.token(Purpose::Act, &view.offer_id);
                PushWhat::Offer(view, token)
            }
            REACH_CLOSE => match serde_json::from_value(item.payload.clone()) {
                Ok(note) => PushWhat::Close(note),
                Err(e) => return failed(format!("payload is not a close: {e}")),
            },
            REACH_ASSIGNED => {
                let view: AssignedView = match serde_json::from_value(item.payload.clone()) {
                    Ok(v) => v,
                    Err(e) => return failed(format!("payload is not an assignment: {e}")),
                };
                match self.still_assigned(&view).await {
                    Ok(true) => PushWhat::Assigned(view),
                    Ok(false) => {
                        return DeliveryOutcome::Cancelled {
                            reason: "not needed: the incident is no longer theirs".into(),
                        };
                    }
                    Err(e) => return self.retry(item, e.to_string(), None, None),
                }
            }
            other => return failed(format!("no push is made for event {other:?}")),
        };
        let deadline = what.deadline();
        let subs = match self.store.subscriptions_of(&steward).await {
            Ok(s) => s,
            Err(e) => return self.retry(item, e.to_string(), None, deadline),
        };
        if subs.is_empty() {
            return failed(format!(
                "steward {steward} has no phone registered for alerts (they enable them in the app)"
            ));
        }
        let topic = item.incident_id.as_ref().map(|i| push::topic(i.as_str()));
        let results = self
            .push_all(
                &keys,
                &subs,
                |s| what.payload(s.lang, now),
                what.ttl_s(now),
                what.urgency(),
                topic,
            )
            .await;
        let delivered = results.iter().filter(|r| r.ok).count();
        if delivered > 0 {
            if let PushWhat::Offer(view, _) = &what {
                self.pushed(&view.offer_id, now);
            }
            return DeliveryOutcome::Delivered;
        }
        let summary = summary(&results);
        let transient = results.iter().any(|r| r.transient);
        let retry_after = results.iter().filter_map(|r| r.retry_after).max();
        if transient {
            self.retry(item, summary, retry_after, deadline)
        } else {
            failed(summary)
        }
    }

    /// Whether the incident is still assigned to the steward told of it.
    async fn still_assigned(&self, view: &AssignedView) -> Result<bool, StoreError> {
        Ok(self
            .store
            .incident(&view.incident_id)
            .await?
            .is_some_and(|d| {
                d.incident.status.is_open()
                    && d.incident.steward_id.as_ref() == Some(&view.steward_id)
            }))
    }

    /// How long ago (on the store's clock) this instance last pushed an
    /// offer, if less than half the repeat interval.
    fn pushed_lately(&self, offer_id: &str) -> Option<Duration> {
        let half = chrono::Duration::seconds(i64::from(self.settings.notify.repush_s) / 2);
        let now = self.clock.now();
        let pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        let ago = now - *pushed.get(offer_id)?;
        (ago < half).then(|| ago.to_std().unwrap_or_default())
    }

    /// Notes that an offer's push made at `at` went out.
    fn pushed(&self, offer_id: &str, at: DateTime<Utc>) {
        let now = self.clock.now();
        let mut pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        // An offer lives minutes at most: forget older ones as we go.
        pushed.retain(|_, at| now - *at < chrono::Duration::minutes(10));
        pushed.insert(offer_id.to_owned(), at);
    }

    /// Whether a steward whose reply was not understood is told so now:
    /// once per [`UNCLEAR_EVERY`] at most.
    pub fn may_answer_unclear(&self, steward: &StewardId) -> bool {
        let now = self.clock.now();
        let mut told = self.told_unclear.lock().unwrap_or_else(|p| p.into_inner());
        told.retain(|_, at| now - *at < UNCLEAR_EVERY);
        if told.contains_key(steward.as_str()) {
            return false;
        }
        told.insert(steward.to_string(), now);
        true
    }

    fn lock_for(&self, steward: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.in_order.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the locks nobody holds, so the map stays as small as
        // the pushes in flight.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(steward.to_owned()).or_default().clone()
    }

    /// Sends to every phone at once and records how each went (a phone
    /// the push service no longer knows is forgotten).
    async fn push_all(
        &self,
        keys: &Keys,
        subs: &[PushSubscription],
        payload: impl Fn(&PushSubscription) -> Vec<u8>,
        ttl_s: u64,
        urgency: Urgency,
        topic: Option<String>,
    ) -> Vec<PhoneResult> {
        let sends = subs.iter().map(|sub| {
            let body = payload(sub);
            let topic = topic.clone();
            async move {
                let message = Message {
                    payload: &body,
                    ttl_s,
                    urgency,
                    topic,
                };
                (
                    sub,
                    push::send(&self.http, &keys.vapid, sub, &message).await,
                )
            }
        });
        let sent = futures::future::join_all(sends).await;
        let now = self.clock.now();
        let mut out = Vec::with_capacity(sent.len());
        for (sub, result) in sent {
            let r = PhoneResult::of(&result);
            let recorded = match &result {
                Sent::Gone { .. } => {
                    tracing::info!(subscription = %sub.id, steward = %sub.steward_id, "push subscription gone; forgotten");
                    self.store
                        .forget_subscription(&sub.id, &sub.endpoint)
                        .await
                        .map(|_| ())
                }
                _ => {
                    self.store
                        .record_push(&sub.id, &sub.endpoint, r.error.as_deref(), now)
                        .await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(error = %e, subscription = %sub.id, "could not record how a push went");
            }
            out.push(r);
        }
        out
    }

    /// A retry after the usual backoff, unless it would come after the
    /// offer's expiry: then failed, since nobody can answer it.
    fn retry(
        &self,
        item: &OutboxItem,
        error: String,
        retry_after: Option<Duration>,
        deadline: Option<DateTime<Utc>>,
    ) -> DeliveryOutcome {
        let max = match item.channel {
            Channel::Push => PUSH_ATTEMPTS,
            Channel::Sms => self.gateway_attempts(&self.settings.notify.sms),
            Channel::Voice => self.gateway_attempts(&self.settings.notify.voice),
            Channel::Webhook | Channel::Device => 1,
        };
        let retry_after = retry_after.and_then(|d| chrono::Duration::from_std(d).ok());
        let outcome = after_failure(
            item.attempts + 1,
            max,
            RETRY_CAP_S,
            retry_after,
            self.clock.now(),
            error,
        );
        match (outcome, deadline) {
            (DeliveryOutcome::Retry { at, error }, Some(d)) if at >= d => {
                failed(format!("the offer expired before it went through: {error}"))
            }
            (other, _) => other,
        }
    }

    fn gateway_attempts(&self, g: &Option<GatewaySettings>) -> i32 {
        g.as_ref()
            .map_or(1, |g| i32::try_from(g.max_attempts).unwrap_or(i32::MAX))
    }

    /// "Send me a test alert": a push to each of the steward's phones now.
    pub async fn test_push(&self, steward: &StewardId) -> Result<Vec<TestResult>, StoreError> {
        let keys = self.keys().await?;
        let subs = self.store.subscriptions_of(steward).await?;
        let results = self
            .push_all(
                &keys,
                &subs,
                |s| test_payload(s.lang),
                60,
                Urgency::High,
                None,
            )
            .await;
        Ok(subs
            .iter()
            .zip(results)
            .map(|(s, r)| TestResult {
                subscription_id: s.id.clone(),
                ok: r.ok,
                status: r.status,
                error: r.error,
            })
            .collect())
    }

    // --- SMS and calls ---

    async fn deliver_gateway(&self, item: &OutboxItem, channel: ContactChannel) -> DeliveryOutcome {
        let notify = &self.settings.notify;
        let Some(g) = notify.gateway(channel) else {
            return failed(format!(
                "no {} gateway is configured (notify.{})",
                channel.as_str(),
                channel.as_str()
            ));
        };
        let now = self.clock.now();
        let (values, deadline) = match item.event.as_str() {
            REACH_SMS | REACH_VOICE => {
                let view = match self.live_offer(item, now).await {
                    Ok(view) => view,
                    Err(outcome) => return outcome,
                };
                match self.offer_values(&view, channel, now).await {
                    Ok(v) => (v, Some(view.expires_at)),
                    Err(Problem::Fail(e)) => return failed(e),
                    Err(Problem::Retry(e)) => {
                        return self.retry(item, e, None, Some(view.expires_at));
                    }
                }
            }
            REPLY => {
                let phone = item.payload["phone"].as_str().unwrap_or_default();
                let text = item.payload["text"].as_str().unwrap_or_default();
                if phone.is_empty() || text.is_empty() {
                    return failed("a reply needs a phone and a text".into());
                }
                // Every placeholder has a value, so a template written
                // for offers (`"left": {seconds_left}`) stays valid JSON.
                let mut values: BTreeMap<&str, String> = gateway::PLACEHOLDERS
                    .iter()
                    .map(|p| (*p, String::new()))
                    .collect();
                values.insert("seconds_left", "0".into());
                values.insert("distance_m", "0".into());
                values.insert("phone", phone.to_owned());
                values.insert("text", text.to_owned());
                values.insert(
                    "lang",
                    item.payload["lang"].as_str().unwrap_or("zh").to_owned(),
                );
                if let Some(i) = &item.incident_id {
                    values.insert("incident_id", i.to_string());
                }
                (values, None)
            }
            other => {
                return failed(format!(
                    "no {} is made for event {other:?}",
                    channel.as_str()
                ));
            }
        };
        match gateway::request(&self.http, g, &values).send().await {
            Ok(r) if r.status().is_success() => DeliveryOutcome::Delivered,
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after =
                    crate::notify::outbox::retry_after_s(r.headers()).map(Duration::from_secs);
                let body = r.text().await.unwrap_or_default();
                let body: String = body.trim().chars().take(200).collect();
                let error = if body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {body}")
                };
                if status == 429 || status >= 500 {
                    self.retry(item, error, retry_after, deadline)
                } else {
                    failed(error)
                }
            }
            // Without the URL: a gateway's may carry a key.
            Err(e) => self.retry(item, e.without_url().to_string(), None, deadline),
        }
    }

    /// The placeholders of an offer's SMS or call.
    async fn offer_values(
        &self,
        view: &OfferView,
        channel: ContactChannel,
        now: DateTime<Utc>,
    ) -> Result<BTreeMap<&'static str, String>, Problem> {
        let steward = match self.store.steward(&view.steward_id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(Problem::Fail(format!(
                    "steward {} is gone",
                    view.steward_id
                )));
            }
            Err(e) => return Err(Problem::Retry(e.to_string())),
        };
        if !crate::notify::reply::is_number(&steward.phone) {
            return Err(Problem::Fail(format!(
                "steward {} has no phone number to {}",
                steward.id,
                if channel == ContactChannel::Sms {
                    "text"
                } else {
                    "call"
                }
            )));
        }
        let keys = self
            .keys()
            .await
            .map_err(|e| Problem::Retry(e.to_string()))?;
        let lang = Lang::of_steward(&steward.languages, self.settings.notify.language);
        let public = self
            .settings
            .http
            .public_url
            .as_deref()
            .map(|u| u.trim_end_matches('/').to_owned());
        let link = public.as_ref().map(|u| {
            format!(
                "{u}/app/#link={}",
                keys.tokens.token(Purpose::Link, &view.offer_id)
            )
        });
        let can_reply = self
            .settings
            .notify
            .gateway(channel)
            .is_some_and(|g| g.inbound.is_some());
        let said = match channel {
            ContactChannel::Voice => text::offer_voice(lang, view, now, can_reply),
            _ => text::offer_sms(lang, view, now, link.as_deref(), can_reply),
        };
        let reply_url = public
            .as_ref()
            .map(|u| format!("{u}/api/v1/notify/inbound/{}", channel.as_str()))
            .unwrap_or_default();
        Ok(BTreeMap::from([
            ("phone", steward.phone.clone()),
            ("text", said),
            ("link", link.unwrap_or_default()),
            ("incident_id", view.incident_id.to_string()),
            ("offer_id", view.offer_id.clone()),
            ("priority", view.priority.to_string()),
            ("kind", view.kind.to_string()),
            ("elder_name", view.elder_name.clone().unwrap_or_default()),
            (
                "distance_m",
                format!("{:.0}", view.distance_m.unwrap_or(0.0)),
            ),
            ("seconds_left", text::seconds_left(view, now).to_string()),
            ("expires_at", view.expires_at.to_rfc3339()),
            ("steward_id", steward.id.to_string()),
            ("steward_name", steward.name.clone()),
            ("lang", lang.as_str().to_owned()),
            ("reply_url", reply_url),
        ]))
    }
}

enum Problem {
    Fail(String),
    Retry(String),
}

/// What a push row says.
enum PushWhat {
    /// An offer, with the token its buttons act with.
    Offer(OfferView, String),
    Close(CloseNote),
    Assigned(AssignedView),
}

impl PushWhat {
    fn payload(&self, lang: Lang, now: DateTime<Utc>) -> Vec<u8> {
        match self {
            Self::Offer(view, token) => offer_payload(lang, view, now, token),
            Self::Close(note) => close_payload(lang, note),
            Self::Assigned(view) => assigned_payload(lang, view),
        }
    }

    /// An offer's push is worthless once the offer expires.
    fn ttl_s(&self, now: DateTime<Utc>) -> u64 {
        match self {
            Self::Offer(view, _) => text::seconds_left(view, now).max(1) as u64,
            Self::Close(_) | Self::Assigned(_) => CLOSE_TTL_S,
        }
    }

    /// All at once: a close at normal urgency could wait on a dozing
    /// phone while the offer it closes keeps ringing.
    fn urgency(&self) -> Urgency {
        Urgency::High
    }

    /// After this no retry is worth it.
    fn deadline(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Offer(view, _) => Some(view.expires_at),
            Self::Close(_) | Self::Assigned(_) => None,
        }
    }
}

#[async_trait]
impl ReachSender for Reach {
    async fn deliver(&self, item: &OutboxItem) -> DeliveryOutcome {
        let outcome = match item.channel {
            Channel::Push => self.deliver_push(item).await,
            Channel::Sms => self.deliver_gateway(item, ContactChannel::Sms).await,
            Channel::Voice => self.deliver_gateway(item, ContactChannel::Voice).await,
            Channel::Webhook | Channel::Device => failed(format!(
                "{} rows are not for reaching stewards",
                item.channel.as_str()
            )),
        };
        let how = match &outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Failed { .. } => "failed",
            DeliveryOutcome::Cancelled { .. } => "cancelled",
        };
        self.metrics.reach(item.channel.as_str(), how);
        outcome
    }
}

fn failed(error: String) -> DeliveryOutcome {
    DeliveryOutcome::Failed { error }
}

/// How one phone took one push.
#[derive(Debug, Clone)]
struct PhoneResult {
    ok: bool,
    transient: bool,
    status: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl PhoneResult {
    fn of(sent: &Sent) -> Self {
        match sent {
            Sent::Delivered => Self {
                ok: true,
                transient: false,
                status: Some(201),
                error: None,
                retry_after: None,
            },
            Sent::Gone { status } => Self {
                ok: false,
                transient: false,
                status: Some(*status),
                error: Some(format!(
                    "HTTP {status}: the phone unsubscribed; it must enable alerts in the app again"
                )),
                retry_after: None,
            },
            Sent::Transient {
                status,
                error,
                retry_after,
            } => Self {
                ok: false,
                transient: true,
                status: *status,
                error: Some(error.clone()),
                retry_after: *retry_after,
            },
            Sent::Refused { status, error } => Self {
                ok: false,
                transient: false,
                status: *status,
                error: Some(error.clone()),
                retry_after: None,
            },
        }
    }
}

/// "no phone took it: 2 × HTTP 500; 1 × HTTP 410 …".
fn summary(results: &[PhoneResult]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in results {
        let e = r.error.clone().unwrap_or_else(|| "?".into());
        match counts.iter_mut().find(|(k, _)| *k == e) {
            Some((_, n)) => *n += 1,
            None => counts.push((e, 1)),
        }
    }
    let parts: Vec<String> = counts
        .into_iter()
        .map(|(e, n)| if n == 1 { e } else { format!("{n} × {e}") })
        .collect();
    format!(
        "no phone took it ({} registered): {}",
        results.len(),
        parts.join("; ")
    )
}

/// What the service worker reads: `{"v": 1, "type", "tag", "title",
/// "body", "lang", "url"}`, and for an incident its `incident_id`, the
/// tag `incident-<id>` and the url that opens it, plus `extra`.
fn payload(kind: &str, lang: Lang, incident: Option<&str>, lines: Lines, extra: Value) -> Vec<u8> {
    let (tag, url) = match incident {
        Some(id) => (format!("incident-{id}"), format!("/app/#incident={id}")),
        None => (kind.to_owned(), "/app/".to_owned()),
    };
    let mut out = json!({
        "v": 1,
        "type": kind,
        "tag": tag,
        "title": lines.title,
        "body": lines.body,
        "lang": lang,
        "url": url,
    });
    if let Some(id) = incident {
        out["incident_id"] = json!(id);
    }
    if let (Value::Object(out), Value::Object(extra)) = (&mut out, extra) {
        out.extend(extra);
    }
    serde_json::to_vec(&out).expect("JSON serialises")
}

/// An offer: what the lock screen shows, its buttons and the token they
/// act with.
pub fn offer_payload(lang: Lang, view: &OfferView, now: DateTime<Utc>, token: &str) -> Vec<u8> {
    let extra = json!({
        "offer_id": view.offer_id,
        "priority": view.priority,
        "kind": view.kind,
        "elder_name": view.elder_name,
        "distance_m": view.distance_m,
        "expires_at": view.expires_at,
        "repeat": view.repeat,
        "token": token,
        "actions": [
            {"action": "accept", "title": text::accept(lang)},
            {"action": "decline", "title": text::decline(lang)},
        ],
    });
    let id = view.incident_id.as_str();
    payload("offer", lang, Some(id), text::offer(lang, view, now), extra)
}

/// Closes an offer's notification, saying why.
pub fn close_payload(lang: Lang, note: &CloseNote) -> Vec<u8> {
    let extra = json!({"offer_id": note.offer_id, "reason": note.reason});
    let id = note.incident_id.as_str();
    payload("close", lang, Some(id), text::close(lang, note), extra)
}

/// A supervisor assigned the steward.
pub fn assigned_payload(lang: Lang, view: &AssignedView) -> Vec<u8> {
    let extra = json!({"priority": view.priority, "kind": view.kind});
    let id = view.incident_id.as_str();
    payload(
        "assigned",
        lang,
        Some(id),
        text::assigned(lang, view),
        extra,
    )
}

/// A test alert.
pub fn test_payload(lang: Lang) -> Vec<u8> {
    payload("test", lang, None, text::test(lang), json!({}))
}
