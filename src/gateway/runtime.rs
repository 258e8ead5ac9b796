//! The gateway as a running server holds it: each route with its upstream client (or its
//! files) and its providers, each provider with its keys (fixed, or a remote JWKS) and its own
//! verdict cache. Built once at start-up, where every file it names is read, so a missing key
//! file or CA is a start-up error rather than a 502 later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use jwtgate_core::{KeySet, Rules};

use super::config::{Gateway, KeySource, Provider, Route, Target, TokenSource, SELF};
use super::jwks::{JwksError, RemoteKeys};
use super::upstream::{BearerFile, Upstream};
use crate::state::{Accepted, Scope};

/// Who a token says the request is for, once a route's provider accepted it: jwtgate's own
/// verdict, or what another issuer's token claims. Shared with the caches (no copy per
/// request).
#[derive(Clone, Debug)]
pub enum Identity {
    Own(Arc<Accepted>),
    Claimed(Arc<Claimed>),
}

/// A `[[provider]]`'s verified token, as the gateway uses it.
#[derive(Debug)]
pub struct Claimed {
    pub provider: Arc<str>,
    pub user: Option<String>,
    /// The token's `roles` claim.
    pub roles: Vec<String>,
    pub exp: Option<i64>,
    /// `claims_to_headers`, computed once per token.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Identity {
    /// The provider that accepted the token (`self` or a `[[provider]]` name).
    pub fn provider(&self) -> &str {
        match self {
            Identity::Own(_) => SELF,
            Identity::Claimed(c) => &c.provider,
        }
    }

    /// jwtgate's user, or the token's `sub`.
    pub fn user(&self) -> Option<&str> {
        match self {
            Identity::Own(a) => Some(&a.user),
            Identity::Claimed(c) => c.user.as_deref(),
        }
    }

    /// jwtgate's user's current roles, or the token's `roles` claim.
    pub fn roles(&self) -> &[String] {
        match self {
            Identity::Own(a) => &a.roles,
            Identity::Claimed(c) => &c.roles,
        }
    }

    /// A gate token's scope (jwtgate's own tokens only).
    pub fn scope(&self) -> Option<&Scope> {
        match self {
            Identity::Own(a) => a.scope.as_deref(),
            Identity::Claimed(_) => None,
        }
    }

    /// `exp`; a websocket the token opened is closed at `exp` + leeway.
    pub fn exp(&self) -> Option<i64> {
        match self {
            Identity::Own(a) => a.exp,
            Identity::Claimed(c) => c.exp,
        }
    }

    /// Headers from `claims_to_headers`.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        match self {
            Identity::Own(_) => &[],
            Identity::Claimed(c) => &c.headers,
        }
    }
}

/// Why a token is not accepted by a provider.
#[derive(Debug)]
pub enum Failure {
    /// The token is not valid for it: 401 with `code` and the reason.
    Invalid { code: &'static str, message: String },
    /// The provider cannot check any token now (its JWKS is unavailable): 503.
    Unavailable(String),
}

/// A route's provider.
#[derive(Clone)]
pub enum ProviderRef {
    /// jwtgate's own keys and directory (the server's one token check).
    Own,
    External(Arc<External>),
}

impl ProviderRef {
    pub fn sources(&self) -> &[TokenSource] {
        match self {
            ProviderRef::Own => own_sources(),
            ProviderRef::External(p) => &p.config.from,
        }
    }

    /// Whether the token may go on upstream (jwtgate's own never does).
    pub fn forward(&self) -> bool {
        match self {
            ProviderRef::Own => false,
            ProviderRef::External(p) => p.config.forward,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ProviderRef::Own => SELF,
            ProviderRef::External(p) => &p.config.name,
        }
    }
}

/// Where jwtgate's own tokens are read: a Bearer header, `X-Auth-Token`, the session cookie
/// and the signed-link cookie (as at `/auth`).
pub fn own_sources() -> &'static [TokenSource] {
    static SOURCES: std::sync::OnceLock<Vec<TokenSource>> = std::sync::OnceLock::new();
    SOURCES.get_or_init(|| {
        vec![
            TokenSource::Header {
                name: "authorization".into(),
                prefix: Some("Bearer".into()),
            },
            TokenSource::Header {
                name: "x-auth-token".into(),
                prefix: None,
            },
            TokenSource::Cookie(crate::api::SESSION_COOKIE.into()),
            TokenSource::Cookie(crate::api::GATE_COOKIE.into()),
        ]
    })
}

/// What is behind a route, ready to use.
pub enum Behind {
    Upstream(Upstream),
    Files(tower_http::services::ServeDir),
}

pub struct RouteRt {
    pub route: Route,
    /// For metrics: `gateway /k8s`.
    pub label: Arc<str>,
    pub providers: Vec<ProviderRef>,
    pub behind: Behind,
    pub bearer: Option<Arc<BearerFile>>,
}

pub struct Runtime {
    pub routes: Vec<RouteRt>,
    /// Every header some provider sets from claims: removed from every client request.
    pub claim_headers: Vec<HeaderName>,
}

impl Runtime {
    /// Builds the routes and providers; reads every file they name. `leeway` and `cache` are
    /// the server's (`leeway_seconds`, `verdict_cache`).
    pub fn build(gateway: &Gateway, leeway: u64, cache: bool) -> Result<Runtime, String> {
        let mut externals: HashMap<String, Arc<External>> = HashMap::new();
        for provider in &gateway.providers {
            let external = External::build(provider, leeway, cache).map_err(|e| {
                format!("{}: [[provider]] {:?}: {e}", provider.place, provider.name)
            })?;
            externals.insert(provider.name.clone(), Arc::new(external));
        }
        let mut clients = super::upstream::Clients::default();
        let mut routes = Vec::new();
        for route in &gateway.routes {
            let fail =
                |e: String| format!("{}: [[route]] prefix {:?}: {e}", route.place, route.prefix);
            let providers = route
                .providers
                .iter()
                .map(|name| match externals.get(name) {
                    Some(p) => ProviderRef::External(Arc::clone(p)),
                    None => ProviderRef::Own,
                })
                .collect();
            let behind = match &route.target {
                Target::Upstream { .. } => {
                    Behind::Upstream(Upstream::build(route, &mut clients).map_err(fail)?)
                }
                Target::StaticDir(dir) => {
                    if !dir.is_dir() {
                        return Err(fail(format!(
                            "static_dir {} is not a readable directory",
                            dir.display()
                        )));
                    }
                    Behind::Files(tower_http::services::ServeDir::new(dir))
                }
            };
            let bearer = match &route.upstream_bearer_file {
                Some(path) => Some(Arc::new(BearerFile::load(path).map_err(fail)?)),
                None => None,
            };
            routes.push(RouteRt {
                label: format!("gateway {}", route.prefix).into(),
                route: route.clone(),
                providers,
                behind,
                bearer,
            });
        }
        let mut claim_headers: Vec<HeaderName> = Vec::new();
        for provider in &gateway.providers {
            for (name, _) in &provider.claims_to_headers {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| format!("claims_to_headers {name:?}: {e}"))?;
                if !claim_headers.contains(&name) {
                    claim_headers.push(name);
                }
            }
        }
        Ok(Runtime {
            routes,
            claim_headers,
        })
    }

    /// The route for a normalised path (longest prefix first).
    pub fn route(&self, path: &str) -> Option<&RouteRt> {
        self.routes
            .iter()
            .find(|r| super::config::prefix_matches(&r.route.prefix, path))
    }

    /// Starts the background work: re-reading upstream bearer files (Kubernetes rotates
    /// service-account tokens).
    pub fn spawn_refresh(self: &Arc<Self>) {
        for route in &self.routes {
            if let Some(bearer) = &route.bearer {
                bearer.spawn_reload();
            }
        }
    }
}

/// A `[[provider]]`: its keys, its rules and its verdicts.
pub struct External {
    pub config: Provider,
    name: Arc<str>,
    keys: Keys,
    rules: Rules,
    cache: Option<Mutex<HashMap<String, Cached>>>,
}

enum Keys {
    Fixed(Arc<KeySet>),
    Remote(Arc<RemoteKeys>),
}

struct Cached {
    identity: Identity,
    /// The keys that verified it: a verdict counts only while they are still the keys. Weak,
    /// so the old keys' memory is not reused for new keys that would compare equal.
    keys: std::sync::Weak<KeySet>,
}

/// Cached verdicts per provider at most (then emptied, like the server's own cache).
const CACHE_ENTRIES: usize = 10_000;

impl External {
    fn build(config: &Provider, leeway: u64, cache: bool) -> Result<External, String> {
        let fixed = |text: &str, what: &str| -> Result<Keys, String> {
            let jwks = jwtgate_core::key::Jwks::parse(text)
                .map_err(|e| format!("{what} is not a JWKS: {e}"))?;
            let (mut keys, skipped) = jwks.to_keys(None);
            keys.retain(|k| k.alg().key_type() != jwtgate_core::KeyType::Oct);
            if keys.is_empty() {
                return Err(match skipped.first() {
                    Some(why) => format!("{what} has no usable public key: {why}"),
                    None => format!("{what} has no usable public key"),
                });
            }
            let set = KeySet::new(keys).map_err(|e| format!("{what}: {e}"))?;
            Ok(Keys::Fixed(Arc::new(set)))
        };
        let keys = match &config.keys {
            KeySource::Own => return Err("a provider cannot use jwtgate's own keys".into()),
            KeySource::Inline(text) => fixed(text, "jwks")?,
            KeySource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read jwks_file {}: {e}", path.display()))?;
                fixed(&text, &format!("jwks_file {}", path.display()))?
            }
            KeySource::Url(url) => Keys::Remote(RemoteKeys::new(
                url,
                config.cache_duration,
                config.timeout,
                config.max_stale,
            )?),
        };
        let mut rules = Rules::default()
            .leeway(leeway)
            .audiences(config.audiences.clone());
        if let Some(issuer) = &config.issuer {
            rules = rules.issuer(issuer.clone());
        }
        Ok(External {
            name: config.name.as_str().into(),
            config: config.clone(),
            keys,
            rules,
            cache: cache.then(Mutex::default),
        })
    }

    /// Verifies `token` with this provider's keys and rules at `now`.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Identity, Failure> {
        let keys = match &self.keys {
            Keys::Fixed(keys) => Arc::clone(keys),
            Keys::Remote(remote) => {
                let kid = peek_kid(token)?;
                remote
                    .keys_for(kid.as_deref())
                    .await
                    .map_err(|JwksError::Unavailable(why)| {
                        Failure::Unavailable(format!(
                            "the keys of provider '{}' are unavailable: {why}",
                            self.name
                        ))
                    })?
            }
        };

        if let Some(cache) = &self.cache {
            if let Ok(cache) = cache.lock() {
                if let Some(hit) = cache.get(token) {
                    if std::ptr::eq(hit.keys.as_ptr(), Arc::as_ptr(&keys))
                        && hit.identity.exp().is_none_or(|exp| now < exp)
                    {
                        return Ok(hit.identity.clone());
                    }
                }
            }
        }
        let verified =
            jwtgate_core::verify(token, &keys, &self.rules, now).map_err(|e| Failure::Invalid {
                code: e.code(),
                message: e.to_string(),
            })?;
        let claims = &verified.claims;
        let mut headers = Vec::new();
        for (header, claim) in &self.config.claims_to_headers {
            let Some(value) = claim_text(claims.get(claim)) else {
                continue;
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.push((name, value));
            }
        }
        let identity = Identity::Claimed(Arc::new(Claimed {
            provider: Arc::clone(&self.name),
            user: claims.sub().map(str::to_owned),
            roles: claims.roles().map(|r| r.to_vec()).unwrap_or_default(),
            exp: claims.exp(),
            headers,
        }));
        if let Some(cache) = &self.cache {
            if let Ok(mut cache) = cache.lock() {
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(
                    token.to_owned(),
                    Cached {
                        identity: identity.clone(),
                        keys: Arc::downgrade(&keys),
                    },
                );
            }
        }
        Ok(identity)
    }

    /// The `iss` this provider demands, if any.
    pub fn issuer(&self) -> Option<&str> {
        self.config.issuer.as_deref()
    }
}

/// A claim as header text: strings as they are, numbers and booleans printed, arrays of
/// strings joined with commas; objects and nulls are not sent.
fn claim_text(value: Option<serde_json::Value>) -> Option<String> {
    use serde_json::Value;
    match value? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect();
            parts.map(|p| p.join(","))
        }
        _ => None,
    }
}

/// The `kid` a token's header names (unverified: it only picks which keys to fetch).
fn peek_kid(token: &str) -> Result<Option<String>, Failure> {
    let invalid = |e: jwtgate_core::Reject| Failure::Invalid {
        code: e.code(),
        message: e.to_string(),
    };
    let [header, _, _] = jwtgate_core::jose::split(token).map_err(invalid)?;
    let bytes = jwtgate_core::jose::decode(header, jwtgate_core::Part::Header).map_err(invalid)?;
    Ok(jwtgate_core::jose::parse_header(&bytes)
        .map_err(invalid)?
        .kid)
}

/// The unverified `iss` of a token, to pick among a route's providers (the chosen provider
/// then checks it for real).
pub fn peek_issuer(token: &str) -> Option<String> {
    let (_, payload) = jwtgate_core::jose::inspect(token).ok()?;
    let claims = jwtgate_core::Claims::parse(&payload).ok()?;
    claims.iss().map(str::to_owned)
}

/// How long a route waits for its upstream's answer by default.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_become_header_text_or_nothing() {
        use serde_json::json;
        assert_eq!(claim_text(Some(json!("ann"))), Some("ann".into()));
        assert_eq!(claim_text(Some(json!(42))), Some("42".into()));
        assert_eq!(claim_text(Some(json!(["a", "b"]))), Some("a,b".into()));
        assert_eq!(claim_text(Some(json!(["a", 1]))), None);
        assert_eq!(claim_text(Some(json!({"a": 1}))), None);
        assert_eq!(claim_text(None), None);
    }
}
