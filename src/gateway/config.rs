//! The gateway's part of the config file (SPEC §4): `[[provider]]` (who may sign tokens for a
//! route, and where the token is found) and `[[route]]` (a path prefix, what is behind it, and
//! who may pass). Checked once at start-up into `Gateway`; every mistake names its table
//! (`[[route]]` 2, prefix "/k8s") so the loader can add the file and line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The provider every server has: jwtgate's own keys and revocations.
pub const SELF: &str = "self";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    /// Where the keys come from: exactly one of these.
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// A JWKS written into the config, as JSON text.
    pub jwks: Option<String>,
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    /// How long fetched keys are used before they are fetched again (`10m`).
    pub cache_duration: Option<String>,
    /// How long a fetch may take (`1s`).
    pub timeout: Option<String>,
    /// How long the last good keys keep serving while the JWKS server fails (`1h`).
    pub max_stale: Option<String>,
    /// Pass the token on upstream (`true`), or remove it from every place it could come from.
    pub forward: Option<bool>,
    /// Where the token is: `header:NAME[:PREFIX]`, `cookie:NAME`, `query:NAME`.
    pub from: Option<Vec<String>>,
    /// Request headers to set from claims: `{ "X-User" = "sub" }`.
    pub claims_to_headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    /// `http://host:port[/base]` or `https://…`; or `static_dir`.
    pub upstream: Option<String>,
    pub static_dir: Option<PathBuf>,
    #[serde(default)]
    pub strip_prefix: bool,
    /// Any one of them may have signed the token; empty: a public route.
    #[serde(default)]
    pub providers: Vec<String>,
    #[serde(default)]
    pub require_permissions: Vec<String>,
    #[serde(default)]
    pub require_roles: Vec<String>,
    /// The token's `URLs`/`verbs` must allow the (normalised) path after `strip_prefix`.
    #[serde(default)]
    pub gate_scope: bool,
    pub upstream_bearer_file: Option<PathBuf>,
    pub upstream_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub upstream_insecure_skip_verify: bool,
    #[serde(default)]
    pub websocket: bool,
    /// How long the upstream may take to answer (`30s`; then 504).
    pub timeout: Option<String>,
}

/// Where a provider's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// jwtgate's own keys, with revocation.
    Own,
    Url(String),
    File(PathBuf),
    Inline(String),
}

/// Where a token may be found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenSource {
    /// A header, with a scheme prefix to strip when given (`Authorization: Bearer …`).
    Header {
        name: String,
        prefix: Option<String>,
    },
    Cookie(String),
    Query(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub keys: KeySource,
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub cache_duration: Duration,
    pub timeout: Duration,
    pub max_stale: Duration,
    pub forward: bool,
    pub from: Vec<TokenSource>,
    pub claims_to_headers: Vec<(String, String)>,
    /// Where the table is: `FILE:LINE`, or `[[provider]] N` without a file.
    pub place: String,
}

/// What is behind a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A service: scheme, authority and base path (no trailing `/`).
    Upstream {
        https: bool,
        authority: String,
        base: String,
    },
    StaticDir(PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Normalised, without a trailing `/` (except the root `/`); matches itself and anything
    /// below it at a segment boundary.
    pub prefix: String,
    pub target: Target,
    pub strip_prefix: bool,
    pub providers: Vec<String>,
    pub require_permissions: Vec<String>,
    pub require_roles: Vec<String>,
    pub gate_scope: bool,
    pub upstream_bearer_file: Option<PathBuf>,
    pub upstream_ca_file: Option<PathBuf>,
    pub upstream_insecure_skip_verify: bool,
    pub websocket: bool,
    /// How long the upstream may take to send its answer's headers.
    pub timeout: Duration,
    /// Where the table is: `FILE:LINE`, or `[[route]] N` without a file.
    pub place: String,
}

/// The checked gateway configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gateway {
    pub providers: Vec<Provider>,
    /// Longest prefix first, so the first match wins.
    pub routes: Vec<Route>,
}

/// A mistake in one table, for the loader to place in the file.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("[[{table}]] {number}{}: {message}", name.as_ref().map(|n| format!(" ({n})")).unwrap_or_default())]
pub struct TableError {
    /// `route` or `provider`.
    pub table: &'static str,
    /// 1-based position among the tables of its kind.
    pub number: usize,
    /// The provider's name or the route's prefix, when it has one.
    pub name: Option<String>,
    pub message: String,
}

impl Gateway {
    pub fn check(
        providers: Vec<RawProvider>,
        routes: Vec<RawRoute>,
    ) -> Result<Gateway, TableError> {
        let mut checked: Vec<Provider> = Vec::new();
        for (i, raw) in providers.into_iter().enumerate() {
            let fail = |message: String| TableError {
                table: "provider",
                number: i + 1,
                name: Some(format!("name {:?}", raw.name)),
                message,
            };
            let mut provider = check_provider(&raw).map_err(fail)?;
            provider.place = format!("[[provider]] {}", i + 1);
            if provider.name == SELF || checked.iter().any(|p| p.name == provider.name) {
                return Err(fail(format!(
                    "the name {:?} is taken{}",
                    provider.name,
                    if provider.name == SELF {
                        " (jwtgate's own keys)"
                    } else {
                        ""
                    }
                )));
            }
            checked.push(provider);
        }
        let mut out: Vec<Route> = Vec::new();
        for (i, raw) in routes.into_iter().enumerate() {
            let fail = |message: String| TableError {
                table: "route",
                number: i + 1,
                name: Some(format!("prefix {:?}", raw.prefix)),
                message,
            };
            let mut route = check_route(&raw, &checked).map_err(fail)?;
            route.place = format!("[[route]] {}", i + 1);
            if let Some(other) = out.iter().find(|r| r.prefix == route.prefix) {
                return Err(fail(format!(
                    "another route has the same prefix ({:?}); which one would serve is ambiguous",
                    other.prefix
                )));
            }
            out.push(route);
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Gateway {
            providers: checked,
            routes: out,
        })
    }

    /// Names each table by its file and line (`jwtgate.toml:12`) instead of its position, for
    /// the mistakes found when the server starts (a file a route names cannot be read).
    pub fn locate(&mut self, text: &str, file: &str) {
        let line_of = |place: &str| {
            let (table, number) = place.rsplit_once(' ')?;
            let number: usize = number.parse().ok()?;
            let line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim_start().starts_with(table))
                .nth(number.checked_sub(1)?)?
                .0;
            Some(format!("{file}:{}", line + 1))
        };
        for provider in &mut self.providers {
            if let Some(place) = line_of(&provider.place) {
                provider.place = place;
            }
        }
        for route in &mut self.routes {
            if let Some(place) = line_of(&route.place) {
                route.place = place;
            }
        }
    }

    /// The route for a normalised path: the longest prefix that matches at a segment boundary.
    pub fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| prefix_matches(&r.prefix, path))
    }
}

/// Whether `prefix` (normalised, no trailing `/`) covers `path`.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn duration(text: Option<&str>, default: Duration, what: &str) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text.trim())
            .map_err(|e| format!("{what} {text:?}: {e} (e.g. 500ms, 1s, 10m)")),
    }
}

fn check_provider(raw: &RawProvider) -> Result<Provider, String> {
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("name: use letters, digits, '-', '_' and '.'".into());
    }
    let keys = match (&raw.jwks_url, &raw.jwks_file, &raw.jwks) {
        (Some(url), None, None) => {
            let (https, authority, _) = check_url(url, "jwks_url")?;
            let host = authority
                .rsplit_once(':')
                .map_or(authority.as_str(), |(h, _)| h);
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !https && !loopback {
                return Err(format!(
                    "jwks_url {url:?}: keys fetched over plain http could be swapped on the way; use https (http only to a loopback address)"
                ));
            }
            KeySource::Url(url.clone())
        }
        (None, Some(file), None) => KeySource::File(file.clone()),
        (None, None, Some(inline)) => {
            let jwks = jwtgate_core::key::Jwks::parse(inline)
                .map_err(|e| format!("jwks is not a JWKS: {e}"))?;
            let (keys, skipped) = jwks.to_keys(None);
            if keys.is_empty() {
                return Err(match skipped.first() {
                    Some(why) => format!("jwks has no usable key: {why}"),
                    None => "jwks has no keys".into(),
                });
            }
            KeySource::Inline(inline.clone())
        }
        _ => return Err("give exactly one of jwks_url, jwks_file and jwks".into()),
    };
    let remote = matches!(keys, KeySource::Url(_));
    for (field, set) in [
        ("cache_duration", raw.cache_duration.is_some()),
        ("timeout", raw.timeout.is_some()),
        ("max_stale", raw.max_stale.is_some()),
    ] {
        if set && !remote {
            return Err(format!("{field} applies to jwks_url only"));
        }
    }
    let timeout = duration(raw.timeout.as_deref(), Duration::from_secs(2), "timeout")?;
    if timeout.is_zero() || timeout > Duration::from_secs(5) {
        return Err("timeout must be between 1ms and 5s (a JWKS is small; waiting longer only holds requests)".into());
    }
    let cache_duration = duration(
        raw.cache_duration.as_deref(),
        Duration::from_secs(600),
        "cache_duration",
    )?;
    if cache_duration < Duration::from_secs(1) {
        return Err("cache_duration must be at least 1s".into());
    }
    let max_stale = duration(
        raw.max_stale.as_deref(),
        Duration::from_secs(3600),
        "max_stale",
    )?;
    if max_stale > Duration::from_secs(7 * 86_400) {
        return Err("max_stale must be at most 7 days (past it, keys a JWKS server no longer vouches for must stop working)".into());
    }
    if raw.issuer.as_deref().is_some_and(|i| i.trim().is_empty()) {
        return Err("issuer must not be empty (leave it out to not check it)".into());
    }
    let from = match &raw.from {
        None => vec![TokenSource::Header {
            name: "authorization".into(),
            prefix: Some("Bearer".into()),
        }],
        Some(list) if list.is_empty() => return Err("from must name at least one place".into()),
        Some(list) => list
            .iter()
            .map(|s| token_source(s))
            .collect::<Result<_, _>>()?,
    };
    let mut claims_to_headers: Vec<(String, String)> = Vec::new();
    for (header, claim) in raw.claims_to_headers.iter().flatten() {
        if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            return Err(format!(
                "claims_to_headers: {header:?} is not a header name"
            ));
        }
        let lower = header.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("x-auth-") {
            return Err(format!(
                "claims_to_headers: {header:?} is a header the gateway or HTTP itself sets"
            ));
        }
        if claims_to_headers.iter().any(|(h, _)| *h == lower) {
            return Err(format!("claims_to_headers: {header:?} is named twice"));
        }
        if claim.is_empty() {
            return Err(format!(
                "claims_to_headers: the claim for {header:?} is empty"
            ));
        }
        claims_to_headers.push((header.to_ascii_lowercase(), claim.clone()));
    }
    if raw.audiences.iter().flatten().any(|a| a.trim().is_empty()) {
        return Err("audiences must not contain an empty audience".into());
    }
    Ok(Provider {
        name: raw.name.clone(),
        keys,
        issuer: raw.issuer.clone(),
        audiences: raw.audiences.clone().unwrap_or_default(),
        cache_duration,
        timeout,
        max_stale,
        forward: raw.forward.unwrap_or(false),
        from,
        claims_to_headers,
        place: String::new(),
    })
}

/// Providers one route may name.
const MAX_ROUTE_PROVIDERS: usize = 16;

/// Headers `claims_to_headers` may not set.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "authorization",
    "cookie",
    "te",
    "trailer",
];

/// `header:NAME[:PREFIX]`, `cookie:NAME` or `query:NAME`.
fn token_source(text: &str) -> Result<TokenSource, String> {
    let bad = || format!("from {text:?}: use header:NAME[:PREFIX], cookie:NAME or query:NAME");
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    match kind {
        "header" => {
            let (name, prefix) = match rest.split_once(':') {
                Some((name, prefix)) => (name, Some(prefix.trim().to_owned())),
                None => (rest, None),
            };
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(bad());
            }
            Ok(TokenSource::Header {
                name: name.to_ascii_lowercase(),
                prefix: prefix.filter(|p| !p.is_empty()),
            })
        }
        "cookie" if !rest.is_empty() && !rest.contains([';', '=', ' ']) => {
            Ok(TokenSource::Cookie(rest.to_owned()))
        }
        "query" if !rest.is_empty() && !rest.contains(['&', '=', ' ']) => {
            Ok(TokenSource::Query(rest.to_owned()))
        }
        _ => Err(bad()),
    }
}

/// An `http(s)://authority[/path]` URL without query or fragment.
fn check_url(url: &str, what: &str) -> Result<(bool, String, String), String> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| format!("{what} {url:?} is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(format!(
                "{what} {url:?} must start with http:// or https://"
            ))
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(format!("{what} {url:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("{what} {url:?}: no user or password in the URL"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{what} {url:?}: no query or fragment"));
    }
    let base = uri.path().trim_end_matches('/').to_owned();
    Ok((https, authority.as_str().to_owned(), base))
}

fn check_route(raw: &RawRoute, providers: &[Provider]) -> Result<Route, String> {
    let prefix = match jwtgate_core::scope::strict_path(&raw.prefix) {
        Ok(p) if p == "/" => p,
        Ok(p) => p.trim_end_matches('/').to_owned(),
        Err(e) => return Err(format!("prefix: {e}")),
    };
    if raw.strip_prefix && prefix == "/" {
        return Err("strip_prefix on the prefix \"/\" strips nothing".into());
    }
    let target = match (&raw.upstream, &raw.static_dir) {
        (Some(url), None) => {
            let (https, authority, base) = check_url(url, "upstream")?;
            if !base.is_empty() {
                jwtgate_core::scope::strict_path(&base)
                    .map_err(|e| format!("upstream {url:?}: its path: {e}"))?;
            }
            Target::Upstream {
                https,
                authority,
                base,
            }
        }
        (None, Some(dir)) => Target::StaticDir(dir.clone()),
        _ => return Err("give exactly one of upstream and static_dir".into()),
    };
    let upstream_https = matches!(target, Target::Upstream { https: true, .. });
    let is_upstream = matches!(target, Target::Upstream { .. });
    if !is_upstream
        && (raw.upstream_bearer_file.is_some()
            || raw.upstream_ca_file.is_some()
            || raw.upstream_insecure_skip_verify
            || raw.websocket
            || raw.strip_prefix)
    {
        return Err(
            "strip_prefix, websocket and the upstream_* settings need an upstream, not static_dir"
                .into(),
        );
    }
    if (raw.upstream_ca_file.is_some() || raw.upstream_insecure_skip_verify) && !upstream_https {
        return Err(
            "upstream_ca_file and upstream_insecure_skip_verify need an https upstream".into(),
        );
    }
    if raw.timeout.is_some() && !is_upstream {
        return Err("timeout applies to upstream routes, not static_dir".into());
    }
    let timeout = duration(
        raw.timeout.as_deref(),
        super::runtime::DEFAULT_UPSTREAM_TIMEOUT,
        "timeout",
    )?;
    if timeout.is_zero() || timeout > Duration::from_secs(3600) {
        return Err("timeout must be between 1ms and 1h".into());
    }
    if raw.upstream_ca_file.is_some() && raw.upstream_insecure_skip_verify {
        return Err("upstream_ca_file and upstream_insecure_skip_verify exclude each other".into());
    }
    for name in &raw.providers {
        if name != SELF && !providers.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = std::iter::once(SELF)
                .chain(providers.iter().map(|p| p.name.as_str()))
                .collect();
            return Err(format!(
                "unknown provider {name:?} (providers: {})",
                known.join(", ")
            ));
        }
    }
    let public = raw.providers.is_empty();
    if public && raw.upstream_bearer_file.is_some() {
        return Err(
            "upstream_bearer_file on a public route would lend the service credential to anyone; add providers"
                .into(),
        );
    }
    if raw.providers.len() > MAX_ROUTE_PROVIDERS {
        return Err(format!("at most {MAX_ROUTE_PROVIDERS} providers per route"));
    }
    if public
        && (!raw.require_permissions.is_empty() || !raw.require_roles.is_empty() || raw.gate_scope)
    {
        return Err(
            "require_permissions, require_roles and gate_scope need providers (an empty list is a public route)"
                .into(),
        );
    }
    if raw.gate_scope && raw.providers.iter().any(|p| p != SELF) {
        return Err(
            "gate_scope needs the \"self\" provider alone (gate tokens are jwtgate's own; other issuers' tokens have no URLs to check)"
                .into(),
        );
    }
    if !raw.require_roles.is_empty()
        && raw.providers.iter().any(|p| p == SELF)
        && raw.providers.iter().any(|p| p != SELF)
    {
        return Err(
            "require_roles on a route mixing \"self\" with other providers would let another issuer's roles claim count as jwtgate's roles; split the route"
                .into(),
        );
    }
    let mixed_with_self = raw.providers.iter().any(|p| p == SELF);
    if mixed_with_self {
        if let Some(p) = raw
            .providers
            .iter()
            .filter_map(|name| providers.iter().find(|p| &p.name == name))
            .find(|p| p.issuer.is_none())
        {
            return Err(format!(
                "provider {:?} needs an issuer on a route with \"self\" (nothing else tells its tokens from jwtgate's)",
                p.name
            ));
        }
    }
    let remote: Vec<&Provider> = raw
        .providers
        .iter()
        .filter_map(|name| providers.iter().find(|p| &p.name == name))
        .collect();
    if remote.len() > 1 {
        if let Some(p) = remote.iter().find(|p| p.issuer.is_none()) {
            return Err(format!(
                "provider {:?} needs an issuer on a route with several providers (nothing else tells their tokens apart)",
                p.name
            ));
        }
    }
    if !raw.require_permissions.is_empty() && !raw.providers.iter().all(|p| p == SELF) {
        return Err(
            "require_permissions needs jwtgate's users and roles: use only the \"self\" provider, or require_roles for other issuers' roles claim"
                .into(),
        );
    }
    Ok(Route {
        prefix,
        target,
        strip_prefix: raw.strip_prefix,
        providers: raw.providers.clone(),
        require_permissions: raw.require_permissions.clone(),
        require_roles: raw.require_roles.clone(),
        gate_scope: raw.gate_scope,
        upstream_bearer_file: raw.upstream_bearer_file.clone(),
        upstream_ca_file: raw.upstream_ca_file.clone(),
        upstream_insecure_skip_verify: raw.upstream_insecure_skip_verify,
        websocket: raw.websocket,
        timeout,
        place: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        provider: Vec<RawProvider>,
        #[serde(default)]
        route: Vec<RawRoute>,
    }

    fn check(text: &str) -> Result<Gateway, TableError> {
        let file: File = toml::from_str(text).unwrap();
        Gateway::check(file.provider, file.route)
    }

    const SPEC_EXAMPLE: &str = r#"
[[provider]]
name = "corp"
jwks_url = "https://idp.example/jwks"
issuer = "https://idp.example"
audiences = ["api"]
cache_duration = "10m"
timeout = "1s"
forward = false
from = ["header:Authorization:Bearer", "cookie:jwtgate_token", "query:access_token"]
claims_to_headers = { "X-User" = "sub" }

[[route]]
prefix = "/k8s/"
upstream = "https://kubernetes.default.svc"
strip_prefix = true
providers = ["self"]
require_permissions = ["vm.console"]
gate_scope = true
upstream_bearer_file = "/var/run/secrets/token"
upstream_ca_file = "ca.crt"
websocket = true

[[route]]
prefix = "/novnc/"
static_dir = "/usr/share/novnc"

[[route]]
prefix = "/api"
upstream = "http://127.0.0.1:9000/base/"
providers = ["corp"]
require_roles = ["api"]
"#;

    #[test]
    fn the_spec_example_checks_and_the_longest_prefix_wins() {
        let gateway = check(SPEC_EXAMPLE).unwrap();
        let corp = &gateway.providers[0];
        assert_eq!(corp.keys, KeySource::Url("https://idp.example/jwks".into()));
        assert_eq!(corp.timeout, Duration::from_secs(1));
        assert_eq!(
            corp.from,
            [
                TokenSource::Header {
                    name: "authorization".into(),
                    prefix: Some("Bearer".into())
                },
                TokenSource::Cookie("jwtgate_token".into()),
                TokenSource::Query("access_token".into()),
            ]
        );
        assert_eq!(
            corp.claims_to_headers,
            [("x-user".to_owned(), "sub".to_owned())]
        );
        let prefixes: Vec<&str> = gateway.routes.iter().map(|r| r.prefix.as_str()).collect();
        assert_eq!(prefixes, ["/novnc", "/k8s", "/api"]);
        assert_eq!(
            gateway.routes[2].target,
            Target::Upstream {
                https: false,
                authority: "127.0.0.1:9000".into(),
                base: "/base".into()
            }
        );
        assert_eq!(gateway.route("/k8s/apis/x").unwrap().prefix, "/k8s");
        assert_eq!(gateway.route("/k8s").unwrap().prefix, "/k8s");
        assert!(gateway.route("/k8sx").is_none(), "segment boundaries");
        assert!(gateway.route("/other").is_none());
        let with_root = check("[[route]]\nprefix = \"/\"\nstatic_dir = \"/srv\"\n[[route]]\nprefix = \"/a/b\"\nstatic_dir = \"/x\"\n").unwrap();
        assert_eq!(with_root.route("/a/b/c").unwrap().prefix, "/a/b");
        assert_eq!(with_root.route("/a/c").unwrap().prefix, "/");
    }

    #[test]
    fn mistakes_name_their_table_and_reason() {
        for (text, want) in [
            ("[[route]]\nprefix = \"/a\"\nstatic_dir = \"/x\"\n[[route]]\nprefix = \"/a/\"\nstatic_dir = \"/y\"", "[[route]] 2 (prefix \"/a/\"): another route has the same prefix"),
            ("[[route]]\nprefix = \"/a/../b\"\nstatic_dir = \"/x\"", "prefix: the path is not canonical"),
            ("[[route]]\nprefix = \"a\"\nstatic_dir = \"/x\"", "prefix: the path does not start with '/'"),
            ("[[route]]\nprefix = \"/a\"", "exactly one of upstream and static_dir"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"ftp://x\"", "must start with http:// or https://"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://u:p@x\"", "no user or password"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://x/?q=1\"", "no query or fragment"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nproviders = [\"corp\"]", "unknown provider \"corp\" (providers: self)"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nrequire_roles = [\"r\"]", "need providers"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nupstream_ca_file = \"c\"", "need an https upstream"),
            ("[[route]]\nprefix = \"/a\"\nstatic_dir = \"/x\"\nwebsocket = true", "need an upstream"),
                        ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\n[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nproviders = [\"self\", \"p\"]\ngate_scope = true", "gate_scope needs the \"self\" provider alone"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\n[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nproviders = [\"self\", \"p\"]\nrequire_roles = [\"admin\"]", "would let another issuer's roles claim count"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\n[[provider]]\nname = \"q\"\njwks_url = \"https://y/j\"\nissuer = \"https://y\"\n[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nproviders = [\"p\", \"q\"]", "provider \"p\" needs an issuer"),
                        ("[[route]]\nprefix = \"/\"\nupstream = \"http://x\"\nstrip_prefix = true", "strips nothing"),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nupstream_bearer_file = \"t\"", "would lend the service credential to anyone"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\n[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nproviders = [\"self\", \"p\"]", "provider \"p\" needs an issuer on a route with \"self\""),
            ("[[route]]\nprefix = \"/a\"\nupstream = \"http://x/b/../c\"", "its path: the path is not canonical"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"http://idp.example/j\"", "use https (http only to a loopback address)"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\ncache_duration = \"0s\"", "cache_duration must be at least 1s"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\nmax_stale = \"30d\"", "max_stale must be at most 7 days"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\ntimeout = \"30s\"", "timeout must be between"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\nissuer = \"\"", "issuer must not be empty"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\nclaims_to_headers = { \"X-Auth-User\" = \"sub\" }", "a header the gateway or HTTP itself sets"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\nclaims_to_headers = { \"Host\" = \"sub\" }", "a header the gateway or HTTP itself sets"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\n[[route]]\nprefix = \"/a\"\nupstream = \"http://x\"\nproviders = [\"p\"]\nrequire_permissions = [\"x\"]", "require_permissions needs jwtgate's users"),
            ("[[provider]]\nname = \"self\"\njwks_url = \"https://x/j\"", "[[provider]] 1 (name \"self\"): the name \"self\" is taken"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\n[[provider]]\nname = \"p\"\njwks_file = \"k\"", "[[provider]] 2 (name \"p\"): the name \"p\" is taken"),
            ("[[provider]]\nname = \"p\"", "exactly one of jwks_url, jwks_file and jwks"),
            ("[[provider]]\nname = \"p\"\njwks = \"{}\"", "jwks is not a JWKS"),
            ("[[provider]]\nname = \"p\"\njwks_file = \"k\"\ntimeout = \"1s\"", "timeout applies to jwks_url only"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\ntimeout = \"soon\"", "timeout \"soon\""),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\nfrom = [\"body:x\"]", "from \"body:x\": use header:NAME"),
            ("[[provider]]\nname = \"p\"\njwks_url = \"https://x/j\"\nclaims_to_headers = { \"X User\" = \"sub\" }", "is not a header name"),
        ] {
            let err = check(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}\n→ {err}");
        }
    }
}
