//! Signing: turns claims into a compact JWS with a header that names the key's own algorithm
//! and `kid`. `sign_compact` signs caller-chosen header bytes and is exposed only as
//! `dangerous::sign_compact` (this module is private), for conformance vectors and negative tests.

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::KeyError;
use crate::jose::BASE64URL;
use crate::key::Key;

/// Signs `claims` with `key`. The header is `{"alg","kid","typ":"JWT"}`.
pub fn sign(claims: &Map<String, Value>, key: &Key) -> Result<String, KeyError> {
    let mut header = Map::new();
    header.insert("alg".into(), key.alg().name().into());
    header.insert("kid".into(), key.kid().into());
    header.insert("typ".into(), "JWT".into());
    let header = serde_json::to_vec(&header).map_err(|e| KeyError::invalid(e.to_string()))?;
    let payload = serde_json::to_vec(claims).map_err(|e| KeyError::invalid(e.to_string()))?;
    sign_compact(&header, &payload, key)
}

/// Signs exactly these header and payload bytes. Nothing checks that the header's `alg`
/// matches the key: callers use this to build vectors and deliberately wrong tokens.
pub fn sign_compact(header: &[u8], payload: &[u8], key: &Key) -> Result<String, KeyError> {
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 400);
    BASE64URL.encode_string(header, &mut token);
    token.push('.');
    BASE64URL.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    BASE64URL.encode_string(signature, &mut token);
    Ok(token)
}
