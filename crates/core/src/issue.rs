//! Signing: turns claims into a compact JWS with a header that names the key's own algorithm
//! and `kid`. `sign_compact` signs caller-chosen header bytes and is exposed only as
//! `dangerous::sign_compact` (this module is private), for conformance vectors and negative tests.

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::KeyError;
use crate::jose::BASE64URL;
use crate::key::Key;

/// Signs `claims` with `key`. The header is `{"alg","kid","typ":"JWT"}`, the key's own (see
/// `jose::OwnHeader`), so verifiers holding the key recognise it without parsing.
pub fn sign(claims: &Map<String, Value>, key: &Key) -> Result<String, KeyError> {
    let own = key
        .own_header()
        .ok_or_else(|| KeyError::invalid(format!("key '{}' has no header", key.kid())))?;
    let payload = serde_json::to_vec(claims).map_err(|e| KeyError::invalid(e.to_string()))?;
    let mut token = String::with_capacity(own.segment.len() + payload.len() * 4 / 3 + 400);
    token.push_str(&own.segment);
    finish(token, &payload, key)
}

/// Signs exactly these header and payload bytes. Nothing checks that the header's `alg`
/// matches the key: callers use this to build vectors and deliberately wrong tokens.
pub fn sign_compact(header: &[u8], payload: &[u8], key: &Key) -> Result<String, KeyError> {
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 400);
    BASE64URL.encode_string(header, &mut token);
    finish(token, payload, key)
}

/// Appends `.payload.signature` to `token`, which holds the encoded header.
fn finish(mut token: String, payload: &[u8], key: &Key) -> Result<String, KeyError> {
    token.push('.');
    BASE64URL.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    BASE64URL.encode_string(signature, &mut token);
    Ok(token)
}
