//! `jwtgate token …`: sign claims with a key file, and verify a token with keys or a JWKS,
//! printing its header and claims and then `valid` or the exact reason it is not.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args, Subcommand};
use jwtgate_core::jose::inspect;
use jwtgate_core::{sign, verify, Algorithm, Key, KeySet, Rules};
use serde_json::{Map, Value};

use super::{load_key_file, now, parse_alg, usage, KeyFileOptions};

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
    /// Example:
    ///   jwtgate token verify "$TOKEN" --jwks jwks.json --iss https://idp --aud api
    #[command(verbatim_doc_comment)]
    #[command(group(ArgGroup::new("keys").required(true).multiple(true).args(["key", "jwks"])))]
    Verify(VerifyArgs),
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
    /// JWKS file. Repeatable.
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

pub fn run(cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::Sign(args) => sign_cmd(args),
        TokenCommand::Verify(args) => verify_cmd(args),
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

fn verify_cmd(args: VerifyArgs) -> Result<ExitCode> {
    let token = if args.token == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the token from standard input")?;
        s.trim().to_owned()
    } else {
        args.token.trim().to_owned()
    };
    if let Some(url) = args.jwks.iter().find(|p| {
        let s = p.to_string_lossy();
        s.starts_with("http://") || s.starts_with("https://")
    }) {
        return Err(usage(format!(
            "--jwks {}: fetching a JWKS over HTTP is not supported yet; save it first (curl -o jwks.json URL)",
            url.display()
        )));
    }
    let opts = KeyFileOptions {
        alg: args.alg,
        kid: None,
        secret_base64: args.secret_base64,
    };
    let mut keys = KeySet::default();
    for path in args.key.iter().chain(&args.jwks) {
        for key in load_key_file(path, &opts)? {
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

    if let Ok((header, payload)) = inspect(&token) {
        println!("header:\n{}", show(&header));
        println!("claims:\n{}", show(&payload));
    }
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
