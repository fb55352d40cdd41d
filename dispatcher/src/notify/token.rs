//! Offer tokens: what lets a notification's Accept button, or the link in
//! an SMS, act on one offer without a login.
//!
//! A token is `<offer id>.<base64url HMAC-SHA256(key, purpose ‖ 0 ‖ offer id)>`
//! with a key the server made at its first start and keeps in the store.
//! Nothing is stored per token: it is checked by computing it again, and
//! it dies with its offer (an offer answered, withdrawn or expired takes
//! no action; a link opens once, marked on the offer). Each purpose has
//! its own token, so a push's action token cannot open a session.

use base64ct::{Base64UrlUnpadded, Encoding};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Accept or decline the offer (the notification's buttons).
    Act,
    /// Open the offer in the app, once, logging its steward in (SMS).
    Link,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::Act => b"act",
            Self::Link => b"link",
        }
    }
}

/// The server's token key.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

impl TokenKey {
    /// A fresh random key, base64url, as the store keeps it.
    pub fn generate() -> String {
        Base64UrlUnpadded::encode_string(&rand::random::<[u8; 32]>())
    }

    /// The key the store kept; `None` if it is not 32 bytes of base64url.
    pub fn from_stored(text: &str) -> Option<Self> {
        let bytes = Base64UrlUnpadded::decode_vec(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    fn mac(&self, purpose: Purpose, offer_id: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes 32 bytes");
        mac.update(purpose.label());
        mac.update(&[0]);
        mac.update(offer_id.as_bytes());
        mac
    }

    /// The token for `purpose` on `offer_id`.
    pub fn token(&self, purpose: Purpose, offer_id: &str) -> String {
        let tag = self.mac(purpose, offer_id).finalize().into_bytes();
        format!("{offer_id}.{}", Base64UrlUnpadded::encode_string(&tag))
    }

    /// The offer a token names, if it is ours and for `purpose`;
    /// compared in constant time.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<String> {
        if token.len() > 200 {
            return None;
        }
        let (offer_id, tag) = token.rsplit_once('.')?;
        if offer_id.is_empty() {
            return None;
        }
        let tag = Base64UrlUnpadded::decode_vec(tag).ok()?;
        self.mac(purpose, offer_id)
            .verify_slice(&tag)
            .ok()
            .map(|()| offer_id.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_offer_for_its_purpose_only() {
        let key = TokenKey::from_stored(&TokenKey::generate()).unwrap();
        let act = key.token(Purpose::Act, "off-1");
        assert_eq!(key.verify(Purpose::Act, &act).as_deref(), Some("off-1"));
        assert_eq!(key.verify(Purpose::Link, &act), None, "purposes differ");
        let other = TokenKey::from_stored(&TokenKey::generate()).unwrap();
        assert_eq!(other.verify(Purpose::Act, &act), None, "another server's");
        // Another offer's id with this offer's tag.
        let (_, tag) = act.rsplit_once('.').unwrap();
        assert_eq!(key.verify(Purpose::Act, &format!("off-2.{tag}")), None);
        for bad in ["", ".", "off-1.", "off-1.!!", "nodot", &"x".repeat(500)] {
            assert_eq!(key.verify(Purpose::Act, bad), None, "{bad}");
        }
        assert!(TokenKey::from_stored("short").is_none());
    }
}
