//! [`CareStore`](super::care::CareStore)'s SQL, written once for both
//! backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`]. Dates (`due_on`) are the site's, as `YYYY-MM-DD`
//! text on both, so they compare as text.
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! care_sql {
    ($store:ident, $db:ty, analyze_visits = $analyze:literal) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, NaiveDate, Utc};
            use sqlx::QueryBuilder;

            use $crate::domain::care::{CarePlan, ListChange, Visit, VisitNote};
            use $crate::domain::{ElderId, StewardId};
            use $crate::store::care::{
                CareStore, CheckinWatch, ElderChange, Finished, GridVisits, ToPlan,
            };
            use $crate::store::rows::{ElderChangeRow, VisitRow, all};
            use $crate::store::sql::*;
            use $crate::store::{ConflictCode, StoreError, StoreResult};

            fn plan_of(elder: &str, care: &str) -> StoreResult<CarePlan> {
                serde_json::from_str(care)
                    .map_err(|e| StoreError::Corrupt(format!("elder {elder}: care: {e}")))
            }

            fn elder_id(id: String) -> StoreResult<ElderId> {
                ElderId::parse(id.clone())
                    .map_err(|e| StoreError::Corrupt(format!("elder {id}: {e}")))
            }

            #[async_trait]
            impl CareStore for $store {
                async fn checkin_watches(&self) -> StoreResult<Vec<CheckinWatch>> {
                    // The plan is JSON text; a plan with a check-in names it.
                    let rows: Vec<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
                        "SELECT e.id, e.care, d.due_at
                         FROM elders e LEFT JOIN deadlines d ON d.key = 'checkin:' || e.id
                         WHERE e.care LIKE '%\"checkin\"%'
                         ORDER BY e.id",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    let mut out = Vec::with_capacity(rows.len());
                    for (id, care, due_at) in rows {
                        let plan = plan_of(&id, &care)?;
                        if plan.checkin.is_some() {
                            out.push(CheckinWatch { elder_id: elder_id(id)?, plan, due_at });
                        }
                    }
                    Ok(out)
                }

                async fn orphan_checkin_deadlines(&self) -> StoreResult<Vec<String>> {
                    sqlx::query_scalar(
                        "SELECT d.key FROM deadlines d
                         WHERE d.key LIKE 'checkin:%'
                           AND NOT EXISTS (SELECT 1 FROM elders e
                                           WHERE d.key = 'checkin:' || e.id
                                             AND e.care LIKE '%\"checkin\"%')",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()
                }

                async fn elders_by_id(&self, ids: &[ElderId]) -> StoreResult<Vec<$crate::domain::Elder>> {
                    let mut out = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(CHUNK) {
                        let ids: Vec<String> = chunk.iter().map(|i| i.as_str().to_owned()).collect();
                        let mut q = QueryBuilder::<$db>::new("SELECT * FROM elders WHERE TRUE");
                        push_in!(q, "id IN (", &ids, ")");
                        let rows: Vec<$crate::store::rows::ElderRow> =
                            q.build_query_as().fetch_all(&self.pool).await.db()?;
                        out.extend(all(rows, $crate::store::rows::ElderRow::into_domain)?);
                    }
                    Ok(out)
                }

                async fn refresh_visit_statistics(&self) -> StoreResult<()> {
                    if !$analyze.is_empty() {
                        sqlx::query($analyze).execute(&self.pool).await.db()?;
                    }
                    Ok(())
                }

                async fn elders_needing_plan(&self) -> StoreResult<Vec<ElderId>> {
                    // An elder opted out (visit_every_days 0) is left out here.
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT e.id FROM elders e
                         WHERE NOT EXISTS (SELECT 1 FROM visits v
                                           WHERE v.elder_id = e.id
                                             AND v.status IN ('planned', 'in_progress'))
                           AND e.care NOT LIKE '%\"visit_every_days\":0,%'
                           AND e.care NOT LIKE '%\"visit_every_days\":0}%'
                         ORDER BY e.id",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    ids.into_iter().map(elder_id).collect()
                }

                async fn elders_to_plan(
                    &self,
                    recent_since: DateTime<Utc>,
                    ids: &[ElderId],
                ) -> StoreResult<Vec<ToPlan>> {
                    if ids.is_empty() {
                        return Ok(Vec::new());
                    }
                    let ids: Vec<String> = ids.iter().map(|i| i.as_str().to_owned()).collect();
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT e.id, e.care, e.steward_id AS paired, e.lives_alone,
                                (SELECT MAX(v.ended_at) FROM visits v
                                 WHERE v.elder_id = e.id AND v.status = 'done') AS last_done_at,
                                EXISTS (SELECT 1 FROM incidents i
                                        WHERE i.elder_id = e.id AND i.created_at >= ",
                    );
                    q.push_bind(recent_since);
                    q.push(
                        "         AND i.kind NOT IN ('battery.low', 'tamper',
                                                     'device.offline', 'visit.overdue'))
                                    AS recent,
                                (SELECT MIN(s.id) FROM stewards s
                                 WHERE s.grid = e.grid AND e.grid <> '') AS steward_id
                         FROM elders e
                         WHERE NOT EXISTS (SELECT 1 FROM visits v
                                           WHERE v.elder_id = e.id
                                             AND v.status IN ('planned', 'in_progress'))",
                    );
                    push_in!(q, "e.id IN (", &ids, ")");
                    q.push(" ORDER BY e.id");
                    type Row = (String, String, Option<String>, bool, Option<DateTime<Utc>>, bool, Option<String>);
                    let rows: Vec<Row> = q.build_query_as().fetch_all(&self.pool).await.db()?;
                    let mut plans = Vec::with_capacity(rows.len());
                    for (id, care, paired, lives_alone, last_done_at, recent_incident, steward) in rows {
                        let mut plan = plan_of(&id, &care)?;
                        plan.steward_id = paired
                            .map(|s| StewardId::parse(s.clone())
                                .map_err(|e| StoreError::Corrupt(format!("elder {id}: steward_id {s}: {e}"))))
                            .transpose()?;
                        plans.push((id, plan, lives_alone, last_done_at, recent_incident, steward));
                    }
                    // The paired stewards who are still stewards, in one read:
                    // a pairing left naming nobody plans for the grid's.
                    let paired: Vec<String> = plans
                        .iter()
                        .filter_map(|p| p.1.steward_id.as_ref().map(|s| s.as_str().to_owned()))
                        .collect();
                    let present: std::collections::HashSet<String> = if paired.is_empty() {
                        Default::default()
                    } else {
                        let mut q = QueryBuilder::<$db>::new("SELECT id FROM stewards WHERE TRUE");
                        push_in!(q, "id IN (", &paired, ")");
                        q.build_query_scalar().fetch_all(&self.pool).await.db()?.into_iter().collect()
                    };
                    let mut out = Vec::with_capacity(plans.len());
                    for (id, plan, lives_alone, last_done_at, recent_incident, grids) in plans {
                        let paired = plan.steward_id.clone().filter(|s| present.contains(s.as_str()));
                        let grids = grids
                            .map(|s| StewardId::parse(s.clone())
                                .map_err(|e| StoreError::Corrupt(format!("steward {s}: {e}"))))
                            .transpose()?;
                        let steward_id = paired.or(grids);
                        out.push(ToPlan {
                            elder_id: elder_id(id)?,
                            plan,
                            lives_alone,
                            recent_incident,
                            last_done_at,
                            steward_id,
                        });
                    }
                    Ok(out)
                }

                #[tracing::instrument(skip_all, fields(visits = visits.len()))]
                async fn insert_visits(&self, visits: &[Visit]) -> StoreResult<usize> {
                    let mut written = 0;
                    for chunk in visits.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO visits (id, elder_id, steward_id, due_on, window_start,
                                                 window_end, status) ",
                        );
                        q.push_values(chunk, |mut row, v| {
                            row.push_bind(v.id.as_str())
                                .push_bind(v.elder_id.as_str())
                                .push_bind(v.steward_id.as_ref().map(|s| s.as_str().to_owned()))
                                .push_bind(v.due_on.to_string())
                                .push_bind(v.window_start)
                                .push_bind(v.window_end)
                                .push_bind(v.status.as_str());
                        });
                        // One pending visit per elder: another instance's
                        // plan for the same elder wins and this one is skipped.
                        q.push(" ON CONFLICT DO NOTHING");
                        let done = q.build().execute(&mut *self.write_conn().await.db()?).await.db()?;
                        written += done.rows_affected() as usize;
                    }
                    Ok(written)
                }

                async fn overdue_visits(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Visit>> {
                    let rows: Vec<VisitRow> = sqlx::query_as(
                        "SELECT * FROM visits
                         WHERE status = 'planned' AND overdue_at IS NULL AND window_end < $1
                         ORDER BY window_end LIMIT $2",
                    )
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, VisitRow::into_domain)
                }

                async fn visit(&self, id: &str) -> StoreResult<Option<Visit>> {
                    let row: Option<VisitRow> = sqlx::query_as("SELECT * FROM visits WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                    row.map(VisitRow::into_domain).transpose()
                }

                async fn visits_of_elder(&self, elder: &ElderId, limit: i64) -> StoreResult<Vec<Visit>> {
                    let rows: Vec<VisitRow> = sqlx::query_as(
                        "SELECT * FROM visits WHERE elder_id = $1 ORDER BY due_on DESC, id LIMIT $2",
                    )
                    .bind(elder.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, VisitRow::into_domain)
                }

                async fn round(&self, steward: &StewardId, grid: &str, day: NaiveDate) -> StoreResult<Vec<Visit>> {
                    // A visit planned before its grid had a steward is the
                    // grid's: whoever walks the grid now has it.
                    let rows: Vec<VisitRow> = sqlx::query_as(
                        "SELECT v.* FROM visits v JOIN elders e ON e.id = v.elder_id
                         WHERE (v.steward_id = $1
                                OR (v.steward_id IS NULL AND e.grid = $3 AND e.grid <> ''))
                           AND v.status IN ('planned', 'in_progress')
                           AND v.due_on <= $2
                         ORDER BY v.due_on, v.id",
                    )
                    .bind(steward.as_str())
                    .bind(day.to_string())
                    .bind(grid)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, VisitRow::into_domain)
                }

                async fn visits_by_grid(
                    &self,
                    day: NaiveDate,
                    now: DateTime<Utc>,
                ) -> StoreResult<Vec<GridVisits>> {
                    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
                        "SELECT e.grid,
                                COUNT(CASE WHEN v.due_on = $1 THEN 1 END),
                                COUNT(CASE WHEN v.due_on = $1 AND v.status = 'in_progress' THEN 1 END),
                                COUNT(CASE WHEN v.due_on = $1 AND v.status = 'done' THEN 1 END),
                                COUNT(CASE WHEN v.status = 'planned' AND v.window_end < $2 THEN 1 END)
                         FROM visits v JOIN elders e ON e.id = v.elder_id
                         WHERE v.due_on = $1 OR (v.status = 'planned' AND v.window_end < $2)
                         GROUP BY e.grid ORDER BY e.grid",
                    )
                    .bind(day.to_string())
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    Ok(rows
                        .into_iter()
                        .map(|(grid, due, in_progress, done, overdue)| GridVisits {
                            grid,
                            due,
                            in_progress,
                            done,
                            overdue,
                        })
                        .collect())
                }

                #[tracing::instrument(skip_all, fields(visit = %id))]
                async fn finish_visit(
                    &self,
                    id: &str,
                    note: &VisitNote,
                    follow_up: Option<&$crate::domain::NewFollowUp>,
                    actor: &str,
                    now: DateTime<Utc>,
                ) -> StoreResult<Finished> {
                    let note_json = to_json("note", note)?;
                    let mut tx = self.begin_write().await.db()?;
                    let row: Option<VisitRow> = sqlx::query_as(
                        "UPDATE visits SET status = 'done', ended_at = $2, done_by = $3, note = $4
                         WHERE id = $1 AND status = 'in_progress'
                         RETURNING *",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(actor)
                    .bind(&note_json)
                    .fetch_optional(&mut *tx)
                    .await
                    .db()?;
                    let Some(row) = row else {
                        let exists: Option<String> = sqlx::query_scalar("SELECT status FROM visits WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                        return Err(match exists {
                            None => StoreError::NotFound(format!("visit {id}")),
                            Some(status) => StoreError::Conflict {
                                code: ConflictCode::VisitNotInProgress,
                                message: format!(
                                    "visit {id} is {status}: check in at the door to begin it, then end it with a note"
                                ),
                            },
                        });
                    };
                    let visit = row.into_domain()?;
                    let mut changes = Vec::new();
                    let lists = [
                        ("conditions", &note.condition_changes),
                        ("medications", &note.medication_changes),
                    ];
                    if lists.iter().any(|(_, c)| !c.is_empty()) {
                        let (conditions, medications): (String, String) = sqlx::query_as(
                            "SELECT conditions, medications FROM elders WHERE id = $1",
                        )
                        .bind(visit.elder_id.as_str())
                        .fetch_one(&mut *tx)
                        .await
                        .db()?;
                        let parse = |field: &str, text: &str| -> StoreResult<Vec<String>> {
                            serde_json::from_str(text).map_err(|e| {
                                StoreError::Corrupt(format!("elder {}: {field}: {e}", visit.elder_id))
                            })
                        };
                        let conditions = note.condition_changes.applied_to(&parse("conditions", &conditions)?);
                        let medications = note.medication_changes.applied_to(&parse("medications", &medications)?);
                        sqlx::query("UPDATE elders SET conditions = $2, medications = $3 WHERE id = $1")
                            .bind(visit.elder_id.as_str())
                            .bind(to_json("conditions", &conditions)?)
                            .bind(to_json("medications", &medications)?)
                            .execute(&mut *tx)
                            .await
                            .db()?;
                        for (field, change) in lists {
                            if change.is_empty() {
                                continue;
                            }
                            sqlx::query(
                                "INSERT INTO elder_changes (elder_id, at, actor, field, added, removed, visit_id)
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(visit.elder_id.as_str())
                            .bind(now)
                            .bind(actor)
                            .bind(field)
                            .bind(to_json("added", &change.add)?)
                            .bind(to_json("removed", &change.remove)?)
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .db()?;
                            changes.push(ElderChange {
                                elder_id: visit.elder_id.clone(),
                                at: now,
                                actor: actor.to_owned(),
                                field: field.to_owned(),
                                change: ListChange::clone(change),
                                visit_id: Some(id.to_owned()),
                            });
                        }
                    }
                    let follow_up = match follow_up {
                        Some(new) => Self::insert_follow_up(&mut tx, new).await?,
                        None => None,
                    };
                    tx.commit().await.db()?;
                    Ok(Finished { visit, changes, follow_up })
                }

                async fn drop_planned_visit(&self, elder: &ElderId) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "DELETE FROM visits
                         WHERE elder_id = $1 AND status = 'planned' AND overdue_at IS NULL",
                    )
                    .bind(elder.as_str())
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn devices_of_elder(&self, elder: &ElderId) -> StoreResult<Vec<$crate::domain::Device>> {
                    let rows: Vec<$crate::store::rows::DeviceRow> =
                        sqlx::query_as("SELECT * FROM devices WHERE elder_id = $1 ORDER BY id")
                            .bind(elder.as_str())
                            .fetch_all(&self.pool)
                            .await
                            .db()?;
                    all(rows, $crate::store::rows::DeviceRow::into_domain)
                }

                async fn elder_changes(&self, elder: &ElderId, limit: i64) -> StoreResult<Vec<ElderChange>> {
                    let rows: Vec<ElderChangeRow> = sqlx::query_as(
                        "SELECT elder_id, at, actor, field, added, removed, visit_id
                         FROM elder_changes WHERE elder_id = $1 ORDER BY at DESC, seq DESC LIMIT $2",
                    )
                    .bind(elder.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, ElderChangeRow::into_domain)
                }
            }
        };
    };
}

pub(crate) use care_sql;
