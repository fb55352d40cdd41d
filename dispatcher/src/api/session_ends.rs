//! Sessions ending, told to whatever holds one open (a stream), so it
//! closes at once rather than outliving the session.
//!
//! This process's ends travel on a broadcast channel; ends made by
//! another instance sharing the database are found by each stream
//! checking its session there every [`RECHECK`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

/// How often a long-lived connection checks its session in the database
/// (for ends made by another instance, and expiry).
pub const RECHECK: Duration = Duration::from_secs(10);

/// What ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// One session, by its token's hash (a logout).
    Session(String),
    /// Every session of a user (deleted, new password, new role).
    User(String),
}

impl Ended {
    /// Whether this ends the session `token_hash` of `username`.
    pub fn ends(&self, token_hash: &str, username: &str) -> bool {
        match self {
            Ended::Session(h) => h == token_hash,
            Ended::User(u) => u == username,
        }
    }
}

/// The channel sessions' ends go out on; one per process, in
/// [`super::AppState`].
pub struct SessionEnds {
    tx: broadcast::Sender<Arc<Ended>>,
}

impl Default for SessionEnds {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }
}

impl SessionEnds {
    pub fn session(&self, token_hash: &str) {
        let _ = self
            .tx
            .send(Arc::new(Ended::Session(token_hash.to_owned())));
    }

    pub fn user(&self, username: &str) {
        let _ = self.tx.send(Arc::new(Ended::User(username.to_owned())));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Ended>> {
        self.tx.subscribe()
    }
}
