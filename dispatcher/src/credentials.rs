//! Device credentials (PROTOCOL.md, Transport): every device connects
//! with client id = username = its id and a secret of its own as the
//! password.
//!
//! A secret is 32 random bytes from the thread's CSPRNG, in hex, shown
//! once (the registration's answer, `dispatcher import --secrets-out`,
//! `dispatcher device-secret rotate`) and stored only as its SHA-256: a
//! fast hash is right for 256 random bits (nothing to guess), as for
//! session tokens. Checks compare in constant time.
//!
//! [`DeviceLinks`] knows the devices connected through the embedded
//! broker's gate, so a rotation or revocation can close the connection
//! that still uses the old secret.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::domain::DeviceId;

/// A fresh secret and the hash to store.
pub struct Issued {
    pub secret: String,
    pub hash: String,
}

/// A new random secret.
pub fn issue() -> Issued {
    let secret = hex(&rand::random::<[u8; 32]>());
    let hash = hash(&secret);
    Issued { secret, hash }
}

/// What is stored of a secret.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` is the one `stored` is the hash of, in constant time.
pub fn verify(secret: &str, stored: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Writes `{"device id": "secret", …}` to `path`, readable by its owner
/// only (mode 0600 from the start: the secrets never sit in a file others
/// can read). An existing file is replaced.
pub fn write_secrets_file(path: &Path, secrets: &BTreeMap<String, String>) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write the device secrets to {}", path.display()))?;
    // A file that existed keeps its mode through open: set it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (mode 0600)", path.display()))?;
    }
    let mut text = serde_json::to_string_pretty(secrets)?;
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the device secrets to {}", path.display()))
}

/// Reads a file [`write_secrets_file`] wrote.
pub fn read_secrets_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the device secrets file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a device secrets file ({{\"device id\": \"secret\", …}})",
            path.display()
        )
    })
}

/// Issues each of `devices` a new secret: writes them all to `out`
/// (mode 0600) first, then stores their hashes, so no secret is ever in
/// force that the operator was not given. The old secrets stop working;
/// a running dispatcher closes their connections within seconds.
pub async fn issue_to_file(
    store: &dyn crate::store::Store,
    devices: &[DeviceId],
    out: &Path,
) -> anyhow::Result<()> {
    let issued: Vec<(DeviceId, Issued)> = devices.iter().map(|d| (d.clone(), issue())).collect();
    let file: BTreeMap<String, String> = issued
        .iter()
        .map(|(d, i)| (d.to_string(), i.secret.clone()))
        .collect();
    write_secrets_file(out, &file)?;
    let hashes: Vec<(DeviceId, String)> = issued.into_iter().map(|(d, i)| (d, i.hash)).collect();
    store
        .set_device_secrets(&hashes, chrono::Utc::now())
        .await
        .with_context(|| {
            format!(
                "storing the new secrets failed: the devices keep their old ones; {} is not in force",
                out.display()
            )
        })?;
    Ok(())
}

/// One live device connection through the gate.
struct Link {
    /// The hash of the secret it connected with.
    secret_hash: String,
    close: CancellationToken,
    superseded: Arc<AtomicBool>,
}

/// The devices connected through the embedded broker's gate. Empty with
/// an external broker (the broker's own client list is the truth there).
#[derive(Default)]
pub struct DeviceLinks {
    links: Mutex<HashMap<DeviceId, HashMap<u64, Link>>>,
    next: AtomicU64,
}

/// A registration in [`DeviceLinks`]; dropping it removes the entry.
pub struct LinkGuard<'a> {
    links: &'a DeviceLinks,
    device: DeviceId,
    id: u64,
    pub close: CancellationToken,
    /// Set when a newer connection of the same device closed this one.
    superseded: Arc<AtomicBool>,
}

impl LinkGuard<'_> {
    /// Whether a newer connection of the same device replaced this one
    /// (then its last will is not due: the device is right there).
    pub fn superseded(&self) -> bool {
        self.superseded.load(Ordering::Relaxed)
    }
}

impl Drop for LinkGuard<'_> {
    fn drop(&mut self) {
        let mut links = self.links.lock();
        if let Some(of_device) = links.get_mut(&self.device) {
            of_device.remove(&self.id);
            if of_device.is_empty() {
                links.remove(&self.device);
            }
        }
    }
}

impl DeviceLinks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, HashMap<u64, Link>>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a connection of `device` that authenticated with the secret
    /// hashed as `secret_hash`, and closes the device's older ones: a
    /// device connecting again replaces its last connection (MQTT).
    pub fn register(&self, device: &DeviceId, secret_hash: String) -> LinkGuard<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        let superseded = Arc::new(AtomicBool::new(false));
        let mut links = self.lock();
        let of_device = links.entry(device.clone()).or_default();
        for older in of_device.values() {
            older.superseded.store(true, Ordering::Relaxed);
            older.close.cancel();
        }
        of_device.insert(
            id,
            Link {
                secret_hash,
                close: close.clone(),
                superseded: superseded.clone(),
            },
        );
        drop(links);
        LinkGuard {
            links: self,
            device: device.clone(),
            id,
            close,
            superseded,
        }
    }

    /// Waits (at most `limit`) until the device's connections older than
    /// `guard` are gone.
    pub async fn older_gone(&self, guard: &LinkGuard<'_>, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let older = self
                .lock()
                .get(&guard.device)
                .is_some_and(|of_device| of_device.keys().any(|id| *id < guard.id));
            if !older || tokio::time::Instant::now() > deadline {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Closes every connection of `device` whose secret is not the one
    /// now stored (`None`: revoked or removed, close them all). Returns
    /// how many were closed.
    pub fn close_stale(&self, device: &DeviceId, stored_hash: Option<&str>) -> usize {
        let links = self.lock();
        let Some(of_device) = links.get(device) else {
            return 0;
        };
        let mut closed = 0;
        for link in of_device.values() {
            let current = stored_hash
                .is_some_and(|h| bool::from(h.as_bytes().ct_eq(link.secret_hash.as_bytes())));
            if !current {
                link.close.cancel();
                closed += 1;
            }
        }
        closed
    }

    /// The devices with a live connection.
    pub fn connected(&self) -> Vec<DeviceId> {
        self.lock().keys().cloned().collect()
    }

    /// Live connections in all.
    pub fn count(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_checked_against_their_hash() {
        let a = issue();
        let b = issue();
        assert_ne!(a.secret, b.secret);
        assert_eq!(a.secret.len(), 64);
        assert_ne!(a.secret, a.hash, "stored hashed");
        assert!(verify(&a.secret, &a.hash));
        assert!(!verify(&b.secret, &a.hash));
        assert!(!verify("", &a.hash));
    }

    #[test]
    fn a_rotation_closes_only_connections_with_the_old_secret() {
        let links = DeviceLinks::default();
        let d = DeviceId::parse("d-1").unwrap();
        let old = issue();
        let new = issue();
        let e = DeviceId::parse("d-2").unwrap();
        let with_old = links.register(&d, old.hash.clone());
        let other = links.register(&e, old.hash.clone());
        assert_eq!(links.count(), 2);
        assert_eq!(links.close_stale(&d, Some(&new.hash)), 1);
        assert!(with_old.close.is_cancelled());
        assert!(
            !with_old.superseded(),
            "closed for its secret, not replaced"
        );
        assert!(!other.close.is_cancelled(), "another device's");
        drop(with_old);
        let with_new = links.register(&d, new.hash.clone());
        assert_eq!(links.close_stale(&d, Some(&new.hash)), 0);
        assert_eq!(links.close_stale(&d, None), 1);
        assert!(with_new.close.is_cancelled());
        drop(other);
        drop(with_new);
        assert_eq!(links.count(), 0);
        assert!(links.connected().is_empty());
    }

    #[test]
    fn a_new_connection_of_a_device_replaces_its_older_one() {
        let links = DeviceLinks::default();
        let d = DeviceId::parse("d-1").unwrap();
        let first = links.register(&d, "h".into());
        let second = links.register(&d, "h".into());
        assert!(first.close.is_cancelled() && first.superseded());
        assert!(!second.close.is_cancelled() && !second.superseded());
    }

    #[test]
    fn secrets_files_are_private() {
        let dir = std::env::temp_dir().join(format!("secrets-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.json");
        let secrets = BTreeMap::from([("d-1".to_owned(), "s".to_owned())]);
        write_secrets_file(&path, &secrets).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_secrets_file(&path).unwrap(), secrets);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
