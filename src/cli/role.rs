//! `jwtgate role …`: set a role's permissions, delete a role, list roles.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::{block_on, now, DataDir, Need};
use crate::manage;
use crate::model::Role;
use crate::store::Kind;

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
    // Checked before the store is opened: a mistake initialises nothing.
    if let RoleCommand::Set { name, permissions } = &cmd {
        manage::check_role_name(name)?;
        manage::check_permissions(permissions.clone())?;
    }
    if let RoleCommand::Del { name } = &cmd {
        manage::check_role_name(name)?;
    }
    block_on(async {
        let model = data.open(need).await?;
        match cmd {
            RoleCommand::Set { name, permissions } => {
                let (role, _) = manage::set_role(&model, &name, permissions).await?;
                println!("role '{name}': [{}]", role.permissions.join(", "));
                Ok(ExitCode::SUCCESS)
            }
            RoleCommand::Del { name } => {
                for user in manage::delete_role(&model, &name, now()).await? {
                    eprintln!("warning: removed the deleted role '{name}' from '{user}'");
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
