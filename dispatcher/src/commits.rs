//! "The store committed something others must hear about": the signal that
//! wakes the stream hub and the outbox worker right after a change, so a
//! steward's offer reaches the phone in milliseconds rather than at the
//! next poll. Coalescing: many signals while a listener is busy are one.

use std::sync::Arc;

use tokio::sync::watch;

/// Cheap to clone; `signal` never blocks.
#[derive(Clone)]
pub struct Commits(Arc<watch::Sender<u64>>);

impl Default for Commits {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl Commits {
    pub fn signal(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A listener: `changed().await` wakes after the next signal.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}
