//! [`MonthlyStore`](super::monthly::MonthlyStore)'s SQL, written once for
//! both backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`]. Five aggregates, each `GROUP BY` the elder's
//! grid over an indexed range of the month (`incidents_created`,
//! `visits_due`, `follow_ups_due`, the devices by their elder), merged by
//! grid in Rust: a few hundred rows, whatever the site's size.
//!
//! `$elapsed` is the backend's seconds between two timestamps, written
//! with `{a}` and `{b}` for the later and the earlier column.
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

macro_rules! monthly_sql {
    ($store:ident, $db:ty, ack = $ack:literal, arrive = $arrive:literal) => {
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

            #[async_trait]
            impl MonthlyStore for $store {
                #[tracing::instrument(skip_all, fields(from = %window.from, community = ?window.community))]
                async fn monthly_counts(&self, window: &MonthWindow) -> StoreResult<Vec<GridCounts>> {
                    let mut grids: BTreeMap<String, GridCounts> = BTreeMap::new();

                    // Calls: an elder's incidents, not a device's own
                    // trouble nor an overdue visit's.
                    let mut q = QueryBuilder::<$db>::new(concat!(
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
                    let rows: Vec<(String, i64, i64, i64, i64, i64, i64, i64, i64)> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
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

                    // Visits due on a local day of the month.
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT e.grid, COUNT(*), SUM(CASE WHEN v.status = 'done' THEN 1 ELSE 0 END)
                         FROM visits v JOIN elders e ON e.id = v.elder_id
                         WHERE v.due_on >= ");
                    q.push_bind(window.first_day.to_string());
                    q.push(" AND v.due_on < ");
                    q.push_bind(window.next_first_day.to_string());
                    in_community(&mut q, &window.community);
                    q.push(" GROUP BY e.grid");
                    let rows: Vec<(String, i64, i64)> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, planned, done) in rows {
                        let g = at(&mut grids, grid);
                        g.visits_planned = planned;
                        g.visits_done = done;
                    }

                    // Follow-ups due in the month.
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT COALESCE(e.grid, ''), COUNT(*), SUM(CASE WHEN f.status = 'done' THEN 1 ELSE 0 END)
                         FROM follow_ups f LEFT JOIN elders e ON e.id = f.elder_id
                         WHERE f.due_at >= ");
                    q.push_bind(window.from);
                    q.push(" AND f.due_at < ");
                    q.push_bind(window.to);
                    in_community(&mut q, &window.community);
                    q.push(" GROUP BY COALESCE(e.grid, '')");
                    let rows: Vec<(String, i64, i64)> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, due, done) in rows {
                        let g = at(&mut grids, grid);
                        g.follow_ups_due = due;
                        g.follow_ups_done = done;
                    }

                    // Devices on test duty (crate::duty::on_duty) by the
                    // month's end, and those that passed a test in it.
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT e.grid, COUNT(*), SUM(CASE WHEN EXISTS (
                             SELECT 1 FROM device_tests t WHERE t.device_id = d.id AND t.passed = TRUE
                               AND t.received_at >= ");
                    q.push_bind(window.from);
                    q.push(" AND t.received_at < ");
                    q.push_bind(window.to);
                    q.push(") THEN 1 ELSE 0 END)
                         FROM devices d JOIN elders e ON e.id = d.elder_id
                         LEFT JOIN device_duty u ON u.device_id = d.id
                         WHERE (d.kind IN ('call_button', 'pendant', 'pull_cord')
                                OR EXISTS (SELECT 1 FROM device_tests t2 WHERE t2.device_id = d.id))
                           AND (u.enrolled_at IS NULL OR u.enrolled_at < ");
                    q.push_bind(window.to);
                    q.push(")");
                    in_community(&mut q, &window.community);
                    q.push(" GROUP BY e.grid");
                    let rows: Vec<(String, i64, i64)> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, devices, passed) in rows {
                        let g = at(&mut grids, grid);
                        g.test_devices = devices;
                        g.test_devices_passed = passed;
                    }

                    // Elders per grid, and every grid with a place.
                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT e.grid, COUNT(*) FROM elders e WHERE 1 = 1");
                    in_community(&mut q, &window.community);
                    q.push(" GROUP BY e.grid");
                    let rows: Vec<(String, i64)> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, elders) in rows {
                        at(&mut grids, grid).elders = elders;
                    }
                    let mut q = QueryBuilder::<$db>::new("SELECT grid, community, district FROM areas");
                    if let Some(c) = &window.community {
                        q.push(" WHERE community = ");
                        q.push_bind(c.clone());
                    }
                    let rows: Vec<(String, String, String)> =
                        q.build_query_as().fetch_all(&self.pool).await.db()?;
                    for (grid, community, district) in rows {
                        let g = at(&mut grids, grid);
                        g.community = community;
                        g.district = district;
                    }
                    Ok(grids.into_values().collect())
                }
            }
        };
    };
}

pub(crate) use monthly_sql;
