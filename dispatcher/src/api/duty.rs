//! Device duty (supervisors and admins): the devices' scheduled test
//! calls, due or missed, and the false-alarm rates per device and per
//! elder with the rule changes they suggest. The judgements are
//! [`crate::duty`]'s; this module reads the store and answers.
//!
//! - `GET /api/v1/device-tests?status=missed|due|ok[&limit&offset]`:
//!   each device with its last test, last result and due date, a page at
//!   a time (1000 by default and at most), with `counts` by status and
//!   the `total` to page through.
//! - `GET /api/v1/devices/{id}/tests`: one device's test calls.
//! - `GET /api/v1/false-alarms`: rates, flags and suggestions.
//! - `POST /api/v1/false-alarms/suggestions/apply`: a suggested change
//!   to an elder's limits, applied through the registry while the limit
//!   in force is still the one it was suggested against.

use axum::Json;
use axum::extract::State;
use chrono::Duration;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Supervisor;
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::routes::Routes;
use super::{ApiError, AppState, query};
use crate::domain::{DeviceId, Elder, ElderId};
use crate::duty::{
    self, DeviceDuty, DeviceTest, DutyStatus, FalseAlarmReport, LimitChange, MAX_LIMIT_MIN,
};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/device-tests", roster)
        .get("/api/v1/devices/{id}/tests", history)
        .get("/api/v1/false-alarms", false_alarms)
        .post("/api/v1/false-alarms/suggestions/apply", apply)
}

/// The duty routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// Which devices.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RosterQuery {
    /// `missed`, `due` or `ok`, or a comma list (default all).
    #[param(pattern = "^ *(missed|due|ok)? *(, *(missed|due|ok)? *)*$")]
    pub status: Option<String>,
    /// At most this many devices (default and most 1000): a city's
    /// roster is read a page at a time.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Skip this many first (default 0, at most 10,000,000).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 10000000)]
    pub offset: Option<String>,
}

/// How many devices in view stand where, whatever the page.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct DutyCounts {
    pub missed: usize,
    pub due: usize,
    pub ok: usize,
}

/// The duty of the devices on test duty, by device id.
#[derive(Debug, Serialize, ToSchema)]
pub struct DutyRoster {
    pub now: chrono::DateTime<chrono::Utc>,
    /// Tests are due this many days after the last passed one.
    pub test_every_days: u32,
    /// …and missed this many days after they fell due.
    pub grace_days: u32,
    /// Every device in view on duty, by status (not only this page's).
    pub counts: DutyCounts,
    /// The devices of the asked statuses, of which `devices` is the page
    /// from `offset`.
    pub total: usize,
    pub devices: Vec<DeviceDuty>,
}

/// Each device on test duty (a call button, pendant or pull cord, or any
/// device that ever sent a test call) and its scheduled test: `ok` (tested and not due),
/// `due` (its test is due: `test_every_days` after its last passed test,
/// or `grace_days` after it was registered if it never passed one), or
/// `missed` (`grace_days` past due). A test passes when the device
/// confirms the `test.ack` within `confirm_within_s`.
#[utoipa::path(get, path = "/api/v1/device-tests", tag = "duty", security(("bearer" = [])),
    params(RosterQuery),
    responses(
        (status = 200, body = DutyRoster),
        (status = 400, description = "`status` is not missed, due or ok; a bad `limit` or `offset`", body = ErrorBody),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn roster(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RosterQuery>,
) -> Result<Json<DutyRoster>, ApiError> {
    let wanted: Vec<DutyStatus> = query::list("status", q.status.as_deref())?;
    let page = query::PageQuery {
        limit: q.limit,
        offset: q.offset,
    };
    let settings = &state.settings.device_duty;
    let now = state.clock.now();
    // A scoped supervisor sees their grids' devices only.
    let in_view = user.view.elder_ids(state.store.as_ref()).await?;
    let mut counts = DutyCounts::default();
    let listed: Vec<DeviceDuty> = state
        .store
        .duty_roster()
        .await?
        .iter()
        .filter(|row| duty::on_duty(row))
        .filter(|row| in_view_of(&in_view, row.elder_id.as_ref()))
        .map(|row| duty::judge(row, settings, now))
        .inspect(|d| match d.status {
            DutyStatus::Missed => counts.missed += 1,
            DutyStatus::Due => counts.due += 1,
            DutyStatus::Ok => counts.ok += 1,
        })
        .filter(|d| wanted.is_empty() || wanted.contains(&d.status))
        .collect();
    let total = listed.len();
    let devices = page.slice(listed)?;
    Ok(Json(DutyRoster {
        now,
        test_every_days: settings.test_every_days,
        grace_days: settings.grace_days,
        counts,
        total,
        devices,
    }))
}

/// How many tests.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many, newest first (default 100; more is read as 1000).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
}

/// One device's test calls, newest first, each with its result
/// (`pending`, `passed`, `late` or `failed`).
#[utoipa::path(get, path = "/api/v1/devices/{id}/tests", tag = "duty", security(("bearer" = [])),
    params(("id" = crate::domain::DeviceIdSchema, Path, description = "Device id"), HistoryQuery),
    responses(
        (status = 200, body = Vec<DeviceTest>),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, device = %id))]
pub async fn history(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<DeviceTest>>, ApiError> {
    let limit = query::limit(q.limit.as_deref())?;
    super::scope::device(&state, &user, &id).await?;
    let now = state.clock.now();
    let tests = state.store.device_tests(&id, limit).await?;
    Ok(Json(tests.iter().map(|t| duty::view(t, now)).collect()))
}

/// False-alarm rates over the last `false_alarm_window_days`: of the
/// resolved, non-technical incidents created in the window, the share
/// resolved as `false_alarm`, per device and per elder. Those above
/// `false_alarm_threshold` with at least `false_alarm_min_incidents` are
/// flagged; a flagged elder gets a suggestion from the kind with the most
/// false alarms (a `change` to apply, or advice in words).
#[utoipa::path(get, path = "/api/v1/false-alarms", tag = "duty", security(("bearer" = [])),
    responses(
        (status = 200, body = FalseAlarmReport),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn false_alarms(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
) -> Result<Json<FalseAlarmReport>, ApiError> {
    let mut report = report(&state).await?;
    let in_view = user.view.elder_ids(state.store.as_ref()).await?;
    report
        .devices
        .retain(|d| in_view_of(&in_view, d.elder_id.as_ref()));
    report
        .elders
        .retain(|e| in_view_of(&in_view, Some(&e.elder_id)));
    Ok(Json(report))
}

/// Whether an elder's thing is in a scoped view (`None`: the whole site;
/// a thing of no elder is the whole site's only).
fn in_view_of(view: &Option<std::collections::HashSet<ElderId>>, elder: Option<&ElderId>) -> bool {
    match (view, elder) {
        (None, _) => true,
        (Some(ids), Some(e)) => ids.contains(e),
        (Some(_), None) => false,
    }
}

/// The report as of the state's clock.
pub async fn report(state: &AppState) -> Result<FalseAlarmReport, ApiError> {
    let settings = &state.settings.device_duty;
    let since = state.clock.now() - Duration::days(i64::from(settings.false_alarm_window_days));
    let counts = state.store.outcome_counts(since).await?;
    // Only the flagged elders' limits are needed, for their suggestions.
    let mut limits = std::collections::HashMap::new();
    for id in duty::flagged_elders(&counts, settings) {
        if let Some(elder) = state.store.elder(&id).await? {
            limits.insert(id, elder.limits);
        }
    }
    Ok(duty::false_alarms(
        &counts,
        settings,
        &state.settings.rules,
        since,
        |id| limits.get(id).cloned(),
    ))
}

/// A suggested change to apply to an elder's limits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplySuggestion {
    pub elder_id: ElderId,
    /// As the suggestion gave it (`limit`, `from`, `to`).
    pub change: LimitChange,
}

/// Applies a change to an elder's limits (`bed_return_min` or
/// `inactivity_min`), as a suggestion gave it: the next bed exit or
/// inactivity report is judged by the new value. Refused with 409
/// `stale_suggestion` when the limit in force is no longer `from`
/// (someone changed it since): nothing changes.
#[utoipa::path(post, path = "/api/v1/false-alarms/suggestions/apply", tag = "duty", security(("bearer" = [])),
    request_body = ApplySuggestion,
    responses(
        (status = 200, description = "Applied: the elder as changed", body = Elder),
        (status = 403, description = "Supervisors and admins only", body = ErrorBody),
        (status = 404, description = "No such elder", body = ErrorBody),
        (status = 409, description = "`stale_suggestion`: the limit in force is no longer `from`", body = ErrorBody),
        (status = 422, description = "A bad field: `change.to` out of 1..10080 or equal to `from`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, elder = %body.elder_id))]
pub async fn apply(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ApplySuggestion>,
) -> Result<Json<Elder>, ApiError> {
    let ApplySuggestion { elder_id, change } = body;
    for (field, value) in [("change.from", change.from), ("change.to", change.to)] {
        if !(1..=MAX_LIMIT_MIN).contains(&value) {
            return Err(ApiError::invalid_body(
                field,
                format!("{value} is not between 1 and {MAX_LIMIT_MIN} minutes"),
            ));
        }
    }
    if change.to == change.from {
        return Err(ApiError::invalid_body(
            "change.to",
            "is the same as change.from: nothing to change",
        ));
    }
    let mut elder = super::scope::elder(&state, &user, &elder_id).await?;
    let in_force = change.limit.effective(&elder.limits, &state.settings.rules);
    if in_force != change.from {
        return Err(ApiError::conflict(
            "stale_suggestion",
            format!(
                "elder {elder_id}'s {} is {in_force} min now, not {}: reload the suggestions",
                change.limit.as_str(),
                change.from
            ),
        ));
    }
    change.limit.set(&mut elder.limits, change.to);
    state.store.update_elder(&elder).await?;
    tracing::info!(
        limit = change.limit.as_str(),
        from = change.from,
        to = change.to,
        "false-alarm suggestion applied"
    );
    Ok(Json(elder))
}
