//! Passwords and usernames, for everyone who makes or checks a login:
//! the API, `import` and the simulator. Argon2id on a small pool of
//! threads of its own ([`hashing`]), so hashing can neither starve the
//! server nor keep its memory.

mod hashing;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::OnceCell;

use hashing::HashPool;

/// Password hashes computed at once (each takes ~19 MiB and a core).
pub const HASHING_AT_ONCE: usize = 2;
/// Password hashes waiting at most; beyond, [`HashError::Busy`].
pub const HASHING_QUEUE: usize = 64;
/// Longer passwords are refused before hashing, to bound the work.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest username.
pub const MAX_USERNAME: usize = 64;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: try again after this long.
    #[error("too many logins at once; try again in {retry_after_s} s")]
    Busy { retry_after_s: u64 },
    #[error("{0}")]
    Failed(String),
}

/// 1 to [`MAX_USERNAME`] letters, digits, `_ - . @`: safe in a URL path
/// and a log line. A name outside this cannot exist, so lookups of one
/// are answered without asking the store.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= MAX_USERNAME
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
}

/// The password-hashing pool and a dummy hash. One per process (the
/// API's state holds it; failure counts are in the database).
pub struct LoginGuard {
    hashing: HashPool,
    /// A hash of a random password, to spend the same time on unknown
    /// usernames as on known ones.
    dummy: OnceCell<String>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self {
            hashing: HashPool::new(HASHING_AT_ONCE, HASHING_QUEUE),
            dummy: OnceCell::new(),
        }
    }
}

impl LoginGuard {
    /// Whether `password` matches the PHC string, on the hashing pool.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        self.hashing
            .run(move || verify_password(&password, &phc))
            .await
    }

    /// A PHC string for `password`, on the hashing pool.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        self.hashing
            .run(move || hash_password(&password))
            .await?
            .map_err(HashError::Failed)
    }

    /// The hash an unknown username is checked against, so that it
    /// costs as long as a known one.
    pub async fn dummy_hash(&self) -> Result<&str, HashError> {
        self.dummy
            .get_or_try_init(|| {
                let random: [u8; 16] = rand::random();
                self.hash(random.iter().map(|b| format!("{b:02x}")).collect())
            })
            .await
            .map(String::as_str)
    }
}

/// Argon2id with the crate's defaults (the OWASP recommendation: 19 MiB,
/// 2 passes) and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// False for a wrong password and for a hash that does not parse.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .and_then(|h| Argon2::default().verify_password(password.as_bytes(), &h))
        .is_ok()
}
