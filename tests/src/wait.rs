//! Waiting for asynchronous outcomes without asserting on wall-clock time:
//! poll until a condition holds, with a generous ceiling that only a hang
//! reaches.

use std::future::Future;
use std::time::Duration;

/// The ceiling for any single wait; only a broken system reaches it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, or None after `patience`, so
/// the caller can say what it found instead.
pub async fn within<T, F, Fut>(patience: Duration, _what: &str, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after
/// [`PATIENCE`].
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `read` until it returns `want`, or panics with `what` and the
/// last value read after [`PATIENCE`].
pub async fn until_eq<T, F, Fut>(what: &str, want: T, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = read().await;
        if seen == want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}: {seen:?}, not {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
