//! PostgreSQL: production, several dispatcher instances sharing one
//! database.
//!
//! Instances coordinate only through the database: the partial unique
//! index keeps one open incident per key, `INSERT … ON CONFLICT` makes
//! redelivered events duplicates, and due deadlines are claimed with
//! `FOR UPDATE SKIP LOCKED` so no two instances fire the same one and none
//! waits on another's claim.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, Pool, Postgres, Transaction};

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

/// The migrations, applied at start-up. Migrations a newer release
/// applied that this one does not know are allowed (`ignore_missing`):
/// during a rolling upgrade an older instance restarts beside a newer
/// one, and every migration is additive so the older code keeps working
/// (docs/PRODUCTION.md, "Upgrading").
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../migrations/postgres")
};

/// How long a transaction may sit idle, waiting for this process, before
/// PostgreSQL ends it and releases its locks. A process that stalls
/// mid-transaction (a long pause, a suspended VM) then holds up no other
/// instance's work on those rows, and its late commit fails instead of
/// acting on what it read before the pause.
const IDLE_IN_TRANSACTION: &str = "5s";

/// Connections per instance; PostgreSQL's default server limit is 100.
const MAX_CONNECTIONS: u32 = 10;

/// How long a caller waits for a free connection before the store reports
/// itself unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL store. The [`Store`](super::Store) methods are in
/// [`super::sql`], shared with SQLite.
pub struct PgStore {
    pool: Pool<Postgres>,
    /// The heartbeat's own connection: a busy pool must not make a live
    /// instance look silent ([`crate::fence`]).
    beat: Pool<Postgres>,
    registry: RegistryCache,
}

impl PgStore {
    /// Connects to `url` and applies the migrations (sqlx serialises
    /// concurrent migrators with an advisory lock, so instances may start
    /// together).
    /// `instance` names this process's connections (`application_name`):
    /// the claims they make are this instance's ([`crate::fence`]).
    pub async fn connect(url: &str, instance: &str) -> anyhow::Result<Self> {
        let shown = redact(url);
        let options = PgConnectOptions::from_str(url)
            .with_context(|| format!("reading the PostgreSQL URL {shown}"))?
            .application_name(instance)
            .options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("connecting to PostgreSQL at {shown}"))?;
        // A heartbeat lost in a crash is worth nothing: no need to wait
        // for the disk.
        let beat = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options.options([("synchronous_commit", "off")]));
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("applying migrations/postgres to {shown}"))?;
        Ok(Self {
            pool,
            beat,
            registry: RegistryCache::default(),
        })
    }

    /// Records this instance as seen now (by the database's clock) and
    /// counts the others seen within [`super::PEER_SEEN_WITHIN_S`].
    async fn beat(&self, me: &super::InstanceBeat) -> StoreResult<super::Peers> {
        let (alive, on_broker): (i64, i64) = sqlx::query_as(
            "WITH me AS (
                 INSERT INTO instances (id, broker_connected, version, seen_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT (id) DO UPDATE
                 SET broker_connected = excluded.broker_connected,
                     version = excluded.version, seen_at = excluded.seen_at
             ),
             -- Each start is an incarnation of its own: the long gone go.
             gone AS (DELETE FROM instances WHERE seen_at < now() - interval '1 day')
             SELECT COUNT(*), COUNT(*) FILTER (WHERE broker_connected)
             FROM instances
             WHERE id <> $1 AND seen_at > now() - make_interval(secs => $4)",
        )
        .bind(&me.instance)
        .bind(me.broker_connected)
        .bind(&me.version)
        .bind(super::PEER_SEEN_WITHIN_S as f64)
        .fetch_one(&self.beat)
        .await
        .db()?;
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(super::Peers {
            alive: count(alive),
            on_broker: count(on_broker),
        })
    }

    /// Every instance's changes, heard through `LISTEN` ([`super::changes`]).
    fn change_feed(&self) -> Option<Box<dyn super::changes::ChangeFeed>> {
        Some(Box::new(super::changes::PgChanges::new(&self.pool)))
    }

    /// PostgreSQL locks rows as statements touch them; a plain `BEGIN` is
    /// all a writer needs.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// A connection for one writing statement: no turn to wait for.
    async fn write_conn(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// The same: row locks order PostgreSQL's writers, not a gate.
    async fn background_write_conn(&self) -> Result<PoolConnection<Postgres>, sqlx::Error> {
        self.write_conn().await
    }

    /// Serialises stream writers from here to their commit, so `seq`
    /// values (taken from a sequence at insert) become visible in order:
    /// without it a reader could see seq 8 commit before seq 7 and skip 7
    /// for good. Held for the last statements of a transaction only.
    async fn lock_stream(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('eldercare.stream'))")
            .execute(conn)
            .await?;
        Ok(())
    }
}

/// The URL without its password, for messages and logs.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

// A claim names its holder (migration 0010's trigger: the connection's
// application_name, the instance's heartbeat id); a holder silent for
// super::ORPHANED_AFTER_S loses it to whoever claims next. One fragment
// for deadlines and the outbox alike.
macro_rules! orphaned_claims {
    () => {
        "OR claimed_by IN (SELECT id FROM instances WHERE seen_at < now() - interval '3 seconds')"
    };
}

sql_store!(
    PgStore,
    sqlx::Postgres,
    backend = Postgres,
    claim_lock = "FOR UPDATE SKIP LOCKED",
    orphaned = orphaned_claims!()
);
// A steward row another transaction holds is skipped, not waited for: it
// is being claimed or released by someone else right now.
dispatch_sql!(
    PgStore,
    sqlx::Postgres,
    row_lock = "FOR UPDATE",
    skip_locked = "FOR UPDATE SKIP LOCKED",
    steward_claim = "AND id IN (SELECT id FROM stewards WHERE id = $1 FOR UPDATE SKIP LOCKED)",
    orphaned = orphaned_claims!(),
    write_tx = sqlx::Transaction<'static, sqlx::Postgres>
);

reach_sql!(PgStore, sqlx::Postgres, row_lock = "FOR UPDATE");
logins_sql!(PgStore, sqlx::Postgres);
secrets_sql!(PgStore, sqlx::Postgres);
// A new site's first pass plans thousands of visits into a table the
// planner last saw empty: fresh statistics keep its lookups on the index.
care_sql!(PgStore, sqlx::Postgres, analyze_visits = "ANALYZE visits");
areas_sql!(PgStore, sqlx::Postgres);
follow_ups_sql!(PgStore, sqlx::Postgres, row_lock = "FOR UPDATE");
duty_sql!(PgStore, sqlx::Postgres);
monthly_sql!(
    PgStore,
    sqlx::Postgres,
    ack = "CAST(EXTRACT(EPOCH FROM (i.acknowledged_at - i.created_at)) AS DOUBLE PRECISION)",
    arrive = "CAST(EXTRACT(EPOCH FROM (i.on_site_at - i.created_at)) AS DOUBLE PRECISION)",
    explain = "EXPLAIN (ANALYZE, BUFFERS) "
);

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn claims_are_orphaned_after_the_silence_the_fence_counts_on() {
        let window = format!("interval '{} seconds'", super::super::ORPHANED_AFTER_S);
        assert!(
            orphaned_claims!().contains(&window),
            "{}",
            orphaned_claims!()
        );
    }

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/eldercare"),
            "postgres://app:***@db:5432/eldercare"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }
}

retention_sql!(PgStore, sqlx::Postgres);
