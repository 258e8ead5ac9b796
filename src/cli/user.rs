//! `jwtgate user …`: add, delete, list and show users, change passwords and roles, lock and
//! unlock, and enrol TOTP. Every change is a compare-and-swap on the user's record.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use jwtgate_core::password;
use jwtgate_core::totp::Totp;

use super::{block_on, now, read_password_stdin, usage, DataDir};
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
    block_on(async {
        let model = data.open().await?;
        match cmd {
            UserCommand::Add(args) => add(&model, args).await,
            UserCommand::Del { name } => {
                check_name(Kind::User, &name).map_err(|e| usage(e.to_string()))?;
                model.delete(Kind::User, &name).await?;
                println!("deleted user '{name}'");
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::List => list(&model).await,
            UserCommand::Show { name } => show(&model, &name).await,
            UserCommand::Passwd { name } => {
                let password = read_password_stdin()?;
                let hash = password::hash(&password)?;
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

async fn add(model: &Model, args: AddArgs) -> Result<ExitCode> {
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
        (
            args.spec.clone(),
            args.roles.clone(),
            read_password_stdin()?,
        )
    };
    check_name(Kind::User, &name).map_err(|e| usage(e.to_string()))?;
    if password.is_empty() {
        return Err(usage("the password is empty"));
    }
    let roles = known_roles(model, roles).await?;
    let now = now();
    let user = User {
        name: name.clone(),
        password: password::hash(&password)?,
        roles: roles.clone(),
        created: now,
        updated: now,
        ..User::default()
    };
    model.create(Kind::User, &name, &user).await?;
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
    if args.add.is_empty() && args.remove.is_empty() {
        return Err(usage("nothing to do: give --add ROLE and/or --remove ROLE"));
    }
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
