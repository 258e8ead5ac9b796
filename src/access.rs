//! What is decided after a token's signature and claims passed: revocation (SPEC §1). A token
//! is refused when its `jti` is denylisted, its user is locked or gone, or it was issued before
//! the user's `tokens_valid_after`. The auth server and the gateway will call this same check.

use jwtgate_core::Claims;

use crate::model::{Model, Revocation, User};
use crate::store::{Kind, StoreError};

/// Why a valid token is refused anyway.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("token revoked (jti '{jti}')")]
    RevokedJti { jti: String },
    #[error("token has no 'sub', so its user cannot be checked")]
    NoSubject,
    #[error("user '{user}' no longer exists")]
    UnknownUser { user: String },
    #[error("user '{user}' is locked")]
    Locked { user: String },
    #[error("token was issued before the tokens of user '{user}' were revoked")]
    IssuedBeforeRevocation { user: String },
}

/// Checks revocation for a verified token's claims. The outer error is the store failing.
pub async fn check_revocation(
    model: &Model,
    claims: &Claims,
) -> Result<Result<(), Denied>, StoreError> {
    if let Some(jti) = claims.jti() {
        let revoked = match crate::store::check_name(Kind::Revocation, jti) {
            Ok(()) => model.get::<Revocation>(Kind::Revocation, jti).await?,
            // A jti jwtgate could not have stored cannot be on the denylist.
            Err(_) => None,
        };
        if revoked.is_some() {
            return Ok(Err(Denied::RevokedJti { jti: jti.into() }));
        }
    }
    let Some(name) = claims.sub() else {
        return Ok(Err(Denied::NoSubject));
    };
    let user = match crate::store::check_name(Kind::User, name) {
        Ok(()) => model.get::<User>(Kind::User, name).await?,
        Err(_) => None,
    };
    let Some(user) = user.map(|v| v.value) else {
        return Ok(Err(Denied::UnknownUser { user: name.into() }));
    };
    if user.locked {
        return Ok(Err(Denied::Locked { user: user.name }));
    }
    if let Some(after) = user.tokens_valid_after {
        // Without `iat` the token's age is unknown: refused (fail closed).
        if claims.iat().is_none_or(|iat| iat <= after) {
            return Ok(Err(Denied::IssuedBeforeRevocation { user: user.name }));
        }
    }
    Ok(Ok(()))
}
