//! [`FollowUpStore`](super::follow_ups::FollowUpStore)'s SQL, written once
//! for both backends and expanded beside the others in [`super::sqlite`]
//! and [`super::postgres`]. `row_lock` is `"FOR UPDATE"` on PostgreSQL,
//! `""` on SQLite (whose `BEGIN IMMEDIATE` already holds the only write
//! lock).
//!
//! Every change is a compare-and-set that says what it found: a
//! completion `WHERE status = 'open'` (and, for a steward, `AND
//! steward_id = them`), a hand-back the same, a reassignment on the row
//! locked. When it finds nothing, the row is read again in the same
//! transaction to say why (gone, already done, someone else's).
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! follow_ups_sql {
    ($store:ident, $db:ty, row_lock = $row_lock:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::QueryBuilder;

            use $crate::domain::{
                ElderId, FollowUp, FollowUpDetail, FollowUpId, IncidentId,
                NewFollowUp, StewardId,
            };
            use $crate::store::ConflictCode;
            use $crate::store::dispatch_sql::conflict;
            use $crate::store::follow_ups::*;
            use $crate::store::sql::*;
            use $crate::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;

            impl $store {
                /// Writes a follow-up: none when the incident already has
                /// its first, or the one it follows its next.
                pub(crate) async fn insert_follow_up(
                    conn: &mut Conn,
                    new: &NewFollowUp,
                ) -> StoreResult<Option<FollowUp>> {
                    let row: Option<FollowUpRow> = sqlx::query_as(INSERT_FOLLOW_UP)
                        .bind(new.id.as_str())
                        .bind(new.after.incident().map(IncidentId::as_str))
                        .bind(new.after.visit())
                        .bind(new.follows_id.as_ref().map(FollowUpId::as_str))
                        .bind(new.elder_id.as_str())
                        .bind(new.steward_id.as_ref().map(StewardId::as_str))
                        .bind(new.kind.as_str())
                        .bind(new.created_at)
                        .bind(new.due_at)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(|e| {
                            write_err(
                                e,
                                || format!("follow-up {} is taken", new.id),
                                || format!("{} or steward is gone", new.after),
                            )
                        })?;
                    row.map(FollowUpRow::into_domain).transpose()
                }

                /// A line on the timeline of the incident it follows,
                /// written with the change (a visit's follow-up has no
                /// timeline: the elder's notebook shows it).
                async fn follow_up_line(
                    conn: &mut Conn,
                    f: &FollowUp,
                    at: DateTime<Utc>,
                    what: &str,
                    actor: &str,
                ) -> StoreResult<()> {
                    let Some(incident) = &f.incident_id else {
                        return Ok(());
                    };
                    sqlx::query("INSERT INTO timeline (incident_id, at, what, actor) VALUES ($1, $2, $3, $4)")
                        .bind(incident.as_str())
                        .bind(at)
                        .bind(what)
                        .bind(actor)
                        .execute(&mut *conn)
                        .await
                        .db()?;
                    Ok(())
                }

                /// Records who was to go, and why it changed.
                async fn record_reassignment(
                    conn: &mut Conn,
                    id: &FollowUpId,
                    at: DateTime<Utc>,
                    by: &str,
                    from: Option<&StewardId>,
                    to: Option<&StewardId>,
                    reason: &str,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO follow_up_reassignments
                             (follow_up_id, at, by_actor, from_steward, to_steward, reason)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(id.as_str())
                    .bind(at)
                    .bind(by)
                    .bind(from.map(StewardId::as_str))
                    .bind(to.map(StewardId::as_str))
                    .bind(reason)
                    .execute(&mut *conn)
                    .await
                    .db()?;
                    Ok(())
                }

                /// The follow-up, locked for the rest of the transaction.
                async fn lock_follow_up(conn: &mut Conn, id: &FollowUpId) -> StoreResult<Option<FollowUp>> {
                    let row: Option<FollowUpRow> = sqlx::query_as(concat!(
                        "SELECT * FROM follow_ups WHERE id = $1 ",
                        $row_lock
                    ))
                    .bind(id.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                    row.map(FollowUpRow::into_domain).transpose()
                }

                /// Why a compare-and-set on an open follow-up (a steward's
                /// own, when `steward`) found nothing.
                async fn why_not(
                    conn: &mut Conn,
                    id: &FollowUpId,
                    steward: Option<&StewardId>,
                ) -> StoreError {
                    match Self::lock_follow_up(conn, id).await {
                        Err(e) => e,
                        Ok(None) => StoreError::NotFound(format!("follow-up {id}")),
                        Ok(Some(f)) if f.status == $crate::domain::FollowUpStatus::Done => conflict(
                            ConflictCode::NotOpen,
                            format!("follow-up {id} is already done"),
                        ),
                        Ok(Some(_)) => conflict(
                            ConflictCode::NotAssigned,
                            format!(
                                "follow-up {id} is not assigned to {}",
                                steward.map_or("you", StewardId::as_str)
                            ),
                        ),
                    }
                }

                /// The rows a one-parameter query names.
                async fn list_follow_ups(
                    &self,
                    sql: &'static str,
                    bind: &str,
                ) -> StoreResult<Vec<FollowUp>> {
                    let rows: Vec<FollowUpRow> = sqlx::query_as(sql)
                        .bind(bind)
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                    rows.into_iter().map(FollowUpRow::into_domain).collect()
                }
            }

            #[async_trait]
            impl FollowUpStore for $store {
                async fn follow_up(&self, id: &FollowUpId) -> StoreResult<Option<FollowUpDetail>> {
                    let row: Option<FollowUpRow> =
                        sqlx::query_as("SELECT * FROM follow_ups WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&self.pool)
                            .await
                            .db()?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let history: Vec<ReassignmentRow> = sqlx::query_as(
                        "SELECT at, by_actor, from_steward, to_steward, reason
                         FROM follow_up_reassignments WHERE follow_up_id = $1 ORDER BY seq",
                    )
                    .bind(id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    Ok(Some(FollowUpDetail {
                        follow_up: row.into_domain()?,
                        reassignments: history
                            .into_iter()
                            .map(ReassignmentRow::into_domain)
                            .collect::<StoreResult<_>>()?,
                    }))
                }

                async fn follow_ups(&self, filter: &FollowUpFilter) -> StoreResult<Vec<FollowUp>> {
                    let mut q = QueryBuilder::<$db>::new("SELECT * FROM follow_ups WHERE TRUE");
                    if let Some(status) = filter.status {
                        q.push(" AND status = ").push_bind(status.as_str());
                    }
                    if let Some(before) = filter.due_before {
                        q.push(" AND status = 'open' AND due_at < ").push_bind(before);
                    }
                    if let Some(steward) = &filter.steward_id {
                        q.push(" AND steward_id = ").push_bind(steward.as_str().to_owned());
                    }
                    if filter.unassigned {
                        q.push(" AND steward_id IS NULL");
                    }
                    if let Some(elder) = &filter.elder_id {
                        q.push(" AND elder_id = ").push_bind(elder.as_str().to_owned());
                    }
                    if let Some(grids) = &filter.grids {
                        push_in!(q, "elder_id IN (SELECT id FROM elders WHERE grid IN (", grids, "))");
                    }
                    q.push(" ORDER BY due_at, id LIMIT ")
                        .push_bind(clamp_limit(filter.limit))
                        .push(" OFFSET ")
                        .push_bind(filter.offset.max(0));
                    let rows: Vec<FollowUpRow> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    rows.into_iter().map(FollowUpRow::into_domain).collect()
                }

                async fn follow_ups_of_elder(&self, elder: &ElderId) -> StoreResult<Vec<FollowUp>> {
                    self.list_follow_ups(
                        "SELECT * FROM follow_ups WHERE elder_id = $1 ORDER BY created_at DESC, id",
                        elder.as_str(),
                    )
                        .await
                }

                async fn follow_ups_of_incident(
                    &self,
                    incident: &IncidentId,
                ) -> StoreResult<Vec<FollowUp>> {
                    self.list_follow_ups(
                        "SELECT * FROM follow_ups WHERE incident_id = $1 ORDER BY created_at, id",
                        incident.as_str(),
                    )
                        .await
                }

                #[tracing::instrument(skip_all, fields(follow_up = %id))]
                async fn complete_follow_up(
                    &self,
                    id: &FollowUpId,
                    c: &Completion<'_>,
                ) -> StoreResult<Completed> {
                    let mut tx = self.begin_write().await.db()?;
                    let sql = if c.as_steward.is_some() {
                        "UPDATE follow_ups
                         SET status = 'done', outcome = $2, note = $3, done_at = $4, done_by = $5
                         WHERE id = $1 AND status = 'open' AND steward_id = $6
                         RETURNING *"
                    } else {
                        "UPDATE follow_ups
                         SET status = 'done', outcome = $2, note = $3, done_at = $4, done_by = $5
                         WHERE id = $1 AND status = 'open'
                         RETURNING *"
                    };
                    let mut q = sqlx::query_as::<_, FollowUpRow>(sql)
                        .bind(id.as_str())
                        .bind(c.outcome.as_str())
                        .bind(c.note)
                        .bind(c.now)
                        .bind(c.by);
                    if let Some(s) = c.as_steward {
                        q = q.bind(s.as_str());
                    }
                    let row = q.fetch_optional(&mut *tx).await.db()?;
                    let Some(row) = row else {
                        let why = Self::why_not(&mut tx, id, c.as_steward).await;
                        tx.rollback().await.db()?;
                        return Err(why);
                    };
                    let done = row.into_domain()?;
                    Self::follow_up_line(&mut tx, &done, c.now, &done_words(&done), c.by).await?;
                    let next = match c.next {
                        Some((kind, due_at)) => {
                            let after = done.follows_from().ok_or_else(|| {
                                StoreError::Corrupt(format!("follow-up {id} follows nothing"))
                            })?;
                            let new = NewFollowUp {
                                id: FollowUpId::generate(),
                                after,
                                follows_id: Some(done.id.clone()),
                                elder_id: done.elder_id.clone(),
                                steward_id: done.steward_id.clone(),
                                kind,
                                created_at: c.now,
                                due_at,
                            };
                            let next = Self::insert_follow_up(&mut tx, &new).await?;
                            if next.is_some() {
                                Self::follow_up_line(
                                    &mut tx,
                                    &done,
                                    c.now,
                                    &due_words(kind, due_at),
                                    c.by,
                                )
                                .await?;
                            }
                            next
                        }
                        None => None,
                    };
                    tx.commit().await.db()?;
                    Ok(Completed { done, next })
                }

                #[tracing::instrument(skip_all, fields(follow_up = %id, steward = %steward))]
                async fn hand_back_follow_up(
                    &self,
                    id: &FollowUpId,
                    steward: &StewardId,
                    reason: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<FollowUp> {
                    let mut tx = self.begin_write().await.db()?;
                    let row: Option<FollowUpRow> = sqlx::query_as(
                        "UPDATE follow_ups SET steward_id = NULL
                         WHERE id = $1 AND status = 'open' AND steward_id = $2
                         RETURNING *",
                    )
                    .bind(id.as_str())
                    .bind(steward.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    let Some(row) = row else {
                        let why = Self::why_not(&mut tx, id, Some(steward)).await;
                        tx.rollback().await.db()?;
                        return Err(why);
                    };
                    let f = row.into_domain()?;
                    let by = format!("steward:{steward}");
                    Self::record_reassignment(&mut tx, id, now, &by, Some(steward), None, reason).await?;
                    let words = format!("follow-up {} handed back by {steward}: {reason}", f.kind);
                    Self::follow_up_line(&mut tx, &f, now, &words, &by).await?;
                    tx.commit().await.db()?;
                    Ok(f)
                }

                #[tracing::instrument(skip_all, fields(follow_up = %id, to = %to))]
                async fn reassign_follow_up(
                    &self,
                    id: &FollowUpId,
                    to: &StewardId,
                    by: &str,
                    reason: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<FollowUp> {
                    let mut tx = self.begin_write().await.db()?;
                    let Some(current) = Self::lock_follow_up(&mut tx, id).await? else {
                        tx.rollback().await.db()?;
                        return Err(StoreError::NotFound(format!("follow-up {id}")));
                    };
                    if current.status == $crate::domain::FollowUpStatus::Done {
                        tx.rollback().await.db()?;
                        return Err(conflict(
                            ConflictCode::NotOpen,
                            format!("follow-up {id} is already done"),
                        ));
                    }
                    let exists: Option<String> =
                        sqlx::query_scalar("SELECT id FROM stewards WHERE id = $1")
                            .bind(to.as_str())
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                    if exists.is_none() {
                        tx.rollback().await.db()?;
                        return Err(StoreError::Invalid(format!("steward_id: there is no steward {to}")));
                    }
                    if current.steward_id.as_ref() == Some(to) {
                        tx.rollback().await.db()?;
                        return Ok(current);
                    }
                    let row: Option<FollowUpRow> = sqlx::query_as(
                        "UPDATE follow_ups SET steward_id = $2
                         WHERE id = $1 AND status = 'open'
                         RETURNING *",
                    )
                    .bind(id.as_str())
                    .bind(to.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    let Some(row) = row else {
                        let why = Self::why_not(&mut tx, id, None).await;
                        tx.rollback().await.db()?;
                        return Err(why);
                    };
                    let f = row.into_domain()?;
                    let from = current.steward_id.as_ref();
                    Self::record_reassignment(&mut tx, id, now, by, from, Some(to), reason).await?;
                    let words = format!(
                        "follow-up {} reassigned from {} to {to}: {reason}",
                        f.kind,
                        from.map_or("nobody", StewardId::as_str)
                    );
                    Self::follow_up_line(&mut tx, &f, now, &words, by).await?;
                    tx.commit().await.db()?;
                    Ok(f)
                }
            }
        };
    };
}

pub(crate) use follow_ups_sql;
