//! Stewards played by the simulator, through the HTTP API exactly as the
//! steward app does: log in, go on duty, report the position, listen to
//! the stream, accept offers after a human pause, walk there, arrive,
//! stay a while and resolve.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::scenario::{scaled, sleep_or_stop};
use crate::site::{SiteSteward, SiteUser};

/// Walking speed, metres per second.
const WALK_M_S: f64 = 1.3;
/// Timeout of one API call (not the stream).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Something for the steward to do.
#[derive(Debug)]
struct Job {
    token: String,
    incident_id: String,
    /// Where the elder lives, when the event said so.
    target: Option<(f64, f64)>,
    elder_id: Option<String>,
    /// Already accepted (assigned by a supervisor, or before a reconnect).
    assigned: bool,
    on_site: bool,
}

/// One played steward.
pub struct Player {
    base: String,
    http: reqwest::Client,
    steward: SiteSteward,
    user: SiteUser,
    seed: u64,
    speed: f64,
    stop: CancellationToken,
    /// Admin credentials to create this steward's login first.
    create_as: Option<(String, String)>,
    /// Gets one permit the first time this steward is on duty and
    /// listening, so a scenario can start once its stewards are in place.
    on_duty: Option<Arc<Semaphore>>,
    signalled: AtomicBool,
}

impl Player {
    pub fn new(
        base: String,
        steward: SiteSteward,
        user: SiteUser,
        seed: u64,
        speed: f64,
        stop: CancellationToken,
    ) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            steward,
            user,
            seed,
            speed,
            stop,
            create_as: None,
            on_duty: None,
            signalled: AtomicBool::new(false),
        }
    }

    /// Adds a permit to `on_duty` once this steward is on duty and
    /// listening to the stream.
    pub fn signalling_on_duty(mut self, on_duty: Arc<Semaphore>) -> Self {
        self.on_duty = Some(on_duty);
        self
    }

    /// Creates the login (as this admin) before playing.
    pub fn creating_login(mut self, admin: (String, String)) -> Self {
        self.create_as = Some(admin);
        self
    }

    /// Creates the steward's login through the admin API; an existing one
    /// (409) is fine.
    async fn create_login(&self, admin: &(String, String)) -> anyhow::Result<()> {
        let login = call(
            &self.http,
            &self.base,
            None,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": admin.0, "password": admin.1})),
        )
        .await?;
        let token = login["token"]
            .as_str()
            .context("admin login without a token")?;
        match call(
            &self.http,
            &self.base,
            Some(token),
            Method::POST,
            "/api/v1/users",
            Some(
                json!({"username": self.user.username, "password": self.user.password,
                        "role": "steward", "steward_id": self.steward.id}),
            ),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains(": 409") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Plays until stopped: the stream is reopened (after a fresh login)
    /// whenever it fails.
    pub async fn run(self) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (token_tx, token_rx) = tokio::sync::watch::channel(None);
        let worker = Worker {
            token: token_rx,
            base: self.base.clone(),
            http: self.http.clone(),
            id: self.steward.id.clone(),
            pos: (self.steward.lat, self.steward.lon),
            rng: StdRng::seed_from_u64(self.seed),
            speed: self.speed,
            stop: self.stop.clone(),
            done: HashSet::new(),
        };
        let work = tokio::spawn(worker.run(rx));
        if let Some(admin) = &self.create_as {
            while let Err(e) = self.create_login(admin).await {
                tracing::warn!(steward = %self.steward.id, "cannot create the simulated steward's login: {e:#}");
                if sleep_or_stop(Duration::from_secs(2), &self.stop).await {
                    drop(tx);
                    let _ = work.await;
                    return;
                }
            }
        }
        loop {
            match self.session(&tx, &token_tx).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(steward = %self.steward.id, "simulated steward: {e:#}; reconnecting");
                    if sleep_or_stop(Duration::from_secs(2), &self.stop).await {
                        break;
                    }
                }
            }
        }
        drop(tx);
        let _ = work.await;
    }

    /// One login and one stream; Ok when stopped.
    async fn session(
        &self,
        jobs: &mpsc::UnboundedSender<Job>,
        token_tx: &tokio::sync::watch::Sender<Option<String>>,
    ) -> anyhow::Result<()> {
        let login = call(
            &self.http,
            &self.base,
            None,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": self.user.username, "password": self.user.password})),
        )
        .await?;
        let token = login["token"]
            .as_str()
            .context("login answer without a token")?
            .to_owned();
        token_tx.send_replace(Some(token.clone()));
        let id = &self.steward.id;
        call(
            &self.http,
            &self.base,
            Some(&token),
            Method::PUT,
            &format!("/api/v1/stewards/{id}/duty"),
            Some(json!({"on_duty": true})),
        )
        .await?;
        if let (Some(lat), Some(lon)) = (self.steward.lat, self.steward.lon) {
            call(
                &self.http,
                &self.base,
                Some(&token),
                Method::PUT,
                &format!("/api/v1/stewards/{id}/location"),
                Some(json!({"lat": lat, "lon": lon, "accuracy_m": 10.0})),
            )
            .await?;
        }
        let resp = tokio::select! {
            _ = self.stop.cancelled() => return Ok(()),
            r = self.http.get(format!("{}/api/v1/stream", self.base))
                .query(&[("access_token", token.as_str())])
                .send() => r?,
        };
        if resp.status() != StatusCode::OK {
            bail!("stream: {}", resp.status());
        }
        if let Some(on_duty) = &self.on_duty
            && !self.signalled.swap(true, Ordering::SeqCst)
        {
            on_duty.add_permits(1);
        }
        let mut resp = resp;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            while let Some((event, data)) = take_frame(&mut buf) {
                if let Some(job) = job_for(&event, &data, id, &token) {
                    let _ = jobs.send(job);
                }
            }
            let chunk = tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                c = resp.chunk() => c?,
            };
            match chunk {
                Some(bytes) => buf.extend_from_slice(&bytes),
                None => bail!("the stream ended"),
            }
        }
    }
}

/// What a stream event asks of this steward, if anything.
fn job_for(event: &str, data: &Value, me: &str, token: &str) -> Option<Job> {
    match event {
        "offer" => {
            let incident = &data["incident"];
            let elder = &data["elder"];
            Some(Job {
                token: token.to_owned(),
                incident_id: incident["id"].as_str()?.to_owned(),
                target: elder["lat"].as_f64().zip(elder["lon"].as_f64()),
                elder_id: incident["elder_id"].as_str().map(str::to_owned),
                assigned: false,
                on_site: false,
            })
        }
        "incident" => {
            let status = data["status"].as_str()?;
            let mine = data["steward_id"].as_str() == Some(me);
            (mine && (status == "acknowledged" || status == "on_site")).then(|| Job {
                token: token.to_owned(),
                incident_id: data["id"].as_str().unwrap_or_default().to_owned(),
                target: None,
                elder_id: data["elder_id"].as_str().map(str::to_owned),
                assigned: true,
                on_site: status == "on_site",
            })
        }
        _ => None,
    }
}

/// Takes one complete SSE event (name, JSON data) from the buffer;
/// comment-only blocks (keep-alives) are skipped.
pub(crate) fn take_frame(buf: &mut Vec<u8>) -> Option<(String, Value)> {
    loop {
        let end = buf.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&block);
        let (mut event, mut data) = (None, Vec::new());
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
            }
        }
        if let Some(event) = event {
            let data = serde_json::from_str(&data.join("\n")).unwrap_or(Value::Null);
            return Some((event, data));
        }
    }
}

/// Does the jobs one at a time, like a person.
struct Worker {
    /// The session's token, for the rounds between alarms.
    token: tokio::sync::watch::Receiver<Option<String>>,
    base: String,
    http: reqwest::Client,
    id: String,
    pos: (Option<f64>, Option<f64>),
    rng: StdRng,
    speed: f64,
    stop: CancellationToken,
    /// Incidents already dealt with (the stream repeats state on reconnect).
    done: HashSet<String>,
}

impl Worker {
    async fn run(mut self, mut jobs: mpsc::UnboundedReceiver<Job>) {
        loop {
            // Between alarms, the round: a visit after each quiet spell
            // of 10 to 40 simulated minutes.
            let quiet = Duration::from_secs_f64(self.rng.random_range(600.0..2400.0));
            let job = tokio::select! {
                _ = self.stop.cancelled() => return,
                j = jobs.recv() => match j { Some(j) => j, None => return },
                _ = tokio::time::sleep(scaled(quiet, self.speed)) => {
                    if let Err(e) = self.visit_next().await {
                        tracing::debug!(steward = %self.id, "simulated visit: {e:#}");
                    }
                    continue;
                }
            };
            if job.incident_id.is_empty() || self.done.contains(&job.incident_id) {
                continue;
            }
            self.done.insert(job.incident_id.clone());
            if let Err(e) = self.handle(job).await {
                tracing::info!(steward = %self.id, "simulated steward gave up an incident: {e:#}");
            }
        }
    }

    async fn api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        call(&self.http, &self.base, Some(token), method, path, body).await
    }

    /// Sleeps `sim` simulated time; Err when stopped.
    async fn pause(&self, sim: Duration) -> anyhow::Result<()> {
        if sleep_or_stop(scaled(sim, self.speed), &self.stop).await {
            bail!("stopped");
        }
        Ok(())
    }

    async fn handle(&mut self, job: Job) -> anyhow::Result<()> {
        let id = job.incident_id.clone();
        let token = job.token.clone();
        if !job.assigned {
            // Read the offer, put the phone away, decide: 3–15 s.
            let think = Duration::from_secs_f64(self.rng.random_range(3.0..15.0));
            self.pause(think).await?;
            match self
                .api(
                    &token,
                    Method::POST,
                    &format!("/api/v1/incidents/{id}/accept"),
                    None,
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(steward = %self.id, incident = %id, "simulated steward accepted")
                }
                Err(e) if e.to_string().contains("409") => {
                    tracing::debug!(steward = %self.id, incident = %id, "offer gone: {e:#}");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if !job.on_site {
            let target = match (job.target, &job.elder_id) {
                (Some(t), _) => Some(t),
                (None, Some(elder)) => {
                    let e = self
                        .api(
                            &token,
                            Method::GET,
                            &format!("/api/v1/elders/{elder}"),
                            None,
                        )
                        .await
                        .ok();
                    e.and_then(|e| e["lat"].as_f64().zip(e["lon"].as_f64()))
                }
                _ => None,
            };
            if let Some(target) = target {
                self.walk(&token, target).await?;
            } else {
                self.pause(Duration::from_secs(120)).await?;
            }
            self.api(
                &token,
                Method::POST,
                &format!("/api/v1/incidents/{id}/arrive"),
                None,
            )
            .await?;
        }
        // With the elder a while.
        let stay = Duration::from_secs_f64(self.rng.random_range(60.0..300.0));
        self.pause(stay).await?;
        let (outcome, notes) = if self.rng.random_bool(0.7) {
            let notes = [
                "Helped back to bed; comfortable, asked for water.",
                "Helped up after a slip, no injury; family informed.",
                "Checked blood pressure, reminded about evening tablets.",
                "Felt dizzy; sat with her until it passed, no further concern.",
            ];
            ("assisted", notes[self.rng.random_range(0..notes.len())])
        } else {
            let notes = [
                "Pressed by mistake while tidying; all well.",
                "Grandchild played with the pendant.",
                "Button knocked while reaching for the light.",
            ];
            ("false_alarm", notes[self.rng.random_range(0..notes.len())])
        };
        self.api(
            &token,
            Method::POST,
            &format!("/api/v1/incidents/{id}/resolve"),
            Some(json!({"outcome": outcome, "notes": notes})),
        )
        .await?;
        tracing::info!(steward = %self.id, incident = %id, outcome, "simulated steward resolved");
        Ok(())
    }

    /// The next stop of today's round: walk there, check in at the door,
    /// stay a while, leave a note. Nothing when the round is done.
    async fn visit_next(&mut self) -> anyhow::Result<()> {
        let Some(token) = self.token.borrow().clone() else {
            return Ok(());
        };
        let round = self
            .api(&token, Method::GET, "/api/v1/rounds/today", None)
            .await?;
        let Some(stop) = round["stops"].as_array().and_then(|s| s.first()).cloned() else {
            return Ok(());
        };
        let visit = stop["visit"]["id"]
            .as_str()
            .context("a stop without a visit")?;
        let home = stop["elder"]["lat"]
            .as_f64()
            .zip(stop["elder"]["lon"].as_f64())
            .context("a stop without a home")?;
        if stop["visit"]["status"] == "planned" {
            self.walk(&token, home).await?;
            self.api(
                &token,
                Method::POST,
                &format!("/api/v1/visits/{visit}/start"),
                Some(json!({"lat": home.0, "lon": home.1, "accuracy_m": 8.0})),
            )
            .await?;
        }
        // Short: an alarm waits for the visit to end (offers meanwhile go on
        // to others when this one expires).
        let stay = Duration::from_secs_f64(self.rng.random_range(180.0..600.0));
        self.pause(stay).await?;
        let (wellbeing, needs, text) = [
            (
                "well",
                vec![],
                "Cheerful; tea together, pills sorted for the week.",
            ),
            (
                "well",
                vec!["shopping"],
                "Fine; asked for rice and oil next time.",
            ),
            (
                "fair",
                vec!["meals"],
                "Tired, eating little; will ask the canteen to deliver.",
            ),
            (
                "fair",
                vec!["doctor"],
                "Knee worse on the stairs; clinic visit suggested.",
            ),
            (
                "poor",
                vec!["doctor", "company"],
                "Low mood, coughing; daughter phoned.",
            ),
        ][self.rng.random_range(0..5)]
        .clone();
        self.api(
            &token,
            Method::POST,
            &format!("/api/v1/visits/{visit}/finish"),
            Some(json!({"wellbeing": wellbeing, "needs": needs, "text": text,
                        "follow_up": wellbeing == "poor"})),
        )
        .await?;
        tracing::info!(steward = %self.id, visit, wellbeing, "simulated steward visited");
        Ok(())
    }

    /// Walks to `target` at walking speed, reporting the position every
    /// few (real) seconds.
    async fn walk(&mut self, token: &str, target: (f64, f64)) -> anyhow::Result<()> {
        let (mut lat, mut lon) = match self.pos {
            (Some(lat), Some(lon)) => (lat, lon),
            _ => target,
        };
        let step_real = scaled(Duration::from_secs(10), self.speed).max(Duration::from_millis(250));
        let step_m = WALK_M_S * step_real.as_secs_f64() * self.speed;
        loop {
            let left = distance_m((lat, lon), target);
            if left <= step_m {
                (lat, lon) = target;
            } else {
                let f = step_m / left;
                lat += (target.0 - lat) * f;
                lon += (target.1 - lon) * f;
            }
            self.pos = (Some(lat), Some(lon));
            let path = format!("/api/v1/stewards/{}/location", self.id);
            if let Err(e) = self
                .api(
                    token,
                    Method::PUT,
                    &path,
                    Some(json!({"lat": lat, "lon": lon, "accuracy_m": 8.0})),
                )
                .await
            {
                tracing::debug!(steward = %self.id, "location: {e:#}");
            }
            if (lat, lon) == target {
                return Ok(());
            }
            if sleep_or_stop(step_real, &self.stop).await {
                bail!("stopped");
            }
        }
    }
}

/// Great-circle distance in metres.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let r = 6_371_000.0;
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dla = la2 - la1;
    let dlo = (b.1 - a.1).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

/// One API call; the JSON body on success, an error naming the status
/// otherwise.
pub(crate) async fn call(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http
        .request(method.clone(), format!("{base}{path}"))
        .timeout(CALL_TIMEOUT);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("{method} {path}"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!(
            "{method} {path}: {} {}",
            status.as_u16(),
            text.chars().take(200).collect::<String>()
        );
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_parsed_and_keepalives_skipped() {
        let mut buf = b": keep-alive\n\nid: 3\nevent: offer\ndata: {\"incident\":{\"id\":\"i-1\"},\"elder\":{\"lat\":1.0,\"lon\":2.0}}\n\nid: 4\nevent: st".to_vec();
        let (event, data) = take_frame(&mut buf).unwrap();
        assert_eq!(event, "offer");
        let job = job_for(&event, &data, "s-1", "t").unwrap();
        assert_eq!(job.incident_id, "i-1");
        assert_eq!(job.target, Some((1.0, 2.0)));
        assert!(take_frame(&mut buf).is_none());
    }

    #[test]
    fn distance_is_about_right() {
        let d = distance_m((29.6598, 91.1377), (29.6607, 91.1377));
        assert!((90.0..110.0).contains(&d), "{d}");
    }
}
