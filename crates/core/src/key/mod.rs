//! Keys bound to exactly one algorithm, parsed once when loaded, and the key sets that hold them.
//! Formats live in submodules: `pem` (PKCS#1, PKCS#8, SPKI, SEC1, X.509), `jwk` (RFC 7517),
//! `raw` (ClusterCockpit's base64 Ed25519 form, HMAC secrets), `thumbprint` (RFC 7638).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair,
};
use der::Encode;
use zeroize::Zeroizing;

use crate::alg::{Algorithm, Curve, KeyType};
use crate::error::KeyError;
use crate::jose::{Header, OwnHeader};

pub mod jwk;
pub mod pem;
pub mod raw;
pub mod thumbprint;

pub use jwk::{Jwk, Jwks};

/// Reads keys from text in any supported form, recognised by its shape: a JWK or JWKS (JSON),
/// PEM blocks, or the env form. `hint` supplies the algorithm where the text does not say it
/// (RSA keys; JWKs without `alg`); `kid` overrides the key id of a single key.
/// Returns the keys and the JWKS entries that could not be used.
pub fn parse_keys(
    text: &str,
    hint: Option<Algorithm>,
    kid: Option<String>,
) -> Result<(Vec<Key>, Vec<KeyError>), KeyError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed)
            .map_err(|e| KeyError::Format(format!("invalid JSON: {e}")))?;
        if value.get("keys").is_some() {
            let (keys, skipped) = Jwks::parse(trimmed)?.to_keys(hint);
            if kid.is_some() && keys.len() + skipped.len() > 1 {
                return Err(KeyError::invalid(
                    "a key id can be given only for a single key",
                ));
            }
            let keys = keys
                .into_iter()
                .map(|k| match &kid {
                    Some(kid) => k.with_kid(kid.clone()),
                    None => k,
                })
                .collect();
            return Ok((keys, skipped));
        }
        let mut jwk = Jwk::parse(trimmed)?;
        if kid.is_some() {
            jwk.kid = kid;
        }
        return Ok((vec![jwk.to_key(hint)?], Vec::new()));
    }
    if trimmed.contains("-----BEGIN ") {
        return Ok((pem::from_pem(text, hint, kid)?, Vec::new()));
    }
    if raw::looks_like_env(text) {
        if hint.is_some_and(|a| a != Algorithm::EdDSA) {
            return Err(KeyError::invalid(
                "the env form holds Ed25519 (EdDSA) keys only",
            ));
        }
        return Ok((vec![raw::from_env(text, kid)?], Vec::new()));
    }
    Err(KeyError::Format(
        "not a recognised key: expected PEM, a JWK or JWKS, or PUBLIC_KEY=/PRIVATE_KEY= lines \
         (for an HMAC secret in a plain file, give its algorithm)"
            .into(),
    ))
}

/// A signing or verification key. Its algorithm is fixed when it is built; a token naming any
/// other algorithm is refused before any cryptography runs.
pub struct Key {
    /// Shared, so a verification result can name its key without copying the id.
    kid: Arc<str>,
    alg: Algorithm,
    material: Material,
    /// The header jwtgate writes for this key; kept in step with `kid`.
    own_header: Option<OwnHeader>,
}

enum Material {
    Hmac {
        secret: Zeroizing<Vec<u8>>,
        // Boxed: an HMAC context is far larger than the other variants.
        key: Box<hmac::Key>,
    },
    Rsa {
        public: ParsedPublicKey,
        n: Vec<u8>,
        e: Vec<u8>,
        private: Option<Box<RsaKeyPair>>,
    },
    Ec {
        public: ParsedPublicKey,
        /// Uncompressed SEC1 point: 0x04 || x || y.
        point: Vec<u8>,
        private: Option<EcdsaKeyPair>,
    },
    Ed {
        public: ParsedPublicKey,
        x: Vec<u8>,
        private: Option<Ed25519KeyPair>,
    },
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints key material.
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &self.has_private())
            .finish()
    }
}

fn verification_alg(alg: Algorithm) -> &'static dyn signature::VerificationAlgorithm {
    match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::ES512 => &signature::ECDSA_P521_SHA512_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        // HMAC keys never reach here; the match must still be total.
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => &signature::ED25519,
    }
}

fn ecdsa_signing(curve: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        Curve::P256 | Curve::Ed25519 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

fn rsa_padding(alg: Algorithm) -> &'static dyn signature::RsaEncoding {
    match alg {
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => &signature::RSA_PKCS1_SHA256,
    }
}

fn hmac_alg(alg: Algorithm) -> hmac::Algorithm {
    match alg {
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => hmac::HMAC_SHA256,
    }
}

fn expect_type(alg: Algorithm, kty: KeyType, what: &str) -> Result<(), KeyError> {
    if alg.key_type() == kty {
        Ok(())
    } else {
        Err(KeyError::invalid(format!(
            "{what} cannot be used with {alg}"
        )))
    }
}

/// Minimum RSA modulus (RFC 7518 §3.3) and the largest aws-lc-rs verifies.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

impl Key {
    /// An HMAC key. Secrets shorter than the hash output are refused (RFC 7518 §3.2).
    pub fn hmac(alg: Algorithm, secret: &[u8], kid: Option<String>) -> Result<Key, KeyError> {
        expect_type(alg, KeyType::Oct, "an HMAC secret")?;
        if secret.len() < alg.hash_len() {
            return Err(KeyError::HmacTooShort {
                alg,
                len: secret.len(),
                min: alg.hash_len(),
            });
        }
        let material = Material::Hmac {
            secret: Zeroizing::new(secret.to_vec()),
            key: Box::new(hmac::Key::new(hmac_alg(alg), secret)),
        };
        Ok(Key::assemble(alg, material, kid))
    }

    /// An RSA public key from its modulus and exponent (big-endian).
    pub fn rsa_public(
        alg: Algorithm,
        n: &[u8],
        e: &[u8],
        kid: Option<String>,
    ) -> Result<Key, KeyError> {
        let material = rsa_material(alg, n, e, None)?;
        Ok(Key::assemble(alg, material, kid))
    }

    /// An RSA key pair.
    pub fn rsa_private(
        alg: Algorithm,
        pair: RsaKeyPair,
        kid: Option<String>,
    ) -> Result<Key, KeyError> {
        let pkcs1 = pair.public_key().as_ref().to_vec();
        let public = pkcs1::RsaPublicKey::try_from(pkcs1.as_slice())
            .map_err(|e| KeyError::invalid(format!("RSA public key: {e}")))?;
        let (n, e) = (
            public.modulus.as_bytes().to_vec(),
            public.public_exponent.as_bytes().to_vec(),
        );
        let material = rsa_material(alg, &n, &e, Some(Box::new(pair)))?;
        Ok(Key::assemble(alg, material, kid))
    }

    /// An EC public key from its uncompressed SEC1 point.
    pub fn ec_public(alg: Algorithm, point: &[u8], kid: Option<String>) -> Result<Key, KeyError> {
        expect_type(alg, KeyType::Ec, "an EC key")?;
        let curve = alg.curve().unwrap_or(Curve::P256);
        if point.len() != 1 + 2 * curve.coordinate_len() || point[0] != 4 {
            return Err(KeyError::invalid(format!(
                "EC public key is not an uncompressed {curve} point"
            )));
        }
        let public = ParsedPublicKey::new(verification_alg(alg), point)
            .map_err(|e| KeyError::invalid(format!("EC public key rejected: {e}")))?;
        let material = Material::Ec {
            public,
            point: point.to_vec(),
            private: None,
        };
        Ok(Key::assemble(alg, material, kid))
    }

    /// An EC key pair. The algorithm follows from the curve.
    pub fn ec_private(pair: EcdsaKeyPair, kid: Option<String>) -> Result<Key, KeyError> {
        let alg = [Curve::P256, Curve::P384, Curve::P521]
            .into_iter()
            // By value: these are consts, whose addresses differ between crates in optimised
            // builds (a release-only bug once made every EC key pair "unexpected").
            .find(|c| ecdsa_signing(*c) == pair.algorithm())
            .map(Curve::algorithm)
            .ok_or_else(|| {
                KeyError::Unsupported("EC key pair with an unexpected algorithm".into())
            })?;
        let point = pair.public_key().as_ref().to_vec();
        let public = ParsedPublicKey::new(verification_alg(alg), &point)
            .map_err(|e| KeyError::invalid(format!("EC public key rejected: {e}")))?;
        let material = Material::Ec {
            public,
            point,
            private: Some(pair),
        };
        Ok(Key::assemble(alg, material, kid))
    }

    /// An Ed25519 public key (32 raw bytes).
    pub fn ed25519_public(x: &[u8], kid: Option<String>) -> Result<Key, KeyError> {
        if x.len() != 32 {
            return Err(KeyError::invalid(format!(
                "Ed25519 public key must be 32 bytes, got {}",
                x.len()
            )));
        }
        let public = ParsedPublicKey::new(&signature::ED25519, x)
            .map_err(|e| KeyError::invalid(format!("Ed25519 public key rejected: {e}")))?;
        let material = Material::Ed {
            public,
            x: x.to_vec(),
            private: None,
        };
        Ok(Key::assemble(Algorithm::EdDSA, material, kid))
    }

    /// An Ed25519 key pair.
    pub fn ed25519_private(pair: Ed25519KeyPair, kid: Option<String>) -> Result<Key, KeyError> {
        let x = pair.public_key().as_ref().to_vec();
        let public = ParsedPublicKey::new(&signature::ED25519, &x)
            .map_err(|e| KeyError::invalid(format!("Ed25519 public key rejected: {e}")))?;
        let material = Material::Ed {
            public,
            x,
            private: Some(pair),
        };
        Ok(Key::assemble(Algorithm::EdDSA, material, kid))
    }

    /// Generates a new key for `alg`. `bits` sets the RSA modulus (default 2048) or the HMAC
    /// secret length (default: the hash length); other kinds have a fixed size.
    pub fn generate(
        alg: Algorithm,
        bits: Option<usize>,
        kid: Option<String>,
    ) -> Result<Key, KeyError> {
        let failed = |what: &str| KeyError::invalid(format!("could not generate {what} key"));
        match alg.key_type() {
            KeyType::Oct => {
                let bits = bits.unwrap_or(alg.hash_len() * 8);
                if !bits.is_multiple_of(8) {
                    return Err(KeyError::invalid(format!(
                        "HMAC key size must be a multiple of 8 bits, got {bits}"
                    )));
                }
                let mut secret = Zeroizing::new(vec![0u8; bits / 8]);
                aws_lc_rs::rand::fill(&mut secret).map_err(|_| failed("HMAC"))?;
                Key::hmac(alg, &secret, kid)
            }
            KeyType::Rsa => {
                let size = match bits.unwrap_or(2048) {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    8192 => KeySize::Rsa8192,
                    other => {
                        return Err(KeyError::invalid(format!(
                            "RSA key size must be 2048, 3072, 4096 or 8192 bits, got {other}"
                        )))
                    }
                };
                let pair = RsaKeyPair::generate(size).map_err(|_| failed("RSA"))?;
                Key::rsa_private(alg, pair, kid)
            }
            KeyType::Ec => {
                let curve = alg.curve().unwrap_or(Curve::P256);
                check_fixed_size(bits, curve.bits(), alg)?;
                let pair =
                    EcdsaKeyPair::generate(ecdsa_signing(curve)).map_err(|_| failed("EC"))?;
                Key::ec_private(pair, kid)
            }
            KeyType::Okp => {
                check_fixed_size(bits, Curve::Ed25519.bits(), alg)?;
                let pair = Ed25519KeyPair::generate().map_err(|_| failed("Ed25519"))?;
                Key::ed25519_private(pair, kid)
            }
        }
    }

    fn assemble(alg: Algorithm, material: Material, kid: Option<String>) -> Key {
        let key = Key {
            kid: Arc::from(""),
            alg,
            material,
            own_header: None,
        };
        let kid = kid.unwrap_or_else(|| key.thumbprint());
        key.with_kid(kid)
    }

    /// The header jwtgate writes for this key, encoded and parsed.
    pub(crate) fn own_header(&self) -> Option<&OwnHeader> {
        self.own_header.as_ref()
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key id as a shared string: for results that outlive a borrow of the key.
    pub fn kid_shared(&self) -> Arc<str> {
        Arc::clone(&self.kid)
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn key_type(&self) -> KeyType {
        self.alg.key_type()
    }

    /// Whether this key can sign (holds a private key or a shared secret).
    pub fn has_private(&self) -> bool {
        match &self.material {
            Material::Hmac { .. } => true,
            Material::Rsa { private, .. } => private.is_some(),
            Material::Ec { private, .. } => private.is_some(),
            Material::Ed { private, .. } => private.is_some(),
        }
    }

    /// Whether this is a symmetric key, whose material is secret in every form.
    pub fn is_symmetric(&self) -> bool {
        matches!(self.material, Material::Hmac { .. })
    }

    /// Replaces the key id.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Key {
        self.kid = Arc::from(kid.into());
        self.own_header = OwnHeader::new(self.alg, &self.kid);
        self
    }

    /// RSA modulus size in bits, for RSA keys.
    pub fn rsa_bits(&self) -> Option<usize> {
        match &self.material {
            Material::Rsa { n, .. } => Some(bit_len(n)),
            _ => None,
        }
    }

    /// Checks `signature` over `message` with this key's algorithm. The caller has already
    /// checked that the token's `alg` equals `self.alg()`.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac { key, .. } => hmac::verify(key, message, signature).is_ok(),
            Material::Rsa { public, .. }
            | Material::Ec { public, .. }
            | Material::Ed { public, .. } => public.verify_sig(message, signature).is_ok(),
        }
    }

    /// Signs `message`, giving the JWS signature bytes (raw R||S for ECDSA).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let not_private = || KeyError::NotPrivate {
            kid: self.kid.to_string(),
        };
        let failed = || KeyError::invalid(format!("signing with key '{}' failed", self.kid));
        match &self.material {
            Material::Hmac { key, .. } => Ok(hmac::sign(key, message).as_ref().to_vec()),
            Material::Rsa { private, .. } => {
                let pair = private.as_ref().ok_or_else(not_private)?;
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    rsa_padding(self.alg),
                    &SystemRandom::new(),
                    message,
                    &mut sig,
                )
                .map_err(|_| failed())?;
                Ok(sig)
            }
            Material::Ec { private, .. } => {
                let pair = private.as_ref().ok_or_else(not_private)?;
                let sig = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| failed())?;
                Ok(sig.as_ref().to_vec())
            }
            Material::Ed { private, .. } => {
                let pair = private.as_ref().ok_or_else(not_private)?;
                Ok(pair.sign(message).as_ref().to_vec())
            }
        }
    }

    /// The public half of an asymmetric key; `None` for HMAC keys, which have no public half.
    pub fn public_key(&self) -> Option<Key> {
        let kid = Some(self.kid.to_string());
        let key = match &self.material {
            Material::Hmac { .. } => return None,
            Material::Rsa { n, e, .. } => Key::rsa_public(self.alg, n, e, kid),
            Material::Ec { point, .. } => Key::ec_public(self.alg, point, kid),
            Material::Ed { x, .. } => Key::ed25519_public(x, kid),
        };
        key.ok()
    }

    /// DER SubjectPublicKeyInfo of an asymmetric key.
    pub fn spki_der(&self) -> Option<Vec<u8>> {
        match &self.material {
            Material::Hmac { .. } => None,
            Material::Rsa { public, .. }
            | Material::Ec { public, .. }
            | Material::Ed { public, .. } => public.as_der().ok().map(|d| d.as_ref().to_vec()),
        }
    }

    /// Same key material and algorithm (ignores `kid` and whether the private part is held).
    pub fn same_public(&self, other: &Key) -> bool {
        self.alg == other.alg
            && crate::ct_eq(self.thumbprint().as_bytes(), other.thumbprint().as_bytes())
    }
}

fn check_fixed_size(bits: Option<usize>, fixed: usize, alg: Algorithm) -> Result<(), KeyError> {
    match bits {
        Some(b) if b != fixed => Err(KeyError::invalid(format!(
            "{alg} keys are {fixed} bits; --size {b} does not apply"
        ))),
        _ => Ok(()),
    }
}

fn bit_len(be: &[u8]) -> usize {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    match trimmed.first() {
        None => 0,
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
    }
}

fn rsa_material(
    alg: Algorithm,
    n: &[u8],
    e: &[u8],
    private: Option<Box<RsaKeyPair>>,
) -> Result<Material, KeyError> {
    expect_type(alg, KeyType::Rsa, "an RSA key")?;
    let bits = bit_len(n);
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(KeyError::invalid(format!(
            "RSA key is {bits} bits; {RSA_MIN_BITS} to {RSA_MAX_BITS} are accepted"
        )));
    }
    let der = pkcs1::RsaPublicKey {
        modulus: pkcs1::UintRef::new(n).map_err(|e| KeyError::invalid(format!("RSA n: {e}")))?,
        public_exponent: pkcs1::UintRef::new(e)
            .map_err(|e| KeyError::invalid(format!("RSA e: {e}")))?,
    }
    .to_der()
    .map_err(|e| KeyError::invalid(format!("RSA public key: {e}")))?;
    let public = ParsedPublicKey::new(verification_alg(alg), &der)
        .map_err(|e| KeyError::invalid(format!("RSA public key rejected: {e}")))?;
    let strip = |b: &[u8]| {
        b.iter()
            .copied()
            .skip_while(|x| *x == 0)
            .collect::<Vec<u8>>()
    };
    Ok(Material::Rsa {
        public,
        n: strip(n),
        e: strip(e),
        private,
    })
}

/// The keys a verifier accepts, one of which may be the active signing key.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    active: Option<usize>,
}

impl KeySet {
    /// Builds a set. Two keys may share a `kid` only when they are the same key (for instance a
    /// private key and its certificate); the private one is kept.
    pub fn new(keys: impl IntoIterator<Item = Key>) -> Result<KeySet, KeyError> {
        let mut set = KeySet::default();
        for key in keys {
            set.insert(key)?;
        }
        Ok(set)
    }

    pub fn insert(&mut self, key: Key) -> Result<(), KeyError> {
        if let Some(pos) = self.keys.iter().position(|k| k.kid == key.kid) {
            let existing = &self.keys[pos];
            if !existing.same_public(&key) {
                return Err(KeyError::invalid(format!(
                    "two different keys have the key id '{}'",
                    key.kid
                )));
            }
            if key.has_private() && !existing.has_private() {
                self.keys[pos] = key;
            }
            return Ok(());
        }
        self.keys.push(key);
        Ok(())
    }

    pub fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| &*k.kid == kid)
    }

    /// The parsed header, when `segment` is exactly the header jwtgate writes for one of
    /// these keys.
    pub(crate) fn own_header(&self, segment: &str) -> Option<Arc<Header>> {
        self.keys
            .iter()
            .filter_map(Key::own_header)
            .find(|own| *own.segment == *segment)
            .map(|own| Arc::clone(&own.header))
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Makes the key `kid` the one new tokens are signed with.
    pub fn set_active(&mut self, kid: &str) -> Result<(), KeyError> {
        let pos = self
            .keys
            .iter()
            .position(|k| &*k.kid == kid)
            .ok_or_else(|| KeyError::invalid(format!("no key with id '{kid}'")))?;
        if !self.keys[pos].has_private() {
            return Err(KeyError::NotPrivate { kid: kid.into() });
        }
        self.active = Some(pos);
        Ok(())
    }

    /// The signing key: the one set active, else the only key that can sign.
    pub fn active(&self) -> Option<&Key> {
        if let Some(pos) = self.active {
            return self.keys.get(pos);
        }
        let mut signers = self.keys.iter().filter(|k| k.has_private());
        match (signers.next(), signers.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// The public JWKS (RFC 7517 §5): asymmetric public keys only; HMAC secrets never appear.
    pub fn public_jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys.iter().filter_map(|k| k.to_jwk(false)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secrets_are_refused() {
        for (alg, min) in [
            (Algorithm::HS256, 32),
            (Algorithm::HS384, 48),
            (Algorithm::HS512, 64),
        ] {
            assert_eq!(
                Key::hmac(alg, &vec![7u8; min - 1], None).unwrap_err(),
                KeyError::HmacTooShort {
                    alg,
                    len: min - 1,
                    min
                }
            );
            assert!(Key::hmac(alg, &vec![7u8; min], None).is_ok());
        }
    }

    #[test]
    fn every_algorithm_generates_signs_and_verifies() {
        for alg in Algorithm::ALL {
            let key = Key::generate(alg, None, None).unwrap();
            assert_eq!(key.alg(), alg);
            let sig = key.sign(b"message").unwrap();
            assert!(key.verify_signature(b"message", &sig), "{alg}");
            assert!(!key.verify_signature(b"messagf", &sig), "{alg}");
            if let Some(public) = key.public_key() {
                assert!(public.verify_signature(b"message", &sig), "{alg}");
                assert!(!public.has_private());
                assert_eq!(public.kid(), key.kid());
                assert!(matches!(
                    public.sign(b"m"),
                    Err(KeyError::NotPrivate { .. })
                ));
            }
        }
    }

    #[test]
    fn rsa_keys_outside_2048_to_8192_bits_are_refused() {
        let mut n1024 = vec![0xC5u8; 128];
        n1024[127] |= 1;
        let err = Key::rsa_public(Algorithm::RS256, &n1024, &[1, 0, 1], None).unwrap_err();
        assert_eq!(
            err,
            KeyError::Invalid("RSA key is 1024 bits; 2048 to 8192 are accepted".into())
        );
        let mut n2048 = vec![0xC5u8; 256];
        n2048[255] |= 1;
        assert!(Key::rsa_public(Algorithm::RS256, &n2048, &[1, 0, 1], None).is_ok());
    }

    #[test]
    fn public_jwks_holds_public_members_of_asymmetric_keys_only() {
        let set = KeySet::new([
            Key::generate(Algorithm::HS256, None, Some("h".into())).unwrap(),
            Key::generate(Algorithm::ES256, None, Some("e".into())).unwrap(),
            Key::generate(Algorithm::EdDSA, None, Some("o".into())).unwrap(),
        ])
        .unwrap();
        let jwks = set.public_jwks();
        let kids: Vec<_> = jwks.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["e", "o"]);
        for jwk in &jwks.keys {
            assert!(jwk.d.is_none() && jwk.k.is_none());
        }
    }

    #[test]
    fn debug_output_never_shows_material() {
        let key = Key::hmac(Algorithm::HS256, &[0x41; 32], Some("k".into())).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains("AAAA") && !shown.contains("65"), "{shown}");
    }

    #[test]
    fn key_set_keeps_the_private_twin_and_refuses_kid_clashes() {
        let key = Key::generate(Algorithm::ES256, None, None).unwrap();
        let public = key.public_key().unwrap();
        let kid = key.kid().to_string();
        let set = KeySet::new([public, key]).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get(&kid).unwrap().has_private());
        let a = Key::generate(Algorithm::ES256, None, Some("same".into())).unwrap();
        let b = Key::generate(Algorithm::ES256, None, Some("same".into())).unwrap();
        assert!(KeySet::new([a, b]).is_err());
    }
}
