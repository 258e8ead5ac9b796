//! Properties of the parser and the sign/verify pair, over generated inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use base64::Engine;
use jwtgate_core::jose::BASE64URL;
use jwtgate_core::{sign, verify, Algorithm, Jws, Key, KeySet, Rules};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn keys() -> &'static [KeySet] {
    static KEYS: std::sync::OnceLock<Vec<KeySet>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        [
            Algorithm::HS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
            Algorithm::RS256,
        ]
        .into_iter()
        .map(|alg| KeySet::new([Key::generate(alg, None, None).unwrap()]).unwrap())
        .collect()
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".*", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claims whose registered members are well typed, plus arbitrary private claims.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    let registered = [
        "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "URLs", "verbs",
    ];
    (
        prop::collection::btree_map("[a-zA-Z_:/.-]{1,12}", json_value(), 0..8),
        proptest::option::of(".*"),
        proptest::option::of(prop::collection::vec(".*", 0..4)),
    )
        .prop_map(move |(extra, sub, roles)| {
            let mut m: Map<String, Value> = extra
                .into_iter()
                .filter(|(k, _)| !registered.contains(&k.as_str()))
                .collect();
            m.insert("exp".into(), Value::from(2_000_000_000i64));
            if let Some(sub) = sub {
                m.insert("sub".into(), Value::String(sub));
            }
            if let Some(roles) = roles {
                m.insert("roles".into(), roles.into());
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(token in ".{0,400}") {
        for keys in keys() {
            let _ = verify(&token, keys, &Rules::default(), 1_700_000_000);
        }
    }

    #[test]
    fn arbitrary_segments_never_panic(h in prop::collection::vec(any::<u8>(), 0..200),
                                      p in prop::collection::vec(any::<u8>(), 0..200),
                                      s in prop::collection::vec(any::<u8>(), 0..200)) {
        let token = format!("{}.{}.{}", BASE64URL.encode(&h), BASE64URL.encode(&p), BASE64URL.encode(&s));
        let _ = Jws::parse(&token);
        for keys in keys() {
            let _ = verify(&token, keys, &Rules::default(), 1_700_000_000);
        }
    }

    #[test]
    fn arbitrary_json_headers_and_payloads_never_panic(h in json_value(), p in json_value()) {
        let token = format!(
            "{}.{}.c2ln",
            BASE64URL.encode(serde_json::to_vec(&h).unwrap()),
            BASE64URL.encode(serde_json::to_vec(&p).unwrap()),
        );
        for keys in keys() {
            let _ = verify(&token, keys, &Rules::default(), 1_700_000_000);
        }
    }

    #[test]
    fn sign_then_verify_round_trips_arbitrary_claims(claims in claims(), which in 0usize..4) {
        let keys = &keys()[which];
        let key = keys.active().unwrap();
        let token = sign(&claims, key).unwrap();
        let verified = verify(&token, keys, &Rules::default(), 1_700_000_000).unwrap();
        prop_assert_eq!(verified.header.alg, key.alg());
        prop_assert_eq!(&*verified.key_id, key.kid());
        let back: Map<String, Value> = serde_json::from_str(verified.payload_json()).unwrap();
        prop_assert_eq!(&back, &claims);
        let sub = claims.get("sub").and_then(|v| v.as_str().map(String::from));
        prop_assert_eq!(verified.claims.sub(), sub.as_deref());
        for (name, value) in &claims {
            let got = verified.claim(name);
            prop_assert_eq!(got.as_ref(), Some(value));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Normalising never panics; what it returns is absolute, free of empty, `.` and `..`
    /// segments and of `%`, and normalising it again changes nothing (so no second decoding
    /// downstream can reach a path the first one did not).
    #[test]
    fn normalised_paths_are_final(raw in "/[a-z./%0-9A-F\\\\]{0,40}") {
        use jwtgate_core::scope::normalize_path;
        if let Ok(path) = normalize_path(&raw) {
            prop_assert!(path.starts_with('/'));
            prop_assert!(!path.contains("//") && !path.contains('%') && !path.contains('\\'));
            for segment in path.split('/') {
                prop_assert!(segment != "." && segment != "..", "{path}");
            }
                        prop_assert_eq!(normalize_path(&path), Ok(path.clone()));
        }
    }

    /// The gateway's fast path: a path `is_normal` says needs no normalising is exactly what
    /// normalising would give.
    #[test]
    fn paths_said_normal_are_their_own_normal_form(raw in "/?[a-z./%;0-9A-F\\_~:@-]{0,40}") {
        use jwtgate_core::scope::{is_normal, normalize_path};
        if is_normal(&raw) {
            prop_assert_eq!(normalize_path(&raw), Ok(raw.clone()));
        }
    }
}
