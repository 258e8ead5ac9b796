//! `POST /login` (App Mesh's login: `Authorization: Basic`, `X-Expire-Seconds`, `X-Audience`,
//! `X-Totp-Code`) and `POST /totp/validate` (the second step after a 428 TOTP challenge).
//! Wrong password, unknown user and locked user get the same 401 after the same work: an
//! unknown user's password is checked against a dummy hash. argon2 runs on the blocking pool.

use axum::body::Bytes;
use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use jwtgate_core::totp::{Totp, TotpError};
use serde::Deserialize;
use serde_json::{json, Map};

use super::error::ApiError;
use crate::config::Network;
use crate::issuer::{self, Request};
use crate::model::User;
use crate::state::{AppState, Challenge};
use crate::store::{Kind, StoreError};

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (name, password) = match basic_credentials(&headers) {
        Ok(credentials) => credentials,
        Err(e) => return e.into_response(),
    };
    let keys = Keys::new(&state, &headers, &name, peer);
    let name_for_log: String = name.chars().take(64).collect();
    if let Err(response) = keys.check(&state) {
        return *response;
    }
    // Counted before the (slow) check and taken back on success: parallel guesses cannot all
    // slip under the limit while the first ones are still hashing.
    keys.count(&state, true);
    let secure = super::auth::over_https(&state, &headers, peer.ip());
    match login_inner(&state, &headers, name, password, secure).await {
        Ok(response) => {
            keys.refund(&state, true);
            response
        }
        Err(e) => {
            // Debug formatting: a name is the client's text and may hold line breaks.
            tracing::info!(user = ?name_for_log, client = %keys.client, reason = e.code, "login refused");
            if e.status == StatusCode::UNAUTHORIZED {
                state.metrics.login_failure();
            } else {
                keys.refund(&state, true);
            }
            e.into_response()
        }
    }
}

/// The throttling keys of one attempt: the user name and the client address.
pub(super) struct Keys {
    user: String,
    ip: String,
    client: IpAddr,
}

impl Keys {
    pub(super) fn new(state: &AppState, headers: &HeaderMap, name: &str, peer: SocketAddr) -> Keys {
        let client = client_ip(&state.config.trusted_proxies, headers, peer.ip());
        // No user name is longer than 64 characters; longer ones share one bucket, so junk
        // names cannot grow the table by their size.
        let name = if name.len() > 64 { "<too long>" } else { name };
        Keys {
            user: format!("user:{name}"),
            ip: throttle_key(client),
            client,
        }
    }

    /// The 429 to answer when either key is over its limit.
    pub(super) fn check(&self, state: &AppState) -> Result<(), Box<Response>> {
        let login = &state.config.login;
        let now = crate::cli::now();
        let window = login.failure_window_seconds;
        let wait = [
            state
                .throttle
                .check(&self.user, login.max_failures_per_user, window, now),
            state
                .throttle
                .check(&self.ip, login.max_failures_per_ip, window, now),
        ]
        .into_iter()
        .filter_map(Result::err)
        .max();
        let Some(wait) = wait else {
            return Ok(());
        };
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many failed logins; retry in {wait} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        Err(Box::new(response))
    }

    /// Counts an attempt against the address, and the user name when `user`.
    pub(super) fn count(&self, state: &AppState, user: bool) {
        let window = state.config.login.failure_window_seconds;
        let now = crate::cli::now();
        if user {
            state.throttle.fail(&self.user, window, now);
        }
        state.throttle.fail(&self.ip, window, now);
    }

    pub(super) fn refund(&self, state: &AppState, user: bool) {
        let window = state.config.login.failure_window_seconds;
        let now = crate::cli::now();
        if user {
            state.throttle.refund(&self.user, window, now);
        }
        state.throttle.refund(&self.ip, window, now);
    }
}

async fn login_inner(
    state: &AppState,
    headers: &HeaderMap,
    name: String,
    password: String,
    secure: bool,
) -> Result<Response, ApiError> {
    let ttl = expire_seconds(
        state,
        header_str(headers, "x-expire-seconds"),
        "X-Expire-Seconds",
    )?;
    let audience = audience(state, header_str(headers, "x-audience"), "X-Audience")?;
    let user = state.with_directory(|d| d.user(&name).cloned());
    // The same argon2 work whether or not the user exists: no timing tells them apart.
    let stored = user
        .as_ref()
        .map_or_else(|| state.dummy_hash().to_owned(), |u| u.password.clone());
    let matches = state.check_password(password, stored).await;
    let user = match user {
        Some(user) if matches && !user.locked => user,
        _ => return Err(wrong_credentials()),
    };
    if user.active_totp().is_some() {
        let Some(code) = header_str(headers, "x-totp-code") else {
            return Ok(challenge(state, &user, ttl, audience));
        };
        use_totp_code(state, &user.name, code).await?;
    }
    respond_with_token(state, &user, ttl, audience, Some(secure)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Validate {
    user_name: String,
    totp_code: String,
    totp_challenge: String,
    /// A number, or (as App Mesh's documentation sends it) a string of digits.
    #[serde(default, deserialize_with = "number_or_digits")]
    expire_seconds: Option<i64>,
}

pub(super) fn number_or_digits<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Number(i64),
        Text(String),
    }
    match Option::<Seconds>::deserialize(d)? {
        None => Ok(None),
        Some(Seconds::Number(n)) => Ok(Some(n)),
        Some(Seconds::Text(text)) => text.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("expire_seconds {text:?} is not a number"))
        }),
    }
}

pub async fn totp_validate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return super::body_error(rejection).into_response(),
    };
    let request: Validate = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not the expected JSON: {e}"),
            )
            .into_response()
        }
    };
    let keys = Keys::new(&state, &headers, &request.user_name, peer);
    if let Err(response) = keys.check(&state) {
        return *response;
    }
    // Only a real challenge's wrong code counts against the user: anyone can name a user with
    // a bogus challenge, and that must not lock the user out. The address counts always.
    let real = state.has_challenge(&request.totp_challenge, &request.user_name);
    keys.count(&state, real);
    let secure = super::auth::over_https(&state, &headers, peer.ip());
    match validate_inner(&state, request, secure).await {
        Ok(response) => {
            keys.refund(&state, real);
            response
        }
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                state.metrics.login_failure();
            } else {
                keys.refund(&state, real);
            }
            e.into_response()
        }
    }
}

async fn validate_inner(
    state: &AppState,
    request: Validate,
    secure: bool,
) -> Result<Response, ApiError> {
    let now = crate::cli::now();
    // Checked before the challenge is used up: a malformed request does not burn it.
    let requested_ttl = match request.expire_seconds {
        Some(secs) => Some(expire_seconds(
            state,
            Some(&secs.to_string()),
            "expire_seconds",
        )?),
        None => None,
    };
    // Single use: taken out whether or not what follows succeeds.
    let challenge = state
        .take_challenge(&request.totp_challenge)
        .filter(|c| c.user == request.user_name && now < c.expires)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_challenge",
                "the TOTP challenge is unknown, used, expired or for another user; log in again",
            )
        })?;
    let ttl = requested_ttl.unwrap_or(challenge.ttl);
    use_totp_code(state, &challenge.user, &request.totp_code).await?;
    let user = state
        .with_directory(|d| d.user(&challenge.user).cloned())
        .filter(|u| !u.locked)
        .ok_or_else(wrong_credentials)?;
    respond_with_token(state, &user, ttl, challenge.audience, Some(secure)).await
}

/// Checks `code` for the user and records its time step, so it cannot be used again. The
/// check runs inside the compare-and-swap update: two logins racing with one code cannot
/// both succeed.
async fn use_totp_code(state: &AppState, name: &str, code: &str) -> Result<(), ApiError> {
    let now = crate::cli::now();
    let result = state
        .model
        .update::<User, LoginError, _>(Kind::User, name, |u| {
            let totp_state = u
                .totp
                .as_mut()
                .filter(|t| !t.pending)
                .ok_or(LoginError::Totp(TotpError::Wrong))?;
            let totp = Totp::from_secret_text(&totp_state.secret)
                .ok_or(LoginError::Totp(TotpError::Wrong))?;
            let step = totp
                .check(code, now, totp_state.last_step)
                .map_err(LoginError::Totp)?;
            totp_state.last_step = Some(step);
            Ok(())
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(LoginError::Totp(TotpError::Replayed)) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_replayed",
            "this TOTP code was already used; wait for the next one",
        )),
        Err(LoginError::Totp(_)) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "totp_invalid",
            "the TOTP code is wrong or expired",
        )),
        // The user was deleted meanwhile: the same answer as any wrong credential.
        Err(LoginError::Store(StoreError::NotFound { .. })) => Err(wrong_credentials()),
        Err(LoginError::Store(e)) => Err(ApiError::unavailable(e.to_string())),
    }
}

enum LoginError {
    Totp(TotpError),
    Store(StoreError),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> LoginError {
        LoginError::Store(e)
    }
}

/// Issues a token to `user` and answers as `/login` does: the body, and the session cookie
/// when `cookie` is `Some(secure)` (not when an admin asks for another user's token).
pub(super) async fn respond_with_token(
    state: &AppState,
    user: &User,
    ttl: i64,
    audience: Option<String>,
    cookie: Option<bool>,
) -> Result<Response, ApiError> {
    let audiences: Vec<String> = audience.into_iter().collect();
    let issued = issuer::issue(
        &state.model,
        user,
        Request {
            issuer: &state.config.issuer,
            ttl: Some(ttl),
            audiences: &audiences,
            extra: Map::new(),
            gate: None,
        },
    )
    .await
    .map_err(|e| ApiError::unavailable(format!("cannot issue a token: {e:#}")))?;
    tracing::info!(
        user = user.name,
        jti = super::admin::short(&issued.jti),
        exp = issued.exp,
        "token issued"
    );
    let body = json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "expire_seconds": ttl,
        "expire_time": issued.exp,
        "profile": { "name": user.name, "auth_time": issued.iat },
    });
    let mut response = Json(body).into_response();
    let cookie = cookie.map(|secure| super::auth::session_cookie(&issued.token, ttl, secure));
    if let Some(Ok(cookie)) = cookie.map(HeaderValue::try_from) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// 428 with a single-use challenge for `POST /totp/validate`.
fn challenge(state: &AppState, user: &User, ttl: i64, audience: Option<String>) -> Response {
    let expires = crate::cli::now() + state.config.login.totp_challenge_seconds;
    let id = state.new_challenge(Challenge {
        user: user.name.clone(),
        expires,
        ttl,
        audience,
    });
    let mut response = (
        StatusCode::PRECONDITION_REQUIRED,
        Json(json!({
            "status": "TOTP_CHALLENGE_REQUIRED",
            "totp_challenge": id,
            "digits": 6,
            "period": 30,
            "expires": expires,
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("TOTP challenge=\"{id}\"")) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// User name and password from `Authorization: Basic`; the password may contain ':'.
fn basic_credentials(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let Some(value) = header_str(headers, header::AUTHORIZATION.as_str()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "send the user name and password as `Authorization: Basic base64(name:password)`",
        ));
    };
    let malformed = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_authorization",
            "`Authorization` must be `Basic base64(name:password)`",
        )
    };
    let encoded = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
        Some(_) => return Err(malformed()),
        // App Mesh's own clients send the base64 credentials without the scheme.
        None => value,
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (name, password) = text.split_once(':').ok_or_else(malformed)?;
    Ok((name.to_owned(), password.to_owned()))
}

/// A token lifetime asked for (`what` names where), within the login limits.
pub(super) fn expire_seconds(
    state: &AppState,
    value: Option<&str>,
    what: &str,
) -> Result<i64, ApiError> {
    let login = &state.config.login;
    let Some(value) = value else {
        return Ok(login.default_expire_seconds);
    };
    let secs: i64 = value.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_expire_seconds",
            format!("{what} must be a positive number of seconds, not {value:?}"),
        )
    })?;
    if secs > login.max_expire_seconds {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "expire_seconds_too_long",
            format!(
                "{what} {secs} is over the limit of {} seconds",
                login.max_expire_seconds
            ),
        ));
    }
    Ok(secs)
}

/// An audience asked for (`what` names where); it must be one of the configured ones.
pub(super) fn audience(
    state: &AppState,
    value: Option<&str>,
    what: &str,
) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(aud) if state.config.login.audiences.iter().any(|a| a == aud) => {
            Ok(Some(aud.to_owned()))
        }
        Some(aud) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "audience_not_allowed",
            format!(
                "{what} {aud:?} is not one of [{}]",
                state.config.login.audiences.join(", ")
            ),
        )),
    }
}

fn wrong_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong user name or password",
    )
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
/// address in `X-Forwarded-For` (read from the right) that is not a trusted proxy itself.
/// Anything a client wrote further left is ignored: only trusted hops can be believed.
pub(super) fn client_ip(trusted: &[Network], headers: &HeaderMap, peer: IpAddr) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // Bytes, entry by entry: junk a client put on the left (even non-ASCII) must not make
    // the addresses the proxies appended on the right unreadable.
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Unreadable: stop at the last address that could be trusted.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// The address throttling counts for `client`: an IPv6 client by its /64, since one host
/// usually holds a whole /64 and could rotate through it.
fn throttle_key(client: IpAddr) -> String {
    match client {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            format!("ip:{}/64", std::net::Ipv6Addr::from(prefix))
        }
        IpAddr::V6(v6) => format!("ip:{}", v6.to_ipv4_mapped().map_or(client, IpAddr::V4)),
        IpAddr::V4(_) => format!("ip:{client}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_throttled_by_their_64() {
        let key = |s: &str| throttle_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(key("192.0.2.1"), "ip:192.0.2.1");
        assert_eq!(key("::ffff:192.0.2.1"), "ip:192.0.2.1");
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_hop_behind_trusted_proxies() {
        let trusted = [
            Network::parse("127.0.0.1").unwrap(),
            Network::parse("10.0.0.0/8").unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let with = |xff: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
            headers
        };
        // A direct client's header is its own claim: ignored.
        assert_eq!(
            client_ip(&trusted, &with("1.2.3.4"), ip("192.0.2.9")),
            ip("192.0.2.9")
        );
        // Behind nginx: the address nginx appended.
        assert_eq!(
            client_ip(&trusted, &with("192.0.2.9"), ip("127.0.0.1")),
            ip("192.0.2.9")
        );
        // A forged entry on the left does not help: the nearest untrusted hop counts.
        assert_eq!(
            client_ip(
                &trusted,
                &with("6.6.6.6, 192.0.2.9, 10.1.1.1"),
                ip("127.0.0.1")
            ),
            ip("192.0.2.9")
        );
        assert_eq!(
            client_ip(&trusted, &HeaderMap::new(), ip("127.0.0.1")),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(&trusted, &with("junk, 10.1.1.1"), ip("127.0.0.1")),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_ip(&[], &with("192.0.2.9"), ip("127.0.0.1")),
            ip("127.0.0.1")
        );
        // Ports, and junk (even non-UTF-8) a client put on the left.
        assert_eq!(
            client_ip(&trusted, &with("192.0.2.9:4711"), ip("127.0.0.1")),
            ip("192.0.2.9")
        );
        assert_eq!(
            client_ip(&trusted, &with("[2001:db8::1]:80"), ip("127.0.0.1")),
            ip("2001:db8::1")
        );
        let mut junk = HeaderMap::new();
        junk.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 192.0.2.9").unwrap(),
        );
        assert_eq!(client_ip(&trusted, &junk, ip("127.0.0.1")), ip("192.0.2.9"));
    }
}
