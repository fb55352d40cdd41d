//! A Mosquitto run from the project's own `config/mosquitto.conf`, as an
//! operator would: the dynamic security plugin initialised with
//! `mosquitto_ctrl dynsec init`, the TLS listener with a certificate of a
//! test CA, then `config/mosquitto-setup.sh` for one dispatcher instance.
//! Only ports and paths are changed, so a test of it tests what ships.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use crate::app::free_port;

/// The admin login `dynsec init` makes; only the setup script uses it.
const ADMIN_PASSWORD: &str = "test-admin-password";

/// One dispatcher instance's logins, as `config/mosquitto-setup.sh`
/// printed them.
#[derive(Debug, Clone)]
pub struct InstanceLogins {
    pub username: String,
    pub password: String,
    pub accounts_username: String,
    pub accounts_password: String,
}

/// A shipped-config Mosquitto on free loopback ports, killed on drop.
pub struct ShippedMosquitto {
    /// The plain listener (loopback): dispatchers.
    pub port: u16,
    /// The TLS listener: devices.
    pub tls_port: u16,
    /// The test CA's certificate (a PEM file), which devices and
    /// dispatchers over TLS trust.
    pub ca_file: PathBuf,
    /// What the setup script made for the instance named at start.
    pub instance: InstanceLogins,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ShippedMosquitto {
    /// Starts it and sets up one dispatcher instance, `instance`, for
    /// topics under `topic_root`.
    pub fn start(instance: &str, topic_root: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, tls_port) = (free_port(), free_port());
        let ca_file = make_certificates(dir.path());
        let dynsec_file = dir.path().join("dynamic-security.json");
        run(Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec_file)
            .args(["admin", ADMIN_PASSWORD]));

        let shipped = std::fs::read_to_string(repo().join("config/mosquitto.conf"))
            .expect("config/mosquitto.conf");
        let path = |name: &str| dir.path().join(name).display().to_string();
        let conf = replace_all(
            &shipped,
            &[
                ("listener 8883", format!("listener {tls_port} 127.0.0.1")),
                (
                    "listener 1883 127.0.0.1",
                    format!("listener {port} 127.0.0.1"),
                ),
                (
                    "/var/lib/mosquitto/dynamic-security.json",
                    dynsec_file.display().to_string(),
                ),
                ("/etc/mosquitto/certs/eldercare.crt", path("server.crt")),
                ("/etc/mosquitto/certs/eldercare.key", path("server.key")),
                ("/var/lib/mosquitto/", format!("{}/", dir.path().display())),
            ],
        ) + "\nlog_dest none\n";
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        open_to_mosquitto(dir.path());
        let child = crate::process::Mosquitto::spawn(&conf_path);
        for p in [port, tls_port] {
            crate::process::Mosquitto::wait_listening(p);
        }

        let printed = run(Command::new(repo().join("config/mosquitto-setup.sh"))
            .env("MOSQUITTO_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .args(["-p", &port.to_string(), "-r", topic_root, instance]));
        let settings =
            toml::Value::Table(toml::from_str(&printed).expect("the setup script prints TOML"));
        let text = |path: &[&str]| {
            let mut v = &settings;
            for key in path {
                v = &v[key];
            }
            v.as_str().expect("a string setting").to_owned()
        };
        Self {
            port,
            tls_port,
            ca_file,
            instance: InstanceLogins {
                username: text(&["mqtt", "username"]),
                password: text(&["mqtt", "password"]),
                accounts_username: text(&["mqtt", "dynsec", "username"]),
                accounts_password: text(&["mqtt", "dynsec", "password"]),
            },
            child,
            _dir: dir,
        }
    }

    /// A TLS configuration that trusts the test CA, for a device client:
    /// the dispatcher's own (`mqtt.ca_file`).
    pub fn device_tls(&self) -> rumqttc::TlsConfiguration {
        let config = dispatcher::mqtt::tls_client_config(Some(&self.ca_file))
            .expect("a TLS configuration trusting the test CA");
        rumqttc::TlsConfiguration::Rustls(Arc::new(config))
    }
}

impl Drop for ShippedMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Started as root, Mosquitto drops to its own user before it reads the
/// key and writes the dynsec file (as it would under /etc and /var/lib,
/// where the package makes them its own); a test's directory is root's.
fn open_to_mosquitto(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
    };
    set(dir, 0o777);
    for entry in std::fs::read_dir(dir).expect("read the test directory") {
        set(&entry.expect("entry").path(), 0o666);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

fn replace_all(text: &str, pairs: &[(&str, String)]) -> String {
    pairs.iter().fold(text.to_owned(), |t, (from, to)| {
        assert!(
            t.contains(from),
            "config/mosquitto.conf no longer has {from:?}"
        );
        t.replace(from, to)
    })
}

/// Runs a command that must succeed; its standard output.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a setup command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A test CA and a server certificate for 127.0.0.1 and localhost it
/// signed (openssl, as an operator would); the CA's PEM file.
fn make_certificates(dir: &Path) -> PathBuf {
    let p = |n: &str| dir.join(n).display().to_string();
    run(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=eldercare test CA",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
    ]));
    run(Command::new("openssl").args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.csr"),
    ]));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("write server.ext");
    run(Command::new("openssl").args([
        "x509",
        "-req",
        "-in",
        &p("server.csr"),
        "-CA",
        &p("ca.crt"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &p("server.ext"),
        "-out",
        &p("server.crt"),
    ]));
    dir.join("ca.crt")
}
