//! Receipts: how the gate learns that a device's message is stored.
//!
//! rumqttd acknowledges a QoS 1 publish as soon as it holds it in memory,
//! and holds only the last few segments of each subscription's log: a
//! device far enough ahead of a stalled dispatcher had acknowledged
//! events fall out of it, and a crash lost whatever rumqttd held. So the
//! gate withholds rumqttd's PUBACK ([`super::held`]) and acknowledges the
//! device itself once ingest has acknowledged the same message to rumqttd,
//! which it does only after storing it (or rejecting it for good).
//!
//! Ingest's copy is matched to the device's by the device (from the
//! topic) and a keyed hash of topic and payload. Two identical messages
//! are interchangeable: either copy stored settles either.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use protocol::{DeviceId, Topics};
use tokio::sync::mpsc;

use crate::ingest::StoredReceipts;

/// What identifies a message between the gate and ingest.
pub type Digest = u64;

/// A connection's id and where its receipts go.
type Listener = (u64, mpsc::UnboundedSender<Digest>);

/// The connections waiting for receipts, by device.
pub struct Receipts {
    topics: Topics,
    /// Keyed per process, so no device can aim a collision at another
    /// message (and a collision could only settle its own).
    hasher: RandomState,
    waiting: Mutex<HashMap<DeviceId, Vec<Listener>>>,
    next: AtomicU64,
}

impl Receipts {
    pub fn new(topics: Topics) -> Self {
        Self {
            topics,
            hasher: RandomState::new(),
            waiting: Mutex::default(),
            next: AtomicU64::new(0),
        }
    }

    pub fn digest(&self, topic: &str, payload: &[u8]) -> Digest {
        self.hasher.hash_one((topic, payload))
    }

    /// Registers one connection of `device`; its receipts arrive on the
    /// returned receiver until the guard drops. A device's older and
    /// newer connections may overlap for a moment: both hear every
    /// receipt, and each settles only what it holds.
    pub fn listen(&self, device: &DeviceId) -> Listening<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.lock()
            .entry(device.clone())
            .or_default()
            .push((id, tx));
        Listening {
            receipts: self,
            device: device.clone(),
            id,
            rx,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Vec<Listener>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StoredReceipts for Receipts {
    fn acknowledged(&self, topic: &str, payload: &[u8]) {
        // Commands the dispatcher published, wills: nobody waits.
        let Some((Ok(device), _)) = self.topics.parse(topic) else {
            return;
        };
        let waiting = self.lock();
        let Some(connections) = waiting.get(&device) else {
            return;
        };
        let digest = self.digest(topic, payload);
        for (_, tx) in connections {
            let _ = tx.send(digest);
        }
    }
}

/// One connection's receipts; dropping it stops them.
pub struct Listening<'a> {
    receipts: &'a Receipts,
    device: DeviceId,
    id: u64,
    pub rx: mpsc::UnboundedReceiver<Digest>,
}

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        let mut waiting = self.receipts.lock();
        if let Some(connections) = waiting.get_mut(&self.device) {
            connections.retain(|(id, _)| *id != self.id);
            if connections.is_empty() {
                waiting.remove(&self.device);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_reaches_every_connection_of_its_device_and_no_other() {
        let topics = Topics::new("t/eldercare/v1");
        let receipts = Receipts::new(topics.clone());
        let bed = DeviceId::parse("bed-1").unwrap();
        let other = DeviceId::parse("bed-2").unwrap();
        let mut old = receipts.listen(&bed);
        let mut new = receipts.listen(&bed);
        let mut elsewhere = receipts.listen(&other);
        let topic = topics.events(&bed);
        receipts.acknowledged(&topic, b"{}");
        let want = receipts.digest(&topic, b"{}");
        assert_eq!(old.rx.try_recv().ok(), Some(want));
        assert_eq!(new.rx.try_recv().ok(), Some(want));
        assert!(elsewhere.rx.try_recv().is_err());
        assert_ne!(want, receipts.digest(&topic, b"{ }"));
        assert_ne!(want, receipts.digest(&topics.status(&bed), b"{}"));

        drop(old);
        drop(new);
        assert!(!receipts.lock().contains_key(&bed), "forgotten when gone");
        receipts.acknowledged(&topics.commands(&bed), b"{}");
        receipts.acknowledged("not/a/device/topic", b"{}");
    }
}
