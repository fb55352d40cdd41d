//! How many password guesses a login gets, counted in the database so
//! several instances sharing it agree.
//!
//! - An attempt is counted when it starts, in the same step that checks
//!   the limit (a compare-and-swap on its row, retried when another
//!   attempt got there first), and given back when the password was
//!   right: concurrent guesses cannot slip past the limit.
//! - From an unknown device, a login counts against its username
//!   ([`USER_LIMIT`]) and its source address ([`ADDRESS_LIMIT`]; an IPv6
//!   address by its /64): past either, 429 with `Retry-After` until the
//!   lock ends, whatever the password.
//! - A device that logged in before sends the token it was given then
//!   (OWASP's "device cookie"): it counts against itself alone, with a
//!   short wait after each failure that doubles ([`DEVICE_BACKOFF`]), so
//!   the real owner is never locked out by someone guessing their
//!   password elsewhere, or from the same address. After
//!   [`DEVICE_MAX_FAILURES`] failures in a row the token is no longer
//!   trusted.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::ApiError;
use crate::store::Store;
use crate::store::logins::Throttle;

/// A lock: `max` attempts within `window_ms`, then none for `lock_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub max: i64,
    pub window_ms: i64,
    pub lock_ms: i64,
}

/// A backoff: after the n-th failure in a row, wait `base_ms · 2ⁿ⁻¹`, at
/// most `cap_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: i64,
    pub cap_ms: i64,
}

const MINUTE_MS: i64 = 60_000;

/// Failed logins for one username, from unknown devices, before a lock.
pub const USER_LIMIT: Lock = Lock {
    max: 5,
    window_ms: 15 * MINUTE_MS,
    lock_ms: 5 * MINUTE_MS,
};
/// Failed logins from one address, from unknown devices, before a lock
/// (`max` is `auth.failures_per_address`: [`address_limit`]).
pub const ADDRESS_LIMIT: Lock = Lock {
    max: 20,
    window_ms: 15 * MINUTE_MS,
    lock_ms: 5 * MINUTE_MS,
};

/// [`ADDRESS_LIMIT`] with the configured number of failures.
pub fn address_limit(failures: u32) -> Lock {
    Lock {
        max: i64::from(failures),
        ..ADDRESS_LIMIT
    }
}
/// A known device's wait after failures: 1 s, 2 s, 4 s… up to a minute.
pub const DEVICE_BACKOFF: Backoff = Backoff {
    base_ms: 1_000,
    cap_ms: MINUTE_MS,
};
/// Failures in a row after which a device token is no longer trusted.
pub const DEVICE_MAX_FAILURES: i64 = 10;
/// Counts untouched this long are deleted by the sweeper.
pub const STALE_MS: i64 = 60 * MINUTE_MS;

/// Which rule a key follows.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    Lock(Lock),
    Backoff(Backoff),
}

impl Rule {
    /// The row after one more attempt at `now_ms`, or how many seconds to
    /// wait.
    pub fn take(self, row: Option<Throttle>, now_ms: i64) -> Result<Throttle, u64> {
        let row = row.unwrap_or_default();
        if row.blocked_until_ms > now_ms {
            let wait_ms = row.blocked_until_ms - now_ms;
            return Err(((wait_ms + 999) / 1000).max(1).unsigned_abs());
        }
        match self {
            Rule::Lock(l) => {
                let failures = if now_ms - row.last_ms >= l.window_ms {
                    1
                } else {
                    row.failures + 1
                };
                Ok(Throttle {
                    failures,
                    last_ms: now_ms,
                    blocked_until_ms: if failures >= l.max {
                        now_ms + l.lock_ms
                    } else {
                        0
                    },
                })
            }
            Rule::Backoff(b) => {
                let failures = row.failures + 1;
                let doublings = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(20);
                let wait = b.base_ms.saturating_mul(1 << doublings).min(b.cap_ms);
                Ok(Throttle {
                    failures,
                    last_ms: now_ms,
                    blocked_until_ms: now_ms + wait,
                })
            }
        }
    }

    /// The row after an attempt taken from it proved right.
    pub fn give_back(self, row: Throttle) -> Throttle {
        let failures = (row.failures - 1).max(0);
        let blocked_until_ms = match self {
            Rule::Lock(l) if failures < l.max => 0,
            Rule::Lock(_) => row.blocked_until_ms,
            Rule::Backoff(_) => 0,
        };
        Throttle {
            failures,
            last_ms: row.last_ms,
            blocked_until_ms,
        }
    }
}

/// Counts one attempt for `key` under `rule`, or says how long to wait.
pub async fn take(
    store: &dyn Store,
    key: &str,
    rule: Rule,
    now: DateTime<Utc>,
) -> Result<Result<(), u64>, ApiError> {
    let now_ms = now.timestamp_millis();
    loop {
        let old = store.throttle(key).await?;
        let new = match rule.take(old, now_ms) {
            Ok(new) => new,
            Err(wait_s) => return Ok(Err(wait_s)),
        };
        if store.swap_throttle(key, old, new).await? {
            return Ok(Ok(()));
        }
    }
}

/// Gives back an attempt counted for `key` that proved right.
pub async fn give_back(store: &dyn Store, key: &str, rule: Rule) -> Result<(), ApiError> {
    loop {
        let Some(old) = store.throttle(key).await? else {
            return Ok(());
        };
        if store
            .swap_throttle(key, Some(old), rule.give_back(old))
            .await?
        {
            return Ok(());
        }
    }
}

/// Failures in a row counted for `key`.
pub async fn failures(store: &dyn Store, key: &str) -> Result<i64, ApiError> {
    Ok(store.throttle(key).await?.map_or(0, |t| t.failures))
}

pub fn user_key(username: &str) -> String {
    format!("user:{username}")
}

pub fn device_key(token_hash: &str) -> String {
    format!("device:{token_hash}")
}

/// An address's key: IPv4 whole, IPv6 by its /64 (one subscriber's
/// share, which they may rotate through at will).
pub fn address_key(addr: Option<IpAddr>) -> String {
    match addr.map(|a| a.to_canonical()) {
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "addr:unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_after_the_limit_then_one_more_after_it_ends() {
        let rule = Rule::Lock(USER_LIMIT);
        let mut row = None;
        for _ in 0..USER_LIMIT.max {
            row = Some(rule.take(row, 0).expect("allowed"));
        }
        assert_eq!(rule.take(row, 1000), Err(299));
        let after = USER_LIMIT.lock_ms;
        let again = rule.take(row, after).expect("the lock ended");
        assert!(
            rule.take(Some(again), after).is_err(),
            "locked again at once"
        );
        // Far apart, failures do not add up.
        let old = Throttle {
            failures: 4,
            last_ms: 0,
            blocked_until_ms: 0,
        };
        assert_eq!(
            rule.take(Some(old), USER_LIMIT.window_ms).unwrap().failures,
            1
        );
    }

    #[test]
    fn a_known_device_waits_longer_each_time() {
        let rule = Rule::Backoff(DEVICE_BACKOFF);
        let first = rule.take(None, 0).unwrap();
        assert_eq!(first.blocked_until_ms, 1000);
        assert_eq!(rule.take(Some(first), 500), Err(1));
        let second = rule.take(Some(first), 1000).unwrap();
        assert_eq!(second.blocked_until_ms, 3000);
        let mut row = second;
        for _ in 0..20 {
            row = rule.take(Some(row), row.blocked_until_ms).unwrap();
        }
        assert_eq!(row.blocked_until_ms - row.last_ms, DEVICE_BACKOFF.cap_ms);
        // A right password gives the attempt back and clears the wait.
        let back = rule.give_back(first);
        assert_eq!((back.failures, back.blocked_until_ms), (0, 0));
    }

    #[test]
    fn a_right_password_unlocks_only_below_the_limit() {
        let rule = Rule::Lock(ADDRESS_LIMIT);
        let at_limit = Throttle {
            failures: ADDRESS_LIMIT.max,
            last_ms: 0,
            blocked_until_ms: 99,
        };
        assert_eq!(rule.give_back(at_limit).blocked_until_ms, 0);
        let over = Throttle {
            failures: ADDRESS_LIMIT.max + 2,
            ..at_limit
        };
        assert_eq!(rule.give_back(over).blocked_until_ms, 99);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            address_key(Some("10.0.0.1".parse().unwrap())),
            "addr:10.0.0.1"
        );
        assert_eq!(
            address_key(Some("::ffff:10.0.0.1".parse().unwrap())),
            "addr:10.0.0.1"
        );
        assert_eq!(
            address_key(Some("2001:db8:1:2:3:4:5:6".parse().unwrap())),
            address_key(Some("2001:db8:1:2:ffff::1".parse().unwrap()))
        );
        assert_eq!(address_key(None), "addr:unknown");
    }
}
