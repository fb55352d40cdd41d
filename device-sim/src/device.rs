//! One simulated device: a real MQTT connection, client id = device id, a
//! retained status and a last will of `{"online": false}`.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use protocol::{DeviceId, EventId, EventMessage, EventType, StatusMessage, Topics};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};

/// A connected device.
pub struct SimDevice {
    pub id: DeviceId,
    topics: Topics,
    client: AsyncClient,
    eventloop: EventLoop,
}

impl SimDevice {
    /// Connects and waits for the broker's CONNACK.
    pub async fn connect(
        host: &str,
        port: u16,
        topics: Topics,
        id: DeviceId,
        secret: Option<String>,
    ) -> anyhow::Result<Self> {
        let mut opts = MqttOptions::new(id.to_string(), host, port);
        if let Some(secret) = secret {
            opts.set_credentials(id.to_string(), secret);
        }
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_last_will(LastWill::new(
            topics.status(&id),
            serde_json::to_vec(&StatusMessage::offline())?,
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        loop {
            match eventloop
                .poll()
                .await
                .with_context(|| format!("cannot reach the broker at {host}:{port}"))?
            {
                Event::Incoming(Packet::ConnAck(_)) => break,
                _ => continue,
            }
        }
        Ok(Self {
            id,
            topics,
            client,
            eventloop,
        })
    }

    /// Publishes a retained "online" heartbeat and waits for its PUBACK.
    pub async fn heartbeat(&mut self, battery_pct: u8) -> anyhow::Result<()> {
        let status = StatusMessage {
            battery_pct: Some(battery_pct),
            fw: Some(env!("CARGO_PKG_VERSION").into()),
            ..StatusMessage::online(Utc::now())
        };
        let topic = self.topics.status(&self.id);
        self.publish(topic, serde_json::to_vec(&status)?, true)
            .await
    }

    /// Publishes an event and waits for the broker's PUBACK.
    pub async fn event(
        &mut self,
        kind: EventType,
        data: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<EventId> {
        let id =
            EventId::parse(uuid::Uuid::new_v4().to_string()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut message = EventMessage::new(id.clone(), kind, Utc::now());
        message.data = data;
        let topic = self.topics.events(&self.id);
        self.publish(topic, serde_json::to_vec(&message)?, false)
            .await?;
        Ok(id)
    }

    async fn publish(
        &mut self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await?;
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = self.eventloop.poll().await? {
                return Ok(());
            }
        }
    }

    /// Disconnects cleanly (no last will).
    pub async fn disconnect(mut self) -> anyhow::Result<()> {
        self.client.disconnect().await?;
        while self.eventloop.poll().await.is_ok() {}
        Ok(())
    }
}
