//! The store's side of the site's hierarchy ([`crate::domain::Area`]):
//! which community and district each grid belongs to. Written once for
//! both backends in [`super::areas_sql`].

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::Area;

/// Grids' places in the hierarchy; every [`super::Store`] implements it.
#[async_trait]
pub trait AreaStore: Send + Sync {
    /// Every grid with a place, by district, community and grid.
    async fn areas(&self) -> StoreResult<Vec<Area>>;

    /// Sets where each grid belongs (replacing what it said before).
    async fn put_areas(&self, areas: &[Area]) -> StoreResult<usize>;

    /// Forgets a grid's place; `NotFound` if it had none.
    async fn remove_area(&self, grid: &str) -> StoreResult<()>;
}
