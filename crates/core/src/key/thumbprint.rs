//! JWK thumbprints (RFC 7638): SHA-256 over the required members in lexicographic order,
//! without whitespace. Used as the default `kid`.

use aws_lc_rs::digest;
use base64::Engine;

use super::{Key, Material};
use crate::jose::BASE64URL;

impl Key {
    /// The RFC 7638 SHA-256 thumbprint, base64url.
    pub fn thumbprint(&self) -> String {
        let b64 = |b: &[u8]| BASE64URL.encode(b);
        let canonical = match &self.material {
            Material::Hmac { secret, .. } => {
                format!(r#"{{"k":"{}","kty":"oct"}}"#, b64(secret))
            }
            Material::Rsa { n, e, .. } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64(e), b64(n))
            }
            Material::Ec { point, .. } => {
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                let crv = self.alg.curve().map_or("", |c| c.name());
                format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    b64(x),
                    b64(y)
                )
            }
            Material::Ed { x, .. } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64(x))
            }
        };
        digest_b64(canonical.as_bytes())
    }
}

/// SHA-256, base64url.
pub(crate) fn digest_b64(bytes: &[u8]) -> String {
    BASE64URL.encode(digest::digest(&digest::SHA256, bytes))
}
