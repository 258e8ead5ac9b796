//! Websockets through the gateway: after the upstream agreed to the upgrade (its 101 goes to the
//! client as it is), messages are relayed frame by frame between the two connections, so that
//! the gateway can end the conversation itself: with close code 4001 when the token that opened
//! it expires, 1008 when it is revoked or otherwise no longer accepted. Checked every second.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use axum::http::Method;

use super::runtime::{Failure, Identity, ProviderRef};
use crate::state::AppState;

/// What keeps a websocket open: the token that opened it, still accepted by its provider.
pub struct Watch {
    pub token: String,
    pub provider: ProviderRef,
    /// `exp` + leeway: the moment the token stops being accepted.
    pub deadline: Option<i64>,
    /// The route (its index in the gateway) and the path below it that were authorised: a
    /// lost permission or role closes the websocket too.
    pub route: usize,
    pub path: String,
}

/// How often an open websocket's token is checked again (revocations, locks, key changes).
const RECHECK: Duration = Duration::from_secs(1);

/// Close code for an expired token (application range: the client can tell it apart and
/// fetch a new link).
const EXPIRED: u16 = 4001;

/// Relays between the client and the upstream once both connections are upgraded.
pub fn spawn_bridge(
    state: AppState,
    route: Arc<str>,
    client: OnUpgrade,
    upstream: OnUpgrade,
    watch: Option<Watch>,
) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(client), Ok(upstream)) => (client, upstream),
            (Err(e), _) | (_, Err(e)) => {
                tracing::debug!(%route, error = %e, "websocket upgrade failed");
                return;
            }
        };
        let limits = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(limits))
                .await;
        let upstream =
            WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, Some(limits))
                .await;
        state.metrics.websocket_opened();
        let ended = relay(&state, client, upstream, watch).await;
        if let Some(reason) = ended {
            state.metrics.websocket_closed(reason);
            tracing::info!(%route, reason, "websocket closed by the gateway");
        }
    });
}

/// The largest message (and frame) relayed; larger ones end the connection.
const MAX_MESSAGE: usize = 16 << 20;

/// How long closing one side may take.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type Sink = Arc<tokio::sync::Mutex<SplitSink<Stream, Message>>>;

/// Relays until either side closes (`None`) or the token ends (`Some(reason)`). Each direction
/// runs in its own task, so a side that stops reading stalls only its direction, never the
/// watch: at expiry both are stopped and the connections closed, whatever they were doing.
async fn relay(
    state: &AppState,
    client: Stream,
    upstream: Stream,
    watch: Option<Watch>,
) -> Option<&'static str> {
    let (to_client, from_client) = client.split();
    let (to_upstream, from_upstream) = upstream.split();
    let to_client: Sink = Arc::new(tokio::sync::Mutex::new(to_client));
    let to_upstream: Sink = Arc::new(tokio::sync::Mutex::new(to_upstream));
    let mut up = tokio::spawn(pump(from_client, Arc::clone(&to_upstream)));
    let mut down = tokio::spawn(pump(from_upstream, Arc::clone(&to_client)));
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let deadline = watch.as_ref().and_then(|w| w.deadline).map(|exp| {
        let left = (exp - crate::cli::now()).max(0);
        tokio::time::Instant::now() + Duration::from_secs(left.unsigned_abs())
    });
    let expiry = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let ended = loop {
        tokio::select! {
            _ = &mut up => break None,
            _ = &mut down => break None,
            () = &mut expiry => break Some("expired"),
            _ = recheck.tick(), if watch.is_some() => {
                if let Some(watch) = &watch {
                    if let Some(reason) = still_accepted(state, watch).await {
                        break Some(reason);
                    }
                }
            }
        }
    };
    up.abort();
    down.abort();
    let frames = ended.map(|reason| {
        let (code, text) = if reason == "expired" {
            (CloseCode::from(EXPIRED), "token expired")
        } else {
            (CloseCode::Policy, "token no longer accepted")
        };
        (
            CloseFrame {
                code,
                reason: text.into(),
            },
            CloseFrame {
                code: CloseCode::Away,
                reason: "".into(),
            },
        )
    });
    let (client_frame, upstream_frame) = match frames {
        Some((client, upstream)) => (Some(client), Some(upstream)),
        None => (None, None),
    };
    // Close both sides (or finish the close one side began), each within a bound: a peer
    // that does not read cannot hold the connection.
    for (sink, frame) in [(to_client, client_frame), (to_upstream, upstream_frame)] {
        let _ = tokio::time::timeout(CLOSE_WAIT, async move {
            let mut sink = sink.lock().await;
            if let Some(frame) = frame {
                let _ = sink.send(Message::Close(Some(frame))).await;
            }
            let _ = sink.close().await;
        })
        .await;
    }
    ended
}

/// Passes messages from one side to the other until either ends; a close is passed on.
async fn pump(mut from: SplitStream<Stream>, to: Sink) {
    while let Some(Ok(message)) = from.next().await {
        match message {
            // Pings are answered by each side's own connection.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            Message::Close(frame) => {
                let _ = to.lock().await.send(Message::Close(frame)).await;
                return;
            }
            message => {
                if to.lock().await.send(message).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// `None` while the token is accepted and the route would still let it in; otherwise why
/// the websocket must close.
async fn still_accepted(state: &AppState, watch: &Watch) -> Option<&'static str> {
    let now = crate::cli::now();
    let identity = match &watch.provider {
        ProviderRef::Own => match crate::check::check(state, &watch.token, now) {
            Ok(accepted) => Identity::Own(accepted),
            Err(refusal) => return Some(reason(refusal.code())),
        },
        ProviderRef::External(external) => match external.verify(&watch.token, now).await {
            Ok(identity) => identity,
            Err(Failure::Invalid { code, .. }) => return Some(reason(code)),
            Err(Failure::Unavailable(_)) => return Some("revoked"),
        },
    };
    let route = state.gateway.routes.get(watch.route)?;
    super::proxy::authorize(state, route, &identity, &Method::GET, &watch.path)
        .err()
        .map(|_| "forbidden")
}

fn reason(code: &str) -> &'static str {
    if code == "expired" {
        "expired"
    } else {
        "revoked"
    }
}
