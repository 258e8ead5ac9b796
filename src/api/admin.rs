//! The admin REST API: users, roles, TOTP enrolment for oneself, token issuing and revocation.
//! Every call authenticates like `/auth` and needs a permission of the caller's current roles
//! (see `docs/api.md`); `self` in a path is the caller. Writes reach this server's directory
//! before the answer, so a lock or revocation holds from the next request on.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::authenticate;
use super::error::ApiError;
use super::login;
use crate::manage::{self, Error};
use crate::model::{Role, User};
use crate::state::{Accepted, AppState};
use crate::store::{Kind, StoreError};

/// The permissions the admin API checks (a role with `*` has them all).
pub mod perm {
    pub const USER_LIST: &str = "user-list";
    pub const USER_ADD: &str = "user-add";
    pub const USER_DELETE: &str = "user-delete";
    pub const USER_LOCK: &str = "user-lock";
    pub const USER_UNLOCK: &str = "user-unlock";
    pub const USER_ROLES: &str = "user-roles";
    pub const PASSWD_CHANGE: &str = "passwd-change";
    pub const TOTP_DISABLE: &str = "user-totp-disable";
    pub const ROLE_VIEW: &str = "role-view";
    pub const ROLE_SET: &str = "role-set";
    pub const ROLE_DELETE: &str = "role-delete";
    pub const TOKEN_ISSUE: &str = "token-issue";
    pub const TOKEN_REVOKE: &str = "token-revoke";
    pub const GATETOKEN_CREATE: &str = "gatetoken-create";
    pub const GATETOKEN_VIEW: &str = "gatetoken-view";
    pub const GATETOKEN_DELETE: &str = "gatetoken-delete";
}

/// An error answer (a 401 from authentication is a whole response with its challenge
/// header, so errors are responses), boxed to keep results small.
type Fail = Box<Response>;

/// Admin changes take the token from a header only. A browser attaches the session cookie
/// even to requests another page makes it send (CSRF); it never adds a header on its own.
pub async fn header_token_for_changes(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let change = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    // What authenticates the request is what counts: a Basic `Authorization` a browser adds
    // by itself is no token, and the cookie would be used.
    let by_cookie = matches!(
        super::auth::token_and_source(headers),
        Some((_, super::auth::Source::Cookie))
    );
    if change && by_cookie {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "header_token_required",
            "admin changes take the token in `Authorization: Bearer` or `X-Auth-Token`, not the session cookie",
        )
        .into_response();
    }
    next.run(request).await
}

/// A handler's result: the answer, or the error answer.
type Answer = Result<Response, Fail>;

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(|e| *e)
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", m),
            Error::Refused(m) => ApiError::new(StatusCode::BAD_REQUEST, "refused", m),
            Error::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            Error::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", m)
            }
            Error::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            // Other writers kept winning the compare-and-swap.
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            StoreError::Exists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::InvalidName { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", e.to_string())
            }
            StoreError::Corrupt { .. } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store_corrupt",
                e.to_string(),
            ),
            StoreError::Io { .. } | StoreError::Task(_) | StoreError::Unavailable(_) => {
                ApiError::unavailable(e.to_string())
            }
        }
    }
}

fn err(e: impl Into<ApiError>) -> Fail {
    Box::new(e.into().into_response())
}

/// The authenticated caller. A gate token is refused: it opens its paths and nothing else.
fn caller(state: &AppState, headers: &HeaderMap) -> Result<Arc<Accepted>, Fail> {
    let (_, accepted) = authenticate(state, headers, crate::cli::now())?;
    if accepted.scope.is_some() {
        return Err(gate_token_refused());
    }
    Ok(accepted)
}

/// The answer to a gate token where a session or API token is needed.
pub(super) fn gate_token_refused() -> Fail {
    err(ApiError::new(
        StatusCode::FORBIDDEN,
        "gate_token_not_allowed",
        "a gate token opens only the paths it names; this needs a session or API token",
    ))
}

/// The caller, who must hold `permission`.
fn caller_with(
    state: &AppState,
    headers: &HeaderMap,
    permission: &str,
) -> Result<Arc<Accepted>, Fail> {
    let caller = caller(state, headers)?;
    require(state, &caller, permission)?;
    Ok(caller)
}

fn require(state: &AppState, caller: &Accepted, permission: &str) -> Result<(), Fail> {
    if state.with_directory(|d| d.allows(&caller.roles, permission)) {
        Ok(())
    } else {
        Err(permission_denied(caller, permission))
    }
}

fn permission_denied(caller: &Accepted, permission: &str) -> Fail {
    err(ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_denied",
        format!("user '{}' lacks the permission '{permission}'", caller.user),
    ))
}

/// The user a path names: `self` is the caller.
fn target(caller: &Accepted, name: &str) -> String {
    if name == "self" {
        caller.user.clone()
    } else {
        name.to_owned()
    }
}

/// The caller acting on `name`: always allowed on themselves, on others with `permission`.
fn self_or(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    permission: &str,
) -> Result<(Arc<Accepted>, String), Fail> {
    let caller = caller(state, headers)?;
    let name = target(&caller, name);
    if name != caller.user {
        require(state, &caller, permission)?;
    }
    Ok((caller, name))
}

/// Refuses unless the caller holds every permission that `roles` grant: nobody hands out,
/// or acts on a user with, more than they have themselves.
fn covers(state: &AppState, caller: &Accepted, roles: &[String], doing: &str) -> Result<(), Fail> {
    let missing = state.with_directory(|d| {
        roles.iter().find_map(|role| {
            let granted = d.role(role)?;
            granted
                .permissions
                .iter()
                .find(|p| !d.allows(&caller.roles, p))
                .map(|p| (role.clone(), p.clone()))
        })
    });
    match missing {
        None => Ok(()),
        Some((role, permission)) => Err(err(ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            format!(
                "user '{}' cannot {doing}: role '{role}' grants '{permission}', which they lack",
                caller.user
            ),
        ))),
    }
}

/// Refuses acting on another user who holds permissions the caller lacks.
fn outranks(state: &AppState, caller: &Accepted, name: &str) -> Result<(), Fail> {
    if name == caller.user {
        return Ok(());
    }
    let roles = state
        .with_directory(|d| d.user(name).map(|u| u.roles.clone()))
        .unwrap_or_default();
    covers(state, caller, &roles, &format!("act on '{name}'"))
}

/// A JSON request body; an empty body is `{}` (every field optional where that makes sense).
/// Malformed JSON is a 400 that says where.
fn body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, Fail> {
    let body = body.map_err(|r| err(super::body_error(r)))?;
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(text).map_err(|e| {
        err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not the expected JSON: {e}"),
        ))
    })
}

/// An answer holding a secret (a token, a TOTP secret): no cache may keep it.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn ok(value: Value) -> Response {
    Json(value).into_response()
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// Logs a change `actor` made and makes this server see it at once (the change stream would,
/// later).
async fn refresh(state: &AppState, actor: &str, kind: Kind, name: &str) {
    tracing::info!(actor, record = kind.noun(), name, "admin change");
    // The write just succeeded, so the read almost always does; if not, the view is marked
    // stale and reloaded until the store answers.
    state.apply_change(kind, name).await;
}

// ---- users ----

pub async fn list_users(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer(
        async {
            caller_with(&state, &headers, perm::USER_LIST)?;
            let users: Vec<User> = state.model.list(Kind::User).await.map_err(err)?;
            Ok(ok(Value::from(
                users.iter().map(manage::user_view).collect::<Vec<_>>(),
            )))
        }
        .await,
    )
}

pub async fn get_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (caller, name) = self_or(&state, &headers, &name, perm::USER_LIST)?;
            manage::check_user_name(&name).map_err(err)?;
            let user = state
                .model
                .get::<User>(Kind::User, &name)
                .await
                .map_err(err)?
                .ok_or_else(|| err(Error::NotFound(format!("unknown user '{name}'"))))?
                .value;
            let mut view = manage::user_view(&user);
            if name == caller.user {
                view["permissions"] = Value::from(permissions_of(&state, &user.roles));
            }
            Ok(ok(view))
        }
        .await,
    )
}

/// The permissions `roles` grant, sorted.
fn permissions_of(state: &AppState, roles: &[String]) -> Vec<String> {
    let mut permissions: Vec<String> = state.with_directory(|d| {
        roles
            .iter()
            .filter_map(|r| d.role(r))
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    });
    permissions.sort_unstable();
    permissions.dedup();
    permissions
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    password: Option<String>,
    roles: Option<Vec<String>>,
    group: Option<String>,
    email: Option<String>,
    locked: Option<bool>,
}

/// `PUT /users/{name}`: creates the user (`user-add`; a password is needed) or changes the
/// fields given. Each field needs the permission of the action it stands for: `roles` needs
/// `user-roles`, `password` on another user `passwd-change`, `locked` `user-lock` or
/// `user-unlock`, `group`/`email` `user-add`.
pub async fn put_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller(&state, &headers)?;
            let name = target(&caller, &name);
            let request: UserBody = body(raw)?;
            manage::check_user_name(&name).map_err(err)?;
            if request.password.as_deref() == Some("") {
                return Err(err(Error::Invalid("the password is empty".into())));
            }
            let exists = state
                .model
                .get::<User>(Kind::User, &name)
                .await
                .map_err(err)?
                .is_some();
            if exists {
                if request.password.is_some() && name == caller.user {
                    return Err(err(Error::Invalid(
                    "change your own password with POST .../users/self/passwd and \"old_password\""
                        .into(),
                )));
                }
                if request.group.is_some() || request.email.is_some() {
                    require(&state, &caller, perm::USER_ADD)?;
                }
                if request.password.is_some() {
                    require(&state, &caller, perm::PASSWD_CHANGE)?;
                }
                match request.locked {
                    Some(true) => require(&state, &caller, perm::USER_LOCK)?,
                    Some(false) => require(&state, &caller, perm::USER_UNLOCK)?,
                    None => {}
                }
            } else {
                require(&state, &caller, perm::USER_ADD)?;
            }
            if request.roles.is_some() {
                require(&state, &caller, perm::USER_ROLES)?;
            }
            if exists {
                outranks(&state, &caller, &name)?;
            }
            if let Some(roles) = &request.roles {
                covers(&state, &caller, roles, "grant these roles")?;
            }
            let hash = match request.password.clone() {
                Some(password) => Some(hash(&state, password).await?),
                None => None,
            };
            let now = crate::cli::now();
            let (user, status) = if exists {
                let roles = match request.roles {
                    Some(roles) => Some(
                        manage::known_roles(&state.model, roles)
                            .await
                            .map_err(err)?,
                    ),
                    None => None,
                };
                let user = manage::change_user(&state.model, &name, now, |u| {
                    if let Some(hash) = &hash {
                        u.password = hash.clone();
                    }
                    if let Some(roles) = &roles {
                        u.roles = roles.clone();
                    }
                    if let Some(group) = &request.group {
                        u.group = Some(group.clone()).filter(|g| !g.is_empty());
                    }
                    if let Some(email) = &request.email {
                        u.email = Some(email.clone()).filter(|e| !e.is_empty());
                    }
                    if let Some(locked) = request.locked {
                        u.locked = locked;
                    }
                    Ok(())
                })
                .await
                .map_err(err)?;
                (user, StatusCode::OK)
            } else {
                let Some(password_hash) = hash else {
                    return Err(err(Error::Invalid(format!(
                        "user '{name}' does not exist; creating it needs a \"password\""
                    ))));
                };
                let added = manage::add_user(
                    &state.model,
                    manage::NewUser {
                        name: name.clone(),
                        roles: request.roles.unwrap_or_default(),
                        password_hash,
                        group: request.group.filter(|g| !g.is_empty()),
                        email: request.email.filter(|e| !e.is_empty()),
                        locked: request.locked.unwrap_or(false),
                    },
                    now,
                )
                .await
                .map_err(err)?;
                (added.user, StatusCode::CREATED)
            };
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok((status, Json(manage::user_view(&user))).into_response())
        }
        .await,
    )
}

async fn hash(state: &AppState, password: String) -> Result<String, Fail> {
    state.hash_password(password).await.map_err(|e| {
        err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "hash_failed",
            format!("cannot hash the password: {e:#}"),
        ))
    })
}

pub async fn delete_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::USER_DELETE)?;
            let name = target(&caller, &name);
            if name == caller.user {
                return Err(err(Error::Conflict(
                    "you cannot delete yourself; another admin can".into(),
                )));
            }
            outranks(&state, &caller, &name)?;
            manage::delete_user(&state.model, &name)
                .await
                .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok(ok(
                json!({ "success": true, "message": format!("deleted user '{name}'") }),
            ))
        }
        .await,
    )
}

pub async fn lock_user(state: State<AppState>, name: Path<String>, headers: HeaderMap) -> Response {
    set_locked(state, name, headers, true).await
}

pub async fn unlock_user(
    state: State<AppState>,
    name: Path<String>,
    headers: HeaderMap,
) -> Response {
    set_locked(state, name, headers, false).await
}

async fn set_locked(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    locked: bool,
) -> Response {
    let permission = if locked {
        perm::USER_LOCK
    } else {
        perm::USER_UNLOCK
    };
    answer(
        async {
            let caller = caller_with(&state, &headers, permission)?;
            let name = target(&caller, &name);
            outranks(&state, &caller, &name)?;
            let user = manage::change_user(&state.model, &name, crate::cli::now(), |u| {
                u.locked = locked;
                Ok(())
            })
            .await
            .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok(ok(manage::user_view(&user)))
        }
        .await,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswdBody {
    new_password: String,
    /// Needed to change one's own password: a stolen token alone must not take the account.
    old_password: Option<String>,
}

/// `POST /users/{name}/passwd`: one's own with the old password; anyone's with
/// `passwd-change`. Wrong old passwords count as failed logins (throttled the same way).
pub async fn passwd(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller(&state, &headers)?;
            let name = target(&caller, &name);
            if name != caller.user {
                require(&state, &caller, perm::PASSWD_CHANGE)?;
                outranks(&state, &caller, &name)?;
            }
            let request: PasswdBody = body(raw)?;
            if name == caller.user {
                let Some(old) = request.old_password else {
                    return Err(err(Error::Invalid(
                        "changing your own password needs \"old_password\"".into(),
                    )));
                };
                check_own_password(&state, &headers, peer, &name, old, "old_password").await?;
            }
            if request.new_password.is_empty() {
                return Err(err(Error::Invalid("the new password is empty".into())));
            }
            manage::check_user_name(&name).map_err(err)?;
            let hash = hash(&state, request.new_password).await?;
            manage::change_user(&state.model, &name, crate::cli::now(), |u| {
                u.password = hash.clone();
                Ok(())
            })
            .await
            .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok(ok(
                json!({ "success": true, "message": format!("password of '{name}' changed") }),
            ))
        }
        .await,
    )
}

/// Checks the caller's own password (`field` names it in the answer), throttled like a login:
/// counted before hashing, refunded on success, 429 with `Retry-After` over the limit.
async fn check_own_password(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    name: &str,
    password: String,
    field: &str,
) -> Result<(), Fail> {
    let keys = login::Keys::new(state, headers, name, peer);
    keys.check(state)?;
    keys.count(state, true);
    let stored = state
        .with_directory(|d| d.user(name).map(|u| u.password.clone()))
        .unwrap_or_else(|| state.dummy_hash().to_owned());
    if state.check_password(password, stored).await {
        keys.refund(state, true);
        return Ok(());
    }
    state.metrics.login_failure();
    Err(err(ApiError::new(
        StatusCode::FORBIDDEN,
        "wrong_password",
        format!("{field} is wrong"),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesBody {
    roles: Vec<String>,
}

/// `PUT /users/{name}/roles`: sets the user's roles to exactly the list given.
pub async fn put_user_roles(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::USER_ROLES)?;
            let name = target(&caller, &name);
            outranks(&state, &caller, &name)?;
            let request: RolesBody = body(raw)?;
            covers(&state, &caller, &request.roles, "grant these roles")?;
            let user = manage::set_roles(&state.model, &name, request.roles, crate::cli::now())
                .await
                .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok(ok(manage::user_view(&user)))
        }
        .await,
    )
}

/// `POST /users/{name}/revoke`: every token of the user issued until now stops working
/// (one's own: "log out everywhere"; others' with `token-revoke`).
pub async fn revoke_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let (caller, name) = self_or(&state, &headers, &name, perm::TOKEN_REVOKE)?;
            outranks(&state, &caller, &name)?;
            let user = manage::revoke_user_tokens(&state.model, &name, crate::cli::now())
                .await
                .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok(ok(json!({
                "success": true,
                "message": format!("revoked every token of '{name}' issued until now"),
                "tokens_valid_after": user.tokens_valid_after,
            })))
        }
        .await,
    )
}

// ---- TOTP ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    /// The caller's password: a stolen token alone must not put a second factor in front of
    /// the account.
    password: String,
}

/// `POST /users/self/totp {"password"}`: a new secret to scan, pending until confirmed with
/// a code.
pub async fn totp_enroll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(async {
        let caller = caller(&state, &headers)?;
        if target(&caller, &name) != caller.user {
            return Err(err(ApiError::new(
                StatusCode::FORBIDDEN,
                "self_only",
                "TOTP is enrolled by the user themselves (POST .../users/self/totp)",
            )));
        }
        let request: EnrollBody = body(raw)?;
        let name = caller.user.clone();
        check_own_password(&state, &headers, peer, &name, request.password, "password").await?;
        let totp = manage::new_totp().map_err(err)?;
        let uri = totp.uri(&state.config.issuer, &name);
        // Drawn before anything is stored: a failure here changes nothing.
        let svg = crate::qr::svg(&uri).map_err(|e| err(Error::Internal(format!("{e:#}"))))?;
        manage::enroll_totp(&state.model, &name, &totp, true, crate::cli::now())
            .await
            .map_err(err)?;
        refresh(&state, &caller.user, Kind::User, &name).await;
        Ok(no_store(ok(json!({
            "otpauth_uri": uri,
            "secret": totp.secret_base32(),
            "qr_svg": svg,
            "pending": true,
            "message": "scan the code, then POST one code as {\"totp_code\"} to .../users/self/totp/confirm",
        }))))
    }
    .await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    totp_code: String,
}

pub async fn totp_confirm(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller(&state, &headers)?;
            if target(&caller, &name) != caller.user {
                return Err(err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "self_only",
                    "TOTP is confirmed by the user themselves",
                )));
            }
            let request: ConfirmBody = body(raw)?;
            let user = manage::confirm_totp(
                &state.model,
                &caller.user,
                request.totp_code.trim(),
                crate::cli::now(),
            )
            .await
            .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &user.name).await;
            Ok(ok(manage::user_view(&user)))
        }
        .await,
    )
}

/// `DELETE /users/{name}/totp`, with `user-totp-disable` (also for oneself: a stolen
/// token must not be able to switch the second factor off).
pub async fn totp_disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::TOTP_DISABLE)?;
            let name = target(&caller, &name);
            outranks(&state, &caller, &name)?;
            let user = manage::disable_totp(&state.model, &name, crate::cli::now())
                .await
                .map_err(err)?;
            refresh(&state, &caller.user, Kind::User, &name).await;
            Ok(ok(manage::user_view(&user)))
        }
        .await,
    )
}

// ---- roles ----

fn role_view(role: &Role) -> Value {
    json!({ "name": role.name, "permissions": role.permissions })
}

pub async fn list_roles(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer(
        async {
            caller_with(&state, &headers, perm::ROLE_VIEW)?;
            let roles: Vec<Role> = state.model.list(Kind::Role).await.map_err(err)?;
            Ok(ok(Value::from(
                roles.iter().map(role_view).collect::<Vec<_>>(),
            )))
        }
        .await,
    )
}

pub async fn get_role(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            caller_with(&state, &headers, perm::ROLE_VIEW)?;
            manage::check_role_name(&name).map_err(err)?;
            let role = state
                .model
                .get::<Role>(Kind::Role, &name)
                .await
                .map_err(err)?
                .ok_or_else(|| err(Error::NotFound(format!("unknown role '{name}'"))))?;
            Ok(ok(role_view(&role.value)))
        }
        .await,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    permissions: Vec<String>,
}

pub async fn put_role(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::ROLE_SET)?;
            let request: RoleBody = body(raw)?;
            if let Some(p) = request
                .permissions
                .iter()
                .find(|p| !state.with_directory(|d| d.allows(&caller.roles, p)))
            {
                return Err(err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    format!("user '{}' cannot grant '{p}', which they lack", caller.user),
                )));
            }
            // Changing a role changes everyone who holds it: only a caller who holds what it
            // grants today may change it.
            covers(
                &state,
                &caller,
                std::slice::from_ref(&name),
                "change this role",
            )?;
            let (role, new) = manage::set_role(&state.model, &name, request.permissions)
                .await
                .map_err(err)?;
            refresh(&state, &caller.user, Kind::Role, &name).await;
            Ok(if new {
                created(role_view(&role))
            } else {
                ok(role_view(&role))
            })
        }
        .await,
    )
}

pub async fn delete_role(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::ROLE_DELETE)?;
            covers(
                &state,
                &caller,
                std::slice::from_ref(&name),
                "delete this role",
            )?;
            let late = manage::delete_role(&state.model, &name, crate::cli::now())
                .await
                .map_err(err)?;
            refresh(&state, &caller.user, Kind::Role, &name).await;
            for user in &late {
                refresh(&state, &caller.user, Kind::User, user).await;
            }
            Ok(ok(
                json!({ "success": true, "message": format!("deleted role '{name}'") }),
            ))
        }
        .await,
    )
}

// ---- tokens ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    user: Option<String>,
    #[serde(default, deserialize_with = "login::number_or_digits")]
    expire_seconds: Option<i64>,
    audience: Option<String>,
}

/// `POST /tokens` (JSON body) and `GET /tokens/new?user=…` (query): a token for the caller,
/// or with `token-issue` for any user. The answer is `/login`'s, without a session cookie.
pub async fn issue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let request: TokenRequest = body(raw)?;
            issue(&state, &headers, request).await
        }
        .await,
    )
}

pub async fn issue_token_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<TokenRequest>, QueryRejection>,
) -> Response {
    answer(
        async {
            let Query(request) = query.map_err(|r| {
                err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    r.body_text(),
                ))
            })?;
            issue(&state, &headers, request).await
        }
        .await,
    )
}

async fn issue(state: &AppState, headers: &HeaderMap, request: TokenRequest) -> Answer {
    let caller = caller(state, headers)?;
    let name = match request.user.as_deref() {
        None => caller.user.clone(),
        Some(name) => target(&caller, name),
    };
    let privileged = if name == caller.user {
        state.with_directory(|d| d.allows(&caller.roles, perm::TOKEN_ISSUE))
    } else {
        require(state, &caller, perm::TOKEN_ISSUE)?;
        outranks(state, &caller, &name)?;
        true
    };
    let mut ttl = login::expire_seconds(
        state,
        request.expire_seconds.map(|s| s.to_string()).as_deref(),
        "expire_seconds",
    )
    .map_err(err)?;
    let mut audience =
        login::audience(state, request.audience.as_deref(), "audience").map_err(err)?;
    if !privileged {
        // Without token-issue, a token from a token is no more than the one presented: it
        // ends when that one ends and keeps its audience (a fresh, long token takes a login).
        if let Some(exp) = caller.exp {
            ttl = ttl.min(exp - crate::cli::now()).max(1);
        }
        if let Some(presented) = &caller.audience {
            if audience.as_ref().is_some_and(|a| a != presented) {
                return Err(err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "audience_not_allowed",
                    format!(
                        "a token for yourself keeps the audience of the one presented ({presented:?})"
                    ),
                )));
            }
            audience = Some(presented.clone());
        }
    }
    let user = state
        .with_directory(|d| d.user(&name).cloned())
        .ok_or_else(|| err(Error::NotFound(format!("unknown user '{name}'"))))?;
    if user.locked {
        return Err(err(Error::Conflict(format!(
            "user '{name}' is locked; unlock them first"
        ))));
    }
    login::respond_with_token(state, &user, ttl, audience, None)
        .await
        .map_err(err)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    jti: String,
    /// The token's `exp`, so the denylist entry can go once the token is dead anyway.
    exp: Option<i64>,
}

/// `POST /tokens/revoke {"jti"}`: denylists one token (with `token-revoke`).
pub async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::TOKEN_REVOKE)?;
            let request: RevokeBody = body(raw)?;
            let new =
                manage::revoke_jti(&state.model, &request.jti, request.exp, crate::cli::now())
                    .await
                    .map_err(err)?;
            tracing::info!(
                actor = caller.user,
                jti = short(&request.jti),
                "token revoked"
            );
            state.apply_revocation(&request.jti).await;
            Ok(ok(json!({
                "success": true,
                "message": if new { "revoked" } else { "already revoked" },
                "jti": request.jti,
            })))
        }
        .await,
    )
}

/// The first 8 characters of a `jti`: enough to find it in the store, short in the log.
/// (Logged with Debug formatting: a jti from a request is the client's text.)
pub(super) fn short(jti: &str) -> &str {
    jti.char_indices()
        .nth(8)
        .map_or(jti, |(end, _)| &jti[..end])
}

// ---- gate tokens ----

/// A number of seconds, or text (`"1h"`, an RFC 3339 time).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    Number(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateTokenBody {
    name: String,
    urls: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    from: Option<NumberOrText>,
    duration: Option<NumberOrText>,
}

/// `POST /gatetokens` (`gatetoken-create`): kube-gateway's GateToken, signed at once; the
/// answer holds `status.token`. The token's `sub` is the caller.
pub async fn create_gate_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Response {
    answer(
        async {
            let caller = caller_with(&state, &headers, perm::GATETOKEN_CREATE)?;
            let request: GateTokenBody = body(raw)?;
            let now = crate::cli::now();
            let from = match request.from {
                None => None,
                Some(NumberOrText::Number(secs)) => Some(secs),
                Some(NumberOrText::Text(text)) => {
                    Some(manage::parse_from(&text, now).map_err(err)?)
                }
            };
            let duration = match request.duration {
                None => 3600,
                Some(NumberOrText::Number(secs)) => secs,
                Some(NumberOrText::Text(text)) => manage::parse_duration(&text).map_err(err)?,
            };
            let creator = state
                .with_directory(|d| d.user(&caller.user).cloned())
                .ok_or_else(|| err(Error::NotFound(format!("unknown user '{}'", caller.user))))?;
            let gate = manage::create_gate_token(
                &state.model,
                &state.config.issuer,
                &creator,
                manage::NewGateToken {
                    name: request.name,
                    urls: request.urls,
                    verbs: request.verbs,
                    from,
                    duration,
                },
                now,
            )
            .await
            .map_err(err)?;
            tracing::info!(
                actor = caller.user,
                name = gate.name,
                jti = short(&gate.jti),
                "gate token created"
            );
            Ok(no_store(created(manage::gate_token_view(&gate, now))))
        }
        .await,
    )
}

pub async fn list_gate_tokens(State(state): State<AppState>, headers: HeaderMap) -> Response {
    answer(
        async {
            caller_with(&state, &headers, perm::GATETOKEN_VIEW)?;
            let now = crate::cli::now();
            let gates: Vec<crate::model::GateToken> =
                state.model.list(Kind::GateToken).await.map_err(err)?;
            Ok(no_store(ok(Value::from(
                gates
                    .iter()
                    .map(|g| manage::gate_token_view(g, now))
                    .collect::<Vec<_>>(),
            ))))
        }
        .await,
    )
}

/// The gate token `name`, for its creator or with `permission`.
async fn own_gate_token(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    permission: &str,
) -> Result<crate::model::GateToken, Fail> {
    let caller = caller(state, headers)?;
    crate::store::check_name(Kind::GateToken, name).map_err(err)?;
    let gate = state
        .model
        .get::<crate::model::GateToken>(Kind::GateToken, name)
        .await
        .map_err(err)?;
    match gate {
        Some(gate) if gate.value.created_by == caller.user => Ok(gate.value),
        Some(gate) => {
            require(state, &caller, permission)?;
            Ok(gate.value)
        }
        None => {
            require(state, &caller, permission)?;
            Err(err(Error::NotFound(format!("unknown gate token '{name}'"))))
        }
    }
}

pub async fn get_gate_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let gate = own_gate_token(&state, &headers, &name, perm::GATETOKEN_VIEW).await?;
            Ok(no_store(ok(manage::gate_token_view(
                &gate,
                crate::cli::now(),
            ))))
        }
        .await,
    )
}

/// `DELETE /gatetokens/{name}`: the resource goes and its token is denylisted at once.
pub async fn delete_gate_token(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(
        async {
            let caller = caller(&state, &headers)?;
            let may_delete_any = state.with_directory(|d| d.allows(&caller.roles, perm::GATETOKEN_DELETE));
            let gate = manage::delete_gate_token(&state.model, &name, crate::cli::now(), |gate| {
                if gate.created_by == caller.user || may_delete_any {
                    Ok(())
                } else {
                    Err(Error::Refused(String::new()))
                }
            })
            .await;
            let gate = match gate {
                Ok(gate) => gate,
                // Someone else's (or none), and no permission to delete others'.
                Err(Error::Refused(_) | Error::NotFound(_)) if !may_delete_any => {
                    return Err(permission_denied(&caller, perm::GATETOKEN_DELETE))
                }
                Err(e) => return Err(err(e)),
            };
            state.apply_revocation(&gate.jti).await;
            tracing::info!(name, jti = short(&gate.jti), "gate token deleted");
            Ok(ok(json!({ "success": true, "message": format!("deleted gate token '{name}'; its token is revoked") })))
        }
        .await,
    )
}
