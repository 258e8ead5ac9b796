//! Changes to users, roles and revocations, shared by the CLI and the admin API so both check
//! the same things and say the same words. Each returns an `Error` whose kind the caller maps
//! to an exit code or an HTTP status. Password hashing is the caller's (it is slow).

use jwtgate_core::totp::{Totp, TotpError};

use crate::model::{Model, Revocation, Role, TotpState, User};
use crate::store::{check_name, Kind, StoreError};

/// Why a change was not made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed input (a bad name, an empty password): a usage error, HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed, but refused as it stands (an unknown role named, a wrong TOTP code).
    #[error("{0}")]
    Refused(String),
    /// The user or role the change is about does not exist: HTTP 404.
    #[error("{0}")]
    NotFound(String),
    /// The current state does not allow it (exists already, role still held): HTTP 409.
    #[error("{0}")]
    Conflict(String),
    /// Something on the server's side failed (no randomness, an unreadable stored secret).
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(e: StoreError) -> Error {
    Error::Invalid(e.to_string())
}

/// Checks a user name (the store's alphabet).
pub fn check_user_name(name: &str) -> Result<()> {
    check_name(Kind::User, name).map_err(invalid)
}

/// Checks a role name (the store's alphabet).
pub fn check_role_name(name: &str) -> Result<()> {
    check_name(Kind::Role, name).map_err(invalid)
}

/// A user to create; `password` is already hashed.
pub struct NewUser {
    pub name: String,
    pub roles: Vec<String>,
    pub password_hash: String,
    pub group: Option<String>,
    pub email: Option<String>,
    pub locked: bool,
}

/// The name that means "the caller" in the admin API's paths (`/users/self`); no user is
/// created with it.
pub const SELF: &str = "self";

/// A created user, and the roles that were deleted while it was being created (not granted).
pub struct Added {
    pub user: User,
    pub dropped_roles: Vec<String>,
}

/// Creates a user; every role must exist.
pub async fn add_user(model: &Model, new: NewUser, now: i64) -> Result<Added> {
    check_user_name(&new.name)?;
    if new.name == SELF {
        return Err(Error::Invalid(format!(
            "'{SELF}' is reserved: in the HTTP API it means the caller"
        )));
    }
    let roles = known_roles(model, new.roles).await?;
    let user = User {
        name: new.name.clone(),
        password: new.password_hash,
        roles: roles.clone(),
        group: new.group,
        email: new.email,
        locked: new.locked,
        // A token for an earlier user of the same name must not work for this one.
        tokens_valid_after: Some(now),
        created: now,
        updated: now,
        ..User::default()
    };
    match model.create(Kind::User, &new.name, &user).await {
        Ok(()) => {}
        Err(StoreError::Exists { .. }) => {
            return Err(Error::Conflict(format!(
                "user '{}' already exists",
                new.name
            )))
        }
        Err(e) => return Err(e.into()),
    }
    // A role deleted while this user was being added must not linger on the user (a later
    // role of the same name would grant them its permissions).
    let existing: Vec<Role> = model.list(Kind::Role).await?;
    let dropped_roles: Vec<String> = roles
        .iter()
        .filter(|r| !existing.iter().any(|e| &e.name == *r))
        .cloned()
        .collect();
    let user = if dropped_roles.is_empty() {
        user
    } else {
        change_user(model, &new.name, now, |u| {
            u.roles.retain(|r| !dropped_roles.contains(r));
            Ok(())
        })
        .await?
    };
    Ok(Added {
        user,
        dropped_roles,
    })
}

/// Checks that every role exists; returns them without duplicates, in the order given.
pub async fn known_roles(model: &Model, roles: Vec<String>) -> Result<Vec<String>> {
    for role in &roles {
        check_role_name(role)?;
    }
    let existing: Vec<Role> = model.list(Kind::Role).await?;
    let mut out: Vec<String> = Vec::new();
    for role in roles {
        if !existing.iter().any(|r| r.name == role) {
            let known: Vec<&str> = existing.iter().map(|r| r.name.as_str()).collect();
            return Err(Error::Refused(format!(
                "unknown role '{role}' (roles: {})",
                known.join(", ")
            )));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

/// Applies `f` to the user's record with compare-and-swap, stamping `updated`.
pub async fn change_user(
    model: &Model,
    name: &str,
    now: i64,
    mut f: impl FnMut(&mut User) -> Result<()>,
) -> Result<User> {
    check_user_name(name)?;
    model
        .update::<User, Error, _>(Kind::User, name, |u| {
            f(u)?;
            u.updated = now;
            Ok(())
        })
        .await
        .map_err(|e| match e {
            Error::Store(StoreError::NotFound { .. }) => unknown_user(name),
            other => other,
        })
}

fn unknown_user(name: &str) -> Error {
    Error::NotFound(format!("unknown user '{name}'"))
}

pub async fn delete_user(model: &Model, name: &str) -> Result<()> {
    check_user_name(name)?;
    match model.delete(Kind::User, name).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound { .. }) => Err(unknown_user(name)),
        Err(e) => Err(e.into()),
    }
}

/// Sets the user's roles to exactly `roles` (each must exist).
pub async fn set_roles(model: &Model, name: &str, roles: Vec<String>, now: i64) -> Result<User> {
    let roles = known_roles(model, roles).await?;
    change_user(model, name, now, |u| {
        u.roles = roles.clone();
        Ok(())
    })
    .await
}

/// Adds and removes roles; removing one the user does not have is refused.
pub async fn change_roles(
    model: &Model,
    name: &str,
    add: Vec<String>,
    remove: &[String],
    now: i64,
) -> Result<User> {
    let add = known_roles(model, add).await?;
    change_user(model, name, now, |u| {
        if let Some(role) = remove.iter().find(|r| !u.roles.contains(r)) {
            return Err(Error::Refused(format!(
                "user '{}' does not have the role '{role}'",
                u.name
            )));
        }
        u.roles.retain(|r| !remove.contains(r));
        for role in &add {
            if !u.roles.contains(role) {
                u.roles.push(role.clone());
            }
        }
        Ok(())
    })
    .await
}

/// Revokes every token of the user issued until `now`.
pub async fn revoke_user_tokens(model: &Model, name: &str, now: i64) -> Result<User> {
    change_user(model, name, now, |u| {
        u.tokens_valid_after = Some(u.tokens_valid_after.map_or(now, |t| now.max(t)));
        Ok(())
    })
    .await
}

/// Denylists a `jti` (until `exp`, when known). Returns false if it was denylisted already.
pub async fn revoke_jti(model: &Model, jti: &str, exp: Option<i64>, now: i64) -> Result<bool> {
    check_name(Kind::Revocation, jti).map_err(invalid)?;
    let entry = Revocation {
        jti: jti.to_owned(),
        revoked: now,
        exp,
    };
    match model.create(Kind::Revocation, jti, &entry).await {
        Ok(()) => Ok(true),
        Err(StoreError::Exists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A new TOTP with a random secret.
pub fn new_totp() -> Result<Totp> {
    Totp::generate_secret()
        .map(Totp::new)
        .map_err(|e| Error::Internal(format!("cannot make a TOTP secret: {e}")))
}

/// Stores `totp` (from `new_totp`) as the user's. `pending` enrolments (the admin API's)
/// count only once `confirm_totp` saw a code from the authenticator; the CLI enrols at once.
/// A pending enrolment is replaced; an active one is refused.
pub async fn enroll_totp(
    model: &Model,
    name: &str,
    totp: &Totp,
    pending: bool,
    now: i64,
) -> Result<()> {
    let state = TotpState {
        secret: totp.secret_text(),
        last_step: None,
        pending,
    };
    change_user(model, name, now, |u| {
        if u.totp.as_ref().is_some_and(|t| !t.pending) {
            return Err(Error::Conflict(format!(
                "user '{name}' already has TOTP; `jwtgate user totp disable {name}` first"
            )));
        }
        u.totp = Some(state.clone());
        Ok(())
    })
    .await?;
    Ok(())
}

/// Completes a pending enrolment with a code from the authenticator app.
pub async fn confirm_totp(model: &Model, name: &str, code: &str, now: i64) -> Result<User> {
    change_user(model, name, now, |u| {
        let Some(state) = u.totp.as_mut().filter(|t| t.pending) else {
            return Err(Error::Conflict(format!(
                "user '{name}' has no pending TOTP enrolment; start one first"
            )));
        };
        let totp = Totp::from_secret_text(&state.secret)
            .ok_or_else(|| Error::Internal("the stored TOTP secret is unreadable".into()))?;
        match totp.check(code, now, state.last_step) {
            Ok(step) => {
                state.last_step = Some(step);
                state.pending = false;
                Ok(())
            }
            Err(TotpError::Replayed) => Err(Error::Refused(
                "this TOTP code was already used; wait for the next one".into(),
            )),
            Err(_) => Err(Error::Refused("the TOTP code is wrong or expired".into())),
        }
    })
    .await
}

pub async fn disable_totp(model: &Model, name: &str, now: i64) -> Result<User> {
    change_user(model, name, now, |u| {
        if u.totp.take().is_none() {
            return Err(Error::Conflict(format!(
                "user '{name}' has no TOTP enrolled"
            )));
        }
        Ok(())
    })
    .await
}

/// Checks permission strings: non-empty, no spaces or control characters.
pub fn check_permissions(permissions: Vec<String>) -> Result<Vec<String>> {
    if let Some(bad) = permissions
        .iter()
        .find(|p| p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(Error::Invalid(format!(
            "invalid permission {bad:?}: no spaces or control characters"
        )));
    }
    let mut unique: Vec<String> = Vec::new();
    for permission in permissions {
        if !unique.contains(&permission) {
            unique.push(permission);
        }
    }
    Ok(unique)
}

/// Creates or replaces a role. Returns the role and whether it is new.
pub async fn set_role(model: &Model, name: &str, permissions: Vec<String>) -> Result<(Role, bool)> {
    check_role_name(name)?;
    let permissions = check_permissions(permissions)?;
    let role = Role {
        name: name.to_owned(),
        permissions: permissions.clone(),
    };
    // Retried: a role created or deleted by someone else between the two attempts.
    for _ in 0..3 {
        let result = model
            .update::<Role, StoreError, _>(Kind::Role, name, |r| {
                r.permissions = permissions.clone();
                Ok(())
            })
            .await;
        match result {
            Ok(role) => return Ok((role, false)),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match model.create(Kind::Role, name, &role).await {
            Ok(()) => return Ok((role, true)),
            Err(StoreError::Exists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict {
        kind: Kind::Role,
        name: name.to_owned(),
    }
    .into())
}

/// Deletes a role no user holds. Returns users who were given it meanwhile and lost it again.
pub async fn delete_role(model: &Model, name: &str, now: i64) -> Result<Vec<String>> {
    check_role_name(name)?;
    let holders = |users: &[User]| -> Vec<String> {
        users
            .iter()
            .filter(|u| u.roles.iter().any(|r| r == name))
            .map(|u| u.name.clone())
            .collect()
    };
    let held = holders(&model.list::<User>(Kind::User).await?);
    if !held.is_empty() {
        return Err(Error::Conflict(format!(
            "role '{name}' is held by {}; remove it from them first (jwtgate user roles NAME --remove {name})",
            held.join(", ")
        )));
    }
    match model.delete(Kind::Role, name).await {
        Ok(()) => {}
        Err(StoreError::NotFound { .. }) => {
            return Err(Error::NotFound(format!("unknown role '{name}'")))
        }
        Err(e) => return Err(e.into()),
    }
    // A user added with this role while it was being deleted loses it now, so a later role
    // of the same name cannot grant them anything.
    let late = holders(&model.list::<User>(Kind::User).await?);
    for user in &late {
        change_user(model, user, now, |u| {
            u.roles.retain(|r| r != name);
            Ok(())
        })
        .await?;
    }
    Ok(late)
}

/// What the API and `user show` tell about a user: never the password hash or TOTP secret.
pub fn user_view(u: &User) -> serde_json::Value {
    serde_json::json!({
        "name": u.name,
        "roles": u.roles,
        "locked": u.locked,
        "totp": u.totp.as_ref().is_some_and(|t| !t.pending),
        "totp_pending": u.totp.as_ref().is_some_and(|t| t.pending),
        "group": u.group,
        "email": u.email,
        "tokens_valid_after": u.tokens_valid_after,
        "created": u.created,
        "updated": u.updated,
    })
}

/// A gate token to create.
pub struct NewGateToken {
    pub name: String,
    pub urls: Vec<String>,
    /// Empty: `get` alone.
    pub verbs: Vec<String>,
    /// Valid from (seconds since the epoch); now when `None`.
    pub from: Option<i64>,
    pub duration: i64,
}

/// The longest a gate token may live: a signed link is a bearer credential in a URL.
pub const MAX_GATE_SECONDS: i64 = 366 * 24 * 3600;

/// Checks a gate token's scope: every URL a normalised path (a trailing `*` makes it a prefix),
/// verbs HTTP method names; returns the verbs in lower case, `get` when none were given.
pub fn check_gate_scope(urls: &[String], verbs: &[String]) -> Result<Vec<String>> {
    if urls.is_empty() {
        return Err(Error::Invalid("a gate token needs at least one URL".into()));
    }
    for url in urls {
        if url.ends_with('*') && !url.ends_with("/*") {
            return Err(Error::Invalid(format!(
                "URL {url:?}: a prefix ends in '/*' ('/vm1*' would also open '/vm10')"
            )));
        }
        let path = url.strip_suffix('*').unwrap_or(url);
        match jwtgate_core::scope::normalize_path(path) {
            Ok(normal) if normal == path => {}
            Ok(normal) => {
                return Err(Error::Invalid(format!(
                    "URL {url:?} is not in normal form; write {normal:?}{}",
                    if url.ends_with('*') {
                        " with its '*'"
                    } else {
                        ""
                    }
                )))
            }
            Err(e) => return Err(Error::Invalid(format!("URL {url:?}: {e}"))),
        }
    }
    let mut out: Vec<String> = Vec::new();
    for verb in verbs {
        if verb.is_empty() || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(Error::Invalid(format!(
                "verb {verb:?} is not an HTTP method name"
            )));
        }
        let verb = verb.to_ascii_lowercase();
        if !out.contains(&verb) {
            out.push(verb);
        }
    }
    if out.is_empty() {
        out.extend(["get".to_owned(), "head".to_owned()]);
    }
    Ok(out)
}

/// Creates a gate token resource and signs its token (`sub` = `creator`).
pub async fn create_gate_token(
    model: &Model,
    issuer: &str,
    creator: &User,
    new: NewGateToken,
    now: i64,
) -> Result<crate::model::GateToken> {
    check_name(Kind::GateToken, &new.name).map_err(invalid)?;
    let verbs = check_gate_scope(&new.urls, &new.verbs)?;
    if !(1..=MAX_GATE_SECONDS).contains(&new.duration) {
        return Err(Error::Invalid(format!(
            "the duration must be between 1 second and {} days",
            MAX_GATE_SECONDS / 86_400
        )));
    }
    if new
        .from
        .is_some_and(|from| from > now.saturating_add(MAX_GATE_SECONDS))
    {
        return Err(Error::Invalid(format!(
            "from is more than {} days away",
            MAX_GATE_SECONDS / 86_400
        )));
    }
    if new
        .from
        .is_some_and(|from| from.saturating_add(new.duration) <= now)
    {
        return Err(Error::Invalid(
            "from + duration is in the past: the token would be expired already".into(),
        ));
    }
    if model
        .get::<crate::model::GateToken>(Kind::GateToken, &new.name)
        .await?
        .is_some()
    {
        return Err(Error::Conflict(format!(
            "gate token '{}' already exists",
            new.name
        )));
    }
    let issued = crate::issuer::issue(
        model,
        creator,
        crate::issuer::Request {
            issuer,
            ttl: Some(new.duration),
            audiences: &[],
            extra: serde_json::Map::new(),
            gate: Some(crate::issuer::Gate {
                urls: &new.urls,
                verbs: &verbs,
                from: new.from,
            }),
        },
    )
    .await
    .map_err(|e| match e.downcast::<StoreError>() {
        Ok(store) => Error::Store(store),
        Err(other) => Error::Refused(format!("{other:#}")),
    })?;
    let gate = crate::model::GateToken {
        name: new.name.clone(),
        urls: new.urls,
        verbs,
        from: new.from.unwrap_or(issued.iat),
        duration: new.duration,
        created_by: creator.name.clone(),
        created: now,
        token: issued.token,
        jti: issued.jti,
    };
    match model.create(Kind::GateToken, &new.name, &gate).await {
        Ok(()) => Ok(gate),
        Err(StoreError::Exists { .. }) => Err(Error::Conflict(format!(
            "gate token '{}' already exists",
            new.name
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a gate token resource and denylists its token; returns what was deleted. `check`
/// may refuse (e.g. the caller does not own it) after the one read both steps act on.
pub async fn delete_gate_token(
    model: &Model,
    name: &str,
    now: i64,
    check: impl FnOnce(&crate::model::GateToken) -> Result<()>,
) -> Result<crate::model::GateToken> {
    check_name(Kind::GateToken, name).map_err(invalid)?;
    let Some(gate) = model
        .get::<crate::model::GateToken>(Kind::GateToken, name)
        .await?
    else {
        return Err(Error::NotFound(format!("unknown gate token '{name}'")));
    };
    check(&gate.value)?;
    // Revoked first: a crash in between leaves a dead token, never a live orphan. The delete
    // is of the revision read, so a resource re-created meanwhile is not removed unrevoked.
    let exp = gate.value.from.saturating_add(gate.value.duration);
    revoke_jti(model, &gate.value.jti, Some(exp), now).await?;
    match model
        .store()
        .delete(Kind::GateToken, name, gate.revision)
        .await
    {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(gate.value),
        Err(StoreError::Conflict { .. }) => Err(Error::Conflict(format!(
            "gate token '{name}' was changed meanwhile; its old token is revoked, try again"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// What the API and `gatetoken get` show: the resource and its status (kube-gateway's
/// `status`: the token, `nbf`, `exp`, and the phase at `now`).
pub fn gate_token_view(gate: &crate::model::GateToken, now: i64) -> serde_json::Value {
    let exp = gate.from.saturating_add(gate.duration);
    let phase = if now < gate.from {
        "Pending"
    } else if now < exp {
        "Ready"
    } else {
        "Expired"
    };
    serde_json::json!({
        "name": gate.name,
        "urls": gate.urls,
        "verbs": gate.verbs,
        "from": gate.from,
        "duration": gate.duration,
        "created_by": gate.created_by,
        "created": gate.created,
        "status": { "token": gate.token, "nbf": gate.from, "exp": exp, "phase": phase },
    })
}

/// A gate token's duration: seconds (`3600`) or a human duration (`1h`, `90m`).
pub fn parse_duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let secs = match text.parse::<i64>() {
        Ok(secs) => secs,
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| Error::Invalid(format!("duration {text:?}: {e} (e.g. 3600, 90m, 1h, 7d)")))
            .and_then(|d| {
                i64::try_from(d.as_secs())
                    .map_err(|_| Error::Invalid(format!("duration {text:?} is too long")))
            })?,
    };
    Ok(secs)
}

/// A gate token's start: `now`, seconds since the epoch, or an RFC 3339 time
/// (`2026-11-23T18:00:00Z`).
pub fn parse_from(text: &str, now: i64) -> Result<i64> {
    let text = text.trim();
    if text == "now" {
        return Ok(now);
    }
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    let time = humantime::parse_rfc3339_weak(text).map_err(|e| {
        Error::Invalid(format!(
            "from {text:?}: {e} (now, seconds since the epoch, or 2026-11-23T18:00:00Z)"
        ))
    })?;
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::Invalid(format!("from {text:?} is before 1970")))?
        .as_secs();
    i64::try_from(secs).map_err(|_| Error::Invalid(format!("from {text:?} is too far away")))
}
