//! Outside the pair: plain tests, not one per backend (SQLite in memory
//! and on disk, and a URL that names neither backend).

use chrono::Duration;
use dispatcher::ingest::IngestBatch;
use sqlx::Connection;

use dispatcher::domain::{Device, DeviceKind};
use dispatcher::store::{EventAction, Heartbeat};

use crate::fixtures::*;

#[tokio::test]
async fn an_in_memory_sqlite_store_works() {
    let s = dispatcher::store::connect("sqlite::memory:").await.unwrap();
    s.ping().await.unwrap();
    home(&*s, "e-1", "btn-1", DeviceKind::CallButton).await;
    let got = s
        .ingest(&[press("btn-1", "p-1", day())], &rules())
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
    assert_eq!(s.elders().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_database_url_says_what_to_use() {
    let err = dispatcher::store::connect("mysql://x").await.err().unwrap();
    assert!(err.to_string().contains("sqlite://"), "{err}");
}

#[tokio::test]
async fn a_sqlite_file_is_created_with_its_directory_in_wal_mode() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    let s = dispatcher::store::connect(db.url()).await.unwrap();
    s.ping().await.unwrap();
    assert!(db.dir().join("data").join("eldercare.db").exists());
    let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // Connecting again finds the migrations applied and changes nothing.
    drop(s);
    let again = dispatcher::store::connect(db.url()).await.unwrap();
    assert!(again.elders().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_write_ahead_log_starts_over_under_steady_writes() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    let s = dispatcher::store::connect(db.url()).await.unwrap();
    let devices: Vec<Device> = (0..2000)
        .map(|n| device(&format!("d-{n}"), None, DeviceKind::BedSensor))
        .collect();
    s.upsert_devices(&devices).await.unwrap();
    // Heartbeat flushes back to back: a checkpoint beside them never finds
    // the log all copied unless it finishes in a write turn.
    let wal = db.dir().join("data").join("eldercare.db-wal");
    // The log's header counts its starts over (the checkpoint sequence,
    // bytes 12 to 16).
    let starts = || {
        use std::io::Read;
        let mut head = [0u8; 16];
        let mut file = std::fs::File::open(&wal).ok()?;
        file.read_exact(&mut head).ok()?;
        Some(u32::from_be_bytes([head[12], head[13], head[14], head[15]]))
    };
    let first = starts().unwrap_or(0);
    // A start over, with up to 60 s for it on a busy machine (64 MiB of
    // log takes a few seconds here; without the checkpointer's write
    // turn none comes at all).
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut flushes = 0u32;
    while starts().unwrap_or(0) <= first {
        assert!(
            std::time::Instant::now() < give_up,
            "the log never started over in {flushes} flushes over 60 s"
        );
        let at = day() + Duration::seconds(i64::from(flushes));
        let beats: Vec<Heartbeat> = devices
            .iter()
            .map(|d| Heartbeat {
                device_id: d.id.clone(),
                last_seen: at,
                online: true,
                battery_pct: Some(80),
                rssi_dbm: None,
                fw: None,
            })
            .collect();
        s.flush_heartbeats(&beats).await.unwrap();
        flushes += 1;
    }
}

#[tokio::test]
async fn the_write_ahead_log_is_checkpointed_beside_the_writers() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    let s = dispatcher::store::connect(db.url()).await.unwrap();
    s.ping().await.unwrap();
    // A megabyte written with automatic checkpoints off, as the store's
    // own connections write: it stays in the log until someone copies it.
    let mut c = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    for sql in [
        "PRAGMA wal_autocheckpoint = 0",
        "CREATE TABLE filler (b BLOB)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO filler SELECT randomblob(1000) FROM n",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let file = db.dir().join("data").join("eldercare.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&file).unwrap().len() < 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the log was not copied into {} within 10 s",
            file.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The store kept working beside it.
    s.ping().await.unwrap();
}

/// Waits for changes until `enough` holds of what was heard, folded.
async fn hear_until(
    feed: &mut Box<dyn dispatcher::store::changes::ChangeFeed>,
    enough: impl Fn(&dispatcher::store::changes::Changes) -> bool,
) -> dispatcher::store::changes::Changes {
    let mut heard = dispatcher::store::changes::Changes::default();
    while !enough(&heard) {
        let next = tokio::time::timeout(std::time::Duration::from_secs(30), feed.next())
            .await
            .unwrap_or_else(|_| panic!("nothing more heard; so far {heard:?}"));
        // A dropped connection answers an error once, then reconnects.
        let Ok(changes) = next else { continue };
        heard.resync |= changes.resync;
        heard.stream |= changes.stream;
        heard.stewards.extend(changes.stewards);
    }
    heard
}

/// Several instances share one PostgreSQL: each hears, as they commit,
/// which stewards any of them changed and that the stream grew. A write
/// that changes nothing says nothing; a listening connection killed under
/// the feed comes back and says to re-read everything.
#[tokio::test]
async fn postgres_announces_steward_changes_and_stream_rows_as_they_commit() {
    let db = eldercare_tests::db::fresh_postgres().await.unwrap();
    use eldercare_tests::db::TestDb;
    let other = dispatcher::store::connect(db.url()).await.unwrap();
    let this = dispatcher::store::connect(db.url()).await.unwrap();
    let mut feed = this.changes().expect("PostgreSQL has a change feed");
    assert!(
        hear_until(&mut feed, |c| c.resync).await.resync,
        "connecting says to re-read"
    );

    other.insert_steward(&steward("s-1")).await.unwrap();
    other.insert_steward(&steward("s-2")).await.unwrap();
    let heard = hear_until(&mut feed, |c| c.stewards.len() == 2).await;
    assert_eq!(
        heard.stewards,
        [steward_id("s-1"), steward_id("s-2")].into()
    );
    assert!(!heard.stream && !heard.resync, "{heard:?}");

    // The same row written again announces nothing: the next thing heard
    // is s-2 going on duty, without s-1.
    other.update_steward(&steward("s-1")).await.unwrap();
    other
        .set_steward_duty(&steward_id("s-2"), true, day())
        .await
        .unwrap();
    let heard = hear_until(&mut feed, |c| !c.stewards.is_empty()).await;
    assert_eq!(heard.stewards, [steward_id("s-2")].into());

    // A press opens an incident: stream rows, one notice for the batch.
    home(&*other, "e-1", "btn-1", DeviceKind::CallButton).await;
    let got = other
        .ingest(&[press("btn-1", "p-1", day())], &rules())
        .await
        .unwrap();
    assert_eq!(got[0].action, EventAction::Opened);
    assert!(hear_until(&mut feed, |c| c.stream).await.stream);

    // The listening connection is killed: the feed reconnects and says to
    // re-read, and hears what comes after.
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the listening connection was found");
    assert!(hear_until(&mut feed, |c| c.resync).await.resync);
    other
        .set_steward_duty(&steward_id("s-1"), true, day())
        .await
        .unwrap();
    let heard = hear_until(&mut feed, |c| !c.stewards.is_empty()).await;
    assert_eq!(heard.stewards, [steward_id("s-1")].into());
}

#[tokio::test]
async fn sqlite_has_no_change_feed_one_instance_knows_what_it_changed() {
    let s = dispatcher::store::connect("sqlite::memory:").await.unwrap();
    assert!(s.changes().is_none());
}

/// A claim names its holder. While the holder's heartbeat is heard its
/// claim waits out its lease; once the holder is silent (killed, cut off,
/// stalled) another instance takes it over within seconds, and the old
/// holder's claim then fires nothing.
#[tokio::test]
async fn a_silent_instances_claims_are_taken_over_before_their_lease_ends() {
    use dispatcher::dispatch::Lifecycle;
    use dispatcher::store::{InstanceBeat, Peers};
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_postgres().await.unwrap();
    let a = dispatcher::store::connect_as(db.url(), "dispatcher-a:00000001")
        .await
        .unwrap();
    let b = dispatcher::store::connect_as(db.url(), "dispatcher-b:00000002")
        .await
        .unwrap();
    let beat = |instance: &str| InstanceBeat {
        instance: instance.into(),
        broker_connected: true,
        version: "test".into(),
    };
    a.heartbeat(&beat("dispatcher-a:00000001")).await.unwrap();
    let peers = b.heartbeat(&beat("dispatcher-b:00000002")).await.unwrap();
    assert_eq!(
        peers,
        Peers {
            alive: 1,
            on_broker: 1
        }
    );

    a.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    let _ = a
        .apply(
            &[dispatcher::rules::Effect::Schedule {
                key: "k-1".into(),
                due_at: t0,
                effects: vec![raise("elder:e-1:call", "e-1")],
            }],
            &dispatcher::domain::Actor::System,
            t0,
            &rules(),
        )
        .await
        .unwrap();
    let lease = Duration::seconds(60);
    let held = a.claim_due(t0, lease, 10).await.unwrap();
    assert_eq!(held.len(), 1);
    let later = t0 + Duration::seconds(10);
    a.heartbeat(&beat("dispatcher-a:00000001")).await.unwrap();
    assert!(
        b.claim_due(later, lease, 10).await.unwrap().is_empty(),
        "a is heard: its claim holds for its lease"
    );

    // a goes silent.
    let mut admin = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query(
        "UPDATE instances SET seen_at = now() - interval '10 seconds'
         WHERE id = 'dispatcher-a:00000001'",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        b.heartbeat(&beat("dispatcher-b:00000002")).await.unwrap(),
        Peers::default(),
        "a no longer counts as alive"
    );
    let taken = b.claim_due(later, lease, 10).await.unwrap();
    assert_eq!(taken.len(), 1, "taken over before a's lease ended");
    assert!(
        a.fire_deadline(&held[0], later, &rules())
            .await
            .unwrap()
            .is_empty(),
        "a's old claim fires nothing"
    );
    let fired = b.fire_deadline(&taken[0], later, &rules()).await.unwrap();
    assert_eq!(fired.len(), 1, "b's does");
}
