//! The HTTP API: the router, with API routes under `[server] api_prefix` and health checks and
//! `/.well-known` at the root, and [`App`], where every request enters: paths no API route
//! can take go straight to the gateway. Every response that is not a success is `ApiError`.

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

/// Every request enters here. A path that no API route can take goes straight to the gateway
/// (the busiest path, spared the router and its middleware); everything else through the
/// router, whose fallback is the gateway, so an API route always wins over a gateway route.
#[derive(Clone)]
pub struct App {
    router: Router,
    state: AppState,
}

impl App {
    pub fn new(state: AppState) -> App {
        App {
            router: router(state.clone()),
            state,
        }
    }

    pub async fn call(self, request: Request) -> Response {
        let direct = !self.state.gateway.routes.is_empty()
            && !maybe_api(&self.state.config.api_prefix, request.uri().path());
        let request = if direct {
            let method = request.method().clone();
            match crate::gateway::proxy::handle(&self.state, request).await {
                Ok(response) => {
                    let label = response
                        .extensions()
                        .get::<crate::gateway::proxy::RouteLabel>()
                        .map_or("unmatched", |l| &*l.0);
                    record(&self.state, &method, label, response.status());
                    return response;
                }
                Err(request) => request,
            }
        } else {
            request
        };
        match tower::ServiceExt::oneshot(self.router, request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// The first path segments of the API routes below `api_prefix` (kept in step with `router`
/// by a test).
const API_SEGMENTS: [&str; 10] = [
    "jwks",
    "auth",
    "login",
    "totp",
    "logout",
    "token",
    "users",
    "roles",
    "tokens",
    "gatetokens",
];

/// Whether the raw `path` could be an API route's. Errs on the side of yes: a yes only means
/// the router decides.
fn maybe_api(api_prefix: &str, path: &str) -> bool {
    if ["/healthz", "/readyz", "/metrics", "/.well-known/"]
        .iter()
        .any(|root| path.starts_with(root))
    {
        return true;
    }
    let Some(rest) = path.strip_prefix(api_prefix) else {
        return false;
    };
    match rest.strip_prefix('/') {
        Some(rest) => API_SEGMENTS.contains(&rest.split('/').next().unwrap_or_default()),
        None => rest.is_empty(),
    }
}

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
    record(&state, &method, route, response.status());
    response
}

/// Counts an answered request, and logs it at debug level: the route pattern, never the path
/// or query (a query can hold a token).
fn record(state: &AppState, method: &axum::http::Method, route: &str, status: StatusCode) {
    let status = status.as_u16();
    state.metrics.request(route, status);
    tracing::debug!(%method, route, status, "request");
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

#[cfg(test)]
mod tests {
    use super::maybe_api;

    /// The concrete path of a route pattern (`{name}` and `{*rest}` filled in).
    fn concrete(pattern: &str) -> String {
        let mut path = String::new();
        let mut in_param = false;
        for c in pattern.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    path.push('x');
                }
                c if !in_param => path.push(c),
                _ => {}
            }
        }
        path
    }

    #[test]
    fn every_route_of_the_router_goes_to_the_router() {
        let source = include_str!("mod.rs");
        let patterns: Vec<&str> = source
            .split(".route(\"")
            .skip(1)
            .filter_map(|piece| piece.split('"').next())
            .collect();
        assert!(patterns.len() > 20, "found only {patterns:?}");
        for prefix in ["", "/appmesh"] {
            for pattern in &patterns {
                let path = concrete(pattern);
                assert!(
                    maybe_api(prefix, &path) || maybe_api(prefix, &format!("{prefix}{path}")),
                    "{prefix}{path} would skip the router"
                );
            }
        }
    }

    #[test]
    fn gateway_paths_skip_the_router() {
        for (prefix, path) in [
            ("", "/"),
            ("", "/app/users"),
            ("", "/k8s/auth"),
            ("", "/authx"),
            ("/appmesh", "/users"),
            ("/appmesh", "/appmeshx/login"),
            ("/appmesh", "/app"),
        ] {
            assert!(!maybe_api(prefix, path), "{prefix} {path}");
        }
        assert!(maybe_api("/appmesh", "/appmesh"));
        assert!(maybe_api("/appmesh", "/appmesh/auth/k8s/x"));
        assert!(maybe_api("", "/healthz"));
    }
}
