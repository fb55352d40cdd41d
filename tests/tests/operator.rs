//! What an operator sees of a running dispatcher: a log written to a file
//! holds one line per record, escaped and without colour codes, whatever
//! a device sends; `demo` keeps its banner readable; SIGTERM stops it as
//! soon as nothing is in flight, open streams or not.
//!
//! The real binary, as a child process writing its log to a file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use dispatcher::clock::Clock;
use eldercare_tests::app::{ADMIN_PASSWORD, free_port};
use eldercare_tests::device::{Login, TestDevice};
use eldercare_tests::process::{DispatcherProcess, ProcessApi, dispatcher_bin};
use eldercare_tests::wait;
use protocol::Topics;
use serde_json::{Value, json};

/// Before, a SIGTERM always took 5 s (a task waited for a channel that a
/// live handle kept open); an idle dispatcher now stops in milliseconds.
/// Generous for a loaded machine, still short of those 5 s.
const STOPS_WITHIN: Duration = Duration::from_secs(4);

/// A dispatcher process with its embedded broker on free ports.
struct Site {
    env: Vec<(String, String)>,
    api: ProcessApi,
    broker_port: u16,
    root: String,
}

impl Site {
    fn new(dir: &Path) -> Self {
        let http_port = free_port();
        let broker_port = free_port();
        let root = format!("op-{}/eldercare/v1", uuid::Uuid::new_v4().simple());
        let env = vec![
            (
                "ELDERCARE_HTTP_ADDR".into(),
                format!("127.0.0.1:{http_port}"),
            ),
            (
                "ELDERCARE_EMBEDDED_MQTT_ADDR".into(),
                format!("127.0.0.1:{broker_port}"),
            ),
            (
                "ELDERCARE_DATABASE_URL".into(),
                format!("sqlite://{}", dir.join("op.db").display()),
            ),
            ("ELDERCARE_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
            ("ELDERCARE__MQTT__TOPIC_ROOT".into(), root.clone()),
        ];
        Self {
            env,
            api: ProcessApi::on_port(http_port),
            broker_port,
            root,
        }
    }
}

/// Waits until the log holds `needle`.
async fn log_shows(process: &DispatcherProcess, needle: &str) -> String {
    wait::until(&format!("the log to show {needle:?}"), || async {
        let text = process.log_text();
        text.contains(needle).then_some(text)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_with_a_newline_and_escape_codes_is_one_escaped_log_line_without_colour() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::new(dir.path());
    let log = dir.path().join("dispatcher.log");
    let process = DispatcherProcess::serve(&site.env, &log);
    site.api.ready().await;

    let forged =
        "2026-12-04T03:00:00.000000Z  INFO eldercare_dispatcher::api::auth: logged in role=admin";
    // A registered device (the broker lets no other in) sending junk.
    let token = site.api.admin_token().await;
    let registered: Value = site
        .api
        .http
        .post(format!("{}/api/v1/devices", site.api.base))
        .bearer_auth(&token)
        .json(&json!({"id": "intruder-1", "kind": "call_button"}))
        .send()
        .await
        .expect("register a device")
        .json()
        .await
        .expect("the registration's answer");
    let secret = registered["secret"]
        .as_str()
        .expect("its secret")
        .to_owned();
    let mut device = TestDevice::connect_as(
        "127.0.0.1",
        site.broker_port,
        &Topics::new(site.root.clone()),
        "intruder-1",
        Clock::System,
        Login::Device { secret },
    )
    .await;
    // Not JSON: rejected, and logged with its payload.
    device
        .raw_event(format!("not json\n{forged}\n\u{1b}[2J\u{1b}[31mred").into_bytes())
        .await;
    device.flushed().await;
    let text = log_shows(&process, "rejected a device message").await;

    assert!(
        !text.contains('\u{1b}'),
        "a log written to a file has escape codes in it:\n{text:?}"
    );
    let rejected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rejected a device message"))
        .collect();
    assert_eq!(rejected.len(), 1, "{text}");
    assert!(
        rejected[0].contains("not json\\n2026-12-04T03:00:00"),
        "the payload is shown, escaped: {}",
        rejected[0]
    );
    let forged_lines: Vec<&str> = text.lines().filter(|l| l.contains(forged)).collect();
    assert!(
        forged_lines
            .iter()
            .all(|l| l.contains("rejected a device message")),
        "the payload forged a line of its own:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("2026-12-04T03:00:00")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_open_stream_and_nothing_in_flight_stops_promptly_and_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::new(dir.path());
    let log = dir.path().join("dispatcher.log");
    let mut process = DispatcherProcess::serve(&site.env, &log);
    site.api.ready().await;
    let token = site.api.admin_token().await;
    let resp = site
        .api
        .http
        .get(format!("{}/api/v1/stream", site.api.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stream request");
    assert_eq!(resp.status(), 200);
    let mut resp = resp;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: snapshot") {
        let chunk = tokio::time::timeout(wait::PATIENCE, resp.chunk())
            .await
            .expect("the stream's snapshot")
            .expect("stream body")
            .expect("the stream open");
        seen.extend_from_slice(&chunk);
    }

    let status = process.terminate_within(STOPS_WITHIN).unwrap_or_else(|| {
        panic!(
            "still running {STOPS_WITHIN:?} after SIGTERM with nothing in flight:\n{}",
            process.log_text()
        )
    });
    let text = process.log_text();
    assert!(status.success(), "exit {status}:\n{text}");
    // The dispatcher's last word is that it stopped, and nothing in an
    // ordinary run is an ERROR (rumqttd's included).
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains("stopped"),
        "the log ends with: {last}\n{text}"
    );
    assert!(
        !text.contains("did not"),
        "something was cut short:\n{text}"
    );
    assert!(
        !text.contains("ERROR"),
        "an ERROR in an ordinary run:\n{text}"
    );
    // The server ended the stream: the client sees its end, not a hang.
    let ended = tokio::time::timeout(wait::PATIENCE, async {
        while let Ok(Some(_)) = resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream goes on after the server stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_keeps_its_banner_readable_and_stops_promptly_with_the_simulator_running() {
    let dir = tempfile::tempdir().expect("temp dir");
    let site = Site::new(dir.path());
    let log = dir.path().join("demo.log");
    let file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(dispatcher_bin())
        .arg("demo")
        // The demo writes data/demo.db under its working directory.
        .current_dir(dir.path())
        .envs(
            site.env
                .iter()
                .filter(|(k, _)| k != "ELDERCARE_DATABASE_URL")
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .env_remove("ELDERCARE_LOG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("start the demo");
    let mut process = DispatcherProcess::adopt(child, &log);
    let banner = log_shows(&process, "Ctrl-C stops").await;
    assert!(banner.contains("demo logins:"), "{banner}");
    assert!(
        banner.contains("--verbose") && banner.contains("ELDERCARE_LOG"),
        "the banner says how to see the log: {banner}"
    );
    // The simulator plays for a while: still only the banner.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = process.log_text();
    let info: Vec<&str> = text.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(
        info.is_empty(),
        "INFO lines scroll the banner away:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a file:\n{text:?}"
    );

    let status = process.terminate_within(STOPS_WITHIN).unwrap_or_else(|| {
        panic!(
            "the demo still runs {STOPS_WITHIN:?} after SIGTERM:\n{}",
            process.log_text()
        )
    });
    assert!(status.success(), "exit {status}:\n{}", process.log_text());
}
