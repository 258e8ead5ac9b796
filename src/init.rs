//! First use of an empty data directory: an active signing key, the default roles (`admin` with
//! `*`, `user`, `api`) and an `admin` user. The keyset is written last, so its presence marks
//! the store initialised, and every step is a create that tolerates a racing twin.

use anyhow::{Context, Result};
use base64::Engine;
use jwtgate_core::jose::BASE64URL;
use jwtgate_core::{password, Algorithm};

use crate::model::{Keyset, Model, Role, User, KEYSET};
use crate::store::{Kind, StoreError};

/// What a data directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A signing keyset: ready to use.
    Ready,
    /// Nothing at all: to be initialised by the first command that writes.
    Empty,
    /// Users or roles but no keyset (it was removed or lost). Never repaired silently: a new
    /// key would make every existing token fail.
    NoKeyset,
}

pub async fn state(model: &Model) -> Result<State> {
    if model.get::<Keyset>(Kind::Keyset, KEYSET).await?.is_some() {
        return Ok(State::Ready);
    }
    for kind in [Kind::User, Kind::Role, Kind::Revocation] {
        if !model.store().list(kind).await?.is_empty() {
            return Ok(State::NoKeyset);
        }
    }
    Ok(State::Empty)
}

/// Initialises an empty store. Returns the admin password when this call created the admin
/// user (`admin_password`, or a generated one); `None` when a racing process did.
pub async fn initialise(
    model: &Model,
    alg: Algorithm,
    admin_password: Option<String>,
    now: i64,
) -> Result<Option<String>> {
    for (name, permissions) in [("admin", vec!["*"]), ("user", vec![]), ("api", vec![])] {
        let role = Role {
            name: name.into(),
            permissions: permissions.into_iter().map(String::from).collect(),
        };
        tolerate_exists(model.create(Kind::Role, name, &role).await)?;
    }
    let password = match admin_password {
        Some(p) if !p.is_empty() => p,
        Some(_) => anyhow::bail!("JWTGATE_ADMIN_PASSWORD is set but empty"),
        None => generate_password()?,
    };
    let admin = User {
        name: "admin".into(),
        password: password::hash(&password)?,
        roles: vec!["admin".into()],
        created: now,
        updated: now,
        ..User::default()
    };
    let created_admin = tolerate_exists(model.create(Kind::User, "admin", &admin).await)?;
    let keyset = Keyset::generate(alg, now).context("cannot generate the signing key")?;
    tolerate_exists(model.create(Kind::Keyset, KEYSET, &keyset).await)?;
    Ok(created_admin.then_some(password))
}

/// `Ok(true)` if created, `Ok(false)` if another process created it first.
fn tolerate_exists(result: Result<(), StoreError>) -> Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(StoreError::Exists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// 144 random bits as 24 base64url characters.
pub fn generate_password() -> Result<String> {
    let mut bytes = [0u8; 18];
    jwtgate_core::random::fill(&mut bytes)?;
    Ok(BASE64URL.encode(bytes))
}
