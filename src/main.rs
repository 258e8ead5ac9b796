//! The `jwtgate` command: parses arguments, runs the command, prints an error as one line and
//! exits 0 (success), 1 (failure) or 2 (usage error).

use std::process::ExitCode;

use clap::Parser as _;
use jwtgate::cli;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // clap's report spans several lines (usage, tips); its first paragraph names the
            // mistake, and is printed as one line.
            let report = e.render().to_string();
            let mistake: Vec<&str> = report
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", mistake.join(" "));
            return ExitCode::from(2);
        }
    };
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if cli::is_usage(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

// A request through the gateway allocates and frees many small buffers on one thread; with
// glibc's allocator that was a sixth of the gateway's CPU time (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
