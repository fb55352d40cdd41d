//! SQLite: one file, WAL, the zero-setup default for a single site.
//!
//! Readers never block in WAL mode; writers are serialised by SQLite
//! itself. Every multi-statement write starts with `BEGIN IMMEDIATE`, which
//! takes the write lock before reading anything: a deferred transaction
//! that reads first and writes later cannot wait for the lock (SQLite
//! fails it with `SQLITE_BUSY` at once), while an immediate one waits up to
//! the busy timeout. Single-statement writes take the lock at their start
//! and wait the same way.
//!
//! Within one process, writers also queue on a [`WriteGate`] before they
//! ask SQLite. SQLite's own wait is a sleep-and-retry (1, 2, 5, 10 … 100 ms
//! between tries), so a writer arriving just after another began would
//! sleep long after the lock was free again: a press queued behind a
//! heartbeat flush waited up to 70 ms that way. The gate hands the lock on
//! in arrival order the moment it is released. The busy timeout still
//! covers other processes (`dispatcher import` beside a running server).
//!
//! Nor does a writer copy the write-ahead log back into the database
//! file: SQLite would do it inside whichever commit crossed 1,000 pages of
//! log, and that writer kept this process's write turn 5 ms longer (the
//! press-to-offer tail). A checkpointer task does it every half second
//! beside the writers.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, SqliteConnection, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::StoreResult;
use super::areas_sql::areas_sql;
use super::care_sql::care_sql;
use super::dispatch_sql::dispatch_sql;
use super::duty_sql::duty_sql;
use super::follow_ups_sql::follow_ups_sql;
use super::logins_sql::logins_sql;
use super::monthly_sql::monthly_sql;
use super::reach_sql::reach_sql;
use super::registry_cache::RegistryCache;
use super::retention_sql::retention_sql;
use super::secrets_sql::secrets_sql;
use super::sql::DbResult;
use super::sql::sql_store;

/// The migrations; a newer release's are allowed, as on PostgreSQL
/// (`postgres::MIGRATOR`): going back one release keeps the data.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../migrations/sqlite")
};

/// How long a writer waits for another writer's transaction. Long on
/// purpose: an ingest batch waiting a few seconds is harmless, one failing
/// is a redelivery and a retry.
const BUSY_TIMEOUT: Duration = Duration::from_secs(20);

/// Connections for a file database: a few readers alongside the one
/// writer SQLite allows at a time.
const MAX_CONNECTIONS: u32 = 4;

/// How often the write-ahead log is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Past this many pages of log (64 MiB at 4 KiB pages) the checkpointer
/// finishes its copy in a write turn, so that the next writer starts the
/// log over. That turn includes a sync of the database file, which a
/// press arriving then waits for: at SQLite's own 1,000 pages it came
/// twice a second under load and the press-to-offer p99 rose by about
/// 2 ms; at this size it comes every few seconds.
const LOG_RESTART_PAGES: i64 = 16_384;

/// The SQLite store. The [`Store`](super::Store) methods are in
/// [`super::sql`], shared with PostgreSQL.
pub struct SqliteStore {
    /// Every statement goes through the pool; an in-memory database is a
    /// pool of exactly one connection that never closes.
    pool: Pool<Sqlite>,
    gate: WriteGate,
    registry: RegistryCache,
    /// The checkpointer of a file database; stopped with the store.
    checkpointer: Option<tokio::task::AbortHandle>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = &self.checkpointer {
            task.abort();
        }
    }
}

/// This process's writers, one at a time, first come first served.
#[derive(Clone, Default)]
struct WriteGate(Arc<Mutex<()>>);

impl WriteGate {
    async fn turn(&self) -> OwnedMutexGuard<()> {
        self.0.clone().lock_owned().await
    }

    /// A turn for work that can wait (the heartbeat flush): taken only
    /// when nobody holds or waits for the gate, so it never stands in
    /// front of a press; after `patience` it queues like everyone else,
    /// so it cannot starve either.
    async fn idle_turn(&self, patience: Duration) -> OwnedMutexGuard<()> {
        let give_up = tokio::time::Instant::now() + patience;
        loop {
            // A released gate goes to its waiters first: try_lock cannot
            // jump the queue.
            if let Ok(turn) = self.0.clone().try_lock_owned() {
                return turn;
            }
            if tokio::time::Instant::now() >= give_up {
                return self.turn().await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Something that writes (a transaction or a connection) holding this
/// process's write turn until it is dropped or committed.
pub struct Gated<C> {
    inner: C,
    _turn: OwnedMutexGuard<()>,
}

impl<C: Deref<Target = SqliteConnection>> Deref for Gated<C> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.inner
    }
}

impl<C: DerefMut<Target = SqliteConnection>> DerefMut for Gated<C> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}

impl Gated<Transaction<'static, Sqlite>> {
    /// Commits, then gives the turn to the next writer.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await
    }

    /// Rolls back, then gives the turn to the next writer. (Dropping the
    /// transaction would give the turn on before SQLite has rolled back.)
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl SqliteStore {
    /// None: a SQLite site runs one instance, which knows what it changed.
    fn change_feed(&self) -> Option<Box<dyn super::changes::ChangeFeed>> {
        None
    }

    /// A SQLite site runs one instance: no peers to record or count, only
    /// the round trip.
    async fn beat(&self, _me: &super::InstanceBeat) -> StoreResult<super::Peers> {
        sqlx::query("SELECT 1").execute(&self.pool).await.db()?;
        Ok(super::Peers::default())
    }

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
            // No checkpoint inside a commit (see the module's doc).
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .pragma("wal_autocheckpoint", "0");
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        }
        // A file on this machine cannot drop the line; a ping before every
        // acquire would be one more round trip to the connection's thread
        // in front of every transaction, a press's included.
        .test_before_acquire(false);
        let pool = pool_options
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {url:?}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("applying migrations/sqlite to {url:?}"))?;
        let gate = WriteGate::default();
        let checkpointer = (!in_memory)
            .then(|| tokio::spawn(checkpoint_loop(pool.clone(), gate.clone())).abort_handle());
        Ok(Self {
            pool,
            gate,
            registry: RegistryCache::default(),
            checkpointer,
        })
    }

    /// A transaction holding the write lock from its first statement.
    async fn begin_write(&self) -> Result<Gated<Transaction<'static, Sqlite>>, sqlx::Error> {
        let turn = self.gate.turn().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Gated {
            inner: tx,
            _turn: turn,
        })
    }

    /// A connection for one writing statement, in this process's turn.
    async fn write_conn(&self) -> Result<Gated<PoolConnection<Sqlite>>, sqlx::Error> {
        let turn = self.gate.turn().await;
        let conn = self.pool.acquire().await?;
        Ok(Gated {
            inner: conn,
            _turn: turn,
        })
    }

    /// As [`Self::write_conn`], for writes that can wait: it lets every
    /// queued writer go first, for up to 50 ms.
    async fn background_write_conn(&self) -> Result<Gated<PoolConnection<Sqlite>>, sqlx::Error> {
        let turn = self.gate.idle_turn(Duration::from_millis(50)).await;
        let conn = self.pool.acquire().await?;
        Ok(Gated {
            inner: conn,
            _turn: turn,
        })
    }

    /// Stream rows commit in `seq` order already: one writer at a time.
    async fn lock_stream(_conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// Copies the write-ahead log back into the database file, beside the
/// writers: a passive checkpoint takes no write lock, so it never holds a
/// press back.
///
/// SQLite starts the log over only at a write that finds all of it
/// copied, and under a steady stream of writes a checkpoint beside them
/// never catches the last ones: the log grew past 500 MB in a minute of
/// 10,000 heartbeats a second, and every read got slower with it. So once
/// the log passes [`LOG_RESTART_PAGES`], the checkpointer copies what the
/// first pass left (a few pages) again in an idle write turn, when no
/// writer of ours can add to it.
async fn checkpoint_loop(pool: Pool<Sqlite>, gate: WriteGate) {
    let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if pool.is_closed() {
            return;
        }
        let Some(log_pages) = checkpoint(&pool).await else {
            continue;
        };
        if log_pages > LOG_RESTART_PAGES {
            let _turn = gate.idle_turn(Duration::from_millis(50)).await;
            checkpoint(&pool).await;
        }
    }
}

/// One passive checkpoint: the pages in the log, or None if it failed.
async fn checkpoint(pool: &Pool<Sqlite>) -> Option<i64> {
    // (busy, pages in the log, pages copied)
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await
    {
        Ok((_, log, _)) => Some(log),
        Err(e) => {
            tracing::warn!(error = %e, "SQLite checkpoint failed; the write-ahead log grows until the next one succeeds");
            None
        }
    }
}

fn create_parent_dir(file: &Path) -> anyhow::Result<()> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database directory {}", dir.display())),
        _ => Ok(()),
    }
}

// One instance: a claim needs no named holder.
sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    backend = Sqlite,
    claim_lock = "",
    orphaned = ""
);
dispatch_sql!(
    SqliteStore,
    sqlx::Sqlite,
    row_lock = "",
    skip_locked = "",
    steward_claim = "",
    orphaned = "",
    write_tx = crate::store::sqlite::Gated<sqlx::Transaction<'static, sqlx::Sqlite>>
);
reach_sql!(SqliteStore, sqlx::Sqlite, row_lock = "");
logins_sql!(SqliteStore, sqlx::Sqlite);
retention_sql!(SqliteStore, sqlx::Sqlite);
secrets_sql!(SqliteStore, sqlx::Sqlite);
// SQLite plans by its indexes without statistics: nothing to refresh.
care_sql!(SqliteStore, sqlx::Sqlite, analyze_visits = "");
areas_sql!(SqliteStore, sqlx::Sqlite);
follow_ups_sql!(SqliteStore, sqlx::Sqlite, row_lock = "");
duty_sql!(SqliteStore, sqlx::Sqlite);
monthly_sql!(
    SqliteStore,
    sqlx::Sqlite,
    ack = "(unixepoch(i.acknowledged_at, 'subsec') - unixepoch(i.created_at, 'subsec'))",
    arrive = "(unixepoch(i.on_site_at, 'subsec') - unixepoch(i.created_at, 'subsec'))",
    explain = "EXPLAIN QUERY PLAN "
);
