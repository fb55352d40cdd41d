//! `/api/v1/devices`: the call buttons, pendants and sensors in elders'
//! homes. Supervisors and admins manage them (the dashboard does);
//! stewards have no business here. Health fields (`online`, `last_seen`,
//! `battery_pct`, `rssi_dbm`, `fw`) are the heartbeats' to write.
//!
//! Each device's MQTT password is a secret of its own
//! ([`crate::credentials`]): given once when the device is registered or
//! its secret rotated, stored only hashed. Rotating or revoking closes a
//! live connection that used the old one (embedded broker).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{AuthUser, Supervisor};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::patch::{self, ReadOnly};
use super::routes::Routes;
use super::{ApiError, AppState, scope};
use crate::credentials;
use crate::domain::{Device, DeviceId, DeviceKind, ElderId};
use crate::store::StoreError;

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/devices", list)
        .post("/api/v1/devices", create)
        .get("/api/v1/devices/{id}", read)
        .patch("/api/v1/devices/{id}", update)
        .delete("/api/v1/devices/{id}", remove)
        .post("/api/v1/devices/{id}/secret", rotate_secret)
        .delete("/api/v1/devices/{id}/secret", revoke_secret)
}

/// The devices routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// The longest heartbeat interval a device may promise: a week.
pub const MAX_HEARTBEAT_S: u32 = 7 * 24 * 3600;

/// A device as a client registers one: what the installer knows.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    /// The device's MQTT client id: `[A-Za-z0-9_-]{1,64}`.
    #[schema(value_type = crate::domain::DeviceIdSchema)]
    pub id: DeviceId,
    /// The elder whose home it is in; absent while in stock.
    #[serde(default)]
    pub elder_id: Option<ElderId>,
    pub kind: DeviceKind,
    /// Seconds between heartbeats the device promises; the site default
    /// when absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub heartbeat_s: Option<u32>,
}

impl NewDevice {
    fn validate(self, default_heartbeat_s: u32) -> Result<Device, ApiError> {
        let heartbeat_s = self.heartbeat_s.unwrap_or(default_heartbeat_s);
        if !(1..=MAX_HEARTBEAT_S).contains(&heartbeat_s) {
            return Err(ApiError::invalid_body(
                "heartbeat_s",
                format!("{heartbeat_s} is not between 1 and {MAX_HEARTBEAT_S}"),
            ));
        }
        Ok(Device {
            id: self.id,
            elder_id: self.elder_id,
            kind: self.kind,
            heartbeat_s,
            online: false,
            last_seen: None,
            battery_pct: None,
            rssi_dbm: None,
            fw: None,
        })
    }
}

/// A device just registered, with its secret: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredDevice {
    #[serde(flatten)]
    pub device: Device,
    /// The device's MQTT password (its username and client id are its
    /// id): 64 hex characters, shown only in this answer and stored
    /// hashed. Lost, it is rotated (`POST /api/v1/devices/{id}/secret`).
    pub secret: String,
}

/// A device's new secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceSecret {
    #[schema(value_type = String)]
    pub device_id: DeviceId,
    /// The device's MQTT password from now on: shown only in this answer.
    pub secret: String,
}

const READ_ONLY: &[ReadOnly] = &[
    ReadOnly {
        field: "online",
        hint: "the device's heartbeats set it",
    },
    ReadOnly {
        field: "last_seen",
        hint: "the device's heartbeats set it",
    },
    ReadOnly {
        field: "battery_pct",
        hint: "the device's heartbeats set it",
    },
    ReadOnly {
        field: "rssi_dbm",
        hint: "the device's heartbeats set it",
    },
    ReadOnly {
        field: "fw",
        hint: "the device's heartbeats set it",
    },
];

fn store_error(e: StoreError, id: &DeviceId) -> ApiError {
    match e {
        StoreError::Conflict { .. } => {
            ApiError::conflict("already_exists", format!("device {id} already exists"))
        }
        StoreError::Invalid(m) => ApiError::Unprocessable {
            code: "invalid_body",
            message: format!("elder_id: {m}"),
        },
        StoreError::NotFound(_) => ApiError::NotFound(format!("device {id} not found")),
        e => e.into(),
    }
}

/// The device as stored, with its newest heartbeat if that is not
/// written yet; 404 outside the caller's scope.
async fn load(state: &AppState, user: &AuthUser, id: &DeviceId) -> Result<Device, ApiError> {
    let mut device = scope::device(state, user, id).await?;
    state.liveness.overlay(&mut device);
    Ok(device)
}

/// Registered devices with their last known health, by id, a page at a
/// time.
#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    params(super::query::PageQuery),
    responses(
        (status = 200, body = Vec<Device>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    super::extract::ApiQuery(page): super::extract::ApiQuery<super::query::PageQuery>,
) -> Result<Json<Vec<Device>>, ApiError> {
    let mut devices = state.store.devices().await?;
    if let Some(elders) = user.view.elder_ids(state.store.as_ref()).await? {
        devices.retain(|d| d.elder_id.as_ref().is_some_and(|e| elders.contains(e)));
    }
    let mut devices = page.slice(devices)?;
    for d in &mut devices {
        state.liveness.overlay(d);
    }
    Ok(Json(devices))
}

/// Registers a device and issues its secret (its MQTT password, shown in
/// this answer only). It is offline until it is heard.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", security(("bearer" = [])),
    request_body = NewDevice,
    responses(
        (status = 201, description = "Registered; `secret` is shown this once", body = RegisteredDevice),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 422, description = "A bad field, or `elder_id` names no elder", body = ErrorBody),
        (status = 503, description = "An external broker did not take the change (mqtt.dynsec); nothing changed", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn create(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewDevice>,
) -> Result<(StatusCode, Json<RegisteredDevice>), ApiError> {
    let device = body.validate(state.settings.ingest.default_heartbeat_s)?;
    scope::writable_elder(&state, &user, "elder_id", device.elder_id.as_ref()).await?;
    state
        .store
        .insert_device(&device)
        .await
        .map_err(|e| store_error(e, &device.id))?;
    let issued = credentials::issue();
    if let Err(e) = grant(&state, &device.id, &issued.secret).await {
        // Registered without a way in is worse than not registered: undo.
        state.store.delete_device(&device.id).await?;
        return Err(e);
    }
    state.liveness.track(&device, state.clock.now());
    state
        .store
        .set_device_secret(&device.id, &issued.hash, secret_changed_at())
        .await?;
    // Its duty starts now: its first test call is due a grace from here.
    if let Err(e) = state.store.enrol_new_devices(state.clock.now()).await {
        tracing::warn!(error = %e, device = %device.id, "device registered but not enrolled for its test calls; its duty counts from its first event");
    }
    tracing::info!(device = %device.id, "device registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisteredDevice {
            device,
            secret: issued.secret,
        }),
    ))
}

/// One device.
#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = crate::domain::DeviceIdSchema, Path, description = "Device id")),
    responses((status = 200, body = Device), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.username, device = %id))]
pub async fn read(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<Json<Device>, ApiError> {
    Ok(Json(load(&state, &user, &id).await?))
}

/// Changes `elder_id`, `kind` or `heartbeat_s` (JSON merge patch;
/// `{"elder_id": null}` unbinds the device).
#[utoipa::path(patch, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = crate::domain::DeviceIdSchema, Path, description = "Device id")),
    request_body(content = NewDevice, content_type = "application/merge-patch+json",
        description = "The fields to change: elder_id, kind, heartbeat_s"),
    responses(
        (status = 200, body = Device),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad field, or a health field (read only)", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, device = %id))]
pub async fn update(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<Device>, ApiError> {
    let current = load(&state, &user, &id).await?;
    let value = serde_json::to_value(&current).map_err(|e| ApiError::Internal(e.to_string()))?;
    let input: NewDevice = patch::apply(value, &body, READ_ONLY)?;
    let changed = input.validate(current.heartbeat_s)?;
    scope::writable_elder(&state, &user, "elder_id", changed.elder_id.as_ref()).await?;
    let device = Device {
        elder_id: changed.elder_id,
        kind: changed.kind,
        heartbeat_s: changed.heartbeat_s,
        ..current
    };
    state
        .store
        .update_device(&device)
        .await
        .map_err(|e| store_error(e, &id))?;
    state.liveness.track(&device, state.clock.now());
    tracing::info!("device changed");
    Ok(Json(device))
}

/// Removes a device. If it keeps sending, it shows up as unknown.
#[utoipa::path(delete, path = "/api/v1/devices/{id}", tag = "devices", security(("bearer" = [])),
    params(("id" = crate::domain::DeviceIdSchema, Path, description = "Device id")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "An external broker did not take the change (mqtt.dynsec); nothing changed", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.username, device = %id))]
pub async fn remove(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<StatusCode, ApiError> {
    load(&state, &user, &id).await?;
    withdraw(&state, &id).await?;
    state.store.delete_device(&id).await?;
    state.liveness.forget(&id);
    // Its secret went with it: so does its connection.
    state.device_links.close_stale(&id, None);
    tracing::info!("device removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Issues the device a new secret, shown in this answer only. The old one
/// stops working at once: a connection using it is closed, and the device
/// must connect again with the new one.
#[utoipa::path(post, path = "/api/v1/devices/{id}/secret", tag = "devices", security(("bearer" = [])),
    params(("id" = crate::domain::DeviceIdSchema, Path, description = "Device id")),
    responses(
        (status = 200, description = "The new secret, shown this once", body = DeviceSecret),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, description = "An external broker did not take the change (mqtt.dynsec); nothing changed", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, device = %id))]
pub async fn rotate_secret(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<Json<DeviceSecret>, ApiError> {
    load(&state, &user, &id).await?;
    let issued = credentials::issue();
    grant(&state, &id, &issued.secret).await?;
    state
        .store
        .set_device_secret(&id, &issued.hash, secret_changed_at())
        .await
        .map_err(|e| store_error(e, &id))?;
    let closed = state.device_links.close_stale(&id, Some(&issued.hash));
    tracing::info!(closed, "device secret rotated");
    Ok(Json(DeviceSecret {
        device_id: id,
        secret: issued.secret,
    }))
}

/// Revokes the device's secret: it cannot connect (a live connection is
/// closed) until a new one is issued with `POST …/secret`.
#[utoipa::path(delete, path = "/api/v1/devices/{id}/secret", tag = "devices", security(("bearer" = [])),
    params(("id" = crate::domain::DeviceIdSchema, Path, description = "Device id")),
    responses((status = 204, description = "Revoked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, description = "An external broker did not take the change (mqtt.dynsec); nothing changed", body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.username, device = %id))]
pub async fn revoke_secret(
    Supervisor(user): Supervisor,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<DeviceId>,
) -> Result<StatusCode, ApiError> {
    load(&state, &user, &id).await?;
    withdraw(&state, &id).await?;
    state
        .store
        .revoke_device_secret(&id, secret_changed_at())
        .await
        .map_err(|e| store_error(e, &id))?;
    let closed = state.device_links.close_stale(&id, None);
    tracing::info!(closed, "device secret revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// When a secret changed: the wall clock, never the site's clock (which
/// tests move), because other processes compare it with theirs to find
/// the connections a change closes (`crate::broker`'s sweep).
fn secret_changed_at() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Gives the external broker's account `secret` (`mqtt.dynsec`), before
/// anything is stored or shown: a broker that did not take it leaves
/// everything as it was.
async fn grant(state: &AppState, id: &DeviceId, secret: &str) -> Result<(), ApiError> {
    match &state.dynsec {
        Some(dynsec) => dynsec.set_device(id, secret).await.map_err(broker_error),
        None => Ok(()),
    }
}

/// Takes the device's account off the external broker, ending its
/// connection.
async fn withdraw(state: &AppState, id: &DeviceId) -> Result<(), ApiError> {
    match &state.dynsec {
        Some(dynsec) => dynsec.remove_device(id).await.map_err(broker_error),
        None => Ok(()),
    }
}

fn broker_error(e: crate::dynsec::DynsecError) -> ApiError {
    tracing::warn!(error = %e, "the broker's device accounts could not be changed");
    ApiError::Unavailable(format!("{e}; nothing was changed"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_devices_get_the_default_heartbeat_and_no_health() {
        let d: NewDevice =
            super::super::extract::from_value(json!({"id": "d-1", "kind": "pendant"})).unwrap();
        let d = d.validate(60).unwrap();
        assert_eq!(d.heartbeat_s, 60);
        assert!(!d.online && d.last_seen.is_none() && d.battery_pct.is_none());

        for bad in [
            json!({"id": "d 1", "kind": "pendant"}),
            json!({"id": "d-1", "kind": "toaster"}),
            json!({"id": "d-1", "kind": "pendant", "online": true}),
            json!({"id": "d-1", "kind": "pendant", "heartbeat_s": -5}),
        ] {
            let e = super::super::extract::from_value::<NewDevice>(bad.clone()).unwrap_err();
            assert!(matches!(e, ApiError::Unprocessable { .. }), "{bad}: {e:?}");
        }
        let d: NewDevice = super::super::extract::from_value(
            json!({"id": "d-1", "kind": "pendant", "heartbeat_s": 0}),
        )
        .unwrap();
        assert!(d.validate(60).is_err());
    }
}
