//! Logins, sessions and roles.
//!
//! - Passwords are argon2id PHC strings, hashed and checked on
//!   [`HASHING_AT_ONCE`] threads of their own ([`super::hashing`]), so a
//!   flood of logins can take neither every core from dispatch nor the
//!   memory.
//! - A session token is 32 random bytes in hex, given to the client once;
//!   the store keeps only its SHA-256, so a copy of the database opens no
//!   sessions. A token is read in one canonical form (hex digits in lower
//!   case, [`session_hash`]) wherever it is used, and found by its hash,
//!   so no comparison depends on how much of a token was right.
//! - A wrong username and a wrong password get the same 401 and take the
//!   same time (an unknown user is checked against a dummy hash), so the
//!   API does not tell which usernames exist.
//! - Guesses are limited per username and per source address, with a
//!   backoff instead of a lock for a device that logged in before
//!   ([`super::login_limits`]): 429 with `Retry-After`.
//! - A session ends everywhere at once: logout, a deleted user, a new
//!   password or role are told to open streams ([`super::session_ends`]).
//! - [`AuthUser`] is the extractor every `/api/v1` handler but login takes;
//!   [`Supervisor`] and [`Admin`] also check the role before the body is
//!   read, so a steward gets 403, not a complaint about the body.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::ApiJson;
use super::login_limits::{self as limits, Rule};
use super::routes::Routes;
use super::scope::View;
use super::{ApiError, AppState};
use crate::domain::{Role, Scope, StewardId, User};
use crate::settings::Settings;
use crate::store::{Store, StoreError};

/// Failed logins in a row for one username before it is locked.
pub const MAX_FAILURES: i64 = limits::USER_LIMIT.max;
/// How long a device stays known after the login that gave its token.
pub const DEVICE_DAYS: i64 = 90;
/// The cookie a browser keeps its device token in.
pub const DEVICE_COOKIE: &str = "eldercare_device";
/// The shortest password a login may have.
pub const MIN_PASSWORD_CHARS: usize = 8;

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
    /// The `device_token` an earlier login from this device returned (or
    /// the `eldercare_device` cookie it set): wrong passwords from a
    /// known device get a short, growing wait instead of the username's
    /// lock.
    #[serde(default)]
    pub device_token: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub role: Role,
    /// The steward this login acts as; only for stewards.
    pub steward_id: Option<StewardId>,
    /// What a supervisor sees: `null` the whole site, else
    /// `community:<name>` or `district:<name>`.
    #[schema(value_type = Option<String>)]
    pub scope: Scope,
    /// The token stops working then; log in again.
    pub expires_at: DateTime<Utc>,
    /// Keep it and send it with the next logins from this device (it is
    /// also set as the `eldercare_device` cookie).
    pub device_token: String,
}

/// Who a token belongs to: pages check their stored session with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub role: Role,
    pub steward_id: Option<StewardId>,
    /// What a supervisor sees: `null` the whole site, else
    /// `community:<name>` or `district:<name>`.
    #[schema(value_type = Option<String>)]
    pub scope: Scope,
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
        scope: user.scope,
    })
}

/// Log out: the token stops working at once, on every device that has it.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    responses(
        (status = 204, description = "The session is over; its open streams close"),
        (status = 401, description = "No token, or the session already ended", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<axum::http::StatusCode, ApiError> {
    state.store.delete_session(&user.session).await?;
    state.session_ends.session(&user.session);
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
        (status = 200, description = "A session token; also sets the `eldercare_device` cookie", body = LoginResponse),
        (status = 401, description = "Wrong username or password (one message for both)", body = ErrorBody),
        (status = 422, description = "Missing field", body = ErrorBody),
        (status = 429, description = "Too many failures for this username or from this address (a lock), or from this known device (a short wait); see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many logins at once; see Retry-After", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(username = ?body.username))]
pub async fn login(
    State(state): State<AppState>,
    peer: PeerAddr,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<(HeaderMap, Json<LoginResponse>), ApiError> {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let known = known_device(&state, &body, &headers).await?;
    // The keys this attempt counts against, each checked and counted in
    // one step before the password is.
    let keys: Vec<(String, Rule)> = match &known {
        Some((device, _)) => vec![(
            limits::device_key(device),
            Rule::Backoff(limits::DEVICE_BACKOFF),
        )],
        None => vec![
            (
                limits::address_key(peer.0),
                Rule::Lock(limits::address_limit(
                    state.settings.auth.failures_per_address,
                )),
            ),
            (
                limits::user_key(&body.username),
                Rule::Lock(limits::USER_LIMIT),
            ),
        ],
    };
    for (i, (key, rule)) in keys.iter().enumerate() {
        if let Err(wait) = limits::take(store, key, *rule, now).await? {
            // Not tried: the attempts counted so far are given back.
            for (key, rule) in &keys[..i] {
                limits::give_back(store, key, *rule).await?;
            }
            tracing::info!(known_device = known.is_some(), key = %key, "login refused: too many failures");
            return Err(too_many(known.is_some(), wait));
        }
    }

    let user = if !super::users::valid_username(&body.username) {
        None
    } else {
        store.user(&body.username).await?
    };
    let guard = &state.login_guard;
    let phc = match &user {
        Some(u) => u.password_hash.clone(),
        None => guard.dummy_hash().await?.to_owned(),
    };
    let ok = guard.verify(body.password, phc).await? && user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(known_device = known.is_some(), "login failed");
        return Err(ApiError::Unauthorized("wrong username or password".into()));
    };
    for (key, rule) in &keys {
        match rule {
            // The username's count starts again, as does the device's.
            Rule::Backoff(_) => store.clear_throttle(key).await?,
            Rule::Lock(_) if key.starts_with("user:") => store.clear_throttle(key).await?,
            // An address's count only loses this attempt: a login of
            // one's own must not wipe guesses at others.
            Rule::Lock(_) => limits::give_back(store, key, *rule).await?,
        }
    }

    let device_token = match known {
        Some((_, token)) => token,
        None => {
            let token = new_token();
            store
                .insert_known_device(
                    &token_hash(&token),
                    &user.username,
                    now + Duration::days(DEVICE_DAYS),
                )
                .await?;
            token
        }
    };
    let (token, expires_at) =
        start_session(&state, &user, state.settings.auth.session_hours).await?;
    tracing::info!(role = %user.role, "logged in");
    let mut headers = HeaderMap::new();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{DEVICE_COOKIE}={device_token}; Path=/api/v1/auth/login; Max-Age={}; HttpOnly; SameSite=Strict",
        DEVICE_DAYS * 24 * 3600
    )) {
        headers.insert(SET_COOKIE, cookie);
    }
    Ok((
        headers,
        Json(LoginResponse {
            token,
            role: user.role,
            steward_id: user.steward_id.clone(),
            scope: user.scope.clone(),
            expires_at,
            device_token,
        }),
    ))
}

fn too_many(known_device: bool, wait_s: u64) -> ApiError {
    let message = if known_device {
        format!("wrong password from this device; wait {wait_s} s before trying again")
    } else {
        format!(
            "too many failed logins for this username or from this address; try again in {wait_s} s"
        )
    };
    ApiError::RetryLater {
        message,
        retry_after_s: wait_s,
    }
}

/// The device token sent (in the body, else the cookie), as its hash and
/// its canonical form, when it is a live one of this username's and has
/// not failed too often.
async fn known_device(
    state: &AppState,
    body: &LoginRequest,
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, ApiError> {
    let sent = body
        .device_token
        .as_deref()
        .or_else(|| device_cookie(headers));
    let Some((hash, token)) = sent.and_then(|t| Some((session_hash(t)?, t.to_ascii_lowercase())))
    else {
        return Ok(None);
    };
    let owner = state.store.known_device(&hash, state.clock.now()).await?;
    if owner.as_deref() != Some(body.username.as_str()) {
        return Ok(None);
    }
    let failures = limits::failures(state.store.as_ref(), &limits::device_key(&hash)).await?;
    Ok((failures < limits::DEVICE_MAX_FAILURES).then_some((hash, token)))
}

/// The `eldercare_device` cookie's value.
fn device_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == DEVICE_COOKIE).then_some(value)
        })
}

/// The caller's address, when the server knows it: the connection's (the
/// HTTP server puts it on every request; a router called directly in a
/// test has none), or behind a trusted proxy the last `X-Forwarded-For`
/// entry.
pub struct PeerAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .settings
            .http
            .trust_forwarded_for
            .then(|| forwarded_for(&parts.headers))
            .flatten();
        Ok(Self(forwarded.or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })))
    }
}

/// The last address of the last `X-Forwarded-For` header: the one our
/// proxy added (earlier ones are the client's to make up).
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?
        .trim()
        .parse()
        .ok()
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

// --- tokens, the failure count ---

pub use crate::auth::{LoginGuard, MAX_PASSWORD_BYTES, hash_password, verify_password};

/// 32 random bytes from the thread's CSPRNG, in hex.
fn new_token() -> String {
    hex(&rand::random::<[u8; 32]>())
}

/// What the store keeps of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The stored hash of a token as a client sent it: ours are 64 hex
/// digits, read in either case (one canonical form: lower case), so a
/// token works, or fails, the same in every route. `None` for anything
/// else, which cannot be a token of ours.
pub fn session_hash(token: &str) -> Option<String> {
    (token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| token_hash(&token.to_ascii_lowercase()))
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
    /// The session's token hash (what logout ends, what a stream
    /// watches).
    pub session: String,
    /// What this login is for: the whole site, a community or a district
    /// (only supervisors have a narrower one).
    pub scope: Scope,
    /// The grids `scope` covers, resolved when the session was read;
    /// every check of it is in [`super::scope`].
    pub view: View,
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
    let session = session_hash(token).ok_or_else(expired)?;
    let user = state
        .store
        .session_user(&session, state.clock.now())
        .await?
        .ok_or_else(expired)?;
    let view = View::resolve(state.store.as_ref(), &user.scope).await?;
    Ok(AuthUser {
        username: user.username,
        role: user.role,
        steward_id: user.steward_id,
        session,
        scope: user.scope,
        view,
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

// --- housekeeping ---

/// How often expired sessions, device tokens and stale counts are deleted.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Rows deleted per statement: short writes, so ingest never waits long.
pub const SWEEP_BATCH: i64 = 500;

/// Deletes expired sessions, device tokens and stale failure counts,
/// [`SWEEP_BATCH`] rows at a time, every [`SWEEP_EVERY`], until `stop`.
pub async fn sweep_expired(
    store: std::sync::Arc<dyn Store>,
    clock: crate::clock::Clock,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let mut total = 0;
        loop {
            let now = clock.now();
            let stale = now.timestamp_millis() - limits::STALE_MS;
            match store.delete_expired_logins(now, stale, SWEEP_BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < SWEEP_BATCH as u64 || stop.is_cancelled() {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete expired sessions; trying again later");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::debug!(deleted = total, "expired sessions and login counts deleted");
        }
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
        scope: Scope::Site,
        password_hash,
    };
    match store.insert_user(&user).await {
        Ok(()) => Ok(generated.then_some(password)),
        // Another instance bootstrapped it first.
        Err(StoreError::Conflict { .. }) => Ok(None),
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
    fn tokens_have_one_canonical_form() {
        let t = new_token();
        assert_eq!(session_hash(&t), Some(token_hash(&t)));
        assert_eq!(session_hash(&t.to_ascii_uppercase()), Some(token_hash(&t)));
        assert_eq!(session_hash(&t[1..]), None);
        assert_eq!(session_hash(&format!("{}g", &t[1..])), None);
    }

    #[test]
    fn the_proxys_address_is_the_last_forwarded_one() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.insert("x-forwarded-for", "1.2.3.4, 10.0.0.7".parse().unwrap());
        assert_eq!(forwarded_for(&h), Some("10.0.0.7".parse().unwrap()));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(forwarded_for(&h), None);
    }

    #[test]
    fn the_device_cookie_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(device_cookie(&h), None);
        h.insert(COOKIE, "a=1; eldercare_device=abc; b=2".parse().unwrap());
        assert_eq!(device_cookie(&h), Some("abc"));
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
