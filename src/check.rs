//! The one token check a running server makes, for `/auth`, the session endpoints, the admin
//! API and (next) the gateway: the verdict cache, then signature and claims (`verify`) with the
//! server's rules, then revocation and the user's current roles (the `Directory`). No HTTP in
//! here: a token goes in, an `Accepted` or a `Refusal` comes out.

use std::sync::Arc;

use jwtgate_core::{verify, Reject};

use crate::access::Denied;
use crate::state::{Accepted, AppState};

/// Why a token is refused: it is not a valid token, or it is valid but revoked (or its user
/// is locked or gone).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Invalid(#[from] Reject),
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl Refusal {
    /// A stable code for JSON bodies, challenges and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Invalid(reject) => reject.code(),
            Refusal::Denied(denied) => denied.code(),
        }
    }
}

/// Checks `token` at `now`. Counts the outcome in the metrics; a refusal is logged at debug
/// level with the token's fingerprint only.
pub fn check(state: &AppState, token: &str, now: i64) -> Result<Arc<Accepted>, Refusal> {
    if let Some(accepted) = state.cached(token, now) {
        state.metrics.cache_hit();
        state.metrics.check("accepted");
        return Ok(accepted);
    }
    // Read before verifying: a change that lands meanwhile makes the verdict stale at once.
    let generation = state.generation();
    let result = decide(state, token, now).map(|accepted| Arc::new(accepted.at(generation)));
    match &result {
        Ok(accepted) => {
            state.metrics.check("accepted");
            state.remember(token, accepted);
        }
        Err(refusal) => {
            state.metrics.check(refusal.code());
            tracing::debug!(
                token = %jwtgate_core::fingerprint(token),
                reason = refusal.code(),
                "token refused"
            );
        }
    }
    result
}

fn decide(state: &AppState, token: &str, now: i64) -> Result<Accepted, Refusal> {
    let keys = state.keys();
    let verified = verify(token, &keys.keyset, state.rules(), now)?;
    let accepted = state.with_directory(|d| {
        d.check(&verified.claims)
            .map(|u| Accepted::new(u.name.clone(), u.roles.clone(), &verified.claims))
    })?;
    Ok(accepted)
}
