//! [`RetentionStore`](super::retention::RetentionStore)'s SQL, written once
//! for both backends and expanded beside the others in [`super::sqlite`]
//! and [`super::postgres`].
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! retention_sql {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::QueryBuilder;

            use $crate::store::retention::{Prunable, RetentionStore};
            use $crate::store::sql::*;
            use $crate::store::StoreResult;

            impl $store {
                /// `DELETE FROM {table} WHERE {key} IN (…){guard}`, in a
                /// background write turn.
                async fn delete_keys<K>(
                    &self,
                    table: &'static str,
                    key: &'static str,
                    keys: &[K],
                    guard: &'static str,
                ) -> StoreResult<u64>
                where
                    K: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Clone + Send + Sync,
                {
                    if keys.is_empty() {
                        return Ok(0);
                    }
                    let mut q = QueryBuilder::<$db>::new("DELETE FROM ");
                    q.push(table).push(" WHERE ").push(key).push(" IN (");
                    let mut list = q.separated(", ");
                    for k in keys {
                        list.push_bind(k.clone());
                    }
                    q.push(")").push(guard);
                    let done = q
                        .build()
                        .execute(&mut *self.background_write_conn().await.db()?)
                        .await
                        .db()?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl RetentionStore for $store {
                #[tracing::instrument(skip(self), fields(table = what.table()))]
                async fn prune_batch(
                    &self,
                    what: Prunable,
                    before: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<u64> {
                    match what {
                        Prunable::Events => {
                            let keys: Vec<i64> = sqlx::query_scalar(
                                // An open incident keeps its events.
                                "SELECT seq FROM events
                                 WHERE received_at < $1
                                   AND (incident_id IS NULL OR incident_id NOT IN (
                                        SELECT id FROM incidents
                                        WHERE status IN ('dispatching', 'acknowledged', 'on_site')))
                                 ORDER BY received_at LIMIT $2",
                            )
                            .bind(before)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                            self.delete_keys("events", "seq", &keys, "").await
                        }
                        Prunable::Stream => {
                            let keys: Vec<i64> = sqlx::query_scalar(
                                "SELECT seq FROM stream WHERE at < $1 ORDER BY at LIMIT $2",
                            )
                            .bind(before)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                            self.delete_keys("stream", "seq", &keys, "").await
                        }
                        Prunable::Outbox => {
                            let keys: Vec<String> = sqlx::query_scalar(
                                "SELECT id FROM outbox
                                 WHERE state <> 'pending' AND created_at < $1
                                   AND (incident_id IS NULL OR incident_id NOT IN (
                                        SELECT id FROM incidents
                                        WHERE status IN ('dispatching', 'acknowledged', 'on_site')))
                                 ORDER BY created_at LIMIT $2",
                            )
                            .bind(before)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                            // A row retried since it was read is pending
                            // again: keep it.
                            self.delete_keys("outbox", "id", &keys, " AND state <> 'pending'").await
                        }
                        Prunable::ClosedIncidents => {
                            // Never one a steward still points at.
                            let keys: Vec<String> = sqlx::query_scalar(
                                "SELECT id FROM incidents
                                 WHERE status IN ('resolved', 'cancelled') AND updated_at < $1
                                   AND id NOT IN (SELECT incident_id FROM stewards
                                                  WHERE incident_id IS NOT NULL)
                                 ORDER BY updated_at LIMIT $2",
                            )
                            .bind(before)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                            // Its sent notifications first (no foreign
                            // key); timeline and offers cascade.
                            self.delete_keys("outbox", "incident_id", &keys, " AND state <> 'pending'")
                                .await?;
                            self.delete_keys(
                                "incidents",
                                "id",
                                &keys,
                                " AND status IN ('resolved', 'cancelled')",
                            )
                            .await
                        }
                    }
                }
            }
        };
    };
}

pub(crate) use retention_sql;
