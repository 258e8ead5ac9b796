//! What is decided after a token's signature and claims passed (SPEC §1): revocation (a
//! denylisted `jti`, a locked or deleted user, a token issued before the user's
//! `tokens_valid_after`) and permissions (the user's current roles; `*` grants all). One
//! decision, `decide`, serves the CLI (reading the store) and the server (its `Directory`).

use std::collections::{HashMap, HashSet};

use jwtgate_core::Claims;

use crate::model::{Model, Revocation, Role, User};
use crate::store::{check_name, Kind, StoreError};

/// Why a valid token is refused anyway.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("token revoked (jti '{jti}')")]
    RevokedJti { jti: String },
    #[error("token has no 'sub', so its user cannot be checked")]
    NoSubject,
    #[error("user '{user}' no longer exists")]
    UnknownUser { user: String },
    #[error("user '{user}' is locked")]
    Locked { user: String },
    #[error("token was issued before the tokens of user '{user}' were revoked")]
    IssuedBeforeRevocation { user: String },
}

impl Denied {
    /// A stable code for JSON bodies and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::RevokedJti { .. } => "token_revoked",
            Denied::NoSubject => "no_subject",
            Denied::UnknownUser { .. } => "unknown_user",
            Denied::Locked { .. } => "user_locked",
            Denied::IssuedBeforeRevocation { .. } => "token_revoked",
        }
    }
}

/// The revocation decision, given what the store says about this token's `jti` and user.
pub fn decide(claims: &Claims, jti_revoked: bool, user: Option<&User>) -> Result<(), Denied> {
    if jti_revoked {
        return Err(Denied::RevokedJti {
            jti: claims.jti().unwrap_or_default().to_owned(),
        });
    }
    let Some(name) = claims.sub() else {
        return Err(Denied::NoSubject);
    };
    let Some(user) = user else {
        return Err(Denied::UnknownUser { user: name.into() });
    };
    if user.locked {
        return Err(Denied::Locked {
            user: user.name.clone(),
        });
    }
    if let Some(after) = user.tokens_valid_after {
        // Without `iat` the token's age is unknown: refused (fail closed). Same second as the
        // cut-off: refused too (seconds are all `iat` has).
        if claims.iat().is_none_or(|iat| iat <= after) {
            return Err(Denied::IssuedBeforeRevocation {
                user: user.name.clone(),
            });
        }
    }
    Ok(())
}

/// Checks revocation for a verified token's claims by reading the store (the CLI's path).
/// The outer error is the store failing.
pub async fn check_revocation(
    model: &Model,
    claims: &Claims,
) -> Result<Result<(), Denied>, StoreError> {
    // A jti or name jwtgate could not have stored cannot be in the store.
    let revoked = match claims.jti() {
        Some(jti) if check_name(Kind::Revocation, jti).is_ok() => model
            .get::<Revocation>(Kind::Revocation, jti)
            .await?
            .is_some(),
        _ => false,
    };
    let user = match claims.sub() {
        Some(name) if check_name(Kind::User, name).is_ok() => {
            model.get::<User>(Kind::User, name).await?.map(|v| v.value)
        }
        _ => None,
    };
    Ok(decide(claims, revoked, user.as_ref()))
}

/// One record's new state, read from the store for `Directory::apply`.
#[derive(Debug)]
pub enum Update {
    User(String, Option<User>),
    Role(String, Option<Role>),
    /// The jti, and whether it is (still) denylisted.
    Revocation(String, bool),
    None,
}

/// The server's in-memory copy of users, roles and revocations, kept current from the
/// store's change stream, so a request never waits on the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory {
    users: HashMap<String, User>,
    roles: HashMap<String, Role>,
    revoked: HashSet<String>,
}

impl Directory {
    pub async fn load(model: &Model) -> Result<Directory, StoreError> {
        let mut directory = Directory::default();
        for user in model.list::<User>(Kind::User).await? {
            directory.users.insert(user.name.clone(), user);
        }
        for role in model.list::<Role>(Kind::Role).await? {
            directory.roles.insert(role.name.clone(), role);
        }
        for revocation in model.list::<Revocation>(Kind::Revocation).await? {
            directory.revoked.insert(revocation.jti);
        }
        Ok(directory)
    }

    /// Reads one changed record from the store (slow; no lock held). Also says whether the
    /// store was unavailable: the update then fails closed, and the caller must read
    /// everything again once the store is back (the change itself is not delivered twice).
    pub async fn fetch(model: &Model, kind: Kind, name: &str) -> (Update, bool) {
        // Failures that pass (not a corrupt record, which a reload would not repair).
        let unavailable = |e: &StoreError| {
            matches!(
                e,
                StoreError::Unavailable(_) | StoreError::Io { .. } | StoreError::Task(_)
            )
        };
        match kind {
            Kind::User => {
                let read = model.get::<User>(kind, name).await;
                let lost = read.as_ref().is_err_and(unavailable);
                // An unreadable user counts as gone: what it granted disappears (fail closed).
                let user = read.ok().flatten().map(|v| v.value);
                (Update::User(name.to_owned(), user), lost)
            }
            Kind::Role => {
                let read = model.get::<Role>(kind, name).await;
                let lost = read.as_ref().is_err_and(unavailable);
                let role = read.ok().flatten().map(|v| v.value);
                (Update::Role(name.to_owned(), role), lost)
            }
            Kind::Revocation => {
                let read = model.get::<Revocation>(kind, name).await;
                let lost = read.as_ref().is_err_and(unavailable);
                // A revocation that cannot be read still revokes.
                let revoked = !matches!(read, Ok(None));
                (Update::Revocation(name.to_owned(), revoked), lost)
            }
            Kind::Keyset | Kind::GateToken => (Update::None, false),
        }
    }

    /// Applies a fetched change (fast; under the caller's lock). Returns whether it can change
    /// a verdict, so that bookkeeping writes (a TOTP step, a last-login time) keep the cache.
    pub fn apply(&mut self, update: Update) -> bool {
        match update {
            Update::User(name, user) => {
                let relevant = |u: &User| (u.locked, u.roles.clone(), u.tokens_valid_after);
                let before = self.users.get(&name).map(relevant);
                let after = user.as_ref().map(relevant);
                match user {
                    Some(user) => self.users.insert(name, user),
                    None => self.users.remove(&name),
                };
                before != after
            }
            Update::Role(name, role) => match role {
                Some(role) => self.roles.insert(name, role.clone()).as_ref() != Some(&role),
                None => self.roles.remove(&name).is_some(),
            },
            Update::Revocation(jti, revoked) => {
                if revoked {
                    self.revoked.insert(jti)
                } else {
                    self.revoked.remove(&jti)
                }
            }
            Update::None => false,
        }
    }

    pub fn revoke(&mut self, jti: &str) {
        self.revoked.insert(jti.to_owned());
    }

    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// The revocation decision for a verified token; the user on success.
    pub fn check(&self, claims: &Claims) -> Result<&User, Denied> {
        let revoked = claims.jti().is_some_and(|jti| self.revoked.contains(jti));
        let user = claims.sub().and_then(|name| self.users.get(name));
        decide(claims, revoked, user)?;
        user.ok_or(Denied::NoSubject)
    }

    /// Whether `roles` grant `permission` (`*` grants everything). A role that no longer
    /// exists grants nothing.
    pub fn allows(&self, roles: &[String], permission: &str) -> bool {
        roles
            .iter()
            .filter_map(|name| self.roles.get(name))
            .any(|role| role.permissions.iter().any(|p| p == "*" || p == permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Claims {
        Claims::parse(json.as_bytes()).unwrap()
    }

    fn user(name: &str, roles: &[&str]) -> User {
        User {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..User::default()
        }
    }

    #[test]
    fn revocation_rules_table() {
        let mut locked = user("ann", &[]);
        locked.locked = true;
        let mut cut = user("ann", &[]);
        cut.tokens_valid_after = Some(100);
        let ann = user("ann", &[]);
        // (claims, jti denylisted, the user record, expected outcome)
        type Case<'a> = (&'a str, bool, Option<&'a User>, Result<(), &'a str>);
        let cases: &[Case] = &[
            (r#"{"sub":"ann","iat":50}"#, false, Some(&ann), Ok(())),
            (
                r#"{"sub":"ann","jti":"j"}"#,
                true,
                Some(&ann),
                Err("token_revoked"),
            ),
            (r#"{"iat":50}"#, false, Some(&ann), Err("no_subject")),
            (r#"{"sub":"ann"}"#, false, None, Err("unknown_user")),
            (r#"{"sub":"ann"}"#, false, Some(&locked), Err("user_locked")),
            (
                r#"{"sub":"ann","iat":100}"#,
                false,
                Some(&cut),
                Err("token_revoked"),
            ),
            (r#"{"sub":"ann"}"#, false, Some(&cut), Err("token_revoked")),
            (r#"{"sub":"ann","iat":101}"#, false, Some(&cut), Ok(())),
        ];
        for (json, revoked, user, want) in cases {
            let got = decide(&claims(json), *revoked, *user).map_err(|d| d.code());
            assert_eq!(got, *want, "{json}");
        }
    }

    #[test]
    fn permissions_come_from_current_roles_and_star_grants_all() {
        let mut directory = Directory::default();
        for (name, permissions) in [("admin", vec!["*"]), ("ops", vec!["vm.console"])] {
            directory.roles.insert(
                name.into(),
                Role {
                    name: name.into(),
                    permissions: permissions.into_iter().map(String::from).collect(),
                },
            );
        }
        let allows = |roles: &[&str], p: &str| directory.allows(&user("u", roles).roles, p);
        assert!(allows(&["admin"], "anything"));
        assert!(allows(&["ops"], "vm.console"));
        assert!(!allows(&["ops"], "vm.delete"));
        assert!(!allows(&["gone"], "vm.console"));
        assert!(!allows(&[], "vm.console"));
    }
}
