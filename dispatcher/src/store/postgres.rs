//! PostgreSQL: production, several dispatcher instances. (To be written.)

pub struct PgStore;

impl PgStore {
    pub async fn connect(_url: &str) -> anyhow::Result<Self> {
        anyhow::bail!("not yet")
    }
}
