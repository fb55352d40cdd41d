//! An incident's dispatch turn: whoever takes it (the engine after a
//! kick, the timer's sweep) plans whom to offer and offers them, in one
//! transaction, so two callers never both offer.
//!
//! The turn is taken by leasing `next_dispatch_at` (compare-and-set on it
//! being due). The planner (the matcher's ranking) sees the incident, its
//! elder and who was offered before; the stewards it names are claimed
//! best first until enough are offered ([`DispatchTx::make_offers`]). A
//! plan of none (an incident without an elder) keeps only the lease, so
//! the turn comes due again after it.

use chrono::{DateTime, Utc};

use crate::domain::{IncidentId, Planner, TakenTurn};
use crate::store::StoreResult;
use crate::store::dispatch::DispatchStore;
use crate::store::dispatch_tx::DispatchTx;

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
        Some(plan) => tx.make_offers(&turn, d, plan, now).await?,
        None => (Vec::new(), Vec::new()),
    };
    Ok(Some(TakenTurn {
        turn,
        plan,
        offers,
        stewards,
    }))
}
