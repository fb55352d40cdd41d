//! SQLite: one file, WAL, the zero-setup default for a single site.
//!
//! Readers never block in WAL mode; writers are serialised by SQLite
//! itself. Every multi-statement write starts with `BEGIN IMMEDIATE`, which
//! takes the write lock before reading anything: a deferred transaction
//! that reads first and writes later cannot wait for the lock (SQLite
//! fails it with `SQLITE_BUSY` at once), while an immediate one waits up to
//! the busy timeout. Single-statement writes take the lock at their start
//! and wait the same way.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, SqliteConnection, Transaction};

use super::dispatch_sql::dispatch_sql;
use super::sql::sql_store;

static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// How long a writer waits for another writer's transaction. Long on
/// purpose: an ingest batch waiting a few seconds is harmless, one failing
/// is a redelivery and a retry.
const BUSY_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections for a file database: a few readers alongside the one
/// writer SQLite allows at a time.
const MAX_CONNECTIONS: u32 = 4;

/// The SQLite store. The [`Store`](super::Store) methods are in
/// [`super::sql`], shared with PostgreSQL.
pub struct SqliteStore {
    /// Every statement goes through the pool; an in-memory database is a
    /// pool of exactly one connection that never closes.
    pool: Pool<Sqlite>,
}

impl SqliteStore {
    /// Opens (creating if missing, with its directory) the database at
    /// `url` and applies the migrations. `sqlite::memory:` gives a private
    /// in-memory database for quick tests.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("{url:?} is not a SQLite URL (sqlite://path/to/file.db)"))?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool_options = if in_memory {
            // Each connection to `:memory:` would be its own database.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            create_parent_dir(options.get_filename())?;
            // NORMAL under WAL survives a process crash; only a power cut
            // can lose the last commits, never corrupt the file.
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {url:?}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("applying migrations/sqlite to {url:?}"))?;
        Ok(Self { pool })
    }

    /// A transaction holding the write lock from its first statement.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Stream rows commit in `seq` order already: one writer at a time.
    async fn lock_stream(_conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

fn create_parent_dir(file: &Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database directory {}", dir.display())),
        _ => Ok(()),
    }
}

sql_store!(SqliteStore, sqlx::Sqlite, backend = Sqlite, claim_lock = "");
dispatch_sql!(
    SqliteStore,
    sqlx::Sqlite,
    row_lock = "",
    skip_locked = "",
    steward_claim = ""
);
