//! A request on a gateway route: the path normalised once (the same path is matched, checked
//! against a gate token's scope and sent upstream), the route's token found in exactly one
//! form and accepted by one of its providers, the route's requirements checked, then the
//! request passed on with the client's credentials and forged identity headers removed, or a
//! file served. Every refusal is a JSON `{"error", "message"}` with its status.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::config::TokenSource;
use super::runtime::{Behind, Failure, Identity, ProviderRef, RouteRt};
use super::upstream::Upstream;
use crate::api::error::ApiError;
use crate::state::AppState;

/// The route that answered, for the request counter (`gateway /k8s`).
#[derive(Clone, Debug)]
pub struct RouteLabel(pub std::sync::Arc<str>);

/// The realm in `WWW-Authenticate` challenges.
const REALM: &str = "jwtgate";

/// Serves `request` if a gateway route covers its path; gives it back otherwise.
pub async fn handle(state: &AppState, request: Request) -> Result<Response, Request> {
    let gateway = &state.gateway;
    if gateway.routes.is_empty() {
        return Err(request);
    }
    let raw = request.uri().path();
    let normalised = if jwtgate_core::scope::is_normal(raw) {
        Ok(raw.to_owned())
    } else {
        jwtgate_core::scope::normalize_path(raw)
    };
    let path = match normalised {
        Ok(path) => path,
        Err(e) => {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                "path_refused",
                format!("{e}"),
            ))
        }
    };
    let Some(route) = gateway.route(&path) else {
        return Err(request);
    };
    // CONNECT would tunnel past the path that was checked; TRACE would echo the service
    // credential the gateway adds.
    if matches!(*request.method(), Method::CONNECT | Method::TRACE) {
        return Ok(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("the gateway does not pass {} on", request.method()),
        ));
    }
    let mut response = serve(state, route, &path, request).await;
    response
        .extensions_mut()
        .insert(RouteLabel(std::sync::Arc::clone(&route.label)));
    Ok(response)
}

async fn serve(state: &AppState, rt: &RouteRt, path: &str, request: Request) -> Response {
    let route = &rt.route;
    // What the route's scope checks and the upstream sees: the path below the prefix when
    // the prefix is stripped.
    let inner = if route.strip_prefix {
        match &path[route.prefix.len()..] {
            "" => "/",
            rest => rest,
        }
    } else {
        path
    };
    let websocket = is_websocket(request.headers());
    if websocket && !route.websocket {
        return refuse(
            StatusCode::BAD_REQUEST,
            "websocket_not_enabled",
            format!("websockets are not enabled on the route {}", route.prefix),
        );
    }
    let mut watch = None;
    let mut identity = None;
    if !rt.providers.is_empty() {
        let now = crate::cli::now();
        let (who, provider, token) =
            match authenticate(state, rt, request.headers(), request.uri().query(), now).await {
                Ok(found) => found,
                Err(response) => return response,
            };
        if let Err(refusal) = authorize(state, rt, &who, request.method(), inner) {
            return refusal.into_response();
        }
        if websocket {
            watch = Some(super::websocket::Watch {
                token: token.into_owned(),
                provider,
                route: route_index(state, rt),
                path: inner.to_owned(),
                deadline: who
                    .exp()
                    .map(|exp| exp.saturating_add_unsigned(state.config.leeway)),
            });
        }
        identity = Some(who);
    }
    match &rt.behind {
        Behind::Files(dir) => files(rt, dir, path, request).await,
        Behind::Upstream(upstream) => {
            forward(state, rt, upstream, inner, identity, watch, request).await
        }
    }
}

/// Where `rt` is among the gateway's routes.
fn route_index(state: &AppState, rt: &RouteRt) -> usize {
    state
        .gateway
        .routes
        .iter()
        .position(|r| std::ptr::eq(r, rt))
        .unwrap_or(usize::MAX)
}

/// The route's token, and the provider that accepted it, or the answer to give.
async fn authenticate<'r>(
    state: &AppState,
    rt: &RouteRt,
    headers: &'r HeaderMap,
    query: Option<&'r str>,
    now: i64,
) -> Result<(Identity, ProviderRef, Cow<'r, str>), Response> {
    let Some((token, readers)) = find_token(rt, headers, query).map_err(|e| e.into_response())?
    else {
        return Err(challenge(
            "missing_token",
            format!(
                "the route {} needs a token ({})",
                rt.route.prefix,
                describe_sources(rt)
            ),
            false,
        ));
    };
    let mut candidates: Vec<&ProviderRef> = rt
        .providers
        .iter()
        .enumerate()
        .filter(|(i, _)| readers & (1 << i) != 0)
        .map(|(_, p)| p)
        .collect();
    if candidates.len() > 1 {
        // Several providers could take it: the token's (unverified) issuer picks; the one
        // picked checks it for real.
        let issuer = super::runtime::peek_issuer(&token);
        candidates.retain(|p| {
            let wanted = match p {
                ProviderRef::Own => Some(state.config.issuer.as_str()),
                ProviderRef::External(e) => e.issuer(),
            };
            wanted.is_none() || wanted == issuer.as_deref()
        });
        if candidates.is_empty() {
            return Err(challenge(
                "issuer",
                format!(
                    "no provider of the route {} accepts tokens from the issuer {:?}",
                    rt.route.prefix,
                    issuer.unwrap_or_default()
                ),
                true,
            ));
        }
    }
    let mut first: Option<Failure> = None;
    for provider in candidates {
        let result = match provider {
            ProviderRef::Own => match crate::check::check(state, &token, now) {
                Ok(accepted) => Ok(Identity::Own(accepted)),
                // A revoked token, or one whose user is locked or gone, is jwtgate's to refuse:
                // no other provider may take it instead.
                Err(refusal @ crate::check::Refusal::Denied(_)) => {
                    return Err(challenge(refusal.code(), refusal.to_string(), true));
                }
                Err(refusal) => Err(Failure::Invalid {
                    code: refusal.code(),
                    message: refusal.to_string(),
                }),
            },
            ProviderRef::External(external) => external.verify(&token, now).await,
        };
        match result {
            Ok(identity) => return Ok((identity, provider.clone(), token)),
            Err(failure) => {
                first.get_or_insert(failure);
            }
        }
    }
    Err(match first {
        Some(Failure::Unavailable(message)) => {
            refuse(StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable", message)
        }
        Some(Failure::Invalid { code, message }) => challenge(code, message, true),
        None => challenge(
            "invalid_token",
            "no provider accepted the token".into(),
            true,
        ),
    })
}

/// The one token a request carries for the route, with a bit set for each provider that reads
/// it where it was found. The same token in several places is one token; two different ones
/// are refused (which one counts would depend on who reads the request).
fn find_token<'r>(
    rt: &RouteRt,
    headers: &'r HeaderMap,
    query: Option<&'r str>,
) -> Result<Option<(Cow<'r, str>, u64)>, ApiError> {
    let mut found: Option<(Cow<'r, str>, u64, &TokenSource)> = None;
    for (i, provider) in rt.providers.iter().enumerate() {
        let bit = 1u64 << i;
        // A browser may hold both jwtgate cookies (a session, and a signed link's gate
        // token): on a gate_scope route the link's cookie counts, elsewhere the session's.
        let skip = match provider {
            ProviderRef::Own => own_cookie_to_skip(headers, rt.route.gate_scope),
            ProviderRef::External(_) => None,
        };
        for source in provider.sources() {
            if matches!(source, TokenSource::Cookie(name) if Some(name.as_str()) == skip) {
                continue;
            }
            let mut conflict = None;
            read_source(source, headers, query, |value| match &mut found {
                None => found = Some((value, bit, source)),
                Some((token, readers, _)) if *token == value => *readers |= bit,
                Some((_, _, other)) => conflict = Some(*other),
            });
            if let Some(other) = conflict {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ambiguous_token",
                    format!(
                        "the request carries two different tokens ({} and {}); send one",
                        describe(other),
                        describe(source)
                    ),
                ));
            }
        }
    }
    Ok(found.map(|(token, readers, _)| (token, readers)))
}

/// Which of jwtgate's two cookies to ignore when both are sent with different tokens.
fn own_cookie_to_skip(headers: &HeaderMap, gate_scope: bool) -> Option<&'static str> {
    let session = cookie_value(headers, crate::api::SESSION_COOKIE)?;
    let gate = cookie_value(headers, crate::api::GATE_COOKIE)?;
    (session != gate).then_some(if gate_scope {
        crate::api::SESSION_COOKIE
    } else {
        crate::api::GATE_COOKIE
    })
}

fn cookie_value<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    cookies(headers)
        .find(|(name, _)| *name == wanted)
        .map(|(_, v)| v)
}

/// Every `name=value` pair of the request's `Cookie` headers, as bytes (values unquoted). Read
/// as bytes, not text: a browser may send another cookie with non-ASCII bytes, and that must
/// not hide jwtgate's cookies from the checks or from their removal.
fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let value = pair[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            Some((pair[..eq].trim_ascii(), value))
        })
}

/// The text cookies (a token is ASCII; pairs that are not text are nobody's token).
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    cookie_pairs(headers).filter_map(|(name, value)| {
        Some((
            std::str::from_utf8(name).ok()?,
            std::str::from_utf8(value).ok()?,
        ))
    })
}

/// Calls `each` with every non-empty token `source` holds.
fn read_source<'r>(
    source: &TokenSource,
    headers: &'r HeaderMap,
    query: Option<&'r str>,
    mut each: impl FnMut(Cow<'r, str>),
) {
    match source {
        TokenSource::Header { name, prefix } => {
            for value in headers.get_all(name.as_str()) {
                let Ok(value) = value.to_str() else { continue };
                if let Some(token) = header_token(value, prefix.as_deref()) {
                    each(Cow::Borrowed(token));
                }
            }
        }
        TokenSource::Cookie(wanted) => {
            for (name, value) in cookies(headers) {
                if name == wanted && !value.is_empty() {
                    each(Cow::Borrowed(value));
                }
            }
        }
        TokenSource::Query(wanted) => {
            let Some(query) = query else { return };
            for (name, value) in query_pairs(query) {
                if name == *wanted && !value.is_empty() {
                    each(value);
                }
            }
        }
    }
}

/// The token in a header value: after `prefix` and a space when a prefix is set (another
/// scheme, such as Basic, is not a token; a value without a scheme is), or the whole value.
fn header_token<'v>(value: &'v str, prefix: Option<&str>) -> Option<&'v str> {
    let value = value.trim();
    let token = match prefix {
        None => value,
        Some(prefix) => match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(prefix) => rest.trim(),
            // Another scheme (Basic credentials) is not a token.
            Some(_) => return None,
            // The scheme alone is no token.
            None if value.eq_ignore_ascii_case(prefix) => return None,
            // A bare token, as `/auth` reads it too.
            None => value,
        },
    };
    (!token.is_empty()).then_some(token)
}

/// A query's pairs, decoded (`+` is a space) when they need it.
fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (form_decode(name), form_decode(value))
    })
}

fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    match serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("{text}=")) {
        Ok(mut pairs) if pairs.len() == 1 => Cow::Owned(pairs.remove(0).0),
        _ => Cow::Borrowed(text),
    }
}

fn describe(source: &TokenSource) -> String {
    match source {
        TokenSource::Header { name, prefix } => match prefix {
            Some(prefix) => format!("header {name}: {prefix}"),
            None => format!("header {name}"),
        },
        TokenSource::Cookie(name) => format!("cookie {name}"),
        TokenSource::Query(name) => format!("query parameter {name}"),
    }
}

fn describe_sources(rt: &RouteRt) -> String {
    let mut all: Vec<String> = Vec::new();
    for provider in &rt.providers {
        for source in provider.sources() {
            let text = describe(source);
            if !all.contains(&text) {
                all.push(text);
            }
        }
    }
    all.join(", ")
}

/// The route's requirements: a gate token's scope on a `gate_scope` route; permissions and
/// roles for every other token.
pub(super) fn authorize(
    state: &AppState,
    rt: &RouteRt,
    who: &Identity,
    method: &Method,
    inner: &str,
) -> Result<(), ApiError> {
    let route = &rt.route;
    let forbidden =
        |code: &'static str, message: String| ApiError::new(StatusCode::FORBIDDEN, code, message);
    if let Some(scope) = who.scope() {
        if !route.gate_scope {
            return Err(forbidden(
                "gate_token_refused",
                format!(
                    "a gate token opens only routes with gate_scope, and {} has none",
                    route.prefix
                ),
            ));
        }
        if !jwtgate_core::scope::url_allowed(scope.urls.iter().map(String::as_str), inner) {
            return Err(forbidden(
                "path_not_allowed",
                format!("the gate token does not open {inner}"),
            ));
        }
        if !scope.allows(method.as_str(), inner) {
            return Err(forbidden(
                "method_not_allowed",
                format!("the gate token does not allow {method} on {inner}"),
            ));
        }
        return Ok(());
    }
    if route.gate_scope && route.require_permissions.is_empty() && route.require_roles.is_empty() {
        return Err(forbidden(
            "gate_token_required",
            format!(
                "the route {} opens with a gate token (a signed link) only",
                route.prefix
            ),
        ));
    }
    let user = who.user().unwrap_or("(no sub)");
    for permission in &route.require_permissions {
        if !state.with_directory(|d| d.allows(who.roles(), permission)) {
            return Err(forbidden(
                "permission_denied",
                format!("user '{user}' lacks the permission '{permission}'"),
            ));
        }
    }
    for role in &route.require_roles {
        if !who.roles().iter().any(|r| r == role) {
            return Err(forbidden(
                "role_missing",
                format!("user '{user}' lacks the role '{role}'"),
            ));
        }
    }
    Ok(())
}

/// A `static_dir` route: GET and HEAD of the files below the prefix.
async fn files(
    rt: &RouteRt,
    dir: &tower_http::services::ServeDir,
    path: &str,
    request: Request,
) -> Response {
    let prefix = rt.route.prefix.as_str();
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{} serves files: GET and HEAD only", prefix),
        );
    }
    // Relative links in a directory's index resolve against a trailing '/'.
    if path == prefix && prefix != "/" {
        let location = format!("{prefix}/");
        return redirect(&location);
    }
    let inner = if prefix == "/" {
        path
    } else {
        &path[prefix.len()..]
    };
    let (mut parts, body) = request.into_parts();
    let Ok(uri) = jwtgate_core::scope::encode_path(inner).parse::<Uri>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "path_refused",
            "the path cannot be written as a URI".into(),
        );
    };
    parts.uri = uri;
    let Ok(response) = dir.clone().oneshot(Request::from_parts(parts, body)).await;
    let mut response = response.map(Body::new);
    // ServeDir redirects a directory to its path with a '/', which it sees without the prefix.
    if response.status().is_redirection() && prefix != "/" {
        if let Some(location) = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .filter(|l| l.starts_with('/'))
            .and_then(|l| HeaderValue::from_str(&format!("{prefix}{l}")).ok())
        {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    if response.status() == StatusCode::NOT_FOUND {
        return refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no file for {path}"),
        );
    }
    response
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, value)]).into_response(),
        Err(_) => refuse(
            StatusCode::BAD_REQUEST,
            "path_refused",
            "the path cannot be written as a URI".into(),
        ),
    }
}

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_AUTH_USER: HeaderName = HeaderName::from_static("x-auth-user");
static X_AUTH_ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
static X_AUTH_PROVIDER: HeaderName = HeaderName::from_static("x-auth-provider");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

async fn forward(
    state: &AppState,
    rt: &RouteRt,
    upstream: &Upstream,
    inner: &str,
    identity: Option<Identity>,
    watch: Option<super::websocket::Watch>,
    mut request: Request,
) -> Response {
    let websocket = is_websocket(request.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (mut parts, body) = request.into_parts();
    let query = strip_query(rt, parts.uri.query());
    let mut target = String::with_capacity(
        upstream.scheme.len() + 3 + upstream.authority.len() + upstream.base.len() + inner.len(),
    );
    target.push_str(upstream.scheme);
    target.push_str("://");
    target.push_str(&upstream.authority);
    target.push_str(&upstream.base);
    target.push_str(&jwtgate_core::scope::encode_path(inner));
    if let Some(query) = &query {
        target.push('?');
        target.push_str(query);
    }
    parts.uri = match Uri::try_from(target) {
        Ok(uri) => uri,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "path_refused",
                "the request cannot be written as an upstream URI".into(),
            )
        }
    };
    parts.version = axum::http::Version::HTTP_11;
    let over_https = peer.is_some_and(|p| crate::api::over_https(state, &parts.headers, p))
        || state.config.tls.is_some();
    rewrite_headers(
        state,
        rt,
        &mut parts.headers,
        identity.as_ref(),
        peer,
        over_https,
    );
    if websocket {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts
            .headers
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        // Frames are relayed one by one (to close them at the token's expiry), without
        // compression.
        parts.headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let sent = upstream.client.request(Request::from_parts(parts, body));
    let mut response = match tokio::time::timeout(upstream.timeout, sent).await {
        Err(_) => {
            return refuse(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the upstream {}://{} did not answer within {}",
                    upstream.scheme,
                    upstream.authority,
                    humantime::format_duration(upstream.timeout)
                ),
            )
        }
        Ok(Err(e)) => {
            // The cause (refused, TLS, reset) is for the operator's log, not the client.
            tracing::warn!(route = %rt.route.prefix, error = %chain(&e), "upstream unreachable");
            return refuse(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                format!(
                    "the upstream of {} could not be reached (the server log says why)",
                    rt.route.prefix
                ),
            );
        }
        Ok(Ok(response)) => response,
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_none() {
        return refuse(
            StatusCode::BAD_GATEWAY,
            "upstream_invalid",
            "the upstream switched protocols on a request that did not ask for it".into(),
        );
    }
    if let Some(client_upgrade) = client_upgrade {
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            super::websocket::spawn_bridge(
                state.clone(),
                std::sync::Arc::clone(&rt.label),
                client_upgrade,
                upstream_upgrade,
                watch,
            );
            let (parts, _) = response.into_parts();
            return Response::from_parts(parts, Body::empty());
        }
    }
    let headers = response.headers_mut();
    remove_connection_headers(headers, |_| false);
    strip_own_set_cookies(headers);
    response.map(Body::new)
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Removes the headers `Connection` names, then the hop-by-hop ones and any other name
/// `also` picks.
fn remove_connection_headers(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    // One pass over the names present (most requests carry none of these), rather than a
    // lookup for every name that might be.
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || also(name))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// What the upstream gets: no hop-by-hop headers, no identity header a client wrote, no token
/// of a provider that does not forward it (jwtgate's own never go on), the route's service
/// credential, `X-Forwarded-*`, and the identity the gateway established.
fn rewrite_headers(
    state: &AppState,
    rt: &RouteRt,
    headers: &mut HeaderMap,
    identity: Option<&Identity>,
    peer: Option<std::net::IpAddr>,
    over_https: bool,
) {
    let trusted = peer.is_some_and(|p| state.config.trusted_proxies.iter().any(|n| n.contains(p)));
    let claim_headers = &state.gateway.claim_headers;
    // Identity headers a client may have forged, and any name with '_': CGI, WSGI, Rack and
    // PHP read `X_Auth_User` as `X-Auth-User` (nginx drops such headers by default too).
    // `Forwarded` and an untrusted `X-Real-IP` would name another client.
    remove_connection_headers(headers, |name| {
        let text = name.as_str();
        text.starts_with("x-auth-")
            || text.contains('_')
            || claim_headers.contains(name)
            || name == header::FORWARDED
            || (!trusted && name == X_REAL_IP)
    });
    for provider in rt.providers.iter().filter(|p| !p.forward()) {
        for source in provider.sources() {
            match source {
                TokenSource::Header { name, prefix } => strip_header(headers, name, prefix),
                TokenSource::Cookie(name) => strip_cookie(headers, name),
                TokenSource::Query(_) => {}
            }
        }
    }
    // jwtgate's cookies are its own credentials, on every route.
    strip_cookie(headers, crate::api::SESSION_COOKIE);
    strip_cookie(headers, crate::api::GATE_COOKIE);
    if let Some(bearer) = &rt.bearer {
        headers.insert(header::AUTHORIZATION, bearer.value());
    }
    if let Some(peer) = peer {
        let chain = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(earlier) if trusted => format!("{earlier}, {peer}"),
            _ => peer.to_string(),
        };
        if let Ok(value) = HeaderValue::try_from(chain) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if over_https { "https" } else { "http" }),
    );
    if let Some(host) = headers.remove(header::HOST) {
        if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
    } else if !trusted {
        headers.remove(&X_FORWARDED_HOST);
    }
    let Some(who) = identity else { return };
    if let Some(user) = who.user().and_then(|u| HeaderValue::from_str(u).ok()) {
        headers.insert(X_AUTH_USER.clone(), user);
    }
    if let Ok(roles) = HeaderValue::try_from(who.roles().join(",")) {
        headers.insert(X_AUTH_ROLES.clone(), roles);
    }
    let provider = match who {
        Identity::Own(_) => Ok(HeaderValue::from_static(super::config::SELF)),
        Identity::Claimed(_) => HeaderValue::from_str(who.provider()),
    };
    if let Ok(provider) = provider {
        headers.insert(X_AUTH_PROVIDER.clone(), provider);
    }
    for (name, value) in who.headers() {
        headers.insert(name.clone(), value.clone());
    }
}

/// Removes a header source's tokens (values without the prefix, such as Basic credentials,
/// stay).
fn strip_header(headers: &mut HeaderMap, name: &str, prefix: &Option<String>) {
    let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
        return;
    };
    if !headers.contains_key(&name) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(&name)
        .iter()
        .filter(|v| {
            v.to_str().map_or(prefix.is_some(), |text| {
                header_token(text, prefix.as_deref()).is_none()
            })
        })
        .cloned()
        .collect();
    headers.remove(&name);
    for value in kept {
        headers.append(name.clone(), value);
    }
}

/// Removes one cookie from the `Cookie` headers, keeping the others (byte for byte).
fn strip_cookie(headers: &mut HeaderMap, wanted: &str) {
    if !cookie_pairs(headers).any(|(name, _)| name == wanted.as_bytes()) {
        return;
    }
    let mut rest: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
            if pair.is_empty() || name.trim_ascii() == wanted.as_bytes() {
                continue;
            }
            if !rest.is_empty() {
                rest.extend_from_slice(b"; ");
            }
            rest.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    if !rest.is_empty() {
        if let Ok(value) = HeaderValue::from_bytes(&rest) {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// Removes `Set-Cookie` answers that would set one of jwtgate's own cookies: an upstream must
/// not plant or replace a session or a gate token in the browser.
fn strip_own_set_cookies(headers: &mut HeaderMap) {
    let own = |v: &HeaderValue| {
        v.as_bytes()
            .trim_ascii_start()
            .to_ascii_lowercase()
            .starts_with(b"jwtgate_")
    };
    if !headers.get_all(header::SET_COOKIE).iter().any(own) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !own(v))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

/// The query without the token parameters of providers that do not forward them.
fn strip_query<'q>(rt: &RouteRt, query: Option<&'q str>) -> Option<Cow<'q, str>> {
    let query = query?;
    let names: Vec<&str> = rt
        .providers
        .iter()
        .filter(|p| !p.forward())
        .flat_map(|p| p.sources())
        .filter_map(|s| match s {
            TokenSource::Query(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Some(Cow::Borrowed(query));
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !names.contains(&form_decode(name).as_ref())
        })
        .collect();
    (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
}

/// Whether the request asks for a websocket (`Upgrade: websocket`, `Connection: upgrade`).
fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// A 401 with `WWW-Authenticate: Bearer realm="jwtgate"`, and `error="invalid_token"` with the
/// reason when a token was sent (RFC 6750 §3).
fn challenge(code: &'static str, message: String, invalid: bool) -> Response {
    let value = crate::api::bearer_challenge(Some(REALM), invalid.then_some(message.as_str()));
    let mut response = refuse(StatusCode::UNAUTHORIZED, code, message);
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_tokens_need_their_scheme() {
        assert_eq!(header_token("Bearer abc", Some("Bearer")), Some("abc"));
        assert_eq!(header_token("bearer  abc ", Some("Bearer")), Some("abc"));
        assert_eq!(header_token("Basic abc", Some("Bearer")), None);
        assert_eq!(header_token("Bearer ", Some("Bearer")), None);
        assert_eq!(header_token(" abc ", None), Some("abc"));
        assert_eq!(header_token("abc", Some("Bearer")), Some("abc"), "bare");
    }

    #[test]
    fn cookies_are_removed_one_by_one() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; jwtgate_gate=t"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=\"2\""));
        strip_cookie(&mut headers, "jwtgate_gate");
        assert_eq!(headers.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(headers[header::COOKIE], "a=1; b=\"2\"");
        strip_cookie(&mut headers, "a");
        strip_cookie(&mut headers, "b");
        assert!(headers.get(header::COOKIE).is_none());
    }

    #[test]
    fn upstreams_cannot_set_jwtgates_cookies() {
        let mut headers = HeaderMap::new();
        for value in [
            "a=1; Path=/",
            " JWTGATE_SESSION=x; Path=/",
            "jwtgate_gate=y",
            "b=2",
        ] {
            headers.append(header::SET_COOKIE, HeaderValue::from_static(value));
        }
        strip_own_set_cookies(&mut headers);
        let left: Vec<&str> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["a=1; Path=/", "b=2"]);
    }

    #[test]
    fn query_values_are_decoded() {
        let pairs: Vec<(String, String)> = query_pairs("a=1&access%5Ftoken=x%2Ey&b&c=d+e")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("access_token".into(), "x.y".into()),
                ("b".into(), "".into()),
                ("c".into(), "d e".into())
            ]
        );
    }
}
