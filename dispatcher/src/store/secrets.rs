//! The store's side of device credentials ([`crate::credentials`]): each
//! device's secret, as its hash only. Written once for both backends in
//! [`super::secrets_sql`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::DeviceId;

/// Device secrets; every [`super::Store`] implements it.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores `hash` as the device's secret, replacing any. `NotFound`
    /// for an unknown device.
    async fn set_device_secret(
        &self,
        device: &DeviceId,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// The same for many devices at once (an import, the simulator), in
    /// multi-row statements. `Invalid` when one names no device.
    async fn set_device_secrets(
        &self,
        secrets: &[(DeviceId, String)],
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;

    /// Revokes the device's secret: it cannot connect until a new one is
    /// issued. `NotFound` for an unknown device.
    async fn revoke_device_secret(&self, device: &DeviceId, now: DateTime<Utc>) -> StoreResult<()>;

    /// The hash of the device's secret; None when it has none or it was
    /// revoked (or the device is unknown).
    async fn device_secret(&self, device: &DeviceId) -> StoreResult<Option<String>>;

    /// Devices whose secret was issued, rotated or revoked at or after
    /// `since`, with the hash stored now.
    async fn device_secrets_changed(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(DeviceId, Option<String>)>>;

    /// Registered devices that have no secret (never issued, or revoked).
    async fn devices_without_secret(&self) -> StoreResult<Vec<DeviceId>>;
}
