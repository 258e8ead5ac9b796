//! `jwtgate user …`: add, delete, list and show users, change passwords and roles, lock and
//! unlock, and enrol TOTP. Every change is a compare-and-swap on the user's record.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use jwtgate_core::password;
use jwtgate_core::totp::Totp;

use super::{block_on, now, read_password_stdin, usage, DataDir, Need};
use crate::model::{Model, Role, TotpState, User};
use crate::store::{check_name, Kind, StoreError};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user: `NAME:ROLES:PASSWORD` (roles comma-separated; the password is everything
    /// after the second ':'), or `NAME --roles a,b --password-stdin`.
    ///
    /// Names: 1-64 characters from A-Z a-z 0-9 . _ @ -, not starting with '.' or '-'.
    /// Example:
    ///   jwtgate user add apiuser:api:S3cr:et
    ///   printf '%s\n' "$PW" | jwtgate user add ann --roles user,api --password-stdin
    #[command(verbatim_doc_comment)]
    Add(AddArgs),
    /// Delete a user. Their tokens stop verifying.
    Del { name: String },
    /// List users: name, roles, locked, TOTP.
    List,
    /// Show one user (never the password hash or TOTP secret).
    Show { name: String },
    /// Set a user's password, read from the first line of standard input.
    Passwd { name: String },
    /// Lock a user: they cannot log in, no token is issued to them, and their tokens stop
    /// verifying.
    Lock { name: String },
    /// Unlock a user.
    Unlock { name: String },
    /// Add or remove roles.
    Roles(RolesArgs),
    /// Two-factor authentication with time-based codes (RFC 6238).
    #[command(subcommand)]
    Totp(TotpCommand),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// `NAME:ROLES:PASSWORD`, or just `NAME` with --roles and --password-stdin.
    spec: String,
    /// Roles, comma-separated (with the NAME form).
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Read the password from the first line of standard input (with the NAME form).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct RolesArgs {
    name: String,
    /// Role to add. Repeatable.
    #[arg(long)]
    add: Vec<String>,
    /// Role to remove. Repeatable.
    #[arg(long)]
    remove: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TotpCommand {
    /// Create a TOTP secret for a user; print the otpauth:// URI and a QR code to scan.
    Enroll { name: String },
    /// Remove a user's TOTP secret.
    Disable { name: String },
}

pub fn run(cmd: UserCommand, data: &DataDir) -> Result<ExitCode> {
    // Arguments are checked (and a password read) before the store is opened, so a mistake
    // never initialises a data directory or writes anything.
    let named = match &cmd {
        UserCommand::Del { name }
        | UserCommand::Show { name }
        | UserCommand::Passwd { name }
        | UserCommand::Lock { name }
        | UserCommand::Unlock { name }
        | UserCommand::Totp(TotpCommand::Enroll { name } | TotpCommand::Disable { name }) => {
            Some(name.as_str())
        }
        UserCommand::Roles(args) => Some(args.name.as_str()),
        UserCommand::Add(_) | UserCommand::List => None,
    };
    if let Some(name) = named {
        check_name(Kind::User, name).map_err(|e| usage(e.to_string()))?;
    }
    if let UserCommand::Roles(args) = &cmd {
        if args.add.is_empty() && args.remove.is_empty() {
            return Err(usage("nothing to do: give --add ROLE and/or --remove ROLE"));
        }
        if let Some(both) = args.add.iter().find(|r| args.remove.contains(r)) {
            return Err(usage(format!("--add and --remove both name '{both}'")));
        }
    }
    let new_user = match &cmd {
        UserCommand::Add(args) => Some(parse_add(args)?),
        _ => None,
    };
    let new_password = match &cmd {
        UserCommand::Passwd { .. } => Some(read_password_stdin()?),
        _ => None,
    };
    let need = if new_user.is_some() {
        Need::Initialised
    } else {
        Need::Existing
    };
    block_on(async {
        let model = data.open(need).await?;
        match cmd {
            UserCommand::Add(_) => match new_user {
                Some(new) => add(&model, new).await,
                None => unreachable!("parsed above"),
            },
            UserCommand::Del { name } => {
                match model.delete(Kind::User, &name).await {
                    Ok(()) => {}
                    Err(StoreError::NotFound { .. }) => bail!("unknown user '{name}'"),
                    Err(e) => return Err(e.into()),
                }
                println!("deleted user '{name}'");
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::List => list(&model).await,
            UserCommand::Show { name } => show(&model, &name).await,
            UserCommand::Passwd { name } => {
                let hash = password::hash(new_password.as_deref().unwrap_or_default())?;
                change(&model, &name, |u| {
                    u.password = hash.clone();
                    Ok(())
                })
                .await?;
                println!("password of '{name}' changed");
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::Lock { name } => set_locked(&model, &name, true).await,
            UserCommand::Unlock { name } => set_locked(&model, &name, false).await,
            UserCommand::Roles(args) => roles(&model, args).await,
            UserCommand::Totp(TotpCommand::Enroll { name }) => totp_enroll(&model, &name).await,
            UserCommand::Totp(TotpCommand::Disable { name }) => {
                change(&model, &name, |u| {
                    if u.totp.take().is_none() {
                        bail!("user '{name}' has no TOTP enrolled");
                    }
                    Ok(())
                })
                .await?;
                println!("TOTP disabled for '{name}'");
                Ok(ExitCode::SUCCESS)
            }
        }
    })?
}

/// A user to add, from the command line.
struct NewUser {
    name: String,
    roles: Vec<String>,
    password: String,
}

/// Splits `NAME:ROLES:PASSWORD`; the password keeps any further ':'.
fn parse_spec(spec: &str) -> Option<(&str, Vec<String>, &str)> {
    let (name, rest) = spec.split_once(':')?;
    let (roles, password) = rest.split_once(':')?;
    let roles = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect();
    Some((name, roles, password))
}

fn parse_add(args: &AddArgs) -> Result<NewUser> {
    let (name, roles, password) = if args.spec.contains(':') {
        if !args.roles.is_empty() || args.password_stdin {
            return Err(usage(
                "give either NAME:ROLES:PASSWORD or NAME with --roles and --password-stdin, not both",
            ));
        }
        let Some((name, roles, password)) = parse_spec(&args.spec) else {
            return Err(usage(
                "expected NAME:ROLES:PASSWORD (roles comma-separated, may be empty: NAME::PASSWORD)",
            ));
        };
        (name.to_owned(), roles, password.to_owned())
    } else {
        if !args.password_stdin {
            return Err(usage(
                "no password: use NAME:ROLES:PASSWORD, or NAME --roles a,b --password-stdin",
            ));
        }
        check_name(Kind::User, &args.spec).map_err(|e| usage(e.to_string()))?;
        let roles = args.roles.iter().map(|r| r.trim().to_owned()).collect();
        (args.spec.clone(), roles, read_password_stdin()?)
    };
    check_name(Kind::User, &name).map_err(|e| usage(e.to_string()))?;
    for role in &roles {
        check_name(Kind::Role, role).map_err(|e| usage(e.to_string()))?;
    }
    if password.is_empty() {
        return Err(usage("the password is empty"));
    }
    Ok(NewUser {
        name,
        roles,
        password,
    })
}

async fn add(model: &Model, new: NewUser) -> Result<ExitCode> {
    let NewUser {
        name,
        roles,
        password,
    } = new;
    let roles = known_roles(model, roles).await?;
    let now = now();
    let user = User {
        name: name.clone(),
        password: password::hash(&password)?,
        roles: roles.clone(),
        // A token for an earlier user of the same name must not work for this one.
        tokens_valid_after: Some(now),
        created: now,
        updated: now,
        ..User::default()
    };
    model.create(Kind::User, &name, &user).await?;
    // A role deleted while this user was being added must not linger on the user (a later
    // role of the same name would grant them its permissions).
    let existing: Vec<Role> = model.list(Kind::Role).await?;
    let gone: Vec<String> = roles
        .iter()
        .filter(|r| !existing.iter().any(|e| &e.name == *r))
        .cloned()
        .collect();
    let roles = if gone.is_empty() {
        roles
    } else {
        eprintln!(
            "warning: role(s) {} were deleted meanwhile; not granted",
            gone.join(", ")
        );
        change(model, &name, |u| {
            u.roles.retain(|r| !gone.contains(r));
            Ok(())
        })
        .await?
        .roles
    };
    println!("added user '{name}' with roles [{}]", roles.join(", "));
    Ok(ExitCode::SUCCESS)
}

/// Checks that every role exists; returns them without duplicates, in the order given.
async fn known_roles(model: &Model, roles: Vec<String>) -> Result<Vec<String>> {
    let existing: Vec<Role> = model.list(Kind::Role).await?;
    let mut out: Vec<String> = Vec::new();
    for role in roles {
        check_name(Kind::Role, &role).map_err(|e| usage(e.to_string()))?;
        if !existing.iter().any(|r| r.name == role) {
            let known: Vec<&str> = existing.iter().map(|r| r.name.as_str()).collect();
            bail!("unknown role '{role}' (roles: {})", known.join(", "));
        }
        if !out.contains(&role) {
            out.push(role);
        }
    }
    Ok(out)
}

/// Applies `f` to the user's record with compare-and-swap, stamping `updated`.
async fn change(
    model: &Model,
    name: &str,
    mut f: impl FnMut(&mut User) -> Result<()>,
) -> Result<User> {
    check_name(Kind::User, name).map_err(|e| usage(e.to_string()))?;
    let now = now();
    model
        .update::<User, anyhow::Error, _>(Kind::User, name, |u| {
            f(u)?;
            u.updated = now;
            Ok(())
        })
        .await
        .map_err(|e| match e.downcast::<StoreError>() {
            Ok(StoreError::NotFound { .. }) => anyhow::anyhow!("unknown user '{name}'"),
            Ok(other) => other.into(),
            Err(e) => e,
        })
}

async fn list(model: &Model) -> Result<ExitCode> {
    let users: Vec<User> = model.list(Kind::User).await?;
    println!("{:<24} {:<24} {:<7} TOTP", "NAME", "ROLES", "LOCKED");
    for u in users {
        println!(
            "{:<24} {:<24} {:<7} {}",
            u.name,
            u.roles.join(","),
            if u.locked { "yes" } else { "no" },
            if u.totp.is_some() { "yes" } else { "no" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(model: &Model, name: &str) -> Result<ExitCode> {
    check_name(Kind::User, name).map_err(|e| usage(e.to_string()))?;
    let Some(user) = model.get::<User>(Kind::User, name).await? else {
        bail!("unknown user '{name}'");
    };
    let u = user.value;
    let view = serde_json::json!({
        "name": u.name,
        "roles": u.roles,
        "locked": u.locked,
        "totp": u.totp.is_some(),
        "group": u.group,
        "email": u.email,
        "tokens_valid_after": u.tokens_valid_after,
        "created": u.created,
        "updated": u.updated,
    });
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(ExitCode::SUCCESS)
}

async fn set_locked(model: &Model, name: &str, locked: bool) -> Result<ExitCode> {
    change(model, name, |u| {
        u.locked = locked;
        Ok(())
    })
    .await?;
    println!(
        "user '{name}' {}",
        if locked { "locked" } else { "unlocked" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn roles(model: &Model, args: RolesArgs) -> Result<ExitCode> {
    let add = known_roles(model, args.add).await?;
    let user = change(model, &args.name, |u| {
        for role in &args.remove {
            if !u.roles.contains(role) {
                bail!("user '{}' does not have the role '{role}'", u.name);
            }
        }
        u.roles.retain(|r| !args.remove.contains(r));
        for role in &add {
            if !u.roles.contains(role) {
                u.roles.push(role.clone());
            }
        }
        Ok(())
    })
    .await?;
    println!("user '{}' has roles [{}]", user.name, user.roles.join(", "));
    Ok(ExitCode::SUCCESS)
}

async fn totp_enroll(model: &Model, name: &str) -> Result<ExitCode> {
    let totp = Totp::new(Totp::generate_secret()?);
    let state = TotpState {
        secret: totp.secret_text(),
        last_step: None,
    };
    change(model, name, |u| {
        if u.totp.is_some() {
            bail!("user '{name}' already has TOTP; `jwtgate user totp disable {name}` first");
        }
        u.totp = Some(state.clone());
        Ok(())
    })
    .await?;
    let uri = totp.uri("jwtgate", name);
    println!("TOTP enrolled for '{name}'. Scan this with an authenticator app:");
    println!("{}", super::qr::render(&uri)?);
    println!("{uri}");
    println!("secret: {}", totp.secret_base32());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_keeps_every_colon_after_the_second() {
        assert_eq!(
            parse_spec("apiuser:api:S3cr:et"),
            Some(("apiuser", vec!["api".to_string()], "S3cr:et"))
        );
        assert_eq!(
            parse_spec("ann:user, api:pw"),
            Some(("ann", vec!["user".to_string(), "api".to_string()], "pw"))
        );
        assert_eq!(parse_spec("bob::pw"), Some(("bob", vec![], "pw")));
        assert_eq!(parse_spec("bob:pw"), None);
    }
}
