//! Reaching a steward whose app is not on screen: the phone in a pocket,
//! locked, in the cold.
//!
//! Every offer carries a plan ([`ladder`]): a push at once, the push
//! again every `notify.repush_s`, then SMS and a call at the ladder's
//! times, per priority. The store writes one outbox row per step with the
//! offer and cancels the steps not yet sent when the offer ends; the
//! outbox worker hands each due row to [`Reach`], which checks the offer
//! is still live, says it in the steward's language ([`text`]) and sends
//! it: Web Push through the phone's push service ([`push`]), SMS and
//! calls through the gateways the settings name ([`gateway`]). A push's
//! Accept and Decline buttons, and an SMS's link, act on the offer with a
//! token only that offer's steward received ([`token`]); a reply to an
//! SMS or a key pressed on a call comes back through a signed webhook
//! ([`reply`]).
//!
//! Failures are visible before they matter: every step is a delivery
//! listed on the incident, and each phone keeps how its last push went,
//! which the board's roster shows.
//!
//! The room also holds what carries every change out of the process:
//! the [`hub`] (the stream log fanned out to SSE connections, and the
//! nudges after each commit) and the [`outbox`] (webhooks, device
//! commands and the steps above, claimed, signed, retried, never lost).

pub mod gateway;
pub mod hub;
pub mod ladder;
pub mod outbox;
pub mod push;
pub mod reply;
pub mod text;
pub mod token;

mod deliver;

pub use deliver::{REPLY, Reach, TestResult};

/// The keys the server made at its first start, kept by the store and
/// shared by every instance.
#[derive(Debug)]
pub struct Keys {
    /// Signs every push (RFC 8292); its public half is what browsers
    /// subscribe with.
    pub vapid: push::Vapid,
    /// Signs offer tokens.
    pub tokens: token::TokenKey,
}

/// The store's names for them.
pub const VAPID_KEY: &str = "vapid_private";
pub const TOKEN_KEY: &str = "offer_tokens";
