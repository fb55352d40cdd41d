//! Counters and gauges for `/metrics`, in Prometheus text format.
//!
//! Hand-rolled on atomics: the set of series is small and fixed, and a
//! hot path (every MQTT message) must not take a lock to count.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use protocol::RejectReason;

use crate::domain::{IncidentKind, Priority};

/// Every series the dispatcher exports.
#[derive(Default)]
pub struct Metrics {
    /// MQTT messages received, by topic kind.
    pub events_received: AtomicU64,
    pub status_received: AtomicU64,
    /// Events stored for the first time.
    pub events_stored: AtomicU64,
    /// Events dropped as already stored (redeliveries, repeats).
    pub events_duplicate: AtomicU64,
    /// A flooding device's excess beyond its stored sample: counted,
    /// acknowledged, not stored.
    pub events_flood_dropped: AtomicU64,
    /// Rows removed by retention, by table.
    pruned: Mutex<BTreeMap<&'static str, u64>>,
    /// Rejected messages by reason, indexed like `RejectReason::ALL`.
    rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Incidents opened by kind and priority.
    opened: Mutex<BTreeMap<(IncidentKind, Priority), u64>>,
    /// Milliseconds between a message's arrival and its commit, last batch.
    pub ingest_lag_ms: AtomicI64,
    /// Messages received and not yet acknowledged.
    pub ingest_queue: AtomicI64,
    /// Heartbeats held in memory, not yet flushed.
    pub heartbeats_pending: AtomicI64,
    pub heartbeat_flushes: AtomicU64,
    /// Store transactions that failed and were retried.
    pub store_retries: AtomicU64,
    pub mqtt_connected: AtomicI64,
    /// 1 while this instance hears every instance's changes (PostgreSQL
    /// `LISTEN`, [`crate::peers`]).
    pub change_feed_connected: AtomicI64,
    pub mqtt_reconnects: AtomicU64,
    /// Attempts to reach stewards by channel (push, sms, voice) and how
    /// each went (delivered, retry, failed, cancelled).
    reached: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Connections the embedded broker's gate closed, by reason.
    broker_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Device connections open through the embedded broker's gate.
    pub broker_connections: AtomicI64,
    /// Device messages the gate handed rumqttd again, not stored in time.
    pub broker_redelivered: AtomicU64,
}

/// Writes one unlabelled gauge in the Prometheus text format.
pub fn write_gauge(out: &mut String, name: &str, help: &str, v: i64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
}

impl Metrics {
    pub fn reject(&self, reason: RejectReason) {
        let i = RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("every reason is in ALL");
        self.rejected[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        RejectReason::ALL
            .iter()
            .position(|r| *r == reason)
            .map(|i| self.rejected[i].load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Rows removed by retention from `table`.
    pub fn pruned(&self, table: &'static str, rows: u64) {
        let mut pruned = self.pruned.lock().unwrap_or_else(|p| p.into_inner());
        *pruned.entry(table).or_default() += rows;
    }

    /// One attempt to reach a steward on `channel`, and how it went.
    pub fn reach(&self, channel: &'static str, outcome: &'static str) {
        let mut reached = self.reached.lock().unwrap_or_else(|p| p.into_inner());
        *reached.entry((channel, outcome)).or_default() += 1;
    }

    /// A connection the embedded broker's gate closed, and why.
    pub fn broker_refused(&self, reason: &'static str) {
        let mut refused = self
            .broker_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *refused.entry(reason).or_default() += 1;
    }

    pub fn incident_opened(&self, kind: IncidentKind, priority: Priority) {
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        *opened.entry((kind, priority)).or_default() += 1;
    }

    /// The Prometheus exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP dispatcher_messages_received_total MQTT messages received from devices.\n\
             # TYPE dispatcher_messages_received_total counter\n\
             dispatcher_messages_received_total{{topic=\"events\"}} {}\n\
             dispatcher_messages_received_total{{topic=\"status\"}} {}",
            load(&self.events_received),
            load(&self.status_received)
        );
        let _ = writeln!(
            out,
            "# HELP dispatcher_rejected_messages_total Device messages acknowledged but not acted on.\n\
             # TYPE dispatcher_rejected_messages_total counter"
        );
        for (i, reason) in RejectReason::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "dispatcher_rejected_messages_total{{reason=\"{reason}\"}} {}",
                load(&self.rejected[i])
            );
        }
        counter(
            &mut out,
            "dispatcher_events_stored_total",
            "Device events stored for the first time.",
            load(&self.events_stored),
        );
        counter(
            &mut out,
            "dispatcher_events_duplicate_total",
            "Device events already stored (redeliveries).",
            load(&self.events_duplicate),
        );
        counter(
            &mut out,
            "dispatcher_events_flood_dropped_total",
            "A flooding device's excess events beyond the stored sample (ingest.flood_sample_per_min): counted in dispatcher_rejected_messages_total{reason=\"rate_limited\"} too, not stored.",
            load(&self.events_flood_dropped),
        );
        let _ = writeln!(
            out,
            "# HELP dispatcher_pruned_rows_total Rows removed by retention (the [retention] settings), by table.\n\
             # TYPE dispatcher_pruned_rows_total counter"
        );
        for (table, n) in self.pruned.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "dispatcher_pruned_rows_total{{table=\"{table}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP dispatcher_incidents_opened_total Incidents opened.\n\
             # TYPE dispatcher_incidents_opened_total counter"
        );
        for ((kind, priority), n) in self.opened.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "dispatcher_incidents_opened_total{{kind=\"{kind}\",priority=\"{priority}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP dispatcher_reach_total Attempts to reach stewards outside the app (push, sms, voice) by outcome: delivered, retry, failed, cancelled (the offer was answered first).\n\
             # TYPE dispatcher_reach_total counter"
        );
        for ((channel, outcome), n) in self
            .reached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "dispatcher_reach_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        write_gauge(
            &mut out,
            "dispatcher_ingest_lag_ms",
            "Milliseconds from arrival to commit, last batch.",
            self.ingest_lag_ms.load(Ordering::Relaxed),
        );
        write_gauge(
            &mut out,
            "dispatcher_ingest_queue",
            "Device messages received and not yet acknowledged (events wait for their commit).",
            self.ingest_queue.load(Ordering::Relaxed),
        );
        write_gauge(
            &mut out,
            "dispatcher_heartbeats_pending",
            "Heartbeats held in memory, not yet written (each device's is written at most every ingest.heartbeat_write_s unless its health changed).",
            self.heartbeats_pending.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "dispatcher_heartbeat_flushes_total",
            "Batched heartbeat writes.",
            load(&self.heartbeat_flushes),
        );
        counter(
            &mut out,
            "dispatcher_store_retries_total",
            "Store transactions retried after a failure.",
            load(&self.store_retries),
        );
        write_gauge(
            &mut out,
            "dispatcher_mqtt_connected",
            "1 while connected to the broker.",
            self.mqtt_connected.load(Ordering::Relaxed),
        );
        write_gauge(
            &mut out,
            "dispatcher_change_feed_connected",
            "1 while this instance hears every instance's changes as they commit (PostgreSQL LISTEN); always 0 on SQLite, which runs one instance.",
            self.change_feed_connected.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "dispatcher_mqtt_reconnects_total",
            "Broker connections re-established.",
            load(&self.mqtt_reconnects),
        );
        let _ = writeln!(
            out,
            "# HELP dispatcher_broker_refused_total Connections the embedded broker closed: bad credentials, another's client id or topic, oversized packets, the connection cap.\n\
             # TYPE dispatcher_broker_refused_total counter"
        );
        for (reason, n) in self
            .broker_refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "dispatcher_broker_refused_total{{reason=\"{reason}\"}} {n}"
            );
        }
        write_gauge(
            &mut out,
            "dispatcher_broker_connections",
            "Device connections open on the embedded broker.",
            self.broker_connections.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "dispatcher_broker_redelivered_total",
            "Device messages the embedded broker handed over again because ingest had not stored them within embedded_broker.redeliver_after_s.",
            load(&self.broker_redelivered),
        );
        out
    }
}
