//! Reaching a steward whose app is not on screen: the channels and
//! languages, a step of the plan that reaches them about one offer, what
//! those messages carry, and the phones registered for Web Push.
//!
//! What a message carries is deliberately thin: priority, kind, the
//! elder's name, distance and time left. A lock screen is seen by whoever
//! holds the phone, so conditions, medicines and contacts stay inside the
//! app, behind the steward's login.

use base64ct::{Base64UrlUnpadded, Encoding};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{IncidentId, IncidentKind, Priority, StewardId};

/// A way to reach a steward about an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    /// Web Push to every phone the steward registered.
    Push,
    /// A text message to the steward's phone number.
    Sms,
    /// A phone call to it.
    Voice,
}

impl ContactChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Sms => "sms",
            Self::Voice => "voice",
        }
    }
}

/// A language the dispatcher writes notifications in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    /// Simplified Chinese.
    Zh,
    En,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zh => "zh",
            Self::En => "en",
        }
    }

    /// `zh`, `zh-CN`, `en-GB`… as one of ours.
    pub fn parse(tag: &str) -> Option<Self> {
        let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Self::Zh),
            "en" => Some(Self::En),
            _ => None,
        }
    }

    /// The first of a steward's languages we write, else `fallback`.
    pub fn of_steward(languages: &[String], fallback: Lang) -> Lang {
        languages
            .iter()
            .find_map(|l| Self::parse(l))
            .unwrap_or(fallback)
    }
}

/// One message of the plan that reaches a steward about an offer: sent
/// on `channel` at `at` unless the offer was answered or ended first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReachStep {
    pub channel: ContactChannel,
    pub at: DateTime<Utc>,
    /// 0 for the ladder's own step, n for the n-th repeat of the push.
    pub repeat: u32,
}

/// What an offer's push, SMS or call says, kept on its outbox row: only
/// what a lock screen may show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferView {
    pub incident_id: IncidentId,
    pub offer_id: String,
    pub steward_id: StewardId,
    pub priority: Priority,
    pub kind: IncidentKind,
    pub elder_name: Option<String>,
    pub distance_m: Option<f64>,
    pub expires_at: DateTime<Utc>,
    /// 0 for the first push, n for the n-th repeat.
    #[serde(default)]
    pub repeat: u32,
}

/// What a push tells a steward a supervisor assigned them an incident
/// (their app may be closed, as for an offer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignedView {
    pub incident_id: IncidentId,
    pub steward_id: StewardId,
    pub priority: Priority,
    pub kind: IncidentKind,
    pub elder_name: Option<String>,
}

/// Why an offer's notification is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// They accepted (on this phone or another).
    Accepted,
    /// They declined.
    Declined,
    /// Nobody answered in time.
    Expired,
    /// Another steward accepted first.
    Taken,
    Cancelled,
    Resolved,
    /// A supervisor assigned the incident (or them elsewhere).
    Reassigned,
    /// They went off duty.
    OffDuty,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Expired => "expired",
            Self::Taken => "taken",
            Self::Cancelled => "cancelled",
            Self::Resolved => "resolved",
            Self::Reassigned => "reassigned",
            Self::OffDuty => "off_duty",
        }
    }
}

/// What closes an offer's notification, kept on its outbox row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseNote {
    pub incident_id: IncidentId,
    pub offer_id: String,
    pub steward_id: StewardId,
    pub reason: CloseReason,
    pub elder_name: Option<String>,
}

/// A phone registered for Web Push, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PushSubscription {
    pub id: String,
    pub steward_id: StewardId,
    /// The push service's URL for this phone (it is a capability: shown
    /// to its own steward and supervisors only).
    pub endpoint: String,
    /// The phone's P-256 public key, base64url (RFC 8291 `ua_public`).
    #[serde(skip)]
    pub p256dh: String,
    /// The phone's 16-byte auth secret, base64url: a secret.
    #[serde(skip)]
    pub auth: String,
    pub expiration_time: Option<DateTime<Utc>>,
    /// The language its notifications are written in.
    pub lang: Lang,
    pub created_at: DateTime<Utc>,
    /// The last push sent to it, and how it went.
    pub last_push_at: Option<DateTime<Utc>>,
    pub last_ok: Option<bool>,
    pub last_error: Option<String>,
}

/// The browser's `PushSubscription.toJSON()`, as it comes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionJson {
    pub endpoint: String,
    /// Milliseconds since the epoch, or null.
    #[serde(default)]
    pub expiration_time: Option<f64>,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionKeys {
    /// base64url of the uncompressed P-256 point (65 bytes).
    pub p256dh: String,
    /// base64url of 16 random bytes.
    pub auth: String,
}

/// A subscription that passed every check: a push can be encrypted to it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub expiration_time: Option<DateTime<Utc>>,
}

/// The longest endpoint taken: browsers' are a few hundred characters.
const MAX_ENDPOINT: usize = 2048;

impl SubscriptionJson {
    /// Checks the endpoint (an `https` URL unless `allow_http`) and the
    /// keys (a point on P-256, a 16-byte secret), so a push can always be
    /// encrypted to what is stored. The error names the field.
    pub fn parse(self, allow_http: bool) -> Result<NewSubscription, String> {
        if self.endpoint.len() > MAX_ENDPOINT {
            return Err(format!("endpoint: longer than {MAX_ENDPOINT} characters"));
        }
        let url = reqwest::Url::parse(&self.endpoint)
            .map_err(|e| format!("endpoint: not a URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => {
                return Err(
                    "endpoint: must be https (push services are; notify.push.allow_http is for tests)"
                        .into(),
                );
            }
            other => return Err(format!("endpoint: scheme {other:?} is not https")),
        }
        let Some(host) = url.host() else {
            return Err("endpoint: has no host".into());
        };
        // Push services are named hosts on the internet. An address, or
        // a name for this machine or its network, would have the server
        // call inside its own walls for whoever subscribes.
        if !allow_http {
            let inside = match host {
                url::Host::Ipv4(_) | url::Host::Ipv6(_) => true,
                url::Host::Domain(d) => {
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    !d.contains('.')
                        || ["localhost", ".local", ".internal", ".lan", ".home.arpa"]
                            .iter()
                            .any(|s| d == s.trim_start_matches('.') || d.ends_with(s))
                }
            };
            if inside {
                return Err(format!(
                    "endpoint: {host} is not a push service on the internet"
                ));
            }
        }
        if url.cannot_be_a_base() {
            return Err("endpoint: has no host".into());
        }
        // The request is built from an `http::Uri`: it must parse as one.
        if self.endpoint.parse::<http::Uri>().is_err() {
            return Err("endpoint: not a valid request URI".into());
        }
        let point = Base64UrlUnpadded::decode_vec(self.keys.p256dh.trim_end_matches('='))
            .map_err(|_| "keys.p256dh: not base64url".to_owned())?;
        if web_push_native::p256::PublicKey::from_sec1_bytes(&point).is_err() {
            return Err("keys.p256dh: not a P-256 public key".into());
        }
        let auth = Base64UrlUnpadded::decode_vec(self.keys.auth.trim_end_matches('='))
            .map_err(|_| "keys.auth: not base64url".to_owned())?;
        if auth.len() != 16 {
            return Err(format!("keys.auth: {} bytes, not 16", auth.len()));
        }
        let expiration_time = match self.expiration_time {
            None => None,
            Some(ms) if (0.0..1e15).contains(&ms) => DateTime::from_timestamp_millis(ms as i64),
            Some(_) => return Err("expirationTime: not a time in milliseconds".into()),
        };
        Ok(NewSubscription {
            endpoint: self.endpoint,
            p256dh: Base64UrlUnpadded::encode_string(&point),
            auth: Base64UrlUnpadded::encode_string(&auth),
            expiration_time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(endpoint: &str, p256dh: &str, auth: &str) -> SubscriptionJson {
        SubscriptionJson {
            endpoint: endpoint.into(),
            expiration_time: None,
            keys: SubscriptionKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
        }
    }

    // A real browser's keys (the web-push-native documentation's example).
    const P256DH: &str =
        "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
    const AUTH: &str = "_ordMnz7uTCmrpBTeUV4Bw";

    #[test]
    fn a_browser_subscription_parses_and_bad_ones_name_their_field() {
        let ok = json("https://fcm.googleapis.com/fcm/send/abc", P256DH, AUTH)
            .parse(false)
            .unwrap();
        assert_eq!(ok.auth, AUTH);
        let e = |s: SubscriptionJson, http| s.parse(http).unwrap_err();
        assert!(e(json("http://127.0.0.1:9/p", P256DH, AUTH), false).contains("https"));
        assert!(
            json("http://127.0.0.1:9/p", P256DH, AUTH)
                .parse(true)
                .is_ok()
        );
        assert!(e(json("ftp://x/p", P256DH, AUTH), true).starts_with("endpoint"));
        for inside in [
            "https://10.0.0.5/p",
            "https://[::1]/p",
            "https://localhost/p",
            "https://printer.local/p",
            "https://intranet/p",
        ] {
            assert!(
                e(json(inside, P256DH, AUTH), false).starts_with("endpoint"),
                "{inside}"
            );
        }
        assert!(e(json("not a url", P256DH, AUTH), true).starts_with("endpoint"));
        assert!(e(json("https://x.example/p", "AAAA", AUTH), false).starts_with("keys.p256dh"));
        assert!(e(json("https://x.example/p", "!!", AUTH), false).starts_with("keys.p256dh"));
        assert!(e(json("https://x.example/p", P256DH, "AAAA"), false).starts_with("keys.auth"));
        // A point off the curve.
        let mut bad = Base64UrlUnpadded::decode_vec(P256DH).unwrap();
        bad[40] ^= 1;
        let bad = Base64UrlUnpadded::encode_string(&bad);
        assert!(e(json("https://x.example/p", &bad, AUTH), false).starts_with("keys.p256dh"));
    }

    #[test]
    fn languages_read_as_ours() {
        assert_eq!(Lang::parse("zh-CN"), Some(Lang::Zh));
        assert_eq!(Lang::parse("EN_gb"), Some(Lang::En));
        assert_eq!(Lang::parse("bo"), None);
        let langs = vec!["bo".to_owned(), "en".to_owned()];
        assert_eq!(Lang::of_steward(&langs, Lang::Zh), Lang::En);
        assert_eq!(Lang::of_steward(&[], Lang::Zh), Lang::Zh);
    }
}
