//! Password hashing on a small pool of its own threads.
//!
//! argon2 takes ~19 MiB and a core for each hash. On tokio's blocking
//! pool every hash may land on another thread, and glibc keeps each
//! thread's freed 19 MiB in that thread's arena: 60 failed logins kept
//! +315 MiB. Here a fixed few threads do all hashing, each gives its
//! memory back to the system after every hash, and a full queue is
//! refused (503 with `Retry-After`) rather than grown.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::HashError;

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads; they end when the pool (every clone) is dropped.
#[derive(Clone)]
pub struct HashPool {
    jobs: SyncSender<Job>,
}

/// How long a client refused for a full queue should wait.
const RETRY_AFTER_S: u64 = 2;

impl HashPool {
    /// `threads` hashing threads and at most `queue` hashes waiting.
    pub fn new(threads: usize, queue: usize) -> Self {
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        Self { jobs }
    }

    /// Runs `f` on a hashing thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(HashError::Busy {
                    retry_after_s: RETRY_AFTER_S,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(HashError::Failed(
                    "the password-hashing threads stopped".into(),
                ));
            }
        }
        rx.await
            .map_err(|_| HashError::Failed("a password hash failed".into()))
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        job();
        crate::memory::give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_is_refused_not_grown() {
        let pool = HashPool::new(1, 1);
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let first = tokio::spawn(async move { p.run(move || hold_rx.recv().is_ok()).await });
        // Wait until the thread holds the first job, then fill the queue.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let p = pool.clone();
        let queued = tokio::spawn(async move { p.run(|| 2).await });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let refused = pool.run(|| 3).await;
        assert!(
            matches!(refused, Err(HashError::Busy { .. })),
            "{refused:?}"
        );
        hold_tx.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert_eq!(queued.await.unwrap().unwrap(), 2);
    }
}
