//! The assigned steward is with the elder: `on_site`.
//!
//! Only the assigned steward arrives (`not_assigned` for anyone else), on
//! an acknowledged incident; arriving twice changes nothing. The elder's
//! device and the webhooks hear `on_site`.

use chrono::{DateTime, Utc};

use crate::domain::lifecycle;
use crate::domain::{Incident, IncidentId, IncidentState, StewardId};
use crate::rules::RuleBook;
use crate::store::StoreResult;
use crate::store::dispatch::Actor;
use crate::store::dispatch_tx::DispatchTx;
use crate::store::notices::Transition;

use super::must_lock;

pub(crate) async fn arrive(
    tx: &mut dyn DispatchTx,
    incident: &IncidentId,
    steward: &StewardId,
    now: DateTime<Utc>,
    rules: &RuleBook,
) -> StoreResult<Incident> {
    let (i, d) = must_lock(tx, incident).await?;
    tx.steward_hold(steward, false).await?;
    let Some(changed) = lifecycle::arrive(&i, steward, now)? else {
        return Ok(i);
    };
    let saved = tx.save(IncidentState::Acknowledged, &changed, &d).await?;
    let actor = Actor::Steward(steward.clone());
    tx.line(&saved.id, now, "on site".to_owned(), &actor);
    tx.notices().incident(&saved, now);
    let elder = tx.elder_for_hooks(&saved, rules).await?;
    tx.notices()
        .transition(Transition::OnSite, &saved, elder.as_ref(), rules, now);
    Ok(saved)
}
