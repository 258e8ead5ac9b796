//! Compact JWS (RFC 7515 §7.1): the size cap, exactly three segments, canonical unpadded
//! base64url, and the JOSE header rules (pinned `alg`, no `none`, unknown `crit` refused).
//! Key-selecting header members (`jku`, `x5u`, `jwk`, `x5c`) are read past and never used.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde::de::MapAccess;

use crate::alg::Algorithm;
use crate::error::{Part, Reject};
use crate::json::{parse_object, Faults, Loose, Members};

/// Tokens longer than this are refused before any decoding (SPEC §6).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Unpadded base64url that also refuses non-zero trailing bits, so every value has exactly one
/// encoding (a token cannot be altered without changing its bytes).
pub const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// The JOSE header members jwtgate acts on. Everything else is ignored, and `crit` is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub cty: Option<String>,
}

/// A structurally valid compact JWS whose signature has not been checked yet.
#[derive(Debug)]
pub struct Jws<'t> {
    pub header: Header,
    signing_input: &'t str,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    /// Parses a compact JWS. Does not verify the signature.
    pub fn parse(token: &'t str) -> Result<Jws<'t>, Reject> {
        let [h, p, s] = split(token)?;
        let header_bytes = decode(h, Part::Header)?;
        let header = parse_header(&header_bytes)?;
        let payload = decode(p, Part::Payload)?;
        let signature = decode(s, Part::Signature)?;
        Ok(Jws {
            header,
            signing_input: &token[..h.len() + 1 + p.len()],
            payload,
            signature,
        })
    }

    /// The bytes the signature covers: `base64url(header) || '.' || base64url(payload)`.
    pub fn signing_input(&self) -> &[u8] {
        self.signing_input.as_bytes()
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    pub fn into_parts(self) -> (Header, Vec<u8>) {
        (self.header, self.payload)
    }
}

/// Applies the size cap and splits into exactly three segments.
pub fn split(token: &str) -> Result<[&str; 3], Reject> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Reject::TooLarge {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok([h, p, s]),
        _ => Err(Reject::Segments {
            found: token.split('.').count(),
        }),
    }
}

/// Decodes one segment as canonical unpadded base64url.
pub fn decode(segment: &str, part: Part) -> Result<Vec<u8>, Reject> {
    BASE64URL.decode(segment).map_err(|e| Reject::Base64 {
        part,
        reason: describe_base64_error(segment, e),
    })
}

fn describe_base64_error(segment: &str, e: base64::DecodeError) -> String {
    use base64::DecodeError as E;
    if let Some(at) = segment.find('=') {
        return format!("padding '=' at offset {at} is not allowed");
    }
    match e {
        E::InvalidByte(at, byte) => format!(
            "character {:?} at offset {at} is not in the base64url alphabet",
            char::from(byte)
        ),
        E::InvalidLength(len) => format!("length {len} is impossible for base64"),
        E::InvalidLastSymbol(at, _) => {
            format!("non-canonical trailing bits in the character at offset {at}")
        }
        E::InvalidPadding => "invalid padding".into(),
    }
}

/// Parses and checks a decoded JOSE header.
pub fn parse_header(bytes: &[u8]) -> Result<Header, Reject> {
    let mut raw = RawHeader::default();
    parse_object(bytes, Part::Header, &mut raw)?;
    raw.into_header()
}

#[derive(Default)]
struct RawHeader<'de> {
    alg: Option<Loose<'de>>,
    kid: Option<Loose<'de>>,
    typ: Option<Loose<'de>>,
    cty: Option<Loose<'de>>,
    crit: Option<Loose<'de>>,
}

impl<'de> Members<'de> for RawHeader<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        faults: &Faults,
    ) -> Result<bool, A::Error> {
        let slot = match name {
            "alg" => &mut self.alg,
            "kid" => &mut self.kid,
            "typ" => &mut self.typ,
            "cty" => &mut self.cty,
            "crit" => &mut self.crit,
            _ => return Ok(false),
        };
        Self::fill(slot, name, map, faults)
    }
}

/// Header parameters registered by RFC 7515/7516/7518; `crit` must not list them.
const REGISTERED: [&str; 20] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

impl RawHeader<'_> {
    fn into_header(self) -> Result<Header, Reject> {
        let alg = match self.alg {
            None => return Err(invalid_header("has no 'alg' member")),
            Some(Loose::Str(name)) => name,
            Some(other) => {
                return Err(invalid_header(format!(
                    "'alg' must be a string, got {}",
                    other.kind()
                )))
            }
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(Reject::AlgNone {
                alg: alg.into_owned(),
            });
        }
        let Some(alg) = Algorithm::from_name(&alg) else {
            return Err(Reject::UnsupportedAlgorithm {
                alg: alg.into_owned(),
            });
        };
        if let Some(crit) = self.crit {
            // We implement no extension, so any well-formed `crit` names one we do not understand.
            let names = match crit {
                Loose::Strs(names) if !names.is_empty() => names,
                _ => {
                    return Err(invalid_header(
                        "'crit' must be a non-empty array of strings",
                    ))
                }
            };
            if let Some(name) = names.iter().find(|n| REGISTERED.contains(&n.as_str())) {
                return Err(invalid_header(format!(
                    "'crit' lists '{name}', which is not an extension"
                )));
            }
            return Err(Reject::UnknownCrit {
                name: names[0].clone(),
            });
        }
        Ok(Header {
            alg,
            kid: string_member("kid", self.kid)?,
            typ: string_member("typ", self.typ)?,
            cty: string_member("cty", self.cty)?,
        })
    }
}

fn string_member(name: &str, value: Option<Loose>) -> Result<Option<String>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(invalid_header(format!(
            "'{name}' must be a string, got {}",
            other.kind()
        ))),
    }
}

fn invalid_header(reason: impl Into<String>) -> Reject {
    Reject::InvalidHeader {
        reason: reason.into(),
    }
}

/// Decodes header and payload without checking anything but structure: for showing a token
/// to a person. Never use the result to make a decision.
pub fn inspect(token: &str) -> Result<(Vec<u8>, Vec<u8>), Reject> {
    let [h, p, _] = split(token)?;
    Ok((decode(h, Part::Header)?, decode(p, Part::Payload)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        BASE64URL.encode(s)
    }

    fn token_with_header(header: &str) -> String {
        format!("{}.{}.{}", b64(header), b64("{}"), b64("sig"))
    }

    #[test]
    fn alg_none_is_refused_in_any_letter_case() {
        for alg in ["none", "None", "NONE", "nOnE"] {
            let token = token_with_header(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(
                Jws::parse(&token).map(|_| ()),
                Err(Reject::AlgNone { alg: alg.into() })
            );
        }
    }

    #[test]
    fn header_rules_table() {
        let cases: &[(&str, &str)] = &[
            (r#"{"alg":"HS256"}"#, "ok"),
            (r#"{"typ":"JWT"}"#, "invalid_header"),
            (r#"{"alg":256}"#, "invalid_header"),
            (r#"{"alg":"hs256"}"#, "unsupported_alg"),
            (r#"{"alg":"ES256K"}"#, "unsupported_alg"),
            (r#"{"alg":"HS256","kid":7}"#, "invalid_header"),
            (r#"{"alg":"HS256","crit":["exp"],"exp":1}"#, "unknown_crit"),
            (
                r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
                "unknown_crit",
            ),
            (r#"{"alg":"HS256","crit":[]}"#, "invalid_header"),
            (r#"{"alg":"HS256","crit":"exp"}"#, "invalid_header"),
            (r#"{"alg":"HS256","crit":["alg"]}"#, "invalid_header"),
            (r#"{"alg":"HS256","alg":"HS256"}"#, "duplicate_key"),
            (
                r#"{"alg":"HS256","jku":"https://evil","jwk":{"kty":"oct"}}"#,
                "ok",
            ),
            (r#"["alg"]"#, "not_json_object"),
            (r#"{"alg":"HS256""#, "malformed_json"),
        ];
        for (header, want) in cases {
            let got = match Jws::parse(&token_with_header(header)) {
                Ok(_) => "ok",
                Err(e) => e.code(),
            };
            assert_eq!(got, *want, "{header}");
        }
    }

    #[test]
    fn segment_and_size_rules_table() {
        let h = b64(r#"{"alg":"HS256"}"#);
        let p = b64("{}");
        let cases: Vec<(String, &str)> = vec![
            (format!("{h}.{p}.c2ln"), "ok"),
            (format!("{h}.{p}"), "malformed_segments"),
            (format!("{h}.{p}.c2ln.x"), "malformed_segments"),
            (String::new(), "malformed_segments"),
            (format!("{h}.{p}.c2ln="), "malformed_base64"),
            (format!("{h}=.{p}.c2ln"), "malformed_base64"),
            (format!("{h}.{p}.c2l+"), "malformed_base64"),
            (format!("{h}.{p}.c2l/"), "malformed_base64"),
            (format!("{h}.{p}.c2l n"), "malformed_base64"),
            // "c2lo" and "c2lp" both start with the bytes "si"; only the canonical form passes.
            (format!("{h}.{p}.c2k"), "ok"),
            (format!("{h}.{p}.c2l"), "malformed_base64"),
            (format!("{h}.{p}.c"), "malformed_base64"),
            (format!("{h}.{}.c2ln", b64("[]")), "ok"), // payload shape is checked by claims
            (
                format!("{h}.{p}.{}", "A".repeat(MAX_TOKEN_LEN)),
                "too_large",
            ),
        ];
        for (token, want) in cases {
            let got = match Jws::parse(&token) {
                Ok(_) => "ok",
                Err(e) => e.code(),
            };
            assert_eq!(got, want, "{token:.80}");
        }
    }

    #[test]
    fn oversize_token_is_refused_before_decoding() {
        let token = "!".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            Jws::parse(&token).map(|_| ()),
            Err(Reject::TooLarge {
                len: MAX_TOKEN_LEN + 1,
                max: MAX_TOKEN_LEN
            })
        );
    }
}
