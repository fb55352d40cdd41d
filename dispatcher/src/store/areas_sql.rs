//! [`AreaStore`](super::areas::AreaStore)'s SQL, written once for both
//! backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`].
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! areas_sql {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::domain::Area;
            use $crate::store::areas::AreaStore;
            use $crate::store::sql::*;
            use $crate::store::StoreResult;

            #[async_trait]
            impl AreaStore for $store {
                async fn areas(&self) -> StoreResult<Vec<Area>> {
                    let rows: Vec<(String, String, String)> = sqlx::query_as(
                        "SELECT grid, community, district FROM areas
                         ORDER BY district, community, grid",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    Ok(rows
                        .into_iter()
                        .map(|(grid, community, district)| Area { grid, community, district })
                        .collect())
                }

                async fn put_areas(&self, areas: &[Area]) -> StoreResult<usize> {
                    for chunk in areas.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new("INSERT INTO areas (grid, community, district) ");
                        q.push_values(chunk, |mut row, a| {
                            row.push_bind(a.grid.as_str())
                                .push_bind(a.community.as_str())
                                .push_bind(a.district.as_str());
                        });
                        q.push(
                            " ON CONFLICT (grid) DO UPDATE
                              SET community = excluded.community, district = excluded.district",
                        );
                        q.build().execute(&mut *self.write_conn().await.db()?).await.db()?;
                    }
                    Ok(areas.len())
                }

                async fn remove_area(&self, grid: &str) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM areas WHERE grid = $1")
                        .bind(grid)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    found(done.rows_affected(), || format!("grid {grid}"))
                }
            }
        };
    };
}

pub(crate) use areas_sql;
