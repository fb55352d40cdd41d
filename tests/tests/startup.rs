//! Start-up as an operator meets it at 3 a.m.: a bad setting, a busy port
//! or an unreachable database stops the binary with one line that names
//! the setting and the fix.

use std::net::TcpListener;
use std::process::{Command, Output};

use eldercare_tests::app::free_port;
use eldercare_tests::process::dispatcher_bin;

fn serve(env: &[(&str, String)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(dispatcher_bin());
    cmd.arg("serve")
        .current_dir(dir.path())
        .env("ELDERCARE_LOG", "off")
        .env("ELDERCARE_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env(
            "ELDERCARE_EMBEDDED_MQTT_ADDR",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("ELDERCARE_ADMIN_PASSWORD", "startup-test-pw");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the dispatcher")
}

/// Fails, with one line on stderr containing every `needle`.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    assert!(!out.status.success(), "it should not start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got:\n{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing from: {}", lines[0]);
    }
}

#[test]
fn a_busy_http_port_names_the_setting() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = serve(&[("ELDERCARE_HTTP_ADDR", addr.clone())]);
    assert_one_line_error(&out, &["ELDERCARE_HTTP_ADDR", &addr]);
}

#[test]
fn a_busy_broker_port_names_the_setting() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = serve(&[("ELDERCARE_EMBEDDED_MQTT_ADDR", addr.clone())]);
    assert_one_line_error(&out, &["ELDERCARE_EMBEDDED_MQTT_ADDR", &addr]);
}

#[test]
fn an_unreachable_database_names_the_setting() {
    let port = free_port();
    let out = serve(&[(
        "ELDERCARE_DATABASE_URL",
        format!("postgres://nobody:secret@127.0.0.1:{port}/none"),
    )]);
    assert_one_line_error(&out, &["ELDERCARE_DATABASE_URL"]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("secret"),
        "the password stays out of the log"
    );
}

#[test]
fn bad_settings_name_themselves() {
    let out = serve(&[("ELDERCARE__INGEST__BATCH_MAX", "0".into())]);
    assert_one_line_error(&out, &["ingest.batch_max"]);
    let out = serve(&[("ELDERCARE_MQTT_URL", "http://broker".into())]);
    assert_one_line_error(&out, &["ELDERCARE_MQTT_URL", "mqtt://"]);
    let out = serve(&[("ELDERCARE__INGEST__RATE_LIMT_PER_S", "3".into())]);
    assert_one_line_error(&out, &["rate_limt_per_s"]);
}
