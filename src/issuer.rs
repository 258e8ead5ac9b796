//! Issuing a token to a user: the claims jwtgate writes (`iss`, `sub`, `aud`, `iat`, `nbf`,
//! `exp` unless it is a `never` token, `jti`, `roles`) signed with the active key, which records
//! how long its tokens live so a rotation keeps it as long as needed. Used by `token issue` and
//! by the server's login.

use anyhow::{bail, Result};
use jwtgate_core::sign;
use serde_json::{Map, Value};

use crate::model::{Keyset, Model, User, KEYSET};
use crate::store::Kind;

/// A signed token and the claims a caller reports back.
#[derive(Clone, Debug)]
pub struct Issued {
    pub token: String,
    pub iat: i64,
    pub exp: Option<i64>,
    pub jti: String,
}

/// What to issue.
pub struct Request<'a> {
    pub issuer: &'a str,
    /// Lifetime in seconds; `None` for a token without `exp`.
    pub ttl: Option<i64>,
    pub audiences: &'a [String],
    /// More claims; callers make sure none of them is one jwtgate sets.
    pub extra: Map<String, Value>,
    /// A gate token's scope (`URLs`, `verbs`) and its start (`nbf`; now when `None`). A gate
    /// token carries no `roles`: it opens its paths and nothing else.
    pub gate: Option<Gate<'a>>,
}

/// What a gate token may open, and from when.
pub struct Gate<'a> {
    pub urls: &'a [String],
    pub verbs: &'a [String],
    pub from: Option<i64>,
}

/// Issues a token to `user` (who must not be locked). Waits out the second of the user's
/// `tokens_valid_after`, if it is now: a token issued in it would count as revoked.
pub async fn issue(model: &Model, user: &User, request: Request<'_>) -> Result<Issued> {
    if user.locked {
        bail!("user '{}' is locked; unlock them first", user.name);
    }
    let now = after(user.tokens_valid_after).await?;
    let nbf = request.gate.as_ref().and_then(|g| g.from).unwrap_or(now);
    let exp = request.ttl.map(|secs| nbf.saturating_add(secs));
    let mut random = [0u8; 16];
    jwtgate_core::random::fill(&mut random)?;
    // Hex, so every jti is a valid record name and can be revoked.
    let jti: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut claims = request.extra;
    claims.insert("iss".into(), Value::from(request.issuer));
    claims.insert("sub".into(), Value::from(user.name.clone()));
    match request.audiences {
        [] => {}
        [one] => {
            claims.insert("aud".into(), Value::from(one.clone()));
        }
        many => {
            claims.insert("aud".into(), Value::from(many.to_vec()));
        }
    }
    claims.insert("iat".into(), Value::from(now));
    claims.insert("nbf".into(), Value::from(nbf));
    if let Some(exp) = exp {
        claims.insert("exp".into(), Value::from(exp));
    }
    claims.insert("jti".into(), Value::from(jti.clone()));
    match &request.gate {
        None => {
            claims.insert("roles".into(), Value::from(user.roles.clone()));
        }
        Some(gate) => {
            claims.insert("URLs".into(), Value::from(gate.urls.to_vec()));
            claims.insert("verbs".into(), Value::from(gate.verbs.to_vec()));
        }
    }
    let keyset = model
        .update::<Keyset, anyhow::Error, _>(Kind::Keyset, KEYSET, |ks| {
            ks.note_signed(exp);
            Ok(())
        })
        .await?;
    let key = keyset.active_key()?;
    Ok(Issued {
        token: sign(&claims, &key)?,
        iat: now,
        exp,
        jti,
    })
}

/// The current time, once it is past `cutoff` (at most about a second's wait).
async fn after(cutoff: Option<i64>) -> Result<i64> {
    let Some(cutoff) = cutoff else {
        return Ok(crate::cli::now());
    };
    if cutoff > crate::cli::now() + 5 {
        bail!("the user's tokens_valid_after ({cutoff}) is in the future; is the clock right?");
    }
    loop {
        let now = crate::cli::now();
        if now > cutoff {
            return Ok(now);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
