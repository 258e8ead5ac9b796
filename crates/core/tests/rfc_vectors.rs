//! Conformance with the examples printed in the RFCs themselves (RFC 7515 A.1–A.5, RFC 7520 §4,
//! RFC 7638 §3.1, RFC 8037 A.1–A.5). The data files are copied from the project's checked
//! vectors; see vectors/README.md for where each value comes from.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use jwtgate_core::dangerous::sign_compact;
use jwtgate_core::key::Jwk;
use jwtgate_core::{verify, verify_jws, Algorithm, KeySet, Reject, Rules};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn jwk(value: &Value) -> Jwk {
    serde_json::from_value(value.clone()).unwrap()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("missing {key}"))
}

#[test]
fn rfc7515_appendix_a1_to_a4_verify_and_a5_none_is_refused() {
    let doc = load("rfc7515.json");
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 5);
    for v in vectors {
        let name = str_of(v, "name");
        let compact = str_of(v, "compact");
        if v["must_reject"] == Value::Bool(true) {
            let err = verify_jws(compact, &KeySet::default()).unwrap_err();
            assert_eq!(err, Reject::AlgNone { alg: "none".into() }, "{name}");
            continue;
        }
        let alg: Algorithm = str_of(v, "alg").parse().unwrap();
        let key = jwk(&v["jwk"]).to_key(Some(alg)).unwrap();
        let keys = KeySet::new([key]).unwrap();
        let (jws, _) = verify_jws(compact, &keys).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            jws.payload(),
            str_of(v, "payload_json").as_bytes(),
            "{name}"
        );
        assert_eq!(jws.header.alg, alg);

        if v["payload_is_json"] == Value::Bool(true) {
            // The full JWT path, with the CRLF-laden payload, just before and after `exp`.
            let before = verify(compact, &keys, &Rules::default().leeway(0), 1300819380 - 1);
            assert!(before.is_ok(), "{name}: {before:?}");
            let after = verify(compact, &keys, &Rules::default().leeway(0), 1300819380 + 37);
            assert_eq!(after.unwrap_err(), Reject::Expired { ago: 37 }, "{name}");
        }
        if matches!(alg, Algorithm::HS256 | Algorithm::RS256) {
            let again = sign_compact(
                str_of(v, "header_json").as_bytes(),
                str_of(v, "payload_json").as_bytes(),
                &keys.keys()[0],
            )
            .unwrap();
            assert_eq!(again, compact, "{name} re-signs byte for byte");
        }
    }
}

#[test]
fn rfc7520_section4_signatures_verify() {
    let doc = load("rfc7520.json");
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let name = str_of(v, "name");
        let alg: Algorithm = str_of(v, "alg").parse().unwrap();
        let key = jwk(&v["key"]).to_key(Some(alg)).unwrap();
        assert_eq!(key.kid(), str_of(v, "kid"));
        let keys = KeySet::new([key]).unwrap();
        let compact = str_of(v, "compact");
        let (jws, used) = verify_jws(compact, &keys).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(used.kid(), str_of(v, "kid"));
        assert_eq!(jws.payload(), str_of(v, "payload").as_bytes(), "{name}");
        if v["reproducible"] == Value::Bool(true) {
            let again = sign_compact(
                str_of(v, "header_json").as_bytes(),
                str_of(v, "payload").as_bytes(),
                &keys.keys()[0],
            )
            .unwrap();
            assert_eq!(again, compact, "{name} re-signs byte for byte");
        }
    }
}

#[test]
fn rfc7638_thumbprint_matches_and_is_the_default_kid() {
    let doc = load("rfc7638.json");
    for v in doc["vectors"].as_array().unwrap() {
        let mut jwk = jwk(&v["jwk"]);
        let key = jwk.to_key(None).unwrap();
        assert_eq!(key.thumbprint(), str_of(v, "thumbprint"));
        assert_eq!(key.kid(), "2011-04-29");
        jwk.kid = None;
        assert_eq!(jwk.to_key(None).unwrap().kid(), str_of(v, "thumbprint"));
    }
}

#[test]
fn rfc8037_ed25519_example_verifies_and_signs_identically() {
    let doc = load("rfc8037.json");
    let public = jwk(&doc["public_jwk"]).to_key(None).unwrap();
    let private = jwk(&doc["private_jwk"]).to_key(None).unwrap();
    let thumbprint = str_of(&doc["thumbprint"], "thumbprint");
    assert_eq!(public.thumbprint(), thumbprint);
    assert_eq!(private.thumbprint(), thumbprint);
    assert_eq!(public.alg(), Algorithm::EdDSA);

    let jws = &doc["jws"];
    let keys = KeySet::new([public]).unwrap();
    let (parsed, _) = verify_jws(str_of(jws, "compact"), &keys).unwrap();
    assert_eq!(parsed.payload(), str_of(jws, "payload").as_bytes());

    let signature = private
        .sign(str_of(jws, "signing_input").as_bytes())
        .unwrap();
    let expected =
        jwtgate_core::jose::decode(str_of(jws, "signature"), jwtgate_core::Part::Signature)
            .unwrap();
    assert_eq!(signature, expected);
}

#[test]
fn rfc6238_appendix_b_totp_values_match_for_sha1_sha256_and_sha512() {
    use jwtgate_core::totp::{Totp, TotpHash};
    let doc = load("rfc6238.json");
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 18);
    for v in vectors {
        let mode = str_of(v, "mode");
        let hash = match mode {
            "SHA1" => TotpHash::Sha1,
            "SHA256" => TotpHash::Sha256,
            "SHA512" => TotpHash::Sha512,
            other => panic!("unknown mode {other}"),
        };
        let seed = str_of(&doc["seeds"][mode], "ascii").as_bytes().to_vec();
        let totp = Totp::with(seed, hash, 8, 30);
        let time = v["time"].as_i64().unwrap();
        assert_eq!(totp.step_at(time), v["t"].as_u64().unwrap(), "{time}");
        assert_eq!(totp.code_at(time), str_of(v, "totp"), "{mode} at {time}");
    }
}
