//! jwtgate-core: the token core. Compact JWS parsing, keys (PEM, JWK/JWKS, thumbprints,
//! generation), signing, verification and claims rules. It does no IO and reads no clock:
//! time comes in as an argument, so every decision here is a pure function of its inputs.

pub mod alg;
mod b64;
pub mod claims;
pub mod error;
mod issue;
pub mod jose;
mod json;
pub mod key;
pub mod password;
pub mod scope;
pub mod totp;
pub mod verify;

pub use alg::{Algorithm, Curve, KeyType};
pub use claims::{Claims, Registered, Rules, Strs};
pub use error::{KeyError, Part, Reject};
pub use issue::sign;
pub use jose::{Header, Jws};
pub use key::{Key, KeySet};
pub use verify::{verify, verify_jws, Verified};

/// Compares two byte strings in constant time (for their common length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// A short name for a token in logs: the first 12 hex digits of its SHA-256. Enough to match
/// log lines to each other, useless for replaying the token (logs never hold tokens).
pub fn fingerprint(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Operations that weaken a check. Each is named for what it gives up (RFC 8725 §3).
pub mod dangerous {
    pub use crate::issue::sign_compact;
}

/// Cryptographically secure random bytes, from aws-lc-rs's generator.
pub mod random {
    pub fn fill(bytes: &mut [u8]) -> Result<(), crate::KeyError> {
        aws_lc_rs::rand::fill(bytes)
            .map_err(|_| crate::KeyError::invalid("the random generator failed"))
    }
}
