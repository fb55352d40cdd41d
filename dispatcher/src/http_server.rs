//! The HTTP server: every connection counted, capped and timed, so idle
//! or slow clients cannot use up the process's open files (which the
//! embedded broker's devices and the database need too).
//!
//! - **A cap** on open connections ([`Limits::max_connections`]), by
//!   default half the open-file limit (`RLIMIT_NOFILE`) read at start, so
//!   the other half stays for the broker, its devices and the database.
//! - **At the cap**, the connection idle the longest (no request in
//!   flight) is closed to make room: a flood of idle connections cannot
//!   keep a real request out. When every connection is busy (streams,
//!   requests in flight), the new one gets a `503` with `Retry-After` in
//!   API.md's error shape, and is closed.
//! - **Timeouts**: a new connection must send its first request within
//!   [`Limits::header_timeout`]; a kept-alive connection with no request
//!   in flight is closed after [`Limits::idle_timeout`]. A connection with
//!   a request in flight is never cut, so a Server-Sent Events stream
//!   (whose response never ends) lives as long as its client.
//! - Each request carries the peer's address as
//!   [`axum::extract::ConnectInfo`], for per-address login limits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::settings::HttpSettings;

/// The connection limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// The fewest connections the automatic cap allows, whatever the file
/// limit says.
const MIN_CONNECTIONS: usize = 16;
/// The most the automatic cap allows: beyond it, set it explicitly.
const MAX_AUTO_CONNECTIONS: usize = 100_000;
/// Sheds (503s) being written at once; beyond, a connection is closed
/// without an answer (each shed holds a file for a moment).
const SHEDDING_AT_ONCE: usize = 16;
/// How long a shed connection is given to send its request before the
/// 503 (read first, so closing does not reset the connection under it).
const SHED_READ: Duration = Duration::from_millis(200);
/// What a shed connection is told: retry after this many seconds.
pub const SHED_RETRY_AFTER_S: u64 = 2;

impl Limits {
    /// The settings' limits; the cap from the open-file limit when unset.
    /// Also says how the cap was chosen, for the log.
    pub fn from_settings(http: &HttpSettings) -> (Self, String) {
        let (max_connections, how) = match http.max_connections {
            Some(n) => (n, "set by http.max_connections".to_owned()),
            None => match open_files_limit() {
                Some(files) => (
                    auto_max_connections(files),
                    format!(
                        "half the open-file limit of {files} (RLIMIT_NOFILE), the rest kept for the broker, its devices and the database"
                    ),
                ),
                None => (
                    1024,
                    "the open-file limit is unknown; set http.max_connections".to_owned(),
                ),
            },
        };
        (
            Self {
                max_connections,
                header_timeout: Duration::from_secs(http.header_timeout_s.into()),
                idle_timeout: Duration::from_secs(http.idle_timeout_s.into()),
            },
            how,
        )
    }
}

/// The process's soft limit on open files.
pub fn open_files_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Half the open-file limit, within [`MIN_CONNECTIONS`] and
/// [`MAX_AUTO_CONNECTIONS`].
pub fn auto_max_connections(open_files: u64) -> usize {
    usize::try_from(open_files / 2)
        .unwrap_or(usize::MAX)
        .clamp(MIN_CONNECTIONS, MAX_AUTO_CONNECTIONS)
}

/// The body of a shed connection's 503 (API.md's error shape).
pub fn shed_response() -> Vec<u8> {
    let body = serde_json::json!({"error": {
        "code": "overloaded",
        "message": format!(
            "the server has as many connections open as it allows; retry in {SHED_RETRY_AFTER_S} s"
        ),
    }})
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {SHED_RETRY_AFTER_S}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `stop` is cancelled, then asks every
/// connection to finish (an idle one closes at once, one with a request
/// in flight after its response) and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let table = Arc::new(Table::default());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    let shedding = Arc::new(Semaphore::new(SHEDDING_AT_ONCE));
    // Every connection task holds a receiver: all closed when the sender
    // sees none.
    let (open_tx, open_rx) = watch::channel(());
    let sweeper = tokio::spawn(sweep(table.clone(), limits, stop.clone()));
    let mut last_accept_warning: Option<Instant> = None;

    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files (EMFILE) or the like: the cap is above
                    // what the process may open. Wait rather than spin.
                    if last_accept_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "cannot accept HTTP connections; lower http.max_connections or raise the open-file limit");
                        last_accept_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Offers travel as small SSE writes: Nagle would hold them back.
        let _ = tcp.set_nodelay(true);
        if !table.make_room(limits.max_connections) {
            match shedding.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        shed(tcp).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(tcp),
            }
            continue;
        }
        let (id, evict) = table.open();
        let conn = Conn {
            id,
            peer,
            table: table.clone(),
        };
        tokio::spawn(serve_connection(
            tcp,
            conn,
            app.clone(),
            builder.clone(),
            evict,
            stop.clone(),
            open_rx.clone(),
        ));
    }

    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
    sweeper.abort();
    Ok(())
}

/// One connection: served until it ends, is evicted (dropped: it is
/// idle) or, on `stop`, finishes gracefully.
async fn serve_connection(
    tcp: TcpStream,
    conn: Conn,
    app: Router,
    builder: Arc<Builder<TokioExecutor>>,
    evict: CancellationToken,
    stop: CancellationToken,
    _open: watch::Receiver<()>,
) {
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut app = app.clone();
            let busy = conn.busy();
            let peer = conn.peer;
            async move {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                let response = match app.call(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(Tracked {
                        inner: body,
                        _busy: busy,
                    })
                }))
            }
        })
    };
    let mut served = pin!(builder.serve_connection_with_upgrades(TokioIo::new(tcp), service));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %conn.peer, error = %e, "HTTP connection ended with an error");
                }
                break;
            }
            _ = evict.cancelled() => {
                tracing::debug!(peer = %conn.peer, "idle HTTP connection closed");
                break;
            }
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                served.as_mut().graceful_shutdown();
            }
        }
    }
    conn.table.close(conn.id);
}

/// Reads what the client sent (briefly), answers 503 and closes.
async fn shed(mut tcp: TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(SHED_READ, tcp.read(&mut buf)).await;
    let _ = tcp.write_all(&shed_response()).await;
    let _ = tcp.shutdown().await;
}

/// Closes connections idle past their timeout, once a second.
async fn sweep(table: Arc<Table>, limits: Limits, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        table.close_idle(Instant::now(), limits);
    }
}

/// Every open connection's state.
#[derive(Default)]
struct Table {
    conns: Mutex<HashMap<u64, State>>,
    next_id: AtomicU64,
}

struct State {
    /// Requests in flight (an unfinished response counts).
    busy: usize,
    /// Requests this connection has made.
    requests: u64,
    /// When `busy` last went to 0 (or the connection opened).
    idle_since: Instant,
    /// Cancelled to close the connection at once.
    evict: CancellationToken,
}

impl State {
    fn evicted(&self) -> bool {
        self.evict.is_cancelled()
    }
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, State>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self) -> (u64, CancellationToken) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        self.lock().insert(
            id,
            State {
                busy: 0,
                requests: 0,
                idle_since: Instant::now(),
                evict: evict.clone(),
            },
        );
        (id, evict)
    }

    fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Whether one more connection fits under `max`, closing the one idle
    /// the longest when it would not.
    fn make_room(&self, max: usize) -> bool {
        let conns = self.lock();
        let open = conns.values().filter(|c| !c.evicted()).count();
        if open < max {
            return true;
        }
        let idlest = conns
            .values()
            .filter(|c| c.busy == 0 && !c.evicted())
            .min_by_key(|c| c.idle_since);
        match idlest {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }

    fn close_idle(&self, now: Instant, limits: Limits) {
        for c in self.lock().values() {
            let patience = if c.requests == 0 {
                limits.header_timeout
            } else {
                limits.idle_timeout
            };
            if c.busy == 0 && now.duration_since(c.idle_since) >= patience {
                c.evict.cancel();
            }
        }
    }
}

/// A connection's handle for its requests.
#[derive(Clone)]
struct Conn {
    id: u64,
    peer: SocketAddr,
    table: Arc<Table>,
}

impl Conn {
    /// Marks a request in flight until the guard (held by its response
    /// body) drops.
    fn busy(&self) -> Busy {
        if let Some(c) = self.table.lock().get_mut(&self.id) {
            c.busy += 1;
            c.requests += 1;
        }
        Busy(self.clone())
    }
}

struct Busy(Conn);

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(c) = self.0.table.lock().get_mut(&self.0.id) {
            c.busy = c.busy.saturating_sub(1);
            if c.busy == 0 {
                c.idle_since = Instant::now();
            }
        }
    }
}

/// A response body that keeps its connection marked busy until it is
/// sent (or dropped).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_automatic_cap_is_half_the_file_limit() {
        assert_eq!(auto_max_connections(1024), 512);
        assert_eq!(auto_max_connections(4), MIN_CONNECTIONS);
        assert_eq!(auto_max_connections(u64::MAX), MAX_AUTO_CONNECTIONS);
    }

    #[test]
    fn at_the_cap_the_idlest_connection_makes_room() {
        let t = Table::default();
        let (a, evict_a) = t.open();
        let (b, evict_b) = t.open();
        // b is busy: only a may go.
        t.lock().get_mut(&b).unwrap().busy = 1;
        assert!(t.make_room(2));
        assert!(evict_a.is_cancelled());
        assert!(!evict_b.is_cancelled());
        // a is on its way out and b is busy: no room.
        t.close(a);
        let (_c, _) = t.open();
        t.lock().values_mut().for_each(|c| c.busy = 1);
        assert!(!t.make_room(2));
    }

    #[test]
    fn idle_connections_time_out_busy_ones_never() {
        let t = Table::default();
        let limits = Limits {
            max_connections: 10,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let (_fresh, evict_fresh) = t.open();
        let (kept, evict_kept) = t.open();
        let (streaming, evict_streaming) = t.open();
        {
            let mut conns = t.lock();
            conns.get_mut(&kept).unwrap().requests = 1;
            let s = conns.get_mut(&streaming).unwrap();
            s.requests = 1;
            s.busy = 1;
        }
        let now = Instant::now();
        t.close_idle(now + Duration::from_secs(11), limits);
        assert!(
            evict_fresh.is_cancelled(),
            "no request within the header timeout"
        );
        assert!(!evict_kept.is_cancelled());
        t.close_idle(now + Duration::from_secs(3600), limits);
        assert!(evict_kept.is_cancelled());
        assert!(!evict_streaming.is_cancelled(), "a stream is never idle");
    }

    #[test]
    fn the_shed_answer_is_json_with_retry_after() {
        let text = String::from_utf8(shed_response()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("retry-after: 2"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "overloaded");
    }
}
