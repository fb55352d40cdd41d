//! An in-memory stream log ([`StreamLog`]) and outbox ([`OutboxStore`]),
//! for unit tests of the hub and the outbox worker that need to commit
//! rows out of order or fail on purpose.

use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::store::StoreResult;
use crate::store::dispatch::{Channel, DeliveryOutcome, OutboxItem, StreamEvent};
use crate::store::outbox::OutboxStore;
use crate::store::stream_log::StreamLog;

/// One outbox row and its state.
#[derive(Debug, Clone)]
pub struct Row {
    pub item: OutboxItem,
    pub due_at: DateTime<Utc>,
    pub claimed_until: Option<DateTime<Utc>>,
    pub state: &'static str,
    pub outcomes: Vec<DeliveryOutcome>,
}

#[derive(Default)]
pub struct FakeDispatch {
    /// Committed stream rows, in commit order (not necessarily seq order).
    pub stream: Mutex<Vec<StreamEvent>>,
    pub outbox: Mutex<Vec<Row>>,
}

impl FakeDispatch {
    pub fn commit(&self, e: StreamEvent) {
        self.stream.lock().unwrap().push(e);
    }

    pub fn queue(&self, item: OutboxItem, due_at: DateTime<Utc>) {
        self.outbox.lock().unwrap().push(Row {
            item,
            due_at,
            claimed_until: None,
            state: "pending",
            outcomes: Vec::new(),
        });
    }

    pub fn row(&self, id: &str) -> Row {
        self.outbox
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.item.id == id)
            .cloned()
            .expect("row exists")
    }
}

#[async_trait]
impl StreamLog for FakeDispatch {
    async fn stream_after(&self, after: i64, limit: i64) -> StoreResult<Vec<StreamEvent>> {
        let mut rows: Vec<_> = self
            .stream
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        rows.sort_by_key(|e| e.seq);
        rows.truncate(limit as usize);
        Ok(rows)
    }

    async fn stream_head(&self) -> StoreResult<i64> {
        Ok(self
            .stream
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .max()
            .unwrap_or(0))
    }

    async fn prune_stream(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut s = self.stream.lock().unwrap();
        let n = s.len();
        s.retain(|e| e.at >= before);
        Ok((n - s.len()) as u64)
    }
}

#[async_trait]
impl OutboxStore for FakeDispatch {
    async fn claim_outbox_for(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: i64,
        channels: &[Channel],
    ) -> StoreResult<Vec<OutboxItem>> {
        let mut rows = self.outbox.lock().unwrap();
        let mut out = Vec::new();
        for r in rows.iter_mut() {
            if out.len() as i64 >= limit {
                break;
            }
            if r.state == "pending"
                && channels.contains(&r.item.channel)
                && r.due_at <= now
                && r.claimed_until.is_none_or(|c| c <= now)
            {
                r.claimed_until = Some(now + lease);
                out.push(OutboxItem {
                    claimed_until: r.claimed_until,
                    ..r.item.clone()
                });
            }
        }
        Ok(out)
    }

    async fn release_outbox(&self, item: &OutboxItem) -> StoreResult<bool> {
        let mut rows = self.outbox.lock().unwrap();
        let Some(r) = claimed(&mut rows, item) else {
            return Ok(false);
        };
        r.claimed_until = None;
        Ok(true)
    }

    async fn finish_outbox(
        &self,
        item: &OutboxItem,
        outcome: &DeliveryOutcome,
        _now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut rows = self.outbox.lock().unwrap();
        let Some(r) = claimed(&mut rows, item) else {
            return Ok(false);
        };
        r.item.attempts += 1;
        r.claimed_until = None;
        r.outcomes.push(outcome.clone());
        match outcome {
            DeliveryOutcome::Delivered => r.state = "delivered",
            DeliveryOutcome::Retry { at, .. } => r.due_at = *at,
            DeliveryOutcome::Failed { .. } => r.state = "failed",
            DeliveryOutcome::Cancelled { .. } => r.state = "cancelled",
        }
        Ok(true)
    }
}

/// The row of `item`, if the claim that returned it still holds (as the
/// stores check `claimed_until`).
fn claimed<'a>(rows: &'a mut [Row], item: &OutboxItem) -> Option<&'a mut Row> {
    let r = rows.iter_mut().find(|r| r.item.id == item.id).expect("row");
    (r.claimed_until == item.claimed_until).then_some(r)
}
