//! Real processes for the tests that kill things: the dispatcher binary
//! and a Mosquitto of the test's own (configured as config/mosquitto.conf
//! advises, so its persistent-session queue is large enough).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::app::free_port;

/// The `dispatcher` binary of this build (`target/<profile>/dispatcher`).
pub fn dispatcher_bin() -> PathBuf {
    // Another build of the same binary, to compare two in one session.
    if let Some(bin) = std::env::var_os("ELDERCARE_DISPATCHER_BIN") {
        eprintln!(
            "ELDERCARE_DISPATCHER_BIN: running {}",
            bin.to_string_lossy()
        );
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/dispatcher
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("dispatcher");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p eldercare-dispatcher` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// A Mosquitto process on a free loopback port, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
    /// Where a persistent one keeps its sessions.
    kept: Option<tempfile::TempDir>,
}

impl Mosquitto {
    /// Starts `mosquitto` with a configuration like the shipped one: QoS 1
    /// queues for a disconnected persistent session up to 100,000
    /// messages (stock Mosquitto stops at 1,000 and drops the rest).
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Kills the broker (sessions and queues are lost: persistence is
    /// off) and starts a new one on the same port.
    pub fn restart(self) -> Self {
        let port = self.port;
        drop(self);
        Self::start_on(port)
    }

    fn start_on(port: u16) -> Self {
        Self::start_with(port, "")
    }

    /// As the shipped config runs it: sessions and queued messages kept
    /// on disk, so a graceful restart ([`Self::restart_gracefully`]) loses
    /// nothing.
    pub fn start_persistent() -> Self {
        Self::start_persistent_on(free_port())
    }

    /// [`Self::start_persistent`] on `port`.
    pub fn start_persistent_on(port: u16) -> Self {
        let store = tempfile::tempdir().expect("temp dir");
        let extra = format!(
            "persistence true\npersistence_location {}/\n",
            store.path().display()
        );
        let mut m = Self::start_with(port, &extra);
        m.kept = Some(store);
        m
    }

    /// SIGTERM (Mosquitto saves its sessions and queues), then the same
    /// configuration again on the same port.
    pub fn restart_gracefully(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        self.child = Self::spawn(&self._dir.path().join("mosquitto.conf"));
        Self::wait_listening(self.port);
    }

    /// A Mosquitto on `conf`, output discarded.
    pub(crate) fn spawn(conf: &Path) -> Child {
        Command::new(mosquitto_bin())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)")
    }

    /// Waits (up to [`crate::wait::PATIENCE`]) until `port` takes
    /// connections.
    pub(crate) fn wait_listening(port: u16) {
        let deadline = std::time::Instant::now() + crate::wait::PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not start on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Starts one with extra configuration lines (a later line overrides
    /// an earlier one), e.g. a deeper session queue for a benchmark.
    pub fn start_with(port: u16, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 persistence false\n\
                 max_queued_messages 100000\n\
                 max_inflight_messages 100\n\
                 set_tcp_nodelay true\n\
                 log_dest none\n\
                 {extra}\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = Self::spawn(&conf);
        Self::wait_listening(port);
        Self {
            port,
            child,
            _dir: dir,
            kept: None,
        }
    }
}

pub(crate) fn mosquitto_bin() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("mosquitto"))
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The settings a dispatcher process of a test starts with: its own HTTP
/// port, database, broker (a [`Mosquitto`] of the test's), topic root and
/// client id, and the tests' admin password.
pub fn dispatcher_env(
    http_port: u16,
    db_url: &str,
    mosquitto: &Mosquitto,
    topic_root: &str,
    client_id: &str,
) -> Vec<(String, String)> {
    vec![
        (
            "ELDERCARE_HTTP_ADDR".into(),
            format!("127.0.0.1:{http_port}"),
        ),
        ("ELDERCARE_DATABASE_URL".into(), db_url.to_owned()),
        (
            "ELDERCARE_MQTT_URL".into(),
            format!("mqtt://127.0.0.1:{}", mosquitto.port),
        ),
        (
            "ELDERCARE_ADMIN_PASSWORD".into(),
            crate::app::ADMIN_PASSWORD.into(),
        ),
        ("ELDERCARE__MQTT__TOPIC_ROOT".into(), topic_root.to_owned()),
        ("ELDERCARE__MQTT__CLIENT_ID".into(), client_id.to_owned()),
    ]
}

/// A dispatcher process, killed on drop.
pub struct DispatcherProcess {
    child: Child,
    pub log: PathBuf,
}

impl DispatcherProcess {
    /// Runs `dispatcher serve` with exactly these environment variables
    /// added; its log goes to `log`.
    pub fn serve(env: &[(String, String)], log: &Path) -> Self {
        Self::serve_in(Command::new(dispatcher_bin()), env, log)
    }

    /// As [`Self::serve`], with at most `files` open files (soft and hard
    /// `RLIMIT_NOFILE`, set by util-linux's `prlimit`, which then becomes
    /// the dispatcher: the pid is the dispatcher's).
    pub fn serve_with_file_limit(env: &[(String, String)], log: &Path, files: u64) -> Self {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={files}:{files}"))
            .arg(dispatcher_bin());
        Self::serve_in(cmd, env, log)
    }

    /// As [`Self::serve`], with another build of the dispatcher (an older
    /// release, for a rolling upgrade).
    pub fn serve_bin(bin: &Path, env: &[(String, String)], log: &Path) -> Self {
        Self::serve_in(Command::new(bin), env, log)
    }

    /// As [`Self::serve`], inside the network namespace `netns` (`ip
    /// netns exec`, which becomes the dispatcher: the pid is its own).
    pub fn serve_in_netns(netns: &str, env: &[(String, String)], log: &Path) -> Self {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).arg(dispatcher_bin());
        Self::serve_in(cmd, env, log)
    }

    fn serve_in(mut cmd: Command, env: &[(String, String)], log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = cmd
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "ELDERCARE_LOG",
                std::env::var("ELDERCARE_DISPATCHER_LOG")
                    .unwrap_or_else(|_| "info,rumqttd=warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the dispatcher");
        Self {
            child,
            log: log.to_owned(),
        }
    }

    /// A dispatcher started some other way (`demo`), whose stderr goes to
    /// `log`: killed on drop like the others.
    pub fn adopt(child: Child, log: &Path) -> Self {
        Self {
            child,
            log: log.to_owned(),
        }
    }

    /// The process id, for reading its memory and CPU from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still alive.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGSTOP: the process stops where it is, holding whatever it
    /// held (connections, transactions, claims), as in a long stall or a
    /// suspended VM.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let ok = Command::new("kill")
            .arg(which)
            .arg(self.child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {which} {}", self.child.id());
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait for the dispatcher")
    }

    /// SIGTERM, then the exit status if it comes within `patience`
    /// (`None`: still running then; the drop kills it).
    pub fn terminate_within(
        &mut self,
        patience: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The log so far, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DispatcherProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP side of a dispatcher process a test runs: where its API is,
/// and a client for it.
#[derive(Clone)]
pub struct ProcessApi {
    pub base: String,
    pub http: reqwest::Client,
}

impl ProcessApi {
    /// The API of a process listening on this loopback port.
    pub fn on_port(http_port: u16) -> Self {
        Self {
            base: format!("http://127.0.0.1:{http_port}"),
            http: reqwest::Client::new(),
        }
    }

    /// Waits until `/readyz` answers 200 (the store and the broker are up).
    pub async fn ready(&self) {
        crate::wait::until("the dispatcher to be ready", || async {
            let r = self
                .http
                .get(format!("{}/readyz", self.base))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
    }

    /// Logs in as `admin` with the tests' admin password.
    pub async fn admin_token(&self) -> String {
        let r: serde_json::Value = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"username": "admin", "password": crate::app::ADMIN_PASSWORD}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("login body");
        r["token"].as_str().expect("token").to_owned()
    }

    /// One gauge or counter from `/metrics` (without labels).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// PUTs `body` to `path` as `token`; panics unless it succeeds. The
    /// answer's JSON (null when it has none).
    pub async fn put(&self, token: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.send(reqwest::Method::PUT, token, path, body).await
    }

    /// POSTs `body` to `path` as `token`; panics unless it succeeds. The
    /// answer's JSON (null when it has none).
    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        self.send(reqwest::Method::POST, token, path, body).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        r.json().await.unwrap_or(serde_json::Value::Null)
    }
}
