//! The public keys: `/jwks` and `/.well-known/jwks.json` (active and still-valid retired keys,
//! public members only), and the OpenID discovery document that points to them.

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::state::AppState;

/// Verifiers may cache the keys this long; a rotation keeps old keys published far longer.
const CACHE: &str = "public, max-age=300";

pub async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state.keys();
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::CACHE_CONTROL, CACHE),
        ],
        keys.jwks.clone(),
    )
        .into_response()
}

pub async fn openid_configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let base = match &state.config.public_url {
        Some(url) => url.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                // Only a plain host[:port]: anything else (userinfo, paths) is not reflected.
                .filter(|h| {
                    !h.is_empty()
                        && h.len() <= 255
                        && h.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                        })
                })
                .map_or_else(|| state.config.listen.to_string(), str::to_owned);
            format!("http://{host}")
        }
    };
    let keys = state.keys();
    let document = json!({
        "issuer": state.config.issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "id_token_signing_alg_values_supported": keys.algs,
    });
    (
        [(header::CACHE_CONTROL, CACHE), (header::VARY, "Host")],
        Json(document),
    )
        .into_response()
}
