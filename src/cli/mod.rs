//! The command line: argument types (clap), dispatch, and what every command shares — reading
//! key files, the clock, writing output files without clobbering anything.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use jwtgate_core::key::{parse_keys, raw};
use jwtgate_core::{Algorithm, Key, KeyType};

use crate::init;
use crate::model::Model;
use crate::store::Location;

mod gatetoken;
mod key;
mod role;
mod serve;
mod store;
mod token;
mod user;

/// jwtgate issues, verifies and gates with JSON Web Tokens.
///
/// Exit codes: 0 success, 1 failure (including an invalid token), 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "jwtgate", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The data directory: users, roles, keys and revocations as JSON files. Created and
    /// initialised on first use (a signing key; roles admin, user, api; an admin user).
    #[arg(
        long,
        global = true,
        env = "JWTGATE_DATA",
        default_value = "./jwtgate-data",
        value_name = "DIR"
    )]
    data: PathBuf,
    /// The store instead of --data: file:DIR, or an etcd cluster,
    /// etcd:http://HOST:2379[,http://HOST:2379…][/PREFIX] (prefix /jwtgate by default), which
    /// several servers share (docs/cluster.md). For `serve` it also wins over [store]. With
    /// etcd's authentication on: JWTGATE_ETCD_USER and JWTGATE_ETCD_PASSWORD_FILE. With
    /// https:// members: JWTGATE_ETCD_CA_FILE (default: the system's trusted certificates), and
    /// JWTGATE_ETCD_CERT_FILE with JWTGATE_ETCD_KEY_FILE for a client certificate.
    #[arg(long, global = true, env = "JWTGATE_STORE", value_name = "LOCATION", value_parser = parse_location)]
    store: Option<Location>,
    /// Algorithm of the signing key made when an empty data directory is initialised.
    #[arg(long, global = true, env = "JWTGATE_KEY_ALG", default_value = "ES256", value_parser = parse_alg)]
    key_alg: Algorithm,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate keys and print key sets (PEM, JWK, JWKS, env form).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Sign, issue, verify and revoke tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage users: add, delete, lock, roles, passwords, TOTP.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage roles and their permissions.
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Gate tokens: signed, path-scoped tokens for one resource (a VM's console).
    #[command(subcommand)]
    Gatetoken(gatetoken::GateTokenCommand),
    /// Run the server over the data directory: login, /auth, keys, the admin API.
    Serve(serve::ServeArgs),
    /// Move data between stores: a directory and etcd.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

/// etcd's own authentication for `--store`: `JWTGATE_ETCD_USER` and a file holding the
/// password, `JWTGATE_ETCD_PASSWORD_FILE` (a password is not put in the environment itself);
/// TLS files for `https://` members: `JWTGATE_ETCD_CA_FILE`, `JWTGATE_ETCD_CERT_FILE` and
/// `JWTGATE_ETCD_KEY_FILE`.
pub(crate) fn etcd_credentials(location: Location) -> Result<Location> {
    let Location::Etcd(mut settings) = location else {
        return Ok(location);
    };
    let user = std::env::var("JWTGATE_ETCD_USER").ok();
    let file = std::env::var_os("JWTGATE_ETCD_PASSWORD_FILE");
    settings.user = match (user, file) {
        (None, None) => None,
        (Some(user), Some(file)) => Some((
            user,
            crate::store::etcd::read_password(Path::new(&file)).map_err(usage)?,
        )),
        _ => {
            return Err(usage(
                "JWTGATE_ETCD_USER and JWTGATE_ETCD_PASSWORD_FILE go together",
            ))
        }
    };
    let names = [
        "JWTGATE_ETCD_CA_FILE",
        "JWTGATE_ETCD_CERT_FILE",
        "JWTGATE_ETCD_KEY_FILE",
    ];
    let files = names.map(|name| std::env::var_os(name).map(PathBuf::from));
    if files.iter().any(Option::is_some) {
        if settings.tls.is_none() {
            return Err(usage(
                "JWTGATE_ETCD_CA_FILE, JWTGATE_ETCD_CERT_FILE and JWTGATE_ETCD_KEY_FILE are for https:// members",
            ));
        }
        let [ca, cert, key] = files;
        settings.tls = Some(
            crate::store::EtcdTls::read(ca.as_deref(), cert.as_deref(), key.as_deref(), names)
                .map_err(usage)?,
        );
    }
    Ok(Location::Etcd(settings))
}

pub(crate) fn parse_location(text: &str) -> Result<Location, String> {
    Location::parse(text)
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let store = match cli.store {
        Some(location) => Some(etcd_credentials(location)?),
        None => None,
    };
    let data = DataDir {
        chosen: store.is_some(),
        location: store.unwrap_or(Location::File(cli.data)),
        key_alg: cli.key_alg,
    };
    match cli.command {
        Command::Key(cmd) => key::run(cmd, &data),
        Command::Token(cmd) => token::run(cmd, &data),
        Command::User(cmd) => user::run(cmd, &data),
        Command::Role(cmd) => role::run(cmd, &data),
        Command::Gatetoken(cmd) => gatetoken::run(cmd, &data),
        Command::Serve(args) => serve::run(args, &data),
        Command::Store(cmd) => store::run(cmd),
    }
}

/// Where the store lives, and how to initialise it.
#[derive(Debug)]
pub struct DataDir {
    location: Location,
    /// Named by `--store`/`JWTGATE_STORE` (then it wins over a config file's `[store]`).
    chosen: bool,
    key_alg: Algorithm,
}

/// What a command needs of the data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// An initialised store; nothing is created (a mistyped --data fails instead of making a
    /// new store).
    Existing,
    /// Commands that create things (`user add`, `role set`) initialise an empty store.
    Initialised,
    /// `key rotate`: like `Initialised`, and also works when the keyset is gone.
    Keys,
}

impl DataDir {
    /// The algorithm for keys made on initialisation.
    pub fn key_alg(&self) -> Algorithm {
        self.key_alg
    }

    /// `serve`: a config file's `[store]` replaces `--data`, not `--store`.
    pub fn or_config(&self, configured: Option<&Location>) -> DataDir {
        let location = match configured {
            Some(configured) if !self.chosen => configured.clone(),
            _ => self.location.clone(),
        };
        DataDir {
            location,
            chosen: self.chosen,
            key_alg: self.key_alg,
        }
    }

    /// Opens the store for a command that needs `need`. Initialising prints the admin password
    /// once, on stderr, when it was generated.
    pub async fn open(&self, need: Need) -> Result<Model> {
        let shown = self.location.describe();
        if let Location::File(dir) = &self.location {
            if need == Need::Existing && !dir.is_dir() {
                bail!(
                    "no jwtgate data directory at {shown}; the first `jwtgate user add` or `jwtgate role set` creates one (or pass --data DIR)"
                );
            }
        }
        let store = self
            .location
            .open()
            .await
            .with_context(|| format!("cannot open the store {shown}"))?;
        let model = Model::new(store);
        // `key rotate` (Need::Keys) repairs a missing keyset: it need not wait for one. Only a
        // shared store (etcd) has other processes initialising it at the same moment as this.
        let state = if need == Need::Keys || matches!(self.location, Location::File(_)) {
            init::state(&model).await?
        } else {
            settled_state(&model).await?
        };
        match (state, need) {
            (init::State::Ready, _) | (init::State::NoKeyset, Need::Keys) => {}
            (init::State::Empty, Need::Existing) => bail!(
                "{shown} holds no jwtgate data yet; the first `jwtgate user add` or `jwtgate role set` initialises it"
            ),
            (init::State::NoKeyset, _) => bail!(
                "{shown} has users or roles but no signing keyset (keys/signing.json): restore it, or make a new key with `jwtgate key rotate` (tokens signed by the lost key stop verifying)"
            ),
            (init::State::Empty, _) => self.initialise(&model).await?,
        }
        Ok(model)
    }

    async fn initialise(&self, model: &Model) -> Result<()> {
        let admin_password = std::env::var("JWTGATE_ADMIN_PASSWORD").ok();
        let generated = admin_password.is_none();
        let created = init::initialise(model, self.key_alg, admin_password, now()).await?;
        let shown = self.location.describe();
        match (created, generated) {
            (Some(password), true) => eprintln!(
                "jwtgate: initialised {shown}; the admin password is (shown once): {password}"
            ),
            (Some(_), false) => eprintln!(
                "jwtgate: initialised {shown} (admin password from JWTGATE_ADMIN_PASSWORD)"
            ),
            (None, _) => {}
        }
        Ok(())
    }
}

/// The store's state; when it has users or roles but no keyset, asked again for a few seconds:
/// another process sharing the store (a second server starting on an empty etcd prefix) may
/// be initialising it, and writes the keyset last.
async fn settled_state(model: &Model) -> Result<init::State> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let state = init::state(model).await?;
        if state != init::State::NoKeyset || tokio::time::Instant::now() >= deadline {
            return Ok(state);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Runs `future` to completion on a runtime for this one command.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Reads a password: the first line of standard input, without its line ending.
pub fn read_password_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(usage("the password is empty"));
    }
    Ok(password)
}

/// A mistake in how the command was called; exits with status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Whether `err` is a mistake in how the command was called (exit status 2).
pub fn is_usage(err: &anyhow::Error) -> bool {
    err.downcast_ref::<UsageError>().is_some()
        || matches!(
            err.downcast_ref::<crate::manage::Error>(),
            Some(crate::manage::Error::Invalid(_))
        )
}

/// Parses an algorithm name for clap.
pub fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse()
}

/// Seconds since the epoch, from the system clock.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How to read a key file.
#[derive(Clone, Debug, Default)]
pub struct KeyFileOptions {
    pub alg: Option<Algorithm>,
    pub kid: Option<String>,
    /// For HMAC secrets in plain files: decode the file as base64 instead of using its text.
    pub secret_base64: bool,
}

/// Reads every key in a file: PEM, JWK, JWKS or env form; with an HMAC `--alg`, a plain file
/// is the shared secret itself. Unusable JWKS entries are reported on stderr and skipped.
pub fn load_key_file(path: &Path, opts: &KeyFileOptions) -> Result<Vec<Key>> {
    let bytes =
        fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    let shown = path.display();
    let hmac = opts.alg.filter(|a| a.key_type() == KeyType::Oct);
    let text = std::str::from_utf8(&bytes).ok();
    let is_json = text.is_some_and(|t| t.trim_start().starts_with('{'));
    if let (Some(alg), false) = (hmac, is_json) {
        let key = match (text, opts.secret_base64) {
            (Some(t), true) => raw::hmac_from_base64(alg, t, opts.kid.clone()),
            (Some(t), false) => raw::hmac_from_text(alg, t, opts.kid.clone()),
            (None, true) => bail!("{shown}: --secret-base64 given but the file is not text"),
            (None, false) => Key::hmac(alg, &bytes, opts.kid.clone()),
        }
        .with_context(|| format!("{shown}"))?;
        return Ok(vec![key]);
    }
    if opts.secret_base64 {
        return Err(usage(
            "--secret-base64 applies only to HMAC secrets (--alg HS256|HS384|HS512)",
        ));
    }
    let Some(text) = text else {
        bail!("{shown}: not a text key file (PEM, JWK, JWKS or env form)");
    };
    let (keys, skipped) =
        parse_keys(text, opts.alg, opts.kid.clone()).with_context(|| format!("{shown}"))?;
    for reason in skipped {
        eprintln!("warning: {shown}: skipped a key: {reason}");
    }
    if keys.is_empty() {
        bail!("{shown}: no usable key");
    }
    Ok(keys)
}

/// Writes `contents` to `path` atomically (temp file, fsync, rename). Refuses to replace an
/// existing file unless `force`; `secret` files are created readable by the owner only.
pub fn write_new_file(path: &Path, contents: &[u8], force: bool, secret: bool) -> Result<()> {
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it",
            path.display()
        );
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if secret { 0o600 } else { 0o644 });
        }
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        if let Ok(d) = fs::File::open(&dir) {
            // Makes the rename itself durable; failure here loses nothing already written.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
