//! Mosquitto's dynamic security plugin, kept in step with the device
//! registry. With an external Mosquitto the broker, not the dispatcher,
//! checks a device's secret and topics (PROTOCOL.md: every broker the
//! project ships a configuration for lets a device in only with its own
//! secret and only on its own topics), so every secret the dispatcher
//! issues, rotates or revokes is set there too, before the dispatcher
//! shows it to anyone.
//!
//! Each device is a dynsec client (username = client id = device id, the
//! id bound in the client too) with a role of its own that names its
//! topics literally: Mosquitto 2.0's dynsec does not substitute `%c` or
//! `%u` in a role's ACLs (tried on Debian's 2.0.11), so one shared role
//! cannot say "its own topics". Commands go over a short-lived connection
//! of an account holding the `eldercare-accounts` role
//! (`config/mosquitto-setup.sh`), one command batch at a time per
//! instance: under `use_username_as_clientid` two connections of one
//! account would push each other off.

use std::time::Duration;

use protocol::{DeviceId, Topics};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::mqtt::BrokerUrl;
use crate::settings::DynsecSettings;

const CONTROL: &str = "$CONTROL/dynamic-security/v1";
const RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";
/// Every device's own role is named with this prefix, which is how the
/// accounts this module manages are told from the broker's others.
const DEVICE_ROLE_PREFIX: &str = "eldercare-device-";
/// A broker that has not answered in this long is treated as down.
const PATIENCE: Duration = Duration::from_secs(10);

/// Why the broker's accounts could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum DynsecError {
    #[error(
        "the broker at {broker} could not be reached or dropped the accounts connection ({why}); \
         nothing was changed: try again when the broker is up"
    )]
    Unreachable { broker: String, why: String },
    #[error(
        "the broker refused the accounts login {username:?} ({why}); check mqtt.dynsec.username \
         and password, and that config/mosquitto-setup.sh gave it the eldercare-accounts role"
    )]
    Refused { username: String, why: String },
    #[error(
        "the broker at {broker} took the accounts command but did not answer within {seconds} s: \
         is the dynamic security plugin loaded (config/mosquitto.conf), and does \
         mqtt.dynsec.username have the eldercare-accounts role (config/mosquitto-setup.sh)?"
    )]
    NoAnswer { broker: String, seconds: u64 },
    #[error("the broker's dynamic security plugin answered {command}: {error}")]
    Command { command: String, error: String },
}

impl DynsecError {
    /// Worth trying again later: the broker was away, not wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::NoAnswer { .. })
    }
}

/// The dynsec accounts of one broker.
#[derive(Debug)]
pub struct Dynsec {
    /// Connects the accounts login: address, credentials, TLS.
    options: MqttOptions,
    /// Where the devices' topics live (`mqtt.topic_root`).
    topics: Topics,
    /// For messages: where the broker is.
    broker: String,
    /// One batch at a time: a second connection of the same login would
    /// push the first off.
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// One command's answer.
#[derive(Debug, Deserialize)]
struct Answer {
    command: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(rename = "correlationData", default)]
    correlation: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Answers {
    responses: Vec<Answer>,
}

impl Dynsec {
    /// Commands `broker` as `settings` says; over TLS trusting `ca_file`
    /// when the broker's URL is `mqtts://`.
    pub fn new(
        settings: &DynsecSettings,
        broker: &BrokerUrl,
        ca_file: Option<&std::path::Path>,
        topics: Topics,
    ) -> anyhow::Result<Self> {
        let username = settings.username.clone();
        let mut options = crate::mqtt::client_options(broker, username.clone(), ca_file)?;
        options.set_credentials(username, settings.password.expose().to_owned());
        options.set_keep_alive(Duration::from_secs(10));
        options.set_clean_session(true);
        Ok(Self {
            options,
            topics,
            broker: broker.address(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// Gives `device` an account with `secret` as its password and only
    /// its own topics, creating what is missing; a device already
    /// connected is pushed off, so a rotated secret takes effect at once.
    pub async fn set_device(&self, device: &DeviceId, secret: &str) -> Result<(), DynsecError> {
        let role = device_role(device);
        let acl = |acltype: &str, topic: String| {
            json!({"command": "addRoleACL", "rolename": role, "acltype": acltype,
                   "topic": topic, "priority": 0, "allow": true})
        };
        let commands = vec![
            json!({"command": "createRole", "rolename": role}),
            acl("publishClientSend", self.topics.events(device)),
            acl("publishClientSend", self.topics.status(device)),
            acl("subscribeLiteral", self.topics.commands(device)),
            acl("publishClientReceive", self.topics.commands(device)),
            acl("unsubscribeLiteral", self.topics.commands(device)),
            json!({"command": "createClient", "username": device.as_str(),
                   "clientid": device.as_str(), "password": secret,
                   "roles": [{"rolename": role}]}),
            // The account may have been there already, with an old secret.
            json!({"command": "setClientPassword", "username": device.as_str(), "password": secret}),
            // Disabling pushes a live connection off (setting a password
            // does not): the old secret's connection ends now.
            json!({"command": "disableClient", "username": device.as_str()}),
            json!({"command": "enableClient", "username": device.as_str()}),
        ];
        self.run(commands).await.map(drop)
    }

    /// Removes `device`'s account and role; its connection ends at once.
    /// An account already gone is not an error.
    pub async fn remove_device(&self, device: &DeviceId) -> Result<(), DynsecError> {
        self.run(vec![
            json!({"command": "deleteClient", "username": device.as_str()}),
            json!({"command": "deleteRole", "rolename": device_role(device)}),
        ])
        .await
        .map(drop)
    }

    /// The devices that have an account made by this module.
    pub async fn devices(&self) -> Result<Vec<DeviceId>, DynsecError> {
        let answers = self
            .run(vec![
                json!({"command": "listRoles", "verbose": false, "count": -1, "offset": 0}),
            ])
            .await?;
        let roles = answers
            .into_iter()
            .filter_map(|a| a.data)
            .filter_map(|d| d.get("roles").cloned())
            .filter_map(|r| serde_json::from_value::<Vec<String>>(r).ok())
            .flatten();
        Ok(roles
            .filter_map(|r| r.strip_prefix(DEVICE_ROLE_PREFIX).map(str::to_owned))
            .filter_map(|id| DeviceId::parse(id).ok())
            .collect())
    }

    /// Brings the broker in line with the registry at start: accounts of
    /// devices no longer registered are removed (a device deleted while the
    /// broker was away keeps no way in). Registered devices without an
    /// account are returned: their secrets exist only hashed, so only a
    /// rotation can give them one, and the operator must be told.
    pub async fn reconcile(&self, registered: &[DeviceId]) -> Result<Vec<DeviceId>, DynsecError> {
        let with_account = self.devices().await?;
        for stale in with_account.iter().filter(|d| !registered.contains(d)) {
            tracing::info!(device = %stale, "removing the broker account of a device no longer registered");
            self.remove_device(stale).await?;
        }
        Ok(registered
            .iter()
            .filter(|d| !with_account.contains(d))
            .cloned()
            .collect())
    }

    /// Sends `commands` as one batch and returns their answers; an error
    /// that only says the thing was already so (created before, deleted
    /// before) counts as done, so every batch can be sent again.
    async fn run(&self, commands: Vec<Value>) -> Result<Vec<Answer>, DynsecError> {
        let _one = self.one_at_a_time.lock().await;
        let batch = uuid::Uuid::new_v4().simple().to_string();
        let commands: Vec<Value> = commands
            .into_iter()
            .enumerate()
            .map(|(i, mut c)| {
                c["correlationData"] = json!(format!("{batch}-{i}"));
                c
            })
            .collect();
        let expected = commands.len();
        let body = serde_json::to_vec(&json!({ "commands": commands })).expect("json");
        let answers = tokio::time::timeout(PATIENCE, self.exchange(body, &batch, expected))
            .await
            .map_err(|_| DynsecError::NoAnswer {
                broker: self.broker.clone(),
                seconds: PATIENCE.as_secs(),
            })??;
        for a in &answers {
            if let Some(error) = &a.error
                && !already_so(error)
            {
                return Err(DynsecError::Command {
                    command: a.command.clone(),
                    error: error.clone(),
                });
            }
        }
        Ok(answers)
    }

    async fn exchange(
        &self,
        body: Vec<u8>,
        batch: &str,
        expected: usize,
    ) -> Result<Vec<Answer>, DynsecError> {
        let (client, mut events) = AsyncClient::new(self.options.clone(), 10);
        let unreachable = |why: String| DynsecError::Unreachable {
            broker: self.broker.clone(),
            why,
        };
        // The broker answers on the response topic to the asking client
        // only; subscribing first, on the same connection, means the
        // answer cannot come before the subscription.
        client
            .subscribe(RESPONSE, QoS::AtLeastOnce)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        client
            .publish(CONTROL, QoS::AtLeastOnce, false, body)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut answers = Vec::new();
        let result = loop {
            match events.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(ack)))
                    if ack.code != rumqttc::ConnectReturnCode::Success =>
                {
                    break Err(DynsecError::Refused {
                        username: self.options.client_id(),
                        why: format!("{:?}", ack.code),
                    });
                }
                Ok(Event::Incoming(Incoming::Publish(p))) if p.topic == RESPONSE => {
                    let Ok(got) = serde_json::from_slice::<Answers>(&p.payload) else {
                        continue;
                    };
                    answers.extend(got.responses.into_iter().filter(|a| {
                        a.correlation
                            .as_deref()
                            .is_some_and(|c| c.starts_with(batch))
                    }));
                    if answers.len() >= expected {
                        break Ok(answers);
                    }
                }
                Ok(_) => {}
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    break Err(DynsecError::Refused {
                        username: self.options.client_id(),
                        why: format!("{code:?}"),
                    });
                }
                Err(e) => break Err(unreachable(e.to_string())),
            }
        };
        let _ = client.try_disconnect();
        // Let the DISCONNECT out; the loop ends when the broker closes.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while events.poll().await.is_ok() {}
        })
        .await;
        result
    }
}

/// The role naming `device`'s own topics.
fn device_role(device: &DeviceId) -> String {
    format!("{DEVICE_ROLE_PREFIX}{device}")
}

/// dynsec's answers when a command finds the thing already as asked.
fn already_so(error: &str) -> bool {
    matches!(
        error,
        "Role already exists"
            | "ACL with this topic already exists"
            | "Client already exists"
            | "Client not found"
            | "Role not found"
    )
}
