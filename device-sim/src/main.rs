//! `device-sim`: speak as one device, for trying the dispatcher by hand;
//! `device-sim load-site` and `device-sim load` generate a large site and
//! drive it (load mode, [`eldercare_device_sim::load`]). The whole demo
//! site (devices, an ordinary day, stewards) is the library's `Simulator`,
//! which `dispatcher demo` runs; `device-sim play` runs it against any
//! dispatcher with a named scenario.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use eldercare_device_sim::device::SimDevice;
use eldercare_device_sim::load::{self, LoadConfig, Mix, StewardsConfig};
use protocol::{DeviceId, EventType, Topics};

#[derive(Parser)]
#[command(
    version,
    about = "Publish as one eldercare device (PROTOCOL.md), or drive many (load mode)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    one: OneDevice,
}

#[derive(Subcommand)]
enum Command {
    /// Write a generated site (homes of five devices, stewards with
    /// logins) for `dispatcher import`.
    LoadSite(SiteArgs),
    /// Drive N devices: heartbeats, events, and stewards answering offers.
    Load(LoadArgs),
    /// Play a site's homes and stewards through a named scenario
    /// (config/scenarios/) against a running dispatcher, until Ctrl-C.
    Play(PlayArgs),
}

#[derive(Args)]
struct PlayArgs {
    /// The site: elders, devices, stewards and logins (the format of
    /// `dispatcher import`); it must already be imported.
    #[arg(long, default_value = "config/demo-site.toml")]
    site: PathBuf,
    /// A built-in scenario (ordinary-day, flu-week, earthquake, power-cut,
    /// stuck-button) or a path to a scenario file.
    #[arg(long, default_value = "ordinary-day")]
    scenario: String,
    /// The broker, mqtt://host:port.
    #[arg(
        long,
        default_value = "mqtt://127.0.0.1:1883",
        env = "ELDERCARE_MQTT_URL"
    )]
    broker: String,
    /// Topic root.
    #[arg(long, default_value = Topics::DEFAULT_ROOT)]
    topic_root: String,
    /// The dispatcher's HTTP base.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// Simulated seconds per real second; the scenario's own when unset.
    #[arg(long)]
    speed: Option<f64>,
    /// The seed; the scenario's own when unset.
    #[arg(long)]
    seed: Option<u64>,
    /// The admin password: with it, stewards without a login get one and
    /// are played too.
    #[arg(long, env = "ELDERCARE_ADMIN_PASSWORD")]
    admin_password: Option<String>,
    /// The devices' secrets, as `dispatcher import --secrets-out` wrote
    /// them (`{"device id": "secret", …}`): each device connects with
    /// its own, as the embedded broker requires.
    #[arg(long, env = "ELDERCARE_DEVICE_SECRETS")]
    secrets: Option<PathBuf>,
}

/// One device by hand.
#[derive(Args)]
struct OneDevice {
    /// The broker, mqtt://host:port.
    #[arg(
        long,
        default_value = "mqtt://127.0.0.1:1883",
        env = "ELDERCARE_MQTT_URL"
    )]
    broker: String,
    /// Topic root.
    #[arg(long, default_value = Topics::DEFAULT_ROOT)]
    topic_root: String,
    /// The device id.
    #[arg(long)]
    device: Option<String>,
    /// The device's secret (its MQTT password; the embedded broker
    /// requires it).
    #[arg(long, env = "ELDERCARE_DEVICE_SECRET")]
    secret: Option<String>,
    /// Event type to send (call.pressed, fall.detected, vitals, …); none
    /// sends only a heartbeat.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Event data as a JSON object, e.g. '{"spo2": 84}'.
    #[arg(long, default_value = "{}")]
    data: String,
}

#[derive(Args)]
struct SiteArgs {
    /// Devices (five to a home).
    #[arg(long)]
    devices: usize,
    /// Stewards, each with a login named as their id.
    #[arg(long, default_value_t = 20)]
    stewards: usize,
    #[arg(long, default_value_t = 60)]
    heartbeat_s: u32,
    /// Id prefix: devices `{prefix}d0000000`, elders `{prefix}e…`,
    /// stewards `{prefix}s…`.
    #[arg(long, default_value = "ld-")]
    prefix: String,
    /// The generated stewards' password.
    #[arg(long, default_value = "load-steward")]
    steward_password: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the JSON site file.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct LoadArgs {
    #[arg(
        long,
        default_value = "mqtt://127.0.0.1:1883",
        env = "ELDERCARE_MQTT_URL"
    )]
    broker: String,
    #[arg(long, default_value = Topics::DEFAULT_ROOT)]
    topic_root: String,
    #[arg(long)]
    devices: usize,
    /// Seconds between one device's heartbeats (0: none).
    #[arg(long, default_value_t = 60.0)]
    heartbeat_s: f64,
    /// Send heartbeats at QoS 0 instead of 1.
    #[arg(long)]
    heartbeat_qos0: bool,
    /// Events per second across all devices, e.g. `100` or `100/s`.
    #[arg(long, default_value = "0")]
    event_rate: String,
    /// The event mix, `type=weight,…` (default: mostly vitals and bed
    /// exits, 4 % presses).
    #[arg(long)]
    mix: Option<String>,
    /// MQTT connections the devices share.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Unacknowledged QoS 1 publishes per connection.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
    /// The dispatcher's HTTP API, for stewards; several instances'
    /// comma-separated (each steward moves to the next when its stream is
    /// lost).
    #[arg(long)]
    api: Option<String>,
    /// Stewards of the generated site who answer offers (needs --api).
    #[arg(long, default_value_t = 0)]
    stewards: usize,
    #[arg(long, default_value = "load-steward")]
    steward_password: String,
    #[arg(long, default_value = "ld-")]
    prefix: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long to run.
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Print progress this often (0: only the report).
    #[arg(long, default_value_t = 10.0)]
    progress_s: f64,
}

fn broker_addr(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| anyhow::anyhow!("--broker must be mqtt://host:port"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--broker must be mqtt://host:port"))?;
    Ok((host.to_owned(), port.parse()?))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Some(Command::LoadSite(args)) => load_site(args),
        Some(Command::Play(args)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(play(args)),
        // Load mode wants every core it can get; one device wants none.
        Some(Command::Load(args)) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(run_load(args)),
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(one_device(cli.one)),
    }
}

async fn play(args: PlayArgs) -> anyhow::Result<()> {
    use eldercare_device_sim::scenario::Description;
    use eldercare_device_sim::site::Site;
    use eldercare_device_sim::{SimConfig, Simulator};

    let text = std::fs::read_to_string(&args.site)
        .map_err(|e| anyhow::anyhow!("--site {}: {e}", args.site.display()))?;
    let mut site = Site::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("--site {}: {e}", args.site.display()))?;
    if let Some(path) = &args.secrets {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("--secrets {}: {e}", path.display()))?;
        let secrets: std::collections::BTreeMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| {
                anyhow::anyhow!(
                    "--secrets {}: not a secrets file ({{\"device id\": \"secret\"}}): {e}",
                    path.display()
                )
            })?;
        let missing = site.with_secrets(&secrets);
        if !missing.is_empty() {
            eprintln!(
                "{} devices have no secret in {} and will be refused by a broker that checks: {}",
                missing.len(),
                path.display(),
                missing.join(", ")
            );
        }
    }
    let description = Description::load(&args.scenario)?;
    let (host, port) = broker_addr(&args.broker)?;
    let mut config = SimConfig::new(&host, port, &args.api, site).with_description(description);
    config.topic_root = args.topic_root;
    if let Some(speed) = args.speed {
        anyhow::ensure!(speed > 0.0 && speed.is_finite(), "--speed must be above 0");
        config.speed = speed;
    }
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    config.admin = args.admin_password.map(|p| ("admin".to_owned(), p));
    let (scenario, speed, seed) = (args.scenario.clone(), config.speed, config.seed);
    let sim = Simulator::start(config)?;
    println!(
        "playing {scenario} (seed {seed}, {speed}x): {} devices, {} stewards; Ctrl-C stops",
        sim.devices, sim.stewards
    );
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let p = sim.progress();
                let sent: u64 = p.sent.values().sum();
                println!("sent {sent} events {:?}; {} devices without power", p.sent, p.unpowered.len());
            }
        }
    }
    let p = sim.progress();
    sim.stop().await;
    println!("stopped; sent {:?}", p.sent);
    Ok(())
}

fn load_site(args: SiteArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let spec = load::site::SiteSpec {
        prefix: args.prefix,
        devices: args.devices,
        heartbeat_s: args.heartbeat_s,
        stewards: args.stewards,
        steward_password: args.steward_password,
        seed: args.seed,
    };
    let (elders, devices, stewards) = load::site::write(&spec, &args.out)?;
    println!(
        "wrote {}: {elders} elders, {devices} devices, {stewards} stewards in {:.1} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    let (host, port) = broker_addr(&args.broker)?;
    let event_rate: f64 = args
        .event_rate
        .trim_end_matches("/s")
        .parse()
        .map_err(|_| anyhow::anyhow!("--event-rate must be a number of events a second"))?;
    let mut config = LoadConfig::new(&host, port, args.devices);
    config.topic_root = args.topic_root;
    config.prefix = args.prefix;
    config.heartbeat_s = args.heartbeat_s;
    config.heartbeat_qos0 = args.heartbeat_qos0;
    config.event_rate = event_rate;
    if let Some(mix) = &args.mix {
        config.mix = Mix::parse(mix)?;
    }
    config.connections = args.connections.clamp(1, args.devices.max(1));
    config.inflight = args.inflight;
    config.seed = args.seed;
    if args.stewards > 0 {
        let api = args
            .api
            .ok_or_else(|| anyhow::anyhow!("--stewards needs --api http://host:port"))?;
        config.stewards = Some(StewardsConfig {
            api,
            count: args.stewards,
            password: args.steward_password,
        });
    }
    let handle = load::start(config);
    let started = std::time::Instant::now();
    let until = started + Duration::from_secs_f64(args.duration_s);
    let mut last = (0u64, started);
    loop {
        let now = std::time::Instant::now();
        if now >= until {
            break;
        }
        let step = if args.progress_s > 0.0 {
            Duration::from_secs_f64(args.progress_s).min(until - now)
        } else {
            until - now
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(step) => {}
        }
        if args.progress_s > 0.0 {
            let sent = handle.counters.sent();
            let now = std::time::Instant::now();
            eprintln!(
                "[{:>6.0} s] sent {sent} ({:.0} msgs/s), acked {}",
                (now - started).as_secs_f64(),
                (sent - last.0) as f64 / (now - last.1).as_secs_f64(),
                handle
                    .counters
                    .acked
                    .load(std::sync::atomic::Ordering::Relaxed)
            );
            last = (sent, now);
        }
    }
    print!("{}", handle.finish().await);
    Ok(())
}

async fn one_device(cli: OneDevice) -> anyhow::Result<()> {
    let (host, port) = broker_addr(&cli.broker)?;
    let device = cli.device.ok_or_else(|| {
        anyhow::anyhow!("--device is required (or use a subcommand: load, load-site)")
    })?;
    let device = DeviceId::parse(device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&cli.data)
        .map_err(|e| anyhow::anyhow!("--data must be a JSON object: {e}"))?;
    let mut sim =
        SimDevice::connect(&host, port, Topics::new(cli.topic_root), device, cli.secret).await?;
    sim.heartbeat(90).await?;
    if let Some(kind) = cli.event_type {
        let id = sim.event(EventType::from(kind.as_str()), data).await?;
        println!("sent {kind} as event {id}");
    } else {
        println!("sent a heartbeat");
    }
    sim.disconnect().await
}
