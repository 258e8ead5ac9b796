//! `jwtgate store copy`: moves every record between stores (a directory and etcd, either way),
//! into an empty one, so nothing is overwritten.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use super::{block_on, etcd_credentials, parse_location, usage};
use crate::store::{Expect, Kind, Location};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy every record (users, roles, the keyset, revocations, gate tokens) from one store
    /// into another, which must hold no records yet. A store is file:DIR or
    /// etcd:http://HOST:2379[,http://HOST:2379…][/PREFIX] (prefix /jwtgate by default).
    Copy {
        /// The store to read.
        #[arg(long, value_name = "LOCATION", value_parser = parse_location)]
        from: Location,
        /// The store to fill (a directory is created when missing).
        #[arg(long, value_name = "LOCATION", value_parser = parse_location)]
        to: Location,
    },
}

pub fn run(cmd: StoreCommand) -> Result<ExitCode> {
    match cmd {
        StoreCommand::Copy { from, to } => block_on(copy(from, to))?,
    }
}

async fn copy(from: Location, to: Location) -> Result<ExitCode> {
    let (from, to) = (etcd_credentials(from)?, etcd_credentials(to)?);
    if from == to {
        return Err(usage("--from and --to name the same store"));
    }
    if let Location::File(dir) = &from {
        // Opening a directory creates it: a mistyped --from must not.
        if !dir.is_dir() {
            bail!("no jwtgate data directory at {}", dir.display());
        }
    }
    let (source_name, target_name) = (from.describe(), to.describe());
    let source = from
        .open()
        .await
        .with_context(|| format!("cannot open the store {source_name}"))?;
    let target = to
        .open()
        .await
        .with_context(|| format!("cannot open the store {target_name}"))?;
    for kind in Kind::ALL {
        if let Some(record) = target.list(kind).await?.first() {
            bail!(
                "{target_name} already holds data ({} '{}'); copy into an empty store (nothing is overwritten)",
                kind.noun(),
                record.name
            );
        }
    }
    let mut copied = 0;
    for kind in Kind::ALL {
        for record in source.list(kind).await? {
            target
                .put(kind, &record.name, record.value, Expect::Absent)
                .await
                .with_context(|| {
                    format!(
                        "copied {copied} records, then could not write {} '{}' to {target_name}",
                        kind.noun(),
                        record.name
                    )
                })?;
            copied += 1;
        }
    }
    println!("copied {copied} records from {source_name} to {target_name}");
    Ok(ExitCode::SUCCESS)
}
