//! Strict JSON for JOSE objects: the top level must be an object, and a member name may appear
//! only once at any depth (serde_json alone keeps the last duplicate silently).
//! Faults are recorded on the side so callers get a typed `Reject`, not a parser string.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::{Part, Reject};

/// The first structural fault seen while parsing.
#[derive(Default)]
pub(crate) struct Faults(RefCell<Option<String>>);

impl Faults {
    pub(crate) fn duplicate<E: de::Error>(&self, key: &str) -> E {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(key.to_owned());
        }
        E::custom("duplicate member")
    }

    fn take_duplicate(&self) -> Option<String> {
        self.0.borrow_mut().take()
    }
}

/// A member name, borrowed from the input unless it contains escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Remembers member names of one object to refuse repeats.
struct Seen<'de>(Vec<Cow<'de, str>>);

impl<'de> Seen<'de> {
    fn new() -> Self {
        Seen(Vec::new())
    }

    fn insert<E: de::Error>(&mut self, name: Cow<'de, str>, faults: &Faults) -> Result<(), E> {
        if self.0.contains(&name) {
            return Err(faults.duplicate(&name));
        }
        self.0.push(name);
        Ok(())
    }
}

/// A JSON value read without committing to a type, so a wrongly typed claim can be reported
/// precisely ("must be a number, got a string") instead of as a parse failure.
#[derive(Debug, PartialEq)]
pub(crate) enum Loose<'de> {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    /// An integer too large for i64.
    Huge,
    Str(Cow<'de, str>),
    /// An array whose elements are all strings.
    Strs(Vec<String>),
    /// An array with at least one non-string element.
    Array,
    Object,
}

impl Loose<'_> {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Loose::Null => "null",
            Loose::Bool => "a boolean",
            Loose::Int(_) | Loose::Float(_) | Loose::Huge => "a number",
            Loose::Str(_) => "a string",
            Loose::Strs(_) | Loose::Array => "an array",
            Loose::Object => "an object",
        }
    }
}

/// Reads one value as `Loose`, checking nested objects for duplicate names.
#[derive(Clone, Copy)]
pub(crate) struct LooseSeed<'f>(pub(crate) &'f Faults);

impl<'de> DeserializeSeed<'de> for LooseSeed<'_> {
    type Value = Loose<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LooseSeed<'_> {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Loose::Huge, Loose::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Some(Vec::new());
        while let Some(item) = seq.next_element_seed(self)? {
            match (item, strings.as_mut()) {
                (Loose::Str(s), Some(list)) => list.push(s.into_owned()),
                _ => strings = None,
            }
        }
        Ok(strings.map_or(Loose::Array, Loose::Strs))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = Seen::new();
        while let Some(Name(name)) = map.next_key()? {
            seen.insert(name, self.0)?;
            map.next_value_seed(self)?;
        }
        Ok(Loose::Object)
    }
}

/// Receives the members of a top-level JOSE object one at a time.
pub(crate) trait Members<'de> {
    /// Stores a kept member's value, refusing a second occurrence.
    fn fill<A: MapAccess<'de>>(
        slot: &mut Option<Loose<'de>>,
        name: &str,
        map: &mut A,
        faults: &Faults,
    ) -> Result<bool, A::Error> {
        if slot.is_some() {
            return Err(faults.duplicate(name));
        }
        *slot = Some(map.next_value_seed(LooseSeed(faults))?);
        Ok(true)
    }

    /// Reads the value of `name` from `map` if it is a member this type keeps; returns whether
    /// it did. A kept member seen twice must be refused with `Faults::duplicate`. Members it
    /// does not keep are skipped (and checked for duplicates by the caller).
    fn member<A: MapAccess<'de>>(
        &mut self,
        name: &str,
        map: &mut A,
        faults: &Faults,
    ) -> Result<bool, A::Error>;
}

struct ObjectSeed<'m, 'f, M> {
    members: &'m mut M,
    faults: &'f Faults,
}

impl<'de, M: Members<'de>> DeserializeSeed<'de> for ObjectSeed<'_, '_, M> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, M: Members<'de>> Visitor<'de> for ObjectSeed<'_, '_, M> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Kept members refuse their own repeats; only the others need remembering.
        let mut seen = Seen::new();
        while let Some(Name(name)) = map.next_key()? {
            if !self.members.member(&name, &mut map, self.faults)? {
                seen.insert(name, self.faults)?;
                map.next_value_seed(LooseSeed(self.faults))?;
            }
        }
        Ok(())
    }
}

/// Parses `bytes` as one JSON object, feeding its members to `members`.
pub(crate) fn parse_object<'de, M: Members<'de>>(
    bytes: &'de [u8],
    part: Part,
    members: &mut M,
) -> Result<(), Reject> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) => return Err(Reject::NotObject { part }),
        None => {
            return Err(Reject::Json {
                part,
                reason: "empty".into(),
            })
        }
    }
    let faults = Faults::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = ObjectSeed {
        members,
        faults: &faults,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    result.map_err(|e| match faults.take_duplicate() {
        Some(key) => Reject::DuplicateKey { part, key },
        None => Reject::Json {
            part,
            reason: e.to_string(),
        },
    })
}

/// Checks that `bytes` is one JSON object with no repeated member names at any depth.
#[cfg(test)]
pub(crate) fn check_object(bytes: &[u8], part: Part) -> Result<(), Reject> {
    struct Nothing;
    impl<'de> Members<'de> for Nothing {
        fn member<A: MapAccess<'de>>(
            &mut self,
            _: &str,
            _: &mut A,
            _: &Faults,
        ) -> Result<bool, A::Error> {
            Ok(false)
        }
    }
    parse_object(bytes, part, &mut Nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) -> Result<(), Reject> {
        check_object(s.as_bytes(), Part::Payload)
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        let cases = [
            (r#"{"a":1,"a":2}"#, "a"),
            (r#"{"a":1,"\u0061":2}"#, "a"),
            (r#"{"x":{"b":1,"b":1}}"#, "b"),
            (r#"{"x":[{"c":[],"c":{}}]}"#, "c"),
        ];
        for (json, key) in cases {
            assert_eq!(
                check(json),
                Err(Reject::DuplicateKey {
                    part: Part::Payload,
                    key: key.into()
                }),
                "{json}"
            );
        }
    }

    #[test]
    fn non_objects_and_bad_json_are_refused() {
        assert_eq!(
            check("[1]"),
            Err(Reject::NotObject {
                part: Part::Payload
            })
        );
        assert_eq!(
            check(" \"s\""),
            Err(Reject::NotObject {
                part: Part::Payload
            })
        );
        assert!(matches!(check(""), Err(Reject::Json { .. })));
        assert!(matches!(check("{} x"), Err(Reject::Json { .. })));
        assert!(matches!(check("{\"a\":}"), Err(Reject::Json { .. })));
        assert!(check("\r\n {\"a\":{\"a\":1}, \"b\":[1,\"a\"]}").is_ok());
    }
}
