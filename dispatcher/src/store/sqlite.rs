//! SQLite: a file, WAL, the zero-setup default. (To be written.)

pub struct SqliteStore;

impl SqliteStore {
    pub async fn connect(_url: &str) -> anyhow::Result<Self> {
        anyhow::bail!("not yet")
    }
}
