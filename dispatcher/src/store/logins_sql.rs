//! [`LoginStore`](super::logins::LoginStore)'s SQL, written once for both
//! backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`].
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! logins_sql {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};

            use $crate::domain::{StewardId, User};
            use $crate::store::logins::{LoginStore, Throttle, UserChange};
            use $crate::store::rows::*;
            use $crate::store::sql::*;
            use $crate::store::{StoreError, StoreResult};

            #[async_trait]
            impl LoginStore for $store {
                async fn throttle(&self, key: &str) -> StoreResult<Option<Throttle>> {
                    let row: Option<(i64, i64, i64)> = sqlx::query_as(
                        "SELECT failures, last_ms, blocked_until_ms FROM login_throttle WHERE key = $1",
                    )
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .db()?;
                    Ok(row.map(|(failures, last_ms, blocked_until_ms)| Throttle {
                        failures,
                        last_ms,
                        blocked_until_ms,
                    }))
                }

                async fn swap_throttle(
                    &self,
                    key: &str,
                    old: Option<Throttle>,
                    new: Throttle,
                ) -> StoreResult<bool> {
                    let mut conn = self.write_conn().await.db()?;
                    let done = match old {
                        None => sqlx::query(
                            "INSERT INTO login_throttle (key, failures, last_ms, blocked_until_ms)
                             VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                        )
                        .bind(key)
                        .bind(new.failures)
                        .bind(new.last_ms)
                        .bind(new.blocked_until_ms)
                        .execute(&mut *conn)
                        .await
                        .db()?,
                        Some(old) => sqlx::query(
                            "UPDATE login_throttle SET failures = $2, last_ms = $3, blocked_until_ms = $4
                             WHERE key = $1 AND failures = $5 AND last_ms = $6 AND blocked_until_ms = $7",
                        )
                        .bind(key)
                        .bind(new.failures)
                        .bind(new.last_ms)
                        .bind(new.blocked_until_ms)
                        .bind(old.failures)
                        .bind(old.last_ms)
                        .bind(old.blocked_until_ms)
                        .execute(&mut *conn)
                        .await
                        .db()?,
                    };
                    Ok(done.rows_affected() == 1)
                }

                async fn clear_throttle(&self, key: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
                        .bind(key)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn insert_known_device(
                    &self,
                    token_hash: &str,
                    username: &str,
                    expires_at: DateTime<Utc>,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO known_devices (token_hash, username, expires_at)
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
                            || "that device token is already in use".to_owned(),
                            || format!("user {username} does not exist"),
                        )
                    })?;
                    Ok(())
                }

                async fn known_device(
                    &self,
                    token_hash: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<String>> {
                    sqlx::query_scalar(
                        "SELECT username FROM known_devices WHERE token_hash = $1 AND expires_at > $2",
                    )
                    .bind(token_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await
                    .db()
                }

                #[tracing::instrument(skip_all, fields(user = %username))]
                async fn change_user(&self, username: &str, change: &UserChange) -> StoreResult<User> {
                    let mut tx = self.begin_write().await.db()?;
                    if let Some(hash) = &change.password_hash {
                        let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE username = $1")
                            .bind(username)
                            .bind(hash)
                            .execute(&mut *tx)
                            .await
                            .db()?;
                        found(done.rows_affected(), || format!("user {username}"))?;
                        sqlx::query("DELETE FROM known_devices WHERE username = $1")
                            .bind(username)
                            .execute(&mut *tx)
                            .await
                            .db()?;
                    }
                    if let Some((role, steward)) = &change.role {
                        let done = sqlx::query(
                            "UPDATE users SET role = $2, steward_id = $3 WHERE username = $1",
                        )
                        .bind(username)
                        .bind(role.as_str())
                        .bind(steward.as_ref().map(StewardId::as_str))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            write_err(
                                e,
                                || format!("user {username} conflicts"),
                                || match steward {
                                    Some(s) => format!("steward {s} does not exist"),
                                    None => format!("user {username} refers to something missing"),
                                },
                            )
                        })?;
                        found(done.rows_affected(), || format!("user {username}"))?;
                    }
                    if let Some(scope) = &change.scope {
                        let done = sqlx::query("UPDATE users SET scope = $2 WHERE username = $1")
                            .bind(username)
                            .bind(scope.as_text())
                            .execute(&mut *tx)
                            .await
                            .db()?;
                        found(done.rows_affected(), || format!("user {username}"))?;
                    }
                    sqlx::query("DELETE FROM sessions WHERE username = $1")
                        .bind(username)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    let row: Option<UserRow> =
                        sqlx::query_as("SELECT * FROM users WHERE username = $1")
                            .bind(username)
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                    let user = row
                        .ok_or_else(|| StoreError::NotFound(format!("user {username}")))?
                        .into_domain()?;
                    tx.commit().await.db()?;
                    Ok(user)
                }

                async fn delete_expired_logins(
                    &self,
                    now: DateTime<Utc>,
                    stale_ms: i64,
                    batch: i64,
                ) -> StoreResult<u64> {
                    let mut deleted = 0;
                    // Housekeeping: ingest's writes go first.
                    let mut conn = self.background_write_conn().await.db()?;
                    deleted += sqlx::query(
                        "DELETE FROM sessions WHERE token_hash IN
                         (SELECT token_hash FROM sessions WHERE expires_at <= $1 LIMIT $2)",
                    )
                    .bind(now)
                    .bind(batch)
                    .execute(&mut *conn)
                    .await
                    .db()?
                    .rows_affected();
                    deleted += sqlx::query(
                        "DELETE FROM known_devices WHERE token_hash IN
                         (SELECT token_hash FROM known_devices WHERE expires_at <= $1 LIMIT $2)",
                    )
                    .bind(now)
                    .bind(batch)
                    .execute(&mut *conn)
                    .await
                    .db()?
                    .rows_affected();
                    deleted += sqlx::query(
                        "DELETE FROM login_throttle WHERE key IN
                         (SELECT key FROM login_throttle
                          WHERE last_ms <= $1 AND blocked_until_ms <= $2 LIMIT $3)",
                    )
                    .bind(stale_ms)
                    .bind(now.timestamp_millis())
                    .bind(batch)
                    .execute(&mut *conn)
                    .await
                    .db()?
                    .rows_affected();
                    Ok(deleted)
                }
            }
        };
    };
}

pub(crate) use logins_sql;
