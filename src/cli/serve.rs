//! `jwtgate serve`: the server over the data directory. Today it publishes the signing keys
//! (`/jwks`, `/.well-known/jwks.json`, OpenID discovery) and answers health checks; login and
//! `/auth` come next. Stops gracefully on SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::TcpListener;

use super::{usage, DataDir, Need};
use crate::api;
use crate::config::Config;
use crate::state::AppState;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Config file (TOML; see docs/jwtgate.example.toml).
    #[arg(long, env = "JWTGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, IP:PORT (overrides the config file; port 0 picks a free one).
    #[arg(long, env = "JWTGATE_LISTEN", value_name = "IP:PORT")]
    listen: Option<String>,
}

pub fn run(args: ServeArgs, data: &DataDir) -> Result<ExitCode> {
    let config = Config::load(args.config.as_deref(), args.listen.as_deref())
        .map_err(|e| usage(format!("{e:#}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, data))
}

async fn serve(config: Config, data: &DataDir) -> Result<ExitCode> {
    // Like the first CLI write, the first start initialises an empty data directory.
    let model = data.open(Need::Initialised).await?;
    let listen = config.listen;
    let state = AppState::new(config, model).await?;
    state.spawn_refresh();
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("no local address")?;
    eprintln!("jwtgate: listening on http://{addr}");
    let app = api::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("the server failed")?;
    eprintln!("jwtgate: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (service managers) or Ctrl-C.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler only Ctrl-C stops the server.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
