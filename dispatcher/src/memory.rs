//! Giving freed memory back to the system. glibc keeps what a thread
//! freed in that thread's arena for good, so a burst of large work (an
//! argon2 hash, 150 MiB of oversized MQTT packets) would leave the process
//! that much bigger for the rest of its life; `malloc_trim` hands the
//! free pages back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Set by whoever just handled something large; the trimmer clears it.
static LARGE_WORK: AtomicBool = AtomicBool::new(false);

/// Says that large buffers were just used and freed.
pub fn large_work_done() {
    LARGE_WORK.store(true, Ordering::Relaxed);
}

/// Returns free memory to the system now.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_back() {
    // SAFETY: malloc_trim only releases free memory the allocator holds;
    // it touches no live allocation and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back() {}

/// Seconds the trimmer keeps trimming after the last large work: what was
/// handed on (the broker's segments, the dispatcher's reads of the same
/// packets) is freed a little later than it arrived.
const TRIM_FOR_S: u32 = 5;

/// Once a second, for a few seconds after large work, gives memory back
/// (on the blocking pool: a trim walks every arena).
pub async fn trim_after_large_work(stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut remaining = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if LARGE_WORK.swap(false, Ordering::Relaxed) {
            remaining = TRIM_FOR_S;
        }
        if remaining > 0 {
            remaining -= 1;
            let _ = tokio::task::spawn_blocking(give_back).await;
        }
    }
}
