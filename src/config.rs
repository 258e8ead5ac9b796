//! The server's configuration: a TOML file (`--config`, `JWTGATE_CONFIG`) read into `RawConfig`
//! with unknown keys refused, then checked once into `Config`. Environment variables
//! (`JWTGATE_SERVER_<KEY>`, `JWTGATE_LOGIN_<KEY>`) override the file, and flags override both.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The file as written. Every field is optional; `Config::from_raw` fills in defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub login: RawLogin,
    #[serde(default)]
    pub store: RawStore,
    /// The gateway's `[[provider]]` and `[[route]]` tables (docs/gateway.md).
    #[serde(default)]
    pub provider: Vec<crate::gateway::config::RawProvider>,
    #[serde(default)]
    pub route: Vec<crate::gateway::config::RawRoute>,
}

/// `[store]`: where the data lives (docs/storage.md). Without it, `--data` (a directory).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `file` or `etcd`.
    pub backend: Option<String>,
    /// The file store's directory.
    pub dir: Option<PathBuf>,
    /// etcd members' client URLs, `http://host:2379` (or all `https://`).
    pub endpoints: Option<Vec<String>>,
    /// etcd key prefix (default `/jwtgate`).
    pub prefix: Option<String>,
    /// etcd's own authentication: a user, and a file holding its password.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    /// TLS to etcd (`https://` members): the CA that signed their certificates (default: the
    /// system's trusted certificates), and a client certificate and key when etcd asks for one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// How often a server reads the whole store again, besides following its changes (a
    /// backstop; default 5 s). Applies to any store, also one named by `--store`.
    pub reload_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// Token lifetime when the client sends no `X-Expire-Seconds`.
    pub default_expire_seconds: Option<i64>,
    /// The longest lifetime a client may ask for.
    pub max_expire_seconds: Option<i64>,
    /// The audiences a client may ask for with `X-Audience`.
    pub audiences: Option<Vec<String>>,
    /// How long a TOTP challenge (428) can be answered.
    pub totp_challenge_seconds: Option<i64>,
    /// Failed logins allowed per user name, and per client address, within the window; then
    /// 429 with `Retry-After` until the window ends.
    pub max_failures_per_user: Option<u32>,
    pub max_failures_per_ip: Option<u32>,
    pub failure_window_seconds: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on, `IP:PORT`.
    pub listen: Option<String>,
    /// A path prefix for the API routes, so App Mesh clients keep `/appmesh/login` etc.
    pub api_prefix: Option<String>,
    /// The `iss` of tokens this server issues and accepts.
    pub issuer: Option<String>,
    /// The server's public base URL (for `jwks_uri`); by default taken from the request's Host.
    pub public_url: Option<String>,
    /// HTTPS: a PEM certificate chain (leaf first) and its PEM private key; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Clock skew allowed when checking `exp`, `nbf` and `iat`.
    pub leeway_seconds: Option<u64>,
    /// Remember accepted tokens until their `exp` or the next change (on by default; off
    /// only to measure what it saves).
    pub verdict_cache: Option<bool>,
    /// Threads serving requests (each with its own event loop); by default one per core.
    pub workers: Option<usize>,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client, for
    /// per-address login throttling behind a proxy.
    pub trusted_proxies: Option<Vec<String>>,
}

/// `[store]` checked: `None` when it names no store (then `--data` counts).
fn store_location(raw: RawStore) -> Result<Option<crate::store::Location>> {
    use crate::store::Location;
    let etcd_only = raw.endpoints.is_some()
        || raw.prefix.is_some()
        || raw.user.is_some()
        || raw.password_file.is_some()
        || raw.ca_file.is_some()
        || raw.cert_file.is_some()
        || raw.key_file.is_some();
    match raw.backend.as_deref() {
        None if raw.dir.is_none() && !etcd_only => Ok(None),
        None => bail!(
            "store.backend must be set (\"file\" or \"etcd\") with the other [store] settings"
        ),
        Some("file") => {
            if etcd_only {
                bail!("store.endpoints, prefix, user, password_file, ca_file, cert_file and key_file are for backend = \"etcd\"");
            }
            Ok(raw.dir.map(Location::File))
        }
        Some("etcd") => {
            if raw.dir.is_some() {
                bail!("store.dir is for backend = \"file\"");
            }
            let endpoints = raw.endpoints.unwrap_or_default();
            if endpoints.is_empty() {
                bail!("store.endpoints: name at least one etcd member, e.g. [\"http://127.0.0.1:2379\"]");
            }
            let Location::Etcd(mut settings) =
                Location::parse(&format!("etcd:{}", endpoints.join(",")))
                    .map_err(|e| anyhow::anyhow!("store.endpoints: {e}"))?
            else {
                bail!("store.endpoints: not etcd members");
            };
            if let Some(prefix) = raw.prefix {
                settings.prefix = prefix;
            }
            settings.user = match (raw.user, raw.password_file) {
                (None, None) => None,
                (Some(user), Some(file)) => Some((
                    user,
                    crate::store::etcd::read_password(&file).map_err(|e| anyhow::anyhow!(e))?,
                )),
                _ => bail!("store.user and store.password_file go together"),
            };
            let tls_files = [&raw.ca_file, &raw.cert_file, &raw.key_file];
            if tls_files.iter().any(|f| f.is_some()) {
                if settings.tls.is_none() {
                    bail!("store.ca_file, cert_file and key_file are for https:// endpoints");
                }
                settings.tls = Some(
                    crate::store::EtcdTls::read(
                        raw.ca_file.as_deref(),
                        raw.cert_file.as_deref(),
                        raw.key_file.as_deref(),
                        ["store.ca_file", "store.cert_file", "store.key_file"],
                    )
                    .map_err(|e| anyhow::anyhow!(e))?,
                );
            }
            settings.check().map_err(|e| anyhow::anyhow!(e))?;
            Ok(Some(Location::Etcd(settings)))
        }
        Some(other) => bail!("store.backend {other:?}: use \"file\" or \"etcd\""),
    }
}

/// The most `[server] workers` threads.
const MAX_WORKERS: usize = 256;

/// The checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Empty, or `/segment…` without a trailing `/`.
    pub api_prefix: String,
    pub issuer: String,
    pub public_url: Option<String>,
    /// Certificate chain and key files, when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub leeway: u64,
    pub verdict_cache: bool,
    pub workers: usize,
    pub trusted_proxies: Vec<Network>,
    pub login: Login,
    pub gateway: crate::gateway::config::Gateway,
    /// `[store]`, when the file names one.
    pub store: Option<crate::store::Location>,
    /// `[store] reload_seconds`.
    pub store_reload: std::time::Duration,
}

/// A mistake in a `[[route]]` or `[[provider]]` table, prefixed with the file and the line of
/// that table's header.
fn place(e: anyhow::Error, text: &str, file: &str) -> anyhow::Error {
    let Some(table) = e.downcast_ref::<crate::gateway::config::TableError>() else {
        return e;
    };
    let header = format!("[[{}]]", table.table);
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with(&header))
        .nth(table.number - 1)
        .map(|(i, _)| i + 1);
    match line {
        Some(line) => anyhow::anyhow!("{file}:{line}: {e}"),
        None => anyhow::anyhow!("{file}: {e}"),
    }
}

/// An IP network: an address and how many leading bits of it count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`, `::1`).
    pub fn parse(text: &str) -> Result<Network> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .with_context(|| format!("trusted proxy '{text}' is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| {
                    format!("trusted proxy '{text}': the prefix must be 0 to {max}")
                })?,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is still that client.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Login {
    pub default_expire_seconds: i64,
    pub max_expire_seconds: i64,
    pub audiences: Vec<String>,
    pub totp_challenge_seconds: i64,
    pub max_failures_per_user: u32,
    pub max_failures_per_ip: u32,
    pub failure_window_seconds: i64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Environment variables that override a section of the file: `JWTGATE_LOGIN_MAX_EXPIRE_SECONDS`
/// sets `[login] max_expire_seconds`. The value is TOML (`600`, `true`, `["a", "b"]`) or else
/// taken as a string (`/appmesh`).
const ENV_SECTIONS: [(&str, &str); 2] =
    [("JWTGATE_SERVER_", "server"), ("JWTGATE_LOGIN_", "login")];

/// Settings whose values are text: an environment value for them is taken as written.
const STRING_KEYS: [(&str, &str); 6] = [
    ("server", "listen"),
    ("server", "api_prefix"),
    ("server", "issuer"),
    ("server", "public_url"),
    ("server", "tls_cert"),
    ("server", "tls_key"),
];

impl Config {
    /// Reads `path` (when given), applies the process's `JWTGATE_SERVER_*`/`JWTGATE_LOGIN_*`
    /// variables, then `listen` from the flag.
    pub fn load(path: Option<&Path>, listen: Option<&str>) -> Result<Config> {
        Config::load_with_env(path, listen, std::env::vars_os())
    }

    pub fn load_with_env(
        path: Option<&Path>,
        listen: Option<&str>,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Config> {
        let text = match path {
            None => String::new(),
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the config file {}", path.display()))?,
        };
        let name = path.map_or_else(
            || "(no config file)".to_owned(),
            |p| p.display().to_string(),
        );
        // The file alone first, so its mistakes are reported with their line.
        let raw: RawConfig = toml::from_str(&text).map_err(|e| {
            // toml's own report quotes the source over several lines; one line here.
            let line = e.span().map_or(1, |span| {
                text[..span.start.min(text.len())].matches('\n').count() + 1
            });
            anyhow::anyhow!("{name}:{line}: {}", e.message().trim())
        })?;
        let mut overrides: Vec<(String, &str, String, String)> = Vec::new();
        for (var, value) in vars {
            let Some(text) = var.to_str() else {
                if var.to_string_lossy().starts_with("JWTGATE_") {
                    bail!("environment variable {var:?}: the name is not UTF-8");
                }
                continue;
            };
            for (prefix, section) in ENV_SECTIONS {
                let Some(key) = text.strip_prefix(prefix) else {
                    continue;
                };
                if key.is_empty()
                    || !key
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                {
                    bail!("{text}: write the setting's name in upper case, e.g. {prefix}LISTEN");
                }
                let Some(value) = value.to_str() else {
                    bail!("{text}: the value is not UTF-8");
                };
                if value.is_empty() {
                    bail!("{text} is empty; unset it to keep the config file's value");
                }
                overrides.push((
                    text.to_owned(),
                    section,
                    key.to_ascii_lowercase(),
                    value.to_owned(),
                ));
            }
        }
        if overrides.is_empty() {
            let mut config = Config::from_raw(raw, listen).map_err(|e| place(e, &text, &name))?;
            config.gateway.locate(&text, &name);
            return Ok(config);
        }
        let mut table: toml::Table = toml::from_str(&text)?;
        for (var, section_name, key, value) in &overrides {
            let value = if STRING_KEYS.contains(&(*section_name, key.as_str())) {
                // Names, addresses and paths are taken as written (`true` is an issuer too).
                toml::Value::String(value.clone())
            } else {
                // Numbers, booleans, arrays: one TOML value, nothing after it.
                let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
                    .ok()
                    .filter(|t| t.len() == 1)
                    .and_then(|mut t| t.remove("v"));
                parsed.unwrap_or_else(|| toml::Value::String(value.clone()))
            };
            let section = table
                .entry(*section_name)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(section) = section.as_table_mut() else {
                bail!("{var}: [{section_name}] in {name} is not a table");
            };
            section.insert(key.clone(), value);
            // Checked one variable at a time, so a mistake names its variable.
            toml::Value::Table(table.clone())
                .try_into::<RawConfig>()
                .map_err(|e| anyhow::anyhow!("{var}: {}", e.message().trim()))?;
        }
        let vars: Vec<&str> = overrides.iter().map(|o| o.0.as_str()).collect();
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e| anyhow::anyhow!("{} (set by {})", e.message().trim(), vars.join(", ")))?;
        let mut config = Config::from_raw(raw, listen)
            .with_context(|| format!("with {} set", vars.join(", ")))?;
        config.gateway.locate(&text, &name);
        Ok(config)
    }

    pub fn from_raw(raw: RawConfig, listen: Option<&str>) -> Result<Config> {
        let listen_text = listen
            .map(str::to_owned)
            .or(raw.server.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text
            .parse::<SocketAddr>()
            .with_context(|| format!("listen address '{listen_text}' is not IP:PORT"))?;
        let api_prefix = raw.server.api_prefix.unwrap_or_default();
        if !api_prefix.is_empty()
            && (!api_prefix.starts_with('/')
                || api_prefix.ends_with('/')
                || api_prefix.contains("//")
                || api_prefix
                    .chars()
                    .any(|c| c.is_whitespace() || c == '?' || c == '#'))
        {
            bail!("api_prefix '{api_prefix}' must look like /appmesh (a leading '/', no trailing '/')");
        }
        let issuer = raw.server.issuer.unwrap_or_else(|| "jwtgate".to_owned());
        if issuer.trim().is_empty() {
            bail!("issuer must not be empty");
        }
        let public_url = raw
            .server
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("public_url '{url}' must start with http:// or https://");
            }
        }
        let max_expire_seconds = raw.login.max_expire_seconds.unwrap_or(7 * 24 * 3600);
        let default_expire_seconds = raw.login.default_expire_seconds.unwrap_or(3600);
        if !(1..=10 * 366 * 24 * 3600).contains(&max_expire_seconds) {
            bail!("login.max_expire_seconds must be between 1 and ten years");
        }
        if !(1..=max_expire_seconds).contains(&default_expire_seconds) {
            bail!("login.default_expire_seconds must be between 1 and login.max_expire_seconds ({max_expire_seconds})");
        }
        let totp_challenge_seconds = raw.login.totp_challenge_seconds.unwrap_or(180);
        if !(1..=3600).contains(&totp_challenge_seconds) {
            bail!("login.totp_challenge_seconds must be between 1 and 3600");
        }
        let max_failures_per_user = raw.login.max_failures_per_user.unwrap_or(5);
        let max_failures_per_ip = raw.login.max_failures_per_ip.unwrap_or(20);
        let failure_window_seconds = raw.login.failure_window_seconds.unwrap_or(60);
        if max_failures_per_user == 0 || max_failures_per_ip == 0 {
            bail!("login.max_failures_per_user and max_failures_per_ip must be at least 1");
        }
        if !(1..=86_400).contains(&failure_window_seconds) {
            bail!("login.failure_window_seconds must be between 1 and 86400");
        }
        let tls = match (raw.server.tls_cert, raw.server.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => bail!("tls_cert and tls_key go together: give both for HTTPS, or neither"),
        };
        let leeway = raw.server.leeway_seconds.unwrap_or(60);
        if leeway > 3600 {
            bail!("server.leeway_seconds must be between 0 and 3600");
        }
        let verdict_cache = raw.server.verdict_cache.unwrap_or(true);
        let workers = match raw.server.workers {
            Some(n) if !(1..=MAX_WORKERS).contains(&n) => {
                bail!("server.workers must be between 1 and {MAX_WORKERS}")
            }
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS)),
        };
        let trusted_proxies = raw
            .server
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|t| Network::parse(t))
            .collect::<Result<Vec<_>>>()?;
        let gateway = crate::gateway::config::Gateway::check(raw.provider, raw.route)?;
        let reload_seconds = raw.store.reload_seconds.unwrap_or(5);
        if !(1..=86_400).contains(&reload_seconds) {
            bail!("store.reload_seconds must be between 1 and 86400 (a day)");
        }
        let store = store_location(raw.store)?;
        let audiences = raw.login.audiences.unwrap_or_default();
        if audiences.iter().any(|a| a.trim().is_empty()) {
            bail!("login.audiences must not contain an empty audience");
        }
        Ok(Config {
            listen,
            api_prefix,
            issuer,
            public_url,
            tls,
            leeway,
            verdict_cache,
            workers,
            trusted_proxies,
            gateway,
            store,
            store_reload: std::time::Duration::from_secs(reload_seconds),
            login: Login {
                default_expire_seconds,
                max_expire_seconds,
                audiences,
                totp_challenge_seconds,
                max_failures_per_user,
                max_failures_per_ip,
                failure_window_seconds,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::from_raw(toml::from_str(text)?, None)
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let config = parse("").unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(
            (config.api_prefix.as_str(), config.issuer.as_str()),
            ("", "jwtgate")
        );
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(config.workers, cores.min(MAX_WORKERS));
        assert_eq!(parse("[server]\nworkers = 3").unwrap().workers, 3);
        assert_eq!(config.store, None, "--data decides");
        assert_eq!(config.store_reload, std::time::Duration::from_secs(5));
        let reload = parse("[store]\nreload_seconds = 60").unwrap();
        assert_eq!(
            (reload.store, reload.store_reload),
            (None, std::time::Duration::from_secs(60)),
            "a reload period alone names no store"
        );
        let etcd = parse("[store]\nbackend = \"etcd\"\nendpoints = [\"http://a:1\", \"http://b:2\"]\nprefix = \"/team\"")
            .unwrap();
        assert_eq!(
            etcd.store,
            Some(crate::store::Location::parse("etcd:http://a:1,http://b:2/team").unwrap())
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        for (text, want) in [
            ("[server]\nlisten = \"localhost\"", "is not IP:PORT"),
            (
                "[server]\napi_prefix = \"appmesh\"",
                "must look like /appmesh",
            ),
            (
                "[server]\napi_prefix = \"/appmesh/\"",
                "must look like /appmesh",
            ),
            ("[server]\nissuer = \" \"", "issuer must not be empty"),
            (
                "[server]\npublic_url = \"example.com\"",
                "must start with http",
            ),
            ("[server]\nlisten_on = \"x\"", "unknown field `listen_on`"),
            ("[sever]", "unknown field `sever`"),
            ("[login]\nmax_expire_seconds = 0", "between 1 and ten years"),
            (
                "[login]\nmax_expire_seconds = 60\ndefault_expire_seconds = 61",
                "between 1 and login.max_expire_seconds (60)",
            ),
            ("[login]\naudiences = [\"\"]", "empty audience"),
            (
                "[server]\ntls_cert = \"c.pem\"",
                "tls_cert and tls_key go together",
            ),
            ("[server]\nleeway_seconds = 3601", "between 0 and 3600"),
            ("[server]\nworkers = 0", "workers must be between 1 and 256"),
            (
                "[server]\nworkers = 257",
                "workers must be between 1 and 256",
            ),
            ("[server]\nworkers = -1", "invalid value"),
            ("[store]\nbackend = \"consul\"", "use \"file\" or \"etcd\""),
            ("[store]\nreload_seconds = 0", "between 1 and 86400"),
            (
                "[store]\nbackend = \"etcd\"",
                "name at least one etcd member",
            ),
            (
                "[store]\nendpoints = [\"http://a:1\"]",
                "store.backend must be set",
            ),
            (
                "[store]\nbackend = \"etcd\"\nendpoints = [\"a:1\"]",
                "is not an http:// or https:// URL",
            ),
            (
                "[store]\nbackend = \"etcd\"\nendpoints = [\"http://a:1\"]\nca_file = \"ca.pem\"",
                "are for https:// endpoints",
            ),
            (
                "[store]\nbackend = \"etcd\"\nendpoints = [\"https://a:1\"]\ncert_file = \"c.pem\"",
                "store.cert_file and store.key_file go together",
            ),
            (
                "[store]\nbackend = \"etcd\"\nendpoints = [\"https://a:1\"]\nca_file = \"/nonexistent/ca.pem\"",
                "store.ca_file: cannot read /nonexistent/ca.pem",
            ),
            (
                "[store]\nbackend = \"file\"\nca_file = \"ca.pem\"",
                "are for backend = \"etcd\"",
            ),
            (
                "[store]\nbackend = \"etcd\"\nendpoints = [\"http://a:1\"]\nprefix = \"x\"",
                "must look like /jwtgate",
            ),
            (
                "[store]\nbackend = \"file\"\nprefix = \"/x\"",
                "are for backend = \"etcd\"",
            ),
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn environment_variables_override_the_file_and_the_flag_overrides_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:1\"\n[login]\nmax_expire_seconds = 3600\n",
        )
        .unwrap();
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<Vec<(std::ffi::OsString, std::ffi::OsString)>>()
        };
        let config = Config::load_with_env(
            Some(&path),
            None,
            vars(&[
                ("JWTGATE_SERVER_API_PREFIX", "/appmesh"),
                ("JWTGATE_LOGIN_MAX_EXPIRE_SECONDS", "7200"),
                ("JWTGATE_LOGIN_AUDIENCES", "[\"a\", \"b\"]"),
                ("JWTGATE_SERVER_VERDICT_CACHE", "false"),
                ("JWTGATE_SERVER_LISTEN", "127.0.0.1:2"),
                ("JWTGATE_DATA", "/elsewhere"),
            ]),
        )
        .unwrap();
        assert_eq!(config.api_prefix, "/appmesh");
        assert_eq!(config.login.max_expire_seconds, 7200);
        assert_eq!(config.login.audiences, ["a", "b"]);
        assert!(!config.verdict_cache);
        assert_eq!(config.listen.to_string(), "127.0.0.1:2");
        let flag = Config::load_with_env(
            Some(&path),
            Some("127.0.0.1:3"),
            vars(&[("JWTGATE_SERVER_LISTEN", "127.0.0.1:2")]),
        )
        .unwrap();
        assert_eq!(flag.listen.to_string(), "127.0.0.1:3");
        // Text settings are taken as written, even when they look like TOML.
        let text = Config::load_with_env(
            Some(&path),
            None,
            vars(&[
                ("JWTGATE_SERVER_ISSUER", "true"),
                ("JWTGATE_SERVER_API_PREFIX", "/v1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (text.issuer.as_str(), text.api_prefix.as_str()),
            ("true", "/v1")
        );
        for (var, value, want) in [
            (
                "JWTGATE_SERVER_issuer",
                "x",
                "write the setting's name in upper case",
            ),
            (
                "JWTGATE_SERVER_",
                "x",
                "write the setting's name in upper case",
            ),
            ("JWTGATE_SERVER_TLS_CERT", "", "is empty; unset it"),
            (
                "JWTGATE_LOGIN_MAX_EXPIRE_SECONDS",
                "60\nx = 1",
                "JWTGATE_LOGIN_MAX_EXPIRE_SECONDS: invalid type",
            ),
            ("JWTGATE_SERVER_LISTN", "x", "unknown field `listn`"),
            (
                "JWTGATE_LOGIN_MAX_EXPIRE_SECONDS",
                "soon",
                "JWTGATE_LOGIN_MAX_EXPIRE_SECONDS",
            ),
            (
                "JWTGATE_LOGIN_MAX_EXPIRE_SECONDS",
                "0",
                "between 1 and ten years",
            ),
        ] {
            let err = Config::load_with_env(Some(&path), None, vars(&[(var, value)])).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{var}={value}: {err:#}");
        }
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let net = |s: &str| Network::parse(s).unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
        let err = parse("[server]\ntrusted_proxies = [\"10.0.0.0/40\"]").unwrap_err();
        assert!(
            format!("{err:#}").contains("the prefix must be 0 to 32"),
            "{err:#}"
        );
    }

    #[test]
    fn a_gateway_mistake_names_the_file_and_the_tables_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"127.0.0.1:1\"\n\n[[route]]\nprefix = \"/a\"\nstatic_dir = \"/srv\"\n\n[[route]]\nprefix = \"/b\"\nupstream = \"http://x\"\nproviders = [\"nope\"]\n",
        )
        .unwrap();
        let err = Config::load_with_env(Some(&path), None, []).unwrap_err();
        let want = format!(
            "{}:8: [[route]] 2 (prefix \"/b\"): unknown provider \"nope\" (providers: self)",
            path.display()
        );
        assert_eq!(format!("{err:#}"), want);
    }

    #[test]
    fn the_example_config_in_docs_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/jwtgate.example.toml");
        let config = Config::load_with_env(Some(Path::new(path)), None, []).unwrap();
        assert_eq!(config.api_prefix, "");
    }
}
