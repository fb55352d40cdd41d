//! Logins and their sessions.

use super::*;

/// Logins and sessions; every [`Store`] implements it.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// `Conflict` on a taken username, `Invalid` when `steward_id` names
    /// no steward.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn user(&self, username: &str) -> StoreResult<Option<User>>;
    async fn users(&self) -> StoreResult<Vec<User>>;
    /// Also ends the user's sessions.
    async fn delete_user(&self, username: &str) -> StoreResult<()>;
    /// Stores a session; only the token's hash is kept.
    async fn insert_session(
        &self,
        token_hash: &str,
        username: &str,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Ends one session (logout); ending one that is gone is not an error.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// The user a live session belongs to.
    async fn session_user(&self, token_hash: &str, now: DateTime<Utc>)
    -> StoreResult<Option<User>>;
}
