//! Compact JWS (RFC 7515 §7.1): the size cap, exactly three segments, canonical unpadded
//! base64url, and the JOSE header rules (pinned `alg`, no `none`, unknown `crit` refused).
//! Key-selecting header members (`jku`, `x5u`, `jwk`, `x5c`) are read past and never used.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;

use crate::alg::Algorithm;
use crate::b64;
use crate::error::{Part, Reject};
use crate::json::{parse_object, utf8, Loose, Members};

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

/// A structurally valid compact JWS whose signature has not been checked yet. The signature
/// is borrowed from a caller's buffer (`parse_with`) or owned (`parse`).
#[derive(Debug)]
pub struct Jws<'t, 'b> {
    /// Shared: a recognised header (see `OwnHeader`) is the key's own, not a copy.
    pub header: Arc<Header>,
    signing_input: &'t str,
    payload: Vec<u8>,
    signature: Cow<'b, [u8]>,
}

/// Room for a signature up to RSA-4096 (512 bytes): `parse_with` needs no more to stay off
/// the heap.
pub const SIGNATURE_BUFFER: usize = 512;
/// Headers up to this size (all but those carrying certificate chains) are decoded on the stack.
const HEADER_INLINE: usize = 384;

impl<'t> Jws<'t, 'static> {
    /// Parses a compact JWS. Does not verify the signature.
    pub fn parse(token: &'t str) -> Result<Jws<'t, 'static>, Reject> {
        let jws = Jws::parse_with(token, &mut [])?;
        Ok(Jws {
            signature: Cow::Owned(jws.signature.into_owned()),
            header: jws.header,
            signing_input: jws.signing_input,
            payload: jws.payload,
        })
    }
}

impl<'t, 'b> Jws<'t, 'b> {
    /// `parse`, decoding the signature into `buffer` when it fits (see `SIGNATURE_BUFFER`):
    /// the verification path allocates nothing for bytes it throws away.
    pub fn parse_with(token: &'t str, buffer: &'b mut [u8]) -> Result<Jws<'t, 'b>, Reject> {
        Jws::parse_known(token, buffer, |_| None)
    }

    /// `parse_with`, taking the parsed header from `known` when it recognises the header
    /// segment (see `OwnHeader`) instead of decoding and parsing it again.
    pub(crate) fn parse_known(
        token: &'t str,
        buffer: &'b mut [u8],
        known: impl FnOnce(&str) -> Option<Arc<Header>>,
    ) -> Result<Jws<'t, 'b>, Reject> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(too_large(token));
        }
        let (h, rest) = token.split_once('.').ok_or_else(|| segments(token))?;
        // The payload's end is found while decoding it. A fault there is reported after the
        // header's and the signature's, as if the segments had been split first.
        let mut payload = Vec::new();
        let (p, payload_fault) = match b64::decode_segment(rest.as_bytes(), &mut payload) {
            Ok(end) if end == rest.len() => return Err(segments(token)),
            Ok(end) => (&rest[..end], None),
            Err(fault) => match split(token) {
                Ok([_, p, _]) => (p, Some(base64_reject(p, Part::Payload, fault))),
                Err(e) => return Err(e),
            },
        };
        let s = &rest[p.len() + 1..];
        let header = match known(h) {
            Some(header) => header,
            None => Arc::new(parse_header(&decode_with(
                h,
                Part::Header,
                &mut [0; HEADER_INLINE],
            )?)?),
        };
        // A fourth segment would leave a '.' here, which base64url refuses: only then is it
        // worth scanning for.
        let signature =
            decode_with(s, Part::Signature, buffer).map_err(|e| match s.contains('.') {
                true => segments(token),
                false => e,
            })?;
        if let Some(fault) = payload_fault {
            return Err(fault);
        }
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

    pub fn into_parts(self) -> (Arc<Header>, Vec<u8>) {
        (self.header, self.payload)
    }
}

/// The header jwtgate writes for one key, `{"alg":…,"kid":…,"typ":"JWT"}`: its encoded
/// segment, and what the strict parser makes of it. A token whose header segment is exactly
/// this (every token jwtgate issued with the key) skips decoding and parsing its header: the
/// result would be the same `Header`.
#[derive(Clone, Debug)]
pub(crate) struct OwnHeader {
    pub(crate) segment: Box<str>,
    pub(crate) header: Arc<Header>,
}

impl OwnHeader {
    pub(crate) fn new(alg: Algorithm, kid: &str) -> Option<OwnHeader> {
        let json = serde_json::json!({ "alg": alg.name(), "kid": kid, "typ": "JWT" });
        let bytes = serde_json::to_vec(&json).ok()?;
        Some(OwnHeader {
            segment: BASE64URL.encode(&bytes).into(),
            header: Arc::new(parse_header(&bytes).ok()?),
        })
    }
}

/// Decodes `segment` into `buffer` when it fits, else onto the heap.
fn decode_with<'b>(
    segment: &str,
    part: Part,
    buffer: &'b mut [u8],
) -> Result<Cow<'b, [u8]>, Reject> {
    let fault = |e| base64_reject(segment, part, e);
    let len = b64::decoded_len(segment.len()).map_err(fault)?;
    if len > buffer.len() {
        return decode(segment, part).map(Cow::Owned);
    }
    b64::decode_into(segment.as_bytes(), buffer).map_err(fault)?;
    Ok(Cow::Borrowed(&buffer[..len]))
}

/// Applies the size cap and splits into exactly three segments.
pub fn split(token: &str) -> Result<[&str; 3], Reject> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(too_large(token));
    }
    let three = token.split_once('.').and_then(|(h, rest)| {
        let (p, s) = rest.split_once('.')?;
        (!s.contains('.')).then_some([h, p, s])
    });
    three.ok_or_else(|| segments(token))
}

#[cold]
#[inline(never)]
fn too_large(token: &str) -> Reject {
    Reject::TooLarge {
        len: token.len(),
        max: MAX_TOKEN_LEN,
    }
}

#[cold]
#[inline(never)]
fn segments(token: &str) -> Reject {
    Reject::Segments {
        found: token.split('.').count(),
    }
}

/// Decodes one segment as canonical unpadded base64url.
pub fn decode(segment: &str, part: Part) -> Result<Vec<u8>, Reject> {
    b64::decode(segment.as_bytes()).map_err(|e| base64_reject(segment, part, e))
}

#[cold]
#[inline(never)]
fn base64_reject(segment: &str, part: Part, fault: b64::Fault) -> Reject {
    let reason = match (segment.find('='), fault) {
        (Some(at), _) => format!("padding '=' at offset {at} is not allowed"),
        (None, b64::Fault::Byte { at, byte }) => format!(
            "character {:?} at offset {at} is not in the base64url alphabet",
            char::from(byte)
        ),
        (None, b64::Fault::Length(len)) => format!("length {len} is impossible for base64"),
        (None, b64::Fault::TrailingBits { at }) => {
            format!("non-canonical trailing bits in the character at offset {at}")
        }
    };
    Reject::Base64 { part, reason }
}

/// Parses and checks a decoded JOSE header.
pub fn parse_header(bytes: &[u8]) -> Result<Header, Reject> {
    let text = utf8(bytes, Part::Header)?;
    let mut raw = RawHeader::default();
    parse_object(text, Part::Header, &mut raw)?;
    raw.into_header(text)
}

#[derive(Default)]
struct RawHeader {
    alg: Option<Loose>,
    kid: Option<Loose>,
    typ: Option<Loose>,
    cty: Option<Loose>,
    crit: Option<Loose>,
}

impl Members for RawHeader {
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Loose>> {
        // Byte patterns compile to a decision tree, string patterns to a memcmp per candidate.
        Some(match name {
            [b'a', b'l', b'g'] => &mut self.alg,
            [b'k', b'i', b'd'] => &mut self.kid,
            [b't', b'y', b'p'] => &mut self.typ,
            [b'c', b't', b'y'] => &mut self.cty,
            [b'c', b'r', b'i', b't'] => &mut self.crit,
            _ => return None,
        })
    }
}

/// Header parameters registered by RFC 7515/7516/7518; `crit` must not list them.
const REGISTERED: [&str; 20] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

impl RawHeader {
    /// Types the members; `text` is the header JSON their `Text`s point into.
    fn into_header(self, text: &str) -> Result<Header, Reject> {
        let alg = match &self.alg {
            None => return Err(invalid_header("has no 'alg' member")),
            Some(Loose::Str(name)) => name.get(text),
            Some(other) => {
                return Err(invalid_header(format!(
                    "'alg' must be a string, got {}",
                    other.kind()
                )))
            }
        };
        if alg.eq_ignore_ascii_case("none") {
            return Err(Reject::AlgNone { alg: alg.into() });
        }
        let Some(alg) = Algorithm::from_name(alg) else {
            return Err(Reject::UnsupportedAlgorithm { alg: alg.into() });
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
            let mut names = names.iter().map(|n| n.get(text));
            if let Some(name) = names.clone().find(|n| REGISTERED.contains(n)) {
                return Err(invalid_header(format!(
                    "'crit' lists '{name}', which is not an extension"
                )));
            }
            return Err(Reject::UnknownCrit {
                name: names.next().unwrap_or_default().into(),
            });
        }
        Ok(Header {
            alg,
            kid: string_member("kid", self.kid, text)?,
            typ: string_member("typ", self.typ, text)?,
            cty: string_member("cty", self.cty, text)?,
        })
    }
}

fn string_member(name: &str, value: Option<Loose>, text: &str) -> Result<Option<String>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s.get(text).to_owned())),
        Some(other) => Err(not_a_string(name, &other)),
    }
}

#[cold]
#[inline(never)]
fn not_a_string(name: &str, got: &Loose) -> Reject {
    invalid_header(format!("'{name}' must be a string, got {}", got.kind()))
}

#[cold]
#[inline(never)]
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
