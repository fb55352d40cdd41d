//! The SQL both backends run, written once.
//!
//! `sqlx::Any` would erase the column types we rely on, and a generic
//! `impl<DB: Database>` drowns in higher-ranked executor bounds, so the
//! [`Store`](super::Store) implementation is written once as the macro
//! [`sql_store!`] and expanded in [`super::sqlite`] and [`super::postgres`]
//! for their own pool type. sqlx's SQLite driver reads `$1` placeholders,
//! and `ON CONFLICT`, `RETURNING`, `UPDATE … FROM` and partial-index
//! conflict targets mean the same on both databases, so the statements
//! themselves are shared text.
//!
//! What the two backends still differ in is passed to the macro or
//! provided by the backend's struct:
//! - `begin_write()`: SQLite takes the write lock up front
//!   (`BEGIN IMMEDIATE`) so concurrent writers queue on the busy timeout
//!   instead of failing; PostgreSQL's plain `BEGIN` already does.
//! - `claim_lock`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so instances
//!   sharing deadlines never wait on or double-claim each other's rows;
//!   nothing on SQLite, whose writers are serialised anyway.
//! - `lock_stream(conn)`: see [`super::dispatch_sql`], which holds
//!   dispatch's half of the SQL and the transaction ingest shares.
//!
//! Everything that does not need the database type is plain Rust outside
//! the macro: error mapping and the batch helpers below, row shapes and
//! their conversion into domain types in `rows`.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::error::ErrorKind;

use super::notices::Notices;
use super::rows::{InsertedEvent, NewTimeline};
use super::{Heartbeat, StoreError, StoreResult};
use crate::domain::{Device, DeviceId, IncidentId};

/// Rows per multi-row statement. The widest row binds 7 values: 3,500
/// binds per statement, far under SQLite's 32,766 and PostgreSQL's 65,535.
pub(crate) const CHUNK: usize = 500;

/// Heartbeats per flush statement. Each statement holds the write lock
/// for its commit; kept short so a press queued behind one waits under a
/// millisecond, not the few a 500-row update takes.
pub(crate) const HEARTBEAT_CHUNK: usize = 100;

/// Lists return this many rows when the caller asks for none.
pub(crate) const DEFAULT_LIMIT: i64 = 100;
/// ...and never more than this: a list is a screen, not an export.
pub(crate) const MAX_LIMIT: i64 = 1000;

/// Pushes ` AND {open}$1, $2, …{close}` binding each text of `list`; an
/// empty list matches nothing (` AND 1 = 0`), never every row. A scoped
/// supervisor's grids go through it (see `api::scope`).
macro_rules! push_in {
    ($q:expr, $open:expr, $list:expr, $close:expr) => {{
        let list: &[String] = $list;
        if list.is_empty() {
            $q.push(" AND 1 = 0");
        } else {
            $q.push(" AND ").push($open);
            let mut items = $q.separated(", ");
            for item in list {
                items.push_bind(item.as_str());
            }
            $q.push($close);
        }
    }};
}
pub(crate) use push_in;

/// A list's effective limit: `≤ 0` means the default.
pub(crate) fn clamp_limit(limit: i64) -> i64 {
    if limit <= 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    }
}

// --- errors ---

/// `?` for sqlx results: a row that cannot be decoded is `Corrupt` (a
/// hand-edited or damaged row, not a reason to retry); anything else is
/// the database's problem.
pub(crate) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(classify)
    }
}

fn classify(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => StoreError::Corrupt(e.to_string()),
        other => StoreError::Database(other),
    }
}

/// Maps a failed write to what a client can act on: a taken key is a
/// `Conflict` (`taken` names it), a dangling reference is `Invalid`
/// (`missing` names it), a refused CHECK is `Invalid` too. The names are
/// built only when needed.
pub(crate) fn write_err(
    e: sqlx::Error,
    taken: impl FnOnce() -> String,
    missing: impl FnOnce() -> String,
) -> StoreError {
    let (kind, message) = match e.as_database_error() {
        Some(d) => (d.kind(), d.message().to_owned()),
        None => return classify(e),
    };
    match kind {
        ErrorKind::UniqueViolation => StoreError::Conflict {
            code: super::ConflictCode::Taken,
            message: taken(),
        },
        ErrorKind::ForeignKeyViolation => StoreError::Invalid(missing()),
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
            StoreError::Invalid(format!("refused by the database: {message}"))
        }
        _ => classify(e),
    }
}

/// `NotFound` unless the statement touched a row.
pub(crate) fn found(rows_affected: u64, what: impl FnOnce() -> String) -> StoreResult<()> {
    if rows_affected == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// JSON text for a list or object column.
pub(crate) fn to_json<T: Serialize + ?Sized>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

/// Ids read back from the database.
pub(crate) fn incident_ids(ids: Vec<String>) -> StoreResult<Vec<IncidentId>> {
    ids.into_iter()
        .map(|id| {
            IncidentId::parse(id.clone())
                .map_err(|e| StoreError::Corrupt(format!("incident id {id:?}: {e}")))
        })
        .collect()
}

/// A transaction's pending writes besides the change itself: timeline
/// lines, notices (stream and outbox rows) and deadlines, written together
/// just before the commit, one statement per kind.
#[derive(Default)]
pub(crate) struct Pending {
    pub timeline: Vec<NewTimeline>,
    pub notices: Notices,
    /// What each touched deadline key ends as: due at a time with its
    /// effects (as JSON), or gone. Only the last word on a key counts, so
    /// a bed exit and its return in one batch leave nothing; sorted, so
    /// concurrent writers lock the rows in one order.
    pub deadlines: DeadlineWrites,
}

/// Deadline key → due time and effects (JSON), or `None` for removed.
pub(crate) type DeadlineWrites =
    std::collections::BTreeMap<String, Option<(chrono::DateTime<chrono::Utc>, String)>>;

impl Pending {
    /// A timeline line of an incident.
    pub(crate) fn line(
        &mut self,
        incident: &IncidentId,
        at: chrono::DateTime<chrono::Utc>,
        what: String,
        actor: &super::dispatch::Actor,
    ) {
        self.timeline.push(NewTimeline {
            incident_id: incident.to_string(),
            at,
            what,
            actor: actor.to_string(),
        });
    }
}

// --- ingest and effects, the parts that need no database ---

/// Maps `RETURNING` rows back to their events: `(device_id, event_id)`
/// to the new row's `seq`.
pub(crate) fn seqs_by_key(rows: Vec<InsertedEvent>) -> HashMap<(String, String), i64> {
    rows.into_iter()
        .map(|r| ((r.device_id, r.event_id), r.seq))
        .collect()
}

/// Keeps the newest heartbeat per device: a multi-row `UPDATE … FROM`
/// must not match one row twice (PostgreSQL would pick either). Sorted by
/// device, so two instances flushing overlapping sets lock rows in the
/// same order.
pub(crate) fn newest_per_device(beats: &[Heartbeat]) -> Vec<&Heartbeat> {
    let mut newest: HashMap<&DeviceId, &Heartbeat> = HashMap::with_capacity(beats.len());
    for b in beats {
        newest
            .entry(&b.device_id)
            .and_modify(|cur| {
                if b.last_seen >= cur.last_seen {
                    *cur = b;
                }
            })
            .or_insert(b);
    }
    let mut newest: Vec<_> = newest.into_values().collect();
    newest.sort_unstable_by(|a, b| a.device_id.cmp(&b.device_id));
    newest
}

/// Implements [`Store`](crate::store::Store) for `$store`, a struct with a
/// `pool: sqlx::Pool<$db>` field (for reads), a
/// `registry: RegistryCache` field (ingest's copy of devices and elders), an
/// `async fn begin_write(&self) -> Result<T, sqlx::Error>` that opens a
/// transaction ready to write (`T` derefs to the connection and has
/// `commit`), an `async fn write_conn(&self) -> Result<C, sqlx::Error>`
/// giving a connection for one writing statement, and
/// `background_write_conn`, the same for a write that may let others go
/// first. Every write goes through one of them, so a backend can order
/// its writers.
///
/// Expand [`dispatch_sql!`](crate::store::dispatch_sql::dispatch_sql) for
/// the same type beside it: the transaction ingest and dispatch run in
/// (`open_tx`), `flush`, and `DispatchStore`, which `Store` requires,
/// live there.
///
/// - `backend`: the [`Backend`](crate::store::Backend) variant it reports.
/// - `claim_lock`: a literal appended to `claim_due`'s row selection
///   (`"FOR UPDATE SKIP LOCKED"` or `""`).
///
/// rustfmt leaves macro bodies alone: keep this one formatted by hand.
macro_rules! sql_store {
    (
        $store:ident,
        $db:ty,
        backend = $backend:ident,
        claim_lock = $lock:literal,
        orphaned = $orphaned:expr
    ) => {
        const _: () = {
            use std::collections::HashMap;

            use async_trait::async_trait;
            use chrono::{DateTime, Duration, Utc};
            use sqlx::QueryBuilder;

            use $crate::domain::{
                DedupKey, Device, DeviceId, Elder, ElderId, Incident, IncidentDetail, IncidentId,
                LatLon, Steward, StewardId, StewardStatus, User,
            };
            use $crate::store::dispatch::DispatchStore;
            use $crate::store::ingest::IngestTx;
            use $crate::store::registry_cache::{Registry, RegistryCache};
            use $crate::store::rows::*;
            use $crate::store::sql::*;
            use $crate::store::{
                Backend, Deadline, EventAction, EventFilter, Heartbeat, IncidentFilter,
                IncomingEvent, Liveness, Store, StoreError, StoreResult, StoredEvent,
                UnknownDevice,
            };

            type Conn = <$db as sqlx::Database>::Connection;

            impl $store {
                // --- ingest steps ---

                /// The devices of a batch and the elders they are bound
                /// to: from the copy kept at the store's registry version,
                /// reading only devices it does not hold (two statements
                /// per chunk of those, not two per event).
                async fn registry_for(
                    &self,
                    conn: &mut Conn,
                    batch: &[IncomingEvent],
                ) -> StoreResult<Registry> {
                    let version = Self::registry_version(conn).await?;
                    let (hit, missing) =
                        self.registry.get(version, batch.iter().map(|e| &e.device_id));
                    if missing.is_empty() {
                        return Ok(hit);
                    }
                    let read = Self::read_registry(conn, &missing).await?;
                    Ok(self.registry.keep(version, &missing, read, hit))
                }

                /// Moved on by triggers at every change to devices'
                /// bindings or to elders (migration 0003).
                async fn registry_version(conn: &mut Conn) -> StoreResult<i64> {
                    sqlx::query_scalar("SELECT version FROM registry_version")
                        .fetch_one(&mut *conn)
                        .await
                        .db()
                }

                async fn read_registry(conn: &mut Conn, ids: &[DeviceId]) -> StoreResult<Registry> {
                    let mut registry = Registry::default();
                    for chunk in ids.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new("SELECT * FROM devices WHERE id IN (");
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(id.as_str());
                        }
                        q.push(")");
                        let rows: Vec<DeviceRow> =
                            q.build_query_as().fetch_all(&mut *conn).await.db()?;
                        registry.add_devices(rows);
                    }
                    let elder_ids: Vec<String> =
                        registry.elder_ids().into_iter().map(ElderId::to_string).collect();
                    for chunk in elder_ids.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new("SELECT * FROM elders WHERE id IN (");
                        let mut list = q.separated(", ");
                        for id in chunk {
                            list.push_bind(id.as_str());
                        }
                        q.push(")");
                        let rows: Vec<ElderRow> =
                            q.build_query_as().fetch_all(&mut *conn).await.db()?;
                        registry.add_elders(rows);
                    }
                    Ok(registry)
                }

                /// Inserts the first occurrence of each event, skipping
                /// those already stored, and returns the new rows' `seq`
                /// by `(device_id, event_id)`. Inserting before deciding
                /// is what makes a redelivery racing its original on
                /// another instance a duplicate: the second insert waits
                /// for the first to commit and then inserts nothing.
                async fn insert_events(
                    conn: &mut Conn,
                    batch: &[IncomingEvent],
                    first: &[bool],
                    registry: &Registry,
                ) -> StoreResult<HashMap<(String, String), i64>> {
                    let mut rows = Vec::with_capacity(batch.len());
                    for (e, _) in batch.iter().zip(first).filter(|(_, f)| **f) {
                        let data = to_json("event data", &e.message.data)?;
                        let (_, elder) = registry.lookup(&e.device_id);
                        rows.push((e, data, elder.map(|el| el.id.as_str())));
                    }
                    // Key order, not arrival order: two instances inserting
                    // overlapping batches then lock rows in the same order
                    // and wait for each other instead of deadlocking.
                    rows.sort_unstable_by(|(a, ..), (b, ..)| {
                        (a.device_id.as_str(), a.message.event_id.as_str())
                            .cmp(&(b.device_id.as_str(), b.message.event_id.as_str()))
                    });
                    let mut inserted = Vec::with_capacity(rows.len());
                    for chunk in rows.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO events
                                 (device_id, event_id, type, ts, received_at, data, elder_id) ",
                        );
                        q.push_values(chunk, |mut row, (e, data, elder)| {
                            row.push_bind(e.device_id.as_str())
                                .push_bind(e.message.event_id.as_str())
                                .push_bind(e.message.event_type.as_str())
                                .push_bind(e.message.ts)
                                .push_bind(e.received_at)
                                .push_bind(data.as_str())
                                .push_bind(*elder);
                        });
                        q.push(
                            " ON CONFLICT (device_id, event_id) DO NOTHING
                              RETURNING seq, device_id, event_id",
                        );
                        let mut new: Vec<InsertedEvent> =
                            q.build_query_as().fetch_all(&mut *conn).await.db()?;
                        inserted.append(&mut new);
                    }
                    Ok(seqs_by_key(inserted))
                }

                /// Records what each new event did, one statement per
                /// chunk. Events that only were recorded keep the
                /// insert's default and are not touched.
                async fn record_outcomes(
                    conn: &mut Conn,
                    outcomes: &[(i64, EventAction, Option<String>)],
                ) -> StoreResult<()> {
                    for chunk in outcomes.chunks(CHUNK) {
                        let mut q =
                            QueryBuilder::<$db>::new("WITH v (seq, action, incident_id) AS (");
                        q.push_values(chunk, |mut row, (seq, action, incident)| {
                            row.push_bind(*seq)
                                .push_bind(action.as_str())
                                .push_bind(incident.as_deref());
                        });
                        q.push(
                            ") UPDATE events SET action = v.action, incident_id = v.incident_id
                               FROM v WHERE events.seq = v.seq",
                        );
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    Ok(())
                }
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> Backend {
                    Backend::$backend
                }

                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
                    Ok(())
                }

                async fn heartbeat(&self, me: &$crate::store::InstanceBeat) -> StoreResult<$crate::store::Peers> {
                    self.beat(me).await
                }

                fn changes(&self) -> Option<Box<dyn $crate::store::changes::ChangeFeed>> {
                    self.change_feed()
                }
            }

            #[async_trait]
            impl $crate::store::registry::RegistryStore for $store {
                // --- elders ---

                #[tracing::instrument(skip_all, fields(elder = %elder.id))]
                async fn insert_elder(&self, elder: &Elder) -> StoreResult<()> {
                    let j = ElderJson::of(elder)?;
                    sqlx::query(
                        "INSERT INTO elders (id, name, birth_year, address, lat, lon, grid,
                                             conditions, medications, risks, lives_alone,
                                             languages, contacts, notes, limits, care, steward_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                                 $16, $17)",
                    )
                    .bind(elder.id.as_str())
                    .bind(&elder.name)
                    .bind(elder.birth_year)
                    .bind(&elder.address)
                    .bind(elder.location.lat)
                    .bind(elder.location.lon)
                    .bind(&elder.grid)
                    .bind(j.conditions)
                    .bind(j.medications)
                    .bind(j.risks)
                    .bind(elder.lives_alone)
                    .bind(j.languages)
                    .bind(j.contacts)
                    .bind(&elder.notes)
                    .bind(j.limits)
                    .bind(j.care)
                    .bind(j.steward_id)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .map_err(|e| {
                        write_err(
                            e,
                            || format!("elder {} already exists", elder.id),
                            || format!("elder {} refers to something missing", elder.id),
                        )
                    })?;
                    Ok(())
                }

                async fn elder(&self, id: &ElderId) -> StoreResult<Option<Elder>> {
                    let row: Option<ElderRow> = sqlx::query_as("SELECT * FROM elders WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                    row.map(ElderRow::into_domain).transpose()
                }

                async fn elders(&self) -> StoreResult<Vec<Elder>> {
                    let rows: Vec<ElderRow> = sqlx::query_as("SELECT * FROM elders ORDER BY id")
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                    all(rows, ElderRow::into_domain)
                }

                #[tracing::instrument(skip_all, fields(elder = %elder.id))]
                async fn update_elder(&self, elder: &Elder) -> StoreResult<()> {
                    let j = ElderJson::of(elder)?;
                    let done = sqlx::query(
                        "UPDATE elders SET name = $2, birth_year = $3, address = $4, lat = $5,
                             lon = $6, grid = $7, conditions = $8, medications = $9, risks = $10,
                             lives_alone = $11, languages = $12, contacts = $13, notes = $14,
                             limits = $15, care = $16, steward_id = $17
                         WHERE id = $1",
                    )
                    .bind(elder.id.as_str())
                    .bind(&elder.name)
                    .bind(elder.birth_year)
                    .bind(&elder.address)
                    .bind(elder.location.lat)
                    .bind(elder.location.lon)
                    .bind(&elder.grid)
                    .bind(j.conditions)
                    .bind(j.medications)
                    .bind(j.risks)
                    .bind(elder.lives_alone)
                    .bind(j.languages)
                    .bind(j.contacts)
                    .bind(&elder.notes)
                    .bind(j.limits)
                    .bind(j.care)
                    .bind(j.steward_id)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    found(done.rows_affected(), || format!("elder {}", elder.id))
                }

                #[tracing::instrument(skip_all, fields(elder = %id))]
                async fn delete_elder(&self, id: &ElderId) -> StoreResult<()> {
                    // The foreign key sets the devices' elder_id to NULL.
                    let done = sqlx::query("DELETE FROM elders WHERE id = $1")
                        .bind(id.as_str())
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    found(done.rows_affected(), || format!("elder {id}"))
                }

                // --- devices ---

                #[tracing::instrument(skip_all, fields(device = %device.id))]
                async fn insert_device(&self, device: &Device) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO devices (id, elder_id, kind, heartbeat_s, online, last_seen,
                                              battery_pct, rssi_dbm, fw)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(device.id.as_str())
                    .bind(device.elder_id.as_ref().map(ElderId::as_str))
                    .bind(device.kind.as_str())
                    .bind(heartbeat_s(device)?)
                    .bind(device.online)
                    .bind(device.last_seen)
                    .bind(device.battery_pct.map(i32::from))
                    .bind(device.rssi_dbm.map(i32::from))
                    .bind(device.fw.as_deref())
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .map_err(|e| {
                        write_err(
                            e,
                            || format!("device {} already exists", device.id),
                            || missing_elder(device),
                        )
                    })?;
                    Ok(())
                }

                async fn device(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
                    let row: Option<DeviceRow> =
                        sqlx::query_as("SELECT * FROM devices WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    row.map(DeviceRow::into_domain).transpose()
                }

                async fn devices(&self) -> StoreResult<Vec<Device>> {
                    let rows: Vec<DeviceRow> = sqlx::query_as("SELECT * FROM devices ORDER BY id")
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                    all(rows, DeviceRow::into_domain)
                }

                #[tracing::instrument(skip_all, fields(device = %device.id))]
                async fn update_device(&self, device: &Device) -> StoreResult<()> {
                    let done = sqlx::query(
                        "UPDATE devices SET elder_id = $2, kind = $3, heartbeat_s = $4
                         WHERE id = $1",
                    )
                    .bind(device.id.as_str())
                    .bind(device.elder_id.as_ref().map(ElderId::as_str))
                    .bind(device.kind.as_str())
                    .bind(heartbeat_s(device)?)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .map_err(|e| {
                        write_err(
                            e,
                            || format!("device {} already exists", device.id),
                            || missing_elder(device),
                        )
                    })?;
                    found(done.rows_affected(), || format!("device {}", device.id))
                }

                #[tracing::instrument(skip_all, fields(device = %id))]
                async fn delete_device(&self, id: &DeviceId) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM devices WHERE id = $1")
                        .bind(id.as_str())
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    found(done.rows_affected(), || format!("device {id}"))
                }

                #[tracing::instrument(skip_all, fields(elders = elders.len()))]
                async fn upsert_elders(&self, elders: &[Elder]) -> StoreResult<usize> {
                    // 15 binds a row: 200 rows stay far under both
                    // databases' bind limits. Each chunk commits on its
                    // own so a running dispatcher is never locked out of
                    // the SQLite file for the whole import.
                    for chunk in elders.chunks(200) {
                        let json = chunk.iter().map(ElderJson::of).collect::<StoreResult<Vec<_>>>()?;
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO elders (id, name, birth_year, address, lat, lon, grid,
                                                 conditions, medications, risks, lives_alone,
                                                 languages, contacts, notes, limits, care,
                                                 steward_id) ",
                        );
                        q.push_values(chunk.iter().zip(json), |mut row, (e, j)| {
                            row.push_bind(e.id.as_str())
                                .push_bind(&e.name)
                                .push_bind(e.birth_year)
                                .push_bind(&e.address)
                                .push_bind(e.location.lat)
                                .push_bind(e.location.lon)
                                .push_bind(&e.grid)
                                .push_bind(j.conditions)
                                .push_bind(j.medications)
                                .push_bind(j.risks)
                                .push_bind(e.lives_alone)
                                .push_bind(j.languages)
                                .push_bind(j.contacts)
                                .push_bind(&e.notes)
                                .push_bind(j.limits)
                                .push_bind(j.care)
                                .push_bind(j.steward_id);
                        });
                        q.push(
                            " ON CONFLICT (id) DO UPDATE SET
                                name = excluded.name, birth_year = excluded.birth_year,
                                address = excluded.address, lat = excluded.lat, lon = excluded.lon,
                                grid = excluded.grid, conditions = excluded.conditions,
                                medications = excluded.medications, risks = excluded.risks,
                                lives_alone = excluded.lives_alone, languages = excluded.languages,
                                contacts = excluded.contacts, notes = excluded.notes,
                                limits = excluded.limits, care = excluded.care,
                                steward_id = excluded.steward_id",
                        );
                        q.build().execute(&mut *self.write_conn().await.db()?).await.map_err(|e| {
                            write_err(
                                e,
                                || "an elder id is taken".into(),
                                || "an elder refers to something missing".into(),
                            )
                        })?;
                    }
                    Ok(elders.len())
                }

                #[tracing::instrument(skip_all, fields(devices = devices.len()))]
                async fn upsert_devices(&self, devices: &[Device]) -> StoreResult<usize> {
                    for chunk in devices.chunks(CHUNK) {
                        let beats = chunk.iter().map(heartbeat_s).collect::<StoreResult<Vec<_>>>()?;
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO devices (id, elder_id, kind, heartbeat_s, online) ",
                        );
                        q.push_values(chunk.iter().zip(beats), |mut row, (d, hb)| {
                            row.push_bind(d.id.as_str())
                                .push_bind(d.elder_id.as_ref().map(ElderId::as_str))
                                .push_bind(d.kind.as_str())
                                .push_bind(hb)
                                .push_bind(d.online);
                        });
                        q.push(
                            " ON CONFLICT (id) DO UPDATE SET elder_id = excluded.elder_id,
                                kind = excluded.kind, heartbeat_s = excluded.heartbeat_s",
                        );
                        q.build().execute(&mut *self.write_conn().await.db()?).await.map_err(|e| {
                            write_err(
                                e,
                                || "a device id is taken".into(),
                                || "a device names an elder that does not exist".into(),
                            )
                        })?;
                    }
                    Ok(devices.len())
                }

                #[tracing::instrument(skip_all, fields(beats = beats.len()))]
                async fn flush_heartbeats(&self, beats: &[Heartbeat]) -> StoreResult<()> {
                    let newest = newest_per_device(beats);
                    if newest.is_empty() {
                        return Ok(());
                    }
                    // One statement, committed on its own, per chunk: a
                    // press waits behind one chunk, never the whole flush.
                    for chunk in newest.chunks(HEARTBEAT_CHUNK) {
                        let mut q = QueryBuilder::<$db>::new(
                            "WITH v (id, last_seen, online, battery_pct, rssi_dbm, fw) AS (",
                        );
                        q.push_values(chunk, |mut row, b| {
                            row.push_bind(b.device_id.as_str())
                                .push_bind(b.last_seen)
                                .push_bind(b.online)
                                .push_bind(b.battery_pct.map(i32::from))
                                .push_bind(b.rssi_dbm.map(i32::from))
                                .push_bind(b.fw.as_deref());
                        });
                        // A heartbeat that omits a reading keeps the last
                        // known one; an older flush (another instance, a
                        // late batch) never moves last_seen backwards.
                        q.push(
                            ") UPDATE devices SET
                                   last_seen = v.last_seen,
                                   online = v.online,
                                   battery_pct = COALESCE(v.battery_pct, devices.battery_pct),
                                   rssi_dbm = COALESCE(v.rssi_dbm, devices.rssi_dbm),
                                   fw = COALESCE(v.fw, devices.fw)
                               FROM v
                               WHERE devices.id = v.id
                                 AND (devices.last_seen IS NULL
                                      OR devices.last_seen <= v.last_seen)",
                        );
                        let mut conn = self.background_write_conn().await.db()?;
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    Ok(())
                }

                async fn liveness(&self) -> StoreResult<Vec<Liveness>> {
                    let rows: Vec<LivenessRow> = sqlx::query_as(
                        "SELECT id, last_seen, online, heartbeat_s FROM devices ORDER BY id",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, LivenessRow::into_domain)
                }

                async fn warm_registry(&self) -> StoreResult<usize> {
                    let mut conn = self.pool.acquire().await.db()?;
                    let before = Self::registry_version(&mut conn).await?;
                    let limit = RegistryCache::WARM as i64;
                    let devices: Vec<DeviceRow> =
                        sqlx::query_as("SELECT * FROM devices ORDER BY id LIMIT $1")
                            .bind(limit)
                            .fetch_all(&mut *conn)
                            .await
                            .db()?;
                    let elders: Vec<ElderRow> = sqlx::query_as(
                        "SELECT * FROM elders WHERE id IN
                             (SELECT elder_id FROM devices ORDER BY id LIMIT $1)",
                    )
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
                    // Rows read across a registry change may not belong
                    // together: keep nothing rather than a mix.
                    if Self::registry_version(&mut conn).await? != before {
                        return Ok(0);
                    }
                    let mut read = Registry::default();
                    read.add_devices(devices);
                    read.add_elders(elders);
                    Ok(self.registry.fill(before, read))
                }

                // --- stewards ---

                #[tracing::instrument(skip_all, fields(steward = %steward.id))]
                async fn insert_steward(&self, steward: &Steward) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO stewards (id, name, phone, grid, skills, languages, on_duty,
                                               status, lat, lon, location_at, accuracy_m)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(steward.id.as_str())
                    .bind(&steward.name)
                    .bind(&steward.phone)
                    .bind(&steward.grid)
                    .bind(to_json("skills", &steward.skills)?)
                    .bind(to_json("languages", &steward.languages)?)
                    .bind(steward.on_duty)
                    .bind(steward.status.as_str())
                    .bind(steward.lat)
                    .bind(steward.lon)
                    .bind(steward.location_at)
                    .bind(steward.accuracy_m)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .map_err(|e| {
                        write_err(
                            e,
                            || format!("steward {} already exists", steward.id),
                            || format!("steward {} refers to something missing", steward.id),
                        )
                    })?;
                    Ok(())
                }

                async fn steward(&self, id: &StewardId) -> StoreResult<Option<Steward>> {
                    let row: Option<StewardRow> =
                        sqlx::query_as("SELECT * FROM stewards WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    row.map(StewardRow::into_domain).transpose()
                }

                async fn stewards(&self) -> StoreResult<Vec<Steward>> {
                    let rows: Vec<StewardRow> =
                        sqlx::query_as("SELECT * FROM stewards ORDER BY id")
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                    all(rows, StewardRow::into_domain)
                }

                #[tracing::instrument(skip_all, fields(steward = %steward.id))]
                async fn update_steward(&self, steward: &Steward) -> StoreResult<()> {
                    let done = sqlx::query(
                        "UPDATE stewards
                         SET name = $2, phone = $3, grid = $4, skills = $5, languages = $6
                         WHERE id = $1",
                    )
                    .bind(steward.id.as_str())
                    .bind(&steward.name)
                    .bind(&steward.phone)
                    .bind(&steward.grid)
                    .bind(to_json("skills", &steward.skills)?)
                    .bind(to_json("languages", &steward.languages)?)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    found(done.rows_affected(), || format!("steward {}", steward.id))
                }

                #[tracing::instrument(skip_all, fields(steward = %id))]
                async fn set_steward_location(
                    &self,
                    id: &StewardId,
                    at: LatLon,
                    accuracy_m: Option<f64>,
                    now: DateTime<Utc>,
                ) -> StoreResult<Steward> {
                    let mut tx = self.begin_write().await.db()?;
                    let row: Option<StewardRow> = sqlx::query_as(
                        "UPDATE stewards SET lat = $2, lon = $3, accuracy_m = $4, location_at = $5
                         WHERE id = $1 RETURNING *",
                    )
                    .bind(id.as_str())
                    .bind(at.lat)
                    .bind(at.lon)
                    .bind(accuracy_m)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    let steward = row
                        .ok_or_else(|| StoreError::NotFound(format!("steward {id}")))?
                        .into_domain()?;
                    // Supervisors' map follows the steward.
                    let mut pending = Pending::default();
                    pending.notices.steward(&steward, now);
                    Self::flush(&mut tx, pending).await?;
                    tx.commit().await.db()?;
                    Ok(steward)
                }

                #[tracing::instrument(skip_all, fields(steward = %id, on_duty = on_duty))]
                async fn set_steward_duty(
                    &self,
                    id: &StewardId,
                    on_duty: bool,
                    now: DateTime<Utc>,
                ) -> StoreResult<Steward> {
                    // Only the idle states move; an offered or busy
                    // steward is dispatch's to release.
                    let (from, to) = if on_duty {
                        (StewardStatus::OffDuty, StewardStatus::Available)
                    } else {
                        (StewardStatus::Available, StewardStatus::OffDuty)
                    };
                    let mut tx = self.begin_write().await.db()?;
                    let row: Option<StewardRow> = sqlx::query_as(
                        "UPDATE stewards
                         SET on_duty = $2, status = CASE WHEN status = $3 THEN $4 ELSE status END
                         WHERE id = $1 RETURNING *",
                    )
                    .bind(id.as_str())
                    .bind(on_duty)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    let steward = row
                        .ok_or_else(|| StoreError::NotFound(format!("steward {id}")))?
                        .into_domain()?;
                    let mut pending = Pending::default();
                    pending.notices.steward(&steward, now);
                    Self::flush(&mut tx, pending).await?;
                    tx.commit().await.db()?;
                    Ok(steward)
                }
            }

            #[async_trait]
            impl $crate::store::sessions::SessionStore for $store {
                // --- logins ---

                #[tracing::instrument(skip_all, fields(user = %user.username))]
                async fn insert_user(&self, user: &User) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO users (username, password_hash, role, steward_id, scope)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&user.username)
                    .bind(&user.password_hash)
                    .bind(user.role.as_str())
                    .bind(user.steward_id.as_ref().map(StewardId::as_str))
                    .bind(user.scope.as_text())
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .map_err(|e| {
                        write_err(
                            e,
                            || format!("user {} already exists", user.username),
                            || match &user.steward_id {
                                Some(s) => format!("steward {s} does not exist"),
                                None => {
                                    format!("user {} refers to something missing", user.username)
                                }
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn user(&self, username: &str) -> StoreResult<Option<User>> {
                    let row: Option<UserRow> =
                        sqlx::query_as("SELECT * FROM users WHERE username = $1")
                            .bind(username)
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    row.map(UserRow::into_domain).transpose()
                }

                async fn users(&self) -> StoreResult<Vec<User>> {
                    let rows: Vec<UserRow> = sqlx::query_as("SELECT * FROM users ORDER BY username")
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                    all(rows, UserRow::into_domain)
                }

                #[tracing::instrument(skip_all, fields(user = %username))]
                async fn delete_user(&self, username: &str) -> StoreResult<()> {
                    // Sessions go with it (ON DELETE CASCADE).
                    let done = sqlx::query("DELETE FROM users WHERE username = $1")
                        .bind(username)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    found(done.rows_affected(), || format!("user {username}"))
                }

                #[tracing::instrument(skip_all, fields(user = %username))]
                async fn insert_session(
                    &self,
                    token_hash: &str,
                    username: &str,
                    expires_at: DateTime<Utc>,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO sessions (token_hash, username, expires_at)
                         VALUES ($1, $2, $3)",
                    )
                    .bind(token_hash)
                    .bind(username)
                    .bind(expires_at)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .map_err(|e| {
                        write_err(
                            e,
                            || "that session token is already in use".to_owned(),
                            || format!("user {username} does not exist"),
                        )
                    })?;
                    Ok(())
                }

                async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                        .bind(token_hash)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn session_user(
                    &self,
                    token_hash: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<User>> {
                    let row: Option<UserRow> = sqlx::query_as(
                        "SELECT u.* FROM sessions s JOIN users u ON u.username = s.username
                         WHERE s.token_hash = $1 AND s.expires_at > $2",
                    )
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                    row.map(UserRow::into_domain).transpose()
                }
            }

            #[async_trait]
            impl $crate::store::ingest::IngestStore for $store {
                // --- ingest ---

                #[allow(private_interfaces)]
                async fn begin_ingest(&self) -> StoreResult<Box<dyn IngestTx + '_>> {
                    self.open_tx().await
                }

                async fn events(&self, filter: &EventFilter) -> StoreResult<Vec<StoredEvent>> {
                    let mut q = QueryBuilder::<$db>::new("SELECT * FROM events WHERE 1 = 1");
                    if let Some(device) = &filter.device_id {
                        q.push(" AND device_id = ").push_bind(device.as_str());
                    }
                    if let Some(since) = filter.since {
                        q.push(" AND received_at >= ").push_bind(since);
                    }
                    if let Some(grids) = &filter.grids {
                        push_in!(
                            q,
                            "device_id IN (SELECT d.id FROM devices d JOIN elders e ON e.id = d.elder_id WHERE e.grid IN (",
                            grids,
                            "))"
                        );
                    }
                    q.push(" ORDER BY received_at DESC, seq DESC LIMIT ")
                        .push_bind(clamp_limit(filter.limit))
                        .push(" OFFSET ")
                        .push_bind(filter.offset.max(0));
                    let rows: Vec<EventRow> = q.build_query_as().fetch_all(&self.pool).await.db()?;
                    all(rows, EventRow::into_domain)
                }

                async fn unknown_devices(
                    &self,
                    limit: i64,
                    offset: i64,
                ) -> StoreResult<Vec<UnknownDevice>> {
                    let rows: Vec<UnknownDeviceRow> = sqlx::query_as(
                        "SELECT e.device_id,
                                COUNT(*) AS events,
                                MIN(e.received_at) AS first_seen,
                                MAX(e.received_at) AS last_seen,
                                (SELECT l.type FROM events l WHERE l.device_id = e.device_id
                                 ORDER BY l.received_at DESC, l.seq DESC LIMIT 1) AS last_type
                         FROM events e LEFT JOIN devices d ON d.id = e.device_id
                         WHERE d.id IS NULL OR d.elder_id IS NULL
                         GROUP BY e.device_id
                         ORDER BY MAX(e.received_at) DESC, e.device_id
                         LIMIT $1 OFFSET $2",
                    )
                    .bind(clamp_limit(limit))
                    .bind(offset.max(0))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, UnknownDeviceRow::into_domain)
                }
            }

            #[async_trait]
            impl $crate::store::incidents::IncidentStore for $store {
                // --- incidents ---

                async fn incidents(&self, filter: &IncidentFilter) -> StoreResult<Vec<Incident>> {
                    let mut q = QueryBuilder::<$db>::new("SELECT * FROM incidents WHERE 1 = 1");
                    if !filter.status.is_empty() {
                        q.push(" AND status IN (");
                        let mut list = q.separated(", ");
                        for s in &filter.status {
                            list.push_bind(s.as_str());
                        }
                        q.push(")");
                    }
                    if let Some(p) = filter.priority {
                        q.push(" AND priority = ").push_bind(p.as_str());
                    }
                    if let Some(k) = filter.kind {
                        q.push(" AND kind = ").push_bind(k.as_str());
                    }
                    if let Some(e) = &filter.elder_id {
                        q.push(" AND elder_id = ").push_bind(e.as_str());
                    }
                    if let Some(since) = filter.since {
                        q.push(" AND created_at >= ").push_bind(since);
                    }
                    // A steward's incidents: assigned to them, or ever
                    // offered to them.
                    // A scoped supervisor's: incidents of elders in
                    // their grids (none without an elder).
                    if let Some(grids) = &filter.grids {
                        push_in!(q, "elder_id IN (SELECT id FROM elders WHERE grid IN (", grids, "))");
                    }
                    if let Some(s) = &filter.steward_id {
                        q.push(" AND (steward_id = ")
                            .push_bind(s.as_str())
                            .push(" OR id IN (SELECT incident_id FROM offers WHERE steward_id = ")
                            .push_bind(s.as_str())
                            .push("))");
                    }
                    q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                        .push_bind(clamp_limit(filter.limit))
                        .push(" OFFSET ")
                        .push_bind(filter.offset.max(0));
                    let rows: Vec<IncidentRow> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    all(rows, IncidentRow::into_domain)
                }

                async fn incident(&self, id: &IncidentId) -> StoreResult<Option<IncidentDetail>> {
                    let row: Option<IncidentRow> =
                        sqlx::query_as("SELECT * FROM incidents WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let (incident, dispatch) = row.into_parts()?;
                    let candidates = dispatch.notes(id.as_str())?;
                    let rows: Vec<TimelineRow> = sqlx::query_as(
                        "SELECT at, what, actor FROM timeline WHERE incident_id = $1 ORDER BY seq",
                    )
                    .bind(id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    let offers: Vec<OfferRow> = sqlx::query_as(
                        "SELECT * FROM offers WHERE incident_id = $1 ORDER BY offered_at, id",
                    )
                    .bind(id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    Ok(Some(IncidentDetail {
                        incident,
                        offers: all(offers, OfferRow::into_domain)?,
                        timeline: rows.into_iter().map(TimelineRow::into_domain).collect(),
                        candidates,
                        deliveries: self.deliveries(id).await?,
                    }))
                }

                async fn steward_sees_elder(
                    &self,
                    steward: &StewardId,
                    elder: &ElderId,
                    now: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    // Only while it is theirs to act on: an open incident
                    // assigned to them, a live offer of one, or an open
                    // follow-up (回访) assigned to them (they must know
                    // whom to call and where to go). Once they decline,
                    // the offer expires, the incident closes or the
                    // follow-up is done or handed back, the elder's record
                    // is no longer their business.
                    let n: i64 = sqlx::query_scalar(
                        "SELECT (SELECT COUNT(*) FROM incidents i
                                 WHERE i.elder_id = $1
                                   AND i.status IN ('dispatching', 'acknowledged', 'on_site')
                                   AND (i.steward_id = $2
                                        OR EXISTS (SELECT 1 FROM offers o
                                                   WHERE o.incident_id = i.id AND o.steward_id = $2
                                                     AND o.response IS NULL AND o.expires_at > $3)))
                              + (SELECT COUNT(*) FROM follow_ups f
                                 WHERE f.elder_id = $1 AND f.steward_id = $2 AND f.status = 'open')",
                    )
                    .bind(elder.as_str())
                    .bind(steward.as_str())
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .db()?;
                    Ok(n > 0)
                }

                async fn open_incident(&self, key: &DedupKey) -> StoreResult<Option<Incident>> {
                    let row: Option<IncidentRow> = sqlx::query_as(
                        "SELECT * FROM incidents
                         WHERE dedup_key = $1
                           AND status IN ('dispatching', 'acknowledged', 'on_site')",
                    )
                    .bind(key.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                    row.map(IncidentRow::into_domain).transpose()
                }
            }

            #[async_trait]
            impl $crate::store::deadlines::DeadlineStore for $store {
                // --- deadlines ---

                #[tracing::instrument(skip_all, fields(limit = limit))]
                async fn claim_due(
                    &self,
                    now: DateTime<Utc>,
                    lease: Duration,
                    limit: i64,
                ) -> StoreResult<Vec<Deadline>> {
                    if limit <= 0 {
                        return Ok(Vec::new());
                    }
                    let rows: Vec<DeadlineRow> = sqlx::query_as(concat!(
                        "UPDATE deadlines SET claimed_until = $2
                         WHERE key IN (
                             SELECT key FROM deadlines
                             WHERE due_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1 ",
                        $orphaned,
                        ") ORDER BY due_at LIMIT $3 ",
                        $lock,
                        ")
                         RETURNING key, due_at, effects, claimed_until"
                    ))
                    .bind(now)
                    .bind(now + lease)
                    .bind(limit)
                    .fetch_all(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    let mut due = all(rows, DeadlineRow::into_domain)?;
                    // RETURNING has no order.
                    due.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.key.cmp(&b.key)));
                    Ok(due)
                }

                async fn deadlines(&self) -> StoreResult<Vec<Deadline>> {
                    let rows: Vec<DeadlineRow> = sqlx::query_as(
                        "SELECT key, due_at, effects, claimed_until FROM deadlines ORDER BY due_at, key",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, DeadlineRow::into_domain)
                }
            }

        };
    };
}
pub(crate) use sql_store;

/// The `Invalid` message for a device whose elder does not exist.
pub(crate) fn missing_elder(device: &Device) -> String {
    match &device.elder_id {
        Some(e) => format!("elder {e} does not exist"),
        None => format!("device {} refers to something missing", device.id),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn limits_default_and_cap() {
        assert_eq!(clamp_limit(0), DEFAULT_LIMIT);
        assert_eq!(clamp_limit(-5), DEFAULT_LIMIT);
        assert_eq!(clamp_limit(7), 7);
        assert_eq!(clamp_limit(1_000_000), MAX_LIMIT);
    }

    #[test]
    fn the_newest_heartbeat_wins() {
        let beat = |id: &str, t: &str, pct: u8| Heartbeat {
            device_id: DeviceId::parse(id).unwrap(),
            last_seen: at(t),
            online: true,
            battery_pct: Some(pct),
            rssi_dbm: None,
            fw: None,
        };
        let beats = [
            beat("b", "2026-11-28T16:00:00Z", 1),
            beat("a", "2026-11-28T16:01:00Z", 2),
            beat("a", "2026-11-28T16:00:00Z", 3),
        ];
        let newest: Vec<_> = newest_per_device(&beats)
            .into_iter()
            .map(|b| (b.device_id.as_str(), b.battery_pct))
            .collect();
        assert_eq!(newest, vec![("a", Some(2)), ("b", Some(1))]);
    }
}
