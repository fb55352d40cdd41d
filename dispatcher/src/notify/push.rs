//! Web Push: one message to one phone, through the push service of the
//! phone's browser (RFC 8030), the payload encrypted to the phone's keys
//! (RFC 8291, aes128gcm) and the request signed with the server's VAPID
//! key (RFC 8292). The cryptography is `web-push-native`'s; this module
//! only chooses the headers and reads the answer.
//!
//! Headers: `TTL` (an offer's push is worthless once the offer expires),
//! `Urgency: high` (delivered at once, even to a phone saving battery),
//! `Topic` (a later message of the same incident replaces one the push
//! service still holds: a close overtakes an offer the phone never got).
//! The VAPID token is made once per push service and reused for hours.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64ct::{Base64UrlUnpadded, Encoding};
use sha2::{Digest, Sha256};
use web_push_native::jwt_simple::algorithms::{
    ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair,
};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::{Auth, WebPushBuilder, p256};

use crate::domain::PushSubscription;

/// One push request, connection included, at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a VAPID token is valid (RFC 8292 allows at most 24 h)…
const VAPID_VALID: Duration = Duration::from_secs(12 * 3600);
/// …and how long one is reused before a fresh one is signed.
const VAPID_REUSE: Duration = Duration::from_secs(6 * 3600);
/// The most a payload may be: push services take 4 KiB of ciphertext.
pub const MAX_PAYLOAD: usize = 3000;

/// The server's VAPID key pair and the tokens signed with it.
pub struct Vapid {
    key: ES256KeyPair,
    /// The public key as browsers take it (`applicationServerKey`).
    public: String,
    /// RFC 8292 `sub`: who the push services may write to.
    subject: String,
    /// Authorization header per push service origin, with when it was made.
    tokens: Mutex<HashMap<String, (http::HeaderValue, Instant)>>,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish()
    }
}

impl Vapid {
    /// A fresh private key, base64url, as the store keeps it.
    pub fn generate() -> String {
        Base64UrlUnpadded::encode_string(&ES256KeyPair::generate().to_bytes())
    }

    /// The key pair the store kept.
    pub fn from_stored(private: &str, subject: &str) -> Result<Self, String> {
        let bytes = Base64UrlUnpadded::decode_vec(private)
            .map_err(|_| "the stored VAPID key is not base64url".to_owned())?;
        let key = ES256KeyPair::from_bytes(&bytes)
            .map_err(|e| format!("the stored VAPID key is not a P-256 key: {e}"))?;
        let public = Base64UrlUnpadded::encode_string(
            &key.public_key().public_key().to_bytes_uncompressed(),
        );
        Ok(Self {
            key,
            public,
            subject: subject.to_owned(),
            tokens: Mutex::default(),
        })
    }

    /// base64url of the uncompressed P-256 point: `GET /api/v1/push/key`.
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization: vapid t=…, k=…` header for a push service.
    ///
    /// The token is signed here with `jwt-simple` rather than through
    /// `web-push-native`'s `VapidSignature`, whose audience drops the
    /// port: RFC 8292 wants the push resource's origin, port included
    /// when it is not the scheme's default.
    fn authorization(&self, endpoint: &http::Uri) -> Result<http::HeaderValue, String> {
        let origin = origin(endpoint).ok_or("the endpoint has no scheme or host")?;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((value, made)) = tokens.get(&origin)
            && made.elapsed() < VAPID_REUSE
        {
            return Ok(value.clone());
        }
        let claims = Claims::create(VAPID_VALID.into())
            .with_audience(origin.clone())
            .with_subject(self.subject.clone());
        let token = self
            .key
            .sign(claims)
            .map_err(|e| format!("signing the VAPID token: {e}"))?;
        let value = http::HeaderValue::from_str(&format!("vapid t={token}, k={}", self.public))
            .map_err(|e| format!("the VAPID header: {e}"))?;
        // One a push service; those not used for a while go.
        tokens.retain(|_, (_, made)| made.elapsed() < VAPID_REUSE);
        tokens.insert(origin, (value.clone(), Instant::now()));
        Ok(value)
    }
}

/// RFC 6454 origin of a URI: `scheme://host[:port]`, the port only when
/// it is not the scheme's default.
fn origin(uri: &http::Uri) -> Option<String> {
    let scheme = uri.scheme_str()?;
    let host = uri.host()?;
    let default = match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(port) if Some(port) != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// How soon a push service delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// An offer: at once, whatever the phone's battery.
    High,
    /// A close or a test.
    Normal,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The JSON the service worker reads.
    pub payload: &'a [u8],
    /// Seconds the push service keeps it for a phone that is offline.
    pub ttl_s: u64,
    pub urgency: Urgency,
    /// Replaces an undelivered message with the same topic.
    pub topic: Option<String>,
}

/// The RFC 8030 topic of an incident's messages (at most 32 base64url
/// characters).
pub fn topic(incident_id: &str) -> String {
    let digest = Sha256::digest(incident_id.as_bytes());
    Base64UrlUnpadded::encode_string(&digest)[..32].to_owned()
}

/// How one push went.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// The push service took it (201).
    Delivered,
    /// 404 or 410: the phone unsubscribed or the subscription expired.
    Gone { status: u16 },
    /// 429, 5xx (`status`), a timeout or no connection (no status):
    /// worth trying again.
    Transient {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good (our request is wrong: a payload too large, a
    /// VAPID key the service does not accept); no status when it was
    /// never sent.
    Refused { status: Option<u16>, error: String },
}

/// Encrypts `message` to `sub` and sends it.
pub async fn send(
    http: &reqwest::Client,
    vapid: &Vapid,
    sub: &PushSubscription,
    message: &Message<'_>,
) -> Sent {
    let request = match build(vapid, sub, message) {
        Ok(r) => r,
        Err(error) => {
            return Sent::Refused {
                status: None,
                error,
            };
        }
    };
    let response = match http.execute(request).await {
        Ok(r) => r,
        Err(e) => {
            return Sent::Transient {
                status: None,
                // Without the URL: an endpoint is a capability.
                error: e.without_url().to_string(),
                retry_after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Sent::Delivered;
    }
    let code = status.as_u16();
    let retry_after =
        crate::notify::outbox::retry_after_s(response.headers()).map(Duration::from_secs);
    // The status only: what a push service says back is the operator's
    // to read (in the log), not a steward's (the test alert, their
    // phones' list), since a steward chose the endpoint.
    let text = response.text().await.unwrap_or_default();
    let text: String = text.trim().chars().take(300).collect();
    if !text.is_empty() {
        tracing::info!(status = code, answer = %crate::untrusted::text(&text), "push service refused a push");
    }
    let error = format!("HTTP {code}");
    match code {
        404 | 410 => Sent::Gone { status: code },
        429 | 500..=599 => Sent::Transient {
            status: Some(code),
            error,
            retry_after,
        },
        _ => Sent::Refused {
            status: Some(code),
            error,
        },
    }
}

fn build(
    vapid: &Vapid,
    sub: &PushSubscription,
    message: &Message<'_>,
) -> Result<reqwest::Request, String> {
    if message.payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "payload of {} bytes is too large",
            message.payload.len()
        ));
    }
    let endpoint: http::Uri = sub
        .endpoint
        .parse()
        .map_err(|e| format!("stored endpoint is not a URI: {e}"))?;
    let point = Base64UrlUnpadded::decode_vec(&sub.p256dh)
        .map_err(|_| "stored p256dh is not base64url".to_owned())?;
    let ua_public = p256::PublicKey::from_sec1_bytes(&point)
        .map_err(|_| "stored p256dh is not a P-256 key".to_owned())?;
    let auth = Base64UrlUnpadded::decode_vec(&sub.auth)
        .ok()
        .filter(|a| a.len() == 16)
        .ok_or("stored auth secret is not 16 bytes")?;
    let mut request =
        WebPushBuilder::new(endpoint.clone(), ua_public, Auth::clone_from_slice(&auth))
            .build(message.payload.to_vec())
            .map_err(|e| format!("encrypting the payload: {e}"))?;
    let headers = request.headers_mut();
    headers.insert("TTL", http::HeaderValue::from(message.ttl_s));
    headers.insert(
        "Urgency",
        http::HeaderValue::from_static(match message.urgency {
            Urgency::High => "high",
            Urgency::Normal => "normal",
        }),
    );
    if let Some(topic) = &message.topic
        && let Ok(v) = http::HeaderValue::from_str(topic)
    {
        headers.insert("Topic", v);
    }
    headers.insert(http::header::AUTHORIZATION, vapid.authorization(&endpoint)?);
    let mut request =
        reqwest::Request::try_from(request).map_err(|e| format!("building the request: {e}"))?;
    *request.timeout_mut() = Some(TIMEOUT);
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_key_gives_back_its_public_half_and_a_token_per_origin() {
        let stored = Vapid::generate();
        let v = Vapid::from_stored(&stored, "mailto:ops@example.org").unwrap();
        let public = Base64UrlUnpadded::decode_vec(v.public_key()).unwrap();
        assert_eq!(public.len(), 65, "uncompressed point");
        assert_eq!(public[0], 4);
        let a = v
            .authorization(&"https://push.example/a".parse().unwrap())
            .unwrap();
        let b = v
            .authorization(&"https://push.example/b".parse().unwrap())
            .unwrap();
        assert_eq!(a, b, "one token per push service");
        let c = v
            .authorization(&"https://other.example/a".parse().unwrap())
            .unwrap();
        assert_ne!(a, c);
        assert!(a.to_str().unwrap().starts_with("vapid t="));
        assert!(Vapid::from_stored("not-a-key", "mailto:x").is_err());
    }

    #[test]
    fn the_audience_is_the_origin_with_a_port_only_when_it_is_not_the_default() {
        let o = |u: &str| origin(&u.parse().unwrap()).unwrap();
        assert_eq!(
            o("https://fcm.googleapis.com/fcm/send/x"),
            "https://fcm.googleapis.com"
        );
        assert_eq!(o("https://push.example:443/x"), "https://push.example");
        assert_eq!(o("http://127.0.0.1:8123/push/1"), "http://127.0.0.1:8123");
    }

    #[test]
    fn topics_fit_rfc_8030() {
        let t = topic("inc-7f3a");
        assert_eq!(t.len(), 32);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(t, topic("inc-7f3b"));
    }
}
