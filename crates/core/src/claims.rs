//! JWT claims (RFC 7519 §4) and the rules a verifier applies to them: `exp`, `nbf`, `iat` with
//! leeway, exact `iss`, any-of `aud`, required claims. A wrongly typed registered claim is an
//! error, never "absent": `"exp": null` does not make a token immortal.

use crate::error::{Part, Reject};
use crate::json::{parse_object, utf8, Loose, Members, Text};

/// The claims jwtgate reads, typed, together with the payload JSON they came from. Strings are
/// places in that JSON, not copies: reading a token's claims allocates once per list claim.
/// Claims jwtgate does not type stay readable with `get`.
#[derive(Clone, PartialEq, Eq)]
pub struct Claims {
    json: String,
    iss: Option<Text>,
    sub: Option<Text>,
    aud: Option<Strings>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    jti: Option<Text>,
    roles: Option<Strings>,
    urls: Option<Strings>,
    verbs: Option<Strings>,
}

/// A claim that may be one string or an array of strings (`aud`), or is an array (the rest).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Strings {
    One(Text),
    Many(Vec<Text>),
}

/// The strings of a list claim, in order.
#[derive(Clone)]
pub struct Strs<'c> {
    json: &'c str,
    items: std::slice::Iter<'c, Text>,
}

impl<'c> Iterator for Strs<'c> {
    type Item = &'c str;

    fn next(&mut self) -> Option<&'c str> {
        self.items.next().map(|t| t.get(self.json))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for Strs<'_> {}

impl std::fmt::Debug for Strs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl Strs<'_> {
    pub fn to_vec(&self) -> Vec<String> {
        self.clone().map(str::to_owned).collect()
    }
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
        Claims::from_json(utf8(payload, Part::Payload)?.to_owned())
    }

    /// `parse`, keeping `json` itself rather than a copy.
    pub fn from_json(json: String) -> Result<Claims, Reject> {
        let mut raw = RawClaims::default();
        parse_object(&json, Part::Payload, &mut raw)?;
        raw.into_claims(json)
    }

    /// The payload JSON, exactly as signed.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Any claim by name, parsed on demand (for claims jwtgate does not type).
    pub fn get(&self, name: &str) -> Option<serde_json::Value> {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.json).ok()?;
        map.remove(name)
    }

    pub fn iss(&self) -> Option<&str> {
        self.iss.as_ref().map(|t| t.get(&self.json))
    }

    pub fn sub(&self) -> Option<&str> {
        self.sub.as_ref().map(|t| t.get(&self.json))
    }

    /// `aud` as a list; a single string is a one-element list.
    pub fn aud(&self) -> Option<Strs<'_>> {
        self.strs(&self.aud)
    }

    /// `exp`, rounded down to whole seconds.
    pub fn exp(&self) -> Option<i64> {
        self.exp
    }

    /// `nbf`, rounded up to whole seconds.
    pub fn nbf(&self) -> Option<i64> {
        self.nbf
    }

    /// `iat`, rounded up to whole seconds.
    pub fn iat(&self) -> Option<i64> {
        self.iat
    }

    pub fn jti(&self) -> Option<&str> {
        self.jti.as_ref().map(|t| t.get(&self.json))
    }

    /// ClusterCockpit's `roles`.
    pub fn roles(&self) -> Option<Strs<'_>> {
        self.strs(&self.roles)
    }

    /// Gate-token path scope (kube-gateway's `URLs`).
    pub fn urls(&self) -> Option<Strs<'_>> {
        self.strs(&self.urls)
    }

    /// Gate-token HTTP methods (kube-gateway's `verbs`).
    pub fn verbs(&self) -> Option<Strs<'_>> {
        self.strs(&self.verbs)
    }

    fn strs<'c>(&'c self, list: &'c Option<Strings>) -> Option<Strs<'c>> {
        let items = match list.as_ref()? {
            Strings::One(text) => std::slice::from_ref(text),
            Strings::Many(texts) => texts,
        };
        Some(Strs {
            json: &self.json,
            items: items.iter(),
        })
    }
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.iss())
            .field("sub", &self.sub())
            .field("aud", &self.aud())
            .field("exp", &self.exp)
            .field("nbf", &self.nbf)
            .field("iat", &self.iat)
            .field("jti", &self.jti())
            .field("roles", &self.roles())
            .field("urls", &self.urls())
            .field("verbs", &self.verbs())
            .finish()
    }
}

#[derive(Default)]
struct RawClaims {
    iss: Option<Loose>,
    sub: Option<Loose>,
    aud: Option<Loose>,
    exp: Option<Loose>,
    nbf: Option<Loose>,
    iat: Option<Loose>,
    jti: Option<Loose>,
    roles: Option<Loose>,
    urls: Option<Loose>,
    verbs: Option<Loose>,
}

impl Members for RawClaims {
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Loose>> {
        // Byte patterns compile to a decision tree, string patterns to a memcmp per candidate.
        Some(match name {
            [b'i', b's', b's'] => &mut self.iss,
            [b's', b'u', b'b'] => &mut self.sub,
            [b'a', b'u', b'd'] => &mut self.aud,
            [b'e', b'x', b'p'] => &mut self.exp,
            [b'n', b'b', b'f'] => &mut self.nbf,
            [b'i', b'a', b't'] => &mut self.iat,
            [b'j', b't', b'i'] => &mut self.jti,
            [b'r', b'o', b'l', b'e', b's'] => &mut self.roles,
            [b'U', b'R', b'L', b's'] => &mut self.urls,
            [b'v', b'e', b'r', b'b', b's'] => &mut self.verbs,
            _ => return None,
        })
    }
}

impl RawClaims {
    /// Types the members; `json` is the text their `Text`s point into.
    fn into_claims(self, json: String) -> Result<Claims, Reject> {
        Ok(Claims {
            iss: string("iss", self.iss)?,
            sub: string("sub", self.sub)?,
            aud: match self.aud {
                None => None,
                Some(Loose::Str(s)) => Some(Strings::One(s)),
                Some(Loose::Strs(list)) => Some(Strings::Many(list)),
                Some(other) => {
                    return Err(wrong_type("aud", "a string or an array of strings", &other))
                }
            },
            exp: numeric_date("exp", self.exp, Round::Down)?,
            nbf: numeric_date("nbf", self.nbf, Round::Up)?,
            iat: numeric_date("iat", self.iat, Round::Up)?,
            jti: string("jti", self.jti)?,
            roles: strings("roles", self.roles)?,
            urls: strings("URLs", self.urls)?,
            verbs: strings("verbs", self.verbs)?,
            json,
        })
    }
}

/// Error paths are kept out of line (`cold`), so the accepting path stays compact: it has to
/// share the instruction cache with the signature code.
#[cold]
#[inline(never)]
fn wrong_type(claim: &str, expected: &str, got: &Loose) -> Reject {
    invalid(claim, format!("must be {expected}, got {}", got.kind()))
}

#[cold]
#[inline(never)]
fn invalid(claim: &str, reason: impl Into<String>) -> Reject {
    Reject::InvalidClaim {
        claim: claim.into(),
        reason: reason.into(),
    }
}

fn string(claim: &str, value: Option<Loose>) -> Result<Option<Text>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Str(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(claim, "a string", &other)),
    }
}

fn strings(claim: &str, value: Option<Loose>) -> Result<Option<Strings>, Reject> {
    match value {
        None => Ok(None),
        Some(Loose::Strs(list)) => Ok(Some(Strings::Many(list))),
        Some(other) => Err(wrong_type(claim, "an array of strings", &other)),
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
        Some(other) => return Err(wrong_type(claim, "a number (NumericDate)", &other)),
    };
    if !(-LIMIT..LIMIT).contains(&secs) {
        return Err(invalid(claim, "is out of range"));
    }
    Ok(Some(secs))
}

/// Which rule a token broke; `Rules::reject` turns it into the precise `Reject`.
#[derive(Clone, Copy)]
enum Failure {
    Missing(&'static str),
    Expired,
    NotYetValid,
    IssuedInFuture,
    Issuer,
    AudienceNotAccepted,
    Audience,
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
    /// With `audiences` set: accept a token that names no audience at all (one that names
    /// some must still name an accepted one).
    pub audience_optional: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            issuer: None,
            audiences: Vec::new(),
            leeway: 60,
            required: vec![Registered::Exp],
            audience_optional: false,
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
    /// Accepts tokens without `aud` even when `audiences` is set (a server whose own tokens
    /// name an audience only when the client asked for one).
    pub fn allow_missing_audience(mut self) -> Self {
        self.audience_optional = true;
        self
    }

    pub fn allow_missing_exp(mut self) -> Self {
        self.required.retain(|c| *c != Registered::Exp);
        self
    }

    /// Checks `claims` at time `now` (seconds since the epoch).
    pub fn check(&self, claims: &Claims, now: i64) -> Result<(), Reject> {
        match self.first_failure(claims, now) {
            None => Ok(()),
            Some(failure) => Err(self.reject(failure, claims, now)),
        }
    }

    /// Clock skew as a signed number, capped so date arithmetic cannot overflow.
    fn leeway_secs(&self) -> i64 {
        i64::try_from(self.leeway)
            .unwrap_or(i64::MAX / 4)
            .min(1 << 40)
    }

    /// The first rule `claims` break, found without building any message.
    fn first_failure(&self, claims: &Claims, now: i64) -> Option<Failure> {
        if let Some(missing) = self.required.iter().find(|c| !c.present(claims)) {
            return Some(Failure::Missing(missing.name()));
        }
        let leeway = self.leeway_secs();
        // RFC 7519 §4.1.4: not accepted on or after exp.
        if claims
            .exp
            .is_some_and(|exp| now >= exp.saturating_add(leeway))
        {
            return Some(Failure::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| now.saturating_add(leeway) < nbf)
        {
            return Some(Failure::NotYetValid);
        }
        if claims
            .iat
            .is_some_and(|iat| now.saturating_add(leeway) < iat)
        {
            return Some(Failure::IssuedInFuture);
        }
        if let Some(expected) = &self.issuer {
            match claims.iss() {
                None => return Some(Failure::Missing("iss")),
                Some(got) if !crate::ct_eq(got.as_bytes(), expected.as_bytes()) => {
                    return Some(Failure::Issuer)
                }
                Some(_) => {}
            }
        }
        match (self.audiences.is_empty(), claims.aud()) {
            (true, None) => None,
            (true, Some(_)) => Some(Failure::AudienceNotAccepted),
            (false, None) if self.audience_optional => None,
            (false, None) => Some(Failure::Missing("aud")),
            (false, Some(mut got)) => {
                let accepted = got.any(|a| self.audiences.iter().any(|e| e == a));
                (!accepted).then_some(Failure::Audience)
            }
        }
    }

    /// The precise reason for `failure`. Out of line: only refused tokens come here.
    #[cold]
    #[inline(never)]
    fn reject(&self, failure: Failure, claims: &Claims, now: i64) -> Reject {
        let aud = || claims.aud().map(|got| got.to_vec()).unwrap_or_default();
        match failure {
            Failure::Missing(claim) => Reject::MissingClaim {
                claim: claim.into(),
            },
            Failure::Expired => Reject::Expired {
                ago: now.saturating_sub(claims.exp.unwrap_or(now)).unsigned_abs(),
            },
            Failure::NotYetValid => Reject::NotYetValid {
                secs: claims.nbf.unwrap_or(now).saturating_sub(now).unsigned_abs(),
            },
            Failure::IssuedInFuture => Reject::IssuedInFuture {
                secs: claims.iat.unwrap_or(now).saturating_sub(now).unsigned_abs(),
            },
            Failure::Issuer => Reject::IssuerMismatch {
                expected: self.issuer.clone().unwrap_or_default(),
                got: claims.iss().unwrap_or_default().to_owned(),
            },
            Failure::AudienceNotAccepted => Reject::AudienceNotAccepted { got: aud() },
            Failure::Audience => Reject::AudienceMismatch {
                expected: self.audiences.clone(),
                got: aud(),
            },
        }
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
        assert_eq!((c.exp(), c.nbf(), c.iat()), (Some(100), Some(91), Some(91)));
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
    fn an_optional_audience_may_be_absent_but_not_wrong() {
        let rules = Rules::default()
            .allow_missing_exp()
            .audiences(["api"])
            .allow_missing_audience();
        assert_eq!(check(&rules, "{}"), Ok(()));
        assert_eq!(check(&rules, r#"{"aud":"api"}"#), Ok(()));
        assert!(matches!(
            check(&rules, r#"{"aud":"web"}"#),
            Err(Reject::AudienceMismatch { .. })
        ));
    }

    #[test]
    fn gate_token_claims_are_typed() {
        let c = claims(r#"{"URLs":["/k8s/vm1*"],"verbs":["get"],"roles":["api"]}"#).unwrap();
        assert_eq!(c.urls().map(|l| l.to_vec()), Some(vec!["/k8s/vm1*".into()]));
        assert_eq!(c.verbs().map(|l| l.to_vec()), Some(vec!["get".into()]));
        assert_eq!(c.roles().map(|l| l.to_vec()), Some(vec!["api".into()]));
        assert!(matches!(
            claims(r#"{"URLs":"/x"}"#),
            Err(Reject::InvalidClaim { .. })
        ));
    }
}
