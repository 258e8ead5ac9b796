//! The HTTP API: the router, with API routes under `[server] api_prefix` and health checks and
//! `/.well-known` at the root. Every response that is not a success is `api::error::ApiError`.

mod admin;
mod auth;
pub mod error;
mod health;
mod jwks;
mod link;
mod login;
mod session;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;

use crate::state::AppState;
pub(crate) use auth::{bearer_challenge, over_https};
pub use auth::{GATE_COOKIE, SESSION_COOKIE};
use error::ApiError;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/jwks", get(jwks::jwks))
        // Any method: Envoy's ext_authz sends the check with the request's own method (and
        // appends its path to the check path); the check never changes anything.
        .route("/auth", any(auth::auth))
        .route("/auth/{*path}", any(auth::auth))
        // A static route wins over the wildcard above.
        .route("/auth/jwt/set", get(link::set_get).post(link::set_post))
        .route("/login", post(login::login))
        .route("/totp/validate", post(login::totp_validate))
        .route("/logout", post(session::logout))
        .route("/token/renew", post(session::renew))
        .merge(admin_routes());
    let api = if state.config.api_prefix.is_empty() {
        api
    } else {
        Router::new().nest(&state.config.api_prefix, api)
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/.well-known/jwks.json", get(jwks::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(jwks::openid_configuration),
        )
        .merge(api)
        .fallback(gateway_or_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

/// The admin API (docs/api.md); its changes take the token from a header only.
fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/users", get(admin::list_users))
        .route(
            "/users/{name}",
            get(admin::get_user)
                .put(admin::put_user)
                .delete(admin::delete_user),
        )
        .route("/users/{name}/lock", post(admin::lock_user))
        .route("/users/{name}/unlock", post(admin::unlock_user))
        .route("/users/{name}/passwd", post(admin::passwd))
        .route("/users/{name}/roles", put(admin::put_user_roles))
        .route("/users/{name}/revoke", post(admin::revoke_user))
        .route(
            "/users/{name}/totp",
            post(admin::totp_enroll).delete(admin::totp_disable),
        )
        .route("/users/{name}/totp/confirm", post(admin::totp_confirm))
        .route("/roles", get(admin::list_roles))
        .route(
            "/roles/{name}",
            get(admin::get_role)
                .put(admin::put_role)
                .delete(admin::delete_role),
        )
        .route("/tokens", post(admin::issue_token))
        .route("/tokens/new", get(admin::issue_token_get))
        .route("/tokens/revoke", post(admin::revoke_token))
        .route(
            "/gatetokens",
            get(admin::list_gate_tokens).post(admin::create_gate_token),
        )
        .route(
            "/gatetokens/{name}",
            get(admin::get_gate_token).delete(admin::delete_gate_token),
        )
        .route_layer(middleware::from_fn(admin::header_token_for_changes))
}

/// Paths no API route serves: the gateway's routes (docs/gateway.md), or 404.
async fn gateway_or_not_found(State(state): State<AppState>, request: Request) -> Response {
    match crate::gateway::proxy::handle(&state, request).await {
        Ok(response) => response,
        Err(request) => not_found(request).await.into_response(),
    }
}

/// Counts every answered request by its route pattern (or gateway route) and status.
async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let label = response
        .extensions()
        .get::<crate::gateway::proxy::RouteLabel>();
    let route = match (&matched, label) {
        (Some(matched), _) => matched.as_str(),
        (None, Some(label)) => &label.0,
        (None, None) => "unmatched",
    };
    let status = response.status().as_u16();
    state.metrics.request(route, status);
    // The route pattern, never the path or query (a query can hold a token).
    tracing::debug!(%method, route, status, "request");
    response
}

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 64 * 1024;

/// A body that could not be read: too large (413), or otherwise unreadable (400).
pub fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            format!("the request body is over the {MAX_BODY}-byte limit"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            rejection.body_text(),
        )
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
