//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane), stored in
//! the PHC string form (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Checking compares in
//! constant time (argon2's `verify_password`). Hashing is slow on purpose; servers run it off
//! their event loop.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::KeyError;

/// OWASP Password Storage Cheat Sheet, argon2id option 2: m = 19 MiB, t = 2, p = 1.
fn hasher() -> Result<Argon2<'static>, KeyError> {
    let params = Params::new(19 * 1024, 2, 1, None)
        .map_err(|e| KeyError::invalid(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh random 16-byte salt.
pub fn hash(password: &str) -> Result<String, KeyError> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt)
        .map_err(|_| KeyError::invalid("the random generator failed"))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| KeyError::invalid(format!("password salt: {e}")))?;
    let phc = hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| KeyError::invalid(format!("password hashing failed: {e}")))?;
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`. A malformed `stored` never matches.
/// The parameters come from `stored`, so hashes made with other parameters still check.
pub fn check(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_checks_its_password_and_no_other() {
        let stored = hash("S3cr:et").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(check("S3cr:et", &stored));
        assert!(!check("S3cr:et ", &stored));
        assert!(!check("", &stored));
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        assert_ne!(hash("pw").unwrap(), hash("pw").unwrap());
    }

    #[test]
    fn malformed_or_foreign_hashes_never_match() {
        assert!(!check("pw", "not a hash"));
        assert!(!check("pw", ""));
        // A bcrypt string is not argon2id.
        assert!(!check(
            "pw",
            "$2b$12$abcdefghijklmnopqrstuuP8Ej0b6q8yZ0FQd1p4sXgQy8sdK6Tq"
        ));
    }
}
