//! JSON Web Keys and key sets (RFC 7517, members from RFC 7518 §6 and RFC 8037 §2).
//! Private members are written only when the caller asks for them, and never for a public JWKS.

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{ecdsa_signing, Key, Material};
use crate::alg::{Algorithm, Curve, KeyType};
use crate::error::KeyError;
use crate::jose::BASE64URL;

/// One JWK. Unknown members are ignored on input. `Debug` hides private members.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oth: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<String>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let private = [
            &self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi, &self.k,
        ]
        .iter()
        .any(|m| m.is_some());
        f.debug_struct("Jwk")
            .field("kty", &self.kty)
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("crv", &self.crv)
            .field("private", &private)
            .finish_non_exhaustive()
    }
}

/// A JWK Set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    pub fn parse(json: &str) -> Result<Jwk, KeyError> {
        serde_json::from_str(json).map_err(|e| KeyError::Format(format!("invalid JWK: {e}")))
    }

    fn label(&self) -> String {
        match &self.kid {
            Some(kid) => format!("JWK '{kid}'"),
            None => format!("{} JWK", self.kty),
        }
    }

    fn member(&self, name: &str, value: &Option<String>) -> Result<Vec<u8>, KeyError> {
        let text = value
            .as_deref()
            .ok_or_else(|| KeyError::invalid(format!("{} has no '{name}' member", self.label())))?;
        BASE64URL.decode(text).map_err(|_| {
            KeyError::invalid(format!(
                "{} member '{name}' is not unpadded base64url",
                self.label()
            ))
        })
    }

    /// The algorithm this JWK is for: its `alg` member, the caller's `hint`, or the one its
    /// curve implies. Conflicts and guesses are refused.
    fn algorithm(&self, kty: KeyType, hint: Option<Algorithm>) -> Result<Algorithm, KeyError> {
        let own = match &self.alg {
            None => None,
            Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
                KeyError::Unsupported(format!("{} has unsupported alg '{name}'", self.label()))
            })?),
        };
        let implied = self
            .crv
            .as_deref()
            .and_then(Curve::from_name)
            .map(Curve::algorithm);
        let alg = match (own, hint) {
            (Some(own), Some(hint)) if own != hint => {
                return Err(KeyError::AlgorithmConflict {
                    kid: self.kid.clone().unwrap_or_default(),
                    bound: own,
                    requested: hint,
                })
            }
            (Some(alg), _) | (None, Some(alg)) => alg,
            (None, None) => implied.ok_or(KeyError::AlgorithmNeeded {
                what: if kty == KeyType::Rsa {
                    "an RSA JWK"
                } else {
                    "an oct JWK"
                },
                example: if kty == KeyType::Rsa {
                    "RS256"
                } else {
                    "HS256"
                },
            })?,
        };
        if alg.key_type() != kty {
            return Err(KeyError::invalid(format!(
                "{} has kty '{}', which cannot be used with {alg}",
                self.label(),
                self.kty
            )));
        }
        Ok(alg)
    }

    /// Builds a key. A JWK with private members gives a key that can sign.
    pub fn to_key(&self, hint: Option<Algorithm>) -> Result<Key, KeyError> {
        if let Some(u) = self.use_.as_deref() {
            if u != "sig" {
                return Err(KeyError::Unsupported(format!(
                    "{} has use '{u}', not 'sig'",
                    self.label()
                )));
            }
        }
        if let Some(ops) = &self.key_ops {
            if !ops.iter().any(|o| o == "sign" || o == "verify") {
                return Err(KeyError::Unsupported(format!(
                    "{} allows neither 'sign' nor 'verify'",
                    self.label()
                )));
            }
        }
        let kid = self.kid.clone();
        match self.kty.as_str() {
            "oct" => {
                let alg = self.algorithm(KeyType::Oct, hint)?;
                Key::hmac(
                    alg,
                    &zeroize::Zeroizing::new(self.member("k", &self.k)?),
                    kid,
                )
            }
            "RSA" => {
                let alg = self.algorithm(KeyType::Rsa, hint)?;
                let (n, e) = (self.member("n", &self.n)?, self.member("e", &self.e)?);
                if self.d.is_none() {
                    return Key::rsa_public(alg, &n, &e, kid);
                }
                if self.oth.is_some() {
                    return Err(KeyError::Unsupported(format!(
                        "{} is a multi-prime RSA key ('oth'); only two-prime keys are supported",
                        self.label()
                    )));
                }
                let secret = |name, v| self.member(name, v).map(zeroize::Zeroizing::new);
                let components = KeyPairComponents {
                    public_key: PublicKeyComponents {
                        n: &n[..],
                        e: &e[..],
                    },
                    d: secret("d", &self.d)?,
                    p: secret("p", &self.p)?,
                    q: secret("q", &self.q)?,
                    dP: secret("dp", &self.dp)?,
                    dQ: secret("dq", &self.dq)?,
                    qInv: secret("qi", &self.qi)?,
                };
                let pair = RsaKeyPair::from_components(&components).map_err(|e| {
                    KeyError::invalid(format!("{} is not a consistent RSA key: {e}", self.label()))
                })?;
                Key::rsa_private(alg, pair, kid)
            }
            "EC" => {
                let alg = self.algorithm(KeyType::Ec, hint)?;
                let curve = alg.curve().unwrap_or(Curve::P256);
                if self.crv.as_deref() != Some(curve.name()) {
                    return Err(KeyError::invalid(format!(
                        "{} has crv {:?}; {alg} needs {curve}",
                        self.label(),
                        self.crv.as_deref().unwrap_or("(none)")
                    )));
                }
                let (x, y) = (self.member("x", &self.x)?, self.member("y", &self.y)?);
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return Err(KeyError::invalid(format!(
                        "{} coordinates must be {len} bytes for {curve}",
                        self.label()
                    )));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if self.d.is_none() {
                    return Key::ec_public(alg, &point, kid);
                }
                let d = zeroize::Zeroizing::new(self.member("d", &self.d)?);
                let pair =
                    EcdsaKeyPair::from_private_key_and_public_key(ecdsa_signing(curve), &d, &point)
                        .map_err(|e| {
                            KeyError::invalid(format!(
                                "{} is not a consistent EC key: {e}",
                                self.label()
                            ))
                        })?;
                Key::ec_private(pair, kid)
            }
            "OKP" => {
                let alg = self.algorithm(KeyType::Okp, hint)?;
                if self.crv.as_deref() != Some("Ed25519") {
                    return Err(KeyError::Unsupported(format!(
                        "{} has crv {:?}; only Ed25519 is supported for {alg}",
                        self.label(),
                        self.crv.as_deref().unwrap_or("(none)")
                    )));
                }
                let x = self.member("x", &self.x)?;
                if self.d.is_none() {
                    return Key::ed25519_public(&x, kid);
                }
                let d = zeroize::Zeroizing::new(self.member("d", &self.d)?);
                let pair = Ed25519KeyPair::from_seed_and_public_key(&d, &x).map_err(|_| {
                    KeyError::invalid(format!("{} is not a consistent Ed25519 key", self.label()))
                })?;
                Key::ed25519_private(pair, kid)
            }
            other => Err(KeyError::Unsupported(format!("unsupported kty '{other}'"))),
        }
    }
}

impl Jwks {
    pub fn parse(json: &str) -> Result<Jwks, KeyError> {
        serde_json::from_str(json).map_err(|e| KeyError::Format(format!("invalid JWKS: {e}")))
    }

    /// Builds every key; the keys that cannot be used come back as errors beside the rest, so a
    /// caller can decide whether one bad entry spoils the set.
    pub fn to_keys(&self, hint: Option<Algorithm>) -> (Vec<Key>, Vec<KeyError>) {
        let mut keys = Vec::new();
        let mut errors = Vec::new();
        for jwk in &self.keys {
            match jwk.to_key(hint) {
                Ok(k) => keys.push(k),
                Err(e) => errors.push(e),
            }
        }
        (keys, errors)
    }

    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl Key {
    /// This key as a JWK. Private members (`d`, `p`, …, `k`) only when `private` is set; for an
    /// HMAC key without `private` there is nothing public to show, so the result is `None`.
    pub fn to_jwk(&self, private: bool) -> Option<Jwk> {
        let b64 = |b: &[u8]| Some(BASE64URL.encode(b));
        let mut jwk = Jwk {
            use_: Some("sig".into()),
            alg: Some(self.alg.name().into()),
            kid: Some(self.kid.to_string()),
            ..Jwk::default()
        };
        match &self.material {
            Material::Hmac { secret, .. } => {
                if !private {
                    return None;
                }
                jwk.kty = "oct".into();
                jwk.k = b64(secret);
            }
            Material::Rsa {
                n,
                e,
                private: pair,
                ..
            } => {
                jwk.kty = "RSA".into();
                jwk.n = b64(n);
                jwk.e = b64(e);
                if let (true, Some(pair)) = (private, pair) {
                    let der = pair.as_der().ok()?;
                    let info = pkcs8::PrivateKeyInfo::try_from(der.as_ref()).ok()?;
                    let rsa = pkcs1::RsaPrivateKey::try_from(info.private_key).ok()?;
                    jwk.d = b64(rsa.private_exponent.as_bytes());
                    jwk.p = b64(rsa.prime1.as_bytes());
                    jwk.q = b64(rsa.prime2.as_bytes());
                    jwk.dp = b64(rsa.exponent1.as_bytes());
                    jwk.dq = b64(rsa.exponent2.as_bytes());
                    jwk.qi = b64(rsa.coefficient.as_bytes());
                }
            }
            Material::Ec {
                point,
                private: pair,
                ..
            } => {
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                jwk.kty = "EC".into();
                jwk.crv = self.alg.curve().map(|c| c.name().into());
                jwk.x = b64(x);
                jwk.y = b64(y);
                if let (true, Some(pair)) = (private, pair) {
                    let d = pair.private_key().as_be_bytes().ok()?;
                    jwk.d = b64(d.as_ref());
                }
            }
            Material::Ed {
                x, private: pair, ..
            } => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = b64(x);
                if let (true, Some(pair)) = (private, pair) {
                    let seed = pair.seed().and_then(|s| s.as_be_bytes()).ok()?;
                    jwk.d = b64(seed.as_ref());
                }
            }
        }
        Some(jwk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_jwk_with_and_without_private_members() {
        for alg in Algorithm::ALL {
            let key = Key::generate(alg, None, None).unwrap();
            let private = key.to_jwk(true).unwrap();
            let back = private.to_key(None).unwrap();
            assert!(back.has_private(), "{alg}");
            assert_eq!(back.kid(), key.kid());
            let sig = back.sign(b"m").unwrap();
            assert!(key.verify_signature(b"m", &sig), "{alg}");
            match key.to_jwk(false) {
                None => assert_eq!(alg.key_type(), KeyType::Oct),
                Some(public) => {
                    assert!(public.d.is_none() && public.k.is_none() && public.p.is_none());
                    let back = public.to_key(None).unwrap();
                    assert!(!back.has_private());
                    assert!(back.verify_signature(b"m", &sig), "{alg}");
                }
            }
        }
    }

    #[test]
    fn debug_output_never_shows_private_members() {
        for alg in [
            Algorithm::HS256,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            let jwk = Key::generate(alg, None, None)
                .unwrap()
                .to_jwk(true)
                .unwrap();
            let secret = jwk.k.clone().or(jwk.d.clone()).unwrap();
            let shown = format!(
                "{jwk:?} {:?}",
                Jwks {
                    keys: vec![jwk.clone()]
                }
            );
            assert!(!shown.contains(&secret), "{shown}");
            assert!(shown.contains("private: true"), "{shown}");
        }
    }

    #[test]
    fn jwk_algorithm_rules() {
        let ec = Key::generate(Algorithm::ES256, None, None)
            .unwrap()
            .to_jwk(false)
            .unwrap();
        let no_alg = Jwk {
            alg: None,
            ..ec.clone()
        };
        assert_eq!(no_alg.to_key(None).unwrap().alg(), Algorithm::ES256);
        assert!(matches!(
            ec.to_key(Some(Algorithm::ES384)),
            Err(KeyError::AlgorithmConflict { .. })
        ));
        let rsa = Key::generate(Algorithm::RS256, None, None)
            .unwrap()
            .to_jwk(false)
            .unwrap();
        let rsa_no_alg = Jwk { alg: None, ..rsa };
        assert!(matches!(
            rsa_no_alg.to_key(None),
            Err(KeyError::AlgorithmNeeded { .. })
        ));
        assert_eq!(
            rsa_no_alg.to_key(Some(Algorithm::PS256)).unwrap().alg(),
            Algorithm::PS256
        );
        assert!(rsa_no_alg.to_key(Some(Algorithm::ES256)).is_err());
        let enc = Jwk {
            use_: Some("enc".into()),
            ..ec.clone()
        };
        assert!(matches!(enc.to_key(None), Err(KeyError::Unsupported(_))));
        let none = Jwk {
            alg: Some("none".into()),
            ..ec
        };
        assert!(matches!(none.to_key(None), Err(KeyError::Unsupported(_))));
    }
}
