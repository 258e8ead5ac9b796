//! The `jwtgate` command: parses arguments, runs the command, prints an error as one line and
//! exits 0 (success), 1 (failure) or 2 (usage error).

use std::process::ExitCode;

use clap::Parser;
use jwtgate::cli;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<cli::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
