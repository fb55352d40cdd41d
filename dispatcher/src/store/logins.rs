//! What logins keep in the database, so every instance sharing it agrees:
//! failure counts ([`Throttle`]), the devices a user logged in from, and
//! sessions' ends (a changed password or role, expiry). The policy that
//! reads and writes them is [`crate::api::login_limits`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::{Role, Scope, StewardId, User};

/// One limited key's count (`user:{name}`, `addr:{ip}`, `device:{hash}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Attempts counted (an attempt counts when it starts; a success
    /// gives it back).
    pub failures: i64,
    /// When the last one was counted, Unix ms.
    pub last_ms: i64,
    /// No attempt before this, Unix ms (0: none).
    pub blocked_until_ms: i64,
}

/// A change to a login; `None` fields stay.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub password_hash: Option<String>,
    /// The role and, for a steward, the steward the login acts as.
    pub role: Option<(Role, Option<StewardId>)>,
    /// What a supervisor sees (`Scope::Site`: the whole site).
    pub scope: Option<Scope>,
}

/// Logins' shared state; every [`super::Store`] implements it.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// The count for `key`, if any.
    async fn throttle(&self, key: &str) -> StoreResult<Option<Throttle>>;
    /// Stores `new` for `key` only if it still holds `old` (`None`: no
    /// row): false when another attempt changed it first, so the caller
    /// reads again. Deciding and counting are then one step, whoever
    /// races.
    async fn swap_throttle(
        &self,
        key: &str,
        old: Option<Throttle>,
        new: Throttle,
    ) -> StoreResult<bool>;
    /// Forgets `key`'s count.
    async fn clear_throttle(&self, key: &str) -> StoreResult<()>;

    /// Remembers a device a user logged in from (only the token's hash).
    async fn insert_known_device(
        &self,
        token_hash: &str,
        username: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user a live device token belongs to.
    async fn known_device(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<String>>;

    /// Changes a login's password and/or role and, in the same
    /// transaction, ends its sessions (and, with a new password, forgets
    /// its known devices). `NotFound` without the user, `Invalid` when
    /// the steward does not exist.
    async fn change_user(&self, username: &str, change: &UserChange) -> StoreResult<User>;

    /// Deletes up to `batch` expired sessions, known devices and counts
    /// untouched since `stale_ms` (Unix ms); how many rows went.
    async fn delete_expired_logins(
        &self,
        now: DateTime<Utc>,
        stale_ms: i64,
        batch: i64,
    ) -> StoreResult<u64>;
}
