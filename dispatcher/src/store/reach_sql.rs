//! [`ReachStore`](super::reach::ReachStore)'s SQL, written once for both
//! backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`]. Statements only: what to send and when is
//! [`crate::notify`]'s.
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! reach_sql {
    ($store:ident, $db:ty, row_lock = $row_lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};

            use $crate::domain::{Lang, NewSubscription, Offer, PushSubscription, StewardId};
            use $crate::store::dispatch_sql::conflict;
            use $crate::store::notices::{Notices, NewOutbox};
            use $crate::store::reach::ReachStore;
            use $crate::store::ConflictCode;
            use $crate::store::rows::*;
            use $crate::store::sql::*;
            use $crate::store::{StoreError, StoreResult};

            fn subscription_id() -> String {
                format!("sub-{}", uuid::Uuid::new_v4().simple())
            }

            #[async_trait]
            impl ReachStore for $store {
                async fn server_key(
                    &self,
                    name: &str,
                    make: fn() -> String,
                    now: DateTime<Utc>,
                ) -> StoreResult<String> {
                    let stored: Option<String> =
                        sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                            .bind(name)
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    if let Some(value) = stored {
                        return Ok(value);
                    }
                    sqlx::query(
                        "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3)
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(make())
                    .bind(now)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    // Whoever stored first, everyone uses theirs.
                    sqlx::query_scalar("SELECT value FROM server_keys WHERE name = $1")
                        .bind(name)
                        .fetch_one(&self.pool)
                        .await
                        .db()
                }

                #[tracing::instrument(skip_all, fields(steward = %steward))]
                async fn save_subscription(
                    &self,
                    steward: &StewardId,
                    sub: &NewSubscription,
                    lang: Lang,
                    max: u32,
                    now: DateTime<Utc>,
                ) -> StoreResult<(PushSubscription, bool)> {
                    let mut tx = self.begin_write().await.db()?;
                    // The steward's row, locked: two phones registering at
                    // once cannot both slip under the limit.
                    let found: Option<String> = sqlx::query_scalar(concat!(
                        "SELECT id FROM stewards WHERE id = $1 ",
                        $row_lock
                    ))
                    .bind(steward.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    if found.is_none() {
                        return Err(StoreError::NotFound(format!("steward {steward}")));
                    }
                    let others: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM push_subscriptions WHERE steward_id = $1 AND endpoint <> $2",
                    )
                    .bind(steward.as_str())
                    .bind(sub.endpoint.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .db()?;
                    if others >= i64::from(max) {
                        return Err(conflict(
                            ConflictCode::TooManySubscriptions,
                            format!(
                                "steward {steward} already has {others} phones registered (at most {max}); \
                                 remove one with DELETE /api/v1/push/subscriptions/{{id}}"
                            ),
                        ));
                    }
                    let existing: Option<(String, String, String)> = sqlx::query_as(
                        "SELECT id, steward_id, auth FROM push_subscriptions WHERE endpoint = $1",
                    )
                    .bind(sub.endpoint.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    // A phone moves to another steward (a shared phone,
                    // logged in as someone else) only with its own secret:
                    // knowing an endpoint is not owning the phone.
                    if let Some((_, owner, auth)) = &existing
                        && owner != steward.as_str()
                        && auth != &sub.auth
                    {
                        return Err(conflict(
                            ConflictCode::SubscriptionTaken,
                            "this push endpoint is another steward's phone; subscribe again in this browser".into(),
                        ));
                    }
                    let existing = existing.map(|(id, _, _)| id);
                    let created = existing.is_none();
                    let row: SubscriptionRow = sqlx::query_as(
                        "INSERT INTO push_subscriptions
                             (id, steward_id, endpoint, p256dh, auth, expiration_time, lang, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (endpoint) DO UPDATE
                         SET steward_id = excluded.steward_id, p256dh = excluded.p256dh,
                             auth = excluded.auth, expiration_time = excluded.expiration_time,
                             lang = excluded.lang, last_ok = NULL, last_error = NULL
                         RETURNING *",
                    )
                    .bind(existing.unwrap_or_else(subscription_id))
                    .bind(steward.as_str())
                    .bind(sub.endpoint.as_str())
                    .bind(sub.p256dh.as_str())
                    .bind(sub.auth.as_str())
                    .bind(sub.expiration_time)
                    .bind(lang.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .db()?;
                    tx.commit().await.db()?;
                    Ok((row.into_domain()?, created))
                }

                async fn subscriptions_of(&self, steward: &StewardId) -> StoreResult<Vec<PushSubscription>> {
                    let rows: Vec<SubscriptionRow> = sqlx::query_as(
                        "SELECT * FROM push_subscriptions WHERE steward_id = $1 ORDER BY created_at, id",
                    )
                    .bind(steward.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, SubscriptionRow::into_domain)
                }

                async fn all_subscriptions(&self) -> StoreResult<Vec<PushSubscription>> {
                    let rows: Vec<SubscriptionRow> =
                        sqlx::query_as("SELECT * FROM push_subscriptions ORDER BY steward_id, created_at, id")
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                    all(rows, SubscriptionRow::into_domain)
                }

                async fn subscription_by_endpoint(
                    &self,
                    endpoint: &str,
                ) -> StoreResult<Option<PushSubscription>> {
                    let row: Option<SubscriptionRow> =
                        sqlx::query_as("SELECT * FROM push_subscriptions WHERE endpoint = $1")
                            .bind(endpoint)
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    row.map(SubscriptionRow::into_domain).transpose()
                }

                async fn renew_subscription(
                    &self,
                    id: &str,
                    sub: &NewSubscription,
                    _now: DateTime<Utc>,
                ) -> StoreResult<PushSubscription> {
                    let row: Option<SubscriptionRow> = sqlx::query_as(
                        "UPDATE push_subscriptions
                         SET endpoint = $2, p256dh = $3, auth = $4, expiration_time = $5,
                             last_ok = NULL, last_error = NULL
                         WHERE id = $1
                         RETURNING *",
                    )
                    .bind(id)
                    .bind(sub.endpoint.as_str())
                    .bind(sub.p256dh.as_str())
                    .bind(sub.auth.as_str())
                    .bind(sub.expiration_time)
                    .fetch_optional(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    row.ok_or_else(|| StoreError::NotFound(format!("push subscription {id}")))?
                        .into_domain()
                }

                async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                        .bind(id)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn forget_subscription(&self, id: &str, endpoint: &str) -> StoreResult<bool> {
                    let done = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1 AND endpoint = $2")
                        .bind(id)
                        .bind(endpoint)
                        .execute(&mut *self.background_write_conn().await.db()?)
                        .await
                        .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn reached_by(&self, offer_id: &str, channels: &[&str]) -> StoreResult<bool> {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT COUNT(*) FROM outbox WHERE state = 'delivered' AND offer_id = ",
                    );
                    q.push_bind(offer_id).push(" AND channel IN (");
                    let mut list = q.separated(", ");
                    for c in channels {
                        list.push_bind(*c);
                    }
                    q.push(")");
                    let n: i64 = q.build_query_scalar().fetch_one(&self.pool).await.db()?;
                    Ok(n > 0)
                }

                async fn record_push(
                    &self,
                    id: &str,
                    endpoint: &str,
                    error: Option<&str>,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE push_subscriptions SET last_push_at = $3, last_ok = $4, last_error = $5
                         WHERE id = $1 AND endpoint = $2",
                    )
                    .bind(id)
                    .bind(endpoint)
                    .bind(now)
                    .bind(error.is_none())
                    .bind(error)
                    .execute(&mut *self.background_write_conn().await.db()?)
                    .await
                    .db()?;
                    Ok(())
                }

                async fn offer(&self, id: &str) -> StoreResult<Option<Offer>> {
                    let row: Option<OfferRow> = sqlx::query_as("SELECT * FROM offers WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                    row.map(OfferRow::into_domain).transpose()
                }

                async fn last_offer_of(&self, steward: &StewardId) -> StoreResult<Option<Offer>> {
                    let row: Option<OfferRow> = sqlx::query_as(
                        "SELECT * FROM offers WHERE steward_id = $1 ORDER BY offered_at DESC, id DESC LIMIT 1",
                    )
                    .bind(steward.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                    row.map(OfferRow::into_domain).transpose()
                }

                async fn use_link(&self, offer_id: &str, now: DateTime<Utc>) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE offers SET link_used_at = $2 WHERE id = $1 AND link_used_at IS NULL",
                    )
                    .bind(offer_id)
                    .bind(now)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    Ok(done.rows_affected() == 1)
                }

                async fn queue_outbox(&self, rows: Vec<NewOutbox>) -> StoreResult<()> {
                    if rows.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.begin_write().await.db()?;
                    let pending = Pending {
                        notices: Notices { outbox: rows, ..Notices::default() },
                        ..Pending::default()
                    };
                    Self::flush(&mut tx, pending).await?;
                    tx.commit().await.db()?;
                    Ok(())
                }
            }
        };
    };
}
pub(crate) use reach_sql;
