//! One device connection's QoS 1 publishes that are not stored yet.
//!
//! Each waits here from the moment the gate hands it to rumqttd until its
//! receipt ([`super::receipts`]) comes back, when the gate sends the
//! device its PUBACK. Each holds room: one of the connection's
//! `max_inflight`, and its bytes of the broker's budget, which keeps all
//! devices together behind what rumqttd's logs keep. A message waiting
//! too long is handed to rumqttd again, in case rumqttd dropped it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::receipts::Digest;

/// MQTT's DUP flag, in a PUBLISH's first byte.
const DUP: u8 = 0x08;

/// The broker's budget of unstored bytes, shared by every connection.
#[derive(Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    size: u32,
}

impl Budget {
    pub fn new(bytes: usize) -> Self {
        let size = u32::try_from(bytes).unwrap_or(u32::MAX);
        Self {
            bytes: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// Bytes not taken, for tests.
    #[cfg(test)]
    fn free(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// What a waiting message holds until it is settled.
pub struct Room {
    _slot: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
}

struct Waiting {
    digest: Digest,
    pkid: u16,
    frame: Bytes,
    handed_over: Instant,
    _room: Room,
}

pub struct Held {
    waiting: Mutex<VecDeque<Waiting>>,
    slots: Arc<Semaphore>,
}

impl Held {
    pub fn new(max_inflight: usize) -> Self {
        Self {
            waiting: Mutex::default(),
            slots: Arc::new(Semaphore::new(max_inflight.max(1))),
        }
    }

    /// Waits for room for one more message of `bytes` on this connection
    /// and in the budget, in arrival order. (A message larger than the
    /// whole budget waits for all of it.)
    pub async fn room(&self, budget: &Budget, bytes: usize) -> Room {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let want = u32::try_from(bytes).unwrap_or(u32::MAX).min(budget.size);
        let bytes = budget
            .bytes
            .clone()
            .acquire_many_owned(want)
            .await
            .expect("never closed");
        Room {
            _slot: slot,
            _bytes: bytes,
        }
    }

    /// Keeps a message handed to rumqttd now until it is settled.
    pub fn hold(&self, room: Room, digest: Digest, pkid: u16, frame: &[u8]) {
        self.lock().push_back(Waiting {
            digest,
            pkid,
            // A copy of its own: the frame shares the read buffer, which
            // holding would keep whole.
            frame: Bytes::copy_from_slice(frame),
            handed_over: Instant::now(),
            _room: room,
        });
    }

    /// The packet id to acknowledge when this connection holds a message
    /// with this digest (the oldest such); its room is given back.
    pub fn settle(&self, digest: Digest) -> Option<u16> {
        let mut waiting = self.lock();
        let at = waiting.iter().position(|w| w.digest == digest)?;
        waiting.remove(at).map(|w| w.pkid)
    }

    /// The frames handed over `after` or longer ago, marked DUP, to hand
    /// over again; their clocks restart.
    pub fn overdue(&self, now: Instant, after: Duration) -> Vec<Bytes> {
        let mut waiting = self.lock();
        waiting
            .iter_mut()
            .filter(|w| now.duration_since(w.handed_over) >= after)
            .map(|w| {
                w.handed_over = now;
                let mut frame = BytesMut::from(&w.frame[..]);
                frame[0] |= DUP;
                frame.freeze()
            })
            .collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settling_gives_the_room_back_and_acknowledges_the_oldest_copy() {
        let budget = Budget::new(100);
        let held = Held::new(2);
        let frame = [0x32, 3, 0, 1, b'x'];
        let room = held.room(&budget, 40).await;
        held.hold(room, 7, 1, &frame);
        let room = held.room(&budget, 40).await;
        held.hold(room, 7, 2, &frame);
        assert_eq!(budget.free(), 20);
        // Both slots taken: a third waits.
        let third = held.room(&budget, 10);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut third)
                .await
                .is_err()
        );
        assert_eq!(held.settle(8), None, "not held here");
        assert_eq!(held.settle(7), Some(1));
        let room = third.await;
        assert_eq!(budget.free(), 50);
        drop(room);
        assert_eq!(held.settle(7), Some(2));
        assert_eq!(held.settle(7), None);
        assert_eq!(budget.free(), 100);
        assert_eq!(held.len(), 0);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_budget_waits_for_all_of_it() {
        let budget = Budget::new(100);
        let held = Held::new(10);
        let room = held.room(&budget, 1_000).await;
        assert_eq!(budget.free(), 0);
        drop(room);
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test]
    async fn overdue_frames_come_back_marked_dup_and_their_clock_restarts() {
        let budget = Budget::new(100);
        let held = Held::new(10);
        let frame = [0x32, 3, 0, 1, b'x'];
        let room = held.room(&budget, 5).await;
        held.hold(room, 1, 1, &frame);
        let now = Instant::now();
        assert!(held.overdue(now, Duration::from_secs(30)).is_empty());
        let later = now + Duration::from_secs(31);
        let again = held.overdue(later, Duration::from_secs(30));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0][0], 0x3a, "DUP set");
        assert_eq!(&again[0][1..], &frame[1..]);
        assert!(held.overdue(later, Duration::from_secs(30)).is_empty());
    }
}
