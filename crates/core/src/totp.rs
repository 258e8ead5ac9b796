//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): codes, the `otpauth://`
//! enrolment URI, and checking a code with ±1 step of skew where a step may be used only once.
//! Time comes in as an argument; the caller stores the last step used.

use aws_lc_rs::hmac;
use base64::Engine;

use crate::ct_eq;

/// The hash under the HMAC. Authenticator apps expect SHA1; SHA256/512 exist for RFC 6238's
/// vectors and for apps that support them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpHash {
    Sha1,
    Sha256,
    Sha512,
}

impl TotpHash {
    fn hmac(self) -> hmac::Algorithm {
        match self {
            TotpHash::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            TotpHash::Sha256 => hmac::HMAC_SHA256,
            TotpHash::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn name(self) -> &'static str {
        match self {
            TotpHash::Sha1 => "SHA1",
            TotpHash::Sha256 => "SHA256",
            TotpHash::Sha512 => "SHA512",
        }
    }
}

/// A TOTP configuration: jwtgate uses SHA1, 6 digits, 30-second steps (what every
/// authenticator app accepts).
#[derive(Clone, Debug)]
pub struct Totp {
    secret: Vec<u8>,
    hash: TotpHash,
    digits: u32,
    step: u64,
}

/// Why a code was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the code must be {digits} digits")]
    Malformed { digits: u32 },
    #[error("the code is wrong or expired")]
    Wrong,
    #[error("the code was already used")]
    Replayed,
}

/// RFC 4648 base32 without padding: the secret's form in `otpauth://` URIs.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl Totp {
    /// The standard configuration over `secret` (20 random bytes for a new enrolment).
    pub fn new(secret: Vec<u8>) -> Totp {
        Totp::with(secret, TotpHash::Sha1, 6, 30)
    }

    pub fn with(secret: Vec<u8>, hash: TotpHash, digits: u32, step: u64) -> Totp {
        Totp {
            secret,
            hash,
            digits: digits.clamp(6, 9),
            step: step.max(1),
        }
    }

    /// A new random 160-bit secret (RFC 4226 §4 recommends 160 bits).
    pub fn generate_secret() -> Result<Vec<u8>, crate::KeyError> {
        let mut secret = vec![0; 20];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| crate::KeyError::invalid("the random generator failed"))?;
        Ok(secret)
    }

    /// The time step `now` (seconds since the epoch) falls in.
    pub fn step_at(&self, now: i64) -> u64 {
        u64::try_from(now).unwrap_or(0) / self.step
    }

    /// The code for step `counter` (RFC 4226 §5.3 dynamic truncation).
    pub fn code_at_step(&self, counter: u64) -> String {
        let key = hmac::Key::new(self.hash.hmac(), &self.secret);
        let mac = hmac::sign(&key, &counter.to_be_bytes());
        let mac = mac.as_ref();
        let offset = usize::from(mac[mac.len() - 1] & 0x0f);
        let binary = u32::from_be_bytes([
            mac[offset] & 0x7f,
            mac[offset + 1],
            mac[offset + 2],
            mac[offset + 3],
        ]);
        let code = u64::from(binary) % 10u64.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }

    /// The code at time `now`.
    pub fn code_at(&self, now: i64) -> String {
        self.code_at_step(self.step_at(now))
    }

    /// Checks `code` at time `now`, accepting the previous, current and next step. A step at or
    /// before `last_used` is refused, so each code works once. Returns the step to store as the
    /// new `last_used`.
    pub fn check(&self, code: &str, now: i64, last_used: Option<u64>) -> Result<u64, TotpError> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TotpError::Malformed {
                digits: self.digits,
            });
        }
        let current = self.step_at(now);
        // Every candidate is computed and compared, so timing does not tell which step matched.
        let mut matched = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            if ct_eq(self.code_at_step(step).as_bytes(), code.as_bytes()) && matched.is_none() {
                matched = Some(step);
            }
        }
        let step = matched.ok_or(TotpError::Wrong)?;
        if last_used.is_some_and(|used| step <= used) {
            return Err(TotpError::Replayed);
        }
        Ok(step)
    }

    /// The secret in base32 (no padding), as authenticator apps take it when typed in.
    pub fn secret_base32(&self) -> String {
        base32(&self.secret)
    }

    /// The `otpauth://totp/ISSUER:ACCOUNT?…` URI that authenticator apps scan.
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", percent(issuer), percent(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
            self.secret_base32(),
            percent(issuer),
            self.hash.name(),
            self.digits,
            self.step
        )
    }

    /// The secret as stored (base64url), and back.
    pub fn secret_text(&self) -> String {
        crate::jose::BASE64URL.encode(&self.secret)
    }

    pub fn from_secret_text(text: &str) -> Option<Totp> {
        crate::jose::BASE64URL.decode(text).ok().map(Totp::new)
    }
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            let index = (n >> (35 - 5 * i)) & 0x1f;
            out.push(char::from(BASE32[index as usize]));
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn a_code_works_once_and_within_one_step() {
        let totp = Totp::new(b"12345678901234567890".to_vec());
        let now = 1_700_000_000;
        let code = totp.code_at(now);
        let step = totp.check(&code, now, None).unwrap();
        assert_eq!(totp.check(&code, now, Some(step)), Err(TotpError::Replayed));
        // The previous step's code is still accepted once, the one before is not.
        assert!(totp.check(&totp.code_at(now - 30), now, None).is_ok());
        assert_eq!(
            totp.check(&totp.code_at(now - 90), now, None),
            Err(TotpError::Wrong)
        );
        // An earlier step than the last one used is a replay too.
        let earlier = totp.code_at(now - 30);
        assert_eq!(
            totp.check(&earlier, now, Some(step)),
            Err(TotpError::Replayed)
        );
        assert_eq!(
            totp.check("12a456", now, None),
            Err(TotpError::Malformed { digits: 6 })
        );
    }

    #[test]
    fn uri_has_the_fields_authenticator_apps_read() {
        let totp = Totp::new(b"12345678901234567890".to_vec());
        assert_eq!(
            totp.uri("jwtgate", "ann@example.com"),
            "otpauth://totp/jwtgate:ann%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=jwtgate&algorithm=SHA1&digits=6&period=30"
        );
    }
}
