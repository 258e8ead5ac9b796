//! `jwtgate key …`: generate keys of every supported kind and print public key sets.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use jwtgate_core::key::Jwks;
use jwtgate_core::{Algorithm, Curve, Key, KeySet, KeyType};

use crate::model::{Keyset, KEYSET};
use crate::store::{Kind, StoreError};

use super::{block_on, now, DataDir, Need};
use super::{load_key_file, parse_alg, usage, write_new_file, KeyFileOptions};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a key (private by default) for one algorithm.
    ///
    /// The algorithm comes from --alg, or from --kty/--crv (oct → HS256, RSA → RS256,
    /// EC → ES256/ES384/ES512 by curve, OKP → EdDSA); with neither, ES256.
    ///
    /// Examples:
    ///   jwtgate key gen --alg ES256 --out signing.jwk
    ///   jwtgate key gen --kty oct --size 256 --use sig --alg HS256 --kid K --format jwks
    ///   jwtgate key gen --alg EdDSA --format env
    #[command(verbatim_doc_comment)]
    Gen(GenArgs),
    /// Print the public JWKS of the keys in the given files (HMAC secrets are left out).
    Jwks(JwksArgs),
    /// Convert a key file to another form (private material only when --private is given).
    ///
    /// Examples:
    ///   jwtgate key export signing.jwk --format pem            # public SPKI PEM
    ///   jwtgate key export signing.jwk --format pem --private  # PKCS#8 PEM
    ///   jwtgate key export rsa.pem --alg RS256 --format jwk
    #[command(verbatim_doc_comment)]
    Export(ExportArgs),
    /// Make a new signing key in the data directory the active one. The old keys keep
    /// verifying until every token they signed has expired (tokens without exp: until removed).
    Rotate {
        /// Algorithm of the new key (default: the current active key's).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Algorithm>,
    },
    /// List the data directory's signing keys.
    List,
    /// Print the data directory's public JWKS (what verifiers of its tokens need).
    Published,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Key file: PEM, JWK, JWKS (one key) or env form.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Algorithm, for keys that do not say (RSA PEM, JWKs without "alg", HMAC secret files).
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Which key of the file (by kid), when it holds several.
    #[arg(long)]
    kid: Option<String>,
    /// Output form.
    #[arg(long, value_enum, default_value = "jwk")]
    format: Format,
    /// Include private members (PKCS#8 PEM, JWK `d`/`k`, PRIVATE_KEY line).
    #[arg(long)]
    private: bool,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// PKCS#8 private key, or SPKI public key with --public (no HMAC).
    Pem,
    /// One JSON Web Key.
    Jwk,
    /// A JWK Set holding the key.
    Jwks,
    /// ClusterCockpit's `ED25519 PUBLIC_KEY="…"` / `PRIVATE_KEY` lines (EdDSA only).
    Env,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kty {
    #[value(name = "oct")]
    Oct,
    #[value(name = "RSA", alias = "rsa")]
    Rsa,
    #[value(name = "EC", alias = "ec")]
    Ec,
    #[value(name = "OKP", alias = "okp")]
    Okp,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Algorithm the key is bound to (HS256…HS512, RS256…RS512, PS256…PS512, ES256, ES384, ES512, EdDSA).
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Key type, as in the JWKS generator: oct, RSA, EC, OKP.
    #[arg(long, value_enum)]
    kty: Option<Kty>,
    /// Key size in bits: RSA modulus (2048, 3072, 4096, 8192; default 2048) or HMAC secret
    /// (at least the hash size; default the hash size).
    #[arg(long)]
    size: Option<usize>,
    /// Curve for EC/OKP keys: P-256, P-384, P-521, Ed25519.
    #[arg(long)]
    crv: Option<String>,
    /// Public key use. Only signature keys exist in jwtgate.
    #[arg(long = "use", value_parser = ["sig"])]
    use_: Option<String>,
    /// Key id; default: the RFC 7638 thumbprint.
    #[arg(long)]
    kid: Option<String>,
    /// Output form.
    #[arg(long, value_enum, default_value = "jwk")]
    format: Format,
    /// Print only the public key.
    #[arg(long)]
    public: bool,
    /// Write to FILE (mode 0600 for private keys) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long, requires = "out")]
    force: bool,
}

#[derive(Debug, Args)]
pub struct JwksArgs {
    /// Key files: PEM, JWK, JWKS or env form.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Algorithm for keys that do not say (RSA PEM files, JWKs without "alg").
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
}

pub fn run(cmd: KeyCommand, data: &DataDir) -> Result<ExitCode> {
    match cmd {
        KeyCommand::Gen(args) => gen(args),
        KeyCommand::Jwks(args) => jwks(args),
        KeyCommand::Export(args) => export(args),
        KeyCommand::Rotate { alg } => block_on(rotate(data, alg))?,
        KeyCommand::List => block_on(list(data))?,
        KeyCommand::Published => block_on(published(data))?,
    }
}

/// Leeway used when deciding that a retired key's tokens have all expired.
const RETIRE_LEEWAY: i64 = 60;

async fn rotate(data: &DataDir, alg: Option<Algorithm>) -> Result<ExitCode> {
    let model = data.open(Need::Keys).await?;
    let now = now();
    let result = model
        .update::<Keyset, anyhow::Error, _>(Kind::Keyset, KEYSET, |ks| {
            let alg = match alg {
                Some(alg) => alg,
                None => ks.active_key()?.alg(),
            };
            ks.rotate(alg, now, RETIRE_LEEWAY)?;
            Ok(())
        })
        .await;
    let keyset = match result {
        Ok(keyset) => keyset,
        Err(e) if matches!(e.downcast_ref(), Some(StoreError::NotFound { .. })) => {
            // The keyset was lost: start a new one (the caller asked for a new key).
            let keyset = Keyset::generate(alg.unwrap_or(data.key_alg()), now)?;
            model.create(Kind::Keyset, KEYSET, &keyset).await?;
            eprintln!("warning: there was no signing keyset; made a new one");
            keyset
        }
        Err(e) => return Err(e),
    };
    let kept = keyset.keys.len() - 1;
    println!(
        "new active key '{}'; {kept} older key{} still verif{}",
        keyset.active,
        if kept == 1 { "" } else { "s" },
        if kept == 1 { "ies" } else { "y" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(data: &DataDir) -> Result<ExitCode> {
    let model = data.open(Need::Existing).await?;
    let keyset = model.keyset().await?;
    println!("{:<45} {:<6} {:<8} EXPIRES", "KID", "ALG", "STATE");
    for key in &keyset.keys {
        let state = if key.kid() == keyset.active {
            "active"
        } else {
            "retired"
        };
        let expires = match (key.signs_forever, key.last_exp) {
            (true, _) => "never (a token without exp)".to_owned(),
            (false, Some(exp)) => format!("tokens until {exp}"),
            (false, None) => "no tokens".to_owned(),
        };
        let alg = key.jwk.alg.as_deref().unwrap_or("?");
        println!("{:<45} {alg:<6} {state:<8} {expires}", key.kid());
    }
    Ok(ExitCode::SUCCESS)
}

async fn published(data: &DataDir) -> Result<ExitCode> {
    let model = data.open(Need::Existing).await?;
    let keys = model.keyset().await?.to_keyset()?;
    println!("{}", keys.public_jwks().to_json_pretty());
    Ok(ExitCode::SUCCESS)
}

/// Works out the algorithm from --alg, --kty and --crv, refusing contradictions.
fn resolve_alg(args: &GenArgs) -> Result<Algorithm> {
    let crv = match args.crv.as_deref() {
        None => None,
        Some(name) => Some(Curve::from_name(name).ok_or_else(|| {
            usage(format!(
                "unknown curve '{name}' (supported: P-256, P-384, P-521, Ed25519)"
            ))
        })?),
    };
    let kty = args.kty.map(|k| match k {
        Kty::Oct => KeyType::Oct,
        Kty::Rsa => KeyType::Rsa,
        Kty::Ec => KeyType::Ec,
        Kty::Okp => KeyType::Okp,
    });
    let alg = match (args.alg, kty, crv) {
        (Some(alg), _, _) => alg,
        (None, Some(KeyType::Oct), _) => Algorithm::HS256,
        (None, Some(KeyType::Rsa), _) => Algorithm::RS256,
        (None, _, Some(crv)) => crv.algorithm(),
        (None, Some(KeyType::Ec), None) => Algorithm::ES256,
        (None, Some(KeyType::Okp), None) => Algorithm::EdDSA,
        (None, None, None) => Algorithm::ES256,
    };
    if let Some(kty) = kty {
        if alg.key_type() != kty {
            return Err(usage(format!(
                "--alg {alg} does not use --kty {:?} keys",
                args.kty.unwrap_or(Kty::Oct)
            )));
        }
    }
    if let Some(crv) = crv {
        if alg.curve() != Some(crv) {
            return Err(usage(format!("--alg {alg} does not use curve {crv}")));
        }
    }
    Ok(alg)
}

fn gen(args: GenArgs) -> Result<ExitCode> {
    let alg = resolve_alg(&args)?;
    if args.format == Format::Env && alg != Algorithm::EdDSA {
        return Err(usage(format!(
            "--format env is for EdDSA (Ed25519) keys, not {alg}"
        )));
    }
    if args.public && alg.key_type() == KeyType::Oct {
        return Err(usage("an HMAC secret has no public part; drop --public"));
    }
    if args.format == Format::Pem && alg.key_type() == KeyType::Oct {
        return Err(usage(
            "HMAC secrets have no PEM form; use --format jwk or jwks",
        ));
    }
    if alg.key_type() == KeyType::Oct {
        if let Some(bits) = args.size {
            if bits < alg.hash_len() * 8 {
                return Err(usage(format!(
                    "--size {bits} is too small for {alg}: at least {} bits",
                    alg.hash_len() * 8
                )));
            }
        }
    }
    let key = Key::generate(alg, args.size, args.kid.clone()).map_err(|e| usage(e.to_string()))?;
    output(
        &key,
        args.format,
        !args.public,
        args.out.as_deref(),
        args.force,
    )
}

/// Prints or writes `key` in `format`.
fn output(
    key: &Key,
    format: Format,
    private: bool,
    out: Option<&Path>,
    force: bool,
) -> Result<ExitCode> {
    if !private && key.is_symmetric() {
        return Err(usage(
            "an HMAC secret has no public form; add --private to export the secret",
        ));
    }
    let text = match format {
        Format::Pem => key.to_pem(private).map_err(|e| usage(e.to_string()))?,
        Format::Env => key.to_env(private).map_err(|e| usage(e.to_string()))?,
        Format::Jwk | Format::Jwks => {
            let jwk = key
                .to_jwk(private)
                .ok_or_else(|| anyhow::anyhow!("could not export key '{}' as a JWK", key.kid()))?;
            if format == Format::Jwk {
                pretty(&jwk)?
            } else {
                pretty(&Jwks { keys: vec![jwk] })?
            }
        }
    };
    match out {
        None => print!("{text}"),
        Some(path) => {
            write_new_file(path, text.as_bytes(), force, private)?;
            eprintln!(
                "wrote {} key '{}' to {}",
                key.alg(),
                key.kid(),
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn export(args: ExportArgs) -> Result<ExitCode> {
    let opts = KeyFileOptions {
        alg: args.alg,
        ..KeyFileOptions::default()
    };
    let mut keys = load_key_file(&args.file, &opts)?;
    let key = match (&args.kid, keys.len()) {
        (Some(kid), _) => {
            let pos = keys
                .iter()
                .position(|k| k.kid() == kid)
                .ok_or_else(|| usage(format!("{}: no key with id '{kid}'", args.file.display())))?;
            keys.swap_remove(pos)
        }
        (None, 1) => keys.remove(0),
        (None, n) => {
            return Err(usage(format!(
                "{} holds {n} keys; choose one with --kid",
                args.file.display()
            )))
        }
    };
    if args.private && !key.has_private() {
        bail!(
            "{}: key '{}' has no private part to export",
            args.file.display(),
            key.kid()
        );
    }
    output(
        &key,
        args.format,
        args.private,
        args.out.as_deref(),
        args.force,
    )
}

fn pretty<T: serde::Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

fn jwks(args: JwksArgs) -> Result<ExitCode> {
    let opts = KeyFileOptions {
        alg: args.alg,
        ..KeyFileOptions::default()
    };
    let mut set = KeySet::default();
    for path in &args.files {
        for key in load_key_file(path, &opts)? {
            if key.is_symmetric() {
                eprintln!(
                    "warning: {}: key '{}' is an HMAC secret and is left out of the public JWKS",
                    path.display(),
                    key.kid()
                );
                continue;
            }
            set.insert(key)?;
        }
    }
    if set.is_empty() {
        bail!("no public keys to print");
    }
    print!("{}", pretty(&set.public_jwks())?);
    Ok(ExitCode::SUCCESS)
}
