//! `dispatcher`: the binary. Reads settings, then runs one command; all
//! the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eldercare_dispatcher::api::{self, sim::StartSim};
use eldercare_dispatcher::clock::Clock;
use eldercare_dispatcher::credentials;
use eldercare_dispatcher::domain::DeviceId;
use eldercare_dispatcher::import::SiteFile;
use eldercare_dispatcher::settings::Settings;
use eldercare_dispatcher::startup::{self, Application};
use eldercare_dispatcher::store;

/// The demo site, built in so `demo` works from anywhere.
const DEMO_SITE: &str = include_str!("../../config/demo-site.toml");
/// What the demo's homes do (`config/scenarios/`).
const DEMO_SCENARIO: &str = "ordinary-day";

#[derive(Parser)]
#[command(version, about = "Eldercare emergency alert and dispatch")]
struct Cli {
    /// A TOML settings file (see config/production.example.toml);
    /// environment variables override it.
    #[arg(long, short, global = true, env = "ELDERCARE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dispatcher: ingest, rules, timers and the HTTP API.
    Serve,
    /// Run it with the embedded broker, a fresh SQLite file, the demo site
    /// and the simulator playing an ordinary day.
    Demo {
        /// Log everything (INFO and up) to the terminal, as `serve` does;
        /// without it the demo shows only warnings, so its banner stays
        /// readable. ELDERCARE_LOG (or RUST_LOG) overrides both.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Load elders, devices, stewards and logins from a TOML or JSON file.
    /// Devices without a secret (new ones) get one, written to
    /// --secrets-out.
    Import {
        file: PathBuf,
        /// Where to write the new devices' secrets (`{"device id":
        /// "secret"}`, mode 0600): each device's MQTT password, shown
        /// nowhere else. Required when a device needs one.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
        /// Issue every device in the file a new secret, not only those
        /// without one.
        #[arg(long)]
        rotate_secrets: bool,
    },
    /// Issue or revoke devices' secrets (their MQTT passwords).
    #[command(subcommand)]
    DeviceSecret(DeviceSecretCommand),
}

#[derive(Subcommand)]
enum DeviceSecretCommand {
    /// Issue new secrets to the devices named (or to every device without
    /// one) and write them to --out; the old ones stop working, and a
    /// running dispatcher closes their connections within seconds.
    Rotate {
        devices: Vec<String>,
        /// Every registered device that has no secret (after an upgrade,
        /// or a revocation).
        #[arg(long)]
        missing: bool,
        /// Where to write the secrets (`{"device id": "secret"}`, mode 0600).
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke the devices' secrets: they cannot connect until rotated.
    Revoke {
        #[arg(required = true)]
        devices: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(cli.command, Command::Demo { verbose: false }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, naming the setting and the fix.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => serve(settings, None).await,
        Command::Demo { .. } => {
            let db = PathBuf::from("data/demo.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            settings.database.url = format!("sqlite://{}", db.display());
            // The demo is the simulator's stage.
            settings.sim.enabled = true;
            // No week to wait for in a demo: a device that has not passed
            // its test call shows as missed at once.
            settings.device_duty.grace_days = 0;
            // Rounds to walk whatever the hour the demo starts.
            settings.care.visit_from =
                eldercare_dispatcher::domain::ClockTime::hm(0, 0).expect("00:00");
            settings.care.visit_until =
                eldercare_dispatcher::domain::ClockTime::hm(23, 59).expect("23:59");
            demo_broker_port(&mut settings)?;
            let mut site = SiteFile::from_toml(DEMO_SITE)?;
            let clock =
                eldercare_dispatcher::domain::SiteClock::new(settings.rules.night.utc_offset_min);
            demo_checkins(&mut site, &clock, chrono::Utc::now());
            serve(settings, Some(site)).await
        }
        Command::Migrate => {
            store::connect(&settings.database.url).await?;
            println!(
                "migrations applied to {}",
                startup::redact(&settings.database.url)
            );
            Ok(())
        }
        Command::Import {
            file,
            secrets_out,
            rotate_secrets,
        } => {
            let site = SiteFile::read(&file)?;
            let store = store::connect(&settings.database.url).await?;
            let need = site
                .devices_needing_secrets(store.as_ref(), rotate_secrets)
                .await?;
            if !need.is_empty() && secrets_out.is_none() {
                anyhow::bail!(
                    "{} devices need a secret (their MQTT password, shown once): \
                     add --secrets-out FILE to receive them; nothing was imported",
                    need.len()
                );
            }
            let report = site
                .import(store.as_ref(), settings.ingest.default_heartbeat_s)
                .await?;
            println!("imported {}: {report}", file.display());
            if let (false, Some(out)) = (need.is_empty(), secrets_out) {
                credentials::issue_to_file(store.as_ref(), &need, &out).await?;
                println!(
                    "{} device secrets written to {} (mode 0600); give each device its own",
                    need.len(),
                    out.display()
                );
            }
            Ok(())
        }
        Command::DeviceSecret(command) => device_secret(&settings, command).await,
    }
}

/// `dispatcher device-secret …`.
async fn device_secret(settings: &Settings, command: DeviceSecretCommand) -> anyhow::Result<()> {
    let store = store::connect(&settings.database.url).await?;
    let parse = |ids: Vec<String>| -> anyhow::Result<Vec<DeviceId>> {
        ids.into_iter()
            .map(|id| DeviceId::parse(id.clone()).map_err(|e| anyhow::anyhow!("{id:?}: {e}")))
            .collect()
    };
    match command {
        DeviceSecretCommand::Rotate {
            devices,
            missing,
            out,
        } => {
            let mut ids = parse(devices)?;
            if missing {
                ids.extend(store.devices_without_secret().await?);
            }
            if ids.is_empty() {
                anyhow::bail!(
                    "name the devices, or add --missing for every device without a secret"
                );
            }
            for id in &ids {
                if store.device(id).await?.is_none() {
                    anyhow::bail!("device {id} is not registered; nothing was changed");
                }
            }
            credentials::issue_to_file(store.as_ref(), &ids, &out).await?;
            println!(
                "{} device secrets written to {} (mode 0600)",
                ids.len(),
                out.display()
            );
        }
        DeviceSecretCommand::Revoke { devices } => {
            for id in parse(devices)? {
                store
                    .revoke_device_secret(&id, chrono::Utc::now())
                    .await
                    .map_err(|e| anyhow::anyhow!("device {id}: {e}"))?;
                println!("revoked the secret of {id}");
            }
        }
    }
    Ok(())
}

async fn serve(settings: Settings, demo: Option<SiteFile>) -> anyhow::Result<()> {
    let heartbeat_s = settings.ingest.default_heartbeat_s;
    let app = Application::build(settings, Clock::System).await?;
    let addr = app.http_addr();
    let base = format!("http://{addr}");
    if let Some(site) = &demo {
        seed_demo(&app, site, heartbeat_s).await?;
    }
    if let Some(password) = &app.generated_admin_password {
        eprintln!("created login `admin` with password {password} (shown once; change it)");
    }
    eprintln!(
        "dispatcher listening on {base}  (health: {base}/healthz, API: {base}/api/openapi.json)"
    );
    eprintln!(
        "MQTT broker: mqtt://{}:{}",
        app.broker().host,
        app.broker().port
    );
    if let Some(site) = &demo {
        // The same simulator `/api/v1/sim` controls: the dashboard can stop
        // it or start another scenario.
        let request = StartSim {
            scenario: DEMO_SCENARIO.into(),
            speed: None,
            seed: None,
        };
        let status = api::sim::start_scenario(app.state(), request, "demo")
            .await
            .map_err(|e| anyhow::anyhow!("the demo's simulator: {e}"))?;
        eprintln!(
            "device simulator: {} devices and {} stewards playing {} at {}x speed (POST /api/v1/sim/stop stops it)",
            status.devices,
            status.stewards,
            DEMO_SCENARIO,
            status.speed.unwrap_or_default()
        );
        eprintln!();
        eprintln!(
            "  dashboard:    {base}/   (supervisors' board {base}/board/, stewards' app {base}/app/)"
        );
        eprintln!("  demo logins:");
        for user in &site.users {
            match user.scope.as_text() {
                Some(scope) => eprintln!(
                    "    {:<12} {:<18} ({}, {scope})",
                    user.username, user.password, user.role
                ),
                None => eprintln!(
                    "    {:<12} {:<18} ({})",
                    user.username, user.password, user.role
                ),
            }
        }
        eprintln!();
        if logs_quiet() {
            eprintln!(
                "Logs: warnings only, so this stays readable; `dispatcher demo --verbose` or ELDERCARE_LOG=info shows everything."
            );
        }
        eprintln!("Ctrl-C stops the simulator and the dispatcher.");
    }
    // On Ctrl-C the simulator stops first, while the broker still runs.
    app.run_until(startup::shutdown_signal()).await
}

/// Whether the terminal shows only warnings (set once by [`init_tracing`]).
fn logs_quiet() -> bool {
    tracing::level_filters::LevelFilter::current() < tracing::level_filters::LevelFilter::INFO
}

/// The demo's check-ins fall due a few minutes after it starts, whatever
/// the hour, so a missed one is seen live: each elder on check-in checks
/// in between an hour ago and eight minutes from now. Near midnight the
/// site file's own times stay.
fn demo_checkins(
    site: &mut SiteFile,
    clock: &eldercare_dispatcher::domain::SiteClock,
    now: chrono::DateTime<chrono::Utc>,
) {
    use chrono::Timelike;
    use eldercare_dispatcher::domain::ClockTime;
    let at = |t: chrono::DateTime<chrono::Utc>| {
        let local = clock.time_of_day(t);
        ClockTime::hm(local.hour(), local.minute())
    };
    let (Some(from), Some(by)) = (
        at(now - chrono::Duration::hours(1)),
        at(now + chrono::Duration::minutes(8)),
    ) else {
        return;
    };
    if by <= from {
        return;
    }
    let mut moved = 0;
    for elder in &mut site.elders {
        if let Some(checkin) = &mut elder.care.checkin {
            checkin.from = from;
            checkin.by = by;
            moved += 1;
        }
    }
    if moved > 0 {
        eprintln!(
            "daily check-in: {moved} elders check in by {by} today (the demo's own time); the simulator leaves about one in eight silent"
        );
    }
}

/// Imports the demo site, saying what and how long it took.
async fn seed_demo(app: &Application, site: &SiteFile, heartbeat_s: u32) -> anyhow::Result<()> {
    use std::io::Write;
    let started = std::time::Instant::now();
    eprint!(
        "seeding the demo site ({}): {} elders, {} devices, {} stewards, {} logins … ",
        site.site.as_deref().unwrap_or("demo"),
        site.elders.len(),
        site.devices.len(),
        site.stewards.len(),
        site.users.len()
    );
    let _ = std::io::stderr().flush();
    site.import(app.state().store.as_ref(), heartbeat_s).await?;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The demo must come up on a machine that already runs a broker on 1883:
/// it takes a free port instead, and says which.
fn demo_broker_port(settings: &mut Settings) -> anyhow::Result<()> {
    #[cfg(feature = "embedded-broker")]
    if settings.mqtt.url.is_none()
        && !eldercare_dispatcher::broker::port_is_free(settings.mqtt.embedded_addr)
    {
        let taken = settings.mqtt.embedded_addr;
        let free = std::net::TcpListener::bind((taken.ip(), 0))?.local_addr()?;
        eprintln!(
            "port {} is taken (a Mosquitto already running?); the embedded broker uses {free} instead",
            taken.port()
        );
        settings.mqtt.embedded_addr = free;
    }
    Ok(())
}

/// Logs to stderr: ELDERCARE_LOG (or RUST_LOG) when set, else INFO and
/// up, or only warnings when `quiet` (the demo, whose banner and logins
/// would scroll away under a line per event). Colour only on a terminal:
/// escape codes in a log file or a journal are noise.
fn init_tracing(quiet: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ELDERCARE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if quiet {
                "warn,rumqttd=warn,rumqttd::server::broker=off"
            } else {
                // One line per HTTP request drowns what matters at 3 a.m.;
                // ELDERCARE_LOG=tower_http=info brings them back.
                "info,tower_http=warn,rumqttd=warn,rumqttd::server::broker=off,sqlx=warn"
            })
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
