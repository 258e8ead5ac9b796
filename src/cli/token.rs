//! `jwtgate token …`: issue tokens to users of the data directory and revoke them; sign
//! claims with a key file; verify a token with keys, a JWKS or the data directory, printing
//! its header and claims and then `valid` or the exact reason it is not.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use jwtgate_core::jose::inspect;
use jwtgate_core::{sign, verify, Algorithm, Key, KeySet, Rules};
use serde_json::{Map, Value};

use super::{block_on, load_key_file, now, parse_alg, usage, DataDir, KeyFileOptions, Need};
use crate::access::check_revocation;
use crate::issuer;
use crate::manage;
use crate::model::User;
use crate::store::{check_name, Kind};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Sign a JSON claims object with a private key (or HMAC secret) from a file.
    ///
    /// `iat` is set to now unless given; `exp` is now + --ttl (default 1h) unless the claims
    /// carry one. Example:
    ///   jwtgate token sign --key signing.jwk --claims '{"sub":"alice","roles":["api"]}' --ttl 30m
    #[command(verbatim_doc_comment)]
    Sign(SignArgs),
    /// Verify a token: print its header and claims, then `valid` (exit 0) or `invalid: REASON`
    /// (exit 1).
    ///
    /// Without --key or --jwks the data directory's keys are used, and revocation is checked
    /// too: a revoked jti, a locked or deleted user, a token issued before `token revoke --user`.
    /// Example:
    ///   jwtgate token verify "$TOKEN"
    ///   jwtgate token verify "$TOKEN" --jwks jwks.json --iss https://idp --aud api
    #[command(verbatim_doc_comment)]
    #[command(group(ArgGroup::new("keys").multiple(true).args(["key", "jwks"])))]
    Verify(VerifyArgs),
    /// Issue a token to a user of the data directory, signed with its active key. No server
    /// needs to run.
    ///
    /// Claims: iss, sub (the user), aud (each --aud), iat, nbf, exp (unless --ttl never),
    /// jti, roles (the user's). Warns when the user lacks the `api` role; refuses locked users.
    /// Example:
    ///   jwtgate token issue apiuser --ttl 30d
    ///   curl -H "Authorization: Bearer $(jwtgate token issue apiuser)" http://localhost:8080/
    #[command(verbatim_doc_comment)]
    Issue(IssueArgs),
    /// Revoke one token by its jti, or every token of a user issued until now.
    #[command(group(ArgGroup::new("what").required(true).args(["jti", "user"])))]
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The user the token is for (its `sub`).
    user: String,
    /// Lifetime: `1h`, `30m`, `7d`…, or `never` for a token without `exp` (revocable).
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Audience (`aud`). Repeatable.
    #[arg(long)]
    aud: Vec<String>,
    /// Extra claim `NAME=VALUE`; VALUE is JSON when it parses as JSON, else a string.
    /// Repeatable. Registered claims and `roles` cannot be set this way.
    #[arg(long, value_name = "NAME=VALUE")]
    claim: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Revoke the token with this `jti`.
    #[arg(long)]
    jti: Option<String>,
    /// Revoke every token of this user issued until now.
    #[arg(long)]
    user: Option<String>,
    /// The revoked token's `exp`, so the denylist entry can be dropped after it.
    #[arg(long, requires = "jti")]
    exp: Option<i64>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Signing key: PEM, JWK, JWKS, env form, or (with --alg HS*) a file holding the secret.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Algorithm, for keys that do not say (RSA PEM, HMAC secret files).
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Which key of the file to use (its kid); with a single key, sets its kid.
    #[arg(long)]
    kid: Option<String>,
    /// The claims: a JSON object, `@FILE`, or `-` for standard input.
    #[arg(long, default_value = "{}")]
    claims: String,
    /// Lifetime: `1h`, `30m`, `90s`, `7d`…, or `never` for a token without `exp`.
    #[arg(long)]
    ttl: Option<String>,
    /// Decode an HMAC secret file as base64 instead of using its text.
    #[arg(long)]
    secret_base64: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token, or `-` to read it from standard input.
    token: String,
    /// Key file (PEM, JWK, JWKS, env form, or an HMAC secret with --alg HS*). Repeatable.
    #[arg(long, value_name = "FILE")]
    key: Vec<PathBuf>,
    /// JWKS file, or an http(s) URL to fetch it from. Repeatable.
    #[arg(long, value_name = "FILE")]
    jwks: Vec<PathBuf>,
    /// Algorithm for keys that do not say (RSA PEM, JWKs without "alg", HMAC secret files).
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Required issuer (exact match).
    #[arg(long)]
    iss: Option<String>,
    /// Accepted audience; the token must name at least one. Repeatable. Without --aud, a token
    /// that names an audience is refused (RFC 7519 §4.1.3).
    #[arg(long)]
    aud: Vec<String>,
    /// Clock skew tolerated for exp, nbf and iat, in seconds.
    #[arg(long, default_value_t = 60)]
    leeway: u64,
    /// Accept a token without `exp`.
    #[arg(long)]
    allow_no_exp: bool,
    /// Decode an HMAC secret file as base64 instead of using its text.
    #[arg(long)]
    secret_base64: bool,
}

pub fn run(cmd: TokenCommand, data: &DataDir) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Sign(args) => sign_cmd(args),
        TokenCommand::Verify(args) if args.key.is_empty() && args.jwks.is_empty() => {
            block_on(verify_with_data(args, data))?
        }
        TokenCommand::Verify(args) => verify_cmd(args),
        TokenCommand::Issue(args) => block_on(issue(args, data))?,
        TokenCommand::Revoke(args) => block_on(revoke(args, data))?,
    }
}

/// The `iss` of tokens jwtgate issues.
pub const ISSUER: &str = "jwtgate";

/// Claims a `--claim` may not set: they are jwtgate's to decide.
const RESERVED: [&str; 10] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "URLs", "verbs",
];

async fn issue(args: IssueArgs, data: &DataDir) -> Result<ExitCode> {
    check_name(Kind::User, &args.user).map_err(|e| usage(e.to_string()))?;
    let ttl = parse_ttl(&args.ttl)?;
    if let Some(empty) = args.aud.iter().find(|a| a.trim().is_empty()) {
        return Err(usage(format!(
            "--aud {empty:?}: an audience cannot be empty"
        )));
    }
    let mut extra = Map::new();
    for claim in &args.claim {
        let Some((name, value)) = claim.split_once('=') else {
            return Err(usage(format!("--claim {claim:?}: expected NAME=VALUE")));
        };
        if name.is_empty() || RESERVED.contains(&name) {
            return Err(usage(format!(
                "--claim {name:?}: cannot set {}",
                if name.is_empty() {
                    "an empty name"
                } else {
                    "a claim jwtgate sets itself"
                }
            )));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
        extra.insert(name.to_owned(), value);
    }
    let model = data.open(Need::Existing).await?;
    let Some(user) = model.get::<User>(Kind::User, &args.user).await? else {
        bail!("unknown user '{}'", args.user);
    };
    let user = user.value;
    if !user.roles.iter().any(|r| r == "api") {
        eprintln!(
            "warning: user '{}' does not have the 'api' role (tokens for scripts usually go to api users)",
            user.name
        );
    }
    let issued = issuer::issue(
        &model,
        &user,
        issuer::Request {
            issuer: ISSUER,
            ttl,
            audiences: &args.aud,
            extra,
            gate: None,
        },
    )
    .await?;
    println!("{}", issued.token);
    Ok(ExitCode::SUCCESS)
}

/// `--ttl`: seconds, or `None` for `never`.
fn parse_ttl(ttl: &str) -> Result<Option<i64>> {
    if ttl == "never" {
        return Ok(None);
    }
    let secs = humantime::parse_duration(ttl)
        .map_err(|e| usage(format!("--ttl '{ttl}': {e} (e.g. 90s, 30m, 1h, 7d, never)")))?
        .as_secs();
    if secs == 0 {
        return Err(usage("--ttl must be longer than 0s"));
    }
    // Far beyond any real token, and short of the dates the verifier refuses as out of range.
    const TEN_YEARS: u64 = 10 * 366 * 24 * 3600;
    if secs > TEN_YEARS {
        return Err(usage(
            "--ttl is longer than 10 years; use --ttl never for a token without exp",
        ));
    }
    Ok(Some(
        i64::try_from(secs).map_err(|_| usage("--ttl is too long"))?,
    ))
}

async fn revoke(args: RevokeArgs, data: &DataDir) -> Result<ExitCode> {
    if let Some(jti) = &args.jti {
        check_name(Kind::Revocation, jti).map_err(|e| usage(format!("--jti: {e}")))?;
    }
    if let Some(name) = &args.user {
        manage::check_user_name(name)?;
    }
    let model = data.open(Need::Existing).await?;
    let now = now();
    if let Some(jti) = args.jti {
        if manage::revoke_jti(&model, &jti, args.exp, now).await? {
            println!("revoked the token with jti '{jti}'");
        } else {
            println!("the token with jti '{jti}' was already revoked");
        }
    }
    if let Some(name) = args.user {
        manage::revoke_user_tokens(&model, &name, now).await?;
        println!("revoked every token of '{name}' issued until now");
    }
    Ok(ExitCode::SUCCESS)
}

async fn verify_with_data(args: VerifyArgs, data: &DataDir) -> Result<ExitCode> {
    if args.alg.is_some() || args.secret_base64 {
        return Err(usage(
            "--alg and --secret-base64 apply to --key files; the data directory's keys say their own",
        ));
    }
    let token = read_token(&args.token)?;
    let model = data.open(Need::Existing).await?;
    let keys = model.keyset().await?.to_keyset()?;
    // jwtgate issues tokens without exp on request (--ttl never); they stay revocable.
    let rules = Rules::default()
        .leeway(args.leeway)
        .audiences(args.aud)
        .issuer(args.iss.unwrap_or_else(|| ISSUER.to_owned()))
        .allow_missing_exp();
    print_token(&token);
    let verified = match verify(&token, &keys, &rules, now()) {
        Ok(verified) => verified,
        Err(reject) => {
            println!("invalid: {reject}");
            return Ok(ExitCode::from(1));
        }
    };
    println!("key: '{}' ({})", verified.key_id, verified.header.alg);
    match check_revocation(&model, &verified.claims).await? {
        Ok(()) => {
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(denied) => {
            println!("invalid: {denied}");
            Ok(ExitCode::from(1))
        }
    }
}

fn read_claims(arg: &str) -> Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read claims from standard input")?;
        return Ok(s);
    }
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read_to_string(path)
            .with_context(|| format!("cannot read claims file {path}"));
    }
    Ok(arg.to_owned())
}

/// Picks the signing key: the one named by --kid, else the only private key in the file.
fn signing_key(keys: Vec<Key>, kid: Option<&str>) -> Result<Key> {
    let mut private: Vec<Key> = keys.into_iter().filter(Key::has_private).collect();
    if let Some(kid) = kid {
        if let Some(pos) = private.iter().position(|k| k.kid() == kid) {
            return Ok(private.swap_remove(pos));
        }
    }
    match private.len() {
        0 => bail!("the key file holds no private key or secret; signing needs one"),
        1 => Ok(private.remove(0)),
        n => Err(usage(format!(
            "the key file holds {n} private keys; choose one with --kid ({})",
            private.iter().map(Key::kid).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn sign_cmd(args: SignArgs) -> Result<ExitCode> {
    let text = read_claims(&args.claims)?;
    let mut claims: Map<String, Value> = match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(usage("--claims must be a JSON object")),
        Err(e) => return Err(usage(format!("--claims is not valid JSON: {e}"))),
    };
    let opts = KeyFileOptions {
        alg: args.alg,
        kid: None,
        secret_base64: args.secret_base64,
    };
    let keys = load_key_file(&args.key, &opts)?;
    let single = keys.len() == 1;
    let mut key = signing_key(keys, args.kid.as_deref())?;
    if let (true, Some(kid)) = (single, &args.kid) {
        key = key.with_kid(kid.clone());
    }
    let now = now();
    claims.entry("iat").or_insert(Value::from(now));
    match (args.ttl.as_deref(), claims.contains_key("exp")) {
        (Some(_), true) => {
            return Err(usage(
                "the claims already have \"exp\"; drop --ttl or the claim",
            ))
        }
        (Some("never"), false) => {}
        (ttl, false) => {
            let ttl = ttl.unwrap_or("1h");
            let secs = humantime::parse_duration(ttl)
                .map_err(|e| usage(format!("--ttl '{ttl}': {e} (e.g. 90s, 30m, 1h, 7d, never)")))?
                .as_secs();
            let secs = i64::try_from(secs).map_err(|_| usage("--ttl is too long"))?;
            claims.insert("exp".into(), Value::from(now.saturating_add(secs)));
        }
        (None, true) => {}
    }
    println!("{}", sign(&claims, &key)?);
    Ok(ExitCode::SUCCESS)
}

/// Pretty JSON if the bytes are JSON, else the text as it is.
fn show(bytes: &[u8]) -> String {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// The token argument, or standard input for `-`.
fn read_token(arg: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg.trim().to_owned());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read the token from standard input")?;
    Ok(s.trim().to_owned())
}

/// The keys of a JWKS served at `url` (10 s at most), like a JWKS file: keys that cannot be
/// used are named on stderr and skipped.
fn fetch_keys(url: &str, alg: Option<Algorithm>) -> Result<Vec<Key>> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| usage(format!("--jwks {url}: not a URL: {e}")))?;
    let jwks = block_on(async {
        let client = crate::gateway::jwks::client().map_err(|e| anyhow::anyhow!("{e}"))?;
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            crate::gateway::jwks::fetch_jwks(&client, &uri),
        )
        .await
        .map_err(|_| anyhow::anyhow!("--jwks {url}: no answer within 10 s"))?
        .map_err(|e| anyhow::anyhow!("--jwks {url}: {e}"))
    })??;
    let (keys, skipped) = jwks.to_keys(alg);
    for why in skipped {
        eprintln!("warning: {url}: skipped a key: {why}");
    }
    if keys.is_empty() {
        bail!("--jwks {url}: no usable key");
    }
    Ok(keys)
}

/// Prints the decoded header and claims, when the token has that much structure.
fn print_token(token: &str) {
    if let Ok((header, payload)) = inspect(token) {
        println!("header:\n{}", show(&header));
        println!("claims:\n{}", show(&payload));
    }
}

fn verify_cmd(args: VerifyArgs) -> Result<ExitCode> {
    let token = read_token(&args.token)?;
    let is_url = |p: &PathBuf| {
        let s = p.to_string_lossy();
        s.starts_with("http://") || s.starts_with("https://")
    };
    let opts = KeyFileOptions {
        alg: args.alg,
        kid: None,
        secret_base64: args.secret_base64,
    };
    let mut keys = KeySet::default();
    for path in args
        .key
        .iter()
        .chain(args.jwks.iter().filter(|p| !is_url(p)))
    {
        for key in load_key_file(path, &opts)? {
            keys.insert(key)?;
        }
    }
    for url in args.jwks.iter().filter(|p| is_url(p)) {
        for key in fetch_keys(&url.to_string_lossy(), args.alg)? {
            keys.insert(key)?;
        }
    }
    let mut rules = Rules::default().leeway(args.leeway).audiences(args.aud);
    if let Some(iss) = args.iss {
        rules = rules.issuer(iss);
    }
    if args.allow_no_exp {
        rules = rules.allow_missing_exp();
    }

    print_token(&token);
    match verify(&token, &keys, &rules, now()) {
        Ok(verified) => {
            println!("key: '{}' ({})", verified.key_id, verified.header.alg);
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(reject) => {
            println!("invalid: {reject}");
            Ok(ExitCode::from(1))
        }
    }
}
