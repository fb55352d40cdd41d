//! The eldercare dispatcher: device events in, stewards out.
//!
//! A tour, in the order an event travels:
//!
//! - [`mqtt`]: the broker connection: the embedded broker ([`broker`]) or
//!   an external one, QoS 1 with a persistent session and manual acks.
//! - [`ingest`]: validates each message (the `protocol` crate), batches
//!   events into the store, acknowledges only after the commit, keeps
//!   heartbeats in memory and writes them in batches (each device's at
//!   most every `heartbeat_write_s` unless its health changed),
//!   rate-limits floods. A batch is one transaction ([`ingest::batch`]):
//!   the events stored, the rules' effects applied, and the first offers
//!   of the incidents it opened, so a press waits for one commit.
//! - [`rules`]: what an event means for an elder: open, join or cancel an
//!   incident, set a timer. Pure functions returning effects.
//! - [`dispatch`]: the incident's life after it opens, one file per
//!   transition in [`dispatch::lifecycle`] (opened or joined under the
//!   rules' effects, accept, decline, expire, escalate, assign, arrive,
//!   resolve or cancel, withdraw, a dispatch turn; a resolve of an
//!   elder's incident also makes its follow-up, [`domain::follow_up`]):
//!   plain Rust over one narrow store transaction
//!   (`store::dispatch_tx::DispatchTx`: lock, claim, offer, save,
//!   notices), each returning what its commit changed. What a command may
//!   do to an incident is decided by pure functions in
//!   [`domain::lifecycle`]; dispatch's vocabulary (a turn, its plan, what
//!   it took) is [`domain::dispatch`]. Beside them the matcher (an R-tree
//!   of available stewards, ranked by travel distance with a preference
//!   for the elder's own grid), the engine (re-offers, escalation, the
//!   first offers ingest could not make; every deadline a store row), and
//!   [`dispatch::after_commit`], the one path that follows every
//!   committed change (the matcher, the engine's kicks, the stream).
//! - [`store`]: the truth. Small traits by concern (the registry,
//!   sessions, ingest, incidents, deadlines, dispatch, the stream log,
//!   the outbox, reach, logins, retention, secrets, follow-ups, the monthly
//!   report's sums), each in its own
//!   file, whose union is [`store::Store`]; SQLite and PostgreSQL behind
//!   them, their SQL written once per concern. The store reads, locks and
//!   writes; it decides nothing about an incident's life. Every incident
//!   change is one transaction with its timeline, stream and outbox rows;
//!   offers claim stewards by compare-and-set.
//! - [`timers`]: deadlines claimed from the store, and the detector of
//!   devices that stopped their heartbeat; [`retention`] prunes what
//!   grows without bound, in small batches in the background.
//! - [`care`]: the stewards' daily work beside the alarms: visits planned
//!   by risk and walked as rounds, the daily check-in watched by a
//!   deadline per elder, an overdue visit raised once as a routine
//!   incident.
//! - [`notify`]: everything that leaves the process after a commit: the
//!   stream hub (the stream log fanned out to SSE connections), the
//!   outbox (webhooks, device commands and what reaches stewards, signed,
//!   retried, never lost), and reaching a steward whose app is not on
//!   screen: Web Push to their phones, repeated until answered, then SMS
//!   and calls through gateways, per priority's ladder; replies and
//!   notification buttons act on the offer. The gateways' `{placeholder}`
//!   language is [`template`], which [`settings`] also uses to check them
//!   at start.
//! - [`api`]: axum: REST, SSE, auth and roles, OpenAPI, health and
//!   metrics; [`report`] computes its response-time reports, [`monthly`]
//!   the monthly report for funders (figures, CSV, PDF), [`duty`]
//!   the devices' test calls due or missed and the false-alarm rates
//!   with their suggested rule changes. Passwords
//!   and usernames are [`auth`]'s, which `import` and [`sim`] use too.
//! - [`startup`]: builds all of the above from [`settings`] and runs it
//!   until shutdown; [`import`] loads a site from a file; [`sim`] runs
//!   the device simulator inside the server for demos and tests.
//!
//! [`domain`] holds the types all of them share; [`clock`] the one clock
//! tests can move.
//!
//! The rooms depend one way: none imports from a room that imports it
//! back (the `rooms` test below fails on the first that does).

pub mod api;
pub mod auth;
#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod care;
pub mod clock;
pub mod credentials;
pub mod dispatch;
pub mod domain;
pub mod duty;
pub mod dynsec;
#[cfg(test)]
mod fake_dispatch;
pub mod fence;
pub mod http_server;
pub mod import;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod monthly;
pub mod mqtt;
pub mod notify;
pub mod peers;
pub mod report;
pub mod retention;
pub mod rules;
pub mod settings;
pub mod sim;
pub mod stable_hash;

pub mod startup;
pub mod store;
pub mod template;
pub mod timers;
pub mod untrusted;
pub mod web;

/// The rooms (the top-level modules above) depend one way: no room
/// imports from a room that imports it back, so each can be read, and
/// changed, knowing only what it uses.
#[cfg(test)]
mod rooms {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The rooms a line of code names with `crate::room` or
    /// `crate::{room::…, …}`; comments are not code.
    fn named(line: &str, out: &mut BTreeSet<String>) {
        let code = line.split("//").next().unwrap_or_default();
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        };
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or_default();
                for item in group.split(',') {
                    let item = item.trim();
                    let room = ident(item);
                    if item[room.len()..].starts_with("::") {
                        out.insert(room);
                    }
                }
            } else {
                let room = ident(rest);
                if !room.is_empty() {
                    out.insert(room);
                }
            }
        }
    }

    fn imports(dir: &Path, room: &str, edges: &mut BTreeMap<String, BTreeSet<String>>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                imports(&path, room, edges);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                let used = edges.entry(room.to_owned()).or_default();
                for line in text.lines() {
                    named(line, used);
                }
                used.remove(room);
            }
        }
    }

    #[test]
    fn no_room_imports_from_a_room_that_imports_it_back() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut edges = BTreeMap::new();
        for entry in std::fs::read_dir(&src).expect("src is readable") {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let room = name.trim_end_matches(".rs");
            if room == "lib" || room == "main" {
                continue;
            }
            if path.is_dir() {
                imports(&path, room, &mut edges);
            } else {
                let text = std::fs::read_to_string(&path).expect("a source file");
                let used: &mut BTreeSet<String> = edges.entry(room.to_owned()).or_default();
                for line in text.lines() {
                    named(line, used);
                }
                used.remove(room);
            }
        }
        let mut circles = Vec::new();
        for (a, used) in &edges {
            for b in used {
                if a < b && edges.get(b).is_some_and(|back| back.contains(a)) {
                    circles.push((a.as_str(), b.as_str()));
                }
            }
        }
        assert_eq!(circles, [], "rooms that import each other");
        // The scan sees what it should: a known one-way import.
        assert!(edges["ingest"].contains("store"));
    }
}
