//! `device-sim`: speak as one device, for trying the dispatcher by hand.
//! The whole site (devices, an ordinary day, stewards) is the library's
//! `Simulator`, which `dispatcher demo` runs; load mode is still to come.

use clap::Parser;
use eldercare_device_sim::device::SimDevice;
use protocol::{DeviceId, EventType, Topics};

#[derive(Parser)]
#[command(version, about = "Publish as one eldercare device (PROTOCOL.md)")]
struct Cli {
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
    device: String,
    /// Event type to send (call.pressed, fall.detected, vitals, …); none
    /// sends only a heartbeat.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Event data as a JSON object, e.g. '{"spo2": 84}'.
    #[arg(long, default_value = "{}")]
    data: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rest = cli
        .broker
        .strip_prefix("mqtt://")
        .ok_or_else(|| anyhow::anyhow!("--broker must be mqtt://host:port"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.parse::<u16>()))
        .ok_or_else(|| anyhow::anyhow!("--broker must be mqtt://host:port"))?;
    let device = DeviceId::parse(cli.device).map_err(|e| anyhow::anyhow!("--device: {e}"))?;
    let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&cli.data)
        .map_err(|e| anyhow::anyhow!("--data must be a JSON object: {e}"))?;
    let mut sim = SimDevice::connect(&host, port?, Topics::new(cli.topic_root), device).await?;
    sim.heartbeat(90).await?;
    if let Some(kind) = cli.event_type {
        let id = sim.event(EventType::from(kind.as_str()), data).await?;
        println!("sent {kind} as event {id}");
    } else {
        println!("sent a heartbeat");
    }
    sim.disconnect().await
}
