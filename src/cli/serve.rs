//! `jwtgate serve`: the HTTP(S) server over the data directory (login, `/auth`, the keys, the
//! admin API, the gateway; see docs/api.md). Logs to stderr (`JWTGATE_LOG=debug|info|warn|error`).
//! Stops gracefully on SIGTERM or Ctrl-C: in-flight requests finish, new connections are refused.
//! Background work (refreshes, reloads) runs on the main thread; requests on `server`'s workers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use super::{usage, DataDir, Need};
use crate::api;
use crate::config::Config;
use crate::server::Server;
use crate::state::AppState;
use crate::tls;

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
    init_logging()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, data))
}

async fn serve(config: Config, data: &DataDir) -> Result<ExitCode> {
    // Certificate problems are found before anything is written or listens.
    let tls = match &config.tls {
        Some((cert, key)) => {
            Some(tls::server_config(cert, key).map_err(|e| usage(format!("{e:#}")))?)
        }
        None => None,
    };
    // So are unreadable key, CA, bearer and static files of the gateway.
    let gateway =
        crate::gateway::Runtime::build(&config.gateway, config.leeway, config.verdict_cache)
            .map_err(|e| usage(format!("the gateway: {e}")))?;
    let gateway = std::sync::Arc::new(gateway);
    gateway.spawn_refresh();
    // Like the first CLI write, the first start initialises an empty data directory.
    let data = data.or_config(config.store.as_ref());
    let model = data.open(Need::Initialised).await?;
    let listen = config.listen;
    let state = AppState::new(config, model, gateway).await?;
    state.spawn_refresh();
    let listener = bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("no local address")?;
    let workers = state.config.workers;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = Server::start(listener, tls, api::App::new(state), workers)?;
    eprintln!("jwtgate: listening on {scheme}://{addr}");
    shutdown().await;
    server.stop().await;
    eprintln!("jwtgate: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The listening socket, with a backlog for bursts of new connections.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // A restarted server can listen again while the old connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)?.into_std()
}

/// Log lines (never tokens or secrets: at most a `jti`) go to stderr, at `JWTGATE_LOG`'s level
/// (default `info`).
fn init_logging() -> Result<()> {
    let level = std::env::var("JWTGATE_LOG").unwrap_or_else(|_| "info".to_owned());
    let level: tracing::level_filters::LevelFilter = level.parse().map_err(|_| {
        usage(format!(
            "JWTGATE_LOG={level:?}: use off, error, warn, info, debug or trace"
        ))
    })?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
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
