//! The server's configuration: a TOML file (`--config`, `JWTGATE_CONFIG`) read into `RawConfig`
//! with unknown keys refused, then checked once into `Config`. Flags and environment variables
//! override the file.

use std::net::SocketAddr;
use std::path::Path;

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
}

/// The checked configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Empty, or `/segment…` without a trailing `/`.
    pub api_prefix: String,
    pub issuer: String,
    pub public_url: Option<String>,
    pub login: Login,
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

impl Config {
    /// Reads `path` (when given) and applies `listen` from a flag or the environment.
    pub fn load(path: Option<&Path>, listen: Option<&str>) -> Result<Config> {
        let raw = match path {
            None => RawConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                toml::from_str(&text).map_err(|e| {
                    // toml's own report quotes the source over several lines; one line here.
                    let line = e.span().map_or(1, |span| {
                        text[..span.start.min(text.len())].matches('\n').count() + 1
                    });
                    anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
                })?
            }
        };
        Config::from_raw(raw, listen)
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
        let audiences = raw.login.audiences.unwrap_or_default();
        if audiences.iter().any(|a| a.trim().is_empty()) {
            bail!("login.audiences must not contain an empty audience");
        }
        Ok(Config {
            listen,
            api_prefix,
            issuer,
            public_url,
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
        ] {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn the_example_config_in_docs_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/jwtgate.example.toml");
        let config = Config::load(Some(Path::new(path)), None).unwrap();
        assert_eq!(config.api_prefix, "");
    }
}
