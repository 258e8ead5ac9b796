//! `jwtgate user …`: add, delete, list and show users, change passwords and roles, lock and
//! unlock, and enrol TOTP. Every change is a compare-and-swap on the user's record.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use jwtgate_core::password;

use super::{block_on, now, read_password_stdin, usage, DataDir, Need};
use crate::manage;
use crate::model::{Model, User};
use crate::store::Kind;

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
        manage::check_user_name(name)?;
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
        let now = now();
        match cmd {
            UserCommand::Add(_) => match new_user {
                Some(new) => add(&model, new).await,
                None => unreachable!("parsed above"),
            },
            UserCommand::Del { name } => {
                manage::delete_user(&model, &name).await?;
                println!("deleted user '{name}'");
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::List => list(&model).await,
            UserCommand::Show { name } => show(&model, &name).await,
            UserCommand::Passwd { name } => {
                let hash = password::hash(new_password.as_deref().unwrap_or_default())?;
                manage::change_user(&model, &name, now, |u| {
                    u.password = hash.clone();
                    Ok(())
                })
                .await?;
                println!("password of '{name}' changed");
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::Lock { name } => set_locked(&model, &name, true, now).await,
            UserCommand::Unlock { name } => set_locked(&model, &name, false, now).await,
            UserCommand::Roles(args) => {
                let user =
                    manage::change_roles(&model, &args.name, args.add, &args.remove, now).await?;
                println!("user '{}' has roles [{}]", user.name, user.roles.join(", "));
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::Totp(TotpCommand::Enroll { name }) => {
                let totp = manage::new_totp()?;
                manage::enroll_totp(&model, &name, &totp, false, now).await?;
                let uri = totp.uri("jwtgate", &name);
                println!("TOTP enrolled for '{name}'. Scan this with an authenticator app:");
                println!("{}", crate::qr::render(&uri)?);
                println!("{uri}");
                println!("secret: {}", totp.secret_base32());
                Ok(ExitCode::SUCCESS)
            }
            UserCommand::Totp(TotpCommand::Disable { name }) => {
                manage::disable_totp(&model, &name, now).await?;
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
        manage::check_user_name(&args.spec)?;
        let roles = args.roles.iter().map(|r| r.trim().to_owned()).collect();
        (args.spec.clone(), roles, read_password_stdin()?)
    };
    manage::check_user_name(&name)?;
    for role in &roles {
        manage::check_role_name(role)?;
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
    let added = manage::add_user(
        model,
        manage::NewUser {
            name: new.name,
            roles: new.roles,
            password_hash: password::hash(&new.password)?,
            group: None,
            email: None,
            locked: false,
        },
        now(),
    )
    .await?;
    if !added.dropped_roles.is_empty() {
        eprintln!(
            "warning: role(s) {} were deleted meanwhile; not granted",
            added.dropped_roles.join(", ")
        );
    }
    println!(
        "added user '{}' with roles [{}]",
        added.user.name,
        added.user.roles.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(model: &Model) -> Result<ExitCode> {
    let users: Vec<User> = model.list(Kind::User).await?;
    println!("{:<24} {:<24} {:<7} TOTP", "NAME", "ROLES", "LOCKED");
    for u in users {
        let totp = match &u.totp {
            None => "no",
            Some(t) if t.pending => "pending",
            Some(_) => "yes",
        };
        println!(
            "{:<24} {:<24} {:<7} {totp}",
            u.name,
            u.roles.join(","),
            if u.locked { "yes" } else { "no" },
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(model: &Model, name: &str) -> Result<ExitCode> {
    let Some(user) = model.get::<User>(Kind::User, name).await? else {
        bail!("unknown user '{name}'");
    };
    let view = manage::user_view(&user.value);
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(ExitCode::SUCCESS)
}

async fn set_locked(model: &Model, name: &str, locked: bool, now: i64) -> Result<ExitCode> {
    manage::change_user(model, name, now, |u| {
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
