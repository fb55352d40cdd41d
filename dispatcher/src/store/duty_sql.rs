//! [`DutyStore`](super::duty::DutyStore)'s SQL, written once for both
//! backends and expanded beside the others in [`super::sqlite`] and
//! [`super::postgres`].
//!
//! rustfmt leaves macro bodies alone: keep this one formatted by hand.

use chrono::{DateTime, Utc};

use super::duty::StoredTest;
use super::{StoreError, StoreResult};
use crate::domain::{DeviceId, ElderId, EventId};

/// A stored test's columns: event id, received, confirm by, confirmed,
/// passed.
pub(crate) type TestColumns = (
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    bool,
);

pub(crate) fn stored_test(device: &str, row: TestColumns) -> StoreResult<StoredTest> {
    let (event_id, received_at, confirm_by, confirmed_at, passed) = row;
    Ok(StoredTest {
        event_id: EventId::parse(event_id)
            .map_err(|e| StoreError::Corrupt(format!("device_tests of {device}: {e}")))?,
        received_at,
        confirm_by,
        confirmed_at,
        passed,
    })
}

pub(crate) fn device_id(id: String) -> StoreResult<DeviceId> {
    DeviceId::parse(id.clone()).map_err(|e| StoreError::Corrupt(format!("device {id:?}: {e}")))
}

pub(crate) fn elder_id(id: Option<String>) -> StoreResult<Option<ElderId>> {
    id.map(|id| {
        ElderId::parse(id.clone()).map_err(|e| StoreError::Corrupt(format!("elder {id:?}: {e}")))
    })
    .transpose()
}

pub(crate) fn parsed<T: std::str::FromStr<Err = String>>(what: &str, text: &str) -> StoreResult<T> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

macro_rules! duty_sql {
    ($store:ident, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};

            use $crate::domain::DeviceId;
            use $crate::store::duty::{DutyRow, DutyStore, OutcomeCount, StoredTest};
            use $crate::store::duty_sql::*;
            use $crate::store::sql::*;
            use $crate::store::StoreResult;

            /// The roster's columns: device, elder, kind, enrolled, first
            /// heard, last passed, then the latest test's (all NULL without
            /// one).
            type RosterColumns = (
                String,
                Option<String>,
                String,
                Option<DateTime<Utc>>,
                Option<DateTime<Utc>>,
                Option<DateTime<Utc>>,
                Option<String>,
                Option<DateTime<Utc>>,
                Option<DateTime<Utc>>,
                Option<DateTime<Utc>>,
                Option<bool>,
            );

            #[async_trait]
            impl DutyStore for $store {
                #[tracing::instrument(skip_all)]
                async fn enrol_new_devices(&self, now: DateTime<Utc>) -> StoreResult<u64> {
                    let mut conn = self.write_conn().await.db()?;
                    // Tests of a device not on duty are a previous
                    // registration's (deleting a device ends its duty): a
                    // device registered again starts afresh.
                    sqlx::query(
                        "DELETE FROM device_tests
                         WHERE NOT EXISTS (SELECT 1 FROM device_duty u
                                           WHERE u.device_id = device_tests.device_id)",
                    )
                    .execute(&mut *conn)
                    .await
                    .db()?;
                    let done = sqlx::query(
                        "INSERT INTO device_duty (device_id, enrolled_at)
                         SELECT d.id, $1 FROM devices d
                         WHERE NOT EXISTS (SELECT 1 FROM device_duty u WHERE u.device_id = d.id)
                         ON CONFLICT (device_id) DO NOTHING",
                    )
                    .bind(now)
                    .execute(&mut *conn)
                    .await
                    .db()?;
                    Ok(done.rows_affected())
                }

                async fn duty_roster(&self) -> StoreResult<Vec<DutyRow>> {
                    let rows: Vec<RosterColumns> = sqlx::query_as(
                        "SELECT d.id, d.elder_id, d.kind, u.enrolled_at,
                                (SELECT MIN(e.received_at) FROM events e WHERE e.device_id = d.id),
                                (SELECT MAX(p.received_at) FROM device_tests p
                                  WHERE p.device_id = d.id AND p.passed),
                                t.event_id, t.received_at, t.confirm_by, t.confirmed_at, t.passed
                         FROM devices d
                         LEFT JOIN device_duty u ON u.device_id = d.id
                         LEFT JOIN device_tests t ON t.device_id = d.id AND t.event_id = (
                             SELECT l.event_id FROM device_tests l WHERE l.device_id = d.id
                             ORDER BY l.received_at DESC, l.event_id DESC LIMIT 1)
                         ORDER BY d.id",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    rows.into_iter()
                        .map(|(id, elder, kind, enrolled_at, first_heard_at, last_passed_at,
                               event_id, received_at, confirm_by, confirmed_at, passed)| {
                            let last_test = match (event_id, received_at, confirm_by) {
                                (Some(e), Some(r), Some(c)) => Some(stored_test(
                                    &id,
                                    (e, r, c, confirmed_at, passed.unwrap_or(false)),
                                )?),
                                _ => None,
                            };
                            Ok(DutyRow {
                                kind: parsed("device kind", &kind)?,
                                device_id: device_id(id)?,
                                elder_id: elder_id(elder)?,
                                enrolled_at,
                                first_heard_at,
                                last_passed_at,
                                last_test,
                            })
                        })
                        .collect()
                }

                async fn device_tests(&self, device: &DeviceId, limit: i64) -> StoreResult<Vec<StoredTest>> {
                    let rows: Vec<TestColumns> = sqlx::query_as(
                        "SELECT event_id, received_at, confirm_by, confirmed_at, passed
                         FROM device_tests WHERE device_id = $1
                         ORDER BY received_at DESC, event_id DESC LIMIT $2",
                    )
                    .bind(device.as_str())
                    .bind(clamp_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    rows.into_iter().map(|r| stored_test(device.as_str(), r)).collect()
                }

                async fn outcome_counts(&self, since: DateTime<Utc>) -> StoreResult<Vec<OutcomeCount>> {
                    let rows: Vec<(Option<String>, Option<String>, String, String, i64)> = sqlx::query_as(
                        "SELECT elder_id, device_id, kind, outcome, COUNT(*) FROM incidents
                         WHERE status = 'resolved' AND created_at >= $1
                           AND outcome IS NOT NULL AND outcome <> 'cleared'
                         GROUP BY elder_id, device_id, kind, outcome
                         ORDER BY elder_id, device_id, kind, outcome",
                    )
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    let mut out = Vec::with_capacity(rows.len());
                    for (elder, device, kind, outcome, count) in rows {
                        let kind: $crate::domain::IncidentKind = parsed("incident kind", &kind)?;
                        // A device's own trouble is not an alarm about the elder.
                        if kind.is_technical() {
                            continue;
                        }
                        out.push(OutcomeCount {
                            elder_id: elder_id(elder)?,
                            device_id: device.map(device_id).transpose()?,
                            kind,
                            outcome: parsed("outcome", &outcome)?,
                            count,
                        });
                    }
                    Ok(out)
                }
            }
        };
    };
}

pub(crate) use duty_sql;
