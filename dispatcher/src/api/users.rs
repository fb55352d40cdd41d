//! `/api/v1/users`: logins, admins only. A steward's login names an
//! existing steward; the others name none. Password hashes never leave
//! the server. Removing a login, or changing its password or role, ends
//! its sessions and closes its open streams at once.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::{Admin, check_password};
use super::error::ErrorBody;
use super::extract::{ApiJson, ApiPath};
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::domain::{Role, Scope, StewardId, User};
use crate::store::StoreError;
use crate::store::logins::UserChange;

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/users", list)
        .post("/api/v1/users", create)
        .delete("/api/v1/users/{username}", remove)
        .patch("/api/v1/users/{username}", change)
}

/// The users routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

pub use crate::auth::{MAX_USERNAME, valid_username};

/// The OpenAPI schema of a username: what [`valid_username`] accepts.
pub struct UsernameSchema;

/// [`valid_username`] as a pattern.
pub const USERNAME_PATTERN: &str = "^[A-Za-z0-9_.@-]{1,64}$";

impl utoipa::PartialSchema for UsernameSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(USERNAME_PATTERN))
            .min_length(Some(1))
            .max_length(Some(MAX_USERNAME))
            .examples([serde_json::json!("sup1")])
            .into()
    }
}

impl ToSchema for UsernameSchema {
    fn name() -> std::borrow::Cow<'static, str> {
        "Username".into()
    }
}

/// A new login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Letters, digits, `_ - . @`; 1 to 64.
    #[schema(value_type = UsernameSchema)]
    pub username: String,
    /// At least 8 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    pub role: Role,
    /// Required for a steward, refused for the other roles.
    #[serde(default)]
    pub steward_id: Option<StewardId>,
    /// A supervisor's only: `community:<name>` or `district:<name>` of
    /// an existing area (`/api/v1/areas`); `null` or left out, the whole
    /// site.
    #[serde(default)]
    #[schema(
        value_type = Option<String>,
        pattern = "^(community|district):.*[^\\s].*$",
        max_length = 110,
        example = "community:东城"
    )]
    pub scope: Option<String>,
}

/// A scope as sent: parsed, and refused (422 on `scope`) for a role
/// other than supervisor.
fn parse_scope(role: Role, text: Option<&str>) -> Result<Scope, ApiError> {
    let scope = Scope::parse(text).map_err(|e| ApiError::invalid_body("scope", e))?;
    if scope != Scope::Site && role != Role::Supervisor {
        return Err(ApiError::invalid_body(
            "scope",
            format!("only a supervisor has a scope; a {role} sees what their role allows"),
        ));
    }
    Ok(scope)
}

/// 422 unless some area names the scope's community or district.
async fn scope_exists(state: &AppState, scope: &Scope) -> Result<(), ApiError> {
    if *scope == Scope::Site || scope.exists_in(&state.store.areas().await?) {
        return Ok(());
    }
    Err(ApiError::invalid_body(
        "scope",
        format!("no area names {scope}; add it with PUT /api/v1/areas first"),
    ))
}

impl NewUser {
    /// Checks everything but the password's hash.
    fn check(&self) -> Result<(), ApiError> {
        if !valid_username(&self.username) {
            return Err(ApiError::invalid_body(
                "username",
                format!("must be 1 to {MAX_USERNAME} letters, digits, '_', '-', '.' or '@'"),
            ));
        }
        check_password(&self.password).map_err(|e| ApiError::invalid_body("password", e))?;
        match (self.role, &self.steward_id) {
            (Role::Steward, None) => Err(ApiError::invalid_body(
                "steward_id",
                "a steward's login must name its steward",
            )),
            (Role::Admin | Role::Supervisor, Some(_)) => Err(ApiError::invalid_body(
                "steward_id",
                "only a steward's login names a steward",
            )),
            _ => Ok(()),
        }
    }
}

/// A change to a login: a new password, a new role, a new scope.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// At least 8 characters.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    /// With `role`: required for a steward, refused for the other roles.
    #[serde(default)]
    pub steward_id: Option<StewardId>,
    /// A supervisor's scope: `community:<name>` or `district:<name>` of
    /// an existing area; `null` the whole site; left out, unchanged (a
    /// new role other than supervisor clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = Option<String>,
        pattern = "^(community|district):.*[^\\s].*$",
        max_length = 110,
        example = "community:东城"
    )]
    pub scope: Option<Option<String>>,
}

/// A field that was sent, even as `null` (`Some(None)`), apart from one
/// left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl UserPatch {
    fn check(&self) -> Result<(), ApiError> {
        if self.password.is_none() && self.role.is_none() && self.scope.is_none() {
            return Err(ApiError::invalid_body(
                "",
                "give a new password, a new role, a scope, or some of them",
            ));
        }
        if let Some(p) = &self.password {
            check_password(p).map_err(|e| ApiError::invalid_body("password", e))?;
        }
        match (self.role, &self.steward_id) {
            (None, Some(_)) => Err(ApiError::invalid_body(
                "steward_id",
                "give it with role \"steward\"",
            )),
            (Some(Role::Steward), None) => Err(ApiError::invalid_body(
                "steward_id",
                "a steward's login must name its steward",
            )),
            (Some(Role::Admin | Role::Supervisor), Some(_)) => Err(ApiError::invalid_body(
                "steward_id",
                "only a steward's login names a steward",
            )),
            _ => Ok(()),
        }
    }
}

/// Logins (without password hashes), by username, a page at a time.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(super::query::PageQuery),
    responses(
        (status = 200, body = Vec<User>),
        (status = 400, description = "A bad query parameter, named", body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    Admin(user): Admin,
    State(state): State<AppState>,
    super::extract::ApiQuery(page): super::extract::ApiQuery<super::query::PageQuery>,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(page.slice(state.store.users().await?)?))
}

/// Creates a login.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "A bad field, a short password, an unknown steward, or a scope that is malformed, names no area, or is given to a role other than supervisor", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, new_user = ?body.username))]
pub async fn create(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    body.check()?;
    let scope = parse_scope(body.role, body.scope.as_deref())?;
    scope_exists(&state, &scope).await?;
    if let Some(id) = &body.steward_id
        && state.store.steward(id).await?.is_none()
    {
        return Err(ApiError::invalid_body(
            "steward_id",
            format!("steward {id} does not exist; create the steward first"),
        ));
    }
    let password_hash = state.login_guard.hash(body.password).await?;
    let new = User {
        username: body.username,
        role: body.role,
        steward_id: body.steward_id,
        scope,
        password_hash,
    };
    state.store.insert_user(&new).await.map_err(|e| match e {
        StoreError::Conflict { .. } => ApiError::conflict(
            "already_exists",
            format!("user {} already exists", new.username),
        ),
        StoreError::Invalid(m) => ApiError::invalid_body("steward_id", m),
        e => e.into(),
    })?;
    tracing::info!(role = %new.role, scope = %new.scope, "user created");
    Ok((StatusCode::CREATED, Json(new)))
}

/// Removes a login and ends its sessions. An admin cannot remove their
/// own login (409 `cannot_delete_self`), so the last admin cannot lock
/// everyone out by accident.
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = UsernameSchema, Path, description = "The login to remove")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`cannot_delete_self`", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, target = ?username))]
pub async fn remove(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if username == user.username {
        return Err(ApiError::conflict(
            "cannot_delete_self",
            "an admin cannot remove their own login; ask another admin",
        ));
    }
    if !valid_username(&username) || state.store.user(&username).await?.is_none() {
        return Err(ApiError::NotFound(format!("user {username} not found")));
    }
    state.store.delete_user(&username).await?;
    state.session_ends.user(&username);
    tracing::info!("user removed");
    Ok(StatusCode::NO_CONTENT)
}

/// Changes a login's password, role or scope. Its sessions end (every
/// device must log in again, its open streams close) and, with a new
/// password, the devices it logged in from are forgotten. An admin cannot
/// change their own role (409 `cannot_change_own_role`).
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users", security(("bearer" = [])),
    params(("username" = String, Path, description = "The login to change")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "Changed; its sessions ended", body = User),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "`cannot_change_own_role`", body = ErrorBody),
        (status = 422, description = "Nothing to change, a short password, a bad role and steward pair, an unknown steward, or a scope that is malformed, names no area, or is given to a role other than supervisor", body = ErrorBody),
        (status = 503, description = "Too many password hashes at once; see Retry-After", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, target = ?username))]
pub async fn change(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<User>, ApiError> {
    let current = if valid_username(&username) {
        state.store.user(&username).await?
    } else {
        None
    };
    let Some(current) = current else {
        return Err(ApiError::NotFound(format!("user {username} not found")));
    };
    body.check()?;
    let role = body.role.unwrap_or(current.role);
    let scope = match &body.scope {
        Some(text) => Some(parse_scope(role, text.as_deref())?),
        // A supervisor no more: their scope goes with the role.
        None if role != Role::Supervisor && current.scope != Scope::Site => Some(Scope::Site),
        None => None,
    };
    if let Some(scope) = &scope {
        scope_exists(&state, scope).await?;
    }
    if username == user.username && body.role.is_some() {
        return Err(ApiError::conflict(
            "cannot_change_own_role",
            "an admin cannot change their own role; ask another admin",
        ));
    }
    let password_hash = match body.password {
        Some(p) => Some(state.login_guard.hash(p).await?),
        None => None,
    };
    let change = UserChange {
        password_hash,
        role: body.role.map(|r| (r, body.steward_id.clone())),
        scope,
    };
    let changed = state
        .store
        .change_user(&username, &change)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(m) => ApiError::invalid_body("steward_id", m),
            e => e.into(),
        })?;
    state.session_ends.user(&username);
    tracing::info!(
        password = change.password_hash.is_some(),
        role = ?body.role,
        scope = ?change.scope,
        "user changed; their sessions ended"
    );
    Ok(Json(changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: serde_json::Value) -> Result<(), ApiError> {
        super::super::extract::from_value::<NewUser>(v)?.check()
    }

    #[test]
    fn user_rules() {
        assert!(
            check(json!({"username": "sup1", "password": "12345678", "role": "supervisor"}))
                .is_ok()
        );
        assert!(
            check(json!({"username": "dawa", "password": "12345678", "role": "steward", "steward_id": "s-1"}))
                .is_ok()
        );
        for (field, bad) in [
            (
                "password",
                json!({"username": "a", "password": "short", "role": "admin"}),
            ),
            (
                "username",
                json!({"username": "", "password": "12345678", "role": "admin"}),
            ),
            (
                "username",
                json!({"username": "a b", "password": "12345678", "role": "admin"}),
            ),
            (
                "steward_id",
                json!({"username": "a", "password": "12345678", "role": "steward"}),
            ),
            (
                "steward_id",
                json!({"username": "a", "password": "12345678", "role": "admin", "steward_id": "s-1"}),
            ),
            (
                "role",
                json!({"username": "a", "password": "12345678", "role": "king"}),
            ),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.to_string().starts_with(field), "{field}: {e}");
        }
    }
}
