//! The Chrome DevTools protocol over its own WebSocket, for what
//! ChromeDriver's `goog/cdp/execute` ([`Browser::cdp`]) cannot do:
//! listen to events (a service worker's registration id arrives as one)
//! and talk to targets other than the page (the service worker itself).
//!
//! ChromeDriver starts Chromium with a DevTools port and says where in
//! the new session's capabilities (`goog:chromeOptions.debuggerAddress`);
//! this client connects there beside ChromeDriver, to the browser target,
//! and reaches pages and workers through flattened sessions
//! (`Target.attachToTarget` with `flatten: true`: one socket, a
//! `sessionId` on each message).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::browser::{Browser, PAGE_PATIENCE};

/// One event from the browser.
#[derive(Debug, Clone)]
pub struct Event {
    pub method: String,
    pub params: Value,
    /// The flattened session it came from; `None` for the browser's own.
    pub session_id: Option<String>,
}

type Replies = Arc<Mutex<HashMap<u64, oneshot::Sender<anyhow::Result<Value>>>>>;

/// A DevTools connection to the whole browser.
pub struct Cdp {
    /// Messages to send; a task owns the socket's writing half.
    out: mpsc::UnboundedSender<Message>,
    /// Commands awaiting their reply, by id.
    replies: Replies,
    /// Every event since connecting, so a wait never misses one that came
    /// before it started.
    events: Arc<Mutex<Vec<Event>>>,
    /// Wakes waiters when an event arrives.
    arrived: Arc<Notify>,
    next_id: AtomicU64,
    tasks: Vec<JoinHandle<()>>,
}

impl Cdp {
    /// Connects to the DevTools endpoint of the browser behind `browser`.
    pub async fn connect(browser: &Browser) -> anyhow::Result<Self> {
        let address = browser
            .client
            .capabilities()
            .and_then(|c| c.get("goog:chromeOptions"))
            .and_then(|o| o["debuggerAddress"].as_str())
            .context("ChromeDriver gave no goog:chromeOptions.debuggerAddress")?
            .to_owned();
        Self::connect_to(&address).await
    }

    /// Connects to the browser target of the DevTools endpoint at
    /// `host:port`.
    pub async fn connect_to(address: &str) -> anyhow::Result<Self> {
        let version: Value = reqwest::get(format!("http://{address}/json/version"))
            .await
            .with_context(|| format!("DevTools at {address}"))?
            .json()
            .await?;
        let url = version["webSocketDebuggerUrl"]
            .as_str()
            .context("no webSocketDebuggerUrl")?;
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let (mut write, mut read) = socket.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let replies: Replies = Arc::default();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let arrived = Arc::new(Notify::new());
        let writer = tokio::spawn(async move {
            while let Some(m) = outgoing.recv().await {
                if write.send(m).await.is_err() {
                    break;
                }
            }
        });
        let reader = {
            let (replies, events, arrived) = (replies.clone(), events.clone(), arrived.clone());
            tokio::spawn(async move {
                while let Some(Ok(m)) = read.next().await {
                    let Message::Text(text) = m else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if let Some(id) = v["id"].as_u64() {
                        let reply = match v.get("error") {
                            Some(e) => Err(anyhow!("{e}")),
                            None => Ok(v["result"].clone()),
                        };
                        if let Some(tx) = replies.lock().unwrap().remove(&id) {
                            let _ = tx.send(reply);
                        }
                    } else if let Some(method) = v["method"].as_str() {
                        events.lock().unwrap().push(Event {
                            method: method.to_owned(),
                            params: v["params"].clone(),
                            session_id: v["sessionId"].as_str().map(str::to_owned),
                        });
                        arrived.notify_waiters();
                    }
                }
                // The browser went away: nobody will answer.
                replies.lock().unwrap().clear();
            })
        };
        Ok(Self {
            out,
            replies,
            events,
            arrived,
            next_id: AtomicU64::new(1),
            tasks: vec![writer, reader],
        })
    }

    /// A command to the browser (`session` None) or to an attached
    /// target, and its result.
    pub async fn send(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.replies.lock().unwrap().insert(id, tx);
        self.out
            .send(Message::Text(message.to_string().into()))
            .map_err(|_| anyhow!("the DevTools connection is closed"))?;
        match tokio::time::timeout(PAGE_PATIENCE, rx).await {
            Ok(Ok(reply)) => reply.with_context(|| format!("DevTools {method}")),
            Ok(Err(_)) => bail!("DevTools {method}: the connection closed"),
            Err(_) => bail!("DevTools {method}: no reply in {PAGE_PATIENCE:?}"),
        }
    }

    /// The first event named `method` (since connecting) that satisfies
    /// `ok`, waiting for it up to [`PAGE_PATIENCE`].
    pub async fn event(&self, method: &str, ok: impl Fn(&Event) -> bool) -> anyhow::Result<Event> {
        let deadline = tokio::time::Instant::now() + PAGE_PATIENCE;
        loop {
            // Registered before looking, so an event in between still wakes us.
            let woken = self.arrived.notified();
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.method == method && ok(e))
            {
                return Ok(e.clone());
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                bail!("no {method} event in {PAGE_PATIENCE:?}");
            }
        }
    }

    /// The targets of `kind` (`page`, `service_worker`) whose URL starts
    /// with `url_prefix`.
    pub async fn targets(&self, kind: &str, url_prefix: &str) -> anyhow::Result<Vec<Value>> {
        let all = self.send(None, "Target.getTargets", json!({})).await?;
        Ok(all["targetInfos"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                t["type"] == kind && t["url"].as_str().unwrap_or("").starts_with(url_prefix)
            })
            .cloned()
            .collect())
    }

    /// Attaches to the first target of `kind` whose URL starts with
    /// `url_prefix`, waiting for one; returns the session id.
    pub async fn attach(&self, kind: &str, url_prefix: &str) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + PAGE_PATIENCE;
        loop {
            if let Some(t) = self.targets(kind, url_prefix).await?.first() {
                let r = self
                    .send(
                        None,
                        "Target.attachToTarget",
                        json!({"targetId": t["targetId"], "flatten": true}),
                    )
                    .await?;
                return r["sessionId"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no sessionId");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no {kind} target at {url_prefix} in {PAGE_PATIENCE:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tells the browser to attach to new targets by itself (workers a
    /// page starts), flattened; they then show up as
    /// `Target.attachedToTarget` events.
    pub async fn auto_attach(&self, session: Option<&str>) -> anyhow::Result<()> {
        self.send(
            session,
            "Target.setAutoAttach",
            json!({"autoAttach": true, "waitForDebuggerOnStart": false, "flatten": true}),
        )
        .await?;
        Ok(())
    }

    /// Grants `permissions` (`notifications`, `geolocation`) to `origin`.
    pub async fn grant_permissions(
        &self,
        origin: &str,
        permissions: &[&str],
    ) -> anyhow::Result<()> {
        self.send(
            None,
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": permissions}),
        )
        .await?;
        Ok(())
    }

    /// Turns on the ServiceWorker domain in a page's session and waits
    /// until the registration for `scope_url` has an activated worker;
    /// returns the registration id.
    pub async fn service_worker(&self, page: &str, scope_url: &str) -> anyhow::Result<String> {
        self.send(Some(page), "ServiceWorker.enable", json!({}))
            .await?;
        let registration = self
            .event("ServiceWorker.workerRegistrationUpdated", |e| {
                e.params["registrations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["scopeURL"] == scope_url && r["isDeleted"] != true)
            })
            .await?;
        let id = registration.params["registrations"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["scopeURL"] == scope_url)
            .and_then(|r| r["registrationId"].as_str())
            .context("no registrationId")?
            .to_owned();
        self.event("ServiceWorker.workerVersionUpdated", |e| {
            e.params["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["registrationId"] == id.as_str() && v["status"] == "activated")
        })
        .await?;
        Ok(id)
    }

    /// Hands `data` to the service worker of `registration_id` as a push
    /// message, as the browser does with what a push service delivers.
    pub async fn deliver_push(
        &self,
        page: &str,
        origin: &str,
        registration_id: &str,
        data: &str,
    ) -> anyhow::Result<()> {
        self.send(
            Some(page),
            "ServiceWorker.deliverPushMessage",
            json!({"origin": origin, "registrationId": registration_id, "data": data}),
        )
        .await?;
        Ok(())
    }

    /// Runs `expression` in an attached target (awaiting a promise) and
    /// returns its value; a thrown exception is an error.
    pub async fn evaluate(&self, session: &str, expression: &str) -> anyhow::Result<Value> {
        let r = self
            .send(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            bail!(
                "{expression} threw: {}",
                e["exception"]["description"]
                    .as_str()
                    .unwrap_or(&e.to_string())
            );
        }
        Ok(r["result"]["value"].clone())
    }

    /// Runs `expression` in the service worker whose script URL is
    /// `script_url`, starting the worker first if the browser stopped it
    /// (it does, when idle).
    pub async fn evaluate_in_worker(
        &self,
        page: &str,
        scope_url: &str,
        script_url: &str,
        expression: &str,
    ) -> anyhow::Result<Value> {
        self.send(
            Some(page),
            "ServiceWorker.startWorker",
            json!({"scopeURL": scope_url}),
        )
        .await?;
        let worker = self.attach("service_worker", script_url).await?;
        let value = self.evaluate(&worker, expression).await;
        let _ = self
            .send(
                None,
                "Target.detachFromTarget",
                json!({"sessionId": worker}),
            )
            .await;
        value
    }
}

impl Drop for Cdp {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
