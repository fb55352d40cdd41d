//! `dispatcher`: the binary. Reads settings, then runs one command; all
//! the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eldercare_dispatcher::clock::Clock;
use eldercare_dispatcher::import::SiteFile;
use eldercare_dispatcher::settings::Settings;
use eldercare_dispatcher::startup::{self, Application};
use eldercare_dispatcher::store;

/// The demo site, built in so `demo` works from anywhere.
const DEMO_SITE: &str = include_str!("../../config/demo-site.toml");

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
    /// Run it with the embedded broker, a fresh SQLite file and the demo site.
    Demo,
    /// Apply database migrations and exit.
    Migrate,
    /// Load elders, devices, stewards and logins from a TOML or JSON file.
    Import { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
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
        Command::Demo => {
            let db = PathBuf::from("data/demo.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            settings.database.url = format!("sqlite://{}", db.display());
            demo_broker_port(&mut settings)?;
            let site = SiteFile::from_toml(DEMO_SITE)?;
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
        Command::Import { file } => {
            let site = SiteFile::read(&file)?;
            let store = store::connect(&settings.database.url).await?;
            let report = site
                .import(store.as_ref(), settings.ingest.default_heartbeat_s)
                .await?;
            println!("imported {}: {report}", file.display());
            Ok(())
        }
    }
}

async fn serve(settings: Settings, demo: Option<SiteFile>) -> anyhow::Result<()> {
    let heartbeat_s = settings.ingest.default_heartbeat_s;
    let topic_root = settings.mqtt.topic_root.clone();
    let admin_password = settings
        .auth
        .admin_password
        .as_ref()
        .map(|p| p.expose().to_owned());
    let app = Application::build(settings, Clock::System).await?;
    let base = format!("http://{}", app.http_addr());
    if let Some(site) = &demo {
        eprintln!(
            "seeding the demo site: {} …",
            site.site.as_deref().unwrap_or("demo")
        );
        let report = site.import(app.state().store.as_ref(), heartbeat_s).await?;
        eprintln!("  {report}");
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
        eprintln!("demo logins:");
        for user in &site.users {
            eprintln!(
                "  {:<12} {:<18} ({})",
                user.username, user.password, user.role
            );
        }
    }
    let sim = match &demo {
        Some(_) => {
            let site = device_sim::site::Site::from_toml(DEMO_SITE)?;
            let mut config =
                device_sim::SimConfig::new(&app.broker().host, app.broker().port, &base, site);
            config.topic_root = topic_root;
            // The demo's store is new, so the admin password is known: the
            // simulator gives every demo steward a login and plays them all.
            config.admin = app
                .generated_admin_password
                .clone()
                .or(admin_password)
                .map(|p| ("admin".to_owned(), p));
            let sim = device_sim::Simulator::start(config)?;
            eprintln!(
                "device simulator running: {} devices and {} stewards living an ordinary day at 60x speed; Ctrl-C stops it and the dispatcher",
                sim.devices, sim.stewards
            );
            Some(sim)
        }
        None => None,
    };
    // On Ctrl-C the simulator stops first, while the broker still runs.
    app.run_until(async move {
        startup::shutdown_signal().await;
        if let Some(sim) = sim {
            sim.stop().await;
        }
    })
    .await
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ELDERCARE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                // One line per HTTP request drowns what matters at 3 a.m.;
                // ELDERCARE_LOG=tower_http=info brings them back.
                "info,tower_http=warn,rumqttd=warn,rumqttd::server::broker=off,sqlx=warn",
            )
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
