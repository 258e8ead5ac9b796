//! The full/raw verification ratio per algorithm, measured in alternating pairs. On a shared
//! VM the speed drifts by 10-20 % between (and within) criterion's separate runs of `full` and
//! `raw`, which swamps a 5 % effect; here each round times a burst of `full` right next to a
//! burst of `raw` (order alternating), so drift cancels within the pair, and the median of
//! the per-round ratios is reported with its quartiles.
//!
//! Rows marked `*` verify a token whose header another issuer wrote (same members, another
//! order), so it is decoded and parsed instead of recognised as the key's own.
//!
//! Run: `cargo bench -p jwtgate-core --bench paired` (filter: `-- RS256 PS256`).

// Setup failures in a benchmark should abort loudly; there is no caller to hand an error to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use jwtgate_core::Algorithm;

use common::{Case, NOW};

/// Rounds per algorithm, and the wall time one burst should take.
const ROUNDS: usize = 400;
const BURST: Duration = Duration::from_millis(2);

fn full(case: &Case) -> bool {
    jwtgate_core::verify(
        black_box(&case.token),
        black_box(&case.keyset),
        black_box(&case.rules),
        black_box(NOW),
    )
    .is_ok()
}

fn raw(case: &Case) -> bool {
    match (&case.raw_hmac, &case.raw_public) {
        (Some(k), _) => hmac::verify(
            black_box(k),
            black_box(&case.signing_input),
            black_box(&case.signature),
        )
        .is_ok(),
        (None, Some(k)) => black_box(k)
            .verify_sig(black_box(&case.signing_input), black_box(&case.signature))
            .is_ok(),
        (None, None) => unreachable!("exactly one raw key"),
    }
}

/// Seconds per call of `f`, over `n` calls.
fn burst(n: u32, case: &Case, f: fn(&Case) -> bool) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        assert!(f(case));
    }
    start.elapsed().as_secs_f64() / f64::from(n)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) this is a smoke
    // test: both paths must accept every token, but nothing is timed seriously.
    let measure = std::env::args().any(|a| a == "--bench");
    let rounds = if measure { ROUNDS } else { 2 };
    // Anything else not starting with `--` is a filter on algorithm names.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if measure {
        println!(
            "{:<6} {:>10} {:>10} {:>9} {:>7} {:>7} {:>7}",
            "alg", "full", "raw", "overhead", "ratio", "p25", "p75"
        );
    }
    // Every algorithm with a token jwtgate signed, then two with a foreign header (`*`).
    let cases = Algorithm::ALL
        .into_iter()
        .map(|alg| (alg, false))
        .chain([(Algorithm::HS256, true), (Algorithm::RS256, true)]);
    for (alg, foreign) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| alg.name().contains(f.as_str())) {
            continue;
        }
        let case = if foreign {
            Case::foreign(alg)
        } else {
            Case::new(alg)
        };
        let name = format!("{}{}", alg.name(), if foreign { "*" } else { "" });
        // Size the bursts from a warm-up, so every algorithm gets about the same wall time.
        let per_call = burst(if measure { 200 } else { 1 }, &case, raw);
        let n = if measure {
            ((BURST.as_secs_f64() / per_call) as u32).max(1)
        } else {
            1
        };
        let (mut ratios, mut fulls, mut raws) = (vec![], vec![], vec![]);
        for round in 0..rounds {
            let (f, r) = if round % 2 == 0 {
                let f = burst(n, &case, full);
                (f, burst(n, &case, raw))
            } else {
                let r = burst(n, &case, raw);
                (burst(n, &case, full), r)
            };
            ratios.push(f / r);
            fulls.push(f);
            raws.push(r);
        }
        if !measure {
            println!("{name}: both paths accept the token (smoke test, nothing measured)");
            continue;
        }
        for list in [&mut ratios, &mut fulls, &mut raws] {
            list.sort_by(f64::total_cmp);
        }
        let (f, r) = (quantile(&fulls, 0.5), quantile(&raws, 0.5));
        println!(
            "{:<6} {:>8.2}µs {:>8.2}µs {:>7.0}ns {:>7.3} {:>7.3} {:>7.3}",
            name,
            f * 1e6,
            r * 1e6,
            (f - r) * 1e9,
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
        );
    }
}
