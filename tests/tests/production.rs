//! docs/PRODUCTION.md against the code, so the page an operator reads at
//! 3 a.m. cannot drift from what the dispatcher does:
//!
//! - every `dispatcher_*` metric it names is served by a running
//!   dispatcher's `/metrics`;
//! - `config/systemd/eldercare-dispatcher@.service` passes
//!   `systemd-analyze verify` (and the check would catch a bad line);
//! - the unit's `ExecStart` (`dispatcher serve --config …`), run with
//!   `config/production.example.toml` and the page's environment file,
//!   against a Mosquitto made as the page says (the shipped config,
//!   `mosquitto_ctrl dynsec init`, `config/mosquitto-setup.sh`), comes up
//!   ready and acting, keeps the broker's accounts with the example's
//!   `[mqtt.dynsec]` login, and stops on SIGTERM within the unit's
//!   `TimeoutStopSec` with status 0;
//! - every `ELDERCARE_*` variable it names is one the dispatcher reads;
//! - every file and section it points to exists.
//!
//! What the page says about failures is the fault suite's
//! (`tests/tests/faults.rs`). One dispatcher process per test at most.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use eldercare_tests::app::{ADMIN_PASSWORD, free_port};
use eldercare_tests::db::{TestDb, fresh_postgres};
use eldercare_tests::process::{
    DispatcherProcess, Mosquitto, ProcessApi, dispatcher_bin, dispatcher_env,
};
use eldercare_tests::shipped_mosquitto::ShippedMosquitto;
use eldercare_tests::wait::PATIENCE;

const PAGE: &str = "docs/PRODUCTION.md";
const UNIT: &str = "config/systemd/eldercare-dispatcher@.service";
/// Where the unit expects the binary and the settings file.
const INSTALLED_BIN: &str = "/usr/local/bin/dispatcher";
const INSTALLED_CONFIG: &str = "/etc/eldercare/production.toml";
/// The first line of the page's environment file block.
const ENV_FILE_HEADER: &str = "# /etc/eldercare/a.env";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Each `prefix…` name in `text`: `prefix` not preceded by a name
/// character, then name characters (`allowed`), trailing `_` dropped;
/// with the value when written `NAME=value`.
fn names(text: &str, prefix: &str, allowed: fn(char) -> bool) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at..];
        let len = rest.find(|c: char| !allowed(c)).unwrap_or(rest.len());
        let name = rest[..len].trim_end_matches('_').to_owned();
        let value = rest[len..].strip_prefix('=').map(|v| {
            v.split(|c: char| c.is_whitespace() || c == '`')
                .next()
                .unwrap_or("")
                .to_owned()
        });
        let slot = out.entry(name).or_insert(None);
        if slot.is_none() {
            *slot = value;
        }
    }
    out
}

fn metric_names(page: &str) -> BTreeSet<String> {
    names(page, "dispatcher_", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
    })
    .into_keys()
    .collect()
}

fn variable_names(page: &str) -> BTreeMap<String, Option<String>> {
    names(page, "ELDERCARE_", |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
    })
}

/// The page's environment file for instance `a`, line by line.
fn env_file(page: &str) -> Vec<(String, String)> {
    let start = page
        .find(ENV_FILE_HEADER)
        .unwrap_or_else(|| panic!("{PAGE} has no code block starting {ENV_FILE_HEADER:?}"));
    let block = &page[start..];
    let block = &block[..block.find("```").expect("the block ends")];
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{PAGE}: {l:?} in the env file is not NAME=value"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The value of the unit's `key=` line.
fn unit_setting(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{UNIT} has no {key}= line"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_page_names_is_served() {
    let named = metric_names(&read(PAGE));
    assert!(
        named.len() >= 10,
        "{PAGE} should name the metrics to watch; found only {named:?}"
    );

    let mosquitto = Mosquitto::start();
    let db = fresh_postgres().await.unwrap_or_else(|e| panic!("{e}"));
    let logs = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let root = format!("production-{}/eldercare/v1", uuid::Uuid::new_v4().simple());
    let mut process = DispatcherProcess::serve(
        &dispatcher_env(port, db.url(), &mosquitto, &root, "dispatcher-a"),
        &logs.path().join("a.log"),
    );
    let api = ProcessApi::on_port(port);
    ready(&api, &mut process).await;

    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    // Labelled families with no sample yet still have their HELP line.
    let served: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let l = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            let name = l.split([' ', '{']).next()?;
            name.starts_with("dispatcher_").then(|| name.to_owned())
        })
        .collect();
    let missing: Vec<_> = named.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "{PAGE} names metrics /metrics does not serve: {missing:?}\nserved: {served:?}"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = read(UNIT);
    let exec = unit_setting(&unit, "ExecStart");
    assert!(
        exec.starts_with(&format!("{INSTALLED_BIN} ")),
        "{UNIT}: ExecStart should run {INSTALLED_BIN}, as {PAGE} says: {exec}"
    );
    // verify checks that ExecStart's binary exists: the one just built.
    let bin = dispatcher_bin();
    let built = unit.replace(
        &format!("ExecStart={INSTALLED_BIN} "),
        &format!("ExecStart={} ", bin.display()),
    );

    let verify = |text: &str| -> (bool, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("eldercare-dispatcher@.service"), text)
            .expect("write the unit");
        // An instance, as `systemctl enable --now eldercare-dispatcher@a`
        // makes: %i expanded, loaded from the template beside it.
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("eldercare-dispatcher@a.service"))
            .output()
            .expect("run systemd-analyze (apt-get install systemd)");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // An unknown key or a bad value is only a warning (exit 0): any
        // output at all is a failure.
        (out.status.success() && said.trim().is_empty(), said)
    };

    let (ok, said) = verify(&built);
    assert!(ok, "systemd-analyze verify {UNIT}:\n{said}");

    // The check itself catches a line systemd would ignore.
    let broken = built.replace("Restart=always", "Restart=always\nRestartNever=1");
    let (ok, said) = verify(&broken);
    assert!(
        !ok && said.contains("RestartNever"),
        "systemd-analyze verify passed a unit with an unknown key: {said}"
    );
}

/// Test c. The page's environment file is used line by line: the
/// database, the broker address and CA, and the secrets are the test's
/// own; the rest (client id, logins) as written, and they must be what
/// `config/mosquitto-setup.sh` made for that instance. The example's
/// `[mqtt.dynsec]` stays: this Mosquitto has the dynamic security plugin,
/// so its login is checked for real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_units_serve_command_with_the_example_settings_comes_up_acting() {
    let page = read(PAGE);
    let unit = read(UNIT);
    let exec = unit_setting(&unit, "ExecStart");
    let shown = exec.trim_start_matches("/usr/local/bin/");
    assert!(
        page.contains(shown),
        "{PAGE} should show the unit's command `{shown}`"
    );
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            INSTALLED_CONFIG => repo()
                .join("config/production.example.toml")
                .display()
                .to_string(),
            other => other.to_owned(),
        })
        .collect();
    assert!(
        args.iter().any(|a| a.ends_with("production.example.toml")),
        "{UNIT}: ExecStart should read {INSTALLED_CONFIG}: {exec}"
    );
    let stop_within: u64 = unit_setting(&unit, "TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");

    let written = env_file(&page);
    let get = |name: &str| {
        written
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{PAGE}: the env file has no {name}"))
    };
    let instance = get("ELDERCARE__MQTT__CLIENT_ID");
    let broker = ShippedMosquitto::start(&instance, "eldercare/v1");
    let logins = &broker.instance;
    assert_eq!(
        get("ELDERCARE__MQTT__USERNAME"),
        logins.username,
        "{PAGE}: the instance's login is what config/mosquitto-setup.sh made"
    );
    assert_eq!(
        get("ELDERCARE__MQTT__DYNSEC__USERNAME"),
        logins.accounts_username,
        "{PAGE}: the accounts login is what config/mosquitto-setup.sh made"
    );
    let db = fresh_postgres().await.unwrap_or_else(|e| panic!("{e}"));
    let ours: BTreeMap<&str, String> = BTreeMap::from([
        ("ELDERCARE_DATABASE_URL", db.url().to_owned()),
        (
            "ELDERCARE_MQTT_URL",
            format!("mqtts://localhost:{}", broker.tls_port),
        ),
        (
            "ELDERCARE__MQTT__CA_FILE",
            broker.ca_file.display().to_string(),
        ),
        ("ELDERCARE__MQTT__PASSWORD", logins.password.clone()),
        (
            "ELDERCARE__MQTT__DYNSEC__PASSWORD",
            logins.accounts_password.clone(),
        ),
        ("ELDERCARE_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]);
    let port = free_port();
    let mut env: Vec<(String, String)> = written
        .iter()
        .map(|(k, v)| {
            let v = ours.get(k.as_str()).cloned().unwrap_or_else(|| {
                assert!(
                    !v.contains('…'),
                    "{PAGE}: the env file's {k} is a placeholder; give this test a value for it"
                );
                v.clone()
            });
            (k.clone(), v)
        })
        .collect();
    // production.toml's 0.0.0.0:8080 is the balancer's business.
    env.push(("ELDERCARE_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
    env.push(("ELDERCARE_LOG".into(), "info".into()));

    // An empty working directory: with PostgreSQL and an external broker
    // nothing is written locally (the unit's ProtectSystem=strict).
    let cwd = tempfile::tempdir().expect("temp dir");
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("a.log");
    let mut cmd = Command::new(dispatcher_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("ELDERCARE") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(&args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start the dispatcher");
    let mut process = DispatcherProcess::adopt(child, &log);
    let api = ProcessApi::on_port(port);
    ready(&api, &mut process).await;

    let r = api
        .http
        .get(format!("{}/readyz", api.base))
        .send()
        .await
        .expect("GET /readyz");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("readyz JSON");
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["store"], "ok", "{body}");
    assert_eq!(body["broker"], "ok", "{body}");
    assert_eq!(body["dispatch"], "acting", "{body}");

    // The [mqtt.dynsec] login of the example, with the script's password.
    let deadline = Instant::now() + PATIENCE;
    while !process.log_text().contains("broker accounts checked") {
        assert!(
            Instant::now() < deadline,
            "the dispatcher never checked the broker's accounts:\n{}",
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // `systemctl stop`/`restart`: SIGTERM, exit 0 within TimeoutStopSec.
    let status = process.terminate_within(Duration::from_secs(stop_within));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM: {status:?} within {stop_within} s\n{}",
        process.log_text()
    );
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .expect("read the working directory")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "serve wrote local files: {left:?}");
}

#[test]
fn every_variable_the_page_names_is_read() {
    let page = read(PAGE);
    let named = variable_names(&page);
    assert!(
        named.contains_key("ELDERCARE__MQTT__CLIENT_ID"),
        "{PAGE} should name the per-instance variables; found {named:?}"
    );
    // The variables with names of their own: settings.rs's list, and
    // what main.rs reads (the log filter, the settings file).
    let settings = read("dispatcher/src/settings.rs");
    let list = settings
        .split_once("const NAMED_VARIABLES")
        .and_then(|(_, rest)| rest.split_once("];"))
        .expect("settings.rs has NAMED_VARIABLES")
        .0;
    let main = read("dispatcher/src/main.rs");
    let own: BTreeSet<String> = [list, main.as_str()]
        .iter()
        .flat_map(|text| variable_names(text).into_keys())
        .collect();
    let example = repo().join("config/production.example.toml");
    let mut unknown = Vec::new();
    for (name, value) in &named {
        if name.starts_with("ELDERCARE__") {
            // Any setting by its path: unknown names stop start-up, so
            // loading the example with it proves the dispatcher reads it.
            // The page's value if it writes one, else a text long enough
            // for a secret (a number or a flag needs its NAME=value).
            let value = value
                .clone()
                .unwrap_or_else(|| "a-long-random-test-secret-0123456789".into());
            if let Err(e) =
                dispatcher::settings::Settings::load_from(Some(&example), [(name.clone(), value)])
            {
                unknown.push(format!("{name}: {e}"));
            }
        } else if !own.contains(name) {
            unknown.push(format!("{name}: not read (known: {own:?})"));
        }
    }
    assert!(
        unknown.is_empty(),
        "{PAGE} names variables the dispatcher does not read:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_file_and_section_the_page_names_exists() {
    let page = read(PAGE);
    let mut missing = Vec::new();
    // Every word that is a path in this repository, code blocks included.
    let ours = ["config/", "docs/", "tests/", "dispatcher/", "migrations/"];
    for word in page.split(|c: char| c.is_whitespace() || "`()[],".contains(c)) {
        let word = word.trim_end_matches(['.', ':', ';']);
        if ours.iter().any(|p| word.starts_with(p)) && !repo().join(word).exists() {
            missing.push(word.to_owned());
        }
    }
    // Links to another page's section: [text](FILE.md#anchor).
    for (at, _) in page.match_indices("](") {
        let target = &page[at + 2..];
        let target = &target[..target.find(')').expect("link ends")];
        let Some((file, anchor)) = target.split_once('#') else {
            continue;
        };
        let path = format!("docs/{file}");
        let Ok(text) = std::fs::read_to_string(repo().join(&path)) else {
            missing.push(path);
            continue;
        };
        let found = text.lines().any(|l| {
            l.strip_prefix('#')
                .map(|h| github_anchor(h.trim_start_matches('#').trim()) == anchor)
                .unwrap_or(false)
        });
        if !found {
            missing.push(target.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "{PAGE} points to what does not exist: {missing:?}"
    );
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, other
/// punctuation dropped.
fn github_anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Waits for `/readyz` 200; on a timeout or an exit, fails with the log.
async fn ready(api: &ProcessApi, process: &mut DispatcherProcess) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = api.http.get(format!("{}/readyz", api.base)).send().await;
        if r.as_ref().is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(
            process.running(),
            "the dispatcher exited before it was ready:\n{}",
            process.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "the dispatcher was not ready within {PATIENCE:?} ({:?}):\n{}",
            r.map(|r| r.status()),
            process.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
