//! Strict JSON (RFC 8259) for JOSE objects: the top level must be an object, and a member name
//! may appear only once at any depth (serde_json keeps the last duplicate silently).
//! Hand-written because it sits on the verification hot path: one pass, no allocation for
//! members nobody keeps, typed faults instead of parser strings.

use std::borrow::Cow;

use crate::error::{Part, Reject};

/// Nesting deeper than this is refused (serde_json's limit too), so input cannot exhaust the
/// stack.
const MAX_DEPTH: usize = 128;

/// A JSON string value: where it is in the parsed text, or, when it had escapes, its
/// unescaped copy. Keeping offsets lets a caller keep the text and drop per-string allocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Text {
    At(u32, u32),
    Owned(Box<str>),
}

impl Text {
    /// The string, given the text it was parsed from.
    pub(crate) fn get<'a>(&'a self, parsed: &'a str) -> &'a str {
        match self {
            Text::At(start, end) => parsed.get(*start as usize..*end as usize).unwrap_or(""),
            Text::Owned(s) => s,
        }
    }
}

/// A JSON value read without committing to a type, so a wrongly typed claim can be reported
/// precisely ("must be a number, got a string") instead of as a parse failure.
#[derive(Debug, PartialEq)]
pub(crate) enum Loose {
    Null,
    Bool,
    Int(i64),
    Float(f64),
    /// An integer too large for i64.
    Huge,
    Str(Text),
    /// An array whose elements are all strings.
    Strs(Vec<Text>),
    /// An array with at least one non-string element.
    Array,
    Object,
}

impl Loose {
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

/// Receives the members of a top-level JOSE object.
pub(crate) trait Members {
    /// Where the value of member `name` (its UTF-8 bytes) goes, or `None` for a member this type does not keep
    /// (it is still parsed, and checked for repeats).
    fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Loose>>;
}

/// Parses `text` as one JSON object, feeding its top-level members to `members`.
pub(crate) fn parse_object<M: Members>(
    text: &str,
    part: Part,
    members: &mut M,
) -> Result<(), Reject> {
    if u32::try_from(text.len()).is_err() {
        return Err(Reject::Json {
            part,
            reason: "longer than 4 GiB".into(),
        });
    }
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        depth: 0,
        names: Vec::new(),
    };
    parser.skip_ws();
    match parser.peek() {
        Some(b'{') => {}
        Some(_) => return Err(Reject::NotObject { part }),
        None => {
            return Err(Reject::Json {
                part,
                reason: "empty".into(),
            })
        }
    }
    let result = parser.object(Some(members)).and_then(|()| {
        parser.skip_ws();
        match parser.peek() {
            None => Ok(()),
            Some(_) => Err(parser.fault("trailing characters after the object")),
        }
    });
    result.map_err(|fault| match fault {
        Fault::Duplicate(key) => Reject::DuplicateKey { part, key },
        Fault::Syntax { what, at } => Reject::Json {
            part,
            reason: format!("{what} at byte {at}"),
        },
    })
}

/// `bytes` as text, or the precise reason it is not UTF-8.
pub(crate) fn utf8(bytes: &[u8], part: Part) -> Result<&str, Reject> {
    std::str::from_utf8(bytes).map_err(|e| Reject::Json {
        part,
        reason: format!("not UTF-8 at byte {}", e.valid_up_to()),
    })
}

enum Fault {
    Syntax { what: &'static str, at: usize },
    Duplicate(String),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    /// Names of the members of every object being parsed, innermost last; each object checks
    /// its own tail for repeats when it closes. Kept top-level members are not recorded here:
    /// their filled slot already detects a repeat.
    names: Vec<Cow<'a, [u8]>>,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn fault(&self, what: &'static str) -> Fault {
        let what = if self.pos >= self.bytes.len() {
            "unexpected end of input"
        } else {
            what
        };
        Fault::Syntax { what, at: self.pos }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` after optional whitespace.
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Fault> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fault(what))
        }
    }

    fn enter(&mut self) -> Result<(), Fault> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.fault("nesting deeper than 128 levels"));
        }
        Ok(())
    }

    /// An object, at `{`. With `members`, this is the top level: kept members go to their slots.
    fn object<M: Members>(&mut self, mut members: Option<&mut M>) -> Result<(), Fault> {
        self.enter()?;
        self.pos += 1;
        let first_name = self.names.len();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.fault("expected a member name"));
                }
                let name = self.name()?;
                self.expect(b':', "expected ':' after a member name")?;
                self.skip_ws();
                match members.as_mut().and_then(|m| m.slot(&name)) {
                    Some(slot) => {
                        if slot.is_some() {
                            return Err(duplicate(&name));
                        }
                        *slot = Some(self.loose()?);
                    }
                    None => {
                        self.names.push(name);
                        self.skip_value()?;
                    }
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.fault("expected ',' or '}' after a member")),
                }
            }
        }
        self.check_repeats(first_name)?;
        self.depth -= 1;
        Ok(())
    }

    /// Refuses a repeated name among `names[first..]`, then forgets them.
    fn check_repeats(&mut self, first: usize) -> Result<(), Fault> {
        let names = &mut self.names[first..];
        let repeated = if names.len() <= 8 {
            names
                .iter()
                .enumerate()
                .find(|(i, n)| names[..*i].contains(n))
                .map(|(_, n)| n)
        } else {
            // Sorting keeps a large object (a 16 KiB header of short names) from costing n².
            names.sort_unstable();
            names.windows(2).find(|w| w[0] == w[1]).map(|w| &w[0])
        };
        if let Some(name) = repeated {
            return Err(duplicate(name));
        }
        self.names.truncate(first);
        Ok(())
    }

    /// A value whose content a caller keeps, at its first byte.
    fn loose(&mut self) -> Result<Loose, Fault> {
        match self.peek() {
            Some(b'"') => Ok(Loose::Str(self.string()?)),
            Some(b'[') => self.loose_array(),
            Some(b'{') => {
                self.object::<NoMembers>(None)?;
                Ok(Loose::Object)
            }
            _ => self.scalar(),
        }
    }

    /// An array, at `[`: kept as its strings when every element is one.
    fn loose_array(&mut self) -> Result<Loose, Fault> {
        self.enter()?;
        self.pos += 1;
        let mut strings = Some(Vec::new());
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                match (self.peek(), strings.as_mut()) {
                    (Some(b'"'), Some(list)) => list.push(self.string()?),
                    _ => {
                        strings = None;
                        self.skip_value()?;
                    }
                }
                if self.after_element()? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Ok(strings.map_or(Loose::Array, Loose::Strs))
    }

    /// After an array element: `,` (more follow) or `]` (returns true).
    fn after_element(&mut self) -> Result<bool, Fault> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b']') => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.fault("expected ',' or ']' after an array element")),
        }
    }

    /// A value nobody keeps, at its first byte: checked just as strictly.
    fn skip_value(&mut self) -> Result<(), Fault> {
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => self.object::<NoMembers>(None),
            Some(b'[') => {
                self.enter()?;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_ws();
                        self.skip_value()?;
                        if self.after_element()? {
                            break;
                        }
                    }
                }
                self.depth -= 1;
                Ok(())
            }
            _ => self.scalar().map(drop),
        }
    }

    /// `null`, `true`, `false` or a number.
    fn scalar(&mut self) -> Result<Loose, Fault> {
        let (literal, value): (&[u8], _) = match self.peek() {
            Some(b'-' | b'0'..=b'9') => return self.number(),
            Some(b'n') => (b"null", Loose::Null),
            Some(b't') => (b"true", Loose::Bool),
            Some(b'f') => (b"false", Loose::Bool),
            _ => return Err(self.fault("expected a value")),
        };
        if !self.bytes[self.pos..].starts_with(literal) {
            return Err(self.fault("expected a value"));
        }
        self.pos += literal.len();
        Ok(value)
    }

    /// Skips digits; returns how many, and their value while it fits (up to 18 digits).
    fn digits(&mut self) -> (usize, u64) {
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            if self.pos - start < 18 {
                value = value * 10 + u64::from(d - b'0');
            }
            self.pos += 1;
        }
        (self.pos - start, value)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<Loose, Fault> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let (count, value) = self.digits();
        match count {
            0 => return Err(self.fault("expected a digit")),
            n if n > 1 && self.bytes[int_start] == b'0' => {
                self.pos = int_start + 1;
                return Err(self.fault("leading zero in a number"));
            }
            _ => {}
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits().0 == 0 {
                return Err(self.fault("expected a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits().0 == 0 {
                return Err(self.fault("expected a digit in the exponent"));
            }
        }
        let lexeme = &self.text[start..self.pos];
        if integer {
            if count <= 18 {
                // 18 digits always fit in i64.
                let n = i64::try_from(value).unwrap_or(i64::MAX);
                return Ok(Loose::Int(if negative { -n } else { n }));
            }
            if let Ok(n) = lexeme.parse::<i64>() {
                return Ok(Loose::Int(n));
            }
        }
        match lexeme.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(if integer {
                Loose::Huge
            } else {
                Loose::Float(f)
            }),
            _ => Err(Fault::Syntax {
                what: "number out of range",
                at: start,
            }),
        }
    }

    /// A member name, at its opening quote.
    #[inline(always)]
    fn name(&mut self) -> Result<Cow<'a, [u8]>, Fault> {
        let bytes = self.bytes;
        Ok(match self.string()? {
            Text::At(start, end) => Cow::Borrowed(&bytes[start as usize..end as usize]),
            Text::Owned(s) => Cow::Owned(s.into_boxed_bytes().into_vec()),
        })
    }

    /// A string, at its opening quote: its place in the input unless it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<Text, Fault> {
        self.pos += 1;
        let start = self.pos;
        self.pos = start + plain_run(&self.bytes[start..]);
        if self.peek() == Some(b'"') {
            self.pos += 1;
            // `parse_object` refuses texts whose offsets would not fit u32.
            return Ok(Text::At(start as u32, (self.pos - 1) as u32));
        }
        self.escaped_string(start)
    }

    /// The rest of a string that stopped at something other than its closing quote.
    #[cold]
    fn escaped_string(&mut self, start: usize) -> Result<Text, Fault> {
        let mut owned = String::from(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Owned(owned.into_boxed_str()));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    owned.push(self.escape()?);
                }
                Some(0x00..=0x1f) => return Err(self.fault("control character in a string")),
                Some(_) => {
                    // Copy the run up to the next stop (input is valid UTF-8, and every stop
                    // is ASCII, so the run ends on a character boundary).
                    let run = self.pos;
                    self.pos += plain_run(&self.bytes[run..]);
                    owned.push_str(&self.text[run..self.pos]);
                }
                None => return Err(self.fault("unterminated string")),
            }
        }
    }

    /// One escape, after its backslash.
    fn escape(&mut self) -> Result<char, Fault> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            _ => return Err(self.fault("invalid escape")),
        };
        self.pos += 1;
        Ok(c)
    }

    /// The rest of `\uXXXX`, with its low surrogate when it is a high one.
    fn unicode_escape(&mut self) -> Result<char, Fault> {
        let at = self.pos;
        let lone = Fault::Syntax {
            what: "lone surrogate in a \\u escape",
            at,
        };
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.bytes[self.pos..].starts_with(b"\\u") {
                    return Err(lone);
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(lone);
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(lone),
            _ => first,
        };
        char::from_u32(code).ok_or(lone)
    }

    fn hex4(&mut self) -> Result<u32, Fault> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.fault("expected four hex digits in a \\u escape"))?;
            value = value * 16 + digit;
            self.pos += 1;
        }
        Ok(value)
    }
}

/// The length of the run of `bytes` before the first byte that ends plain string content:
/// a quote, a backslash or a control character. Eight bytes at a time, as serde_json does.
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `x` is zero (or below `n`) where its high bit is set here; a false positive can
    // only follow a true one, so the lowest flagged byte is exact.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let stops = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | below(x, 0x20);
        if stops != 0 {
            return offset + (stops.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    let rest = chunks.remainder();
    offset
        + rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .unwrap_or(rest.len())
}

fn duplicate(name: &[u8]) -> Fault {
    Fault::Duplicate(String::from_utf8_lossy(name).into_owned())
}

/// The `Members` of a nested object: it keeps nothing.
struct NoMembers;

impl Members for NoMembers {
    fn slot(&mut self, _: &[u8]) -> Option<&mut Option<Loose>> {
        None
    }
}

/// Checks that `bytes` is one JSON object with no repeated member names at any depth.
#[cfg(test)]
pub(crate) fn check_object(bytes: &[u8], part: Part) -> Result<(), Reject> {
    parse_object(utf8(bytes, part)?, part, &mut NoMembers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) -> Result<(), Reject> {
        check_object(s.as_bytes(), Part::Payload)
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        let many: String = (0..40).map(|i| format!("\"m{i}\":{i},")).collect();
        let cases = [
            (r#"{"a":1,"a":2}"#.to_owned(), "a"),
            (r#"{"a":1,"\u0061":2}"#.to_owned(), "a"),
            (r#"{"x":{"b":1,"b":1}}"#.to_owned(), "b"),
            (r#"{"x":[{"c":[],"c":{}}]}"#.to_owned(), "c"),
            (format!("{{{many}\"m7\":0}}"), "m7"),
        ];
        for (json, key) in cases {
            assert_eq!(
                check(&json),
                Err(Reject::DuplicateKey {
                    part: Part::Payload,
                    key: key.into()
                }),
                "{json}"
            );
        }
    }

    #[test]
    fn the_same_name_in_different_objects_is_not_a_repeat() {
        assert_eq!(
            check(r#"{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}"#),
            Ok(())
        );
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
        for bad in [
            "",
            "{} x",
            "{\"a\":}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":1e400}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00\"}",
            "{\"a\":\"\\ud800\\u0041\"}",
            "{\"a\":\"\t\"}",
            "{\"a\":[1,]}",
            "{\"a\":1,}",
            "{'a':1}",
            "{\"a\" 1}",
        ] {
            assert!(
                matches!(check(bad), Err(Reject::Json { .. })),
                "{bad:?}: {:?}",
                check(bad)
            );
        }
        assert!(check("\r\n {\"a\":{\"a\":1}, \"b\":[1,\"a\"], \"c\":-0.5e-3}").is_ok());
        assert!(check("{\"\\ud83d\\ude00\":\"\\u00e9\\n\"}").is_ok());
    }

    #[test]
    fn nesting_is_limited() {
        let deep = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        assert!(check(&deep(127)).is_ok());
        assert!(matches!(check(&deep(128)), Err(Reject::Json { .. })));
    }

    #[test]
    fn invalid_utf8_is_refused_with_its_offset() {
        assert_eq!(
            check_object(b"{\"a\":\"\xff\"}", Part::Header),
            Err(Reject::Json {
                part: Part::Header,
                reason: "not UTF-8 at byte 6".into()
            })
        );
    }

    #[derive(Default)]
    struct Keep(Option<Loose>);

    impl Members for Keep {
        fn slot(&mut self, name: &[u8]) -> Option<&mut Option<Loose>> {
            (name == b"k").then_some(&mut self.0)
        }
    }

    fn kept(json: &str) -> Loose {
        let mut keep = Keep::default();
        parse_object(json, Part::Payload, &mut keep).unwrap();
        keep.0.unwrap()
    }

    #[test]
    fn kept_values_are_typed() {
        assert_eq!(kept(r#"{"k":null}"#), Loose::Null);
        assert_eq!(kept(r#"{"k":false}"#), Loose::Bool);
        assert_eq!(kept(r#"{"k":-42}"#), Loose::Int(-42));
        assert_eq!(kept(r#"{"k":1.5e1}"#), Loose::Float(15.0));
        assert_eq!(kept(r#"{"k":9223372036854775808}"#), Loose::Huge);
        assert_eq!(
            kept(r#"{"k":"a\"b"}"#),
            Loose::Str(Text::Owned("a\"b".into()))
        );
        assert_eq!(
            kept(r#"{"k":["x","\u00e9"]}"#),
            Loose::Strs(vec![Text::At(7, 8), Text::Owned("é".into())])
        );
        assert_eq!(kept(r#"{"k":["x",1]}"#), Loose::Array);
        assert_eq!(kept(r#"{"k":{"x":1}}"#), Loose::Object);
        let json = r#"{"k":"plain"}"#;
        match kept(json) {
            Loose::Str(text) => assert_eq!((&text, text.get(json)), (&Text::At(6, 11), "plain")),
            other => panic!("{other:?}"),
        }
    }

    /// Pieces of JSON, valid and not, for the differential test below.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\"a\"",
        "\"b\"",
        "\"\\u0061\"",
        "\"\\n\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud800\"",
        "\"\\x\"",
        "\"é\"",
        "\"\t\"",
        "0",
        "-1",
        "12",
        "01",
        "-",
        "1.5",
        "1.",
        ".5",
        "1e3",
        "-2E-2",
        "1e",
        "1e400",
        "99999999999999999999",
        "true",
        "false",
        "null",
        "nul",
        "tru",
        "x",
        "\"a\":",
        "\"b\":",
        "\"a\":1,",
        "\"b\":[]}",
        "\"c\":{}}",
        "\"c\":\"x\"}",
        "}}",
        "]}",
    ];

    proptest::proptest! {
        /// On any input, the scanner's verdict matches serde_json's (which, unlike it, keeps
        /// the last of repeated names instead of refusing them).
        #[test]
        fn agrees_with_serde_json(
            pieces in proptest::collection::vec(proptest::sample::select(PIECES), 0..24),
            object in proptest::bool::weighted(0.8),
        ) {
            let body: String = pieces.concat();
            let json = if object { format!("{{{body}") } else { body };
            let theirs = serde_json::from_str::<serde_json::Value>(&json);
            match check(&json) {
                Ok(()) => proptest::prop_assert!(
                    matches!(theirs, Ok(serde_json::Value::Object(_))),
                    "{:?}: accepted, serde_json says {:?}", json, theirs
                ),
                // serde_json cannot see repeats, and a repeat may be found before a later
                // syntax error: nothing to compare.
                Err(Reject::DuplicateKey { .. }) => {}
                Err(e) => proptest::prop_assert!(
                    !matches!(theirs, Ok(serde_json::Value::Object(_))),
                    "{:?}: refused ({}), serde_json accepts", json, e
                ),
            }
        }
    }
}
