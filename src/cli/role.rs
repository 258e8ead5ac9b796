//! `jwtgate role …`: set a role's permissions, delete a role, list roles.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;

use super::{block_on, usage, DataDir, Need};
use crate::model::{Role, User};
use crate::store::{check_name, Kind, StoreError};

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role or replace its permissions. Permissions are free strings (`app-view`,
    /// `vm.console`); `*` grants everything.
    ///
    /// Example:
    ///   jwtgate role set operator vm.console vm.view
    #[command(verbatim_doc_comment)]
    Set {
        name: String,
        #[arg(value_name = "PERM")]
        permissions: Vec<String>,
    },
    /// Delete a role that no user holds.
    Del { name: String },
    /// List roles and their permissions.
    List,
}

pub fn run(cmd: RoleCommand, data: &DataDir) -> Result<ExitCode> {
    let need = match cmd {
        RoleCommand::Set { .. } => Need::Initialised,
        RoleCommand::Del { .. } | RoleCommand::List => Need::Existing,
    };
    block_on(async {
        if let RoleCommand::Set { name, .. } | RoleCommand::Del { name } = &cmd {
            check_name(Kind::Role, name).map_err(|e| usage(e.to_string()))?;
        }
        let model = data.open(need).await?;
        match cmd {
            RoleCommand::Set { name, permissions } => {
                check_name(Kind::Role, &name).map_err(|e| usage(e.to_string()))?;
                if let Some(bad) = permissions.iter().find(|p| {
                    p.is_empty() || p.chars().any(|c| c.is_whitespace() || c.is_control())
                }) {
                    return Err(usage(format!(
                        "invalid permission {bad:?}: no spaces or control characters"
                    )));
                }
                let mut unique: Vec<String> = Vec::new();
                for permission in permissions {
                    if !unique.contains(&permission) {
                        unique.push(permission);
                    }
                }
                let permissions = unique;
                let role = Role {
                    name: name.clone(),
                    permissions: permissions.clone(),
                };
                let result = model
                    .update::<Role, StoreError, _>(Kind::Role, &name, |r| {
                        r.permissions = permissions.clone();
                        Ok(())
                    })
                    .await;
                match result {
                    Ok(_) => {}
                    Err(StoreError::NotFound { .. }) => {
                        model.create(Kind::Role, &name, &role).await?
                    }
                    Err(e) => return Err(e.into()),
                }
                println!("role '{name}': [{}]", permissions.join(", "));
                Ok(ExitCode::SUCCESS)
            }
            RoleCommand::Del { name } => {
                check_name(Kind::Role, &name).map_err(|e| usage(e.to_string()))?;
                let users: Vec<User> = model.list(Kind::User).await?;
                let holders: Vec<&str> = users
                    .iter()
                    .filter(|u| u.roles.contains(&name))
                    .map(|u| u.name.as_str())
                    .collect();
                if !holders.is_empty() {
                    bail!(
                        "role '{name}' is held by {}; remove it from them first (jwtgate user roles NAME --remove {name})",
                        holders.join(", ")
                    );
                }
                match model.delete(Kind::Role, &name).await {
                    Ok(()) => {}
                    Err(StoreError::NotFound { .. }) => bail!("unknown role '{name}'"),
                    Err(e) => return Err(e.into()),
                }
                // A user added with this role while it was being deleted loses it now, so a
                // later role of the same name cannot grant them anything.
                let users: Vec<User> = model.list(Kind::User).await?;
                for user in users.iter().filter(|u| u.roles.contains(&name)) {
                    model
                        .update::<User, StoreError, _>(Kind::User, &user.name, |u| {
                            u.roles.retain(|r| *r != name);
                            Ok(())
                        })
                        .await?;
                    eprintln!(
                        "warning: removed the deleted role '{name}' from '{}'",
                        user.name
                    );
                }
                println!("deleted role '{name}'");
                Ok(ExitCode::SUCCESS)
            }
            RoleCommand::List => {
                let roles: Vec<Role> = model.list(Kind::Role).await?;
                for role in roles {
                    println!("{:<24} {}", role.name, role.permissions.join(" "));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })?
}
