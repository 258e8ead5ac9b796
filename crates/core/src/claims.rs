//! JWT claims (RFC 7519 §4) and the rules a verifier applies to them: `exp`, `nbf`, `iat` with
//! leeway, exact `iss`, any-of `aud`, required claims. A wrongly typed registered claim is an
//! error, never "absent": `"exp": null` does not make a token immortal.

use serde::de::MapAccess;

use crate::error::{Part, Reject};
use crate::json::{parse_object, Faults, Loose, Members};

/// The claims jwtgate reads, typed. Other claims stay in the payload (see `Verified::claim`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    /// `None` when absent; a single string becomes a one-element list.
    pub aud: Option<Vec<String>>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    /// ClusterCockpit's `roles`.
    pub roles: Option<Vec<String>>,
    /// Gate-token path scope (kube-gateway's `URLs`).
    pub urls: Option<Vec<String>>,
    /// Gate-token HTTP methods (kube-gateway's `verbs`).
    pub verbs: Option<Vec<String>>,
}

/// Registered claims a `Rules` can require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registered {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
}

impl Registered {
    pub fn name(self) -> &'static str {
        match self {
            Registered::Iss => "iss",
            Registered::Sub => "sub",
            Registered::Aud => "aud",
            Registered::Exp => "exp",
            Registered::Nbf => "nbf",
            Registered::Iat => "iat",
            Registered::Jti => "jti",
        }
    }

    fn present(self, c: &Claims) -> bool {
        match self {
            Registered::Iss => c.iss.is_some(),
            Registered::Sub => c.sub.is_some(),
            Registered::Aud => c.aud.is_some(),
            Registered::Exp => c.exp.is_some(),
            Registered::Nbf => c.nbf.is_some(),
            Registered::Iat => c.iat.is_some(),
            Registered::Jti => c.jti.is_some(),
        }
    }
}

impl Claims {
    /// Parses a JWT payload: one JSON object, no repeated names, registered claims well typed.
    pub fn parse(payload: &[u8]) -> Result<Claims, Reject> {
        let mut raw = RawClaims::default();
        parse_object(payload, Part::Payload, &mut raw)?;
        raw.into_claims()
    }
}

#[derive(Default)]
struct RawClaims<'de> {
    iss: Option<Loose<'de>>,
    sub: Option<Loose<'de>>,
    aud: Option<Loose<'de>>,
    exp: Option<Loose<'de>>,
    nbf: Option<Loose<'de>>,
    iat: Option<Loose<'de>>,
    jti: Option<Loose<'de>>,
    roles: Option<Loose<'de>>,
    urls: Option<Loose<'de>>,
    verbs: Option<Loose<'de>>,
}

impl<'de> Members<'de> for RawClaims<'de> {
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        faults: &Faults,
    ) -> Result<bool, A::Error> {
        let slot = match name {
            "iss" => &mut self.iss,
            "sub" => &mut self.sub,
            "aud" => &mut self.aud,
            "exp" => &mut self.exp,
            "nbf" => &mut self.nbf,
            "iat" => &mut self.iat,
            "jti" => &mut self.jti,
            "roles" => &mut self.roles,
            "URLs" => &mut self.urls,
            "verbs" => &mut self.verbs,
            _ => return Ok(false),
        };
        Self::fill(slot, name, map, faults)
    }
}

impl RawClaims<'_> {
    fn into_claims(self) -> Result<Claims, Reject> {
        Ok(Claims {
            iss: string("iss", self.iss)?,
            sub: string("sub", self.sub)?,
            aud: match self.aud {
                None => None,
                Some(Loose::Str(s)) => Some(vec![s.into_owned()]),
                Some(Loose::Strs(list)) => Some(list),
                Some(other) => {
                    return Err(invalid(
                        "aud",
                        format!(
                            "must be a string or an array of strings, got {}",
                            other.kind()
                        ),
                    ))
                }
            },
            exp: numeric_date("exp", self.exp, Round::Down)?,
            nbf: numeric_date("nbf", self.nbf, Round::Up)?,
            iat: numeric_date("iat", self.iat, Round::Up)?,
            jti: string("jti", self.jti)?,
            roles: strings("roles", self.roles)?,
            urls: strings("URLs", self.urls)?,
            verbs: strings("verbs", self.verbs)?,
        })
    }
}

fn invalid(claim: &str, reason: impl Into<String>) -> Reject {
    Reject::InvalidClaim {
        claim: claim.into(),
        reason: reason.into(),
    }
}

fn string(claim: &str, value: Option<Loose>) -> Result<Option<String>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s.into_owned())),
        Some(other) => Err(invalid(
            claim,
            format!("must be a string, got {}", other.kind()),
        )),
    }
}

fn strings(claim: &str, value: Option<Loose>) -> Result<Option<Vec<String>>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Strs(list)) => Ok(Some(list)),
        Some(other) => Err(invalid(
            claim,
            format!("must be an array of strings, got {}", other.kind()),
        )),
    }
}

/// Which way a fractional NumericDate is rounded: always toward the stricter reading.
enum Round {
    /// `exp`: a token expires no later than it says.
    Down,
    /// `nbf`, `iat`: a token starts no earlier than it says.
    Up,
}

/// A NumericDate (RFC 7519 §2): seconds since the epoch, possibly fractional.
fn numeric_date(claim: &str, value: Option<Loose>, round: Round) -> Result<Option<i64>, Reject> {
    // Keep dates well inside i64 so arithmetic with `now` and leeway cannot overflow.
    const LIMIT: i64 = 1 << 52;
    let secs = match value {
        None => return Ok(None),
        Some(Loose::Int(n)) => n,
        Some(Loose::Float(f)) if f.is_finite() && f.abs() < LIMIT as f64 => match round {
            Round::Down => f.floor() as i64,
            Round::Up => f.ceil() as i64,
        },
        Some(Loose::Float(_) | Loose::Huge) => LIMIT,
        Some(other) => {
            return Err(invalid(
                claim,
                format!("must be a number (NumericDate), got {}", other.kind()),
            ))
        }
    };
    if !(-LIMIT..LIMIT).contains(&secs) {
        return Err(invalid(claim, "is out of range"));
    }
    Ok(Some(secs))
}

/// What a verifier demands of a token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Exact match when set.
    pub issuer: Option<String>,
    /// The token's `aud` must contain at least one of these; empty means no check.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// Claims that must be present. `exp` is required by default (SPEC §6).
    pub required: Vec<Registered>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            issuer: None,
            audiences: Vec::new(),
            leeway: 60,
            required: vec![Registered::Exp],
        }
    }
}

impl Rules {
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    pub fn require(mut self, claim: Registered) -> Self {
        if !self.required.contains(&claim) {
            self.required.push(claim);
        }
        self
    }

    /// Accepts tokens without `exp`. Only for issuers that deliberately mint non-expiring,
    /// revocable tokens (ClusterCockpit's API tokens, `--ttl never`).
    pub fn allow_missing_exp(mut self) -> Self {
        self.required.retain(|c| *c != Registered::Exp);
        self
    }

    /// Checks `claims` at time `now` (seconds since the epoch).
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), Reject> {
        if let Some(missing) = self.required.iter().find(|c| !c.present(claims)) {
            return Err(Reject::MissingClaim {
                claim: missing.name().into(),
            });
        }
        let leeway = i64::try_from(self.leeway)
            .unwrap_or(i64::MAX / 4)
            .min(1 << 40);
        if let Some(exp) = claims.exp {
            // RFC 7519 §4.1.4: not accepted on or after exp.
            if now >= exp.saturating_add(leeway) {
                return Err(Reject::Expired {
                    ago: now.saturating_sub(exp).unsigned_abs(),
                });
            }
        }
        if let Some(nbf) = claims.nbf {
            if now.saturating_add(leeway) < nbf {
                return Err(Reject::NotYetValid {
                    secs: nbf.saturating_sub(now).unsigned_abs(),
                });
            }
        }
        if let Some(iat) = claims.iat {
            if now.saturating_add(leeway) < iat {
                return Err(Reject::IssuedInFuture {
                    secs: iat.saturating_sub(now).unsigned_abs(),
                });
            }
        }
        if let Some(expected) = &self.issuer {
            match &claims.iss {
                None => {
                    return Err(Reject::MissingClaim {
                        claim: "iss".into(),
                    })
                }
                Some(got) if !crate::ct_eq(got.as_bytes(), expected.as_bytes()) => {
                    return Err(Reject::IssuerMismatch {
                        expected: expected.clone(),
                        got: got.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        if self.audiences.is_empty() {
            if let Some(got) = &claims.aud {
                return Err(Reject::AudienceNotAccepted { got: got.clone() });
            }
        } else {
            let Some(got) = &claims.aud else {
                return Err(Reject::MissingClaim {
                    claim: "aud".into(),
                });
            };
            if !got.iter().any(|a| self.audiences.contains(a)) {
                return Err(Reject::AudienceMismatch {
                    expected: self.audiences.clone(),
                    got: got.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn claims(json: &str) -> Result<Claims, Reject> {
        Claims::parse(json.as_bytes())
    }

    fn check(rules: &Rules, json: &str) -> Result<(), Reject> {
        rules.check(&claims(json)?, NOW)
    }

    #[test]
    fn expired_token_says_how_long_ago() {
        let json = format!(r#"{{"exp":{}}}"#, NOW - 97);
        let err = check(&Rules::default(), &json).unwrap_err();
        assert_eq!(err, Reject::Expired { ago: 97 });
        assert_eq!(err.to_string(), "token expired 97s ago");
    }

    #[test]
    fn leeway_applies_to_exp_nbf_and_iat() {
        let cases = [
            (
                format!(r#"{{"exp":{}}}"#, NOW - 37),
                Rules::default(),
                Ok(()),
            ),
            (
                format!(r#"{{"exp":{}}}"#, NOW - 37),
                Rules::default().leeway(0),
                Err(Reject::Expired { ago: 37 }),
            ),
            (
                format!(r#"{{"exp":{NOW}}}"#),
                Rules::default().leeway(0),
                Err(Reject::Expired { ago: 0 }),
            ),
            (
                format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 99, NOW + 12),
                Rules::default(),
                Ok(()),
            ),
            (
                format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 99, NOW + 12),
                Rules::default().leeway(0),
                Err(Reject::NotYetValid { secs: 12 }),
            ),
            (
                format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 999, NOW + 75),
                Rules::default(),
                Err(Reject::NotYetValid { secs: 75 }),
            ),
            (
                format!(r#"{{"exp":{},"iat":{}}}"#, NOW + 99, NOW + 30),
                Rules::default(),
                Ok(()),
            ),
            (
                format!(r#"{{"exp":{},"iat":{}}}"#, NOW + 99, NOW + 30),
                Rules::default().leeway(5),
                Err(Reject::IssuedInFuture { secs: 30 }),
            ),
        ];
        for (json, rules, want) in cases {
            assert_eq!(check(&rules, &json), want, "{json} leeway {}", rules.leeway);
        }
    }

    #[test]
    fn not_yet_valid_message_is_precise() {
        let json = format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 99, NOW + 12);
        let err = check(&Rules::default().leeway(0), &json).unwrap_err();
        assert_eq!(err.to_string(), "not valid for another 12s");
    }

    #[test]
    fn wrongly_typed_dates_are_errors_never_absent() {
        for claim in ["exp", "nbf", "iat"] {
            for (value, kind) in [
                ("\"1700000000\"", "a string"),
                ("null", "null"),
                ("true", "a boolean"),
                ("[1]", "an array"),
                ("{}", "an object"),
            ] {
                let json = format!(r#"{{"{claim}":{value}}}"#);
                assert_eq!(
                    claims(&json),
                    Err(Reject::InvalidClaim {
                        claim: claim.into(),
                        reason: format!("must be a number (NumericDate), got {kind}"),
                    }),
                    "{json}"
                );
            }
        }
    }

    #[test]
    fn fractional_and_huge_dates() {
        let c = claims(r#"{"exp":100.9,"nbf":90.1,"iat":90.1}"#).unwrap();
        assert_eq!((c.exp, c.nbf, c.iat), (Some(100), Some(91), Some(91)));
        assert!(matches!(
            claims(r#"{"exp":1e300}"#),
            Err(Reject::InvalidClaim { .. })
        ));
        assert!(matches!(
            claims(r#"{"exp":18446744073709551615}"#),
            Err(Reject::InvalidClaim { .. })
        ));
    }

    #[test]
    fn missing_exp_is_refused_unless_allowed() {
        assert_eq!(
            check(&Rules::default(), "{}"),
            Err(Reject::MissingClaim {
                claim: "exp".into()
            })
        );
        assert_eq!(check(&Rules::default().allow_missing_exp(), "{}"), Ok(()));
    }

    #[test]
    fn issuer_is_exact() {
        let rules = Rules::default().allow_missing_exp().issuer("https://a");
        assert_eq!(check(&rules, r#"{"iss":"https://a"}"#), Ok(()));
        let err = check(&rules, r#"{"iss":"https://a/"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "issuer mismatch: expected 'https://a', got 'https://a/'"
        );
        assert_eq!(
            check(&rules, "{}"),
            Err(Reject::MissingClaim {
                claim: "iss".into()
            })
        );
        assert!(matches!(
            check(&rules, r#"{"iss":1}"#),
            Err(Reject::InvalidClaim { .. })
        ));
    }

    #[test]
    fn audience_is_any_of_string_or_array() {
        let rules = Rules::default()
            .allow_missing_exp()
            .audiences(["api", "web"]);
        assert_eq!(check(&rules, r#"{"aud":"api"}"#), Ok(()));
        assert_eq!(check(&rules, r#"{"aud":["x","web"]}"#), Ok(()));
        let err = check(
            &Rules::default().allow_missing_exp().audiences(["api"]),
            r#"{"aud":"web"}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "audience mismatch: expected one of [api], got [web]"
        );
        assert_eq!(
            check(&rules, "{}"),
            Err(Reject::MissingClaim {
                claim: "aud".into()
            })
        );
        assert!(matches!(
            check(&rules, r#"{"aud":[1]}"#),
            Err(Reject::InvalidClaim { .. })
        ));
    }

    #[test]
    fn gate_token_claims_are_typed() {
        let c = claims(r#"{"URLs":["/k8s/vm1*"],"verbs":["get"],"roles":["api"]}"#).unwrap();
        assert_eq!(c.urls, Some(vec!["/k8s/vm1*".to_string()]));
        assert_eq!(c.verbs, Some(vec!["get".to_string()]));
        assert_eq!(c.roles, Some(vec!["api".to_string()]));
        assert!(matches!(
            claims(r#"{"URLs":"/x"}"#),
            Err(Reject::InvalidClaim { .. })
        ));
    }
}
