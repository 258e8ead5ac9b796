//! `POST /logout` (the presented token is denylisted until its `exp`) and `POST /token/renew`
//! (a new token of the same lifetime, and the old one denylisted).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::authenticate;
use super::error::ApiError;
use super::login;
use crate::model::Revocation;
use crate::state::{Accepted, AppState};
use crate::store::{Kind, StoreError};

pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let now = crate::cli::now();
    let accepted = match authenticate(&state, &headers, now) {
        Ok((_, accepted)) => accepted,
        Err(response) => return *response,
    };
    // Logging out twice (a race between two tabs) is fine: the token is revoked either way.
    if let Err(e) = revoke(&state, &accepted, now, true).await {
        return e.into_response();
    }
    let mut response = Json(json!({ "success": true, "message": "logged out" })).into_response();
    let secure = super::auth::over_https(&state, &headers, peer.ip());
    let expired = super::auth::session_cookie("", 0, secure);
    if let Ok(cookie) = HeaderValue::from_str(&expired) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn renew(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let now = crate::cli::now();
    let accepted = match authenticate(&state, &headers, now) {
        Ok((_, accepted)) => accepted,
        Err(response) => return *response,
    };
    // Renewing a gate token would trade a scoped token for a session with its creator's roles.
    if accepted.scope.is_some() {
        return *super::admin::gate_token_refused();
    }
    let Some(user) = state.with_directory(|d| d.user(&accepted.user).cloned()) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "unknown_user", "the user is gone")
            .into_response();
    };
    // The same lifetime as the token renewed, within the login limits.
    let login = &state.config.login;
    let ttl = match (accepted.iat, accepted.exp) {
        (Some(iat), Some(exp)) if exp > iat => (exp - iat).min(login.max_expire_seconds),
        _ => login.default_expire_seconds,
    };
    // Revoked first, and only once: of two renewals racing with one token, one wins.
    if let Err(e) = revoke(&state, &accepted, now, false).await {
        return e.into_response();
    }
    let secure = super::auth::over_https(&state, &headers, peer.ip());
    let renewed =
        login::respond_with_token(&state, &user, ttl, accepted.audience.clone(), Some(secure));
    match renewed.await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// Denylists the token's `jti` in the store and in this server's directory at once. Unless
/// `again_ok`, a token revoked meanwhile (by a racing request) is refused.
async fn revoke(
    state: &AppState,
    accepted: &Accepted,
    now: i64,
    again_ok: bool,
) -> Result<(), ApiError> {
    let Some(jti) = &accepted.jti else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "no_jti",
            "this token has no jti, so it cannot be revoked alone; revoke the user's tokens",
        ));
    };
    let entry = Revocation {
        jti: jti.clone(),
        revoked: now,
        exp: accepted.exp,
    };
    match state.model.create(Kind::Revocation, jti, &entry).await {
        Ok(()) => {}
        Err(StoreError::Exists { .. }) if again_ok => {}
        Err(StoreError::Exists { .. }) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_revoked",
                "this token was already revoked (renewed or logged out)",
            ))
        }
        Err(StoreError::InvalidName { .. }) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unrevocable_jti",
                "this token's jti cannot be stored; revoke the user's tokens instead",
            ))
        }
        Err(e) => return Err(ApiError::unavailable(e.to_string())),
    }
    tracing::info!(
        user = accepted.user,
        jti = super::admin::short(jti),
        "token revoked"
    );
    state.apply_revocation(jti).await;
    Ok(())
}
