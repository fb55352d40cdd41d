//! An incident's dispatch turn: whoever takes it (the engine after a
//! kick, the timer's sweep) plans whom to offer and offers them, in one
//! transaction, so two callers never both offer.
//!
//! The turn is taken by leasing `next_dispatch_at` (compare-and-set on it
//! being due). The planner (the matcher's ranking) sees the incident, its
//! elder and who was offered before; the stewards it names are claimed
//! best first until enough are offered ([`make_offers`]); ingest makes
//! an incident's first offers the same way, in the transaction that opened
//! it ([`first_offers`]). A
//! plan of none (an incident without an elder) keeps only the lease, so
//! the turn comes due again after it.

use chrono::{DateTime, Utc};

use crate::domain::{
    Actor, CandidateNote, DispatchTurn, Elder, FirstOffers, Incident, IncidentId, Offer, OfferPlan,
    Planner, Steward, StewardId, TakenTurn,
};
use crate::store::dispatch::DispatchStore;
use crate::store::dispatch_tx::{DispatchState, DispatchTx};
use crate::store::{StoreError, StoreResult};

pub(crate) async fn take<S: DispatchStore + ?Sized>(
    store: &S,
    incident: &IncidentId,
    now: DateTime<Utc>,
    plan: &Planner<'_>,
) -> StoreResult<Option<TakenTurn>> {
    let mut tx = store.begin_dispatch().await?;
    match take_in(&mut *tx, incident, now, plan).await {
        // Committed even when the turn was not due: that transaction
        // still took SQLite's write turn.
        Ok(taken) => {
            // What it changed travels in the turn itself (its offers,
            // its stewards as claimed).
            let _ = tx.commit().await?;
            Ok(taken)
        }
        Err(e) => {
            tx.rollback().await?;
            // A turn that cannot be taken (a damaged row) waits out the
            // lease, as one with nothing to offer does, instead of coming
            // back every tick and taking the write turn in front of
            // presses.
            if !e.is_transient()
                && let Err(lease) = store.lease_failed_turn(incident, now).await
            {
                tracing::warn!(%incident, error = %lease, "could not lease a failed dispatch turn");
            }
            Err(e)
        }
    }
}

async fn take_in(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    now: DateTime<Utc>,
    plan: &Planner<'_>,
) -> StoreResult<Option<TakenTurn>> {
    let Some((turn, d)) = tx.take_turn(incident, now).await? else {
        return Ok(None);
    };
    let plan = plan(&turn);
    let (offers, stewards) = match &plan {
        Some(plan) => make_offers(tx, &turn, d, plan, now).await?,
        None => (Vec::new(), Vec::new()),
    };
    Ok(Some(TakenTurn {
        turn,
        plan,
        offers,
        stewards,
    }))
}

/// The first offers of an incident the transaction opened (ingest's
/// batch). Its turn is known without reading: it is due, nobody was
/// offered yet, and the elder came with the batch. None when nothing was
/// planned or nobody could be claimed: the incident stays due, untouched,
/// for the engine's turn (which escalates when nobody is there).
pub(crate) async fn first_offers(
    tx: &mut dyn DispatchTx,
    incident: Incident,
    d: DispatchState,
    elder: Option<Elder>,
    first: &FirstOffers<'_>,
) -> StoreResult<Option<TakenTurn>> {
    let turn = DispatchTurn {
        incident,
        elder,
        already_offered: Vec::new(),
        live_offers: 0,
    };
    let Some(plan) = (first.planner)(&turn) else {
        return Ok(None);
    };
    let claimed = claim_stewards(tx, &turn, &plan, first.now).await?;
    if claimed.made.is_empty() {
        return Ok(None);
    }
    let (offers, stewards) = record_offers(tx, &turn, d, &plan, claimed, first.now).await?;
    Ok(Some(TakenTurn {
        turn,
        plan: Some(plan),
        offers,
        stewards,
    }))
}

/// Offers a taken turn as planned: claims, then records what the claims
/// came to.
async fn make_offers(
    tx: &mut dyn DispatchTx,
    turn: &DispatchTurn,
    d: DispatchState,
    plan: &OfferPlan,
    now: DateTime<Utc>,
) -> StoreResult<(Vec<Offer>, Vec<Steward>)> {
    let claimed = claim_stewards(tx, turn, plan, now).await?;
    record_offers(tx, turn, d, plan, claimed, now).await
}

/// What a claim found for one candidate, in the order they were tried.
#[derive(Debug, Clone, PartialEq)]
enum Claim {
    /// Offered; their name, from the claimed row.
    Offered(String),
    /// Another incident claimed them first.
    Lost,
}

/// What a turn's claims came to: the offers made with their stewards
/// (as claimed), and every candidate tried.
struct Claimed {
    made: Vec<(Offer, Steward)>,
    tried: Vec<(StewardId, Option<f64>, Claim)>,
}

/// Claims the planned candidates, best first, until `want` are offered:
/// a compare-and-set on the steward, then the offer. A lost claim
/// changes nothing.
async fn claim_stewards(
    tx: &mut dyn DispatchTx,
    turn: &DispatchTurn,
    plan: &OfferPlan,
    now: DateTime<Utc>,
) -> StoreResult<Claimed> {
    let i = &turn.incident;
    let mut made: Vec<(Offer, Steward)> = Vec::new();
    let mut tried = Vec::new();
    for c in &plan.candidates {
        if made.len() >= plan.want.max(1) {
            break;
        }
        if turn.already_offered.contains(&c.steward_id)
            || made.iter().any(|(o, _)| o.steward_id == c.steward_id)
        {
            continue;
        }
        // Only an available, on-duty steward becomes offered, and only once.
        let Some(steward) = tx.claim_steward(&c.steward_id, &i.id).await? else {
            tried.push((c.steward_id.clone(), Some(c.distance_m), Claim::Lost));
            continue;
        };
        // The backstop: one live offer per steward, whatever the steward
        // row says.
        match tx
            .write_offer(&i.id, &c.steward_id, plan.expires_at, c.distance_m, now)
            .await?
        {
            Some(offer) => {
                let name = Claim::Offered(steward.name.clone());
                tried.push((c.steward_id.clone(), Some(c.distance_m), name));
                made.push((offer, steward));
            }
            None => {
                tracing::warn!(steward = %c.steward_id, "steward was available but holds a live offer; passed over");
                tx.unclaim_steward(&c.steward_id, &i.id).await?;
                tried.push((c.steward_id.clone(), Some(c.distance_m), Claim::Lost));
            }
        }
    }
    Ok(Claimed { made, tried })
}

/// Writes what a turn's claims came to: the matcher's notes marked, the
/// incident's next turn (none while offers are live, a retry when nobody
/// could be offered); queues the timeline lines and the notices.
async fn record_offers(
    tx: &mut dyn DispatchTx,
    turn: &DispatchTurn,
    mut d: DispatchState,
    plan: &OfferPlan,
    Claimed { made, tried }: Claimed,
    now: DateTime<Utc>,
) -> StoreResult<(Vec<Offer>, Vec<Steward>)> {
    let i = &turn.incident;
    d.candidates = serde_json::to_string(&mark_notes(&plan.notes, &tried))
        .map_err(|e| StoreError::Invalid(format!("candidates: {e}")))?;
    let actor = Actor::System;
    if made.is_empty() {
        d.next_dispatch_at = Some(plan.retry_at);
        let wait = (plan.retry_at - now).num_seconds().max(0);
        let words = format!("nobody could be offered; trying again in {wait} s");
        tx.line(&i.id, now, words, &actor);
    } else {
        d.next_dispatch_at = None;
    }
    let mut changed = i.clone();
    changed.updated_at = now;
    let saved = tx.save(i.status, &changed, &d).await?;
    let elder = turn.elder.as_ref();
    for (offer, steward) in &made {
        tx.line(
            &saved.id,
            now,
            offered_words(steward, offer.distance_m),
            &actor,
        );
        tx.notices().offer(&saved, elder, offer, &plan.reach, now);
        tx.notices().steward(steward, now);
    }
    tx.notices().incident(&saved, now);
    Ok(made.into_iter().unzip())
}

/// The matcher's notes with what the claims found: the stewards offered
/// marked `offered`, those another incident claimed first marked `lost`
/// (with that reason). Stewards the notes did not mention are added, in
/// the order they were tried.
fn mark_notes(
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

/// "offered to 格桑 (s-01), 420 m".
fn offered_words(steward: &impl std::fmt::Display, distance_m: Option<f64>) -> String {
    match distance_m {
        Some(d) => format!("offered to {steward}, {d:.0} m"),
        None => format!("offered to {steward}"),
    }
}

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
    fn an_offer_line_names_the_steward_and_the_distance() {
        assert_eq!(
            offered_words(&"格桑 (s-01)", Some(419.6)),
            "offered to 格桑 (s-01), 420 m"
        );
    }
}
