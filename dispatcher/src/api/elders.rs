//! `/api/v1/elders`: the people the service exists for.
//!
//! Their health data is sensitive: supervisors and admins see every
//! elder; a steward sees only an elder of an open incident assigned to
//! them or offered to them by a live offer, or of an open follow-up
//! assigned to them (`Store::steward_sees_elder`): declining, an expired
//! offer, a closed incident or a follow-up done or handed back ends it. Any other elder, known
//! or not, is a 403 for a steward, so the answer does not reveal which
//! elders exist. Only supervisors and admins change the registry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Datelike;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::routes::Routes;
use super::{ApiError, AppState, patch, scope, validate};
use crate::domain::{CarePlan, Contact, Elder, ElderId, IncidentState, LatLon, Limits, Risks};
use crate::store::{IncidentFilter, StoreError};

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/elders", list)
        .post("/api/v1/elders", create)
        .get("/api/v1/elders/{id}", read)
        .patch("/api/v1/elders/{id}", update)
        .delete("/api/v1/elders/{id}", remove)
}

/// The elders routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// An elder as a client sends one: every field of [`Elder`]; `id` may be
/// left out for the server to choose one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewElder {
    #[serde(default)]
    pub id: Option<ElderId>,
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub name: String,
    /// 1900 to this year.
    #[schema(minimum = 1900)]
    pub birth_year: i32,
    /// Where a steward goes: must not be empty.
    #[schema(
        pattern = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$"
    )]
    pub address: String,
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub grid: String,
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::validate::Entry>)]
    pub conditions: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::validate::Entry>)]
    pub medications: Vec<String>,
    #[serde(default)]
    pub risks: Risks,
    #[serde(default)]
    pub lives_alone: bool,
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::validate::Entry>)]
    pub languages: Vec<String>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub notes: String,
    #[serde(default)]
    pub limits: Limits,
    /// Daily check-in and visits.
    #[serde(default)]
    pub care: CarePlan,
}

impl NewElder {
    /// The checks of every elder, on create and on patch alike.
    pub fn validate(self, id: ElderId, this_year: i32) -> Result<Elder, ApiError> {
        if !(1900..=this_year).contains(&self.birth_year) {
            return Err(ApiError::invalid_body(
                "birth_year",
                format!("{} is not between 1900 and {this_year}", self.birth_year),
            ));
        }
        let location = LatLon::new(self.lat, self.lon)?;
        let contacts = self
            .contacts
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                Ok(Contact {
                    name: validate::required(&format!("contacts[{i}].name"), c.name)?,
                    relation: validate::optional(&format!("contacts[{i}].relation"), c.relation)?,
                    phone: validate::required(&format!("contacts[{i}].phone"), c.phone)?,
                })
            })
            .collect::<Result<_, ApiError>>()?;
        let l = &self.limits;
        for (field, v) in [
            ("limits.heart_rate_min", l.heart_rate_min),
            ("limits.heart_rate_max", l.heart_rate_max),
            ("limits.resp_rate_min", l.resp_rate_min),
            ("limits.resp_rate_max", l.resp_rate_max),
            ("limits.spo2_min", l.spo2_min),
        ] {
            validate::positive(field, v)?;
        }
        validate::ordered(
            "limits.heart_rate_min",
            l.heart_rate_min,
            "limits.heart_rate_max",
            l.heart_rate_max,
        )?;
        validate::ordered(
            "limits.resp_rate_min",
            l.resp_rate_min,
            "limits.resp_rate_max",
            l.resp_rate_max,
        )?;
        if l.spo2_min.is_some_and(|v| v > 100.0) {
            return Err(ApiError::invalid_body(
                "limits.spo2_min",
                "is a percentage, at most 100",
            ));
        }
        for (field, v) in [
            ("limits.bed_return_min", l.bed_return_min),
            ("limits.inactivity_min", l.inactivity_min),
        ] {
            if v == Some(0) {
                return Err(ApiError::invalid_body(field, "must be 1 minute or more"));
            }
            if v.is_some_and(|m| m > MAX_WAIT_MIN) {
                return Err(ApiError::invalid_body(
                    field,
                    format!("must be at most {MAX_WAIT_MIN} minutes (a week)"),
                ));
            }
        }
        if let Some(c) = &self.care.checkin
            && c.by <= c.from
        {
            return Err(ApiError::invalid_body(
                "care.checkin",
                format!("by ({}) must be after from ({})", c.by, c.from),
            ));
        }
        if self.care.visit_every_days.is_some_and(|d| d > 365) {
            return Err(ApiError::invalid_body(
                "care.visit_every_days",
                "must be at most 365 days (0: no planned visits)",
            ));
        }
        Ok(Elder {
            id,
            name: validate::required("name", self.name)?,
            birth_year: self.birth_year,
            address: validate::required("address", self.address)?,
            location,
            grid: validate::optional("grid", self.grid)?,
            conditions: validate::entries("conditions", self.conditions)?,
            medications: validate::entries("medications", self.medications)?,
            risks: self.risks,
            lives_alone: self.lives_alone,
            languages: validate::entries("languages", self.languages)?,
            contacts,
            notes: validate::optional("notes", self.notes)?,
            limits: self.limits,
            care: self.care,
        })
    }
}

/// 422 unless the steward paired with the elder is one the caller may
/// name (in their view). A paired steward removed later is passed over
/// by the planner, not an error.
async fn check_paired_steward(
    state: &AppState,
    user: &AuthUser,
    elder: &Elder,
) -> Result<(), ApiError> {
    let Some(id) = &elder.care.steward_id else {
        return Ok(());
    };
    match scope::steward(state, user, id).await {
        Ok(_) => Ok(()),
        Err(ApiError::NotFound(_)) => Err(ApiError::invalid_body(
            "care.steward_id",
            format!("there is no steward {id}"),
        )),
        Err(e) => Err(e),
    }
}

/// The longest wait a rule takes (`bed_return_min`, `inactivity_min`):
/// a week; anything longer is a typing error, not a rule.
pub const MAX_WAIT_MIN: u32 = 7 * 24 * 60;

fn new_id() -> Result<ElderId, ApiError> {
    ElderId::parse(format!("e-{}", uuid::Uuid::new_v4().simple()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// 403 unless the caller may read this elder's record.
async fn may_read(state: &AppState, user: &AuthUser, id: &ElderId) -> Result<(), ApiError> {
    if user.sees_everything() {
        // Another community's elder is not found.
        return scope::elder(state, user, id).await.map(|_| ());
    }
    if let Some(steward) = user.own_steward()
        && state
            .store
            .steward_sees_elder(steward, id, state.clock.now())
            .await?
    {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "a steward sees an elder only while an offer of their incident is live or the open incident is theirs".into(),
    ))
}

/// Elders: all of them for supervisors, a steward's own for a steward; by
/// id, a page at a time.
#[utoipa::path(get, path = "/api/v1/elders", tag = "elders", security(("bearer" = [])),
    params(super::query::PageQuery),
    responses(
        (status = 200, body = Vec<Elder>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 401, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    user: AuthUser,
    State(state): State<AppState>,
    super::extract::ApiQuery(page): super::extract::ApiQuery<super::query::PageQuery>,
) -> Result<Json<Vec<Elder>>, ApiError> {
    let mut elders = state.store.elders().await?;
    if user.sees_everything() {
        elders.retain(|e| user.view.sees_elder(e));
        return Ok(Json(page.slice(elders)?));
    }
    let Some(steward) = user.own_steward() else {
        return Ok(Json(Vec::new()));
    };
    // One query per elder: correct (the same test as reading one) but
    // linear; a store query for "elders a steward sees" would replace it.
    let mut seen = Vec::new();
    for elder in elders {
        if state
            .store
            .steward_sees_elder(steward, &elder.id, state.clock.now())
            .await?
        {
            seen.push(elder);
        }
    }
    Ok(Json(page.slice(seen)?))
}

/// Registers an elder.
#[utoipa::path(post, path = "/api/v1/elders", tag = "elders", security(("bearer" = [])),
    request_body = NewElder,
    responses(
        (status = 201, body = Elder),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "A field is missing or out of range", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn create(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewElder>,
) -> Result<(StatusCode, Json<Elder>), ApiError> {
    let id = match body.id.clone() {
        Some(id) => id,
        None => new_id()?,
    };
    let elder = body.validate(id, state.clock.now().year())?;
    scope::writable_grid(&user, "grid", &elder.grid)?;
    check_paired_steward(&state, &user, &elder).await?;
    state
        .store
        .insert_elder(&elder)
        .await
        .map_err(|e| taken(e, &elder.id))?;
    tracing::info!(elder = %elder.id, "elder registered");
    Ok((StatusCode::CREATED, Json(elder)))
}

fn taken(e: StoreError, id: &ElderId) -> ApiError {
    match e {
        StoreError::Conflict { .. } => {
            ApiError::conflict("already_exists", format!("elder {id} already exists"))
        }
        e => e.into(),
    }
}

async fn load(state: &AppState, id: &ElderId) -> Result<Elder, ApiError> {
    state
        .store
        .elder(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("elder {id} not found")))
}

/// One elder.
#[utoipa::path(get, path = "/api/v1/elders/{id}", tag = "elders", security(("bearer" = [])),
    params(("id" = ElderId, Path, description = "Elder id")),
    responses(
        (status = 200, body = Elder),
        (status = 403, description = "A steward without an incident of this elder", body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, elder = %id))]
pub async fn read(
    user: AuthUser,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ElderId>,
) -> Result<Json<Elder>, ApiError> {
    may_read(&state, &user, &id).await?;
    Ok(Json(load(&state, &id).await?))
}

/// Changes an elder: a JSON merge patch (RFC 7396) of the fields to
/// change; `null` clears. The result is checked like a new elder.
#[utoipa::path(patch, path = "/api/v1/elders/{id}", tag = "elders", security(("bearer" = [])),
    params(("id" = ElderId, Path, description = "Elder id")),
    request_body(content = NewElder, content_type = "application/merge-patch+json",
        description = "The fields to change, as in Elder"),
    responses(
        (status = 200, body = Elder),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, elder = %id))]
pub async fn update(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ElderId>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<Elder>, ApiError> {
    let before = scope::elder(&state, &user, &id).await?;
    let current = serde_json::to_value(&before).map_err(|e| ApiError::Internal(e.to_string()))?;
    let input: NewElder = patch::apply(current, &body, &[])?;
    let elder = input.validate(id, state.clock.now().year())?;
    scope::writable_grid(&user, "grid", &elder.grid)?;
    if before.care.steward_id != elder.care.steward_id {
        check_paired_steward(&state, &user, &elder).await?;
    }
    state.store.update_elder(&elder).await?;
    // A new cadence (put on watch, a plan of their own) or a new grid
    // plans the next visit afresh: the planner replans a visit not yet
    // begun nor overdue on its next pass.
    if before.care != elder.care
        || before.grid != elder.grid
        || before.lives_alone != elder.lives_alone
    {
        state.store.drop_planned_visit(&elder.id).await?;
    }
    tracing::info!("elder changed");
    Ok(Json(elder))
}

/// Removes an elder; their devices stay registered, unbound. Refused
/// while the elder has an open incident: close it first.
#[utoipa::path(delete, path = "/api/v1/elders/{id}", tag = "elders", security(("bearer" = [])),
    params(("id" = ElderId, Path, description = "Elder id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`open_incident`: the elder has an open incident", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, elder = %id))]
pub async fn remove(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ElderId>,
) -> Result<StatusCode, ApiError> {
    scope::elder(&state, &user, &id).await?;
    let open = state
        .store
        .incidents(&IncidentFilter {
            status: IncidentState::OPEN.to_vec(),
            elder_id: Some(id.clone()),
            limit: 1,
            ..IncidentFilter::default()
        })
        .await?;
    if let Some(incident) = open.first() {
        return Err(ApiError::conflict(
            "open_incident",
            format!(
                "elder {id} has open incident {}; resolve or cancel it first",
                incident.id
            ),
        ));
    }
    state.store.delete_elder(&id).await?;
    tracing::info!("elder removed");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> serde_json::Value {
        json!({
            "name": "Tsering Dolma", "birth_year": 1941, "address": "12 Lhalu Rd",
            "lat": 29.66, "lon": 91.14, "grid": "g-1",
            "contacts": [{"name": "Pema", "relation": "daughter", "phone": "+86 139"}],
            "limits": {"heart_rate_min": 40}
        })
    }

    fn parse(v: serde_json::Value) -> Result<Elder, ApiError> {
        let input: NewElder = super::super::extract::from_value(v)?;
        input.validate(ElderId::parse("e-1").unwrap(), 2025)
    }

    #[test]
    fn a_good_elder() {
        let e = parse(body()).unwrap();
        assert_eq!(e.name, "Tsering Dolma");
        assert_eq!(e.location.lat, 29.66);
        assert_eq!(e.limits.heart_rate_min, Some(40.0));
        // The stored form reads back as an input (what PATCH relies on).
        let back: NewElder =
            super::super::extract::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back.validate(e.id.clone(), 2025).unwrap(), e);
    }

    #[test]
    fn bad_elders_name_the_field() {
        let cases = [
            ("name", json!("  ")),
            ("birth_year", json!(1850)),
            ("birth_year", json!(2030)),
            ("lat", json!(91.0)),
            ("lon", json!(-200.0)),
            ("address", json!("")),
            (
                "contacts",
                json!([{"name": "x", "relation": "", "phone": ""}]),
            ),
            (
                "limits",
                json!({"heart_rate_min": 100, "heart_rate_max": 90}),
            ),
            ("limits", json!({"spo2_min": 120})),
            ("limits", json!({"nonsense": 1})),
            ("languages", json!(["bo", " "])),
        ];
        for (field, value) in cases {
            let mut b = body();
            b[field] = value;
            let e = parse(b).unwrap_err();
            assert!(
                matches!(
                    e,
                    ApiError::Unprocessable {
                        code: "invalid_body",
                        ..
                    }
                ),
                "{field}: {e:?}"
            );
            assert!(e.to_string().starts_with(field), "{field}: {e}");
        }
        let e = parse(json!({"name": "x"})).unwrap_err();
        assert!(e.to_string().contains("birth_year"), "{e}");
    }
}
