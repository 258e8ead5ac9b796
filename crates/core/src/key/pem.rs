//! PEM and DER key forms: PKCS#8 and PKCS#1 private keys, SEC1 EC private keys, SPKI and
//! PKCS#1 public keys, and X.509 certificates (their public key). Encrypted keys are refused.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use der::Decode;
use spki::ObjectIdentifier;

use super::{ecdsa_signing, Key, Material};
use crate::alg::{Algorithm, Curve, KeyType};
use crate::error::KeyError;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

/// Which key a DER structure holds, before it is built.
enum Kind {
    Rsa,
    Ec(Curve),
    Ed25519,
}

fn kind_of(oid: ObjectIdentifier, params: Option<ObjectIdentifier>) -> Result<Kind, KeyError> {
    match oid {
        RSA_ENCRYPTION => Ok(Kind::Rsa),
        ED25519 => Ok(Kind::Ed25519),
        EC_PUBLIC_KEY => match params {
            Some(P256) => Ok(Kind::Ec(Curve::P256)),
            Some(P384) => Ok(Kind::Ec(Curve::P384)),
            Some(P521) => Ok(Kind::Ec(Curve::P521)),
            Some(other) => Err(KeyError::Unsupported(format!(
                "unsupported EC curve {other}"
            ))),
            None => Err(KeyError::invalid("EC key does not name its curve")),
        },
        other => Err(KeyError::Unsupported(format!(
            "unsupported key algorithm {other}"
        ))),
    }
}

/// Resolves the algorithm for a key of `kind` given the caller's hint.
fn algorithm(kind: &Kind, hint: Option<Algorithm>) -> Result<Algorithm, KeyError> {
    let (implied, kty, what) = match kind {
        Kind::Rsa => (None, KeyType::Rsa, "an RSA key"),
        Kind::Ec(curve) => (Some(curve.algorithm()), KeyType::Ec, "an EC key"),
        Kind::Ed25519 => (Some(Algorithm::EdDSA), KeyType::Okp, "an Ed25519 key"),
    };
    match (implied, hint) {
        (_, Some(h)) if h.key_type() != kty => {
            Err(KeyError::invalid(format!("{what} cannot be used with {h}")))
        }
        (Some(i), Some(h)) if i != h => Err(KeyError::invalid(format!(
            "{what} on this curve is for {i}, not {h}"
        ))),
        (Some(alg), _) | (None, Some(alg)) => Ok(alg),
        (None, None) => Err(KeyError::AlgorithmNeeded {
            what: "an RSA key",
            example: "RS256",
        }),
    }
}

fn der_error(what: &str) -> impl Fn(der::Error) -> KeyError + '_ {
    move |e| KeyError::Format(format!("{what}: {e}"))
}

/// A private key in PKCS#8 DER.
pub fn from_pkcs8(
    der: &[u8],
    hint: Option<Algorithm>,
    kid: Option<String>,
) -> Result<Key, KeyError> {
    let info = pkcs8::PrivateKeyInfo::try_from(der)
        .map_err(|e| KeyError::Format(format!("PKCS#8 private key: {e}")))?;
    let params = info.algorithm.parameters_oid().ok();
    let kind = kind_of(info.algorithm.oid, params)?;
    let alg = algorithm(&kind, hint)?;
    let rejected =
        |e: aws_lc_rs::error::KeyRejected| KeyError::invalid(format!("private key rejected: {e}"));
    match kind {
        Kind::Rsa => Key::rsa_private(alg, RsaKeyPair::from_pkcs8(der).map_err(rejected)?, kid),
        Kind::Ec(curve) => Key::ec_private(
            EcdsaKeyPair::from_pkcs8(ecdsa_signing(curve), der).map_err(rejected)?,
            kid,
        ),
        Kind::Ed25519 => Key::ed25519_private(
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?,
            kid,
        ),
    }
}

/// A public key in SubjectPublicKeyInfo DER.
pub fn from_spki(
    der: &[u8],
    hint: Option<Algorithm>,
    kid: Option<String>,
) -> Result<Key, KeyError> {
    let info = spki::SubjectPublicKeyInfoRef::try_from(der)
        .map_err(|e| KeyError::Format(format!("public key: {e}")))?;
    let params = info.algorithm.parameters_oid().ok();
    let kind = kind_of(info.algorithm.oid, params)?;
    let alg = algorithm(&kind, hint)?;
    let bits = info
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| KeyError::invalid("public key bit string has unused bits"))?;
    match kind {
        Kind::Rsa => from_pkcs1_public(bits, alg, kid),
        Kind::Ec(_) => Key::ec_public(alg, bits, kid),
        Kind::Ed25519 => Key::ed25519_public(bits, kid),
    }
}

fn from_pkcs1_public(der: &[u8], alg: Algorithm, kid: Option<String>) -> Result<Key, KeyError> {
    let rsa = pkcs1::RsaPublicKey::try_from(der)
        .map_err(|e| KeyError::Format(format!("RSA public key: {e}")))?;
    Key::rsa_public(
        alg,
        rsa.modulus.as_bytes(),
        rsa.public_exponent.as_bytes(),
        kid,
    )
}

/// Reads every key in a PEM text. Unrelated blocks (e.g. EC PARAMETERS) are skipped.
pub fn from_pem(
    text: &str,
    hint: Option<Algorithm>,
    kid: Option<String>,
) -> Result<Vec<Key>, KeyError> {
    let blocks = ::pem::parse_many(text).map_err(|e| KeyError::Format(format!("PEM: {e}")))?;
    let mut keys = Vec::new();
    for block in &blocks {
        let der = block.contents();
        let kid = kid.clone();
        let key = match block.tag() {
            "PRIVATE KEY" => from_pkcs8(der, hint, kid)?,
            "RSA PRIVATE KEY" => {
                let alg = algorithm(&Kind::Rsa, hint)?;
                let pair = RsaKeyPair::from_der(der)
                    .map_err(|e| KeyError::invalid(format!("RSA private key rejected: {e}")))?;
                Key::rsa_private(alg, pair, kid)?
            }
            "EC PRIVATE KEY" => from_sec1(der, hint, kid)?,
            "PUBLIC KEY" => from_spki(der, hint, kid)?,
            "RSA PUBLIC KEY" => from_pkcs1_public(der, algorithm(&Kind::Rsa, hint)?, kid)?,
            "CERTIFICATE" => {
                let cert = x509_cert::Certificate::from_der(der).map_err(der_error("certificate"))?;
                let spki = der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info)
                    .map_err(der_error("certificate public key"))?;
                from_spki(&spki, hint, kid)?
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError::Unsupported(
                    "encrypted private keys are not supported; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)".into(),
                ))
            }
            _ => continue,
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::Format("no key found in the PEM text".into()));
    }
    Ok(keys)
}

/// An EC private key in SEC1 (RFC 5915) DER; the curve is found by trying each one.
fn from_sec1(der: &[u8], hint: Option<Algorithm>, kid: Option<String>) -> Result<Key, KeyError> {
    let curves = match hint {
        Some(alg) => vec![alg
            .curve()
            .filter(|_| alg.key_type() == KeyType::Ec)
            .ok_or_else(|| KeyError::invalid(format!("an EC key cannot be used with {alg}")))?],
        None => vec![Curve::P256, Curve::P384, Curve::P521],
    };
    for curve in curves {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(ecdsa_signing(curve), der) {
            return Key::ec_private(pair, kid);
        }
    }
    Err(KeyError::invalid(
        "EC private key is not a valid P-256, P-384 or P-521 key for the requested algorithm",
    ))
}

impl Key {
    /// PEM: the private key as PKCS#8 when `private` is set, otherwise the SPKI public key.
    /// HMAC secrets have no PEM form.
    pub fn to_pem(&self, private: bool) -> Result<String, KeyError> {
        let not_private = || KeyError::NotPrivate {
            kid: self.kid.to_string(),
        };
        let failed = || KeyError::invalid("could not encode the key");
        let (tag, der) = match (&self.material, private) {
            (Material::Hmac { .. }, _) => {
                return Err(KeyError::Unsupported(
                    "HMAC secrets have no PEM form; use --format jwk or jwks".into(),
                ))
            }
            (_, false) => ("PUBLIC KEY", self.spki_der().ok_or_else(failed)?),
            (Material::Rsa { private, .. }, true) => {
                let pair = private.as_ref().ok_or_else(not_private)?;
                (
                    "PRIVATE KEY",
                    pair.as_der().map_err(|_| failed())?.as_ref().to_vec(),
                )
            }
            (Material::Ec { private, .. }, true) => {
                let pair = private.as_ref().ok_or_else(not_private)?;
                (
                    "PRIVATE KEY",
                    pair.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec(),
                )
            }
            (Material::Ed { private, .. }, true) => {
                let pair = private.as_ref().ok_or_else(not_private)?;
                (
                    "PRIVATE KEY",
                    pair.to_pkcs8v1().map_err(|_| failed())?.as_ref().to_vec(),
                )
            }
        };
        let der = zeroize::Zeroizing::new(der);
        let config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
        Ok(::pem::encode_config(
            &::pem::Pem::new(tag, der.to_vec()),
            config,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asymmetric_kind_round_trips_through_pem() {
        for alg in Algorithm::ALL
            .into_iter()
            .filter(|a| a.key_type() != KeyType::Oct)
        {
            let key = Key::generate(alg, None, None).unwrap();
            let hint = (alg.key_type() == KeyType::Rsa).then_some(alg);
            let private = from_pem(&key.to_pem(true).unwrap(), hint, None).unwrap();
            assert_eq!(private.len(), 1);
            assert!(private[0].has_private(), "{alg}");
            assert_eq!(private[0].kid(), key.kid());
            let public = from_pem(&key.to_pem(false).unwrap(), hint, None).unwrap();
            assert!(!public[0].has_private());
            let sig = private[0].sign(b"m").unwrap();
            assert!(public[0].verify_signature(b"m", &sig), "{alg}");
        }
    }

    #[test]
    fn rsa_pem_needs_an_algorithm_and_hmac_has_no_pem() {
        let key = Key::generate(Algorithm::RS256, None, None).unwrap();
        assert!(matches!(
            from_pem(&key.to_pem(false).unwrap(), None, None),
            Err(KeyError::AlgorithmNeeded { .. })
        ));
        let hmac = Key::generate(Algorithm::HS256, None, None).unwrap();
        assert!(matches!(hmac.to_pem(true), Err(KeyError::Unsupported(_))));
    }

    #[test]
    fn pem_without_keys_and_encrypted_keys_are_refused() {
        assert!(matches!(
            from_pem("hello", None, None),
            Err(KeyError::Format(_))
        ));
        let enc =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            from_pem(enc, None, None),
            Err(KeyError::Unsupported(_))
        ));
    }
}
