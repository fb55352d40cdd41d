//! Stewards for a load run: they answer every offer at once (accept,
//! arrive, resolve as a false alarm) so they are free again for the next,
//! and time each offer from the press that caused it.
//!
//! Unlike the scenario's stewards ([`crate::stewards`]) they do not pause
//! like people: a load run measures the dispatcher, not the walk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::fleet::Presses;
use super::site::{steward_id, steward_position};
use crate::stewards::{call, take_frame};

/// A steward's location is re-sent this often: the dispatcher trusts a
/// location for 15 minutes by default.
const LOCATION_EVERY: Duration = Duration::from_secs(300);

/// What the stewards saw.
#[derive(Debug, Default)]
pub struct StewardCounters {
    pub offers: AtomicU64,
    pub accepted: AtomicU64,
    pub resolved: AtomicU64,
    pub api_errors: AtomicU64,
    /// Offers whose press this run did not send (an earlier run's
    /// incident, or a second press that joined an open incident).
    pub unmatched: AtomicU64,
}

/// Press to offer, one sample per matched offer.
pub type Samples = Arc<Mutex<Vec<Duration>>>;

/// One steward of a load run.
pub(crate) struct LoadSteward {
    /// The instances it may use; it starts on the k-th.
    pub bases: Vec<String>,
    pub prefix: String,
    pub k: usize,
    pub password: String,
    pub seed: u64,
    pub presses: Presses,
    pub samples: Samples,
    pub counters: Arc<StewardCounters>,
    pub stop: CancellationToken,
}

impl LoadSteward {
    /// Runs until `stop`, logging in again after a lost stream.
    pub async fn run(self) {
        let http = reqwest::Client::new();
        let mut at = self.k;
        while !self.stop.is_cancelled() {
            let base = &self.bases[at % self.bases.len().max(1)];
            if let Err(e) = self.session(&http, base).await {
                self.counters.api_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(steward = self.k, %base, "load steward: {e:#}");
                // The next instance, as a balancer would send it.
                at += 1;
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    async fn session(&self, http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
        let id = steward_id(&self.prefix, self.k);
        let login = call(
            http,
            base,
            None,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": id, "password": self.password})),
        )
        .await?;
        let token = login["token"].as_str().context("no token")?.to_owned();
        let (lat, lon) = steward_position(self.seed, self.k);
        let location_path = format!("/api/v1/stewards/{id}/location");
        let locate = || {
            call(
                http,
                base,
                Some(&token),
                Method::PUT,
                &location_path,
                Some(json!({"lat": lat, "lon": lon, "accuracy_m": 10.0})),
            )
        };
        locate().await?;
        call(
            http,
            base,
            Some(&token),
            Method::PUT,
            &format!("/api/v1/stewards/{id}/duty"),
            Some(json!({"on_duty": true})),
        )
        .await?;
        // Answers run beside the stream so reading it never waits on them.
        let (jobs, mut next) = mpsc::unbounded_channel::<String>();
        let worker = {
            let (http, base, token) = (http.clone(), base.to_owned(), token.clone());
            let counters = self.counters.clone();
            tokio::spawn(async move {
                while let Some(incident) = next.recv().await {
                    answer(&http, &base, &token, &incident, &counters).await;
                }
            })
        };
        let mut resp = http
            .get(format!("{base}/api/v1/stream"))
            .query(&[("access_token", token.as_str())])
            .send()
            .await?;
        anyhow::ensure!(resp.status() == StatusCode::OK, "stream: {}", resp.status());
        let mut buf = Vec::new();
        let mut last_located = Instant::now();
        let outcome = loop {
            while let Some((event, data)) = take_frame(&mut buf) {
                if event != "offer" {
                    continue;
                }
                let seen = Instant::now();
                self.counters.offers.fetch_add(1, Ordering::Relaxed);
                let elder = data["incident"]["elder_id"]
                    .as_str()
                    .or(data["elder"]["id"].as_str())
                    .unwrap_or_default();
                match self.presses.lock().await.remove(elder) {
                    Some(pressed) => self.samples.lock().await.push(seen - pressed),
                    None => {
                        self.counters.unmatched.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Some(incident) = data["incident"]["id"].as_str() {
                    let _ = jobs.send(incident.to_owned());
                }
            }
            if last_located.elapsed() > LOCATION_EVERY {
                last_located = Instant::now();
                let _ = locate().await;
            }
            let chunk = tokio::select! {
                _ = self.stop.cancelled() => break Ok(()),
                c = tokio::time::timeout(Duration::from_secs(30), resp.chunk()) => c,
            };
            match chunk {
                // No frame in 30 s is fine (keep-alives are comments).
                Err(_) => continue,
                Ok(Ok(Some(bytes))) => buf.extend_from_slice(&bytes),
                Ok(Ok(None)) => break Err(anyhow::anyhow!("the stream ended")),
                Ok(Err(e)) => break Err(e.into()),
            }
        };
        drop(jobs);
        let _ = worker.await;
        outcome
    }
}

/// Accept, arrive, resolve: the steward is free again at once.
async fn answer(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    incident: &str,
    counters: &StewardCounters,
) {
    let path = |what: &str| format!("/api/v1/incidents/{incident}/{what}");
    let t = Some(token);
    if call(http, base, t, Method::POST, &path("accept"), None)
        .await
        .is_err()
    {
        // Taken by the other steward of a critical pair, or withdrawn.
        return;
    }
    counters.accepted.fetch_add(1, Ordering::Relaxed);
    let done = async {
        call(http, base, t, Method::POST, &path("arrive"), None).await?;
        call(
            http,
            base,
            t,
            Method::POST,
            &path("resolve"),
            Some(json!({"outcome": "false_alarm", "notes": "load test"})),
        )
        .await
    };
    match done.await {
        Ok(_) => counters.resolved.fetch_add(1, Ordering::Relaxed),
        Err(_) => counters.api_errors.fetch_add(1, Ordering::Relaxed),
    };
}
