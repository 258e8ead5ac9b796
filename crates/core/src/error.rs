//! Typed reasons: why a token was refused (`Reject`) and why a key could not be used (`KeyError`).
//! Each `Reject` variant carries the values involved and a stable `code()` for JSON and metrics.

use thiserror::Error;

use crate::alg::Algorithm;

/// Which of the three compact-serialisation segments a structural fault is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Header,
    Payload,
    Signature,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
        })
    }
}

/// Why a token was refused. Messages are meant for people; `code()` is for machines.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Reject {
    #[error("token is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("token must have 3 dot-separated segments, found {found}")]
    Segments { found: usize },
    #[error("{part} is not canonical unpadded base64url: {reason}")]
    Base64 { part: Part, reason: String },
    #[error("{part} is not valid JSON: {reason}")]
    Json { part: Part, reason: String },
    #[error("{part} is not a JSON object")]
    NotObject { part: Part },
    #[error("{part} has the member '{key}' more than once")]
    DuplicateKey { part: Part, key: String },
    #[error("header {reason}")]
    InvalidHeader { reason: String },
    #[error("algorithm '{alg}' (unsecured JWS) is never accepted")]
    AlgNone { alg: String },
    #[error("algorithm '{alg}' is not supported")]
    UnsupportedAlgorithm { alg: String },
    #[error("algorithm {alg} not allowed for key '{kid}' (bound to {bound})")]
    AlgorithmMismatch {
        alg: Algorithm,
        kid: String,
        bound: Algorithm,
    },
    #[error(
        "no key for algorithm {alg} (keys are bound to [{}])",
        join_algs(bound)
    )]
    NoKeyForAlgorithm {
        alg: Algorithm,
        bound: Vec<Algorithm>,
    },
    #[error("unknown key id '{kid}'")]
    UnknownKid { kid: String },
    #[error("critical header extension '{name}' is not understood")]
    UnknownCrit { name: String },
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired {ago}s ago")]
    Expired { ago: u64 },
    #[error("not valid for another {secs}s")]
    NotYetValid { secs: u64 },
    #[error("issued {secs}s in the future")]
    IssuedInFuture { secs: u64 },
    #[error("required claim '{claim}' is missing")]
    MissingClaim { claim: String },
    #[error("claim '{claim}' {reason}")]
    InvalidClaim { claim: String, reason: String },
    #[error("issuer mismatch: expected '{expected}', got '{got}'")]
    IssuerMismatch { expected: String, got: String },
    #[error("audience mismatch: expected one of [{}], got [{}]", expected.join(", "), got.join(", "))]
    AudienceMismatch {
        expected: Vec<String>,
        got: Vec<String>,
    },
    /// RFC 7519 §4.1.3: a verifier that is not among the token's audiences must refuse it.
    #[error("token is for audience [{}], and no audience is configured here to accept it", got.join(", "))]
    AudienceNotAccepted { got: Vec<String> },
}

fn join_algs(algs: &[Algorithm]) -> String {
    algs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

impl Reject {
    /// A stable identifier for JSON error bodies, metrics labels and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::TooLarge { .. } => "too_large",
            Reject::Segments { .. } => "malformed_segments",
            Reject::Base64 { .. } => "malformed_base64",
            Reject::Json { .. } => "malformed_json",
            Reject::NotObject { .. } => "not_json_object",
            Reject::DuplicateKey { .. } => "duplicate_key",
            Reject::InvalidHeader { .. } => "invalid_header",
            Reject::AlgNone { .. } => "alg_none",
            Reject::UnsupportedAlgorithm { .. } => "unsupported_alg",
            Reject::AlgorithmMismatch { .. } => "alg_mismatch",
            Reject::NoKeyForAlgorithm { .. } => "no_key_for_alg",
            Reject::UnknownKid { .. } => "unknown_kid",
            Reject::UnknownCrit { .. } => "unknown_crit",
            Reject::BadSignature => "bad_signature",
            Reject::Expired { .. } => "expired",
            Reject::NotYetValid { .. } => "not_yet_valid",
            Reject::IssuedInFuture { .. } => "issued_in_future",
            Reject::MissingClaim { .. } => "missing_claim",
            Reject::InvalidClaim { .. } => "invalid_claim",
            Reject::IssuerMismatch { .. } => "issuer_mismatch",
            Reject::AudienceMismatch { .. } | Reject::AudienceNotAccepted { .. } => {
                "audience_mismatch"
            }
        }
    }
}

/// Why a key could not be parsed, built or used.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("key '{kid}' is bound to {bound}, not {requested}")]
    AlgorithmConflict {
        kid: String,
        bound: Algorithm,
        requested: Algorithm,
    },
    #[error("{what} does not say which algorithm it is for; give one (e.g. --alg {example})")]
    AlgorithmNeeded {
        what: &'static str,
        example: &'static str,
    },
    #[error("HMAC key for {alg} is {len} bytes; at least {min} bytes are required")]
    HmacTooShort {
        alg: Algorithm,
        len: usize,
        min: usize,
    },
    #[error("key '{kid}' has no private part; signing needs the private key")]
    NotPrivate { kid: String },
    #[error("{0}")]
    Format(String),
}

impl KeyError {
    pub(crate) fn invalid(msg: impl Into<String>) -> KeyError {
        KeyError::Invalid(msg.into())
    }
}
