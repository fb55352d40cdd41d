//! What any dispatcher instance on a shared PostgreSQL changed, heard as
//! it commits: `LISTEN` on the channels that `migrations/postgres/0008`'s
//! triggers `NOTIFY`. Every instance hears every change, its own included.
//!
//! A notice names what changed (a steward's id; "the stream grew"), never
//! what it became: the listener reads the row, so notices folded, reordered
//! or heard twice do no harm. A notice lost (the listening connection
//! dropped, the database restarted) is covered by [`Changes::resync`]: the
//! feed says so when it (re)connects, and the listener re-reads everything
//! it keeps.
//!
//! A connection cut off without a word (a partition, a dead NAT entry)
//! never errors by itself: the feed asks the database a question through
//! it after [`QUIET`] of silence, and a connection that does not answer
//! within [`ANSWER_WITHIN`] is dropped and made again.
//!
//! SQLite has no feed: a SQLite site runs one instance, which already knows
//! everything it changed.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgNotification, PgPoolOptions};
use sqlx::{Pool, Postgres};

use super::{StoreError, StoreResult};
use crate::domain::StewardId;

/// A steward's row was inserted or changed; the payload is its id.
pub const STEWARDS: &str = "eldercare_stewards";
/// Stream rows were inserted; no payload.
pub const STREAM: &str = "eldercare_stream";

/// Silence after which the feed checks its connection still answers.
pub const QUIET: Duration = Duration::from_secs(5);
/// How long that check, or a reconnection, may take.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// What changed since the last call, folded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The feed has just (re)connected: notices sent while it was away are
    /// lost, so re-read everything kept from the store.
    pub resync: bool,
    /// New stream rows were committed.
    pub stream: bool,
    /// Stewards whose rows changed.
    pub stewards: BTreeSet<StewardId>,
}

/// Notices from every instance, as they commit.
#[async_trait]
pub trait ChangeFeed: Send {
    /// Waits for changes and returns them, with whatever else already
    /// arrived. An error means the database cannot be reached now; call
    /// again (after a pause) and the feed reconnects, answering
    /// [`Changes::resync`] first.
    async fn next(&mut self) -> StoreResult<Changes>;
}

/// The PostgreSQL feed: one connection of its own, outside the store's
/// pool, so that listening never takes a connection from the work.
pub struct PgChanges {
    pool: Pool<Postgres>,
    listener: Option<PgListener>,
}

impl PgChanges {
    /// A feed on the database `store_pool` connects to. Connects on the
    /// first [`ChangeFeed::next`].
    pub fn new(store_pool: &Pool<Postgres>) -> Self {
        let options = (*store_pool.connect_options()).clone();
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ANSWER_WITHIN)
            .connect_lazy_with(options);
        Self {
            pool,
            listener: None,
        }
    }

    async fn connect(&self) -> StoreResult<PgListener> {
        let listen = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen_all([STEWARDS, STREAM]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match tokio::time::timeout(ANSWER_WITHIN, listen).await {
            Ok(r) => r.map_err(StoreError::Database),
            Err(_) => Err(silent("a new connection to listen on")),
        }
    }

    /// Whether the listening connection still answers.
    async fn answers(listener: &mut PgListener) -> bool {
        let ask = sqlx::query("SELECT 1").execute(&mut *listener);
        matches!(tokio::time::timeout(ANSWER_WITHIN, ask).await, Ok(Ok(_)))
    }
}

/// The database did not answer `what` in time.
fn silent(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} did not answer within {ANSWER_WITHIN:?}"),
    )))
}

#[async_trait]
impl ChangeFeed for PgChanges {
    async fn next(&mut self) -> StoreResult<Changes> {
        let mut changes = Changes::default();
        let listener = match &mut self.listener {
            Some(listener) => listener,
            None => {
                let listener = self.connect().await?;
                self.listener = Some(listener);
                changes.resync = true;
                return Ok(changes);
            }
        };
        loop {
            // `try_recv` is cancel-safe (sqlx reads whole messages or none).
            match tokio::time::timeout(QUIET, listener.try_recv()).await {
                Ok(Ok(Some(notice))) => {
                    changes.add(&notice);
                    break;
                }
                // Lost and made again by sqlx: what was sent meanwhile is
                // gone.
                Ok(Ok(None)) => {
                    changes.resync = true;
                    break;
                }
                Ok(Err(e)) => {
                    self.listener = None;
                    return Err(StoreError::Database(e));
                }
                Err(_) => {
                    if !Self::answers(listener).await {
                        self.listener = None;
                        return Err(silent(
                            "the listening connection, asked after a quiet spell,",
                        ));
                    }
                }
            }
        }
        while let Some(notice) = listener.next_buffered() {
            changes.add(&notice);
        }
        Ok(changes)
    }
}

impl Changes {
    fn add(&mut self, notice: &PgNotification) {
        match notice.channel() {
            STREAM => self.stream = true,
            STEWARDS => match StewardId::parse(notice.payload()) {
                Ok(id) => {
                    self.stewards.insert(id);
                }
                // Only our trigger sends here; a bad id would be a bug
                // somewhere, and a resync re-reads every steward.
                Err(e) => {
                    tracing::warn!(payload = notice.payload(), error = %e, "a steward notice with a bad id; re-reading all stewards");
                    self.resync = true;
                }
            },
            other => tracing::debug!(channel = other, "a notice on a channel we do not follow"),
        }
    }
}
