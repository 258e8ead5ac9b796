//! A fixed loop over `verify` for instruction-count profiling, where wall-clock benchmarks are
//! too noisy to see a 100 ns change:
//! `valgrind --tool=callgrind target/release/examples/profile_verify HS256 20000`
//! then divide the `verify` inclusive count by the iterations. Same token and rules as the
//! criterion bench (`benches/verify.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jwtgate_core::{Algorithm, Key, KeySet, Rules};
use serde_json::json;

fn main() {
    let mut args = std::env::args().skip(1);
    let alg = args.next().unwrap_or_else(|| "HS256".into());
    let alg = Algorithm::from_name(&alg).expect("an algorithm name");
    let n: u64 = args.next().map_or(20_000, |n| n.parse().expect("a count"));
    let claims = json!({
        "iss": "https://auth.example.com",
        "sub": "user-4711",
        "aud": "jwtgate-api",
        "exp": 4_102_444_800_i64,
        "iat": 1_700_000_000_i64,
        "jti": "5f0c3a1e-9b7d-4c2a-8e61-2d4b7f90a3c5",
        "roles": ["admin", "user"],
    });
    let key = Key::generate(alg, None, Some("k1".into())).unwrap();
    let token = jwtgate_core::sign(claims.as_object().unwrap(), &key).unwrap();
    let keys = KeySet::new([key.public_key().unwrap_or(key)]).unwrap();
    let rules = Rules::default()
        .issuer("https://auth.example.com")
        .audiences(["jwtgate-api"]);
    let mut ok = 0u64;
    for _ in 0..n {
        let token = std::hint::black_box(token.as_str());
        ok += u64::from(jwtgate_core::verify(token, &keys, &rules, 1_700_000_100).is_ok());
    }
    assert_eq!(ok, n);
}
