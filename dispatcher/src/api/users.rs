//! `/api/v1/users`: logins, admins only. A steward's login names an
//! existing steward; the others name none. Password hashes never leave
//! the server.

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
use crate::domain::{Role, StewardId, User};
use crate::store::StoreError;

pub fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/users", list)
        .post("/api/v1/users", create)
        .delete("/api/v1/users/{username}", remove)
}

/// The users routes alone.
pub fn router() -> axum::Router<AppState> {
    routes().into_router()
}

/// The longest username.
pub const MAX_USERNAME: usize = 64;

/// 1 to [`MAX_USERNAME`] letters, digits, `_ - . @`: safe in a URL path
/// and a log line. A name outside this cannot exist, so lookups of one
/// are answered without asking the store.
pub fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= MAX_USERNAME
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.@".contains(&b))
}

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

/// Every login (without password hashes).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all, fields(user = %user.username))]
pub async fn list(
    Admin(user): Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.store.users().await?))
}

/// Creates a login.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "A bad field, a short password, or an unknown steward", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %user.username, new_user = ?body.username))]
pub async fn create(
    Admin(user): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    body.check()?;
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
        password_hash,
    };
    state.store.insert_user(&new).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::conflict(
            "already_exists",
            format!("user {} already exists", new.username),
        ),
        StoreError::Invalid(m) => ApiError::invalid_body("steward_id", m),
        e => e.into(),
    })?;
    tracing::info!(role = %new.role, "user created");
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
    tracing::info!("user removed");
    Ok(StatusCode::NO_CONTENT)
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
