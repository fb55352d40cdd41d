//! The stream hub: the store's stream log, fanned out in process to every
//! SSE connection (`GET /api/v1/stream`).
//!
//! One reader task reads [`StreamLog::stream_after`] from its
//! watermark whenever [`Hub::nudge`] is called (by whoever committed a
//! change, and on a shared PostgreSQL by the change feed for rows any
//! instance committed, [`crate::store::changes`]) and, as a safety net,
//! every [`POLL_EVERY`] or [`Polling::Told`]'s [`SAFETY_POLL`]; and broadcasts each
//! [`StreamEvent`] on a bounded tokio `broadcast` channel. Sending never
//! waits: a subscriber that falls [`BUFFER`] events behind is told it
//! lagged, and its SSE connection ends (`api::stream`); the client
//! reconnects with `Last-Event-ID` and the store replays what it missed.
//! So a slow phone can never slow the engine or the other subscribers.
//!
//! # Sequence numbers that commit out of order
//!
//! On PostgreSQL a `BIGSERIAL` value is taken when the row is inserted, not
//! when its transaction commits: transaction A may take seq 10, B seq 11,
//! and B commit first. A reader that saw 11 and moved its watermark past 10
//! would never see 10. On SQLite writers are serialised, so seqs commit in
//! order and none of this costs anything.
//!
//! The hub *holds back gaps*: rows after a missing seq wait in memory until
//! the missing seq appears (the usual case: the other transaction commits
//! milliseconds later) or until the row after the gap has waited
//! [`HOLD_GAP`]. Within that window subscribers get events strictly in seq
//! order, which is what makes `Last-Event-ID` mean "I have everything up to
//! here". A gap can also be permanent (a transaction that inserted a stream
//! row and rolled back); it then costs the events behind it [`HOLD_GAP`] of
//! delay, never a loss. Seqs given up on are not forgotten: for
//! [`LATE_WATCH`] the hub re-reads behind its watermark (every
//! [`LATE_READ_EVERY`]) and publishes any that commit after all, marked
//! [`Published::late`], so live subscribers still receive them. We chose
//! hold-back over "re-read a window and deliver in any order" because
//! ordered ids keep reconnect replays exact; the late re-read covers the
//! rare transaction slower than the hold. What remains (a seq committing
//! later than both windows, or later than the hold while its client was
//! disconnected) is covered by the snapshot every connection starts with:
//! it is read from the store's tables, not from the log.
//!
//! Every [`PRUNE_EVERY`] the reader forgets stream rows older than
//! [`KEEP`]: a client away longer than that reconnects to a snapshot.
//!
//! The outbox worker sleeps on the same nudge ([`Hub::outbox_wakeup`]):
//! one call after a commit tells both the stream and the outbox.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::StoreError;
use crate::store::dispatch::StreamEvent;
use crate::store::stream_log::StreamLog;

/// The reader looks at the store at least this often when nobody tells
/// it of other instances' rows.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// ... and this often when a change feed does.
pub const SAFETY_POLL: Duration = Duration::from_secs(5);

/// How the reader learns of rows committed elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// Nobody says: look every [`POLL_EVERY`].
    Often,
    /// Every commit anywhere nudges the hub: look every [`SAFETY_POLL`]
    /// only in case a nudge went astray.
    Told,
}

/// A row behind a missing seq waits at most this long for it.
pub const HOLD_GAP: Duration = Duration::from_secs(1);
/// Seqs given up on are watched this long after, in case they commit.
pub const LATE_WATCH: Duration = Duration::from_secs(30);
/// How often the watched seqs are looked for.
pub const LATE_READ_EVERY: Duration = Duration::from_secs(1);
/// Events a subscriber may fall behind before it is dropped.
pub const BUFFER: usize = 1024;
/// Stream rows are kept this long.
pub const KEEP: chrono::Duration = chrono::Duration::hours(24);
/// How often old stream rows are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows read per `stream_after` call.
const PAGE: i64 = 500;
/// Pages read per poll at most; the rest waits for the next poll.
const MAX_PAGES: usize = 40;
/// Missing seqs watched at most (a huge sequence jump must not fill memory).
const MAX_WATCHED: usize = 10_000;

/// One event as the hub publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub event: StreamEvent,
    /// Published after events with higher seqs: its transaction committed
    /// more than [`HOLD_GAP`] after a later one.
    pub late: bool,
}

/// The in-process fan-out of the stream log. Shared as `Arc<Hub>` in
/// [`crate::api::AppState`].
pub struct Hub {
    /// Where the stream log lives.
    store: Arc<dyn StreamLog>,
    /// Every subscriber's receiver; sending never blocks.
    tx: broadcast::Sender<Arc<Published>>,
    /// Wakes the reader.
    wake: Notify,
    /// Wakes the outbox worker: a commit that wrote stream rows usually
    /// wrote outbox rows too.
    outbox_wake: Arc<Notify>,
    /// Every seq at or below it has been published (or given up on and
    /// watched); `None` until the reader has read the head of the log.
    /// Moved *before* each event is sent, so a subscriber that subscribes
    /// and then reads it receives every later event.
    watermark: watch::Sender<Option<i64>>,
    /// Cancelled on shutdown: ends the reader and every SSE connection.
    closed: CancellationToken,
    /// [`Polling::Told`] when set.
    told: AtomicBool,
}

impl Hub {
    pub fn new(store: Arc<dyn StreamLog>) -> Self {
        let (tx, _) = broadcast::channel(BUFFER);
        Self {
            store,
            tx,
            wake: Notify::new(),
            outbox_wake: Arc::new(Notify::new()),
            watermark: watch::channel(None).0,
            closed: CancellationToken::new(),
            told: AtomicBool::new(false),
        }
    }

    /// Call after committing a change: the stream and the outbox look at
    /// the store now instead of at their next tick. Cheap, never blocks; a
    /// nudge while the reader is busy is remembered.
    pub fn nudge(&self) {
        self.wake.notify_one();
        self.outbox_wake.notify_one();
    }

    /// What the outbox worker waits on.
    pub fn outbox_wakeup(&self) -> Arc<Notify> {
        self.outbox_wake.clone()
    }

    /// Live events from now on. Subscribe *before* reading the watermark
    /// or the store, so nothing falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.tx.subscribe()
    }

    /// Every seq at or below this has been published; `None` until the
    /// reader has started.
    pub fn watermark(&self) -> Option<i64> {
        *self.watermark.borrow()
    }

    /// Waits until the reader has started, at most `patience`. False when
    /// it did not (or the hub is closed).
    pub async fn wait_ready(&self, patience: Duration) -> bool {
        self.wait_for(|w| w.is_some(), patience).await.is_some()
    }

    /// Nudges the reader and waits, at most `patience`, until it has
    /// published everything up to `head` (a [`StreamLog::stream_head`]
    /// just read). Returns the watermark then, caught up or not; `None`
    /// when the hub is not running. A gap held back behind `head` may make
    /// it wait up to [`HOLD_GAP`].
    pub async fn catch_up(&self, head: i64, patience: Duration) -> Option<i64> {
        self.nudge();
        self.wait_for(|w| w.is_some_and(|w| w >= head), patience)
            .await?;
        self.watermark()
    }

    /// `Some` once `ready` holds, or after `patience` when the reader has
    /// started; `None` when the hub closed or never started.
    async fn wait_for(
        &self,
        ready: impl FnMut(&Option<i64>) -> bool,
        patience: Duration,
    ) -> Option<()> {
        let mut rx = self.watermark.subscribe();
        tokio::select! {
            biased;
            _ = self.closed.cancelled() => None,
            r = tokio::time::timeout(patience, rx.wait_for(ready)) => match r {
                Ok(Ok(_)) => Some(()),
                Ok(Err(_)) => None,
                Err(_) => self.watermark().map(|_| ()),
            },
        }
    }

    /// Resolves when the hub is closed: SSE connections end then.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// Ends every SSE connection and the reader. Idempotent.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Starts the reader task; it runs until [`Hub::close`].
    pub fn start(self: &Arc<Self>, clock: Clock) -> HubTask {
        HubTask {
            hub: self.clone(),
            task: tokio::spawn(read_loop(self.clone(), clock)),
        }
    }

    /// Whether every commit anywhere nudges the hub from now on (a change
    /// feed is connected) or not (none, or it is down). Takes effect at
    /// the reader's next look.
    pub fn set_polling(&self, polling: Polling) {
        self.told.store(polling == Polling::Told, Ordering::Relaxed);
    }

    fn idle_poll(&self) -> Duration {
        if self.told.load(Ordering::Relaxed) {
            SAFETY_POLL
        } else {
            POLL_EVERY
        }
    }

    fn publish(&self, batch: Vec<Published>) {
        for p in batch {
            if !p.late {
                self.watermark.send_replace(Some(p.event.seq));
            }
            // An error only means nobody is listening.
            let _ = self.tx.send(Arc::new(p));
        }
    }

    /// Reads from `after` in pages until a short page, a row past `until`
    /// or [`MAX_PAGES`].
    async fn read(&self, after: i64, until: Option<i64>) -> Result<Vec<StreamEvent>, StoreError> {
        let mut rows = Vec::new();
        let mut cursor = after;
        for _ in 0..MAX_PAGES {
            let page = self.store.stream_after(cursor, PAGE).await?;
            let full = page.len() as i64 >= PAGE;
            let Some(last) = page.last().map(|e| e.seq) else {
                break;
            };
            cursor = last;
            rows.extend(page);
            if !full || until.is_some_and(|u| last > u) {
                break;
            }
        }
        Ok(rows)
    }
}

/// The running reader.
pub struct HubTask {
    hub: Arc<Hub>,
    task: JoinHandle<()>,
}

impl HubTask {
    /// Closes the hub (every SSE connection ends) and waits for the reader.
    pub async fn stop(self) {
        self.hub.close();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!("stream hub reader did not stop within 5 s");
        }
    }
}

async fn read_loop(hub: Arc<Hub>, clock: Clock) {
    let closed = hub.closed();
    // Start at the head: history is for replays, which read the store.
    let head = loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            r = hub.store.stream_head() => match r {
                Ok(h) => break h,
                Err(e) => {
                    tracing::warn!(error = %e, "stream hub cannot read the stream head; retrying");
                }
            },
        }
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    let mut seq = Sequencer::new(head);
    hub.watermark.send_replace(Some(head));
    tracing::debug!(head, "stream hub started");

    let mut last_late_read = Instant::now();
    // Prune soon after start, then every PRUNE_EVERY.
    let mut next_prune = Instant::now() + Duration::from_secs(5);
    loop {
        let now = Instant::now();
        let late_from = (now >= last_late_read + LATE_READ_EVERY)
            .then(|| seq.late_cursor())
            .flatten();
        if let Err(e) = poll(&hub, &mut seq, late_from).await {
            tracing::warn!(error = %e, "stream hub could not read the stream; retrying");
        }
        if late_from.is_some() {
            last_late_read = now;
        }
        if now >= next_prune {
            next_prune = now + PRUNE_EVERY;
            match hub.store.prune_stream(clock.now() - KEEP).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned old stream rows"),
                Err(e) => tracing::warn!(error = %e, "could not prune the stream"),
            }
        }
        // Held rows and watched seqs have their own times to look again.
        let mut wake_at = Instant::now() + hub.idle_poll();
        if let Some(due) = seq.next_release() {
            wake_at = wake_at.min(due);
        }
        if seq.late_cursor().is_some() {
            wake_at = wake_at.min(last_late_read + LATE_READ_EVERY);
        }
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = hub.wake.notified() => {}
            _ = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

/// One look at the store: new rows after the watermark and, when due,
/// watched seqs behind it.
async fn poll(hub: &Hub, seq: &mut Sequencer, late_from: Option<i64>) -> Result<(), StoreError> {
    if let Some(from) = late_from {
        let rows = hub.read(from, Some(seq.watermark)).await?;
        hub.publish(seq.accept(rows, Instant::now()));
    }
    let rows = hub.read(seq.watermark, None).await?;
    hub.publish(seq.accept(rows, Instant::now()));
    Ok(())
}

/// Puts rows read from the log in seq order, holding back gaps (see the
/// module doc). Pure: time is passed in.
#[derive(Debug)]
pub struct Sequencer {
    /// Every seq at or below it was released or given up on.
    watermark: i64,
    /// Rows past a gap, with when each was first read.
    held: BTreeMap<i64, (StreamEvent, Instant)>,
    /// Seqs given up on, watched until the time given.
    watched: BTreeMap<i64, Instant>,
}

impl Sequencer {
    pub fn new(head: i64) -> Self {
        Self {
            watermark: head,
            held: BTreeMap::new(),
            watched: BTreeMap::new(),
        }
    }

    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// Where a re-read for watched seqs starts, if any are watched.
    pub fn late_cursor(&self) -> Option<i64> {
        self.watched.keys().next().map(|s| s - 1)
    }

    /// Takes rows read from the log (any order, duplicates allowed) and
    /// returns what to publish, in order.
    pub fn accept(&mut self, rows: Vec<StreamEvent>, now: Instant) -> Vec<Published> {
        let mut out = Vec::new();
        for row in rows {
            if row.seq <= self.watermark {
                if self.watched.remove(&row.seq).is_some() {
                    out.push(Published {
                        event: row,
                        late: true,
                    });
                }
            } else {
                self.held.entry(row.seq).or_insert((row, now));
            }
        }
        while let Some((&next, (_, seen))) = self.held.first_key_value() {
            if next != self.watermark + 1 {
                if now.saturating_duration_since(*seen) < HOLD_GAP {
                    break;
                }
                let from = (self.watermark + 1).max(next - MAX_WATCHED as i64);
                for missing in from..next {
                    self.watched.insert(missing, now + LATE_WATCH);
                }
            }
            let Some((_, (row, _))) = self.held.pop_first() else {
                break;
            };
            self.watermark = next;
            out.push(Published {
                event: row,
                late: false,
            });
        }
        self.watched.retain(|_, until| *until > now);
        while self.watched.len() > MAX_WATCHED {
            self.watched.pop_first();
        }
        out
    }

    /// When the first row held behind a gap is released without its gap
    /// filled, if any is held.
    pub fn next_release(&self) -> Option<Instant> {
        self.held
            .first_key_value()
            .map(|(_, (_, seen))| *seen + HOLD_GAP)
    }

    /// Rows waiting behind a gap.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::store::dispatch::{Audience, StreamKind};

    fn ev(seq: i64) -> StreamEvent {
        StreamEvent {
            seq,
            at: Utc::now(),
            audience: Audience::Supervisors,
            event: StreamKind::Incident,
            data: json!({"n": seq}),
        }
    }

    fn seqs(p: &[Published]) -> Vec<(i64, bool)> {
        p.iter().map(|p| (p.event.seq, p.late)).collect()
    }

    #[test]
    fn in_order_rows_pass_at_once_and_duplicates_are_dropped() {
        let t = Instant::now();
        let mut s = Sequencer::new(10);
        let out = s.accept(vec![ev(11), ev(12), ev(13)], t);
        assert_eq!(seqs(&out), [(11, false), (12, false), (13, false)]);
        assert!(s.accept(vec![ev(12), ev(13)], t).is_empty());
        assert_eq!(s.watermark(), 13);
    }

    #[test]
    fn a_gap_holds_later_rows_until_the_missing_seq_commits() {
        let t = Instant::now();
        let mut s = Sequencer::new(10);
        // 11 is taken by a transaction that has not committed yet.
        assert!(s.accept(vec![ev(12), ev(13)], t).is_empty());
        assert_eq!(s.held(), 2);
        assert_eq!(s.watermark(), 10);
        // Re-read: still missing, nothing released before the hold ends.
        assert!(
            s.accept(vec![ev(12), ev(13)], t + Duration::from_millis(500))
                .is_empty()
        );
        let out = s.accept(vec![ev(11), ev(12), ev(13)], t + Duration::from_millis(600));
        assert_eq!(seqs(&out), [(11, false), (12, false), (13, false)]);
        assert!(s.late_cursor().is_none());
    }

    #[test]
    fn a_gap_is_given_up_after_the_hold_and_a_late_commit_still_goes_out() {
        let t = Instant::now();
        let mut s = Sequencer::new(10);
        assert!(s.accept(vec![ev(13)], t).is_empty());
        let out = s.accept(vec![ev(13), ev(14)], t + HOLD_GAP);
        assert_eq!(seqs(&out), [(13, false), (14, false)]);
        assert_eq!(s.late_cursor(), Some(10));
        // 12 commits late; 11 never does (rolled back).
        let out = s.accept(vec![ev(12), ev(13), ev(14)], t + HOLD_GAP * 2);
        assert_eq!(seqs(&out), [(12, true)]);
        // Only once.
        assert!(s.accept(vec![ev(12)], t + HOLD_GAP * 3).is_empty());
        // 11 is forgotten after the watch.
        assert!(s.accept(vec![], t + HOLD_GAP + LATE_WATCH).is_empty());
        assert!(s.late_cursor().is_none());
        assert!(s.accept(vec![ev(11)], t + LATE_WATCH * 2).is_empty());
    }

    #[test]
    fn each_gap_waits_from_when_the_row_after_it_was_seen() {
        let t = Instant::now();
        let mut s = Sequencer::new(0);
        // 1 and 4 seen; 2, 3 missing.
        assert_eq!(seqs(&s.accept(vec![ev(1), ev(4)], t)), [(1, false)]);
        // 6 seen later; 5 missing.
        assert!(
            s.accept(vec![ev(4), ev(6)], t + Duration::from_millis(800))
                .is_empty()
        );
        // 4 has waited the hold; 6 has not.
        let out = s.accept(vec![ev(4), ev(6)], t + HOLD_GAP);
        assert_eq!(seqs(&out), [(4, false)]);
        let out = s.accept(
            vec![ev(5), ev(6)],
            t + HOLD_GAP + Duration::from_millis(100),
        );
        assert_eq!(seqs(&out), [(5, false), (6, false)]);
    }

    async fn next(rx: &mut broadcast::Receiver<Arc<Published>>) -> (i64, bool) {
        let p = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an event within 5 s")
            .expect("the hub is open");
        (p.event.seq, p.late)
    }

    #[tokio::test]
    async fn the_reader_publishes_commits_in_seq_order_when_nudged() {
        let store = Arc::new(crate::fake_dispatch::FakeDispatch::default());
        store.commit(ev(1));
        let hub = Arc::new(Hub::new(store.clone()));
        let task = hub.start(Clock::System);
        assert!(hub.wait_ready(Duration::from_secs(5)).await);
        // Starts at the head: history is the replay's.
        assert_eq!(hub.watermark(), Some(1));
        let mut rx = hub.subscribe();

        store.commit(ev(2));
        hub.nudge();
        assert_eq!(next(&mut rx).await, (2, false));

        // 3 is taken, 4 commits first: 4 waits for 3.
        store.commit(ev(4));
        hub.nudge();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "4 is held back behind 3");
        store.commit(ev(3));
        hub.nudge();
        assert_eq!(next(&mut rx).await, (3, false));
        assert_eq!(next(&mut rx).await, (4, false));
        assert_eq!(hub.watermark(), Some(4));

        // Without a nudge, the poll finds it (another instance's commit).
        store.commit(ev(5));
        assert_eq!(next(&mut rx).await, (5, false));

        // A new connection catches the hub up to the store's head.
        store.commit(ev(6));
        store.commit(ev(7));
        assert_eq!(hub.catch_up(7, Duration::from_secs(5)).await, Some(7));
        // Behind a gap it gives up after its patience, with what it has.
        store.commit(ev(9));
        assert_eq!(hub.catch_up(9, Duration::from_millis(50)).await, Some(7));
        task.stop().await;
        assert!(!hub.wait_ready(Duration::from_millis(10)).await);
    }

    #[tokio::test]
    async fn a_rolled_back_seq_delays_by_the_hold_and_a_late_commit_still_arrives() {
        let store = Arc::new(crate::fake_dispatch::FakeDispatch::default());
        let hub = Arc::new(Hub::new(store.clone()));
        let task = hub.start(Clock::System);
        assert!(hub.wait_ready(Duration::from_secs(5)).await);
        let mut rx = hub.subscribe();
        let start = Instant::now();
        store.commit(ev(2));
        hub.nudge();
        assert_eq!(next(&mut rx).await, (2, false));
        assert!(start.elapsed() >= HOLD_GAP);
        // 1 commits after all: published late.
        store.commit(ev(1));
        assert_eq!(next(&mut rx).await, (1, true));
        task.stop().await;
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_instead_of_slowing_the_hub() {
        let store = Arc::new(crate::fake_dispatch::FakeDispatch::default());
        let hub = Arc::new(Hub::new(store.clone()));
        let task = hub.start(Clock::System);
        assert!(hub.wait_ready(Duration::from_secs(5)).await);
        let mut slow = hub.subscribe();
        let mut fast = hub.subscribe();
        let batch = 100;
        for b in 0..(BUFFER as i64 / batch + 1) {
            for seq in b * batch + 1..=(b + 1) * batch {
                store.commit(ev(seq));
            }
            hub.nudge();
            for seq in b * batch + 1..=(b + 1) * batch {
                assert_eq!(next(&mut fast).await, (seq, false));
            }
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        task.stop().await;
    }

    #[test]
    fn a_huge_jump_watches_a_bounded_number_of_seqs() {
        let t = Instant::now();
        let mut s = Sequencer::new(0);
        s.accept(vec![ev(1_000_000)], t);
        let out = s.accept(vec![ev(1_000_000)], t + HOLD_GAP);
        assert_eq!(seqs(&out), [(1_000_000, false)]);
        assert!(s.watched.len() <= MAX_WATCHED);
    }
}
