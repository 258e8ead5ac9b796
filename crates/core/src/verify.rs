//! Verification: the one path every token takes. Structure, then the key the token names
//! (its algorithm must equal the key's), then the signature, then the claims rules.
//! The payload is parsed only after its signature has been checked.

use std::sync::Arc;

use crate::claims::{Claims, Rules};
use crate::error::{Part, Reject};
use crate::jose::{Header, Jws, SIGNATURE_BUFFER};
use crate::key::{Key, KeySet};

/// A token whose signature and claims passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Shared with the key when it is the key's own header (see `jose::OwnHeader`).
    pub header: Arc<Header>,
    pub claims: Claims,
    /// The `kid` of the key that verified the signature (shared with the key, not copied).
    pub key_id: Arc<str>,
}

impl Verified {
    /// The payload JSON, exactly as signed.
    pub fn payload_json(&self) -> &str {
        self.claims.json()
    }

    /// Any claim by name, parsed on demand (for claims jwtgate does not type).
    pub fn claim(&self, name: &str) -> Option<serde_json::Value> {
        self.claims.get(name)
    }
}

/// Verifies a JWT: structure, key selection with the algorithm pinned by the key, signature,
/// then `rules` at time `now` (seconds since the epoch).
pub fn verify(token: &str, keys: &KeySet, rules: &Rules, now: i64) -> Result<Verified, Reject> {
    let mut signature = [0; SIGNATURE_BUFFER];
    let jws = Jws::parse_known(token, &mut signature, |h| keys.own_header(h))?;
    let key = check_signature(&jws, keys)?;
    let (header, payload) = jws.into_parts();
    let payload = String::from_utf8(payload).map_err(|e| Reject::Json {
        part: Part::Payload,
        reason: format!("not UTF-8 at byte {}", e.utf8_error().valid_up_to()),
    })?;
    let claims = Claims::from_json(payload)?;
    rules.check(&claims, now)?;
    Ok(Verified {
        header,
        claims,
        key_id: key.kid_shared(),
    })
}

/// Verifies a JWS signature only; the payload may be any bytes and no claim is looked at.
pub fn verify_jws<'t, 'k>(
    token: &'t str,
    keys: &'k KeySet,
) -> Result<(Jws<'t, 'static>, &'k Key), Reject> {
    let jws = Jws::parse(token)?;
    let key = check_signature(&jws, keys)?;
    Ok((jws, key))
}

fn check_signature<'k>(jws: &Jws, keys: &'k KeySet) -> Result<&'k Key, Reject> {
    let alg = jws.header.alg;
    let verifies = |key: &Key| key.verify_signature(jws.signing_input(), jws.signature());
    if let Some(kid) = &jws.header.kid {
        let key = keys
            .get(kid)
            .ok_or_else(|| Reject::UnknownKid { kid: kid.clone() })?;
        if key.alg() != alg {
            return Err(Reject::AlgorithmMismatch {
                alg,
                kid: key.kid().to_owned(),
                bound: key.alg(),
            });
        }
        return if verifies(key) {
            Ok(key)
        } else {
            Err(Reject::BadSignature)
        };
    }
    // No kid: only keys bound to the token's algorithm are candidates.
    let mut candidates = keys.keys().iter().filter(|k| k.alg() == alg).peekable();
    if candidates.peek().is_none() {
        return Err(match keys.keys() {
            [only] => Reject::AlgorithmMismatch {
                alg,
                kid: only.kid().to_owned(),
                bound: only.alg(),
            },
            all => Reject::NoKeyForAlgorithm {
                alg,
                bound: all.iter().map(Key::alg).collect(),
            },
        });
    }
    candidates.find(|k| verifies(k)).ok_or(Reject::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::Algorithm;
    use crate::jose::{decode, parse_header, split};
    use crate::Part;

    fn claims() -> serde_json::Map<String, serde_json::Value> {
        let json = serde_json::json!({ "sub": "u1", "exp": 2_000_000_000_i64 });
        json.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_keys_own_header_is_what_the_strict_parser_makes_of_it() {
        for alg in Algorithm::ALL {
            let key = Key::generate(alg, None, Some("k\"1".into())).unwrap();
            let own = key.own_header().unwrap();
            let bytes = decode(&own.segment, Part::Header).unwrap();
            assert_eq!(parse_header(&bytes).unwrap(), *own.header, "{alg}");
            assert_eq!(own.header.kid.as_deref(), Some("k\"1"));
            assert_eq!(own.header.alg, alg);
        }
    }

    #[test]
    fn the_own_header_shortcut_gives_the_same_result_as_parsing() {
        let key = Key::generate(Algorithm::ES256, None, Some("k1".into())).unwrap();
        let token = crate::sign(&claims(), &key).unwrap();
        let [h, _, _] = split(&token).unwrap();
        let keys = KeySet::new([key.public_key().unwrap()]).unwrap();
        assert!(keys.own_header(h).is_some(), "the shortcut applies");
        let verified = verify(&token, &keys, &Rules::default(), 1_700_000_000).unwrap();
        assert_eq!(verified.header, Jws::parse(&token).unwrap().header);
    }

    #[test]
    fn the_own_header_of_another_key_with_the_same_kid_does_not_verify() {
        // Same alg and kid, so the same header segment: only the signature tells them apart.
        let ours = Key::generate(Algorithm::ES256, None, Some("k1".into())).unwrap();
        let theirs = Key::generate(Algorithm::ES256, None, Some("k1".into())).unwrap();
        let token = crate::sign(&claims(), &theirs).unwrap();
        let keys = KeySet::new([ours.public_key().unwrap()]).unwrap();
        assert_eq!(
            verify(&token, &keys, &Rules::default(), 1_700_000_000).map(|_| ()),
            Err(Reject::BadSignature)
        );
    }
}
