//! `GET|POST /auth`, the forward-auth check for nginx `auth_request`, Traefik, Caddy and Envoy:
//! the token (Bearer, bare, `X-Auth-Token` or the session cookie) is verified, checked against
//! revocation and, when asked (`X-Permission` or `?permission=`), against the user's current
//! roles. Accepted tokens are cached until their `exp` or the next change to the directory.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::state::{Accepted, AppState, Scope};

/// The session cookie `/login` will set.
pub const SESSION_COOKIE: &str = "jwtgate_session";

#[derive(Debug, Deserialize)]
pub struct AuthQuery {
    permission: Option<String>,
}

pub async fn auth(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    query: Result<Query<AuthQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    // The proxy's configuration may name a permission in the query and the client may send
    // the header (proxies pass client headers on): every permission named must be held, and
    // one named but empty or unreadable fails the request.
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                rejection.body_text(),
            )
            .into_response()
        }
    };
    let mut permissions = Vec::new();
    for value in headers.get_all("x-permission") {
        match value.to_str().map(str::trim) {
            Ok(p) if !p.is_empty() => permissions.push(p.to_owned()),
            _ => return invalid_permission(),
        }
    }
    match query.permission.as_deref().map(str::trim) {
        Some("") => return invalid_permission(),
        Some(p) => permissions.push(p.to_owned()),
        None => {}
    }
    let accepted = match authenticate(&state, &headers, crate::cli::now()) {
        Ok((_, accepted)) => accepted,
        Err(response) => return *response,
    };
    if let Some(scope) = &accepted.scope {
        if let Err(response) = check_scope(&state, scope, &method, &uri, &headers) {
            return *response;
        }
    }
    for permission in &permissions {
        if !state.with_directory(|d| d.allows(&accepted.roles, permission)) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_denied",
                format!(
                    "user '{}' lacks the permission '{permission}'",
                    accepted.user
                ),
            )
            .into_response();
        }
    }
    let mut response = Json(json!({
        "permission": permissions.first(),
        "success": true,
        "user": accepted.user,
    }))
    .into_response();
    let headers = response.headers_mut();
    if let Ok(user) = HeaderValue::from_str(&accepted.user) {
        headers.insert("x-auth-user", user);
    }
    if let Ok(roles) = HeaderValue::from_str(&accepted.roles.join(",")) {
        headers.insert("x-auth-roles", roles);
    }
    response
}

/// A gate token at `/auth`: the proxied request's method and path must be in its scope. The
/// path comes from `X-Original-URI` (nginx) or `X-Forwarded-Uri` (Traefik, Caddy), or from
/// the check's own path (Envoy: `/auth/<path>`); the method from `X-Original-Method` or
/// `X-Forwarded-Method`, or Envoy's own. Without them a gate token opens nothing.
fn check_scope(
    state: &AppState,
    scope: &Scope,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Box<Response>> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let envoy = uri
        .path()
        .strip_prefix(state.config.api_prefix.as_str())
        .and_then(|p| p.strip_prefix("/auth"))
        .filter(|p| p.len() > 1);
    let target = header("x-original-uri")
        .or_else(|| header("x-forwarded-uri"))
        .or(envoy);
    let verb = header("x-original-method")
        .or_else(|| header("x-forwarded-method"))
        .or_else(|| envoy.map(|_| method.as_str()));
    let forbidden = |code: &'static str, message: String| {
        Box::new(ApiError::new(StatusCode::FORBIDDEN, code, message).into_response())
    };
    let (Some(target), Some(verb)) = (target, verb) else {
        return Err(forbidden(
            "scope_unknown",
            "a gate token opens only the paths it names: the proxy must send the request's path \
             (X-Original-URI or X-Forwarded-Uri) and method (X-Original-Method or X-Forwarded-Method)"
                .to_owned(),
        ));
    };
    let raw_path = target.split(['?', '#']).next().unwrap_or_default();
    let path = jwtgate_core::scope::normalize_path(raw_path)
        .map_err(|e| forbidden("path_refused", format!("{e}")))?;
    if !jwtgate_core::scope::url_allowed(scope.urls.iter().map(String::as_str), &path) {
        return Err(forbidden(
            "path_not_allowed",
            format!("the gate token does not open {path}"),
        ));
    }
    if !scope.allows(verb, &path) {
        return Err(forbidden(
            "method_not_allowed",
            format!("the gate token does not allow {verb} on {path}"),
        ));
    }
    Ok(())
}

fn invalid_permission() -> Response {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_permission",
        "a permission (X-Permission or ?permission=) is empty or not readable text",
    )
    .into_response()
}

/// The request's token, verified and checked against revocation (or found in the cache), or
/// the 401 to answer with. Shared by `/auth`, `/logout` and `/token/renew`.
pub(super) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    now: i64,
) -> Result<(String, Accepted), Box<Response>> {
    let Some(token) = token_from(headers) else {
        state.metrics.check("missing_token");
        return Err(Box::new(challenge(
            "missing_token",
            "no token: send `Authorization: Bearer <token>`, `X-Auth-Token`, or the session cookie",
            false,
        )));
    };
    match crate::check::check(state, token, now) {
        Ok(accepted) => Ok((token.to_owned(), accepted)),
        Err(refusal) => Err(Box::new(challenge(
            refusal.code(),
            &refusal.to_string(),
            true,
        ))),
    }
}

/// Where a request's token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Authorization,
    XAuthToken,
    Cookie,
}

/// The token from `Authorization` (Bearer, or a bare token), `X-Auth-Token`, or the cookie.
fn token_from(headers: &HeaderMap) -> Option<&str> {
    token_and_source(headers).map(|(token, _)| token)
}

/// The token and where it came from; the first of `Authorization` (Bearer, or a bare token;
/// other schemes such as Basic are not tokens), `X-Auth-Token`, the session cookie.
pub(super) fn token_and_source(headers: &HeaderMap) -> Option<(&str, Source)> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(authorization) = value(header::AUTHORIZATION.as_str()) {
        let authorization = authorization.trim();
        let token = match authorization.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            Some(_) => "",
            None => authorization,
        };
        if !token.is_empty() {
            return Some((token, Source::Authorization));
        }
    }
    if let Some(token) = value("x-auth-token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        return Some((token, Source::XAuthToken));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, token)| token)
        .filter(|t| !t.is_empty())
        .map(|token| (token, Source::Cookie))
}

/// Whether the client reached jwtgate over HTTPS: jwtgate serves TLS itself, or a trusted
/// proxy (`[server] trusted_proxies`) says so with `X-Forwarded-Proto: https`.
pub(super) fn over_https(state: &AppState, headers: &HeaderMap, peer: std::net::IpAddr) -> bool {
    if state.config.tls.is_some() {
        return true;
    }
    let trusted = state
        .config
        .trusted_proxies
        .iter()
        .any(|n| n.contains(peer));
    trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for the session cookie (`Secure` when the client came over HTTPS).
pub(super) fn session_cookie(token: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// A 401 with the RFC 6750 challenge; `invalid` adds `error="invalid_token"` and the reason.
pub(super) fn challenge(code: &'static str, reason: &str, invalid: bool) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, code, reason.to_owned()).into_response();
    let value = if invalid {
        // Quoted-string: no '"' or '\' inside, no control characters.
        let reason: String = reason
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        format!("Bearer error=\"invalid_token\", error_description=\"{reason}\"")
    } else {
        "Bearer".to_owned()
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
