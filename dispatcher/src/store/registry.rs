//! The registry: elders, their devices and the stewards, and the
//! devices' heartbeats.

use super::*;

/// Elders, devices and stewards; every [`Store`] implements it.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    async fn insert_elder(&self, elder: &Elder) -> StoreResult<()>;
    async fn elder(&self, id: &ElderId) -> StoreResult<Option<Elder>>;
    async fn elders(&self) -> StoreResult<Vec<Elder>>;
    /// Replaces every field; `NotFound` when the id is unknown.
    async fn update_elder(&self, elder: &Elder) -> StoreResult<()>;
    /// Unbinds the elder's devices (they keep reporting as unknown).
    async fn delete_elder(&self, id: &ElderId) -> StoreResult<()>;

    // --- devices ---
    /// `Invalid` when `elder_id` names no elder; `Conflict` on a taken id.
    async fn insert_device(&self, device: &Device) -> StoreResult<()>;
    async fn device(&self, id: &DeviceId) -> StoreResult<Option<Device>>;
    async fn devices(&self) -> StoreResult<Vec<Device>>;
    /// Replaces the registry fields (`elder_id`, `kind`, `heartbeat_s`);
    /// health fields are the heartbeats' to write.
    async fn update_device(&self, device: &Device) -> StoreResult<()>;
    async fn delete_device(&self, id: &DeviceId) -> StoreResult<()>;
    /// Bulk registration (`dispatcher import` of a large site): inserts or
    /// replaces elders in multi-row statements, a few hundred per
    /// statement, because one statement per row caps sqlx's SQLite at
    /// about 14,000 rows a second (PERFORMANCE.md). Returns rows written.
    async fn upsert_elders(&self, elders: &[Elder]) -> StoreResult<usize>;
    /// The same for devices: registry fields are inserted or replaced,
    /// health fields of an existing device are left to its heartbeats.
    /// `Invalid` when a device names an elder that does not exist.
    async fn upsert_devices(&self, devices: &[Device]) -> StoreResult<usize>;
    /// Writes a batch of heartbeats in as few statements as the backend
    /// allows, each committed on its own so other writers get turns in
    /// between; a failure part way is harmless to retry (last-seen never
    /// moves backwards). Unknown devices are skipped.
    async fn flush_heartbeats(&self, beats: &[Heartbeat]) -> StoreResult<()>;
    /// Every registered device's last known health, for the offline
    /// detector at start-up.
    async fn liveness(&self) -> StoreResult<Vec<Liveness>>;
    /// Reads devices and their elders into ingest's copy of the registry
    /// (as many as it keeps), so the first batches after a start, often a
    /// backlog the broker kept for us, need not read them one batch at a
    /// time. Returns how many devices it read; 0 if the registry changed
    /// while reading (the copy then fills as batches need it).
    async fn warm_registry(&self) -> StoreResult<usize>;

    // --- stewards ---
    async fn insert_steward(&self, steward: &Steward) -> StoreResult<()>;
    async fn steward(&self, id: &StewardId) -> StoreResult<Option<Steward>>;
    async fn stewards(&self) -> StoreResult<Vec<Steward>>;
    /// Replaces name, phone, grid, skills and languages; status, duty and
    /// location have their own calls.
    async fn update_steward(&self, steward: &Steward) -> StoreResult<()>;
    async fn set_steward_location(
        &self,
        id: &StewardId,
        at: LatLon,
        accuracy_m: Option<f64>,
        now: DateTime<Utc>,
    ) -> StoreResult<Steward>;
    /// On duty makes an off-duty steward `available`; off duty makes an
    /// `available` one `off_duty`. A busy or offered steward keeps the
    /// status (dispatch withdraws offers itself).
    async fn set_steward_duty(
        &self,
        id: &StewardId,
        on_duty: bool,
        now: DateTime<Utc>,
    ) -> StoreResult<Steward>;
}
