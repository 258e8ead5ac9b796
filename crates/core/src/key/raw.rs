//! Raw key forms: ClusterCockpit's base64 Ed25519 keys (`JWT_PUBLIC_KEY` = 32 bytes,
//! `JWT_PRIVATE_KEY` = seed || public, 64 bytes, printed by its gen-keypair tool as
//! `ED25519 PUBLIC_KEY="…"`), and HMAC secrets given as text or base64.

use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;

use super::{Key, Material};
use crate::alg::Algorithm;
use crate::error::KeyError;

/// Decodes base64 written by other tools: standard or URL-safe alphabet, padded or not.
pub fn decode_lenient_base64(text: &str) -> Result<Vec<u8>, KeyError> {
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| KeyError::Format("not valid base64".into()))
}

/// An HMAC key from a secret given as base64 (as jwt.io's "secret base64 encoded").
pub fn hmac_from_base64(alg: Algorithm, text: &str, kid: Option<String>) -> Result<Key, KeyError> {
    Key::hmac(alg, &decode_lenient_base64(text)?, kid)
}

/// An HMAC key from a text secret, used byte for byte (surrounding whitespace removed).
pub fn hmac_from_text(alg: Algorithm, text: &str, kid: Option<String>) -> Result<Key, KeyError> {
    Key::hmac(alg, text.trim().as_bytes(), kid)
}

/// Whether `text` looks like the env form: lines of `NAME=VALUE` naming a public or private key.
pub fn looks_like_env(text: &str) -> bool {
    text.lines().any(|l| env_entry(l).is_some())
}

/// Splits `[export ][ED25519 ]JWT_PUBLIC_KEY="…"` into (is_private, value).
fn env_entry(line: &str) -> Option<(bool, &str)> {
    let line = line.trim();
    let line = line.strip_prefix("export ").unwrap_or(line);
    let line = line.strip_prefix("ED25519 ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let private = match name.trim() {
        "PUBLIC_KEY" | "JWT_PUBLIC_KEY" => false,
        "PRIVATE_KEY" | "JWT_PRIVATE_KEY" => true,
        _ => return None,
    };
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(value);
    Some((private, value))
}

/// Reads the env form. With a private key the result can sign; the public key, when also
/// given, must match it.
pub fn from_env(text: &str, kid: Option<String>) -> Result<Key, KeyError> {
    let (mut public, mut private) = (None, None);
    for (is_private, value) in text.lines().filter_map(env_entry) {
        let bytes = decode_lenient_base64(value).map_err(|_| {
            KeyError::Format(format!(
                "{} is not valid base64",
                if is_private {
                    "PRIVATE_KEY"
                } else {
                    "PUBLIC_KEY"
                }
            ))
        })?;
        if is_private {
            private = Some(bytes);
        } else {
            public = Some(bytes);
        }
    }
    match (private, public) {
        (Some(private), public) => {
            let (seed, embedded) = match private.len() {
                64 => private.split_at(32),
                32 => (private.as_slice(), &[][..]),
                n => {
                    return Err(KeyError::Format(format!(
                        "Ed25519 PRIVATE_KEY must be 64 bytes (seed and public key) or a 32-byte seed, got {n}"
                    )))
                }
            };
            let pair = match (embedded.is_empty(), public.as_deref()) {
                (false, _) => Ed25519KeyPair::from_seed_and_public_key(seed, embedded),
                (true, Some(p)) => Ed25519KeyPair::from_seed_and_public_key(seed, p),
                (true, None) => Ed25519KeyPair::from_seed_unchecked(seed),
            }
            .map_err(|_| KeyError::invalid("Ed25519 PRIVATE_KEY does not match its public key"))?;
            let key = Key::ed25519_private(pair, kid)?;
            if let Some(p) = public {
                if p.len() != 32 || !key.same_public(&Key::ed25519_public(&p, None)?) {
                    return Err(KeyError::invalid(
                        "PUBLIC_KEY and PRIVATE_KEY are not the same Ed25519 key",
                    ));
                }
            }
            Ok(key)
        }
        (None, Some(public)) => Key::ed25519_public(&public, kid),
        (None, None) => Err(KeyError::Format(
            "no PUBLIC_KEY or PRIVATE_KEY line found".into(),
        )),
    }
}

impl Key {
    /// ClusterCockpit's env form, as its gen-keypair tool prints it. Ed25519 only; the private
    /// line only when `private` is set.
    pub fn to_env(&self, private: bool) -> Result<String, KeyError> {
        let Material::Ed {
            x, private: pair, ..
        } = &self.material
        else {
            return Err(KeyError::Unsupported(format!(
                "the env form is for EdDSA (Ed25519) keys; this key is {}",
                self.alg
            )));
        };
        let mut out = format!("ED25519 PUBLIC_KEY=\"{}\"\n", STANDARD.encode(x));
        if private {
            let pair = pair.as_ref().ok_or_else(|| KeyError::NotPrivate {
                kid: self.kid.to_string(),
            })?;
            let seed = pair
                .seed()
                .and_then(|s| s.as_be_bytes())
                .map_err(|_| KeyError::invalid("could not export the Ed25519 seed"))?;
            let mut full = zeroize::Zeroizing::new(seed.as_ref().to_vec());
            full.extend_from_slice(x);
            out.push_str(&format!(
                "ED25519 PRIVATE_KEY=\"{}\"\n",
                STANDARD.encode(&*full)
            ));
        }
        Ok(out)
    }
}
