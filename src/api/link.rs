//! Signed links (kube-gateway's `/auth/jwt/set?token=…&then=…`): a link carries a token, the
//! browser that opens it gets the token as the session cookie and is sent on to `then`, a path
//! on this site. Built for links pasted from `jq` output, so quotes around the token are
//! dropped; anything that could send the browser elsewhere (an open redirect) is refused.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{challenge, cookie, over_https, GATE_COOKIE};
use super::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
pub struct Link {
    token: Option<String>,
    then: Option<String>,
}

/// `GET /auth/jwt/set?token=…&then=…`.
pub async fn set_get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Link>, QueryRejection>,
) -> Response {
    match query {
        Ok(Query(link)) => set(&state, &headers, peer, link),
        Err(rejection) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
        .into_response(),
    }
}

/// `POST /auth/jwt/set` with a form body (`token=…&then=…`), so the token stays out of URLs
/// and logs of anything in between.
pub async fn set_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return super::body_error(rejection).into_response(),
    };
    match serde_urlencoded::from_bytes::<Link>(&body) {
        Ok(link) => set(&state, &headers, peer, link),
        Err(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_form",
            format!("the body is not a form with token and then: {e}"),
        )
        .into_response(),
    }
}

fn set(state: &AppState, headers: &HeaderMap, peer: SocketAddr, link: Link) -> Response {
    let then = match link.then.as_deref().map(str::trim) {
        None | Some("") => "/".to_owned(),
        Some(then) => match local_path(then) {
            Ok(()) => then.to_owned(),
            Err(why) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_redirect",
                    format!("then must be a path on this site (like /app/page?x=1): {why}"),
                )
                .into_response()
            }
        },
    };
    let token = link.token.as_deref().map(unquote).unwrap_or_default();
    if token.is_empty() {
        return challenge(
            "missing_token",
            "no token: the link needs ?token=<jwt>",
            false,
        );
    }
    let now = crate::cli::now();
    let accepted = match crate::check::check(state, token, now) {
        Ok(accepted) => accepted,
        Err(refusal) => return challenge(refusal.code(), &refusal.to_string(), true),
    };
    // Links end up in histories and logs: only a gate token, which opens its paths and
    // nothing else, may travel in one.
    if accepted.scope.is_none() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_gate_token",
            "a signed link carries a gate token (jwtgate gatetoken create); session and API tokens never go into URLs",
        )
        .into_response();
    }
    // The cookie lives as long as the token; a token without exp makes a browser-session
    // cookie.
    let max_age = accepted.exp.map(|exp| (exp - now).max(0));
    let cookie = cookie(
        GATE_COOKIE,
        token,
        max_age,
        over_https(state, headers, peer.ip()),
    );
    let mut response = StatusCode::FOUND.into_response();
    let set = response.headers_mut();
    if let (Ok(cookie), Ok(location)) =
        (HeaderValue::from_str(&cookie), HeaderValue::from_str(&then))
    {
        set.insert(header::SET_COOKIE, cookie);
        set.insert(header::LOCATION, location);
    } else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_redirect",
            "then or the token holds characters a header cannot carry",
        )
        .into_response();
    }
    // The page we send the browser to must not learn the link (it holds the token).
    set.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tracing::info!(
        user = accepted.user,
        jti = accepted.jti.as_deref().map(super::admin::short),
        "signed link used"
    );
    response
}

/// The token without whitespace and one pair of surrounding quotes (`jq .status.token`
/// prints them).
fn unquote(token: &str) -> &str {
    let token = token.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = token
            .strip_prefix(quote)
            .and_then(|t| t.strip_suffix(quote))
        {
            return inner.trim();
        }
    }
    token
}

/// Refuses anything a browser could take to another site: a scheme, a host (`//evil`,
/// `/\evil`, which browsers read as `//evil`), backslashes, and whitespace or control
/// characters (browsers drop tabs and newlines, so `/\t/evil` becomes `//evil`).
fn local_path(then: &str) -> Result<(), &'static str> {
    if !then.starts_with('/') {
        return Err("it does not start with '/'");
    }
    if then.starts_with("//") {
        return Err("'//' starts another host");
    }
    // Dot segments and '//' further on can resolve to '//host' at the browser or a server
    // that redirects (`/..//evil`, `/.//evil`).
    let path = then.split(['?', '#']).next().unwrap_or_default();
    if path.contains("//") {
        return Err("'//' in the path");
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("dot segments ('.', '..') in the path");
    }
    if then.contains('\\') {
        return Err("backslashes are read as '/' by browsers");
    }
    if then.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("whitespace and control characters are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_redirect_targets() {
        for ok in [
            "/",
            "/noVNC/vnc_lite.html?path=k8s/apis/x/vnc",
            "/a#frag",
            "/a:b",
            "/a?next=//x",
        ] {
            assert_eq!(local_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example/x",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil",
            "data:text/html,x",
            "/..//evil.example",
            "/.//evil.example",
            "/a//evil.example",
            "/a/../b",
        ] {
            assert!(local_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quotes_around_the_token_are_dropped() {
        assert_eq!(unquote("\"a.b.c\""), "a.b.c");
        assert_eq!(unquote(" 'a.b.c' "), "a.b.c");
        assert_eq!(unquote("a.b.c"), "a.b.c");
        assert_eq!(unquote("\"a.b.c"), "\"a.b.c");
    }
}
