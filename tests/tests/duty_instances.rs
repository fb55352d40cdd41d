//! Device duty with two dispatchers on one PostgreSQL and one broker:
//! both receive every test call (ARCHITECTURE.md, "why every one receives
//! every event"), and still each is recorded once and answered once.

use dispatcher::clock::Clock;
use eldercare_tests::app::{elder_body, free_port};
use eldercare_tests::db::TestDb;
use eldercare_tests::device::TestDevice;
use eldercare_tests::process::{DispatcherProcess, Mosquitto, ProcessApi, dispatcher_env};
use eldercare_tests::wait;
use protocol::Topics;
use serde_json::json;

fn start(
    name: &str,
    mosquitto: &Mosquitto,
    db_url: &str,
    root: &str,
    logs: &std::path::Path,
) -> (DispatcherProcess, ProcessApi) {
    let port = free_port();
    let env = dispatcher_env(port, db_url, mosquitto, root, &format!("dispatcher-{name}"));
    let process = DispatcherProcess::serve(&env, &logs.join(format!("{name}.log")));
    (process, ProcessApi::on_port(port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_record_and_answer_each_test_call_once() {
    let mosquitto = Mosquitto::start();
    let db = eldercare_tests::db::fresh_postgres()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = tempfile::tempdir().expect("temp dir");
    let root = format!("duty-{}/eldercare/v1", uuid::Uuid::new_v4().simple());
    // The first applies the migrations alone, then the second joins.
    let (_a, a) = start("a", &mosquitto, db.url(), &root, logs.path());
    a.ready().await;
    let (_b, b) = start("b", &mosquitto, db.url(), &root, logs.path());
    b.ready().await;
    let token = a.admin_token().await;
    a.post(&token, "/api/v1/elders", elder_body("e-1", json!({})))
        .await;
    a.post(
        &token,
        "/api/v1/devices",
        json!({"id": "btn-1", "elder_id": "e-1", "kind": "call_button"}),
    )
    .await;
    let pool = sqlx::PgPool::connect(db.url()).await.expect("database");

    let topics = Topics::new(root);
    let mut button =
        TestDevice::connect("127.0.0.1", mosquitto.port, &topics, "btn-1", Clock::System).await;
    let mut lamp = button.commands().await;
    button.event("t-1", "test.call", json!({})).await;
    let ack = lamp.next().await;
    assert_eq!(
        (&ack["type"], &ack["event_id"]),
        (&json!("test.ack"), &json!("t-1"))
    );
    button
        .event("c-1", "test.confirmed", json!({"test_event_id": "t-1"}))
        .await;
    button.event("t-2", "test.call", json!({})).await;
    // Had either instance answered t-1 a second time, that answer would
    // come before t-2's (a device's commands leave in the order written).
    let next = lamp.next().await;
    assert_eq!(next["event_id"], "t-2", "{next}");
    button.flushed().await;

    wait::until("both tests stored", || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM device_tests WHERE device_id = 'btn-1'")
                .fetch_one(&pool)
                .await
                .expect("count tests");
        (n == 2).then_some(())
    })
    .await;
    let (acks, passed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE event = 'test.ack' AND target = 'btn-1'),
                (SELECT COUNT(*) FROM device_tests WHERE device_id = 'btn-1' AND passed)",
    )
    .fetch_one(&pool)
    .await
    .expect("acks and passes");
    assert_eq!(
        (acks, passed),
        (2, 1),
        "one answer per test call, t-1 passed"
    );
}
