//! The stewards' daily work over HTTP: today's round in walking order, a
//! visit begun at the door and ended with a note, the board's visits per
//! grid, and each elder's notebook. The planner (`care/`) makes the
//! visits; these handlers check who may ask and where they stand.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::routes::Routes;
use super::{ApiError, AppState, scope};
use crate::dispatch::{Changed, Lifecycle, after_commit};
use crate::domain::care::{self, Visit, VisitNote, VisitStatus};
use crate::domain::follow_up;
use crate::domain::{
    Actor, Device, Elder, ElderId, IncidentKind, IncidentState, LatLon, Outcome, Priority,
    StewardId,
};
use crate::store::care::{ElderChange, GridVisits};
use crate::store::{ConflictCode, IncidentFilter};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/rounds/today", round_today)
        .get("/api/v1/visits/summary", summary)
        .get("/api/v1/visits/{id}", read_visit)
        .post("/api/v1/visits/{id}/start", start)
        .post("/api/v1/visits/{id}/finish", finish)
        .get("/api/v1/elders/{id}/notebook", notebook)
}

/// The most a phone's reported accuracy widens the door's radius: a fix
/// worse than this does not prove the steward is at the door.
const MAX_ACCURACY_ALLOWANCE_M: f64 = 200.0;

/// What a steward needs at the door, without opening the elder's page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Essentials {
    #[schema(value_type = String)]
    pub id: ElderId,
    pub name: String,
    pub age: i32,
    pub address: String,
    pub lat: f64,
    pub lon: f64,
    pub lives_alone: bool,
    pub conditions: Vec<String>,
    pub medications: Vec<String>,
    /// The first contact (usually family), to call from the door.
    pub contact: Option<crate::domain::Contact>,
}

impl Essentials {
    fn of(e: &Elder, today: NaiveDate) -> Self {
        use chrono::Datelike;
        Self {
            id: e.id.clone(),
            name: e.name.clone(),
            age: today.year() - e.birth_year,
            address: e.address.clone(),
            lat: e.location.lat,
            lon: e.location.lon,
            lives_alone: e.lives_alone,
            conditions: e.conditions.clone(),
            medications: e.medications.clone(),
            contact: e.contacts.first().cloned(),
        }
    }
}

/// One stop of a round.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stop {
    pub visit: Visit,
    pub elder: Essentials,
    /// Its window has passed unvisited.
    pub overdue: bool,
    /// From the previous stop (or the steward's last location), metres.
    pub walk_m: Option<f64>,
    /// How the elder was at the last visit, and what was asked for.
    pub last_note: Option<VisitNote>,
}

/// A steward's visits due today and earlier, nearest-next from where they
/// last were.
#[derive(Debug, Serialize, ToSchema)]
pub struct Round {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    #[schema(value_type = String)]
    pub steward_id: StewardId,
    pub stops: Vec<Stop>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoundQuery {
    /// Whose round (supervisors); a steward always gets their own.
    #[param(value_type = Option<String>)]
    pub steward_id: Option<StewardId>,
}

/// Today's round: the caller's visits due today or overdue, in walking
/// order from their last reported location.
#[utoipa::path(get, path = "/api/v1/rounds/today", tag = "care", security(("bearer" = [])),
    params(RoundQuery),
    responses(
        (status = 200, body = Round),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn round_today(
    user: AuthUser,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RoundQuery>,
) -> Result<Json<Round>, ApiError> {
    let steward_id = match (user.own_steward(), q.steward_id) {
        (Some(me), None) => me.clone(),
        (Some(me), Some(asked)) if &asked == me => asked,
        (Some(_), Some(_)) => {
            return Err(ApiError::Forbidden(
                "a steward sees only their own round".into(),
            ));
        }
        (None, Some(asked)) => asked,
        (None, None) => {
            return Err(ApiError::invalid_query(
                "steward_id",
                "say whose round (a supervisor has none of their own)",
            ));
        }
    };
    // Another community's steward is not found.
    let steward = scope::steward(&state, &user, &steward_id).await?;
    let now = state.clock.now();
    let clock = state.rules.site_clock();
    let today = clock.date(now);
    let visits = state.store.round(&steward_id, &steward.grid, today).await?;
    let mut stops = Vec::with_capacity(visits.len());
    for visit in visits {
        let Some(elder) = state.store.elder(&visit.elder_id).await? else {
            continue;
        };
        stops.push((elder.location, (visit, elder)));
    }
    let start = match (steward.lat, steward.lon) {
        (Some(lat), Some(lon)) => LatLon::new(lat, lon).ok(),
        _ => None,
    };
    let ordered = care::walking_order(start, stops);
    let mut here = start;
    let mut out = Vec::with_capacity(ordered.len());
    for (visit, elder) in ordered {
        let walk_m = here.map(|h| h.haversine_m(elder.location));
        here = Some(elder.location);
        let last_note = state
            .store
            .visits_of_elder(&elder.id, 5)
            .await?
            .into_iter()
            .find_map(|v| v.note);
        out.push(Stop {
            overdue: visit.is_overdue(now),
            elder: Essentials::of(&elder, today),
            walk_m,
            last_note,
            visit,
        });
    }
    Ok(Json(Round {
        date: today,
        steward_id,
        stops: out,
    }))
}

/// A visit the caller may act on: a steward their own (or their grid's
/// elder's), a supervisor any.
async fn visit_for(
    state: &AppState,
    user: &AuthUser,
    id: &str,
) -> Result<(Visit, Elder), ApiError> {
    let not_found = || ApiError::NotFound(format!("visit {id} not found"));
    if id.is_empty() || id.len() > 64 {
        return Err(not_found());
    }
    let visit = state.store.visit(id).await?.ok_or_else(not_found)?;
    let elder = state
        .store
        .elder(&visit.elder_id)
        .await?
        .filter(|e| user.view.sees_elder(e))
        .ok_or_else(not_found)?;
    if let Some(me) = user.own_steward() {
        let mine = visit.steward_id.as_ref() == Some(me);
        if !mine && !is_their_elder(state, me, &elder).await? {
            return Err(ApiError::Forbidden(format!(
                "visit {id} is another grid's; ask a supervisor to reassign it"
            )));
        }
    }
    Ok((visit, elder))
}

/// Whether the elder is the steward's: paired with them, or of the grid
/// they walk (an elder of no grid is nobody's but their paired steward's).
async fn is_their_elder(
    state: &AppState,
    steward: &StewardId,
    elder: &Elder,
) -> Result<bool, ApiError> {
    if elder.care.steward_id.as_ref() == Some(steward) {
        return Ok(true);
    }
    if elder.grid.is_empty() {
        return Ok(false);
    }
    Ok(state
        .store
        .steward(steward)
        .await?
        .is_some_and(|s| s.grid == elder.grid))
}

/// One visit.
#[utoipa::path(get, path = "/api/v1/visits/{id}", tag = "care", security(("bearer" = [])),
    params(("id" = String, Path, description = "Visit id")),
    responses((status = 200, body = Visit), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn read_visit(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Visit>, ApiError> {
    Ok(Json(visit_for(&state, &user, &id).await?.0))
}

/// Where the steward is, checking in at the door.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The phone's location; a supervisor recording a visit leaves it out.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: Option<f64>,
    /// The fix's accuracy, metres.
    #[schema(minimum = 0)]
    pub accuracy_m: Option<f64>,
}

/// Checks in at the door: the visit begins (a steward must be within the
/// site's `care.door_radius_m` of the home, plus the fix's accuracy); an
/// incident its lateness raised clears.
#[utoipa::path(post, path = "/api/v1/visits/{id}/start", tag = "care", security(("bearer" = [])),
    params(("id" = String, Path, description = "Visit id")),
    request_body = StartRequest,
    responses(
        (status = 200, description = "In progress", body = Visit),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`visit_not_planned`", body = ErrorBody),
        (status = 422, description = "No location, or too far from the home", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, visit = %id))]
pub async fn start(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<StartRequest>,
) -> Result<Json<Visit>, ApiError> {
    let (visit, elder) = visit_for(&state, &user, &id).await?;
    if visit.status != VisitStatus::Planned {
        return Err(not_planned(&visit));
    }
    let how = match (body.lat, body.lon) {
        (Some(lat), Some(lon)) => {
            let here = LatLon::new(lat, lon)?;
            let accuracy = body.accuracy_m.unwrap_or(0.0);
            if !(accuracy.is_finite() && accuracy >= 0.0) {
                return Err(ApiError::invalid_body(
                    "accuracy_m",
                    "must be 0 or more metres",
                ));
            }
            let allowed =
                state.settings.care.door_radius_m + accuracy.min(MAX_ACCURACY_ALLOWANCE_M);
            let away = here.haversine_m(elder.location);
            if away > allowed {
                return Err(ApiError::invalid(format!(
                    "you are {away:.0} m from {}'s home; check in at the door (within {allowed:.0} m), \
                     or press the bed's button twice",
                    elder.name
                )));
            }
            care::StartedHow::Location
        }
        (None, None) if user.sees_everything() => care::StartedHow::Manual,
        (None, None) => {
            return Err(ApiError::invalid(
                "send the phone's location (lat, lon) to check in at the door",
            ));
        }
        _ => return Err(ApiError::invalid("send both lat and lon, or neither")),
    };
    let now = state.clock.now();
    let effects = crate::rules::RuleBook::visit_begun(&elder, how);
    let done = state
        .store
        .apply(&effects, &actor_of(&user), now, &state.rules)
        .await?;
    after_commit(&state.hub, &state.engine, Changed::committed(done.changed));
    let visit = state
        .store
        .visit(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("visit {id} not found")))?;
    if visit.status != VisitStatus::InProgress {
        return Err(not_planned(&visit));
    }
    tracing::info!(elder = %elder.id, how = %how, "visit begun at the door");
    Ok(Json(visit))
}

fn actor_of(user: &AuthUser) -> Actor {
    match user.own_steward() {
        Some(me) => Actor::Steward(me.clone()),
        None => Actor::User(user.username.clone()),
    }
}

fn not_planned(visit: &Visit) -> ApiError {
    ApiError::conflict(
        ConflictCode::VisitNotPlanned.as_str(),
        format!("visit {} is already {}", visit.id, visit.status),
    )
}

/// The longest free text a note keeps.
const MAX_NOTE_TEXT: usize = 4000;

/// Ends the visit with its note. Medicines and conditions it names are
/// added to or taken off the elder's record, each change kept with who
/// and when; `follow_up: true` makes a follow-up call for the steward
/// who visited (`/api/v1/follow-ups`, with `visit_id` set), due within
/// the site's call time.
#[utoipa::path(post, path = "/api/v1/visits/{id}/finish", tag = "care", security(("bearer" = [])),
    params(("id" = String, Path, description = "Visit id")),
    request_body = VisitNote,
    responses(
        (status = 200, description = "Done", body = Visit),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`visit_not_in_progress`", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, visit = %id))]
pub async fn finish(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(note): ApiJson<VisitNote>,
) -> Result<Json<Visit>, ApiError> {
    if note.text.len() > MAX_NOTE_TEXT || note.text.contains('\0') {
        return Err(ApiError::invalid_body(
            "text",
            format!("must be text of at most {MAX_NOTE_TEXT} bytes"),
        ));
    }
    for (field, change) in [
        ("medication_changes", &note.medication_changes),
        ("condition_changes", &note.condition_changes),
    ] {
        for item in change.add.iter().chain(&change.remove) {
            if item.trim().is_empty() || item.len() > 200 || item.contains('\0') {
                return Err(ApiError::invalid_body(
                    field,
                    "each item is a line of text (1 to 200 bytes)",
                ));
            }
        }
    }
    let (visit, _) = visit_for(&state, &user, &id).await?;
    let now = state.clock.now();
    let follow_up = note.follow_up.then(|| {
        follow_up::after_visit(
            &visit,
            user.own_steward(),
            state.rules.follow_ups().within(),
            now,
        )
    });
    let finished = state
        .store
        .finish_visit(&visit.id, &note, follow_up.as_ref(), &user.username, now)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict { code, message } => {
                ApiError::conflict(code.as_str(), message)
            }
            other => other.into(),
        })?;
    tracing::info!(
        elder = %finished.visit.elder_id,
        changes = finished.changes.len(),
        follow_up = finished.follow_up.as_ref().map(|f| f.id.to_string()),
        "visit done"
    );
    Ok(Json(finished.visit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// The site's date (default today; blank is the default too).
    #[param(value_type = Option<String>, format = Date)]
    pub date: Option<String>,
}

/// Visits due, in progress, done and overdue per grid.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitSummary {
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub grids: Vec<GridVisits>,
}

/// The board's visits per grid on a day (overdue: every visit still
/// planned past its window, whatever day it was due).
#[utoipa::path(get, path = "/api/v1/visits/summary", tag = "care", security(("bearer" = [])),
    params(SummaryQuery),
    responses((status = 200, body = VisitSummary), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn summary(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SummaryQuery>,
) -> Result<Json<VisitSummary>, ApiError> {
    let now = state.clock.now();
    let date = match q.date.as_deref().map(|d| d.trim_matches(' ')) {
        None | Some("") => state.rules.site_clock().date(now),
        Some(d) => d.parse::<NaiveDate>().map_err(|_| {
            ApiError::invalid_query("date", format!("{d:?} is not a date like 2025-01-31"))
        })?,
    };
    let mut grids = state.store.visits_by_grid(date, now).await?;
    grids.retain(|g| user.view.sees_grid(&g.grid));
    Ok(Json(VisitSummary { date, grids }))
}

/// One line of an elder's notebook.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum NotebookEntry {
    /// A visit (planned, begun or done, with its note).
    Visit { at: DateTime<Utc>, visit: Visit },
    /// Conditions or medicines changed from a visit note.
    Change {
        at: DateTime<Utc>,
        change: ElderChange,
    },
    /// An incident of the elder's care.
    Incident {
        at: DateTime<Utc>,
        incident_id: String,
        kind: IncidentKind,
        priority: Priority,
        status: IncidentState,
        outcome: Option<Outcome>,
        summary: String,
        resolved_at: Option<DateTime<Utc>>,
    },
    /// A call or visit after an incident (回访), open or done.
    FollowUp {
        at: DateTime<Utc>,
        follow_up: crate::domain::follow_up::FollowUp,
    },
    /// A device's health: a technical incident (offline, battery, tamper).
    Device {
        at: DateTime<Utc>,
        incident_id: String,
        #[schema(value_type = Option<String>)]
        device_id: Option<protocol::DeviceId>,
        kind: IncidentKind,
        status: IncidentState,
        summary: String,
    },
}

impl NotebookEntry {
    fn at(&self) -> DateTime<Utc> {
        match self {
            Self::Visit { at, .. }
            | Self::Change { at, .. }
            | Self::Incident { at, .. }
            | Self::FollowUp { at, .. }
            | Self::Device { at, .. } => *at,
        }
    }
}

/// An elder's page: who they are, their devices now, and one timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notebook {
    pub elder: Elder,
    pub devices: Vec<Device>,
    /// Newest first.
    pub entries: Vec<NotebookEntry>,
}

/// How far back a notebook reads each kind of line.
const NOTEBOOK_DEPTH: i64 = 200;

/// An elder's notebook: visits and their notes, record changes,
/// incidents, follow-ups and device health in one list, newest first. Supervisors;
/// a steward for the elders of their grid or their round.
#[utoipa::path(get, path = "/api/v1/elders/{id}/notebook", tag = "care", security(("bearer" = [])),
    params(("id" = ElderId, Path, description = "Elder id")),
    responses((status = 200, body = Notebook), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn notebook(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ElderId>,
) -> Result<Json<Notebook>, ApiError> {
    let elder = scope::elder(&state, &user, &id).await?;
    let visits = state.store.visits_of_elder(&id, NOTEBOOK_DEPTH).await?;
    if let Some(me) = user.own_steward() {
        let my_round = visits.iter().any(|v| v.steward_id.as_ref() == Some(me));
        if !my_round && !is_their_elder(&state, me, &elder).await? {
            return Err(ApiError::Forbidden(format!(
                "elder {id} is not in your grid or on your round"
            )));
        }
    }
    let mut entries: Vec<NotebookEntry> = Vec::new();
    for visit in visits {
        let at = visit
            .ended_at
            .or(visit.started_at)
            .unwrap_or(visit.window_start);
        entries.push(NotebookEntry::Visit { at, visit });
    }
    for change in state.store.elder_changes(&id, NOTEBOOK_DEPTH).await? {
        entries.push(NotebookEntry::Change {
            at: change.at,
            change,
        });
    }
    let incidents = state
        .store
        .incidents(&IncidentFilter {
            elder_id: Some(id.clone()),
            limit: NOTEBOOK_DEPTH,
            ..IncidentFilter::default()
        })
        .await?;
    for i in incidents {
        entries.push(if i.kind.is_technical() {
            NotebookEntry::Device {
                at: i.created_at,
                incident_id: i.id.to_string(),
                device_id: i.device_id,
                kind: i.kind,
                status: i.status,
                summary: i.summary,
            }
        } else {
            NotebookEntry::Incident {
                at: i.created_at,
                incident_id: i.id.to_string(),
                kind: i.kind,
                priority: i.priority,
                status: i.status,
                outcome: i.outcome,
                summary: i.summary,
                resolved_at: i.resolved_at,
            }
        });
    }
    for follow_up in state.store.follow_ups_of_elder(&id).await? {
        let follow_up = follow_up.at(state.clock.now());
        entries.push(NotebookEntry::FollowUp {
            at: follow_up.done_at.unwrap_or(follow_up.created_at),
            follow_up,
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.at()));
    let devices = state.store.devices_of_elder(&id).await?;
    Ok(Json(Notebook {
        elder,
        devices,
        entries,
    }))
}
