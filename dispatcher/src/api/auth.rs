//! Logins, sessions and roles.
//!
//! - Passwords are argon2id PHC strings, hashed and checked on the
//!   blocking pool (argon2 is slow on purpose) with at most
//!   [`HASHING_AT_ONCE`] at a time, so a flood of logins cannot take every
//!   core from dispatch.
//! - A session token is 32 random bytes in hex, given to the client once;
//!   the store keeps only its SHA-256, so a copy of the database opens no
//!   sessions.
//! - A wrong username and a wrong password get the same 401 and take the
//!   same time (an unknown user is checked against a dummy hash), so the
//!   API does not tell which usernames exist.
//! - [`MAX_FAILURES`] failures in a row for one username lock it for
//!   [`LOCKOUT`] (429 with `Retry-After`), whatever the password.
//! - [`AuthUser`] is the extractor every `/api/v1` handler but login takes;
//!   [`Supervisor`] and [`Admin`] also check the role before the body is
//!   read, so a steward gets 403, not a complaint about the body.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::ApiJson;
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::domain::{Role, StewardId, User};
use crate::settings::Settings;
use crate::store::{Store, StoreError};

/// Failed logins in a row for one username before it is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked username waits; a success clears the count.
pub const LOCKOUT: Duration = Duration::minutes(5);
/// Failures further apart than this do not add up.
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// Password hashes computed at once (each takes ~19 MiB and a core).
pub const HASHING_AT_ONCE: usize = 2;
/// The shortest password a login may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longer passwords are refused before hashing, to bound the work.
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub fn routes() -> Routes {
    Routes::new()
        .post("/api/v1/auth/login", login)
        .post("/api/v1/auth/logout", logout)
        .get("/api/v1/auth/me", me)
}

/// The auth routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

// --- login ---

/// Unknown fields are ignored here (unlike registry bodies, where a
/// misspelt optional field must not pass silently): login has no
/// optional fields, and an app adding one must not lock its users out.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub role: Role,
    /// The steward this login acts as; only for stewards.
    pub steward_id: Option<StewardId>,
    /// The token stops working then; log in again.
    pub expires_at: DateTime<Utc>,
}

/// Who a token belongs to: pages check their stored session with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub role: Role,
    pub steward_id: Option<StewardId>,
}

/// The caller's login.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    responses(
        (status = 200, body = Me),
        (status = 401, description = "No token, or the session ended", body = ErrorBody),
    )
)]
pub async fn me(user: AuthUser) -> Json<Me> {
    Json(Me {
        username: user.username,
        role: user.role,
        steward_id: user.steward_id,
    })
}

/// Log out: the token stops working at once, on every device that has it.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "The session is over"),
        (status = 401, description = "No token, or the session already ended", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    user: AuthUser,
) -> Result<axum::http::StatusCode, ApiError> {
    let token = bearer_token(&headers)?.ok_or_else(missing_token)?;
    state.store.delete_session(&token_hash(token)).await?;
    tracing::info!(user = %user.username, "logged out");
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Log in: a bearer token for the other routes.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A session token", body = LoginResponse),
        (status = 401, description = "Wrong username or password (one message for both)", body = ErrorBody),
        (status = 422, description = "Missing field", body = ErrorBody),
        (status = 429, description = "Too many failures in a row for this username; see Retry-After", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = ?body.username))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let guard = &state.login_guard;
    let now = state.clock.now();
    guard.check(&body.username, now)?;

    let user = if !super::users::valid_username(&body.username) {
        None
    } else {
        state.store.user(&body.username).await?
    };
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => dummy_hash(guard).await?.to_owned(),
    };
    let ok = guard.verify(body.password, phc).await? && user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        guard.failed(&body.username, state.clock.now());
        tracing::info!("login failed");
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    guard.succeeded(&body.username);

    let (token, expires_at) =
        start_session(&state, &user, state.settings.auth.session_hours).await?;
    tracing::info!(role = %user.role, "logged in");
    Ok(Json(LoginResponse {
        token,
        role: user.role,
        steward_id: user.steward_id,
        expires_at,
    }))
}

/// A new session for `user`: its token (given to the client once) and
/// when it ends.
pub async fn start_session(
    state: &AppState,
    user: &User,
    hours: u32,
) -> Result<(String, DateTime<Utc>), ApiError> {
    let token = new_token();
    let expires_at = state.clock.now() + Duration::hours(i64::from(hours));
    state
        .store
        .insert_session(&token_hash(&token), &user.username, expires_at)
        .await?;
    Ok((token, expires_at))
}

// --- passwords, tokens, the failure count ---

/// Login throttling and the hashing pool. One per process, in
/// [`AppState`]; in memory, since a restart forgiving a few failures is
/// harmless.
pub struct LoginGuard {
    /// Consecutive failures per username.
    failures: Mutex<HashMap<String, Failures>>,
    /// Bounds concurrent argon2 work.
    hashing: Semaphore,
    /// A hash of a random password, to spend the same time on unknown
    /// usernames as on known ones.
    dummy: OnceCell<String>,
}

struct Failures {
    count: u32,
    last: DateTime<Utc>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(HASHING_AT_ONCE),
            dummy: OnceCell::new(),
        }
    }
}

/// Usernames remembered at most; beyond it stale entries are dropped, so
/// made-up usernames cannot fill the memory.
const MAX_TRACKED: usize = 10_000;

impl LoginGuard {
    /// 429 while `username` is locked.
    pub fn check(&self, username: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = failures.get(username)
            && f.count >= MAX_FAILURES
            && now < f.last + LOCKOUT
        {
            let wait = (f.last + LOCKOUT - now).num_seconds().max(1);
            return Err(ApiError::RetryLater {
                message: format!("too many failed logins for this username; try again in {wait} s"),
                retry_after_s: wait.unsigned_abs(),
            });
        }
        Ok(())
    }

    pub fn failed(&self, username: &str, now: DateTime<Utc>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(username) {
            failures.retain(|_, f| now < f.last + FAILURE_WINDOW);
            if failures.len() >= MAX_TRACKED {
                // Under a spray of usernames: forget the oldest half
                // rather than stop counting.
                let mut lasts: Vec<_> = failures.values().map(|f| f.last).collect();
                lasts.sort_unstable();
                let cut = lasts[lasts.len() / 2];
                failures.retain(|_, f| f.last > cut);
            }
        }
        let f = failures.entry(username.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now >= f.last + FAILURE_WINDOW {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(username);
    }

    /// Whether `password` matches the PHC string, on the blocking pool.
    pub async fn verify(&self, password: String, phc: String) -> Result<bool, ApiError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let _permit = self.hashing.acquire().await.map_err(internal)?;
        tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .map_err(internal)
    }

    /// A PHC string for `password`, on the blocking pool.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let _permit = self.hashing.acquire().await.map_err(internal)?;
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(internal)?
            .map_err(ApiError::Internal)
    }
}

async fn dummy_hash(guard: &LoginGuard) -> Result<&str, ApiError> {
    guard
        .dummy
        .get_or_try_init(|| guard.hash(hex(&rand::random::<[u8; 16]>())))
        .await
        .map(String::as_str)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
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

/// 32 random bytes from the thread's CSPRNG, in hex.
fn new_token() -> String {
    hex(&rand::random::<[u8; 32]>())
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
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

/// Checks a new password against the rules of API.md.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

// --- the caller ---

/// Who is calling: the user of a live session.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub username: String,
    pub role: Role,
    /// Set for stewards: the steward this login acts as.
    pub steward_id: Option<StewardId>,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?.ok_or_else(missing_token)?;
        authenticate(state, token).await
    }
}

/// For the stream only: browsers' `EventSource` cannot set headers, so
/// the token may come as `?access_token=`. A header wins when both are
/// sent. Other routes must not accept it: tokens in URLs end up in logs
/// and browser history.
pub async fn stream_user(parts: &Parts, state: &AppState) -> Result<AuthUser, ApiError> {
    if let Some(token) = bearer_token(&parts.headers)? {
        return authenticate(state, token).await;
    }
    let token = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .filter(|t| !t.is_empty())
        .ok_or_else(missing_token)?;
    authenticate(state, token).await
}

fn missing_token() -> ApiError {
    ApiError::Unauthorized(
        "log in at POST /api/v1/auth/login and send Authorization: Bearer <token>".into(),
    )
}

/// The token of an `Authorization: Bearer …` header; `None` without the
/// header, 401 when it is not a bearer token.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be \"Bearer <token>\"".into(),
        )),
    }
}

/// The user of a live session, or 401.
pub async fn authenticate(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let expired = || ApiError::Unauthorized("the token is unknown or expired; log in again".into());
    // Ours are 64 hex digits; anything else cannot be a session.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(expired());
    }
    let user = state
        .store
        .session_user(&token_hash(&token.to_ascii_lowercase()), state.clock.now())
        .await?
        .ok_or_else(expired)?;
    Ok(AuthUser {
        username: user.username,
        role: user.role,
        steward_id: user.steward_id,
    })
}

impl AuthUser {
    /// Admins and supervisors see every incident, elder and steward.
    pub fn sees_everything(&self) -> bool {
        self.role.sees_everything()
    }

    /// 403 unless a supervisor or an admin.
    pub fn require_supervisor(&self) -> Result<(), ApiError> {
        if self.sees_everything() {
            Ok(())
        } else {
            Err(ApiError::Forbidden("supervisors and admins only".into()))
        }
    }

    /// 403 unless an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden("admins only".into()))
        }
    }

    /// The steward this login acts as, when it is a steward's.
    pub fn own_steward(&self) -> Option<&StewardId> {
        match self.role {
            Role::Steward => self.steward_id.as_ref(),
            Role::Admin | Role::Supervisor => None,
        }
    }

    /// Whether this login is the steward `id`'s own.
    pub fn is_steward(&self, id: &StewardId) -> bool {
        self.own_steward() == Some(id)
    }

    /// 403 unless a supervisor, an admin, or steward `id` themself.
    pub fn require_self_or_supervisor(&self, id: &StewardId) -> Result<(), ApiError> {
        if self.sees_everything() || self.is_steward(id) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "a steward may act only on their own record".into(),
            ))
        }
    }

    /// Who did it, for timelines: `steward:{id}` or `user:{name}`.
    pub fn actor(&self) -> String {
        match self.own_steward() {
            Some(id) => format!("steward:{id}"),
            None => format!("user:{}", self.username),
        }
    }
}

/// An [`AuthUser`] who is a supervisor or an admin (else 403, before the
/// body is read).
#[derive(Debug, Clone)]
pub struct Supervisor(pub AuthUser);

impl FromRequestParts<AppState> for Supervisor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require_supervisor()?;
        Ok(Self(user))
    }
}

/// An [`AuthUser`] who is an admin (else 403, before the body is read).
#[derive(Debug, Clone)]
pub struct Admin(pub AuthUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        user.require_admin()?;
        Ok(Self(user))
    }
}

// --- the first login ---

/// The login every new store gets.
pub const ADMIN_USERNAME: &str = "admin";

/// Creates the `admin` login when there is none: with
/// `settings.auth.admin_password` when set, else a random password, which
/// it returns so the caller prints it once (it is stored only hashed).
/// `None` when the admin existed already or the set password was used.
pub async fn bootstrap_admin(
    store: &dyn Store,
    settings: &Settings,
) -> anyhow::Result<Option<String>> {
    if store.user(ADMIN_USERNAME).await?.is_some() {
        return Ok(None);
    }
    let (password, generated) = match &settings.auth.admin_password {
        Some(p) => {
            check_password(p.expose()).map_err(|e| {
                anyhow::anyhow!(
                    "bad setting ELDERCARE_ADMIN_PASSWORD: {e}; set a longer password or unset it for a random one"
                )
            })?;
            (p.expose().to_owned(), false)
        }
        None => (hex(&rand::random::<[u8; 12]>()), true),
    };
    let pw = password.clone();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await?
        .map_err(anyhow::Error::msg)?;
    let user = User {
        username: ADMIN_USERNAME.into(),
        role: Role::Admin,
        steward_id: None,
        password_hash,
    };
    match store.insert_user(&user).await {
        Ok(()) => Ok(generated.then_some(password)),
        // Another instance bootstrapped it first.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn failures_lock_then_success_clears() {
        let g = LoginGuard::default();
        let t0 = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for i in 0..MAX_FAILURES {
            assert!(g.check("u", t0).is_ok(), "attempt {i}");
            g.failed("u", t0);
        }
        let e = g.check("u", t0).unwrap_err();
        assert!(
            matches!(
                e,
                ApiError::RetryLater {
                    retry_after_s: 300,
                    ..
                }
            ),
            "{e:?}"
        );
        // Other usernames are not affected.
        assert!(g.check("v", t0).is_ok());
        // The lock ends; one more failure locks again at once.
        let later = t0 + LOCKOUT;
        assert!(g.check("u", later).is_ok());
        g.failed("u", later);
        assert!(g.check("u", later).is_err());
        g.succeeded("u");
        assert!(g.check("u", later).is_ok());
        // Failures far apart do not add up.
        let mut t = later;
        for _ in 0..MAX_FAILURES * 2 {
            g.failed("w", t);
            t += FAILURE_WINDOW;
        }
        assert!(g.check("w", t).is_ok());
    }

    #[test]
    fn bearer_headers() {
        let mut h = HeaderMap::new();
        assert!(bearer_token(&h).unwrap().is_none());
        h.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap(), Some("abc"));
        h.insert(AUTHORIZATION, "bearer  abc ".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap(), Some("abc"));
        h.insert(AUTHORIZATION, "Basic YTpi".parse().unwrap());
        assert!(bearer_token(&h).is_err());
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(bearer_token(&h).is_err());
    }

    #[test]
    fn password_rules() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password("密码密码密码密码").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
    }
}
