//! The OpenAPI document tells the truth: schemathesis (from PyPI; `.ci/run`
//! installs it into a virtualenv of its own) generates requests from
//! `/api/openapi.json`, valid and invalid, sends them as an admin and as a
//! steward, and checks every answer against the document: no status, body,
//! header or limit the document does not declare, no 5xx, no valid
//! request refused, no invalid one taken.
//!
//! A bounded number of examples per operation and a fixed seed keep a run
//! within a few minutes on two cores and make a failure repeatable
//! (`ELDERCARE_SCHEMATHESIS_EXAMPLES`, `ELDERCARE_SCHEMATHESIS_SEED` change
//! them). Nothing is skipped: without schemathesis the test fails.

use std::path::PathBuf;
use std::process::Output;

use eldercare_tests::app::{Options, TestApp};
use serde_json::json;

/// Where `.ci/run` installs it; `SCHEMATHESIS` overrides.
const SCHEMATHESIS: &str = "/opt/eldercare-ci/schemathesis/bin/schemathesis";

fn schemathesis() -> PathBuf {
    let bin = std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SCHEMATHESIS));
    assert!(
        bin.exists(),
        "{} is missing: run `bash .ci/run` (it installs schemathesis into a virtualenv), \
         or set SCHEMATHESIS to a schemathesis binary",
        bin.display()
    );
    bin
}

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One `schemathesis run` against the app as the holder of `token`, on
/// the operations `filter` selects; its report when it found anything.
async fn run(app: &TestApp, who: &str, token: &str, filter: &[&str]) -> Option<String> {
    let mut cmd = tokio::process::Command::new(schemathesis());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    cmd.arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(format!("{}/api/openapi.json", app.base))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all"])
        .args([
            "--max-examples",
            &setting("ELDERCARE_SCHEMATHESIS_EXAMPLES", "25"),
        ])
        .args(["--seed", &setting("ELDERCARE_SCHEMATHESIS_SEED", "13")])
        // One worker: the server shares two cores with it.
        .args(["--workers", "1"])
        // The stream is endless: schemathesis reads its events for this long.
        .args(["--request-timeout", "5"])
        .args(["--no-color"])
        .args(filter)
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .kill_on_drop(true);
    let out: Output = cmd.output().await.expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("--- schemathesis as {who} ---\n{}", tail(&report, 8));
    (!out.status.success())
        .then(|| format!("=== schemathesis as {who}: {} ===\n{report}", out.status))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_what_the_server_answers() {
    let bin = schemathesis();
    let app = TestApp::spawn(Options::default()).await;
    // Something to find: an elder with a device, a steward with a login.
    app.elder_with_device("e-0001", "btn-0001", "call_button", json!({}))
        .await;
    let steward = app.steward("s-0001", "grid-1", 29.6603, 91.1381).await;
    eprintln!("schemathesis: {}", bin.display());

    // Logging out ends the session a run works with: it gets a run and a
    // token of its own, last.
    let logout = ["--include-path", "/api/v1/auth/logout"];
    let rest = ["--exclude-path", "/api/v1/auth/logout"];
    // Taken first: the runs try logins, and wrong passwords lock a name.
    let admin = app
        .login("admin", eldercare_tests::app::ADMIN_PASSWORD)
        .await;
    let mut failures = Vec::new();
    failures.extend(run(&app, "a steward", &steward, &rest).await);
    failures.extend(run(&app, "an admin", &app.admin, &rest).await);
    failures.extend(run(&app, "an admin logging out", &admin, &logout).await);
    assert!(
        failures.is_empty(),
        "the OpenAPI document disagrees with the server:\n\n{}",
        failures.join("\n\n")
    );
}
