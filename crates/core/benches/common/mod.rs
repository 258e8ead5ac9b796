//! The benchmark cases shared by `verify` (criterion) and `paired`: one token per algorithm
//! with realistic claims, jwtgate's key set for it, and the bare aws-lc-rs key for the same
//! signature.

// Setup failures in a benchmark should abort loudly; there is no caller to hand an error to.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use jwtgate_core::jose::BASE64URL;
use jwtgate_core::{Algorithm, Key, KeySet, Rules};
use serde_json::{json, Map, Value};

pub const ISSUER: &str = "https://auth.example.com";
pub const AUDIENCE: &str = "jwtgate-api";
pub const KID: &str = "k1";
/// Fixed "current time": 2023-11-14, after `iat`, long before `exp`.
pub const NOW: i64 = 1_700_000_100;

fn claims() -> Map<String, Value> {
    let value = json!({
        "iss": ISSUER,
        "sub": "user-4711",
        "aud": AUDIENCE,
        "exp": 4_102_444_800_i64, // 2100-01-01
        "iat": 1_700_000_000_i64,
        "jti": "5f0c3a1e-9b7d-4c2a-8e61-2d4b7f90a3c5",
        "roles": ["admin", "user"],
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! object literal"),
    }
}

fn rules() -> Rules {
    Rules::default().issuer(ISSUER).audiences([AUDIENCE])
}

fn signature_alg(alg: Algorithm) -> &'static dyn VerificationAlgorithm {
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
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            unreachable!("HMAC has no public key")
        }
    }
}

fn hmac_alg(alg: Algorithm) -> hmac::Algorithm {
    match alg {
        Algorithm::HS256 => hmac::HMAC_SHA256,
        Algorithm::HS384 => hmac::HMAC_SHA384,
        Algorithm::HS512 => hmac::HMAC_SHA512,
        _ => unreachable!("not an HMAC algorithm"),
    }
}

/// A token over `claims()` and the key that signed it.
pub fn signed_token(alg: Algorithm) -> (String, Key) {
    let key = Key::generate(alg, None, Some(KID.into())).unwrap();
    (jwtgate_core::sign(&claims(), &key).unwrap(), key)
}

/// A token as another issuer might write it: the same members in another order, so its
/// header is not the key's own and is decoded and parsed like any foreign token's.
pub fn foreign_token(alg: Algorithm) -> (String, Key) {
    let key = Key::generate(alg, None, Some(KID.into())).unwrap();
    let header = format!(r#"{{"typ":"JWT","kid":"{KID}","alg":"{}"}}"#, alg.name());
    let payload = serde_json::to_vec(&claims()).unwrap();
    let token = jwtgate_core::dangerous::sign_compact(header.as_bytes(), &payload, &key).unwrap();
    (token, key)
}

/// Everything one algorithm's benchmarks need, built once.
pub struct Case {
    pub token: String,
    pub keyset: KeySet,
    pub rules: Rules,
    /// The signing input (`header.payload`) and the decoded signature, for the raw check.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
    /// The pre-parsed aws-lc-rs key for the raw baseline: exactly one of these is set.
    pub raw_hmac: Option<hmac::Key>,
    pub raw_public: Option<ParsedPublicKey>,
}

impl Case {
    /// A token jwtgate signed: its header is the key's own (recognised without parsing).
    pub fn new(alg: Algorithm) -> Case {
        Case::from_token(alg, signed_token(alg))
    }

    /// A token with a foreign header (see `foreign_token`): the full parsing path.
    pub fn foreign(alg: Algorithm) -> Case {
        Case::from_token(alg, foreign_token(alg))
    }

    fn from_token(alg: Algorithm, (token, key): (String, Key)) -> Case {
        let (signing_input, sig_b64) = token.rsplit_once('.').unwrap();
        let signing_input = signing_input.as_bytes().to_vec();
        let signature = BASE64URL.decode(sig_b64).unwrap();
        let (raw_hmac, raw_public) = if key.is_symmetric() {
            let k = key.to_jwk(true).unwrap().k.unwrap();
            let secret = BASE64URL.decode(k).unwrap();
            (Some(hmac::Key::new(hmac_alg(alg), &secret)), None)
        } else {
            let spki = key.spki_der().unwrap();
            let public = ParsedPublicKey::new(signature_alg(alg), spki).unwrap();
            (None, Some(public))
        };
        let public = key.public_key().unwrap_or(key);
        let keyset = KeySet::new([public]).unwrap();
        let case = Case {
            token,
            keyset,
            rules: rules(),
            signing_input,
            signature,
            raw_hmac,
            raw_public,
        };
        case.sanity_check(alg);
        case
    }

    /// Both paths must accept the token, or the numbers would measure a rejection.
    fn sanity_check(&self, alg: Algorithm) {
        let verified = jwtgate_core::verify(&self.token, &self.keyset, &self.rules, NOW)
            .unwrap_or_else(|e| panic!("{alg}: jwtgate rejected its own token: {e}"));
        assert_eq!(verified.header.alg, alg);
        assert_eq!(&*verified.key_id, KID);
        assert_eq!(verified.claims.roles().map(|r| r.len()), Some(2));
        let ok = match (&self.raw_hmac, &self.raw_public) {
            (Some(k), None) => hmac::verify(k, &self.signing_input, &self.signature).is_ok(),
            (None, Some(k)) => k.verify_sig(&self.signing_input, &self.signature).is_ok(),
            _ => unreachable!("exactly one raw key"),
        };
        assert!(ok, "{alg}: aws-lc-rs rejected the signature");
    }
}
