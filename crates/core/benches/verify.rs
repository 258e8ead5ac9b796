//! Verification cost per algorithm: jwtgate's full path (`full/<ALG>`: parse, key selection,
//! signature, claims rules) against the bare aws-lc-rs signature check of the same signature
//! over the same signing input, with the key parsed once (`raw/<ALG>`). The difference is what
//! jwtgate adds on top of the cryptography. Results and targets: BENCHMARKS.md at the root.
//!
//! Run: `cargo bench -p jwtgate-core --bench verify` (filter with `-- RS256`).

// Setup failures in a benchmark should abort loudly; there is no caller to hand an error to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use aws_lc_rs::hmac;
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion,
};
use jwtgate_core::jose::Jws;
use jwtgate_core::{Algorithm, Claims};

use common::{signed_token, Case, NOW};

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn bench_verify(c: &mut Criterion) {
    for alg in Algorithm::ALL {
        let case = Case::new(alg);
        let mut group = c.benchmark_group(alg.name());
        configure(&mut group);
        group.bench_function("full", |b| {
            b.iter(|| {
                jwtgate_core::verify(
                    black_box(&case.token),
                    black_box(&case.keyset),
                    black_box(&case.rules),
                    black_box(NOW),
                )
            })
        });
        // Separate closures per kind, so the baseline carries no dispatch of its own.
        match (&case.raw_hmac, &case.raw_public) {
            (Some(k), _) => group.bench_function("raw", |b| {
                b.iter(|| {
                    hmac::verify(
                        black_box(k),
                        black_box(&case.signing_input),
                        black_box(&case.signature),
                    )
                })
            }),
            (None, Some(k)) => group.bench_function("raw", |b| {
                b.iter(|| {
                    black_box(k)
                        .verify_sig(black_box(&case.signing_input), black_box(&case.signature))
                })
            }),
            (None, None) => unreachable!("exactly one raw key"),
        };
        group.finish();
    }
}

/// Where the non-cryptographic time goes: the steps of `verify` other than the signature
/// check. Header and payload are the same for every algorithm; only the signature segment
/// differs (32 bytes for HS256, 64 for ES256/EdDSA, 256 for RSA-2048), so `Jws::parse` is
/// measured on one token of each size, the claims steps once.
fn bench_parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("parts");
    configure(&mut group);
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::RS256] {
        let (token, _) = signed_token(alg);
        group.bench_with_input(BenchmarkId::new("jws_parse", alg), &token, |b, token| {
            b.iter(|| Jws::parse(black_box(token)))
        });
    }
    let case = Case::new(Algorithm::HS256);
    let payload = Jws::parse(&case.token).unwrap().payload().to_vec();
    let claims = Claims::parse(&payload).unwrap();
    group.bench_function("claims_parse", |b| {
        b.iter(|| Claims::parse(black_box(&payload)))
    });
    group.bench_function("rules_check", |b| {
        b.iter(|| case.rules.check(black_box(&claims), black_box(NOW)))
    });
    group.finish();
}

criterion_group!(benches, bench_verify, bench_parts);
criterion_main!(benches);
