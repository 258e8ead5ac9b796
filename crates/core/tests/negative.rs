//! One test per refusal rule (RFC 8725 and the issue's list), each asserting the exact `Reject`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use base64::Engine;
use jwtgate_core::dangerous::sign_compact;
use jwtgate_core::jose::{BASE64URL, MAX_TOKEN_LEN};
use jwtgate_core::{sign, verify, Algorithm, Key, KeySet, Part, Reject, Rules};
use serde_json::{json, Map, Value};

const NOW: i64 = 1_750_000_000;

fn key(alg: Algorithm, kid: &str) -> Key {
    Key::generate(alg, None, Some(kid.into())).unwrap()
}

fn claims(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn good_claims() -> Map<String, Value> {
    claims(json!({"sub": "alice", "exp": NOW + 600, "iat": NOW}))
}

fn check(token: &str, keys: &KeySet) -> Result<(), Reject> {
    verify(token, keys, &Rules::default(), NOW).map(|_| ())
}

fn set(k: Key) -> KeySet {
    KeySet::new([k]).unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64URL.encode(bytes)
}

/// Replaces the signature segment.
fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(sig))
}

#[test]
fn alg_none_is_rejected_in_any_letter_case() {
    let keys = set(key(Algorithm::HS256, "k"));
    let payload = b64(serde_json::to_vec(&good_claims()).unwrap());
    for alg in ["none", "None", "NONE", "nOnE"] {
        for sig in ["", "c2ln"] {
            let token = format!(
                "{}.{payload}.{sig}",
                b64(format!(r#"{{"alg":"{alg}","kid":"k"}}"#))
            );
            assert_eq!(
                check(&token, &keys),
                Err(Reject::AlgNone { alg: alg.into() })
            );
        }
    }
}

#[test]
fn token_alg_that_differs_from_the_key_is_rejected_with_both_names() {
    let es = key(Algorithm::ES256, "k1");
    let keys = set(key(Algorithm::ES256, "k1"));
    let rs = key(Algorithm::RS256, "k1");
    let token = sign(&good_claims(), &rs).unwrap();
    let err = check(&token, &keys).unwrap_err();
    assert_eq!(
        err,
        Reject::AlgorithmMismatch {
            alg: Algorithm::RS256,
            kid: "k1".into(),
            bound: Algorithm::ES256
        }
    );
    assert_eq!(
        err.to_string(),
        "algorithm RS256 not allowed for key 'k1' (bound to ES256)"
    );
    drop(es);
}

#[test]
fn hs256_signed_with_the_rsa_public_key_is_rejected() {
    // The classic key-confusion attack: the attacker uses the server's public key as an HMAC
    // secret and hopes the verifier lets the token choose the algorithm.
    let rsa = key(Algorithm::RS256, "rsa");
    let public_pem = rsa.to_pem(false).unwrap();
    let forged_key =
        Key::hmac(Algorithm::HS256, public_pem.as_bytes(), Some("rsa".into())).unwrap();
    let keys = set(rsa.public_key().unwrap());
    for header in [
        json!({"alg": "HS256", "kid": "rsa"}),
        json!({"alg": "HS256"}),
    ] {
        let token = sign_compact(
            &serde_json::to_vec(&header).unwrap(),
            &serde_json::to_vec(&good_claims()).unwrap(),
            &forged_key,
        )
        .unwrap();
        assert_eq!(
            check(&token, &keys),
            Err(Reject::AlgorithmMismatch {
                alg: Algorithm::HS256,
                kid: "rsa".into(),
                bound: Algorithm::RS256
            })
        );
    }
}

#[test]
fn ecdsa_signature_with_r_and_s_zero_is_rejected() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
    for (alg, len) in [
        (Algorithm::ES256, 64),
        (Algorithm::ES384, 96),
        (Algorithm::ES512, 132),
    ] {
        let k = key(alg, "ec");
        let token = with_signature(&sign(&good_claims(), &k).unwrap(), &vec![0u8; len]);
        assert_eq!(check(&token, &set(k)), Err(Reject::BadSignature), "{alg}");
    }
}

#[test]
fn bit_flipped_signature_is_rejected_for_every_algorithm() {
    for alg in Algorithm::ALL {
        let k = key(alg, "k");
        let token = sign(&good_claims(), &k).unwrap();
        let sig_b64 = token.rsplit('.').next().unwrap();
        let mut sig = BASE64URL.decode(sig_b64).unwrap();
        let last = sig.len() - 1;
        sig[last] ^= 0x01;
        let keys = set(k);
        assert!(check(&token, &keys).is_ok(), "{alg}");
        assert_eq!(
            check(&with_signature(&token, &sig), &keys),
            Err(Reject::BadSignature),
            "{alg}"
        );
        assert_eq!(
            check(&with_signature(&token, &sig[..last]), &keys),
            Err(Reject::BadSignature),
            "{alg}"
        );
    }
}

#[test]
fn tampered_payload_is_rejected() {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let k = key(alg, "k");
        let token = sign(&good_claims(), &k).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut raised = good_claims();
        raised.insert("sub".into(), "admin".into());
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64(serde_json::to_vec(&raised).unwrap()),
            parts[2]
        );
        assert_eq!(check(&forged, &set(k)), Err(Reject::BadSignature), "{alg}");
    }
}

#[test]
fn padded_segments_are_rejected() {
    let k = key(Algorithm::HS256, "k");
    let token = sign(&good_claims(), &k).unwrap();
    let keys = set(k);
    let parts: Vec<&str> = token.split('.').collect();
    for (i, part) in [Part::Header, Part::Payload, Part::Signature]
        .into_iter()
        .enumerate()
    {
        let mut p = parts.clone();
        let padded = format!("{}=", p[i]);
        p[i] = &padded;
        let err = check(&p.join("."), &keys).unwrap_err();
        assert!(
            matches!(err, Reject::Base64 { part: got, .. } if got == part),
            "{err}"
        );
    }
}

#[test]
fn non_canonical_trailing_bits_are_rejected() {
    let k = key(Algorithm::HS256, "k");
    let token = sign(&good_claims(), &k).unwrap();
    // A 32-byte MAC encodes to 43 characters; the last carries 2 unused bits that must be 0.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let sibling = alphabet.chars().nth(idx ^ 1).unwrap();
    let forged = format!("{input}.{}{sibling}", &sig[..sig.len() - 1]);
    let err = check(&forged, &set(k)).unwrap_err();
    assert!(
        matches!(
            err,
            Reject::Base64 {
                part: Part::Signature,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn duplicate_members_are_rejected_in_header_and_payload() {
    let k = key(Algorithm::HS256, "k");
    let payload = format!(r#"{{"sub":"alice","exp":{},"sub":"admin"}}"#, NOW + 60);
    let token = sign_compact(br#"{"alg":"HS256","kid":"k"}"#, payload.as_bytes(), &k).unwrap();
    let keys = set(k);
    assert_eq!(
        check(&token, &keys),
        Err(Reject::DuplicateKey {
            part: Part::Payload,
            key: "sub".into()
        })
    );
    let token = sign_compact(
        br#"{"alg":"HS256","kid":"k","kid":"k"}"#,
        serde_json::to_vec(&good_claims()).unwrap().as_slice(),
        &keys.keys()[0],
    )
    .unwrap();
    assert_eq!(
        check(&token, &keys),
        Err(Reject::DuplicateKey {
            part: Part::Header,
            key: "kid".into()
        })
    );
}

#[test]
fn oversize_token_is_rejected_before_decoding() {
    let keys = set(key(Algorithm::HS256, "k"));
    let token = format!("a.{}.b", "%".repeat(MAX_TOKEN_LEN));
    assert_eq!(
        check(&token, &keys),
        Err(Reject::TooLarge {
            len: MAX_TOKEN_LEN + 4,
            max: MAX_TOKEN_LEN
        })
    );
}

#[test]
fn unknown_critical_extension_is_rejected() {
    let k = key(Algorithm::HS256, "k");
    let token = sign_compact(
        br#"{"alg":"HS256","kid":"k","crit":["urn:example:must-understand"],"urn:example:must-understand":1}"#,
        serde_json::to_vec(&good_claims()).unwrap().as_slice(),
        &k,
    )
    .unwrap();
    assert_eq!(
        check(&token, &set(k)),
        Err(Reject::UnknownCrit {
            name: "urn:example:must-understand".into()
        })
    );
}

#[test]
fn embedded_jwk_jku_x5u_and_x5c_never_select_a_key() {
    let ours = key(Algorithm::ES256, "ours");
    let attacker = key(Algorithm::ES256, "attacker");
    let jwk = serde_json::to_value(attacker.to_jwk(false).unwrap()).unwrap();
    let keys = set(ours);
    let payload = serde_json::to_vec(&good_claims()).unwrap();
    for extra in [
        json!({"jwk": jwk}),
        json!({"jku": "https://attacker.example/jwks"}),
        json!({"x5u": "https://attacker.example/cert"}),
        json!({"x5c": ["MIIB"]}),
    ] {
        let mut header = extra.as_object().unwrap().clone();
        header.insert("alg".into(), "ES256".into());
        let token =
            sign_compact(&serde_json::to_vec(&header).unwrap(), &payload, &attacker).unwrap();
        assert_eq!(check(&token, &keys), Err(Reject::BadSignature), "{extra}");
        header.insert("kid".into(), "attacker".into());
        let token =
            sign_compact(&serde_json::to_vec(&header).unwrap(), &payload, &attacker).unwrap();
        assert_eq!(
            check(&token, &keys),
            Err(Reject::UnknownKid {
                kid: "attacker".into()
            })
        );
    }
}

#[test]
fn unknown_kid_is_named_in_the_message() {
    let token = sign(&good_claims(), &key(Algorithm::HS256, "x")).unwrap();
    let err = check(&token, &set(key(Algorithm::HS256, "k"))).unwrap_err();
    assert_eq!(err.to_string(), "unknown key id 'x'");
}

fn signed(extra: Value) -> (String, KeySet) {
    let k = key(Algorithm::ES256, "k");
    let token = sign_compact(
        br#"{"alg":"ES256","kid":"k"}"#,
        serde_json::to_vec(&extra).unwrap().as_slice(),
        &k,
    )
    .unwrap();
    (token, set(k))
}

#[test]
fn expired_nbf_and_iat_with_and_without_leeway() {
    let cases = [
        (json!({"exp": NOW - 30}), 60, Ok(())),
        (
            json!({"exp": NOW - 30}),
            0,
            Err(Reject::Expired { ago: 30 }),
        ),
        (
            json!({"exp": NOW - 90}),
            60,
            Err(Reject::Expired { ago: 90 }),
        ),
        (json!({"exp": NOW + 99, "nbf": NOW + 30}), 60, Ok(())),
        (
            json!({"exp": NOW + 99, "nbf": NOW + 30}),
            0,
            Err(Reject::NotYetValid { secs: 30 }),
        ),
        (
            json!({"exp": NOW + 999, "nbf": NOW + 90}),
            60,
            Err(Reject::NotYetValid { secs: 90 }),
        ),
        (json!({"exp": NOW + 99, "iat": NOW + 30}), 60, Ok(())),
        (
            json!({"exp": NOW + 99, "iat": NOW + 30}),
            0,
            Err(Reject::IssuedInFuture { secs: 30 }),
        ),
        (
            json!({"exp": NOW + 999, "iat": NOW + 90}),
            60,
            Err(Reject::IssuedInFuture { secs: 90 }),
        ),
    ];
    for (payload, leeway, want) in cases {
        let (token, keys) = signed(payload.clone());
        let got = verify(&token, &keys, &Rules::default().leeway(leeway), NOW).map(|_| ());
        assert_eq!(got, want, "{payload} leeway {leeway}");
    }
}

#[test]
fn exp_and_nbf_of_the_wrong_type_are_errors_not_absent() {
    for claim in ["exp", "nbf", "iat"] {
        for (value, kind) in [
            (json!("1900000000"), "a string"),
            (Value::Null, "null"),
            (json!(false), "a boolean"),
        ] {
            let mut payload = json!({"exp": NOW + 60});
            payload[claim] = value.clone();
            let (token, keys) = signed(payload);
            let rules = Rules::default().allow_missing_exp();
            assert_eq!(
                verify(&token, &keys, &rules, NOW).map(|_| ()),
                Err(Reject::InvalidClaim {
                    claim: claim.into(),
                    reason: format!("must be a number (NumericDate), got {kind}")
                }),
                "{claim} = {value}"
            );
        }
    }
}

#[test]
fn missing_exp_is_rejected_by_default() {
    let (token, keys) = signed(json!({"sub": "x"}));
    assert_eq!(
        check(&token, &keys),
        Err(Reject::MissingClaim {
            claim: "exp".into()
        })
    );
}

#[test]
fn issuer_and_audience_mismatch_are_rejected() {
    let (token, keys) = signed(json!({"exp": NOW + 60, "iss": "https://idp", "aud": ["web"]}));
    let rules = Rules::default().issuer("https://other");
    assert_eq!(
        verify(&token, &keys, &rules, NOW).map(|_| ()),
        Err(Reject::IssuerMismatch {
            expected: "https://other".into(),
            got: "https://idp".into()
        })
    );
    let rules = Rules::default().issuer("https://idp").audiences(["api"]);
    let err = verify(&token, &keys, &rules, NOW).unwrap_err();
    assert_eq!(
        err,
        Reject::AudienceMismatch {
            expected: vec!["api".into()],
            got: vec!["web".into()]
        }
    );
    assert_eq!(
        err.to_string(),
        "audience mismatch: expected one of [api], got [web]"
    );
    let rules = Rules::default()
        .issuer("https://idp")
        .audiences(["api", "web"]);
    assert!(verify(&token, &keys, &rules, NOW).is_ok());
}

#[test]
fn payload_that_is_not_an_object_is_rejected() {
    for payload in [&b"[1,2]"[..], b"\"str\"", b"42", b"Payload"] {
        let k = key(Algorithm::HS256, "k");
        let token = sign_compact(br#"{"alg":"HS256","kid":"k"}"#, payload, &k).unwrap();
        let err = check(&token, &set(k)).unwrap_err();
        assert_eq!(
            err,
            Reject::NotObject {
                part: Part::Payload
            }
        );
    }
}

#[test]
fn token_without_kid_and_no_key_for_its_alg_names_the_bound_algorithms() {
    let k = key(Algorithm::HS256, "k");
    let token = sign_compact(br#"{"alg":"HS256"}"#, br#"{"exp":1}"#, &k).unwrap();
    let keys = KeySet::new([key(Algorithm::ES256, "a"), key(Algorithm::EdDSA, "b")]).unwrap();
    let err = check(&token, &keys).unwrap_err();
    assert_eq!(
        err,
        Reject::NoKeyForAlgorithm {
            alg: Algorithm::HS256,
            bound: vec![Algorithm::ES256, Algorithm::EdDSA]
        }
    );
    assert_eq!(
        err.to_string(),
        "no key for algorithm HS256 (keys are bound to [ES256, EdDSA])"
    );
}
