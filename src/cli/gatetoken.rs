//! `jwtgate gatetoken …`: kube-gateway's GateToken resources from the command line. A gate
//! token opens the paths it names (and nothing else) for a while; `get` prints it with its
//! signed token, for a signed link (`/auth/jwt/set?token=…&then=…`).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::{block_on, now, DataDir, Need};
use crate::manage;
use crate::model::{GateToken, User};
use crate::store::{check_name, Kind};

#[derive(Debug, Subcommand)]
pub enum GateTokenCommand {
    /// Create a gate token for one or more paths, signed at once.
    ///
    /// Example (one VM's VNC console, for an hour):
    ///   jwtgate gatetoken create vm1-vnc \
    ///     --url /apis/subresources.kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm1/vnc
    #[command(verbatim_doc_comment)]
    Create(CreateArgs),
    /// List gate tokens: name, phase, expiry, URLs.
    List,
    /// Show one gate token as JSON, with `status.token`, the signed token.
    Get { name: String },
    /// Delete a gate token; its token stops working at once.
    Del { name: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    name: String,
    /// A path it opens (normal form, e.g. /k8s/vm1/vnc); ending in `/*` opens everything
    /// below (/k8s/vm1/*). Repeatable.
    #[arg(long = "url", value_name = "PATH", required = true)]
    urls: Vec<String>,
    /// An HTTP method it allows (any case; a websocket is a GET). Repeatable; default: get
    /// and head.
    #[arg(long = "verb", value_name = "METHOD")]
    verbs: Vec<String>,
    /// When it starts: now, seconds since the epoch, or an RFC 3339 time.
    #[arg(long, default_value = "now", value_name = "TIME")]
    from: String,
    /// How long it lasts from its start (90m, 1h, 7d).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    duration: String,
    /// The user it acts for (its `sub`): locking or deleting them ends it too.
    #[arg(long, default_value = "admin", value_name = "NAME")]
    user: String,
}

pub fn run(cmd: GateTokenCommand, data: &DataDir) -> Result<ExitCode> {
    // Arguments first: a mistake writes nothing.
    let now = now();
    let create = match &cmd {
        GateTokenCommand::Create(args) => {
            check_name(Kind::GateToken, &args.name).map_err(|e| super::usage(e.to_string()))?;
            manage::check_user_name(&args.user)?;
            manage::check_gate_scope(&args.urls, &args.verbs)?;
            Some((
                manage::parse_from(&args.from, now)?,
                manage::parse_duration(&args.duration)?,
            ))
        }
        GateTokenCommand::Get { name } | GateTokenCommand::Del { name } => {
            check_name(Kind::GateToken, name).map_err(|e| super::usage(e.to_string()))?;
            None
        }
        GateTokenCommand::List => None,
    };
    block_on(async {
        let model = data.open(Need::Existing).await?;
        match cmd {
            GateTokenCommand::Create(args) => {
                let Some((from, duration)) = create else {
                    unreachable!("parsed above")
                };
                let Some(user) = model.get::<User>(Kind::User, &args.user).await? else {
                    bail!(
                        "unknown user '{}' (--user names who the token acts for)",
                        args.user
                    );
                };
                let gate = manage::create_gate_token(
                    &model,
                    super::token::ISSUER,
                    &user.value,
                    manage::NewGateToken {
                        name: args.name,
                        urls: args.urls,
                        verbs: args.verbs,
                        from: Some(from),
                        duration,
                    },
                    now,
                )
                .await?;
                println!("{}", gate.token);
                Ok(ExitCode::SUCCESS)
            }
            GateTokenCommand::List => {
                let gates: Vec<GateToken> = model.list(Kind::GateToken).await?;
                println!("{:<24} {:<8} {:<12} URLS", "NAME", "PHASE", "EXP");
                for gate in gates {
                    let view = manage::gate_token_view(&gate, now);
                    println!(
                        "{:<24} {:<8} {:<12} {}",
                        gate.name,
                        view["status"]["phase"].as_str().unwrap_or_default(),
                        gate.from.saturating_add(gate.duration),
                        gate.urls.join(" ")
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            GateTokenCommand::Get { name } => {
                let Some(gate) = model.get::<GateToken>(Kind::GateToken, &name).await? else {
                    bail!("unknown gate token '{name}'");
                };
                let view = manage::gate_token_view(&gate.value, now);
                println!("{}", serde_json::to_string_pretty(&view)?);
                Ok(ExitCode::SUCCESS)
            }
            GateTokenCommand::Del { name } => {
                manage::delete_gate_token(&model, &name, now, |_| Ok(())).await?;
                println!("deleted gate token '{name}'; its token is revoked");
                Ok(ExitCode::SUCCESS)
            }
        }
    })?
}
