//! A Web Push service of the tests' own, on loopback, speaking RFC 8030
//! as a browser vendor's would: it makes subscriptions with real keys (as
//! a browser does), and for every push it checks the VAPID token (RFC
//! 8292: signature against the key in the header, audience, expiry,
//! subject) and decrypts the payload with the subscription's private key
//! (RFC 8291), then answers as scripted (201 by default; 410, 500, 429 or
//! a delay on demand). Tests read what each phone would have received.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{Value, json};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256PublicKey};
use web_push_native::jwt_simple::claims::NoCustomClaims;
use web_push_native::jwt_simple::common::VerificationOptions;
use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint;
use web_push_native::{Auth, p256};

/// One push as the phone would get it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The subscription (phone) it was for.
    pub subscription: String,
    /// The decrypted JSON.
    pub payload: Value,
    pub ttl: Option<u64>,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    /// The VAPID public key (`k=`) it was signed with.
    pub vapid_key: String,
    /// What the service answered.
    pub status: u16,
    pub at: Instant,
}

/// A phone's keys, as only the phone (and this service) knows them.
struct Phone {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// Statuses to answer with, in turn, before 201.
    script: Vec<u16>,
    delay: Duration,
    /// The next offer of an incident not offered before is held
    /// unanswered (a sender that dies while waiting for the answer).
    hold_new: bool,
    /// Incidents offered to this phone so far.
    offered: HashSet<String>,
}

#[derive(Default)]
struct Inner {
    phones: HashMap<String, Phone>,
    received: Vec<Received>,
    /// Pushes that failed a check, with why: a test asserts none.
    refused: Vec<String>,
}

/// The running service.
#[derive(Clone)]
pub struct PushService {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
    /// Answers the pushes held by [`Self::hold_next_new_offer`].
    release: Arc<tokio::sync::Notify>,
}

impl PushService {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("bound");
        let svc = Self {
            addr,
            inner: Arc::default(),
            changed: Arc::default(),
            release: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/push/{id}", axum::routing::post(receive))
            .with_state(svc.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        svc
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new phone: the `PushSubscription.toJSON()` a browser would give,
    /// with fresh keys and an endpoint on this service.
    pub fn subscription(&self) -> Value {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let secret = p256::SecretKey::random(&mut rand_core_06());
        let auth: [u8; 16] = rand::random();
        let public = secret.public_key().to_encoded_point(false);
        let json = json!({
            "endpoint": format!("http://{}/push/{id}", self.addr),
            "expirationTime": null,
            "keys": {
                "p256dh": Base64UrlUnpadded::encode_string(public.as_bytes()),
                "auth": Base64UrlUnpadded::encode_string(&auth),
            }
        });
        self.lock().phones.insert(
            id,
            Phone {
                secret,
                auth,
                script: Vec::new(),
                delay: Duration::ZERO,
                hold_new: false,
                offered: HashSet::new(),
            },
        );
        json
    }

    /// The phone id of a subscription's endpoint.
    pub fn phone_of(subscription: &Value) -> String {
        subscription["endpoint"]
            .as_str()
            .and_then(|e| e.rsplit('/').next())
            .expect("an endpoint of this service")
            .to_owned()
    }

    /// The next pushes to this phone are answered with these statuses,
    /// in turn (then 201).
    pub fn script(&self, subscription: &Value, statuses: &[u16]) {
        if let Some(p) = self.lock().phones.get_mut(&Self::phone_of(subscription)) {
            p.script.extend_from_slice(statuses);
        }
    }

    /// Every push to this phone waits this long before it is answered.
    pub fn delay(&self, subscription: &Value, delay: Duration) {
        if let Some(p) = self.lock().phones.get_mut(&Self::phone_of(subscription)) {
            p.delay = delay;
        }
    }

    /// The next push to this phone of an incident it was never offered
    /// before is received and never answered (held for two minutes);
    /// everything else (retries, other pushes) is answered as usual.
    pub fn hold_next_new_offer(&self, subscription: &Value) {
        if let Some(p) = self.lock().phones.get_mut(&Self::phone_of(subscription)) {
            p.hold_new = true;
        }
    }

    /// Answers (201) every push held now: its sender was not the one to
    /// kill after all.
    pub fn release_held(&self) {
        self.release.notify_waiters();
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// What one phone received and the service took (201).
    pub fn delivered_to(&self, subscription: &Value) -> Vec<Received> {
        let phone = Self::phone_of(subscription);
        self.received()
            .into_iter()
            .filter(|r| r.subscription == phone && r.status == 201)
            .collect()
    }

    /// Pushes that failed a check (a bad token, a payload that did not
    /// decrypt): a correct server sends none.
    pub fn refused(&self) -> Vec<String> {
        self.lock().refused.clone()
    }

    /// Waits (up to 20 s) for a push matching `check`, and returns it.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&Received) -> bool) -> Received {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.changed.notified();
            if let Some(r) = self.received().into_iter().find(|r| check(r)) {
                return r;
            }
            let refused = self.refused();
            assert!(refused.is_empty(), "pushes refused: {refused:?}");
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!(
                    "no push {what} within 20 s; received: {:#?}",
                    self.received()
                        .iter()
                        .map(|r| (&r.subscription, r.status, &r.payload))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
}

/// `rand` 0.9's generator does not implement the `rand_core` 0.6 traits
/// p256 takes; an OS generator of that version does.
fn rand_core_06() -> p256::elliptic_curve::rand_core::OsRng {
    p256::elliptic_curve::rand_core::OsRng
}

async fn receive(
    State(svc): State<PushService>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let origin = format!("http://{}", svc.addr);
    let checked = check(&svc, &id, &origin, &headers, &body);
    let (delay, held, status) = {
        let mut inner = svc.lock();
        let (received, delay, status) = match checked {
            Ok(mut r) => {
                let phone = inner.phones.get_mut(&id).expect("checked");
                let status = if phone.script.is_empty() {
                    201
                } else {
                    phone.script.remove(0)
                };
                r.status = status;
                let new_offer = r.payload["type"] == "offer"
                    && r.payload["incident_id"]
                        .as_str()
                        .is_some_and(|i| phone.offered.insert(i.to_owned()));
                let held = new_offer && std::mem::take(&mut phone.hold_new);
                let delay = if held {
                    Duration::from_secs(120)
                } else {
                    phone.delay
                };
                (Some(r), (delay, held), status)
            }
            Err(why) => {
                inner.refused.push(why);
                (None, (Duration::ZERO, false), 400)
            }
        };
        if let Some(r) = received {
            inner.received.push(r);
        }
        (delay.0, delay.1, status)
    };
    let released = svc.release.notified();
    svc.changed.notify_waiters();
    if held {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = released => {}
        }
    } else {
        tokio::time::sleep(delay).await;
    }
    StatusCode::from_u16(status).expect("a status")
}

/// The RFC 8292 and RFC 8291 checks; the push as received, or why not.
fn check(
    svc: &PushService,
    id: &str,
    origin: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Received, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let auth = header("authorization").ok_or("no Authorization header")?;
    let rest = auth
        .strip_prefix("vapid ")
        .ok_or_else(|| format!("Authorization is not vapid: {auth}"))?;
    let mut token = None;
    let mut key = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(t) = part.strip_prefix("t=") {
            token = Some(t);
        } else if let Some(k) = part.strip_prefix("k=") {
            key = Some(k);
        }
    }
    let (token, key) = token.zip(key).ok_or("vapid without t= and k=")?;
    let key_bytes = Base64UrlUnpadded::decode_vec(key).map_err(|_| "k= is not base64url")?;
    let public = ES256PublicKey::from_bytes(&key_bytes).map_err(|e| format!("k=: {e}"))?;
    let options = VerificationOptions {
        allowed_audiences: Some(HashSet::from([origin.to_owned()])),
        time_tolerance: Some(web_push_native::jwt_simple::prelude::Duration::from_secs(5)),
        ..Default::default()
    };
    let claims = public
        .verify_token::<NoCustomClaims>(token, Some(options))
        .map_err(|e| format!("VAPID token refused: {e}"))?;
    let expires = claims
        .expires_at
        .ok_or("VAPID token without exp")?
        .as_secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    if expires > now + 24 * 3600 {
        return Err("VAPID token valid for more than 24 h (RFC 8292)".into());
    }
    let subject = claims.subject.ok_or("VAPID token without sub")?;
    if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
        return Err(format!("VAPID sub {subject:?} is not mailto: or https:"));
    }
    if header("content-encoding") != Some("aes128gcm") {
        return Err("Content-Encoding is not aes128gcm".into());
    }
    let ttl = header("ttl")
        .ok_or("no TTL header (RFC 8030 requires it)")?
        .parse::<u64>()
        .map_err(|_| "TTL is not a number")?;
    let (secret, auth) = {
        let inner = svc.lock();
        let phone = inner
            .phones
            .get(id)
            .ok_or_else(|| format!("no phone {id} here"))?;
        (phone.secret.clone(), phone.auth)
    };
    let plain = web_push_native::decrypt(body.to_vec(), &secret, &Auth::clone_from_slice(&auth))
        .map_err(|e| format!("payload does not decrypt: {e}"))?;
    let payload: Value =
        serde_json::from_slice(&plain).map_err(|e| format!("payload is not JSON: {e}"))?;
    Ok(Received {
        subscription: id.to_owned(),
        payload,
        ttl: Some(ttl),
        urgency: header("urgency").map(str::to_owned),
        topic: header("topic").map(str::to_owned),
        vapid_key: key.to_owned(),
        status: 0,
        at: Instant::now(),
    })
}
