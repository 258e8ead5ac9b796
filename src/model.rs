//! The stored model (SPEC §1): users, roles, the signing keyset and revocations, as typed
//! records over any `Store`. Read-modify-write goes through `update`, which retries on a
//! revision conflict, so concurrent writers (the CLI and a server) never lose an update.

use std::sync::Arc;

use jwtgate_core::key::Jwk;
use jwtgate_core::{Algorithm, Key, KeySet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::store::{Expect, Kind, Record, Store, StoreError};

/// How long a read-modify-write keeps retrying when other writers keep winning; after each
/// lost race it waits a little longer (up to 10 ms), so a busy writer cannot starve it.
const MAX_ATTEMPTS: u64 = 100;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// argon2id PHC string.
    pub password: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub locked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Tokens issued before this time (seconds since the epoch) are revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_valid_after: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TotpState {
    /// The shared secret, base64url.
    pub secret: String,
    /// The last time step a code was accepted for: it and earlier steps are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// Enrolled through the API but not yet confirmed with a code: login ignores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
}

impl User {
    /// The TOTP secret login must ask a code for (none while an enrolment is pending).
    pub fn active_totp(&self) -> Option<&TotpState> {
        self.totp.as_ref().filter(|t| !t.pending)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub name: String,
    /// Free strings like `app-view`; `*` grants everything.
    pub permissions: Vec<String>,
}

/// The signing keys: the active one signs, the others still verify until the tokens they
/// signed have expired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyset {
    pub active: String,
    pub keys: Vec<StoredKey>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredKey {
    /// The private key as a JWK (with `kid` and `alg`).
    pub jwk: Jwk,
    pub created: i64,
    /// When it stopped being the active key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<i64>,
    /// The latest `exp` of any token it signed; `None` until it signs one. A token without
    /// `exp` sets `signs_forever`, and the key is then kept until removed by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exp: Option<i64>,
    #[serde(default)]
    pub signs_forever: bool,
}

impl StoredKey {
    fn generate(alg: Algorithm, now: i64) -> Result<StoredKey, anyhow::Error> {
        let key = Key::generate(alg, None, None)?;
        let jwk = key
            .to_jwk(true)
            .ok_or_else(|| anyhow::anyhow!("a new {alg} key has no JWK form"))?;
        Ok(StoredKey {
            jwk,
            created: now,
            retired: None,
            last_exp: None,
            signs_forever: false,
        })
    }

    pub fn kid(&self) -> &str {
        self.jwk.kid.as_deref().unwrap_or_default()
    }

    /// Whether a retired key can still have unexpired tokens out at `now`.
    pub fn still_needed(&self, now: i64, leeway: i64) -> bool {
        self.retired.is_none()
            || self.signs_forever
            || self
                .last_exp
                .is_some_and(|exp| exp.saturating_add(leeway) > now)
    }
}

impl Keyset {
    /// All keys as a verification `KeySet`, with the active key marked.
    pub fn to_keyset(&self) -> Result<KeySet, anyhow::Error> {
        let mut keys = Vec::new();
        for stored in &self.keys {
            keys.push(stored.jwk.to_key(None)?);
        }
        let mut set = KeySet::new(keys)?;
        set.set_active(&self.active)?;
        Ok(set)
    }

    pub fn active_key(&self) -> Result<Key, anyhow::Error> {
        let stored = self
            .keys
            .iter()
            .find(|k| k.kid() == self.active)
            .ok_or_else(|| anyhow::anyhow!("the keyset has no active key '{}'", self.active))?;
        Ok(stored.jwk.to_key(None)?)
    }

    /// A keyset holding one new key of `alg`.
    pub fn generate(alg: Algorithm, now: i64) -> Result<Keyset, anyhow::Error> {
        let stored = StoredKey::generate(alg, now)?;
        Ok(Keyset {
            active: stored.kid().to_owned(),
            keys: vec![stored],
        })
    }

    /// Makes a new key of `alg` the active one; the old active key is retired, and retired
    /// keys whose tokens have all expired are dropped.
    pub fn rotate(
        &mut self,
        alg: Algorithm,
        now: i64,
        leeway: i64,
    ) -> Result<&StoredKey, anyhow::Error> {
        for key in &mut self.keys {
            if key.kid() == self.active {
                key.retired = Some(now);
            }
        }
        self.keys.retain(|k| k.still_needed(now, leeway));
        let stored = StoredKey::generate(alg, now)?;
        self.active = stored.kid().to_owned();
        self.keys.push(stored);
        Ok(&self.keys[self.keys.len() - 1])
    }

    /// Records that the active key signed a token expiring at `exp` (`None`: never).
    pub fn note_signed(&mut self, exp: Option<i64>) {
        let active = self.active.clone();
        if let Some(key) = self.keys.iter_mut().find(|k| k.kid() == active) {
            match exp {
                None => key.signs_forever = true,
                Some(exp) => key.last_exp = Some(key.last_exp.map_or(exp, |e| e.max(exp))),
            }
        }
    }
}

/// A revoked `jti`, kept until the token would have expired anyway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    pub jti: String,
    pub revoked: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
}

/// A gate token resource (kube-gateway's GateToken): what it may open and when, and the
/// signed token that does it. The token's `sub` is the user who created it, so locking or
/// deleting that user ends it too; deleting the resource denylists its `jti`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateToken {
    pub name: String,
    /// Normalised paths; one ending in `*` is a prefix.
    pub urls: Vec<String>,
    /// HTTP methods, lower case.
    pub verbs: Vec<String>,
    /// Valid from (`nbf`) and for how long, in seconds.
    pub from: i64,
    pub duration: i64,
    pub created_by: String,
    pub created: i64,
    pub token: String,
    pub jti: String,
}

/// The name of the one keyset record.
pub const KEYSET: &str = "signing";

/// Typed access to a store.
#[derive(Clone, Debug)]
pub struct Model {
    store: Arc<dyn Store>,
}

/// A record read from the store, with the revision to write back against.
pub struct Versioned<T> {
    pub value: T,
    pub revision: u64,
}

impl Model {
    pub fn new(store: Arc<dyn Store>) -> Model {
        Model { store }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        match self.store.get(kind, name).await? {
            None => Ok(None),
            Some(record) => decode(kind, record).map(Some),
        }
    }

    pub async fn list<T: DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for record in self.store.list(kind).await? {
            out.push(decode(kind, record)?.value);
        }
        Ok(out)
    }

    /// Stores a new record; `Exists` if the name is taken.
    pub async fn create<T: Serialize>(
        &self,
        kind: Kind,
        name: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        self.store
            .put(kind, name, encode(value)?, Expect::Absent)
            .await
            .map(drop)
    }

    /// Reads the record, applies `change`, and writes it back if nobody wrote in between;
    /// otherwise reads again and retries. `change` may refuse (its error is returned as is).
    pub async fn update<T, E, F>(&self, kind: Kind, name: &str, mut change: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
        F: FnMut(&mut T) -> Result<(), E>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(attempt.min(10))).await;
            }
            let Some(mut current) = self.get::<T>(kind, name).await? else {
                return Err(StoreError::NotFound {
                    kind,
                    name: name.to_owned(),
                }
                .into());
            };
            change(&mut current.value)?;
            let value = encode(&current.value)?;
            match self
                .store
                .put(kind, name, value, Expect::Revision(current.revision))
                .await
            {
                Ok(_) => return Ok(current.value),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict {
            kind,
            name: name.to_owned(),
        }
        .into())
    }

    /// Deletes the record, whatever its revision; `NotFound` if there is none.
    pub async fn delete(&self, kind: Kind, name: &str) -> Result<(), StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(record) = self.store.get(kind, name).await? else {
                return Err(StoreError::NotFound {
                    kind,
                    name: name.to_owned(),
                });
            };
            match self.store.delete(kind, name, record.revision).await {
                Err(StoreError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict {
            kind,
            name: name.to_owned(),
        })
    }

    pub async fn user(&self, name: &str) -> Result<User, StoreError> {
        self.get::<User>(Kind::User, name)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| StoreError::NotFound {
                kind: Kind::User,
                name: name.to_owned(),
            })
    }

    pub async fn keyset(&self) -> Result<Keyset, StoreError> {
        self.get::<Keyset>(Kind::Keyset, KEYSET)
            .await?
            .map(|v| v.value)
            .ok_or_else(|| StoreError::NotFound {
                kind: Kind::Keyset,
                name: KEYSET.to_owned(),
            })
    }
}

fn decode<T: DeserializeOwned>(kind: Kind, record: Record) -> Result<Versioned<T>, StoreError> {
    let value = serde_json::from_value(record.value).map_err(|e| StoreError::Corrupt {
        path: format!("{}/{}.json", kind.dir(), record.name).into(),
        reason: e.to_string(),
    })?;
    Ok(Versioned {
        value,
        revision: record.revision,
    })
}

fn encode<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Task(format!("cannot encode: {e}")))
}
