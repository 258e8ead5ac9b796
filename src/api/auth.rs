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

/// The cookie a signed link sets: a gate token, kept apart from the session so that a link
/// never replaces (or logs anyone into) a session. Read after the session cookie.
pub const GATE_COOKIE: &str = "jwtgate_gate";

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

/// A gate token at `/auth`: the proxied request's method and path must be in its scope. They
/// come from one source, as a pair: `X-Original-URI` + `X-Original-Method` (nginx, set as in
/// docs/forward-auth.md), `X-Forwarded-Uri` + `X-Forwarded-Method` (Traefik, Caddy), or the
/// check's own path and method (Envoy: `/auth/<path>`). Proxies overwrite their own pair but
/// pass the client's other headers on, so a request showing two sources is refused, as is a
/// pair with a half missing, empty or unreadable: a client must not choose what is checked.
/// The path must be canonical (`strict_path`): the service behind the proxy parses the raw
/// path itself, so jwtgate must not judge a resolved path that the service would not serve.
fn check_scope(
    state: &AppState,
    scope: &Scope,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Box<Response>> {
    let forbidden = |code: &'static str, message: String| {
        Box::new(ApiError::new(StatusCode::FORBIDDEN, code, message).into_response())
    };
    // Present: Some(text), with text None when it is empty or not readable.
    let header = |name: &str| {
        let mut values = headers.get_all(name).iter();
        let first = values.next()?;
        let text = first
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && values.next().is_none());
        Some(text)
    };
    let envoy = uri
        .path()
        .strip_prefix(state.config.api_prefix.as_str())
        .and_then(|p| p.strip_prefix("/auth"))
        .filter(|p| p.len() > 1);
    let mut sources: Vec<(Option<&str>, Option<&str>)> = Vec::new();
    for (path, verb) in [
        ("x-original-uri", "x-original-method"),
        ("x-forwarded-uri", "x-forwarded-method"),
    ] {
        match (header(path), header(verb)) {
            (None, None) => {}
            (path, verb) => sources.push((path.flatten(), verb.flatten())),
        }
    }
    if let Some(path) = envoy {
        sources.push((Some(path), Some(method.as_str())));
    }
    let (target, verb) =
        match sources.as_slice() {
            [] => return Err(forbidden(
                "scope_unknown",
                "a gate token opens only the paths it names: the proxy must send the request's \
                 path and method (X-Original-URI and X-Original-Method, or X-Forwarded-Uri and \
                 X-Forwarded-Method)"
                    .to_owned(),
            )),
            [(Some(target), Some(verb))] => (*target, *verb),
            [_] => {
                return Err(forbidden(
                    "scope_unknown",
                    "the request's path and method must both be sent, readable and non-empty, by \
                 the same proxy (X-Original-URI with X-Original-Method, or X-Forwarded-Uri with \
                 X-Forwarded-Method)"
                        .to_owned(),
                ))
            }
            _ => return Err(forbidden(
                "scope_ambiguous",
                "the request names its path in more than one way (X-Original-*, X-Forwarded-*, \
                 the check path); a client may have added one"
                    .to_owned(),
            )),
        };
    if target.contains('#') {
        return Err(forbidden(
            "path_refused",
            "the request path holds a '#'".to_owned(),
        ));
    }
    let raw_path = target.split('?').next().unwrap_or_default();
    let path = jwtgate_core::scope::strict_path(raw_path)
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
) -> Result<(String, std::sync::Arc<Accepted>), Box<Response>> {
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
    let cookie = |wanted: &str| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == wanted)
            .map(|(_, token)| token)
            .filter(|t| !t.is_empty())
    };
    cookie(SESSION_COOKIE)
        .or_else(|| cookie(GATE_COOKIE))
        .map(|token| (token, Source::Cookie))
}

/// Whether the client reached jwtgate over HTTPS: jwtgate serves TLS itself, or a trusted
/// proxy (`[server] trusted_proxies`) says so with `X-Forwarded-Proto: https`.
pub(crate) fn over_https(state: &AppState, headers: &HeaderMap, peer: std::net::IpAddr) -> bool {
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
    cookie(SESSION_COOKIE, token, max_age, secure)
}

/// `Set-Cookie` for `name`; a `max_age` of `None` makes a browser-session cookie.
pub(super) fn cookie(
    name: &str,
    token: &str,
    max_age: impl Into<Option<i64>>,
    secure: bool,
) -> String {
    let secure = if secure { "; Secure" } else { "" };
    let max_age = max_age
        .into()
        .map_or_else(String::new, |age| format!("; Max-Age={age}"));
    format!("{name}={token}; Path=/; HttpOnly; SameSite=Lax{max_age}{secure}")
}

/// A `WWW-Authenticate` value (RFC 6750 §3): `Bearer`, with `realm` when given, and with
/// `error="invalid_token"` and the reason when a token was sent and refused.
pub(crate) fn bearer_challenge(realm: Option<&str>, refused: Option<&str>) -> String {
    let mut params: Vec<String> = Vec::new();
    if let Some(realm) = realm {
        params.push(format!("realm=\"{realm}\""));
    }
    if let Some(reason) = refused {
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
        params.push("error=\"invalid_token\"".to_owned());
        params.push(format!("error_description=\"{reason}\""));
    }
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// A 401 with the RFC 6750 challenge; `invalid` adds `error="invalid_token"` and the reason.
pub(super) fn challenge(code: &'static str, reason: &str, invalid: bool) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, code, reason.to_owned()).into_response();
    let value = bearer_challenge(None, invalid.then_some(reason));
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}
