//! `GET /api/v1/stream`: Server-Sent Events, scoped by the caller's role.
//!
//! Supervisors and admins hear the audience `supervisors`; a steward hears
//! `steward:{their id}`. A supervisor scoped to a community or a district
//! hears, of that audience, only their grids' incidents and stewards: the
//! snapshot, the replay and every live event pass
//! [`super::scope::StreamScope`]. Auth is `Authorization: Bearer` or, for
//! browsers' `EventSource`, `?access_token=`.
//!
//! Every connection gets, in order:
//!
//! 1. a `snapshot` event with the caller's current state, read from the
//!    store's tables (never from the log, so it is right even when the log
//!    was pruned or an event slipped past); its `id` is the stream head at
//!    the time: the connection reads the store's head and waits (briefly)
//!    until the hub has published up to it, and uses the hub's watermark,
//!    below which every seq has committed, so every event up to the id is
//!    reflected in the snapshot;
//! 2. when the request carries `Last-Event-ID` (or `?last_event_id=`),
//!    every stored event for this audience after that id up to the
//!    snapshot's id, in order: exactly what was missed;
//! 3. live events from the hub, after the snapshot's id.
//!
//! No gap and no duplicate between 2 and 3: the connection subscribes to
//! the hub *before* reading the hub's watermark, the snapshot and the
//! replay, so whatever is published after the watermark is in its
//! receiver, and whatever the replay sent is skipped when it comes live
//! ([`Merge`]). Events the hub publishes late (a PostgreSQL transaction
//! that committed after the events behind it, see [`crate::notify::hub`]) are sent
//! whatever their id, unless the replay already sent them.
//!
//! A comment line keeps the connection alive every 15 s. A connection
//! that falls more than [`crate::notify::hub::BUFFER`] events behind is closed; the
//! client reconnects with `Last-Event-ID` and misses nothing. Shutdown
//! closes every connection, and so does the end of the connection's
//! session (logout, the user deleted, a new password or role): at once
//! when this process ended it ([`super::session_ends`]), within
//! [`super::session_ends::RECHECK`] when another instance did.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use super::auth::{AuthUser, stream_user};
use super::error::ErrorBody;
use super::extract::ApiQuery;
use super::routes::Routes;
use super::scope::StreamScope;
use super::session_ends::{Ended, RECHECK};
use super::{ApiError, AppState};
use crate::clock::Clock;
use crate::domain::{Incident, IncidentState, LiveOffer, Steward, StewardId};
use crate::notify::hub::Published;
use crate::store::IncidentFilter;
use crate::store::Store;
use crate::store::dispatch::{Audience, StreamEvent, StreamKind};
use crate::store::stream_log::StreamLog;

/// Comment lines this often keep proxies and phones from closing an idle
/// connection.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a connection waits for the hub to start before a 503.
const HUB_PATIENCE: Duration = Duration::from_secs(5);
/// How long a connection waits for the hub to publish up to the store's
/// head (a nudged read; longer only behind a held-back gap).
const CATCH_UP_PATIENCE: Duration = Duration::from_secs(2);
/// Replays reach back at most this many ids; a client further behind gets
/// the snapshot alone (it holds the current state anyway).
pub const MAX_REPLAY: i64 = 50_000;
/// Rows read per `stream_after` call of a replay.
const REPLAY_PAGE: i64 = 500;
/// Open incidents and stewards in one snapshot at most.
const SNAPSHOT_LIMIT: i64 = 10_000;

pub fn routes() -> Routes {
    Routes::new().get("/api/v1/stream", stream)
}

/// The stream routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// Query parameters for clients that cannot set headers.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The session token, for `EventSource` (a header wins when both are
    /// sent). Only this route takes it.
    pub access_token: Option<String>,
    /// As the `Last-Event-ID` header: the last `id` received.
    #[param(pattern = "^ *([0-9]{1,18})? *$")]
    pub last_event_id: Option<String>,
}

/// One Server-Sent Event as a client parses it (the `itemSchema` of
/// OpenAPI 3.2 for `text/event-stream`): a comment line (keep-alive)
/// is no event.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SseEvent {
    /// The stream id; reconnect with it as `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    pub event: StreamKind,
    /// The event's JSON (see the operation's description).
    pub data: String,
}

/// The `snapshot` a steward's connection starts with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StewardSnapshot {
    /// Live offers, oldest first.
    pub offers: Vec<LiveOffer>,
    /// Open incidents assigned to this steward.
    pub incidents: Vec<Incident>,
    /// The steward's own record.
    pub steward: Option<Steward>,
}

/// The `snapshot` a supervisor's connection starts with.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupervisorSnapshot {
    /// Every open incident, newest first.
    pub incidents: Vec<Incident>,
    pub stewards: Vec<Steward>,
}

/// The caller's events, as Server-Sent Events.
///
/// Event names (each event has `id: <seq>`, `event: <name>`, `data: <JSON>`):
///
/// - `snapshot` (first on every connection): a steward gets
///   `{offers: [{incident, elder, distance_m, expires_at}], incidents:
///   [assigned open incidents], steward}`; a supervisor gets `{incidents:
///   [open incidents], stewards: [all]}`. Its `id` is the stream head it
///   reflects.
/// - `offer` (the steward): `{incident, elder, distance_m, expires_at}`.
/// - `offer.withdrawn` (the steward): `{incident_id, reason}`.
/// - `incident` (supervisors; the assigned steward): the incident after
///   any change.
/// - `steward` (supervisors): a steward after a status or location change.
///
/// Reconnect with `Last-Event-ID` (or `?last_event_id=`) to receive every
/// event after that id, then live ones, with no gap and no duplicate.
/// A comment line every 15 s keeps the connection alive. A client that
/// reads too slowly is disconnected and should reconnect with
/// `Last-Event-ID`; events are kept 24 hours.
#[utoipa::path(get, path = "/api/v1/stream", tag = "stream", security(("bearer" = [])),
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, pattern = "^ *([0-9]{1,18})? *$", description = "The last `id` received; the events after it are replayed"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream",
            description = "An endless `text/event-stream`: `snapshot`, then missed events, then live `offer`, `offer.withdrawn`, `incident`, `steward` events",
            body = SseEvent),
        (status = 400, description = "`Last-Event-ID` is not a stream id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A steward login not linked to a steward", body = ErrorBody),
        (status = 503, description = "The store is unavailable or the stream is starting; retry", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn stream(
    State(state): State<AppState>,
    parts: Parts,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    // Before the session is read: an end from here on is heard.
    let ends = state.session_ends.subscribe();
    let user = stream_user(&parts, &state).await?;
    let audience = audience_of(&user)?;
    let last_event_id = last_event_id(&parts, q.last_event_id.as_deref())?;

    let hub = state.hub.clone();
    if !hub.wait_ready(HUB_PATIENCE).await {
        return Err(not_running());
    }
    // Subscribe first: everything published from here on is received.
    let rx = hub.subscribe();
    // Then let the hub catch up with the store's head, so the snapshot's
    // id is (at least) the head at the time of the snapshot.
    let head = state.store.stream_head().await?;
    let Some(watermark) = hub.catch_up(head, CATCH_UP_PATIENCE).await else {
        return Err(not_running());
    };
    let snapshot = snapshot(&state, &user, &audience).await?;
    // An id beyond the head comes from another store (restored from a
    // backup, or recreated): honouring it would hide every event below it.
    let last_event_id = last_event_id.filter(|id| *id <= watermark);
    let mut scope = StreamScope::new(user.clone(), state.store.clone());
    let mut replay = match last_event_id {
        Some(after) => replay(state.store.as_ref(), &audience, after, watermark).await?,
        None => Replay::default(),
    };
    // A scoped supervisor's replay: their grids' events only (the merge
    // below still skips every replayed seq, sent or not).
    let mut kept = Vec::with_capacity(replay.events.len());
    for e in &replay.events {
        kept.push(scope.admits(e).await?);
    }
    tracing::info!(
        user = %user.username,
        audience = %audience.as_text(),
        last_event_id,
        watermark,
        replayed = replay.events.len(),
        "stream opened"
    );

    let snapshot_id = watermark.max(last_event_id.unwrap_or(0));
    let mut first = vec![frame(snapshot_id, StreamKind::Snapshot, &snapshot)];
    if replay.skipped {
        first.push(Event::default().comment(format!(
            "more than {MAX_REPLAY} events were missed: the snapshot holds the current state"
        )));
    }
    first.extend(
        replay
            .events
            .iter()
            .zip(&kept)
            .filter(|(_, keep)| **keep)
            .map(|(e, _)| event_frame(e)),
    );
    let merge = Merge::new(audience, snapshot_id, &replay.events);
    replay.events.clear();
    let session = Session {
        ends,
        user,
        store: state.store.clone(),
        clock: state.clock.clone(),
        scope,
    };
    let body = stream::iter(first)
        .chain(live(rx, merge, hub.closed(), session))
        .map(Ok::<_, Infallible>);
    let mut response = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Proxies (nginx) must pass events on as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn not_running() -> ApiError {
    ApiError::Unavailable(
        "the live stream is not running (starting or shutting down); try again shortly".into(),
    )
}

/// Whose events a caller hears.
pub fn audience_of(user: &AuthUser) -> Result<Audience, ApiError> {
    if user.sees_everything() {
        return Ok(Audience::Supervisors);
    }
    user.own_steward()
        .cloned()
        .map(Audience::Steward)
        .ok_or_else(|| {
            ApiError::Forbidden("this login is not linked to a steward; ask an admin".into())
        })
}

/// `Last-Event-ID` from the header, else the query.
fn last_event_id(parts: &Parts, query: Option<&str>) -> Result<Option<i64>, ApiError> {
    let header = match parts.headers.get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| bad_id())?),
        None => None,
    };
    // A blank header is no header: the query parameter counts then.
    let blank = |t: &&str| t.trim().is_empty();
    let Some(text) = header
        .filter(|t| !blank(t))
        .or(query)
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return Ok(None);
    };
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(bad_id()),
    }
}

fn bad_id() -> ApiError {
    ApiError::BadRequest {
        code: "invalid_last_event_id",
        message: "Last-Event-ID must be an id this stream sent (a whole number); reconnect without it for a fresh snapshot".into(),
    }
}

/// The caller's current state (a scoped supervisor's: their grids').
async fn snapshot(
    state: &AppState,
    user: &AuthUser,
    audience: &Audience,
) -> Result<serde_json::Value, ApiError> {
    let value = match audience {
        Audience::Supervisors => serde_json::to_value(SupervisorSnapshot {
            incidents: state
                .store
                .incidents(&IncidentFilter {
                    status: IncidentState::OPEN.to_vec(),
                    limit: SNAPSHOT_LIMIT,
                    grids: user.view.grid_list(),
                    ..Default::default()
                })
                .await?,
            stewards: {
                let mut all = state.store.stewards().await?;
                all.retain(|s| user.view.sees_steward(s));
                all
            },
        }),
        Audience::Steward(me) => serde_json::to_value(steward_snapshot(state, me).await?),
    };
    value.map_err(|e| ApiError::Internal(format!("snapshot does not serialise: {e}")))
}

async fn steward_snapshot(state: &AppState, me: &StewardId) -> Result<StewardSnapshot, ApiError> {
    let mut offers = Vec::new();
    for offer in state.store.live_offers_of(me).await? {
        // Closed between the two reads: no longer an offer.
        let Some(detail) = state.store.incident(&offer.incident_id).await? else {
            continue;
        };
        let elder = match &detail.incident.elder_id {
            Some(id) => state.store.elder(id).await?,
            None => None,
        };
        offers.push(LiveOffer {
            incident: detail.incident,
            elder,
            distance_m: offer.distance_m,
            expires_at: offer.expires_at,
        });
    }
    // The filter also finds incidents merely offered to them; the
    // snapshot's `incidents` are those assigned (offers are above).
    let incidents = state
        .store
        .incidents(&IncidentFilter {
            status: IncidentState::OPEN.to_vec(),
            steward_id: Some(me.clone()),
            limit: SNAPSHOT_LIMIT,
            ..Default::default()
        })
        .await?
        .into_iter()
        .filter(|i| i.steward_id.as_ref() == Some(me))
        .collect();
    Ok(StewardSnapshot {
        offers,
        incidents,
        steward: state.store.steward(me).await?,
    })
}

/// What a reconnecting client missed.
#[derive(Debug, Default)]
struct Replay {
    events: Vec<StreamEvent>,
    /// Too far behind to replay.
    skipped: bool,
}

/// Stored events for `audience` in `(after, upto]`, oldest first.
async fn replay(
    store: &dyn StreamLog,
    audience: &Audience,
    after: i64,
    upto: i64,
) -> Result<Replay, ApiError> {
    if upto - after > MAX_REPLAY {
        return Ok(Replay {
            events: Vec::new(),
            skipped: true,
        });
    }
    let mut events = Vec::new();
    let mut cursor = after;
    while cursor < upto {
        let page = store.stream_after(cursor, REPLAY_PAGE).await?;
        let full = page.len() as i64 >= REPLAY_PAGE;
        let Some(last) = page.last().map(|e| e.seq) else {
            break;
        };
        cursor = last;
        events.extend(
            page.into_iter()
                .filter(|e| e.seq <= upto && e.audience == *audience),
        );
        if !full {
            break;
        }
    }
    Ok(Replay {
        events,
        skipped: false,
    })
}

/// Which live events a connection sends: its audience's, after the
/// snapshot's id, or published late; never one the replay sent.
#[derive(Debug)]
pub struct Merge {
    audience: Audience,
    /// Events at or below it (published in order) are reflected in the
    /// snapshot or were replayed.
    floor: i64,
    /// Seqs the replay sent.
    replayed: HashSet<i64>,
}

impl Merge {
    pub fn new(audience: Audience, floor: i64, replayed: &[StreamEvent]) -> Self {
        Self {
            audience,
            floor,
            replayed: replayed.iter().map(|e| e.seq).collect(),
        }
    }

    /// Whether to send this live event.
    pub fn admit(&mut self, p: &Published) -> bool {
        if p.event.audience != self.audience {
            return false;
        }
        if p.event.seq <= self.floor && !p.late {
            return false;
        }
        // A late event may have been read by the replay too.
        self.replayed.insert(p.event.seq)
    }
}

/// The session a stream belongs to, watched so the stream ends with it.
struct Session {
    ends: broadcast::Receiver<Arc<Ended>>,
    user: AuthUser,
    store: Arc<dyn Store>,
    clock: Clock,
    /// What a scoped supervisor's stream keeps ([`super::scope`]).
    scope: StreamScope,
}

impl Session {
    /// Whether the session is still live with the same role and steward.
    /// A database that cannot answer keeps the stream open: the next
    /// check will tell.
    async fn live(&self) -> bool {
        match self
            .store
            .session_user(&self.user.session, self.clock.now())
            .await
        {
            Ok(Some(u)) => {
                u.role == self.user.role
                    && u.steward_id == self.user.steward_id
                    && u.scope == self.user.scope
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a stream's session; keeping it open");
                true
            }
        }
    }

    fn ended(&self, end: &Ended) -> bool {
        end.ends(&self.user.session, &self.user.username)
    }
}

struct Live {
    rx: broadcast::Receiver<Arc<Published>>,
    merge: Merge,
    closed: CancellationToken,
    session: Session,
    recheck: tokio::time::Interval,
}

/// Live events until the client lags, the hub closes, the session ends
/// or the client goes.
fn live(
    rx: broadcast::Receiver<Arc<Published>>,
    merge: Merge,
    closed: CancellationToken,
    session: Session,
) -> impl Stream<Item = Event> + Send {
    // The first check is at once: it catches an end between reading the
    // session and subscribing to the hub.
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = Live {
        rx,
        merge,
        closed,
        session,
        recheck,
    };
    stream::unfold(state, |mut s| async move {
        loop {
            let received = tokio::select! {
                _ = s.closed.cancelled() => return None,
                end = s.session.ends.recv() => {
                    let over = match end {
                        Ok(end) => s.session.ended(&end),
                        // Ends were missed: ask the database.
                        Err(RecvError::Lagged(_)) => !s.session.live().await,
                        Err(RecvError::Closed) => true,
                    };
                    if over {
                        tracing::info!(user = %s.session.user.username, "session ended; stream closed");
                        return None;
                    }
                    continue;
                }
                _ = s.recheck.tick() => {
                    if !s.session.live().await {
                        tracing::info!(user = %s.session.user.username, "session ended or changed; stream closed");
                        return None;
                    }
                    // Areas and elders may have moved: read them again.
                    if let Err(e) = s.session.scope.refresh().await {
                        tracing::warn!(error = %e, "cannot read a scoped stream's grids; closing it so it reconnects");
                        return None;
                    }
                    continue;
                }
                r = s.rx.recv() => r,
            };
            match received {
                Ok(p) => {
                    if s.merge.admit(&p) {
                        match s.session.scope.admits(&p.event).await {
                            Ok(true) => return Some((event_frame(&p.event), s)),
                            Ok(false) => {}
                            Err(e) => {
                                // Neither leak nor drop it: the client
                                // reconnects and the snapshot has it.
                                tracing::warn!(error = %e, "cannot place a stream event in a scope; closing so it reconnects");
                                return None;
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::info!(
                        missed = n,
                        "stream client too slow; closing so it reconnects with Last-Event-ID"
                    );
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// One SSE event: `id`, `event`, `data` (compact JSON: one line).
pub fn frame(id: i64, kind: StreamKind, data: &impl Serialize) -> Event {
    let data = serde_json::to_string(data).unwrap_or_else(|_| "null".into());
    Event::default()
        .id(id.to_string())
        .event(kind.as_str())
        .data(data)
}

fn event_frame(e: &StreamEvent) -> Event {
    frame(e.seq, e.event, &e.data)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http_body_util::BodyExt;
    use serde_json::json;

    use super::*;

    fn ev(seq: i64, audience: Audience) -> StreamEvent {
        StreamEvent {
            seq,
            at: chrono::Utc::now(),
            audience,
            event: StreamKind::Incident,
            data: json!({"seq": seq, "text": "two\nlines"}),
        }
    }

    fn steward(id: &str) -> Audience {
        Audience::Steward(StewardId::parse(id).unwrap())
    }

    fn published(seq: i64, audience: Audience, late: bool) -> Published {
        Published {
            event: ev(seq, audience),
            late,
        }
    }

    #[tokio::test]
    async fn frames_carry_id_event_and_one_line_of_json() {
        let events = vec![
            frame(7, StreamKind::Snapshot, &json!({"offers": []})),
            event_frame(&ev(8, Audience::Supervisors)),
        ];
        let response = Sse::new(stream::iter(events).map(Ok::<_, Infallible>)).into_response();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let body = Body::new(response.into_body())
            .collect()
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            text,
            "id: 7\nevent: snapshot\ndata: {\"offers\":[]}\n\n\
             id: 8\nevent: incident\ndata: {\"seq\":8,\"text\":\"two\\nlines\"}\n\n"
        );
    }

    #[test]
    fn live_events_after_the_snapshot_for_this_audience_only() {
        let mut m = Merge::new(Audience::Supervisors, 10, &[]);
        assert!(!m.admit(&published(9, Audience::Supervisors, false)));
        assert!(!m.admit(&published(10, Audience::Supervisors, false)));
        assert!(m.admit(&published(11, Audience::Supervisors, false)));
        assert!(!m.admit(&published(12, steward("s-1"), false)));
        // Never twice.
        assert!(!m.admit(&published(11, Audience::Supervisors, false)));
        // A late event below the floor still goes out.
        assert!(m.admit(&published(8, Audience::Supervisors, true)));
    }

    #[test]
    fn replayed_events_are_not_sent_again_live() {
        let me = steward("s-1");
        let replayed = vec![ev(4, me.clone()), ev(6, me.clone())];
        let mut m = Merge::new(me.clone(), 6, &replayed);
        // Published in order at or below the snapshot id: already sent.
        assert!(!m.admit(&published(6, me.clone(), false)));
        // A late one the replay read too: not again.
        assert!(!m.admit(&published(4, me.clone(), true)));
        // A late one the replay did not see (it committed after).
        assert!(m.admit(&published(5, me.clone(), true)));
        assert!(m.admit(&published(7, me.clone(), false)));
        assert!(!m.admit(&published(8, steward("s-2"), false)));
    }

    #[test]
    fn last_event_id_from_header_or_query() {
        let parts = |h: Option<&str>| {
            let mut b = axum::http::Request::builder().uri("/api/v1/stream");
            if let Some(h) = h {
                b = b.header("Last-Event-ID", h);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert_eq!(last_event_id(&parts(None), None).unwrap(), None);
        assert_eq!(last_event_id(&parts(Some("42")), None).unwrap(), Some(42));
        assert_eq!(last_event_id(&parts(None), Some("7")).unwrap(), Some(7));
        // The header wins.
        assert_eq!(
            last_event_id(&parts(Some("42")), Some("7")).unwrap(),
            Some(42)
        );
        assert_eq!(last_event_id(&parts(Some(" ")), None).unwrap(), None);
        assert!(last_event_id(&parts(Some("abc")), None).is_err());
        assert!(last_event_id(&parts(None), Some("-1")).is_err());
    }
}
