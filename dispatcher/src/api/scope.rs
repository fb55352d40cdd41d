//! What a scoped supervisor may see and act on: the one place the API
//! decides it.
//!
//! A supervisor's login carries a [`Scope`] (the whole site, a community
//! or a district, `users.scope`), parsed once and resolved when the
//! session is read ([`super::auth::authenticate`]) to a [`View`]: the set
//! of grids it covers (`areas`). Every handler that shows or changes an
//! incident, an elder, a steward, a device, a visit, a follow-up or an
//! event asks the functions here, never the scope itself:
//!
//! - lists pass [`View::grid_list`] to the store's filter (incidents,
//!   events, follow-ups) or keep what [`View::sees_elder`] /
//!   [`View::sees_steward`] / [`View::sees_grid`] allow;
//! - one thing by id is loaded through [`incident`], [`elder`],
//!   [`steward`], [`device`]: outside the view it is 404, as if it did
//!   not exist, so a scoped supervisor learns nothing of another
//!   community, not even which ids it uses;
//! - a grid a scoped supervisor writes (a new elder's, a steward's) must
//!   be theirs ([`writable_grid`]: 422);
//! - the stream keeps only the view's events ([`StreamScope`]).
//!
//! What has no elder (an incident of an unknown device, an unbound
//! device, its events) belongs to no grid: only the whole site sees it.
//! Admins, stewards and supervisors without a scope see the whole site;
//! a steward's own limits (their offers and incidents) are their
//! handlers' as before.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::{ApiError, AppState, AuthUser};
use crate::domain::{
    Device, DeviceId, Elder, ElderId, Incident, IncidentDetail, IncidentId, Scope, Steward,
    StewardId,
};
use crate::store::dispatch::{Audience, StreamEvent, StreamKind};
use crate::store::{Store, StoreResult};

/// The grids a login sees: the whole site, or a set (perhaps empty, when
/// the areas of its scope were removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// `None`: the whole site.
    grids: Option<Arc<BTreeSet<String>>>,
}

impl View {
    /// The whole site.
    pub fn site() -> Self {
        Self::default()
    }

    /// The grids of `grids` only.
    pub fn of_grids(grids: impl IntoIterator<Item = String>) -> Self {
        Self {
            grids: Some(Arc::new(grids.into_iter().collect())),
        }
    }

    /// The grids `scope` covers today (one read of `areas`, none for the
    /// whole site).
    pub async fn resolve(store: &dyn Store, scope: &Scope) -> StoreResult<Self> {
        if *scope == Scope::Site {
            return Ok(Self::site());
        }
        let areas = store.areas().await?;
        Ok(Self {
            grids: scope.grids(&areas).map(Arc::new),
        })
    }

    /// Whether this is the whole site.
    pub fn is_site(&self) -> bool {
        self.grids.is_none()
    }

    /// The grids, for a store filter; `None` for the whole site.
    pub fn grid_list(&self) -> Option<Vec<String>> {
        self.grids.as_ref().map(|g| g.iter().cloned().collect())
    }

    pub fn sees_grid(&self, grid: &str) -> bool {
        match &self.grids {
            None => true,
            Some(g) => g.contains(grid),
        }
    }

    pub fn sees_elder(&self, elder: &Elder) -> bool {
        self.sees_grid(&elder.grid)
    }

    pub fn sees_steward(&self, steward: &Steward) -> bool {
        self.sees_grid(&steward.grid)
    }

    /// Whether the elder `id` (of an incident, a device, a visit) is in
    /// view; no elder, or an elder gone, is the whole site's only.
    pub async fn sees_elder_id(
        &self,
        store: &dyn Store,
        id: Option<&ElderId>,
    ) -> StoreResult<bool> {
        if self.is_site() {
            return Ok(true);
        }
        let Some(id) = id else {
            return Ok(false);
        };
        Ok(store.elder(id).await?.is_some_and(|e| self.sees_elder(&e)))
    }

    /// The ids of the elders in view; `None` for the whole site.
    pub async fn elder_ids(&self, store: &dyn Store) -> StoreResult<Option<HashSet<ElderId>>> {
        if self.is_site() {
            return Ok(None);
        }
        Ok(Some(
            store
                .elders()
                .await?
                .into_iter()
                .filter(|e| self.sees_elder(e))
                .map(|e| e.id)
                .collect(),
        ))
    }
}

fn no_incident(id: &IncidentId) -> ApiError {
    ApiError::NotFound(format!("incident {id} not found"))
}

/// The incident `id`, or 404 when it does not exist or lies outside the
/// caller's view.
pub async fn incident(
    state: &AppState,
    user: &AuthUser,
    id: &IncidentId,
) -> Result<IncidentDetail, ApiError> {
    let detail = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| no_incident(id))?;
    check_incident(state, user, &detail.incident).await?;
    Ok(detail)
}

/// 404 unless the caller's view holds this incident's elder.
pub async fn check_incident(
    state: &AppState,
    user: &AuthUser,
    incident: &Incident,
) -> Result<(), ApiError> {
    if user
        .view
        .sees_elder_id(state.store.as_ref(), incident.elder_id.as_ref())
        .await?
    {
        Ok(())
    } else {
        Err(no_incident(&incident.id))
    }
}

/// The elder `id`, or 404 (missing or outside the caller's view).
pub async fn elder(state: &AppState, user: &AuthUser, id: &ElderId) -> Result<Elder, ApiError> {
    state
        .store
        .elder(id)
        .await?
        .filter(|e| user.view.sees_elder(e))
        .ok_or_else(|| ApiError::NotFound(format!("elder {id} not found")))
}

/// The steward `id`, or 404 (missing or outside the caller's view).
pub async fn steward(
    state: &AppState,
    user: &AuthUser,
    id: &StewardId,
) -> Result<Steward, ApiError> {
    state
        .store
        .steward(id)
        .await?
        .filter(|s| user.view.sees_steward(s))
        .ok_or_else(|| ApiError::NotFound(format!("steward {id} not found")))
}

/// 404 unless the steward `id` is in the caller's view (without reading
/// it for a site-wide caller).
pub async fn check_steward(
    state: &AppState,
    user: &AuthUser,
    id: &StewardId,
) -> Result<(), ApiError> {
    if user.view.is_site() {
        return Ok(());
    }
    steward(state, user, id).await.map(|_| ())
}

/// The device `id`, or 404 (missing, or outside the caller's view: an
/// unbound device is the whole site's).
pub async fn device(state: &AppState, user: &AuthUser, id: &DeviceId) -> Result<Device, ApiError> {
    let not_found = || ApiError::NotFound(format!("device {id} not found"));
    let device = state.store.device(id).await?.ok_or_else(not_found)?;
    if user
        .view
        .sees_elder_id(state.store.as_ref(), device.elder_id.as_ref())
        .await?
    {
        Ok(device)
    } else {
        Err(not_found())
    }
}

/// 422 on `field` unless the caller may put something in `grid`.
pub fn writable_grid(user: &AuthUser, field: &str, grid: &str) -> Result<(), ApiError> {
    if user.view.sees_grid(grid) {
        Ok(())
    } else {
        Err(ApiError::invalid_body(
            field,
            format!("grid {grid:?} is outside your scope ({})", user.scope),
        ))
    }
}

/// 422 on `field` unless the elder a scoped caller binds something to is
/// in their view (a whole-site caller may leave it unbound).
pub async fn writable_elder(
    state: &AppState,
    user: &AuthUser,
    field: &str,
    id: Option<&ElderId>,
) -> Result<(), ApiError> {
    if user.view.sees_elder_id(state.store.as_ref(), id).await? {
        return Ok(());
    }
    Err(ApiError::invalid_body(
        field,
        match id {
            Some(id) => format!("elder {id} does not exist or is outside your scope"),
            None => format!(
                "a supervisor of {} binds devices to an elder of their grids",
                user.scope
            ),
        },
    ))
}

/// What a supervisor's stream carries when they have a scope: `incident`
/// events of elders in their grids, `steward` events of stewards in their
/// grids. Each connection keeps its own copy of the view and of elders'
/// grids, forgotten at every [`StreamScope::refresh`] (the stream's
/// session check, every few seconds), so an area or an elder moved is
/// followed within that time.
pub struct StreamScope {
    user: AuthUser,
    store: Arc<dyn Store>,
    /// Elder id to "in view", read on first sight.
    elders: HashMap<String, bool>,
}

impl StreamScope {
    pub fn new(user: AuthUser, store: Arc<dyn Store>) -> Self {
        Self {
            user,
            store,
            elders: HashMap::new(),
        }
    }

    /// Reads the view again and forgets elders' grids.
    pub async fn refresh(&mut self) -> StoreResult<()> {
        if self.user.scope != Scope::Site {
            self.user.view = View::resolve(self.store.as_ref(), &self.user.scope).await?;
            self.elders.clear();
        }
        Ok(())
    }

    /// Whether to send this event. An error (the store unreachable) is
    /// for the caller to end the stream on: the client reconnects and
    /// starts from a fresh snapshot, rather than miss or leak an event.
    pub async fn admits(&mut self, e: &StreamEvent) -> StoreResult<bool> {
        if self.user.view.is_site() || e.audience != Audience::Supervisors {
            return Ok(true);
        }
        match e.event {
            StreamKind::Steward => Ok(e
                .data
                .get("grid")
                .and_then(|g| g.as_str())
                .is_some_and(|g| self.user.view.sees_grid(g))),
            StreamKind::Incident => {
                let Some(elder) = e.data.get("elder_id").and_then(|g| g.as_str()) else {
                    return Ok(false);
                };
                if let Some(seen) = self.elders.get(elder) {
                    return Ok(*seen);
                }
                let seen = match ElderId::parse(elder) {
                    Ok(id) => {
                        self.user
                            .view
                            .sees_elder_id(self.store.as_ref(), Some(&id))
                            .await?
                    }
                    Err(_) => false,
                };
                self.elders.insert(elder.to_owned(), seen);
                Ok(seen)
            }
            // Not a supervisors' event today; a new kind stays out of a
            // scoped stream until it is taught here.
            StreamKind::Snapshot | StreamKind::Offer | StreamKind::OfferWithdrawn => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_of_grids() {
        let v = View::of_grids(["g-1".to_owned(), "g-2".to_owned()]);
        assert!(v.sees_grid("g-1"));
        assert!(!v.sees_grid("g-3"));
        assert!(!v.sees_grid(""));
        assert_eq!(v.grid_list(), Some(vec!["g-1".into(), "g-2".into()]));
        assert!(View::site().sees_grid("anything"));
        assert!(View::site().grid_list().is_none());
        assert!(!View::of_grids([]).sees_grid("g-1"));
    }
}
