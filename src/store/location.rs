//! Where the data lives, as the command line and the config name it: `file:DIR`, or
//! `etcd:URL[,URL…]` (the members' client URLs; their path, the same on each, is the key
//! prefix, `/jwtgate` when there is none).

use std::path::PathBuf;
use std::sync::Arc;

use super::etcd::EtcdTls;
use super::{EtcdSettings, EtcdStore, FileStore, Store, StoreError};

/// The key prefix when an etcd location names none.
pub const DEFAULT_PREFIX: &str = "/jwtgate";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Etcd(EtcdSettings),
}

impl Location {
    /// Reads `file:DIR` or `etcd:http://host:port[,http://host:port…][/prefix]` (or `https`).
    pub fn parse(text: &str) -> Result<Location, String> {
        if let Some(dir) = text.strip_prefix("file:") {
            if dir.is_empty() {
                return Err(format!("{text:?}: name the directory, file:DIR"));
            }
            return Ok(Location::File(PathBuf::from(dir)));
        }
        let Some(urls) = text.strip_prefix("etcd:") else {
            return Err(format!(
                "{text:?}: a store is file:DIR or etcd:http(s)://HOST:PORT[,http(s)://HOST:PORT…][/PREFIX]"
            ));
        };
        let mut endpoints = Vec::new();
        let mut prefix: Option<String> = None;
        for url in urls.split(',').map(str::trim) {
            let (endpoint, path) = endpoint(url).map_err(|e| format!("{text:?}: {e}"))?;
            endpoints.push(endpoint);
            if let Some(path) = path {
                if prefix.as_ref().is_some_and(|p| *p != path) {
                    return Err(format!(
                        "{text:?}: the members name different prefixes; give it once"
                    ));
                }
                prefix = Some(path);
            }
        }
        Location::etcd(endpoints, prefix)
    }

    /// An etcd location from the config's `endpoints` and `prefix`.
    pub fn etcd(endpoints: Vec<String>, prefix: Option<String>) -> Result<Location, String> {
        let https = endpoints.iter().any(|e| e.starts_with("https://"));
        let settings = EtcdSettings {
            endpoints,
            prefix: prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
            user: None,
            // The CA and a client certificate, if any, come from the config or environment.
            tls: https.then(EtcdTls::default),
        };
        settings.check()?;
        Ok(Location::Etcd(settings))
    }

    /// Opens (a directory is created when missing) or connects.
    pub async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            Location::File(dir) => Arc::new(FileStore::open(dir)?),
            Location::Etcd(settings) => Arc::new(EtcdStore::connect(settings).await?),
        })
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            Location::File(dir) => dir.display().to_string(),
            Location::Etcd(settings) => {
                format!("etcd:{}{}", settings.endpoints.join(","), settings.prefix)
            }
        }
    }
}

/// `http(s)://host:port[/path]` → the endpoint, and the path as a prefix (without a trailing
/// `/`) when there is one.
fn endpoint(url: &str) -> Result<(String, Option<String>), String> {
    let Some((scheme, rest)) = ["http", "https"]
        .into_iter()
        .find_map(|scheme| Some((scheme, url.strip_prefix(scheme)?.strip_prefix("://")?)))
    else {
        return Err(format!("{url} is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path.trim_end_matches('/'))),
        None => (rest, None),
    };
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !port_ok || authority.contains('@') {
        return Err(format!("{url}: write the member as {scheme}://HOST:PORT"));
    }
    let path = path.filter(|p| !p.is_empty()).map(|p| format!("/{p}"));
    Ok((format!("{scheme}://{authority}"), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_with_their_prefix_and_mistakes_named() {
        assert_eq!(
            Location::parse("file:./data").unwrap(),
            Location::File("./data".into())
        );
        let Location::Etcd(one) = Location::parse("etcd:http://127.0.0.1:2379").unwrap() else {
            panic!()
        };
        assert_eq!(
            (one.endpoints, one.prefix),
            (
                vec!["http://127.0.0.1:2379".to_owned()],
                "/jwtgate".to_owned()
            )
        );
        let Location::Etcd(three) =
            Location::parse("etcd:http://a:1,http://b:2,http://c:3/team/auth/").unwrap()
        else {
            panic!()
        };
        assert_eq!(three.endpoints, ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(three.prefix, "/team/auth");
        assert_eq!(three.tls, None);
        let Location::Etcd(secure) = Location::parse("etcd:https://a:1,https://b:2").unwrap()
        else {
            panic!()
        };
        assert_eq!(secure.endpoints, ["https://a:1", "https://b:2"]);
        assert_eq!(
            secure.tls,
            Some(EtcdTls::default()),
            "system roots, no client cert"
        );
        for (bad, want) in [
            ("./data", "a store is file:DIR or etcd:"),
            ("file:", "name the directory"),
            ("etcd:", "is not an http:// or https:// URL"),
            ("etcd:ftp://a:1", "is not an http:// or https:// URL"),
            ("etcd:http://a:1,https://b:2", "all http:// or all https://"),
            ("etcd:http://a", "write the member as http://HOST:PORT"),
            (
                "etcd:http://u:p@a:1",
                "write the member as http://HOST:PORT",
            ),
            ("etcd:http://a:1/x,http://b:2/y", "different prefixes"),
            ("etcd:http://a:1/x//y", "must look like /jwtgate"),
        ] {
            let err = Location::parse(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
    }
}
