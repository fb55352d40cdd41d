//! Dispatch's SQL, written once for both backends: the macro
//! [`dispatch_sql!`] implements [`DispatchStore`](super::dispatch::DispatchStore)
//! and the incident transitions ingest shares (open, cancel, clear), and is
//! expanded beside [`sql_store!`](super::sql::sql_store) in
//! [`super::sqlite`] and [`super::postgres`].
//!
//! How a transition is written, every time:
//! 1. Lock the incident row (`FOR UPDATE` on PostgreSQL; SQLite's
//!    `BEGIN IMMEDIATE` already holds the only write lock), so the checks
//!    that follow read what the write will change. Every transaction locks
//!    the incident(s) first and stewards after, in that order, so two
//!    transactions never wait on each other in a circle; transactions that
//!    touch two incidents lock them in id order.
//! 2. Decide in Rust (the checks and error codes below are plain functions).
//! 3. Write with compare-and-set statements (`… WHERE status = 'dispatching'`,
//!    `… WHERE status = 'available' AND on_duty`, `… WHERE response IS NULL`),
//!    checking what they returned: a belt to the lock's braces, and the
//!    only guard for stewards, whose claim never waits (`SKIP LOCKED`).
//! 4. Queue the timeline lines and the notices ([`super::notices`]) and
//!    write them with the change ([`Pending`](super::sql::Pending)).
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
use crate::domain::{
    CandidateNote, Incident, IncidentState, Offer, OfferResponse, Outcome, StewardId,
};

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

/// How an open incident closes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Closing<'a> {
    Resolved {
        outcome: Outcome,
        notes: &'a str,
    },
    Cancelled {
        reason: &'a str,
    },
    /// A rule resolved it by itself (a device heard again).
    Cleared {
        note: &'a str,
    },
}

impl Closing<'_> {
    pub(crate) fn status(self) -> IncidentState {
        match self {
            Self::Cancelled { .. } => IncidentState::Cancelled,
            Self::Resolved { .. } | Self::Cleared { .. } => IncidentState::Resolved,
        }
    }

    pub(crate) fn outcome(self) -> Option<Outcome> {
        match self {
            Self::Resolved { outcome, .. } => Some(outcome),
            Self::Cleared { .. } => Some(Outcome::Cleared),
            Self::Cancelled { .. } => None,
        }
    }

    pub(crate) fn notes(self) -> String {
        match self {
            Self::Resolved { notes, .. } => notes.to_owned(),
            Self::Cancelled { reason } => reason.to_owned(),
            Self::Cleared { note } => note.to_owned(),
        }
    }

    /// Why the live offers are withdrawn.
    pub(crate) fn withdraw_reason(self) -> WithdrawReason {
        match self {
            Self::Cancelled { .. } => WithdrawReason::Cancelled,
            Self::Resolved { .. } | Self::Cleared { .. } => WithdrawReason::Resolved,
        }
    }

    /// The timeline's words: "resolved: assisted — helped back to bed".
    pub(crate) fn words(self) -> String {
        match self {
            Self::Resolved { outcome, notes } if notes.trim().is_empty() => {
                format!("resolved: {outcome}")
            }
            Self::Resolved { outcome, notes } => format!("resolved: {outcome} — {notes}"),
            Self::Cancelled { reason } => format!("cancelled: {reason}"),
            Self::Cleared { note } => format!("cleared: {note}"),
        }
    }
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

/// "offered to 格桑 (s-01), 420 m".
pub(crate) fn offered_words(steward: &impl std::fmt::Display, distance_m: Option<f64>) -> String {
    match distance_m {
        Some(d) => format!("offered to {steward}, {d:.0} m"),
        None => format!("offered to {steward}"),
    }
}

pub(crate) fn escalated_words(level: i32, reason: &str) -> String {
    format!("escalated to level {level}: {reason}")
}

/// What a claim found for one candidate, in the order they were tried.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Claim {
    /// Offered; their name, from the claimed row.
    Offered(String),
    /// Another incident claimed them first.
    Lost,
}

/// What a turn's claims came to: the offers made with their stewards
/// (as claimed), and every candidate tried.
pub(crate) struct Claimed {
    pub made: Vec<(Offer, crate::domain::Steward)>,
    pub tried: Vec<(StewardId, Option<f64>, Claim)>,
}

/// The matcher's notes with what the claims found: the stewards offered
/// marked `offered`, those another incident claimed first marked `lost`
/// (with that reason). Stewards the notes did not mention are added, in
/// the order they were tried.
pub(crate) fn mark_notes(
    notes: &[CandidateNote],
    tried: &[(StewardId, Option<f64>, Claim)],
) -> Vec<CandidateNote> {
    const LOST: &str = "claimed by another incident first";
    let mut out = notes.to_vec();
    for (id, distance_m, claim) in tried {
        let verdict = match claim {
            Claim::Offered(_) => "offered",
            Claim::Lost => "lost",
        };
        match out.iter_mut().find(|n| &n.steward_id == id) {
            Some(n) => {
                n.verdict = verdict.to_owned();
                if *claim == Claim::Lost {
                    n.reason = LOST.to_owned();
                }
            }
            None => out.push(CandidateNote {
                steward_id: id.clone(),
                name: match claim {
                    Claim::Offered(name) => name.clone(),
                    Claim::Lost => id.to_string(),
                },
                distance_m: *distance_m,
                verdict: verdict.to_owned(),
                reason: match claim {
                    Claim::Offered(_) => "offered".to_owned(),
                    Claim::Lost => LOST.to_owned(),
                },
            }),
        }
    }
    out
}

/// Implements [`DispatchStore`](crate::store::dispatch::DispatchStore) for
/// `$store` (see the module doc for the parameters), plus the transition
/// helpers [`sql_store!`](crate::store::sql::sql_store) uses: `flush`,
/// `lock_by_key`, `close_in`, `elder_for_hooks`.
///
/// rustfmt leaves macro bodies alone: keep this one formatted by hand.
macro_rules! dispatch_sql {
    (
        $store:ident,
        $db:ty,
        row_lock = $row_lock:literal,
        skip_locked = $skip_locked:literal,
        steward_claim = $steward_claim:literal,
        write_tx = $write_tx:ty
    ) => {
        const _: () = {
            use std::collections::BTreeSet;

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
            use $crate::domain::{DispatchTurn, FirstOffers, OfferPlan, TakenTurn};
            use $crate::store::dispatch::{
                Actor, Channel, DeliveryOutcome, DispatchStore, OutboxItem, StreamEvent,
            };
            use $crate::store::dispatch_sql::*;
            use $crate::store::dispatch_tx::{BusyFrom, Committed, DispatchState, DispatchTx, StewardHold};
            use $crate::store::notices::{Notices, Transition, WithdrawReason};
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

                /// The elder the webhooks carry, read only when a webhook
                /// is configured. A damaged elder row must not stop an
                /// incident from moving: the webhooks then carry none.
                pub(crate) async fn elder_for_hooks(
                    conn: &mut Conn,
                    incident: &Incident,
                    rules: &RuleBook,
                ) -> StoreResult<Option<Elder>> {
                    let Some(id) = &incident.elder_id else { return Ok(None) };
                    if rules.notify().webhooks.is_empty() {
                        return Ok(None);
                    }
                    match Self::load_elder(conn, id).await {
                        Err(StoreError::Corrupt(e)) => {
                            tracing::error!(error = %e, "elder row unreadable; webhooks go without the elder");
                            Ok(None)
                        }
                        other => other,
                    }
                }

                /// The elder's name for a steward's lock screen; none when
                /// the incident has no elder or the row cannot be read (the
                /// push then says "an elder", and the change goes ahead).
                async fn elder_name(conn: &mut Conn, incident: &Incident) -> Option<String> {
                    let id = incident.elder_id.as_ref()?;
                    Self::load_elder(conn, id).await.ok().flatten().map(|e| e.name)
                }

                async fn hold_of(
                    conn: &mut Conn,
                    id: &StewardId,
                    lock: bool,
                ) -> StoreResult<StewardHold> {
                    let row: Option<StewardHold> = if lock {
                        sqlx::query_as(concat!(
                            "SELECT status, on_duty, incident_id FROM stewards WHERE id = $1 ",
                            $row_lock
                        ))
                        .bind(id.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?
                    } else {
                        sqlx::query_as("SELECT status, on_duty, incident_id FROM stewards WHERE id = $1")
                            .bind(id.as_str())
                            .fetch_optional(&mut *conn)
                            .await
                            .db()?
                    };
                    row.ok_or_else(|| StoreError::NotFound(format!("steward {id}")))
                }

                /// The steward's offer of the incident (one at most: a
                /// steward is never offered one incident twice).
                async fn offer_of(
                    conn: &mut Conn,
                    incident: &IncidentId,
                    steward: &StewardId,
                ) -> StoreResult<Option<Offer>> {
                    let row: Option<OfferRow> = sqlx::query_as(
                        "SELECT * FROM offers WHERE incident_id = $1 AND steward_id = $2
                         ORDER BY offered_at DESC, id DESC LIMIT 1",
                    )
                    .bind(incident.as_str())
                    .bind(steward.as_str())
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                    row.map(OfferRow::into_domain).transpose()
                }

                async fn live_count(conn: &mut Conn, incident: &IncidentId) -> StoreResult<i64> {
                    sqlx::query_scalar(
                        "SELECT COUNT(*) FROM offers WHERE incident_id = $1 AND response IS NULL",
                    )
                    .bind(incident.as_str())
                    .fetch_one(&mut *conn)
                    .await
                    .db()
                }

                /// Incidents where this steward holds a live offer.
                async fn live_offer_incidents(
                    conn: &mut Conn,
                    steward: &StewardId,
                ) -> StoreResult<BTreeSet<IncidentId>> {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT incident_id FROM offers WHERE steward_id = $1 AND response IS NULL",
                    )
                    .bind(steward.as_str())
                    .fetch_all(&mut *conn)
                    .await
                    .db()?;
                    Ok(incident_ids(ids)?.into_iter().collect())
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

                /// Takes the incident's dispatch turn if it is due (leases
                /// it), and reads what the planner needs.
                async fn claim_in(
                    conn: &mut Conn,
                    incident: &IncidentId,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<(DispatchTurn, DispatchState)>> {
                    let Some(row) = Self::lease_turn(conn, incident, now).await? else {
                        return Ok(None);
                    };
                    let (incident, d) = row.into_parts()?;
                    let elder = match &incident.elder_id {
                        Some(id) => Self::load_elder(conn, id).await?,
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
                    Ok(Some((DispatchTurn { incident, elder, already_offered, live_offers }, d)))
                }

                /// The first offers of an incident this transaction
                /// opened. Its turn is known without reading: it is due,
                /// nobody was offered yet, and the elder came with the
                /// batch. None when nothing was planned or nobody could be
                /// claimed: the incident stays due, untouched, for the
                /// engine's turn (which escalates when nobody is there).
                /// The rows to write join the batch's `pending`, after the
                /// incident's own.
                pub(crate) async fn first_offers_in(
                    conn: &mut Conn,
                    incident: Incident,
                    d: DispatchState,
                    elder: Option<Elder>,
                    first: &FirstOffers<'_>,
                    pending: &mut Pending,
                ) -> StoreResult<Option<TakenTurn>> {
                    let turn = DispatchTurn { incident, elder, already_offered: Vec::new(), live_offers: 0 };
                    let Some(plan) = (first.planner)(&turn) else {
                        return Ok(None);
                    };
                    let claimed = Self::claim_stewards(conn, &turn, &plan, first.now).await?;
                    if claimed.made.is_empty() {
                        return Ok(None);
                    }
                    let (offers, stewards) =
                        Self::record_offers(conn, &turn, d, &plan, claimed, first.now, pending).await?;
                    Ok(Some(TakenTurn { turn, plan: Some(plan), offers, stewards }))
                }

                /// Claims the planned candidates, best first, until `want`
                /// are offered: a compare-and-set on the steward, then the
                /// offer. A lost claim changes nothing.
                async fn claim_stewards(
                    conn: &mut Conn,
                    turn: &DispatchTurn,
                    plan: &OfferPlan,
                    now: DateTime<Utc>,
                ) -> StoreResult<Claimed> {
                    let i = &turn.incident;
                    let mut made: Vec<(Offer, Steward)> = Vec::new();
                    let mut tried: Vec<(StewardId, Option<f64>, Claim)> = Vec::new();
                    for c in &plan.candidates {
                        if made.len() >= plan.want.max(1) {
                            break;
                        }
                        if turn.already_offered.contains(&c.steward_id)
                            || made.iter().any(|(o, _)| o.steward_id == c.steward_id)
                        {
                            continue;
                        }
                        // The claim: only an available, on-duty steward
                        // becomes offered, and only once.
                        let claimed: Option<StewardRow> = sqlx::query_as(concat!(
                            "UPDATE stewards SET status = 'offered', incident_id = $2
                             WHERE id = $1 AND status = 'available' AND on_duty ",
                            $steward_claim,
                            " RETURNING *"
                        ))
                        .bind(c.steward_id.as_str())
                        .bind(i.id.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?;
                        let Some(claimed) = claimed else {
                            tried.push((c.steward_id.clone(), Some(c.distance_m), Claim::Lost));
                            continue;
                        };
                        let steward = claimed.into_domain()?;
                        // The backstop: one live offer per steward, whatever
                        // the steward row says.
                        let offer: Option<OfferRow> = sqlx::query_as(
                            "INSERT INTO offers (id, incident_id, steward_id, offered_at, expires_at,
                                                 response, responded_at, distance_m)
                             VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)
                             ON CONFLICT (steward_id) WHERE response IS NULL DO NOTHING
                             RETURNING *",
                        )
                        .bind(format!("off-{}", uuid::Uuid::new_v4().simple()))
                        .bind(i.id.as_str())
                        .bind(c.steward_id.as_str())
                        .bind(now)
                        .bind(plan.expires_at)
                        .bind(c.distance_m)
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?;
                        match offer {
                            Some(row) => {
                                let name = Claim::Offered(steward.name.clone());
                                tried.push((c.steward_id.clone(), Some(c.distance_m), name));
                                made.push((row.into_domain()?, steward));
                            }
                            None => {
                                tracing::warn!(steward = %c.steward_id, "steward was available but holds a live offer; passed over");
                                sqlx::query(
                                    "UPDATE stewards SET status = 'available', incident_id = NULL
                                     WHERE id = $1 AND incident_id = $2",
                                )
                                .bind(c.steward_id.as_str())
                                .bind(i.id.as_str())
                                .execute(&mut *conn)
                                .await
                                .db()?;
                                tried.push((c.steward_id.clone(), Some(c.distance_m), Claim::Lost));
                            }
                        }
                    }
                    Ok(Claimed { made, tried })
                }

                /// Writes what a turn's claims came to: the matcher's notes
                /// marked, the incident's next turn (none while offers are
                /// live, a retry when nobody could be offered); queues the
                /// timeline lines and the notices.
                async fn record_offers(
                    conn: &mut Conn,
                    turn: &DispatchTurn,
                    mut d: DispatchState,
                    plan: &OfferPlan,
                    Claimed { made, tried }: Claimed,
                    now: DateTime<Utc>,
                    pending: &mut Pending,
                ) -> StoreResult<(Vec<Offer>, Vec<Steward>)> {
                    let i = &turn.incident;
                    d.candidates = to_json("candidates", &mark_notes(&plan.notes, &tried))?;
                    let actor = Actor::System;
                    if made.is_empty() {
                        d.next_dispatch_at = Some(plan.retry_at);
                        let wait = (plan.retry_at - now).num_seconds().max(0);
                        pending.line(&i.id, now, format!("nobody could be offered; trying again in {wait} s"), &actor);
                    } else {
                        d.next_dispatch_at = None;
                    }
                    let mut changed = i.clone();
                    changed.updated_at = now;
                    let saved = Self::save(&mut *conn, i.status, &changed, &d).await?;
                    let elder = turn.elder.as_ref();
                    for (offer, steward) in &made {
                        pending.line(&saved.id, now, offered_words(steward, offer.distance_m), &actor);
                        pending.notices.offer(&saved, elder, offer, &plan.reach, now);
                        pending.notices.steward(steward, now);
                    }
                    pending.notices.incident(&saved, now);
                    Ok(made.into_iter().unzip())
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

                /// Ends live offers of an incident with `response` and
                /// releases their stewards (`available`, or `off_duty` if
                /// they went off duty). Queues a timeline line per offer,
                /// `offer.withdrawn` to each steward but `quiet`, and each
                /// released steward to supervisors.
                #[allow(clippy::too_many_arguments)]
                async fn end_offers(
                    conn: &mut Conn,
                    incident: &IncidentId,
                    which: Which<'_>,
                    response: OfferResponse,
                    reason: WithdrawReason,
                    quiet: Option<&StewardId>,
                    actor: &Actor,
                    now: DateTime<Utc>,
                    pending: &mut Pending,
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
                    let rows: Vec<OfferRow> = q.build_query_as().fetch_all(&mut *conn).await.db()?;
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
                    let rows: Vec<StewardRow> = q.build_query_as().fetch_all(&mut *conn).await.db()?;
                    let mut released = all(rows, StewardRow::into_domain)?;
                    released.sort_by(|a, b| a.id.cmp(&b.id));

                    for o in &offers {
                        pending.line(incident, now, offer_end_words(&o.steward_id, response, reason), actor);
                        if quiet != Some(&o.steward_id) {
                            pending.notices.withdrawn(&o.steward_id, incident, reason, now);
                        }
                    }
                    for s in &released {
                        pending.notices.steward(s, now);
                    }
                    Self::stop_reaching(conn, &offers, reason.close_reason(), quiet, now, pending).await?;
                    Ok(offers)
                }

                /// The offers ended: their ladder steps not yet sent are
                /// cancelled (a step a worker holds right now is checked
                /// again before it goes out), and a phone that was shown
                /// an offer's push, or may be about to be, gets a push that
                /// closes it, but `quiet`'s: a supervisor assigned them the
                /// incident, and that push replaces the offer's.
                async fn stop_reaching(
                    conn: &mut Conn,
                    offers: &[Offer],
                    reason: CloseReason,
                    quiet: Option<&StewardId>,
                    now: DateTime<Utc>,
                    pending: &mut Pending,
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
                    q.build().execute(&mut *conn).await.db()?;

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
                    let shown: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *conn).await.db()?;
                    for o in offers.iter().filter(|o| quiet != Some(&o.steward_id)) {
                        let Some((_, payload)) = shown.iter().find(|(id, _)| *id == o.id) else {
                            continue;
                        };
                        let elder_name = serde_json::from_str::<OfferView>(payload)
                            .ok()
                            .and_then(|v| v.elder_name);
                        pending.notices.close(
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

                /// Frees the steward assigned to an incident: `available`
                /// if on duty, else `off_duty`.
                async fn release_assigned(
                    conn: &mut Conn,
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
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                    row.map(StewardRow::into_domain).transpose()
                }

                /// Closes a locked open incident: live offers withdrawn,
                /// the assigned steward released, the dispatch clock
                /// stopped, and the notices of a resolve or a cancel.
                #[allow(clippy::too_many_arguments)]
                pub(crate) async fn close_in(
                    conn: &mut Conn,
                    mut i: Incident,
                    mut d: DispatchState,
                    how: Closing<'_>,
                    actor: &Actor,
                    now: DateTime<Utc>,
                    rules: &RuleBook,
                    pending: &mut Pending,
                ) -> StoreResult<Incident> {
                    let from = i.status;
                    Self::end_offers(
                        conn, &i.id, Which::All, OfferResponse::Withdrawn, how.withdraw_reason(),
                        None, actor, now, pending,
                    )
                    .await?;
                    if let Some(s) = &i.steward_id {
                        if let Some(steward) = Self::release_assigned(conn, s, &i.id).await? {
                            pending.notices.steward(&steward, now);
                        }
                    }
                    i.status = how.status();
                    i.outcome = how.outcome();
                    i.notes = Some(how.notes());
                    i.resolved_at = Some(now);
                    i.updated_at = now;
                    d.next_dispatch_at = None;
                    d.escalate_at = None;
                    let saved = Self::save(conn, from, &i, &d).await?;
                    // Opened and closed in one batch: nothing to offer.
                    pending.to_dispatch.retain(|(opened, _)| opened.id != saved.id);
                    pending.line(&saved.id, now, how.words(), actor);
                    pending.notices.incident(&saved, now);
                    let t = match how.status() {
                        IncidentState::Cancelled => Transition::Cancelled,
                        _ => Transition::Resolved,
                    };
                    let elder = Self::elder_for_hooks(conn, &saved, rules).await?;
                    pending.notices.transition(t, &saved, elder.as_ref(), rules, now);
                    Ok(saved)
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
                    let Pending { timeline, notices, deadlines, to_dispatch: _ } = pending;
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
                                .push_bind(s.event)
                                .push_bind(data.as_str());
                        });
                        q.build().execute(&mut *conn).await.db()?;
                    }
                    Ok(())
                }

            }

            /// Dispatch's transaction on this backend: the write
            /// transaction and what it will write just before it commits.
            struct Tx {
                tx: $write_tx,
                pending: Pending,
                due_now: Vec<IncidentId>,
            }

            #[async_trait]
            impl DispatchTx for Tx {
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
                    $store::hold_of(&mut self.tx, id, lock).await
                }

                async fn offer_of(
                    &mut self,
                    incident: &IncidentId,
                    steward: &StewardId,
                ) -> StoreResult<Option<Offer>> {
                    $store::offer_of(&mut self.tx, incident, steward).await
                }

                async fn live_count(&mut self, incident: &IncidentId) -> StoreResult<i64> {
                    $store::live_count(&mut self.tx, incident).await
                }

                async fn live_offer_incidents(
                    &mut self,
                    steward: &StewardId,
                ) -> StoreResult<BTreeSet<IncidentId>> {
                    $store::live_offer_incidents(&mut self.tx, steward).await
                }

                async fn elder_for_hooks(
                    &mut self,
                    incident: &Incident,
                    rules: &RuleBook,
                ) -> StoreResult<Option<Elder>> {
                    $store::elder_for_hooks(&mut self.tx, incident, rules).await
                }

                async fn elder_name(&mut self, incident: &Incident) -> Option<String> {
                    $store::elder_name(&mut self.tx, incident).await
                }

                async fn take_turn(
                    &mut self,
                    incident: &IncidentId,
                    now: DateTime<Utc>,
                ) -> StoreResult<Option<(DispatchTurn, DispatchState)>> {
                    $store::claim_in(&mut self.tx, incident, now).await
                }

                async fn make_offers(
                    &mut self,
                    turn: &DispatchTurn,
                    d: DispatchState,
                    plan: &OfferPlan,
                    now: DateTime<Utc>,
                ) -> StoreResult<(Vec<Offer>, Vec<Steward>)> {
                    let claimed = $store::claim_stewards(&mut self.tx, turn, plan, now).await?;
                    $store::record_offers(&mut self.tx, turn, d, plan, claimed, now, &mut self.pending).await
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
                    $store::release_assigned(&mut self.tx, steward, incident).await
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
                    $store::end_offers(
                        &mut self.tx, incident, which, response, reason, quiet, actor, now,
                        &mut self.pending,
                    )
                    .await
                }

                async fn stop_reaching(
                    &mut self,
                    offers: &[Offer],
                    reason: CloseReason,
                    quiet: Option<&StewardId>,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    $store::stop_reaching(&mut self.tx, offers, reason, quiet, now, &mut self.pending).await
                }

                async fn close(
                    &mut self,
                    i: Incident,
                    d: DispatchState,
                    how: Closing<'_>,
                    actor: &Actor,
                    now: DateTime<Utc>,
                    rules: &RuleBook,
                ) -> StoreResult<Incident> {
                    $store::close_in(&mut self.tx, i, d, how, actor, now, rules, &mut self.pending).await
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

                fn line(&mut self, incident: &IncidentId, at: DateTime<Utc>, what: String, actor: &Actor) {
                    self.pending.line(incident, at, what, actor);
                }

                fn notices(&mut self) -> &mut Notices {
                    &mut self.pending.notices
                }

                async fn commit(self: Box<Self>) -> StoreResult<Committed> {
                    let Tx { mut tx, mut pending, due_now } = *self;
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
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT id FROM incidents
                         WHERE status = 'dispatching'
                           AND next_dispatch_at IS NOT NULL AND next_dispatch_at <= $1
                         ORDER BY next_dispatch_at, id LIMIT $2",
                    )
                    .bind(now)
                    .bind(clamp_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    incident_ids(ids)
                }

                #[allow(private_interfaces)]
                async fn begin_dispatch(&self) -> StoreResult<Box<dyn DispatchTx>> {
                    let tx = self.begin_write().await.db()?;
                    Ok(Box::new(Tx { tx, pending: Pending::default(), due_now: Vec::new() }))
                }

                async fn expiring_incidents(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<Vec<IncidentId>> {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT DISTINCT incident_id FROM offers
                         WHERE response IS NULL AND expires_at <= $1
                         ORDER BY incident_id LIMIT $2",
                    )
                    .bind(now)
                    .bind(clamp_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    incident_ids(ids)
                }

                async fn escalations_due(
                    &self,
                    now: DateTime<Utc>,
                    limit: i64,
                ) -> StoreResult<Vec<IncidentId>> {
                    let ids: Vec<String> = sqlx::query_scalar(
                        "SELECT id FROM incidents
                         WHERE status = 'dispatching'
                           AND escalate_at IS NOT NULL AND escalate_at <= $1
                         ORDER BY escalate_at, id LIMIT $2",
                    )
                    .bind(now)
                    .bind(clamp_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .db()?;
                    incident_ids(ids)
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
                        .push(")");
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

                #[tracing::instrument(skip_all, fields(id = %id))]
                async fn finish_outbox(
                    &self,
                    id: &str,
                    outcome: &DeliveryOutcome,
                    now: DateTime<Utc>,
                ) -> StoreResult<()> {
                    // Only a pending row moves: a late report from an
                    // instance whose lease ran out never undoes another's
                    // delivery.
                    let done = match outcome {
                        DeliveryOutcome::Delivered => sqlx::query(
                            "UPDATE outbox SET state = 'delivered', attempts = attempts + 1,
                                 delivered_at = $2, last_error = NULL, claimed_until = NULL
                             WHERE id = $1 AND state = 'pending'",
                        )
                        .bind(id)
                        .bind(now)
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?,
                        DeliveryOutcome::Retry { at, error } => sqlx::query(
                            "UPDATE outbox SET attempts = attempts + 1, due_at = $2,
                                 last_error = $3, claimed_until = NULL
                             WHERE id = $1 AND state = 'pending'",
                        )
                        .bind(id)
                        .bind(*at)
                        .bind(error.as_str())
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?,
                        DeliveryOutcome::Failed { error } => sqlx::query(
                            "UPDATE outbox SET state = 'failed', attempts = attempts + 1,
                                 last_error = $2, claimed_until = NULL
                             WHERE id = $1 AND state = 'pending'",
                        )
                        .bind(id)
                        .bind(error.as_str())
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?,
                        DeliveryOutcome::Cancelled { reason } => sqlx::query(
                            "UPDATE outbox SET state = 'cancelled', last_error = $2, claimed_until = NULL
                             WHERE id = $1 AND state = 'pending'",
                        )
                        .bind(id)
                        .bind(reason.as_str())
                        .execute(&mut *self.write_conn().await.db()?)
                        .await
                        .db()?,
                    };
                    if done.rows_affected() == 0 {
                        let known: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE id = $1")
                            .bind(id)
                            .fetch_one(&self.pool)
                            .await
                            .db()?;
                        found(u64::try_from(known).unwrap_or(0), || format!("outbox row {id}"))?;
                    }
                    Ok(())
                }
            }
        };
    };
}
pub(crate) use dispatch_sql;

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> StewardId {
        StewardId::parse(s).unwrap()
    }

    #[test]
    fn notes_show_who_was_offered_and_who_was_lost() {
        let notes = vec![
            CandidateNote {
                steward_id: sid("s-1"),
                name: "Pema".into(),
                distance_m: Some(100.0),
                verdict: "offered".into(),
                reason: "nearest available, 100 m".into(),
            },
            CandidateNote {
                steward_id: sid("s-2"),
                name: "Tashi".into(),
                distance_m: Some(300.0),
                verdict: "passed".into(),
                reason: "second nearest".into(),
            },
        ];
        let got = mark_notes(
            &notes,
            &[
                (sid("s-1"), Some(100.0), Claim::Lost),
                (sid("s-2"), Some(300.0), Claim::Offered("Tashi".into())),
            ],
        );
        assert_eq!(got[0].verdict, "lost");
        assert_eq!(got[0].reason, "claimed by another incident first");
        assert_eq!(got[1].verdict, "offered");
        assert_eq!(got[1].reason, "second nearest");
        let added = mark_notes(
            &[],
            &[
                (sid("s-4"), None, Claim::Lost),
                (sid("s-3"), None, Claim::Offered("Dawa".into())),
            ],
        );
        let got: Vec<_> = added
            .iter()
            .map(|n| (n.name.as_str(), n.verdict.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![("s-4", "lost"), ("Dawa", "offered")],
            "in the order tried"
        );
    }

    #[test]
    fn the_timeline_reads_like_an_operator_wrote_it() {
        let s1 = sid("s-1");
        assert_eq!(
            offer_end_words(&s1, OfferResponse::Declined, WithdrawReason::Declined),
            "declined by s-1"
        );
        assert_eq!(
            offer_end_words(&s1, OfferResponse::Expired, WithdrawReason::Expired),
            "offer to s-1 expired"
        );
        assert_eq!(
            offered_words(&"格桑 (s-01)", Some(419.6)),
            "offered to 格桑 (s-01), 420 m"
        );
        assert_eq!(
            escalated_words(1, "nobody available"),
            "escalated to level 1: nobody available"
        );
        let how = Closing::Resolved {
            outcome: Outcome::Assisted,
            notes: "helped back to bed",
        };
        assert_eq!(how.words(), "resolved: assisted — helped back to bed");
    }
}
