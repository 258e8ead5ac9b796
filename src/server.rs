//! The listening side of `jwtgate serve`: a thread per core, each with its own single-threaded
//! event loop taking connections from the one listening socket, so a request is read, checked,
//! proxied and answered on one thread (no work stealing, no wake-ups across threads). Each
//! connection speaks HTTP/1.1 through hyper, with upgrades for websockets; a stop lets
//! requests in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::api::App;

/// A connection closes when a request head takes longer than this to arrive, counted from the
/// end of the previous response: clients that connect and send nothing (or send slowly)
/// cannot hold connections open, and an idle keep-alive connection closes after it.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Threads each worker may use for blocking work (store writes; password hashing is bounded
/// on its own).
const BLOCKING_THREADS: usize = 64;

/// A TLS handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS handshakes in progress at most (for all workers); the next connection is accepted when
/// one finishes, so silent clients cannot use up the file descriptors.
const HANDSHAKES: usize = 512;

/// The worker threads; [`Server::stop`] ends them.
pub struct Server {
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Server {
    /// Serves `app` on `listener` (bound, and set to non-blocking here) from `workers`
    /// threads, over TLS when `tls` is given.
    pub fn start(
        listener: std::net::TcpListener,
        tls: Option<Arc<ServerConfig>>,
        app: App,
        workers: usize,
    ) -> Result<Server> {
        listener
            .set_nonblocking(true)
            .context("cannot set up the listening socket")?;
        let (stop, stopping) = watch::channel(false);
        let handshakes = Arc::new(Semaphore::new(HANDSHAKES));
        let tls = tls.map(TlsAcceptor::from);
        let mut server = Server {
            threads: Vec::with_capacity(workers),
            stop,
        };
        for index in 0..workers {
            let shared = listener
                .try_clone()
                .context("cannot share the listening socket")?;
            let worker = Worker {
                app: app.clone(),
                tls: tls.clone(),
                handshakes: Arc::clone(&handshakes),
                stopping: stopping.clone(),
            };
            // Each thread makes its own event loop (one dropped here, inside the main one,
            // would panic) and says whether it could.
            let (ready, started) = std::sync::mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("jwtgate-{index}"))
                .spawn(move || {
                    let runtime = match event_loop(shared) {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let (runtime, listener) = runtime;
                    let _ = ready.send(Ok(()));
                    runtime.block_on(worker.run(listener));
                })
                .context("cannot start a worker thread")?;
            server.threads.push(thread);
            started.recv().context("a worker thread ended at start")??;
        }
        Ok(server)
    }

    /// Stops taking connections, lets every open request finish (open connections are closed
    /// after their current request), and waits for the workers to end.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A worker's event loop, and the listening socket registered with it: every worker is woken
/// for a new connection, and the one that takes it first serves it.
fn event_loop(listener: std::net::TcpListener) -> Result<(tokio::runtime::Runtime, TcpListener)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .context("cannot start an event loop")?;
    let listener = {
        let _in_runtime = runtime.enter();
        TcpListener::from_std(listener).context("cannot share the listening socket")?
    };
    Ok((runtime, listener))
}

/// What each worker thread holds.
struct Worker {
    app: App,
    tls: Option<TlsAcceptor>,
    handshakes: Arc<Semaphore>,
    stopping: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self, listener: TcpListener) {
        // Every connection holds a sender; when the last is dropped, all have finished.
        let (open, mut all_closed) = mpsc::channel::<()>(1);
        loop {
            // Over TLS, a handshake slot first: a connection is taken only when it can start.
            let slot = match &self.tls {
                None => None,
                Some(_) => tokio::select! {
                    slot = Arc::clone(&self.handshakes).acquire_owned() => slot.ok(),
                    () = stopped(&mut self.stopping) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) if is_connection_error(&e) => continue,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stopped(&mut self.stopping) => break,
            };
            // Small answers go out at once rather than waiting for Nagle's timer.
            let _ = stream.set_nodelay(true);
            let app = self.app.clone();
            let stopping = self.stopping.clone();
            let open = open.clone();
            match &self.tls {
                None => {
                    tokio::spawn(async move {
                        serve_connection(stream, peer, app, stopping).await;
                        drop(open);
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                        let tls = match handshake.await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        drop(slot);
                        serve_connection(tls, peer, app, stopping).await;
                        drop(open);
                    });
                }
            }
        }
        drop(listener);
        drop(open);
        let _ = all_closed.recv().await;
    }
}

/// One client connection: its requests, one after another, until the client closes it, it
/// upgrades (then the websocket relay owns it), or the server stops.
async fn serve_connection<I>(io: I, peer: SocketAddr, app: App, mut stopping: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { Ok::<_, std::convert::Infallible>(app.call(request).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let connection = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopped(&mut stopping) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Resolves once the server stops (or the [`Server`] is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
