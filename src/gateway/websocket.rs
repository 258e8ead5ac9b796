//! Websockets through the gateway: after the upstream agreed to the upgrade (its 101 goes to the
//! client as it is), messages are relayed frame by frame between the two connections, so that
//! the gateway can end the conversation itself: with close code 4001 when the token that opened
//! it expires, 1008 when it is revoked or otherwise no longer accepted. Checked every second.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::runtime::{Failure, ProviderRef};
use crate::state::AppState;

/// What keeps a websocket open: the token that opened it, still accepted by its provider.
pub struct Watch {
    pub token: String,
    pub provider: ProviderRef,
    /// `exp` + leeway: the moment the token stops being accepted.
    pub deadline: Option<i64>,
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
        let client =
            WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None).await;
        let upstream =
            WebSocketStream::from_raw_socket(TokioIo::new(upstream), Role::Client, None).await;
        state.metrics.websocket_opened();
        let ended = relay(&state, client, upstream, watch).await;
        if let Some(reason) = ended {
            state.metrics.websocket_closed(reason);
            tracing::info!(%route, reason, "websocket closed by the gateway");
        }
    });
}

type Stream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Relays until either side closes (`None`) or the token ends (`Some(reason)`).
async fn relay(
    state: &AppState,
    client: Stream,
    upstream: Stream,
    watch: Option<Watch>,
) -> Option<&'static str> {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
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
            message = from_client.next() => match message {
                Some(Ok(Message::Close(frame))) => {
                    let _ = to_upstream.send(Message::Close(frame)).await;
                    break None;
                }
                // Pings are answered by each side's own connection.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(message)) => {
                    if to_upstream.send(message).await.is_err() {
                        break None;
                    }
                }
                Some(Err(_)) | None => break None,
            },
            message = from_upstream.next() => match message {
                Some(Ok(Message::Close(frame))) => {
                    let _ = to_client.send(Message::Close(frame)).await;
                    break None;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(message)) => {
                    if to_client.send(message).await.is_err() {
                        break None;
                    }
                }
                Some(Err(_)) | None => break None,
            },
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
    if let Some(reason) = ended {
        let (code, text) = if reason == "expired" {
            (CloseCode::from(EXPIRED), "token expired")
        } else {
            (CloseCode::Policy, "token no longer accepted")
        };
        let frame = CloseFrame {
            code,
            reason: text.into(),
        };
        let _ = to_client.send(Message::Close(Some(frame))).await;
        let _ = to_upstream
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "".into(),
            })))
            .await;
    }
    // Give the client a moment to answer the close, then drop both connections.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = from_client.next().await {}
    })
    .await;
    ended
}

/// `None` while the token is accepted; otherwise why the websocket must close.
async fn still_accepted(state: &AppState, watch: &Watch) -> Option<&'static str> {
    let now = crate::cli::now();
    let refusal = match &watch.provider {
        ProviderRef::Own => crate::check::check(state, &watch.token, now)
            .err()
            .map(|r| r.code()),
        ProviderRef::External(external) => match external.verify(&watch.token, now).await {
            Ok(_) => None,
            Err(Failure::Invalid { code, .. }) => Some(code),
            Err(Failure::Unavailable(_)) => Some("keys_unavailable"),
        },
    };
    refusal.map(|code| {
        if code == "expired" {
            "expired"
        } else {
            "revoked"
        }
    })
}
