//! [`MonthlyStore`](super::monthly::MonthlyStore)'s SQL, written once for
//! both backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`]. Five aggregates, each `GROUP BY` the elder's
//! grid over an indexed range of the month (`incidents_created`,
//! `visits_due`, `follow_ups_due`, `device_tests_received`) or over the
//! registry (elders, devices), and the places; merged by grid in Rust: a
//! row per grid, whatever the site's size.
//!
//! `ack` and `arrive` are the backend's seconds from `created_at` to the
//! acknowledgement and to the arrival; `explain` its prefix that asks
//! for a plan (PostgreSQL's with `ANALYZE`: the statements run).
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! monthly_sql {
    ($store:ident, $db:ty, ack = $ack:literal, arrive = $arrive:literal, explain = $explain:literal) => {
        const _: () = {
            use std::collections::BTreeMap;

            use async_trait::async_trait;
            use sqlx::QueryBuilder;

            use $crate::store::monthly::{GridCounts, MonthWindow, MonthlyStore};
            use $crate::store::sql::*;
            use $crate::store::StoreResult;

            /// Keeps only the community's grids (`e` is the elder).
            fn in_community(q: &mut QueryBuilder<$db>, community: &Option<String>) {
                if let Some(c) = community {
                    q.push(" AND e.grid IN (SELECT grid FROM areas WHERE community = ");
                    q.push_bind(c.clone());
                    q.push(")");
                }
            }

            fn at(grids: &mut BTreeMap<String, GridCounts>, grid: String) -> &mut GridCounts {
                grids.entry(grid.clone()).or_insert_with(|| GridCounts { grid, ..Default::default() })
            }

            /// Half a millisecond: a time is "within 60 s" when, to the
            /// millisecond as the response-time report rounds it, it is
            /// at most 60 s (and no floating point decides a tie).
            const HALF_MS: f64 = 0.0005;

            /// The six statements, each prefixed with `explain` ("" to
            /// run them): calls, visits, follow-ups, test calls, elders,
            /// places.
            fn statements(window: &MonthWindow, explain: &str) -> Vec<QueryBuilder<$db>> {
                let mut out = Vec::new();
                let start = |sql: &str| {
                    let mut q = QueryBuilder::<$db>::new(explain.to_owned());
                    q.push(sql);
                    q
                };

                // Calls: an elder's incidents, not a device's own
                // trouble nor an overdue visit's.
                let mut q = start(concat!(
                    "SELECT COALESCE(e.grid, '') AS grid, COUNT(*) AS calls,
                       SUM(CASE WHEN i.acknowledged_at IS NOT NULL THEN 1 ELSE 0 END),
                       SUM(CASE WHEN ", $ack, " <= "));
                q.push_bind(60.0 + HALF_MS);
                q.push(concat!(" THEN 1 ELSE 0 END), SUM(CASE WHEN ", $ack, " <= "));
                q.push_bind(180.0 + HALF_MS);
                q.push(" THEN 1 ELSE 0 END),
                       SUM(CASE WHEN i.on_site_at IS NOT NULL THEN 1 ELSE 0 END),");
                q.push(concat!(" SUM(CASE WHEN ", $arrive, " <= "));
                q.push_bind(f64::from(window.arrive_target_s) + HALF_MS);
                q.push(" THEN 1 ELSE 0 END),
                       SUM(CASE WHEN i.status = 'resolved' THEN 1 ELSE 0 END),
                       SUM(CASE WHEN i.status = 'resolved' AND i.outcome = 'false_alarm' THEN 1 ELSE 0 END)
                     FROM incidents i LEFT JOIN elders e ON e.id = i.elder_id
                     WHERE i.created_at >= ");
                q.push_bind(window.from);
                q.push(" AND i.created_at < ");
                q.push_bind(window.to);
                q.push(" AND i.kind NOT IN ('battery.low', 'tamper', 'device.offline', 'visit.overdue')");
                in_community(&mut q, &window.community);
                q.push(" GROUP BY COALESCE(e.grid, '')");
                out.push(q);

                // Visits due on a local day of the month.
                let mut q = start(
                    "SELECT e.grid, COUNT(*), SUM(CASE WHEN v.status = 'done' THEN 1 ELSE 0 END)
                     FROM visits v JOIN elders e ON e.id = v.elder_id
                     WHERE v.due_on >= ");
                q.push_bind(window.first_day.to_string());
                q.push(" AND v.due_on < ");
                q.push_bind(window.next_first_day.to_string());
                in_community(&mut q, &window.community);
                q.push(" GROUP BY e.grid");
                out.push(q);

                // Follow-ups due in the month.
                let mut q = start(
                    "SELECT COALESCE(e.grid, ''), COUNT(*), SUM(CASE WHEN f.status = 'done' THEN 1 ELSE 0 END)
                     FROM follow_ups f LEFT JOIN elders e ON e.id = f.elder_id
                     WHERE f.due_at >= ");
                q.push_bind(window.from);
                q.push(" AND f.due_at < ");
                q.push_bind(window.to);
                in_community(&mut q, &window.community);
                q.push(" GROUP BY COALESCE(e.grid, '')");
                out.push(q);

                // Devices on test duty (crate::duty::on_duty) by the
                // month's end, and those that passed a test in it: the
                // month's passed tests read once by their time and
                // joined, not looked up device by device.
                let mut q = start(
                    "SELECT e.grid, COUNT(*), COUNT(p.device_id)
                     FROM devices d JOIN elders e ON e.id = d.elder_id
                     LEFT JOIN device_duty u ON u.device_id = d.id
                     LEFT JOIN (SELECT DISTINCT t.device_id FROM device_tests t
                                WHERE t.passed = TRUE AND t.received_at >= ");
                q.push_bind(window.from);
                q.push(" AND t.received_at < ");
                q.push_bind(window.to);
                q.push(") p ON p.device_id = d.id
                     WHERE (d.kind IN ('call_button', 'pendant', 'pull_cord')
                            OR EXISTS (SELECT 1 FROM device_tests t2 WHERE t2.device_id = d.id))
                       AND (u.enrolled_at IS NULL OR u.enrolled_at < ");
                q.push_bind(window.to);
                q.push(")");
                in_community(&mut q, &window.community);
                q.push(" GROUP BY e.grid");
                out.push(q);

                // Elders per grid.
                let mut q = start("SELECT e.grid, COUNT(*) FROM elders e WHERE 1 = 1");
                in_community(&mut q, &window.community);
                q.push(" GROUP BY e.grid");
                out.push(q);

                // Every grid with a place.
                let mut q = start("SELECT grid, community, district FROM areas");
                if let Some(c) = &window.community {
                    q.push(" WHERE community = ");
                    q.push_bind(c.clone());
                }
                out.push(q);
                out
            }

            #[async_trait]
            impl MonthlyStore for $store {
                #[tracing::instrument(skip_all, fields(from = %window.from, community = ?window.community))]
                async fn monthly_counts(&self, window: &MonthWindow) -> StoreResult<Vec<GridCounts>> {
                    let mut grids: BTreeMap<String, GridCounts> = BTreeMap::new();
                    let mut q = statements(window, "").into_iter();
                    let mut next = || q.next().expect("six statements");

                    let rows: Vec<(String, i64, i64, i64, i64, i64, i64, i64, i64)> =
                        next().build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, calls, answered, a60, a180, arrived, in_target, resolved, fa) in rows {
                        let g = at(&mut grids, grid);
                        g.calls = calls;
                        g.answered = answered;
                        g.answered_60s = a60;
                        g.answered_180s = a180;
                        g.arrived = arrived;
                        g.arrived_in_target = in_target;
                        g.resolved = resolved;
                        g.false_alarms = fa;
                    }
                    let rows: Vec<(String, i64, i64)> =
                        next().build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, planned, done) in rows {
                        let g = at(&mut grids, grid);
                        g.visits_planned = planned;
                        g.visits_done = done;
                    }
                    let rows: Vec<(String, i64, i64)> =
                        next().build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, due, done) in rows {
                        let g = at(&mut grids, grid);
                        g.follow_ups_due = due;
                        g.follow_ups_done = done;
                    }
                    let rows: Vec<(String, i64, i64)> =
                        next().build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, devices, passed) in rows {
                        let g = at(&mut grids, grid);
                        g.test_devices = devices;
                        g.test_devices_passed = passed;
                    }
                    let rows: Vec<(String, i64)> =
                        next().build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, elders) in rows {
                        at(&mut grids, grid).elders = elders;
                    }
                    let rows: Vec<(String, String, String)> =
                        next().build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, community, district) in rows {
                        let g = at(&mut grids, grid);
                        g.community = community;
                        g.district = district;
                    }
                    Ok(grids.into_values().collect())
                }

                async fn explain_monthly(&self, window: &MonthWindow) -> StoreResult<Vec<String>> {
                    let mut plans = Vec::new();
                    for mut q in statements(window, $explain) {
                        let rows = q.build().fetch_all(&self.pool).await.db()?;
                        let lines: Vec<String> = rows
                            .iter()
                            .map(|r| {
                                use sqlx::Row;
                                r.try_get::<String, _>(r.len() - 1).unwrap_or_default()
                            })
                            .collect();
                        plans.push(lines.join("\n"));
                    }
                    Ok(plans)
                }
            }
        };
    };
}

pub(crate) use monthly_sql;
