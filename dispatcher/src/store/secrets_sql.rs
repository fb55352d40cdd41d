//! [`SecretStore`](super::secrets::SecretStore)'s SQL, written once for
//! both backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`].
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! secrets_sql {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::QueryBuilder;

            use $crate::domain::DeviceId;
            use $crate::store::secrets::SecretStore;
            use $crate::store::sql::*;
            use $crate::store::{StoreError, StoreResult};

            fn device_ids(ids: Vec<String>) -> StoreResult<Vec<DeviceId>> {
                ids.into_iter()
                    .map(|id| {
                        DeviceId::parse(id)
                            .map_err(|e| StoreError::Corrupt(format!("device_secrets: {e}")))
                    })
                    .collect()
            }

            #[async_trait]
            impl SecretStore for $store {
                #[tracing::instrument(skip_all, fields(device = %device))]
                async fn set_device_secret(
                    &self,
                    device: &DeviceId,
                    hash: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    // Through a SELECT of the device: an unknown one
                    // writes no row and is NotFound, not a broken key.
                    let done = sqlx::query(
                        "INSERT INTO device_secrets (device_id, secret_hash, changed_at)
                         SELECT id, $2, $3 FROM devices WHERE id = $1
                         ON CONFLICT (device_id) DO UPDATE
                         SET secret_hash = excluded.secret_hash, changed_at = excluded.changed_at",
                    )
                    .bind(device.as_str())
                    .bind(hash)
                    .bind(now)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    found(done.rows_affected(), || format!("device {device}"))
                }

                #[tracing::instrument(skip_all, fields(devices = secrets.len()))]
                async fn set_device_secrets(
                    &self,
                    secrets: &[(DeviceId, String)],
                    now: DateTime<Utc>,
                ) -> StoreResult<usize> {
                    for chunk in secrets.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO device_secrets (device_id, secret_hash, changed_at) ",
                        );
                        q.push_values(chunk, |mut row, (id, hash)| {
                            row.push_bind(id.as_str()).push_bind(hash.as_str()).push_bind(now);
                        });
                        q.push(
                            " ON CONFLICT (device_id) DO UPDATE
                              SET secret_hash = excluded.secret_hash, changed_at = excluded.changed_at",
                        );
                        q.build().execute(&mut *self.write_conn().await.db()?).await.map_err(|e| {
                            write_err(
                                e,
                                || "a device secret is taken".into(),
                                || "a secret names a device that does not exist".into(),
                            )
                        })?;
                    }
                    Ok(secrets.len())
                }

                #[tracing::instrument(skip_all, fields(device = %device))]
                async fn revoke_device_secret(
                    &self,
                    device: &DeviceId,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    let done = sqlx::query(
                        "INSERT INTO device_secrets (device_id, secret_hash, changed_at)
                         SELECT id, NULL, $2 FROM devices WHERE id = $1
                         ON CONFLICT (device_id) DO UPDATE
                         SET secret_hash = NULL, changed_at = excluded.changed_at",
                    )
                    .bind(device.as_str())
                    .bind(now)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    found(done.rows_affected(), || format!("device {device}"))
                }

                async fn device_secret(&self, device: &DeviceId) -> StoreResult<Option<String>> {
                    let hash: Option<Option<String>> = sqlx::query_scalar(
                        "SELECT secret_hash FROM device_secrets WHERE device_id = $1",
                    )
                    .bind(device.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                    Ok(hash.flatten())
                }

                async fn device_secrets_changed(
                    &self,
                    since: DateTime<Utc>,
                ) -> StoreResult<Vec<(DeviceId, Option<String>)>> {
                    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
                        "SELECT device_id, secret_hash FROM device_secrets WHERE changed_at >= $1",
                    )
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    let (ids, hashes): (Vec<String>, Vec<Option<String>>) = rows.into_iter().unzip();
                    Ok(device_ids(ids)?.into_iter().zip(hashes).collect())
                }

                async fn devices_without_secret(&self) -> StoreResult<Vec<DeviceId>> {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT d.id FROM devices d
                         LEFT JOIN device_secrets s ON s.device_id = d.id
                         WHERE s.secret_hash IS NULL ORDER BY d.id",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    device_ids(ids)
                }
            }
        };
    };
}

pub(crate) use secrets_sql;
