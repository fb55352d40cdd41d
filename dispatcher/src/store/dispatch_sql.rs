//! Dispatch's SQL, written once for both backends: the macro
//! [`dispatch_sql!`] implements [`DispatchStore`](super::dispatch::DispatchStore)
//! and the one transaction dispatch's transitions and ingest's batches run
//! in ([`DispatchTx`](super::dispatch_tx::DispatchTx),
//! [`IngestTx`](super::ingest::IngestTx)), and is expanded beside
//! [`sql_store!`](super::sql::sql_store) in [`super::sqlite`] and
//! [`super::postgres`]. It holds statements only: what happens when is
//! [`crate::dispatch::lifecycle`]'s.
//!
//! What the statements promise the transitions:
//! 1. Locking: an incident row is locked when read (`FOR UPDATE` on
//!    PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the only write
//!    lock), so the checks that follow read what the write will change.
//!    Incidents are locked first and stewards after, several incidents in
//!    id order, so two transactions never wait on each other in a circle.
//! 2. Compare-and-set writes (`… WHERE status = 'dispatching'`,
//!    `… WHERE status = 'available' AND on_duty`, `… WHERE response IS
//!    NULL`) that say what they found: a belt to the lock's braces, and the
//!    only guard for stewards, whose claim never waits (`SKIP LOCKED`).
//! 3. The timeline lines and notices ([`super::notices`]) a transition
//!    queues are written with the change, just before the commit
//!    ([`Pending`](super::sql::Pending)).
//!
//! The backend passes what differs:
//! - `row_lock`: `"FOR UPDATE"` or `""`, appended to the incident read;
//! - `skip_locked`: `"FOR UPDATE SKIP LOCKED"` or `""`, for rows claimed by
//!   the timer loop (an incident another instance is changing is skipped
//!   this tick, not waited for);
//! - `steward_claim`: an extra condition on the steward claim that skips a
//!   steward row another transaction holds (PostgreSQL), so two incidents
//!   claiming overlapping stewards in different orders never deadlock;
//!   `""` on SQLite.
//!
//! The backend's struct also provides `lock_stream(conn)`, taken just
//! before stream rows are inserted: on PostgreSQL a transaction-scoped
//! advisory lock, so stream rows commit in `seq` order and a reader that
//! saw `seq` N can never later find a row below N (`Last-Event-ID` stays
//! exact); on SQLite nothing (writers are serialised).

use chrono::{DateTime, Utc};

use super::ConflictCode;
use super::StoreError;
use super::notices::WithdrawReason;
use crate::domain::lifecycle;
use crate::domain::{Incident, OfferResponse, StewardId};

/// Which live offers of an incident a statement ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    All,
    /// All but this steward's (accept: the others are withdrawn).
    Except(&'a StewardId),
    Only(&'a StewardId),
    /// Those past their expiry at this time.
    ExpiredBy(DateTime<Utc>),
}

/// A refusal the store finds itself (a compare-and-set that lost), said
/// as the lifecycle's refusals are.
pub(crate) fn conflict(code: ConflictCode, detail: String) -> StoreError {
    lifecycle::Refusal { code, detail }.into()
}

pub(crate) fn not_open(incident: &Incident) -> StoreError {
    lifecycle::not_open(incident).into()
}

/// The timeline's words for an offer that ended.
pub(crate) fn offer_end_words(
    steward: &StewardId,
    response: OfferResponse,
    reason: WithdrawReason,
) -> String {
    match response {
        OfferResponse::Declined => format!("declined by {steward}"),
        OfferResponse::Expired => format!("offer to {steward} expired"),
        OfferResponse::Accepted => format!("accepted by {steward}"),
        OfferResponse::Withdrawn => {
            let why = match reason {
                WithdrawReason::Taken => "another steward accepted",
                WithdrawReason::Cancelled => "incident cancelled",
                WithdrawReason::Resolved => "incident resolved",
                WithdrawReason::Reassigned => "a supervisor assigned the incident",
                WithdrawReason::OffDuty => "steward went off duty",
                WithdrawReason::Expired => "expired",
                WithdrawReason::Declined => "declined",
            };
            format!("offer to {steward} withdrawn: {why}")
        }
    }
}

/// Implements [`DispatchStore`](crate::store::dispatch::DispatchStore) for
/// `$store` (see the module doc for the parameters), the transaction
/// (`open_tx`, which `sql_store!`'s `begin_ingest` opens too), and
/// `flush`, which the store's other writers share.
///
/// rustfmt leaves macro bodies alone: keep this one formatted by hand.
macro_rules! dispatch_sql {
    (
        $store:ident,
        $db:ty,
        row_lock = $row_lock:literal,
        skip_locked = $skip_locked:literal,
        steward_claim = $steward_claim:literal,
        orphaned = $orphaned:expr,
        write_tx = $write_tx:ty
    ) => {
        const _: () = {
            use std::collections::{BTreeSet, HashMap};

            use async_trait::async_trait;
            use chrono::{DateTime, Duration, Utc};
            use sqlx::QueryBuilder;

            use $crate::domain::{
                CloseNote, CloseReason, Delivery, Elder, ElderId, Incident, IncidentId, IncidentState,
                Offer, OfferResponse, OfferView, Outcome, Steward, StewardId,
            };
            use $crate::rules::RuleBook;
            use $crate::store::ConflictCode;
            use $crate::store::outbox::OutboxStore;
            use $crate::store::stream_log::StreamLog;
            use $crate::domain::DispatchTurn;
            use $crate::store::dispatch::{
                Actor, Channel, DeliveryOutcome, DispatchStore, OutboxItem, StreamEvent,
            };
            use $crate::store::dispatch_sql::*;
            use $crate::store::dispatch_tx::{BusyFrom, Committed, DispatchState, DispatchTx, NewIncident, StewardHold};
            use $crate::store::ingest::{IngestTx, Registry};
            use $crate::store::{Deadline, EventAction, IncomingEvent};
            use $crate::rules::Effect;
            use $crate::store::notices::{Notices, WithdrawReason};
            use $crate::store::rows::*;
            use $crate::store::sql::*;
            use $crate::store::{StoreError, StoreResult};

            type Conn = <$db as sqlx::Database>::Connection;

            impl $store {
                // --- reading and locking ---

                /// The incident, locked for the rest of the transaction.
                async fn lock_incident(
                    conn: &mut Conn,
                    id: &str,
                ) -> StoreResult<Option<(Incident, DispatchState)>> {
                    let row: Option<IncidentRow> = sqlx::query_as(concat!(
                        "SELECT * FROM incidents WHERE id = $1 ",
                        $row_lock
                    ))
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                    row.map(IncidentRow::into_parts).transpose()
                }

                /// The incident, locked, unless another transaction holds
                /// it (the timer loop moves on and comes back next tick).
                async fn claim_incident(
                    conn: &mut Conn,
                    id: &str,
                ) -> StoreResult<Option<(Incident, DispatchState)>> {
                    let row: Option<IncidentRow> = sqlx::query_as(concat!(
                        "SELECT * FROM incidents WHERE id = $1 ",
                        $skip_locked
                    ))
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                    row.map(IncidentRow::into_parts).transpose()
                }

                /// The open incident under a dedup key, locked:
                /// `unreached_only` for an elder's cancel, which closes it
                /// only while nobody is with them yet.
                pub(crate) async fn lock_by_key(
                    conn: &mut Conn,
                    key: &str,
                    unreached_only: bool,
                ) -> StoreResult<Option<(Incident, DispatchState)>> {
                    let row: Option<IncidentRow> = if unreached_only {
                        sqlx::query_as(concat!(
                            "SELECT * FROM incidents
                             WHERE dedup_key = $1 AND status IN ('dispatching', 'acknowledged') ",
                            $row_lock
                        ))
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?
                    } else {
                        sqlx::query_as(concat!(
                            "SELECT * FROM incidents
                             WHERE dedup_key = $1
                               AND status IN ('dispatching', 'acknowledged', 'on_site') ",
                            $row_lock
                        ))
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?
                    };
                    row.map(IncidentRow::into_parts).transpose()
                }

                async fn load_elder(conn: &mut Conn, id: &ElderId) -> StoreResult<Option<Elder>> {
                    let row: Option<ElderRow> = sqlx::query_as("SELECT * FROM elders WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?;
                    row.map(ElderRow::into_domain).transpose()
                }

                /// What a planner needs of an incident's turn: its elder and
                /// who was offered it before.
                async fn turn_of(conn: &mut Conn, incident: Incident) -> StoreResult<DispatchTurn> {
                    let elder = match &incident.elder_id {
                        Some(id) => $store::load_elder(&mut *conn, id).await?,
                        None => None,
                    };
                    let offered: Vec<(String, Option<String>)> = sqlx::query_as(
                        "SELECT steward_id, response FROM offers
                         WHERE incident_id = $1 ORDER BY offered_at, id",
                    )
                    .bind(incident.id.as_str())
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
                    let live_offers = offered.iter().filter(|(_, response)| response.is_none()).count();
                    let already_offered = offered
                        .into_iter()
                        .map(|(s, _)| {
                            StewardId::parse(s.clone()).map_err(|e| {
                                StoreError::Corrupt(format!("offer of {}: steward {s:?}: {e}", incident.id))
                            })
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok(DispatchTurn { incident, elder, already_offered, live_offers })
                }







                // --- dispatch turns ---

                /// Moves a due turn's `next_dispatch_at` a lease ahead
                /// (compare-and-set): the incident, if it was due.
                async fn lease_turn(
                    conn: &mut Conn,
                    incident: &IncidentId,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<IncidentRow>> {
                    sqlx::query_as(
                        "UPDATE incidents SET next_dispatch_at = $3
                         WHERE id = $1 AND status = 'dispatching'
                           AND next_dispatch_at IS NOT NULL AND next_dispatch_at <= $2
                         RETURNING *",
                    )
                    .bind(incident.as_str())
                    .bind(now)
                    .bind(now + super::dispatch::DISPATCH_LEASE)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()
                }


                // --- writing ---

                /// Writes the incident's changed fields, compare-and-set on
                /// the status it had when locked.
                async fn save(
                    conn: &mut Conn,
                    from: IncidentState,
                    i: &Incident,
                    d: &DispatchState,
                ) -> StoreResult<Incident> {
                    let row: Option<IncidentRow> = sqlx::query_as(
                        "UPDATE incidents
                         SET status = $3, updated_at = $4, acknowledged_at = $5, on_site_at = $6,
                             resolved_at = $7, steward_id = $8, escalation_level = $9,
                             outcome = $10, notes = $11, next_dispatch_at = $12,
                             escalate_at = $13, failed_offers = $14, candidates = $15
                         WHERE id = $1 AND status = $2
                         RETURNING *",
                    )
                    .bind(i.id.as_str())
                    .bind(from.as_str())
                    .bind(i.status.as_str())
                    .bind(i.updated_at)
                    .bind(i.acknowledged_at)
                    .bind(i.on_site_at)
                    .bind(i.resolved_at)
                    .bind(i.steward_id.as_ref().map(StewardId::as_str))
                    .bind(i.escalation_level)
                    .bind(i.outcome.map(Outcome::as_str))
                    .bind(i.notes.as_deref())
                    .bind(d.next_dispatch_at)
                    .bind(d.escalate_at)
                    .bind(d.failed_offers)
                    .bind(d.candidates.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                    match row {
                        Some(row) => row.into_domain(),
                        None => Err(conflict(
                            ConflictCode::NotOpen,
                            format!("incident {} is no longer {from}; try again", i.id),
                        )),
                    }
                }




                /// Writes a transaction's timeline lines, outbox rows and
                /// stream rows, a statement per kind and chunk. Stream
                /// rows go last, after the backend's stream lock, which is
                /// then held only until the commit that follows.
                /// Schedules and unschedules, one statement each.
                async fn write_deadlines(
                    conn: &mut Conn,
                    deadlines: DeadlineWrites,
                ) -> StoreResult<()> {
                    let (due, gone): (Vec<_>, Vec<_>) =
                        deadlines.into_iter().partition(|(_, d)| d.is_some());
                    for chunk in gone.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new("DELETE FROM deadlines WHERE key IN (");
                        let mut list = q.separated(", ");
                        for (key, _) in chunk {
                            list.push_bind(key.as_str());
                        }
                        q.push(")");
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    let due: Vec<_> =
                        due.into_iter().filter_map(|(k, d)| d.map(|d| (k, d))).collect();
                    for chunk in due.chunks(CHUNK) {
                        let mut q =
                            QueryBuilder::<$db>::new("INSERT INTO deadlines (key, due_at, effects) ");
                        q.push_values(chunk, |mut row, (key, (due_at, effects))| {
                            row.push_bind(key.as_str())
                                .push_bind(*due_at)
                                .push_bind(effects.as_str());
                        });
                        q.push(
                            " ON CONFLICT (key) DO UPDATE
                              SET due_at = excluded.due_at, effects = excluded.effects,
                                  claimed_until = NULL",
                        );
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    Ok(())
                }

                pub(crate) async fn flush(conn: &mut Conn, pending: Pending) -> StoreResult<()> {
                    let Pending { timeline, notices, deadlines } = pending;
                    Self::write_deadlines(&mut *conn, deadlines).await?;
                    for chunk in timeline.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO timeline (incident_id, at, what, actor) ",
                        );
                        q.push_values(chunk, |mut row, t| {
                            row.push_bind(t.incident_id.as_str())
                                .push_bind(t.at)
                                .push_bind(t.what.as_str())
                                .push_bind(t.actor.as_str());
                        });
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    let outbox = notices
                        .outbox
                        .iter()
                        .map(|o| Ok((o, to_json("outbox payload", &o.payload)?)))
                        .collect::<StoreResult<Vec<_>>>()?;
                    for chunk in outbox.chunks(CHUNK) {
                        let mut q = QueryBuilder::<$db>::new(
                            "INSERT INTO outbox (id, incident_id, channel, target, event, payload,
                                                 created_at, due_at, attempts, state, offer_id, steward_id) ",
                        );
                        q.push_values(chunk, |mut row, (o, payload)| {
                            row.push_bind(o.id.as_str())
                                .push_bind(o.incident_id.as_deref())
                                .push_bind(channel_text(o.channel))
                                .push_bind(o.target.as_str())
                                .push_bind(o.event.as_str())
                                .push_bind(payload.as_str())
                                .push_bind(o.created_at)
                                .push_bind(o.due_at)
                                .push_bind(0_i32)
                                .push_bind("pending")
                                .push_bind(o.offer_id.as_deref())
                                .push_bind(o.steward_id.as_deref());
                        });
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    if notices.stream.is_empty() {
                        return Ok(());
                    }
                    let stream = notices
                        .stream
                        .iter()
                        .map(|s| Ok((s, s.audience.as_text(), to_json("stream data", &s.data)?)))
                        .collect::<StoreResult<Vec<_>>>()?;
                    $store::lock_stream(&mut *conn).await.db()?;
                    for chunk in stream.chunks(CHUNK) {
                        let mut q =
                            QueryBuilder::<$db>::new("INSERT INTO stream (at, audience, event, data) ");
                        q.push_values(chunk, |mut row, (s, audience, data)| {
                            row.push_bind(s.at)
                                .push_bind(audience.as_str())
                                .push_bind(s.event.as_str())
                                .push_bind(data.as_str());
                        });
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    Ok(())
                }

            }

            /// Dispatch's transaction on this backend: the write
            /// transaction and what it will write just before it commits.
            struct Tx<'s> {
                tx: $write_tx,
                pending: Pending,
                due_now: Vec<IncidentId>,
                /// For the registry copy a batch reads through.
                store: &'s $store,
            }

            impl $store {
                /// The incidents a due-time query names (`$1` the time,
                /// `$2` the limit), for the timers to walk.
                async fn incidents_due(
                    &self,
                    sql: &'static str,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<Vec<IncidentId>> {
                    let ids: Vec<String> = sqlx::query_scalar(sql)
                        .bind(now)
                        .bind(clamp_limit(limit))
                        .fetch_all(&self.pool)
                        .await
                        .db()?;
                    incident_ids(ids)
                }

                /// Opens the transaction dispatch and ingest run in.
                async fn open_tx(&self) -> StoreResult<Box<dyn IngestTx + '_>> {
                    let tx = self.begin_write().await.db()?;
                    Ok(Box::new(Tx { tx, pending: Pending::default(), due_now: Vec::new(), store: self }))
                }
            }

            #[async_trait]
            impl IngestTx for Tx<'_> {
                async fn registry_for(&mut self, batch: &[IncomingEvent]) -> StoreResult<Registry> {
                    self.store.registry_for(&mut self.tx, batch).await
                }

                async fn insert_events(
                    &mut self,
                    batch: &[IncomingEvent],
                    first: &[bool],
                    registry: &Registry,
                ) -> StoreResult<HashMap<(String, String), i64>> {
                    $store::insert_events(&mut self.tx, batch, first, registry).await
                }

                async fn record_outcomes(
                    &mut self,
                    outcomes: &[(i64, EventAction, Option<String>)],
                ) -> StoreResult<()> {
                    $store::record_outcomes(&mut self.tx, outcomes).await
                }
            }

            #[async_trait]
            impl DispatchTx for Tx<'_> {
                async fn lock(&mut self, id: &IncidentId) -> StoreResult<Option<(Incident, DispatchState)>> {
                    $store::lock_incident(&mut self.tx, id.as_str()).await
                }

                async fn lock_unless_held(
                    &mut self,
                    id: &IncidentId,
                ) -> StoreResult<Option<(Incident, DispatchState)>> {
                    $store::claim_incident(&mut self.tx, id.as_str()).await
                }

                async fn steward_hold(&mut self, id: &StewardId, lock: bool) -> StoreResult<StewardHold> {
                    let row: Option<StewardHold> = if lock {
                        sqlx::query_as(concat!(
                            "SELECT status, on_duty, incident_id FROM stewards WHERE id = $1 ",
                            $row_lock
                        ))
                        .bind(id.as_str())
                        .fetch_optional(&mut *self.tx)
                        .await
                        .db()?
                    } else {
                        sqlx::query_as("SELECT status, on_duty, incident_id FROM stewards WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&mut *self.tx)
                            .await
                            .db()?
                    };
                    row.ok_or_else(|| StoreError::NotFound(format!("steward {id}")))
                }

                async fn offer_of(
                    &mut self,
                    incident: &IncidentId,
                    steward: &StewardId,
                ) -> StoreResult<Option<Offer>> {
                    let row: Option<OfferRow> = sqlx::query_as(
                        "SELECT * FROM offers WHERE incident_id = $1 AND steward_id = $2
                         ORDER BY offered_at DESC, id DESC LIMIT 1",
                    )
                    .bind(incident.as_str())
                    .bind(steward.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                    row.map(OfferRow::into_domain).transpose()
                }

                async fn live_count(&mut self, incident: &IncidentId) -> StoreResult<i64> {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM offers WHERE incident_id = $1 AND response IS NULL",
                    )
                    .bind(incident.as_str())
                    .fetch_one(&mut *self.tx)
                    .await
                    .db()
                }

                async fn live_offer_incidents(
                    &mut self,
                    steward: &StewardId,
                ) -> StoreResult<BTreeSet<IncidentId>> {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT incident_id FROM offers WHERE steward_id = $1 AND response IS NULL",
                    )
                    .bind(steward.as_str())
                    .fetch_all(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(incident_ids(ids)?.into_iter().collect())
                }

                async fn elder_for_hooks(
                    &mut self,
                    incident: &Incident,
                    rules: &RuleBook,
                ) -> StoreResult<Option<Elder>> {
                    let Some(id) = &incident.elder_id else { return Ok(None) };
                    if rules.notify().webhooks.is_empty() {
                        return Ok(None);
                    }
                    match $store::load_elder(&mut self.tx, id).await {
                        Err(StoreError::Corrupt(e)) => {
                            tracing::error!(error = %e, "elder row unreadable; webhooks go without the elder");
                            Ok(None)
                        }
                        other => other,
                    }
                }

                async fn elder_name(&mut self, incident: &Incident) -> Option<String> {
                    let id = incident.elder_id.as_ref()?;
                    $store::load_elder(&mut self.tx, id).await.ok().flatten().map(|e| e.name)
                }

                async fn take_turn(
                    &mut self,
                    incident: &IncidentId,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<(DispatchTurn, DispatchState)>> {
                    let Some(row) = $store::lease_turn(&mut self.tx, incident, now).await? else {
                        return Ok(None);
                    };
                    let (incident, d) = row.into_parts()?;
                    let turn = $store::turn_of(&mut self.tx, incident).await?;
                    Ok(Some((turn, d)))
                }

                async fn claim_steward(
                    &mut self,
                    steward: &StewardId,
                    incident: &IncidentId,
                ) -> StoreResult<Option<Steward>> {
                    let claimed: Option<StewardRow> = sqlx::query_as(concat!(
                        "UPDATE stewards SET status = 'offered', incident_id = $2
                         WHERE id = $1 AND status = 'available' AND on_duty ",
                        $steward_claim,
                        " RETURNING *"
                    ))
                    .bind(steward.as_str())
                    .bind(incident.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                    claimed.map(StewardRow::into_domain).transpose()
                }

                async fn unclaim_steward(&mut self, steward: &StewardId, incident: &IncidentId) -> StoreResult<()> {
                    sqlx::query(
                        "UPDATE stewards SET status = 'available', incident_id = NULL
                         WHERE id = $1 AND incident_id = $2",
                    )
                    .bind(steward.as_str())
                    .bind(incident.as_str())
                    .execute(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(())
                }

                async fn write_offer(
                    &mut self,
                    incident: &IncidentId,
                    steward: &StewardId,
                    expires_at: DateTime<Utc>,
                    distance_m: f64,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<Offer>> {
                    let offer: Option<OfferRow> = sqlx::query_as(
                        "INSERT INTO offers (id, incident_id, steward_id, offered_at, expires_at,
                                             response, responded_at, distance_m)
                         VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)
                         ON CONFLICT (steward_id) WHERE response IS NULL DO NOTHING
                         RETURNING *",
                    )
                    .bind(format!("off-{}", uuid::Uuid::new_v4().simple()))
                    .bind(incident.as_str())
                    .bind(steward.as_str())
                    .bind(now)
                    .bind(expires_at)
                    .bind(distance_m)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                    offer.map(OfferRow::into_domain).transpose()
                }

                async fn raise(
                    &mut self,
                    new: &NewIncident<'_>,
                ) -> StoreResult<(Incident, DispatchState, bool)> {
                    let new_id = IncidentId::generate();
                    let row: IncidentRow = sqlx::query_as(
                        "INSERT INTO incidents (id, dedup_key, elder_id, device_id, kind, priority,
                                                status, created_at, updated_at, event_count,
                                                last_event_at, summary, next_dispatch_at,
                                                escalate_at)
                         VALUES ($1, $2, $3, $4, $5, $6, 'dispatching', $7, $7, 1, $7, $8, $9, $10)
                         ON CONFLICT (dedup_key)
                             WHERE status IN ('dispatching', 'acknowledged', 'on_site')
                         DO UPDATE SET
                             event_count = incidents.event_count + 1,
                             last_event_at =
                                 CASE WHEN excluded.last_event_at > incidents.last_event_at
                                      THEN excluded.last_event_at
                                      ELSE incidents.last_event_at END,
                             updated_at = excluded.updated_at
                         RETURNING *",
                    )
                    .bind(new_id.as_str())
                    .bind(new.key)
                    .bind(new.elder_id.map(ElderId::as_str))
                    .bind(new.device_id.map(|d| d.as_str()))
                    .bind(new.kind.as_str())
                    .bind(new.priority.as_str())
                    .bind(new.at)
                    .bind(new.summary)
                    .bind(new.next_dispatch_at)
                    .bind(new.escalate_at)
                    .fetch_one(&mut *self.tx)
                    .await
                    .db()?;
                    let (incident, d) = row.into_parts()?;
                    // The id we generated came back only if the row is new.
                    let is_new = incident.id == new_id;
                    Ok((incident, d, is_new))
                }

                async fn lock_open_by_key(
                    &mut self,
                    key: &str,
                    unreached_only: bool,
                ) -> StoreResult<Option<(Incident, DispatchState)>> {
                    $store::lock_by_key(&mut self.tx, key, unreached_only).await
                }

                fn schedule(&mut self, key: &str, due: Option<(DateTime<Utc>, String)>) {
                    self.pending.deadlines.insert(key.to_owned(), due);
                }

                async fn record_test_call(
                    &mut self,
                    device: &$crate::domain::DeviceId,
                    event_id: &$crate::domain::EventId,
                    confirm_by: DateTime<Utc>,
                    now: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    // Through a SELECT of the device: one deleted since the
                    // batch read the registry writes nothing, and fails
                    // nothing.
                    let done = sqlx::query(
                        "INSERT INTO device_tests (device_id, event_id, received_at, confirm_by)
                         SELECT id, $2, $3, $4 FROM devices WHERE id = $1
                         ON CONFLICT (device_id, event_id) DO NOTHING",
                    )
                    .bind(device.as_str())
                    .bind(event_id.as_str())
                    .bind(now)
                    .bind(confirm_by)
                    .execute(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(done.rows_affected() == 1)
                }

                async fn confirm_test(
                    &mut self,
                    device: &$crate::domain::DeviceId,
                    event_id: &$crate::domain::EventId,
                    now: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE device_tests SET confirmed_at = $3, passed = (confirm_by >= $3)
                         WHERE device_id = $1 AND event_id = $2 AND confirmed_at IS NULL",
                    )
                    .bind(device.as_str())
                    .bind(event_id.as_str())
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(done.rows_affected() == 1)
                }

                async fn take_deadline(&mut self, deadline: &Deadline) -> StoreResult<Option<Vec<Effect>>> {
                    let row: Option<DeadlineRow> = sqlx::query_as(
                        "DELETE FROM deadlines
                         WHERE key = $1 AND due_at = $2 AND claimed_until IS NOT DISTINCT FROM $3
                         RETURNING key, due_at, effects, claimed_until",
                    )
                    .bind(&deadline.key)
                    .bind(deadline.due_at)
                    .bind(deadline.claimed_until)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(row.map(DeadlineRow::into_domain).transpose()?.map(|d| d.effects))
                }

                async fn start_visit(
                    &mut self,
                    elder: &ElderId,
                    how: $crate::domain::care::StartedHow,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<String>> {
                    sqlx::query_scalar(
                        "UPDATE visits SET status = 'in_progress', started_at = $2, started_how = $3
                         WHERE elder_id = $1 AND status = 'planned'
                         RETURNING id",
                    )
                    .bind(elder.as_str())
                    .bind(now)
                    .bind(how.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()
                }

                async fn claim_overdue_visit(&mut self, visit: &str, now: DateTime<Utc>) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE visits SET overdue_at = $2
                         WHERE id = $1 AND status = 'planned' AND overdue_at IS NULL",
                    )
                    .bind(visit)
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(done.rows_affected() == 1)
                }

                async fn link_visit_incident(&mut self, visit: &str, incident: &IncidentId) -> StoreResult<()> {
                    sqlx::query("UPDATE visits SET incident_id = $2 WHERE id = $1")
                        .bind(visit)
                        .bind(incident.as_str())
                        .execute(&mut *self.tx)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn take_offer(&mut self, offer: &Offer, now: DateTime<Utc>) -> StoreResult<bool> {
                    let taken = sqlx::query(
                        "UPDATE offers SET response = 'accepted', responded_at = $2
                         WHERE id = $1 AND response IS NULL AND expires_at > $2",
                    )
                    .bind(offer.id.as_str())
                    .bind(now)
                    .execute(&mut *self.tx)
                    .await
                    .db()?;
                    Ok(taken.rows_affected() == 1)
                }

                async fn make_busy(
                    &mut self,
                    steward: &StewardId,
                    incident: &IncidentId,
                    from: BusyFrom,
                ) -> StoreResult<Option<Steward>> {
                    let sql = match from {
                        BusyFrom::Offered => {
                            "UPDATE stewards SET status = 'busy', incident_id = $2
                             WHERE id = $1 AND status = 'offered' AND incident_id = $2
                             RETURNING *"
                        }
                        BusyFrom::Available => {
                            "UPDATE stewards SET status = 'busy', incident_id = $2
                             WHERE id = $1 AND status = 'available' AND on_duty
                             RETURNING *"
                        }
                    };
                    let row: Option<StewardRow> = sqlx::query_as(sql)
                        .bind(steward.as_str())
                        .bind(incident.as_str())
                        .fetch_optional(&mut *self.tx)
                        .await
                        .db()?;
                    row.map(StewardRow::into_domain).transpose()
                }

                async fn release_assigned(
                    &mut self,
                    steward: &StewardId,
                    incident: &IncidentId,
                ) -> StoreResult<Option<Steward>> {
                    let row: Option<StewardRow> = sqlx::query_as(
                        "UPDATE stewards
                         SET status = CASE WHEN on_duty THEN 'available' ELSE 'off_duty' END,
                             incident_id = NULL
                         WHERE id = $1 AND incident_id = $2
                         RETURNING *",
                    )
                    .bind(steward.as_str())
                    .bind(incident.as_str())
                    .fetch_optional(&mut *self.tx)
                    .await
                    .db()?;
                    row.map(StewardRow::into_domain).transpose()
                }

                async fn end_offers(
                    &mut self,
                    incident: &IncidentId,
                    which: Which<'_>,
                    response: OfferResponse,
                    reason: WithdrawReason,
                    quiet: Option<&StewardId>,
                    actor: &Actor,
                    now: DateTime<Utc>,
                ) -> StoreResult<Vec<Offer>> {
                    let mut q = QueryBuilder::<$db>::new("UPDATE offers SET response = ");
                    q.push_bind(response.as_str())
                        .push(", responded_at = ")
                        .push_bind(now)
                        .push(" WHERE incident_id = ")
                        .push_bind(incident.as_str())
                        .push(" AND response IS NULL");
                    match which {
                        Which::All => {}
                        Which::Except(s) => {
                            q.push(" AND steward_id <> ").push_bind(s.as_str());
                        }
                        Which::Only(s) => {
                            q.push(" AND steward_id = ").push_bind(s.as_str());
                        }
                        Which::ExpiredBy(t) => {
                            q.push(" AND expires_at <= ").push_bind(t);
                        }
                    }
                    q.push(" RETURNING *");
                    let rows: Vec<OfferRow> = q.build_query_as().fetch_all(&mut *self.tx).await.db()?;
                    let mut offers = all(rows, OfferRow::into_domain)?;
                    if offers.is_empty() {
                        return Ok(offers);
                    }
                    offers.sort_by(|a, b| a.steward_id.cmp(&b.steward_id));

                    let mut q = QueryBuilder::<$db>::new(
                        "UPDATE stewards
                         SET status = CASE WHEN on_duty THEN 'available' ELSE 'off_duty' END,
                             incident_id = NULL
                         WHERE status = 'offered' AND incident_id = ",
                    );
                    q.push_bind(incident.as_str()).push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for o in &offers {
                        list.push_bind(o.steward_id.as_str());
                    }
                    q.push(") RETURNING *");
                    let rows: Vec<StewardRow> = q.build_query_as().fetch_all(&mut *self.tx).await.db()?;
                    let mut released = all(rows, StewardRow::into_domain)?;
                    released.sort_by(|a, b| a.id.cmp(&b.id));

                    for o in &offers {
                        self.pending.line(incident, now, offer_end_words(&o.steward_id, response, reason), actor);
                        if quiet != Some(&o.steward_id) {
                            self.pending.notices.withdrawn(&o.steward_id, incident, reason, now);
                        }
                    }
                    for s in &released {
                        self.pending.notices.steward(s, now);
                    }
                    self.stop_reaching(&offers, reason.close_reason(), quiet, now).await?;
                    Ok(offers)
                }

                async fn stop_reaching(
                    &mut self,
                    offers: &[Offer],
                    reason: CloseReason,
                    quiet: Option<&StewardId>,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    if offers.is_empty() {
                        return Ok(());
                    }
                    let mut q = QueryBuilder::<$db>::new("UPDATE outbox SET state = 'cancelled', last_error = ");
                    q.push_bind(format!("not needed: offer {}", reason.as_str()))
                        .push(" WHERE state = 'pending' AND (claimed_until IS NULL OR claimed_until < ")
                        .push_bind(now)
                        .push(") AND offer_id IN (");
                    let mut list = q.separated(", ");
                    for o in offers {
                        list.push_bind(o.id.as_str());
                    }
                    q.push(")");
                    q.build().execute(&mut *self.tx).await.db()?;

                    let mut q = QueryBuilder::<$db>::new(
                        "SELECT offer_id, payload FROM outbox
                         WHERE channel = 'push' AND event IN ('offer', 'offer.repeat')
                           AND (state = 'delivered' OR (state = 'pending' AND claimed_until >= ",
                    );
                    q.push_bind(now).push(")) AND offer_id IN (");
                    let mut list = q.separated(", ");
                    for o in offers {
                        list.push_bind(o.id.as_str());
                    }
                    q.push(") ORDER BY id");
                    let shown: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *self.tx).await.db()?;
                    for o in offers.iter().filter(|o| quiet != Some(&o.steward_id)) {
                        let Some((_, payload)) = shown.iter().find(|(id, _)| *id == o.id) else {
                            continue;
                        };
                        let elder_name = serde_json::from_str::<OfferView>(payload)
                            .ok()
                            .and_then(|v| v.elder_name);
                        self.pending.notices.close(
                            &CloseNote {
                                incident_id: o.incident_id.clone(),
                                offer_id: o.id.clone(),
                                steward_id: o.steward_id.clone(),
                                reason,
                                elder_name,
                            },
                            now,
                        );
                    }
                    Ok(())
                }

                async fn save(
                    &mut self,
                    from: IncidentState,
                    i: &Incident,
                    d: &DispatchState,
                ) -> StoreResult<Incident> {
                    let saved = $store::save(&mut self.tx, from, i, d).await?;
                    let due = matches!(d.next_dispatch_at, Some(at) if at <= saved.updated_at);
                    if saved.status == IncidentState::Dispatching && due && !self.due_now.contains(&saved.id) {
                        self.due_now.push(saved.id.clone());
                    }
                    Ok(saved)
                }

                async fn open_follow_up(
                    &mut self,
                    new: &$crate::domain::NewFollowUp,
                ) -> StoreResult<Option<$crate::domain::FollowUp>> {
                    $store::insert_follow_up(&mut self.tx, new).await
                }

                fn line(&mut self, incident: &IncidentId, at: DateTime<Utc>, what: String, actor: &Actor) {
                    self.pending.line(incident, at, what, actor);
                }

                fn notices(&mut self) -> &mut Notices {
                    &mut self.pending.notices
                }

                async fn commit(self: Box<Self>) -> StoreResult<Committed> {
                    let Tx { mut tx, mut pending, due_now, .. } = *self;
                    let committed = Committed {
                        stream: !pending.notices.is_empty(),
                        stewards: std::mem::take(&mut pending.notices.stewards),
                        due_now,
                    };
                    $store::flush(&mut tx, pending).await?;
                    tx.commit().await.db()?;
                    Ok(committed)
                }

                async fn rollback(self: Box<Self>) -> StoreResult<()> {
                    self.tx.rollback().await.db()
                }
            }

            #[async_trait]
            impl DispatchStore for $store {
                async fn due_dispatches(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<Vec<IncidentId>> {
                    self.incidents_due(
                        "SELECT id FROM incidents
                         WHERE status = 'dispatching'
                           AND next_dispatch_at IS NOT NULL AND next_dispatch_at <= $1
                         ORDER BY next_dispatch_at, id LIMIT $2",
                        now,
                        limit,
                    )
                    .await
                }

                #[allow(private_interfaces)]
                async fn begin_dispatch(&self) -> StoreResult<Box<dyn DispatchTx + '_>> {
                    Ok(self.open_tx().await?)
                }

                async fn expiring_incidents(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<Vec<IncidentId>> {
                    self.incidents_due(
                        "SELECT DISTINCT incident_id FROM offers
                         WHERE response IS NULL AND expires_at <= $1
                         ORDER BY incident_id LIMIT $2",
                        now,
                        limit,
                    )
                    .await
                }

                async fn escalations_due(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<Vec<IncidentId>> {
                    self.incidents_due(
                        "SELECT id FROM incidents
                         WHERE status = 'dispatching'
                           AND escalate_at IS NOT NULL AND escalate_at <= $1
                         ORDER BY escalate_at, id LIMIT $2",
                        now,
                        limit,
                    )
                    .await
                }

                async fn waiting_turns(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<DispatchTurn>> {
                    let mut conn = self.pool.acquire().await.db()?;
                    let rows: Vec<IncidentRow> = sqlx::query_as(
                        "SELECT * FROM incidents
                         WHERE status = 'dispatching' AND next_dispatch_at > $1
                         ORDER BY next_dispatch_at, id LIMIT $2",
                    )
                    .bind(now)
                    .bind(clamp_limit(limit))
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
                    let mut turns = Vec::with_capacity(rows.len());
                    for row in rows {
                        let (incident, _) = row.into_parts()?;
                        turns.push(Self::turn_of(&mut conn, incident).await?);
                    }
                    Ok(turns)
                }

                async fn bring_turn_forward(&self, incident: &IncidentId, now: DateTime<Utc>) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE incidents SET next_dispatch_at = $1
                         WHERE id = $2 AND status = 'dispatching' AND next_dispatch_at > $1",
                    )
                    .bind(now)
                    .bind(incident.as_str())
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn lease_failed_turn(&self, incident: &IncidentId, now: DateTime<Utc>) -> StoreResult<()> {
                    let mut conn = self.write_conn().await.db()?;
                    Self::lease_turn(&mut conn, incident, now).await?;
                    Ok(())
                }

                async fn live_offers_of(&self, steward: &StewardId) -> StoreResult<Vec<Offer>> {
                    let rows: Vec<OfferRow> = sqlx::query_as(
                        "SELECT * FROM offers WHERE steward_id = $1 AND response IS NULL
                         ORDER BY offered_at, id",
                    )
                    .bind(steward.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, OfferRow::into_domain)
                }

                async fn deliveries(&self, incident: &IncidentId) -> StoreResult<Vec<Delivery>> {
                    let rows: Vec<OutboxRow> = sqlx::query_as(
                        "SELECT * FROM outbox WHERE incident_id = $1 ORDER BY id",
                    )
                    .bind(incident.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    Ok(rows.into_iter().map(OutboxRow::into_delivery).collect())
                }

                async fn incidents_created_between(
                    &self,
                    from: DateTime<Utc>,
                    to: DateTime<Utc>,
                ) -> StoreResult<Vec<Incident>> {
                    let rows: Vec<IncidentRow> = sqlx::query_as(
                        "SELECT * FROM incidents WHERE created_at >= $1 AND created_at < $2
                         ORDER BY created_at, id",
                    )
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, IncidentRow::into_domain)
                }
            }

            #[async_trait]
            impl StreamLog for $store {
                async fn stream_after(&self, after: i64, limit: i64) -> StoreResult<Vec<StreamEvent>> {
                    let rows: Vec<StreamRow> = sqlx::query_as(
                        "SELECT seq, at, audience, event, data FROM stream
                         WHERE seq > $1 ORDER BY seq LIMIT $2",
                    )
                    .bind(after)
                    .bind(clamp_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    all(rows, StreamRow::into_domain)
                }

                async fn stream_head(&self) -> StoreResult<i64> {
                    let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM stream")
                        .fetch_one(&self.pool)
                        .await
                        .db()?;
                    Ok(head.unwrap_or(0))
                }

                async fn prune_stream(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                    let done = sqlx::query("DELETE FROM stream WHERE at < $1")
                        .bind(before)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl OutboxStore for $store {
                #[tracing::instrument(skip_all, fields(limit = limit))]
                async fn claim_outbox_for(
                    &self,
                    now: DateTime<Utc>,
                    lease: Duration,
                    limit: i64,
                    channels: &[Channel],
                ) -> StoreResult<Vec<OutboxItem>> {
                    if limit <= 0 || channels.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut q = QueryBuilder::<$db>::new("UPDATE outbox SET claimed_until = ");
                    q.push_bind(now + lease)
                        .push(" WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND due_at <= ")
                        .push_bind(now)
                        .push(" AND (claimed_until IS NULL OR claimed_until < ")
                        .push_bind(now)
                        .push(concat!(" ", $orphaned, ")"));
                    // Always named: a channel a later version adds is left
                    // to the instances that know it (a rolling upgrade).
                    q.push(" AND channel IN (");
                    let mut list = q.separated(", ");
                    for c in channels {
                        list.push_bind(channel_text(*c));
                    }
                    q.push(")");
                    q.push(" ORDER BY due_at, id LIMIT ")
                        .push_bind(limit)
                        .push(concat!(" ", $skip_locked, ") RETURNING *"));
                    let rows: Vec<OutboxRow> = q
                        .build_query_as()
                        .fetch_all(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?;
                    let mut items = all(rows, OutboxRow::into_item)?;
                    // RETURNING has no order; ids sort by creation, which
                    // keeps a device's commands in the order they were
                    // written.
                    items.sort_by(|a, b| a.id.cmp(&b.id));
                    Ok(items)
                }

                #[tracing::instrument(skip_all, fields(id = %item.id))]
                async fn release_outbox(&self, item: &OutboxItem) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "UPDATE outbox SET claimed_until = NULL
                         WHERE id = $1 AND state = 'pending' AND claimed_until IS NOT DISTINCT FROM $2",
                    )
                    .bind(item.id.as_str())
                    .bind(item.claimed_until)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    Ok(done.rows_affected() == 1)
                }

                #[tracing::instrument(skip_all, fields(id = %item.id))]
                async fn finish_outbox(
                    &self,
                    item: &OutboxItem,
                    outcome: &DeliveryOutcome,
                    now: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    // Only a pending row under this very claim moves: a
                    // late report from a worker whose lease ran out never
                    // undoes another's delivery or claim.
                    let (state, due_at, error) = match outcome {
                        DeliveryOutcome::Delivered => ("delivered", None, None),
                        DeliveryOutcome::Retry { at, error } => ("pending", Some(*at), Some(error.as_str())),
                        DeliveryOutcome::Failed { error } => ("failed", None, Some(error.as_str())),
                        DeliveryOutcome::Cancelled { reason } => ("cancelled", None, Some(reason.as_str())),
                    };
                    let counts = !matches!(outcome, DeliveryOutcome::Cancelled { .. });
                    let done = sqlx::query(
                        "UPDATE outbox SET state = $2, due_at = COALESCE($3, due_at), last_error = $4,
                             attempts = attempts + $5,
                             delivered_at = CASE WHEN $2 = 'delivered' THEN $6 ELSE delivered_at END,
                             claimed_until = NULL
                         WHERE id = $1 AND state = 'pending' AND claimed_until IS NOT DISTINCT FROM $7",
                    )
                    .bind(item.id.as_str())
                    .bind(state)
                    .bind(due_at)
                    .bind(error)
                    .bind(i32::from(counts))
                    .bind(now)
                    .bind(item.claimed_until)
                    .execute(&mut *self.write_conn().await.db()?)
                    .await
                    .db()?;
                    if done.rows_affected() == 1 {
                        return Ok(true);
                    }
                    let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id = $1")
                        .bind(item.id.as_str())
                        .fetch_one(&self.pool)
                        .await
                        .db()?;
                    found(u64::try_from(known).unwrap_or(0), || format!("outbox row {}", item.id))?;
                    Ok(false)
                }
            }
        };
    };
}
pub(crate) use dispatch_sql;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_offer_reads_like_an_operator_wrote_it() {
        let s1 = StewardId::parse("s-1").unwrap();
        assert_eq!(
            offer_end_words(&s1, OfferResponse::Declined, WithdrawReason::Declined),
            "declined by s-1"
        );
        assert_eq!(
            offer_end_words(&s1, OfferResponse::Expired, WithdrawReason::Expired),
            "offer to s-1 expired"
        );
        assert_eq!(
            offer_end_words(&s1, OfferResponse::Withdrawn, WithdrawReason::OffDuty),
            "offer to s-1 withdrawn: steward went off duty"
        );
    }
}
