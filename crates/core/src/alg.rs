//! The JWS algorithms jwtgate supports (RFC 7518 §3, RFC 8037) and what each one needs from a key.
//! An `Algorithm` is always chosen by the key that is bound to it, never by a token's header.

use std::fmt;

/// A JWS signature algorithm. `none` is deliberately not representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// The key type an algorithm needs (the JWK `kty` member).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Oct,
    Rsa,
    Ec,
    Okp,
}

impl Algorithm {
    pub const ALL: [Algorithm; 13] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    /// The registered name, exactly as it appears in a JOSE header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Looks up a registered name. Names are case-sensitive (RFC 7515 §4.1.1).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn key_type(self) -> KeyType {
        match self {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyType::Oct,
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyType::Rsa,
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => KeyType::Ec,
            Algorithm::EdDSA => KeyType::Okp,
        }
    }

    /// Length in bytes of the hash behind the algorithm; the minimum HMAC key length
    /// (RFC 7518 §3.2).
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => 32,
            Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => 48,
            Algorithm::HS512 | Algorithm::RS512 | Algorithm::PS512 | Algorithm::ES512 => 64,
            Algorithm::EdDSA => 64,
        }
    }

    /// The curve an EC or OKP algorithm is tied to.
    pub fn curve(self) -> Option<Curve> {
        match self {
            Algorithm::ES256 => Some(Curve::P256),
            Algorithm::ES384 => Some(Curve::P384),
            Algorithm::ES512 => Some(Curve::P521),
            Algorithm::EdDSA => Some(Curve::Ed25519),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
            format!("unknown algorithm '{s}' (supported: {})", names.join(", "))
        })
    }
}

/// A named curve (JWK `crv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
    P521,
    Ed25519,
}

impl Curve {
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Ed25519 => "Ed25519",
        }
    }

    pub fn from_name(name: &str) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::Ed25519]
            .into_iter()
            .find(|c| c.name() == name)
    }

    /// Byte length of one coordinate (or of the whole public key for Ed25519).
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
            Curve::Ed25519 => 32,
        }
    }

    /// The curve's size in bits (what `--size` means for it).
    pub fn bits(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 => 256,
            Curve::P384 => 384,
            Curve::P521 => 521,
        }
    }

    /// The one algorithm a key on this curve is bound to.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Curve::P256 => Algorithm::ES256,
            Curve::P384 => Algorithm::ES384,
            Curve::P521 => Algorithm::ES512,
            Curve::Ed25519 => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("hs256"), None);
        assert_eq!(Algorithm::from_name("none"), None);
    }
}
