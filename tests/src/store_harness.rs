//! Running a store test on both backends: each test named in
//! [`on_both_backends!`] runs once on a fresh SQLite file (`sqlite::…`)
//! and once on a fresh PostgreSQL database (`postgres::…`), with a
//! [`Harness`] holding the store and the database's URL.

use std::sync::Arc;

use dispatcher::store::Store;
use sqlx::Connection;

/// A store on a fresh database, and that database's URL for the few tests
/// that must reach under the store (to damage a row, to assign a steward
/// before dispatch exists).
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub url: String,
}

impl Harness {
    /// Runs raw SQL on the test database, beside the store.
    pub async fn exec(&self, sql: &'static str) {
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }

    /// A count from raw SQL, beside the store: the invariants are checked
    /// on the tables themselves, not through the code under test.
    pub async fn count(&self, sql: &'static str) -> i64 {
        if self.url.starts_with("sqlite:") {
            let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        } else {
            let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// Declares each `async fn name(h: Harness)` of the calling file as two
/// tests, `sqlite::name` and `postgres::name`. PostgreSQL must be running
/// (`.ci/run` starts it): a test fails, never skips, without it.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use $crate::db::TestDb;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::db::fresh_sqlite();
                    let store = dispatcher::store::connect(db.url()).await.expect("connect");
                    assert_eq!(store.backend(), dispatcher::store::Backend::Sqlite);
                    super::$name($crate::store_harness::Harness { store, url: db.url().to_owned() }).await;
                }
            )*
        }
        mod postgres {
            use $crate::db::TestDb;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::db::fresh_postgres().await.expect("test database");
                    let store = dispatcher::store::connect(db.url()).await.expect("connect");
                    assert_eq!(store.backend(), dispatcher::store::Backend::Postgres);
                    super::$name($crate::store_harness::Harness { store, url: db.url().to_owned() }).await;
                }
            )*
        }
    };
}
