//! `/api/v1/stewards`: the people who go. Supervisors and admins manage
//! them; a steward reads their own record and sets their own location
//! and duty from the phone. Dispatch owns `status`; duty and location
//! have their own routes, so PATCH refuses them rather than ignore them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::patch::{self, ReadOnly};
use super::routes::Routes;
use super::{ApiError, AppState, scope, validate};
use crate::dispatch::{Changed, Lifecycle, after_commit};
use crate::domain::{LatLon, Steward, StewardId, StewardStatus, WithdrawReason};
use crate::store::StoreError;

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/stewards", list)
        .post("/api/v1/stewards", create)
        .get("/api/v1/stewards/{id}", read)
        .patch("/api/v1/stewards/{id}", update)
        .put("/api/v1/stewards/{id}/location", set_location)
        .put("/api/v1/stewards/{id}/duty", set_duty)
}

/// The stewards routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// A steward as a client registers one. They start off duty with no
/// location: the phone reports both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSteward {
    /// Chosen by the server when absent.
    #[serde(default)]
    pub id: Option<StewardId>,
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub name: String,
    /// How dispatch and supervisors reach them: must not be empty.
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub phone: String,
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub grid: String,
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::validate::Entry>)]
    pub skills: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::validate::Entry>)]
    pub languages: Vec<String>,
}

impl NewSteward {
    fn validate(self, id: StewardId) -> Result<Steward, ApiError> {
        Ok(Steward {
            id,
            name: validate::required("name", self.name)?,
            phone: validate::required("phone", self.phone)?,
            grid: validate::optional("grid", self.grid)?,
            skills: validate::entries("skills", self.skills)?,
            languages: validate::entries("languages", self.languages)?,
            on_duty: false,
            status: StewardStatus::OffDuty,
            lat: None,
            lon: None,
            location_at: None,
            accuracy_m: None,
        })
    }
}

const READ_ONLY: &[ReadOnly] = &[
    ReadOnly {
        field: "on_duty",
        hint: "use PUT /api/v1/stewards/{id}/duty",
    },
    ReadOnly {
        field: "status",
        hint: "dispatch sets it; duty is PUT /api/v1/stewards/{id}/duty",
    },
    ReadOnly {
        field: "lat",
        hint: "use PUT /api/v1/stewards/{id}/location",
    },
    ReadOnly {
        field: "lon",
        hint: "use PUT /api/v1/stewards/{id}/location",
    },
    ReadOnly {
        field: "location_at",
        hint: "use PUT /api/v1/stewards/{id}/location",
    },
    ReadOnly {
        field: "accuracy_m",
        hint: "use PUT /api/v1/stewards/{id}/location",
    },
];

/// A position from the steward's phone.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationUpdate {
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    /// The phone's estimate of its error, in metres.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub accuracy_m: Option<f64>,
}

/// Going on or off duty.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DutyUpdate {
    pub on_duty: bool,
}

fn new_id() -> Result<StewardId, ApiError> {
    StewardId::parse(format!("s-{}", uuid::Uuid::new_v4().simple()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Stewards: all for supervisors, by id, a page at a time; a steward
/// gets their own record only.
#[utoipa::path(get, path = "/api/v1/stewards", tag = "stewards", security(("bearer" = [])),
    params(super::query::PageQuery),
    responses(
        (status = 200, body = Vec<Steward>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    super::extract::ApiQuery(page): super::extract::ApiQuery<super::query::PageQuery>,
) -> Result<Json<Vec<Steward>>, ApiError> {
    let visible = if user.sees_everything() {
        let mut all = state.store.stewards().await?;
        all.retain(|s| user.view.sees_steward(s));
        all
    } else if let Some(own) = user.own_steward() {
        state.store.steward(own).await?.into_iter().collect()
    } else {
        Vec::new()
    };
    // Paged (and a bad page named) whoever asks.
    Ok(Json(page.slice(visible)?))
}

/// Registers a steward, off duty.
#[utoipa::path(post, path = "/api/v1/stewards", tag = "stewards", security(("bearer" = [])),
    request_body = NewSteward,
    responses(
        (status = 201, body = Steward),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn create(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewSteward>,
) -> Result<(StatusCode, Json<Steward>), ApiError> {
    let id = match body.id.clone() {
        Some(id) => id,
        None => new_id()?,
    };
    let steward = body.validate(id)?;
    scope::writable_grid(&user, "grid", &steward.grid)?;
    state
        .store
        .insert_steward(&steward)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => ApiError::conflict(
                "already_exists",
                format!("steward {} already exists", steward.id),
            ),
            e => e.into(),
        })?;
    tracing::info!(steward = %steward.id, "steward registered");
    Ok((StatusCode::CREATED, Json(steward)))
}

/// One steward: any for supervisors, their own for a steward.
#[utoipa::path(get, path = "/api/v1/stewards/{id}", tag = "stewards", security(("bearer" = [])),
    params(("id" = StewardId, Path, description = "Steward id")),
    responses((status = 200, body = Steward), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.username, steward = %id))]
pub async fn read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<StewardId>,
) -> Result<Json<Steward>, ApiError> {
    user.require_self_or_supervisor(&id)?;
    Ok(Json(scope::steward(&state, &user, &id).await?))
}

/// Changes name, phone, grid, skills or languages (JSON merge patch).
#[utoipa::path(patch, path = "/api/v1/stewards/{id}", tag = "stewards", security(("bearer" = [])),
    params(("id" = StewardId, Path, description = "Steward id")),
    request_body(content = NewSteward, content_type = "application/merge-patch+json",
        description = "The fields to change: name, phone, grid, skills, languages"),
    responses(
        (status = 200, body = Steward),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad field, or one set elsewhere (duty, location, status)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, steward = %id))]
pub async fn update(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<StewardId>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<Steward>, ApiError> {
    let current = scope::steward(&state, &user, &id).await?;
    let value = serde_json::to_value(&current).map_err(|e| ApiError::Internal(e.to_string()))?;
    let input: NewSteward = patch::apply(value, &body, READ_ONLY)?;
    let changed = input.validate(id)?;
    scope::writable_grid(&user, "grid", &changed.grid)?;
    let steward = Steward {
        name: changed.name,
        phone: changed.phone,
        grid: changed.grid,
        skills: changed.skills,
        languages: changed.languages,
        ..current
    };
    state.store.update_steward(&steward).await?;
    // Status may have moved since it was read: take the store's.
    state.engine.refresh_steward(&steward.id).await;
    tracing::info!("steward changed");
    Ok(Json(steward))
}

/// Where the steward is now, from their phone.
#[utoipa::path(put, path = "/api/v1/stewards/{id}/location", tag = "stewards", security(("bearer" = [])),
    params(("id" = StewardId, Path, description = "Steward id")),
    request_body = LocationUpdate,
    responses(
        (status = 200, body = Steward),
        (status = 403, description = "Another steward's", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "Off the globe", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, steward = %id))]
pub async fn set_location(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<StewardId>,
    ApiJson(body): ApiJson<LocationUpdate>,
) -> Result<Json<Steward>, ApiError> {
    user.require_self_or_supervisor(&id)?;
    scope::check_steward(&state, &user, &id).await?;
    let at = LatLon::new(body.lat, body.lon)?;
    if let Some(a) = body.accuracy_m
        && !(a.is_finite() && a >= 0.0)
    {
        return Err(ApiError::invalid_body(
            "accuracy_m",
            format!("{a} must be 0 or more"),
        ));
    }
    let steward = state
        .store
        .set_steward_location(&id, at, body.accuracy_m, state.clock.now())
        .await?;
    after_commit(
        &state.hub,
        &state.engine,
        Changed {
            stewards: vec![steward.clone()],
            ..Changed::default()
        },
    );
    Ok(Json(steward))
}

/// On or off duty. Going off duty while offered or busy keeps the status
/// until that incident is done.
#[utoipa::path(put, path = "/api/v1/stewards/{id}/duty", tag = "stewards", security(("bearer" = [])),
    params(("id" = StewardId, Path, description = "Steward id")),
    request_body = DutyUpdate,
    responses(
        (status = 200, body = Steward),
        (status = 403, description = "Another steward's", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, steward = %id, on_duty = body.on_duty))]
pub async fn set_duty(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<StewardId>,
    ApiJson(body): ApiJson<DutyUpdate>,
) -> Result<Json<Steward>, ApiError> {
    user.require_self_or_supervisor(&id)?;
    scope::check_steward(&state, &user, &id).await?;
    let mut steward = state
        .store
        .set_steward_duty(&id, body.on_duty, state.clock.now())
        .await?;
    let mut changed = Changed {
        stewards: vec![steward.clone()],
        ..Changed::default()
    };
    if !body.on_duty {
        // A live offer must not wait on a steward who is not coming.
        let now = state.clock.now();
        let done = state
            .store
            .withdraw_offers_of(&id, WithdrawReason::OffDuty, now)
            .await?;
        if !done.is_empty() {
            steward = state.store.steward(&id).await?.unwrap_or(steward);
        }
        changed = Changed::committed(done.changed);
        changed.stewards.retain(|s| s.id != steward.id);
        changed.stewards.push(steward.clone());
    }
    after_commit(&state.hub, &state.engine, changed);
    tracing::info!(status = %steward.status, "duty changed");
    Ok(Json(steward))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_stewards_start_off_duty() {
        let s: NewSteward = super::super::extract::from_value(
            json!({"name": "Dawa", "phone": "139", "skills": ["first_aid"]}),
        )
        .unwrap();
        let s = s.validate(StewardId::parse("s-1").unwrap()).unwrap();
        assert!(!s.on_duty);
        assert_eq!(s.status, StewardStatus::OffDuty);
        assert!(s.location().is_none());

        let bad = super::super::extract::from_value::<NewSteward>(
            json!({"name": "Dawa", "phone": "139", "on_duty": true}),
        );
        assert!(bad.is_err());
        let s: NewSteward =
            super::super::extract::from_value(json!({"name": "Dawa", "phone": " "})).unwrap();
        assert!(s.validate(StewardId::parse("s-1").unwrap()).is_err());
    }

    /// A steward as the store answers it, the base a patch applies to.
    fn stored_dawa() -> serde_json::Value {
        json!({
            "id": "s-1", "name": "Dawa", "phone": "139", "grid": "", "skills": [], "languages": [],
            "on_duty": false, "status": "off_duty", "lat": null, "lon": null,
            "location_at": null, "accuracy_m": null
        })
    }

    #[test]
    fn patch_refuses_duty_and_location() {
        let current = stored_dawa();
        let e = patch::apply::<NewSteward>(current.clone(), &json!({"on_duty": true}), READ_ONLY)
            .unwrap_err();
        assert!(e.to_string().contains("/duty"), "{e}");
        let e = patch::apply::<NewSteward>(current.clone(), &json!({"lat": 29.0}), READ_ONLY)
            .unwrap_err();
        assert!(e.to_string().contains("/location"), "{e}");
        let ok: NewSteward = patch::apply(
            current,
            &json!({"phone": "138", "status": "off_duty"}),
            READ_ONLY,
        )
        .unwrap();
        assert_eq!(ok.phone, "138");
    }

    #[test]
    fn patch_refuses_an_unknown_field_even_when_it_removes_it() {
        // Found by schemathesis: `{"<unknown>": null}` merged away to
        // nothing and was answered 200 as if it had done something.
        let current = stored_dawa();
        let e = patch::apply::<NewSteward>(current.clone(), &json!({"bogus": null}), READ_ONLY)
            .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        // A known optional field may still be removed with null.
        let ok: NewSteward = patch::apply(current, &json!({"grid": null}), READ_ONLY).unwrap();
        assert_eq!(ok.name, "Dawa");
    }
}
