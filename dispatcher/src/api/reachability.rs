//! `GET /api/v1/reachability`: can each steward be reached when their app
//! is not on screen? Shown on the board's roster before it matters: a
//! steward on duty with no phone registered for alerts, whose last push
//! failed, or with no number for the ladder's SMS or call.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Supervisor;
use super::error::ErrorBody;
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::domain::{ContactChannel, PushSubscription, Steward, StewardId};
use crate::notify::reply::is_number;
use crate::settings::NotifySettings;

pub fn routes() -> Routes {
    Routes::new().get("/api/v1/reachability", list)
}

/// Why a steward may not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// No phone registered for push: only the open app hears offers.
    NoPush,
    /// Every registered phone's last push failed.
    PushFailing,
    /// The ladder sends SMS or calls, and the steward has no number.
    NoPhone,
}

/// How one steward can be reached.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reachability {
    #[schema(value_type = String)]
    pub steward_id: StewardId,
    pub name: String,
    pub on_duty: bool,
    /// Phones registered for push.
    pub push_subscriptions: usize,
    /// The last push to any of them, and how it went.
    pub last_push_at: Option<DateTime<Utc>>,
    pub last_push_ok: Option<bool>,
    pub last_push_error: Option<String>,
    pub has_phone: bool,
    /// Empty when nothing stands in the way.
    pub problems: Vec<Problem>,
}

/// Whether any offered priority's ladder texts or calls, through a
/// configured gateway.
fn ladder_needs_phone(notify: &NotifySettings, offered: &[crate::domain::Priority]) -> bool {
    offered.iter().any(|p| {
        notify.ladder.of(*p).iter().any(|s| {
            matches!(s.channel, ContactChannel::Sms | ContactChannel::Voice)
                && notify.can_use(s.channel)
        })
    })
}

/// One steward's reachability from their phones.
pub fn reachability(
    steward: &Steward,
    subs: &[&PushSubscription],
    needs_phone: bool,
) -> Reachability {
    let last = subs
        .iter()
        .filter(|s| s.last_push_at.is_some())
        .max_by_key(|s| s.last_push_at);
    let has_phone = is_number(&steward.phone);
    let mut problems = Vec::new();
    if subs.is_empty() {
        problems.push(Problem::NoPush);
    } else if subs.iter().all(|s| s.last_ok == Some(false)) {
        problems.push(Problem::PushFailing);
    }
    if needs_phone && !has_phone {
        problems.push(Problem::NoPhone);
    }
    Reachability {
        steward_id: steward.id.clone(),
        name: steward.name.clone(),
        on_duty: steward.on_duty,
        push_subscriptions: subs.len(),
        last_push_at: last.and_then(|s| s.last_push_at),
        last_push_ok: last.and_then(|s| s.last_ok),
        last_push_error: last.and_then(|s| s.last_error.clone()),
        has_phone,
        problems,
    }
}

/// Every steward, and what may stop an offer reaching them.
#[utoipa::path(get, path = "/api/v1/reachability", tag = "stewards", security(("bearer" = [])),
    responses((status = 200, body = Vec<Reachability>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
) -> Result<Json<Vec<Reachability>>, ApiError> {
    let mut stewards = state.store.stewards().await?;
    stewards.retain(|s| user.view.sees_steward(s));
    let subs = state.store.all_subscriptions().await?;
    let needs_phone =
        ladder_needs_phone(&state.settings.notify, &state.settings.dispatch.priorities);
    let mut by_steward: HashMap<&StewardId, Vec<&PushSubscription>> = HashMap::new();
    for sub in &subs {
        by_steward.entry(&sub.steward_id).or_default().push(sub);
    }
    Ok(Json(
        stewards
            .iter()
            .map(|s| {
                let mine = by_steward.get(&s.id).map_or(&[][..], Vec::as_slice);
                reachability(s, mine, needs_phone)
            })
            .collect(),
    ))
}
