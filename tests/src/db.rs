//! A fresh database per test, so tests run in parallel and never see each
//! other's rows. Each helper returns a guard that owns the database: keep
//! it alive for the test; dropping it removes the database.

use std::path::PathBuf;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Where the tests find PostgreSQL (trust auth, a user allowed to create
/// databases). The database in the URL is only used to create others.
pub const PG_URL_VAR: &str = "ELDERCARE_TEST_PG_URL";
pub const PG_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database the test owns; see [`fresh_sqlite`] and [`fresh_postgres`].
pub trait TestDb: Send + Sync {
    /// The URL to give `store::connect` or `ELDERCARE_DATABASE_URL`.
    fn url(&self) -> &str;
}

/// A SQLite file in a temporary directory of its own; the directory is
/// removed when this is dropped.
#[derive(Debug)]
pub struct SqliteDb {
    dir: PathBuf,
    url: String,
}

impl TestDb for SqliteDb {
    fn url(&self) -> &str {
        &self.url
    }
}

impl SqliteDb {
    /// The directory holding the database, WAL and shared-memory files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        // Best effort: a leftover temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A SQLite URL in a fresh temporary directory. The file does not exist
/// yet: connecting creates it (and the nested directory, which the store
/// must create itself).
pub fn fresh_sqlite() -> SqliteDb {
    let dir = std::env::temp_dir().join(format!("eldercare-test-{}", unique()));
    let file = dir.join("data").join("eldercare.db");
    SqliteDb {
        url: format!("sqlite://{}", file.display()),
        dir,
    }
}

/// A PostgreSQL database created for one test, dropped (with any
/// connections still open to it) when this is dropped.
#[derive(Debug)]
pub struct PgDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb for PgDb {
    fn url(&self) -> &str {
        &self.url
    }
}

impl PgDb {
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, where blocking on async
        // work would stall or panic; a thread with its own small runtime
        // does it, and we wait for it so the database is gone before the
        // test binary exits.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                anyhow::Ok(())
            })
        });
        match dropper.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e:#}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

/// Creates a uniquely named database on the PostgreSQL that
/// `ELDERCARE_TEST_PG_URL` names (default: local, user `postgres`).
pub async fn fresh_postgres() -> anyhow::Result<PgDb> {
    let admin_url = std::env::var(PG_URL_VAR).unwrap_or_else(|_| PG_URL_DEFAULT.to_owned());
    let name = format!("eldercare_test_{}", unique());
    let mut conn = PgConnection::connect(&admin_url).await.map_err(|e| {
        anyhow::anyhow!(
            "PostgreSQL at {PG_URL_VAR}={admin_url} is not reachable ({e}); start it \
             (pg_ctlcluster <version> main start) or point {PG_URL_VAR} at one"
        )
    })?;
    // The name is ours (hex digits), so formatting it into SQL is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(PgDb {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
    })
}

/// `admin_url` with its database replaced by `name`, keeping any query
/// parameters.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
