//! The store's side of the monthly report ([`crate::monthly`]): one
//! month's counts per grid, summed by the database (`GROUP BY` the
//! elder's grid), never a month of rows read into memory. What each count
//! means is [`crate::monthly`]'s module documentation; the SQL is written
//! once for both backends in [`super::monthly_sql`].

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use super::StoreResult;

/// The month a report covers, already turned into the store's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthWindow {
    /// The first instant of the month in the site's time, as UTC…
    pub from: DateTime<Utc>,
    /// …and the first instant of the next month.
    pub to: DateTime<Utc>,
    /// The month's first local date (visits are due on local dates)…
    pub first_day: NaiveDate,
    /// …and the next month's.
    pub next_first_day: NaiveDate,
    /// An arrival within this many seconds of the call is in time.
    pub arrive_target_s: u32,
    /// Only the grids of this community (an `areas` row's `community`).
    pub community: Option<String>,
}

/// One grid's counts for the month. `grid` is `""` for incidents and
/// follow-ups whose elder is gone (or never known); `community` and
/// `district` are `""` for a grid without an `areas` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GridCounts {
    pub grid: String,
    pub community: String,
    pub district: String,
    /// Elders registered in the grid now.
    pub elders: i64,
    /// Calls created in the month.
    pub calls: i64,
    /// …acknowledged by a steward at all, within 60 s, within 180 s.
    pub answered: i64,
    pub answered_60s: i64,
    pub answered_180s: i64,
    /// …reached on site at all, and within the arrival target.
    pub arrived: i64,
    pub arrived_in_target: i64,
    /// …resolved, and resolved as a false alarm.
    pub resolved: i64,
    pub false_alarms: i64,
    /// Visits due on a day of the month, and of those done.
    pub visits_planned: i64,
    pub visits_done: i64,
    /// Follow-ups due in the month, and of those done.
    pub follow_ups_due: i64,
    pub follow_ups_done: i64,
    /// Devices on test duty by the month's end, and of those the ones
    /// with a passed test call in the month.
    pub test_devices: i64,
    pub test_devices_passed: i64,
}

/// The monthly report's counts; every [`super::Store`] implements it.
#[async_trait]
pub trait MonthlyStore: Send + Sync {
    /// Every grid with a place (`areas`), elders or anything counted in
    /// the month, by grid; `window.community` keeps only its grids.
    async fn monthly_counts(&self, window: &MonthWindow) -> StoreResult<Vec<GridCounts>>;

    /// The plans of the statements `monthly_counts` runs, one text each
    /// (PostgreSQL: `EXPLAIN (ANALYZE, BUFFERS)`, so they run; SQLite:
    /// `EXPLAIN QUERY PLAN`), for the benchmark's notes.
    async fn explain_monthly(&self, window: &MonthWindow) -> StoreResult<Vec<String>>;
}
