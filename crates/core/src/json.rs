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
///
/// Not generic over `M`: one copy of the scanner serves the header and the claims, which keeps
/// the verification path's code small enough to stay in the instruction cache next to the
/// signature code.
pub(crate) fn parse_object(
    text: &str,
    part: Part,
    members: &mut dyn Members,
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
        depth: 0,
        names: Vec::new(),
        unescaped: None,
        fault: None,
    };
    let start = parser.ws(0);
    match parser.bytes.get(start) {
        Some(b'{') => {}
        Some(_) => return Err(Reject::NotObject { part }),
        None => {
            return Err(Reject::Json {
                part,
                reason: "empty".into(),
            })
        }
    }
    if let Some(end) = parser.object(start, Some(members)) {
        let end = parser.ws(end);
        if end == text.len() {
            return Ok(());
        }
        parser.fail::<()>("trailing characters after the object", end);
    }
    Err(match parser.fault {
        Some(Fault::Duplicate(key)) => Reject::DuplicateKey { part, key },
        Some(Fault::Syntax { what, at }) => Reject::Json {
            part,
            reason: format!("{what} at byte {at}"),
        },
        None => Reject::Json {
            part,
            reason: "unreadable".into(),
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

/// The scanner. Its steps take a position and return the position after what they read, or
/// `None` after recording the fault: small results that stay in registers on the hot path.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    depth: usize,
    /// Names of the members of every object being parsed, innermost last; each object checks
    /// its own tail for repeats when it closes. Kept top-level members are not recorded here:
    /// their filled slot already detects a repeat.
    names: Vec<Cow<'a, [u8]>>,
    /// The unescaped copy of the string just read, when it had escapes.
    unescaped: Option<String>,
    fault: Option<Fault>,
}

impl<'a> Parser<'a> {
    #[cold]
    fn fail<T>(&mut self, what: &'static str, at: usize) -> Option<T> {
        let what = if at >= self.bytes.len() {
            "unexpected end of input"
        } else {
            what
        };
        self.fault = Some(Fault::Syntax { what, at });
        None
    }

    /// The byte at `i`, or 0 past the end (0 is never valid where a caller looks).
    #[inline(always)]
    fn byte(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    #[inline(always)]
    fn ws(&self, mut i: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(i) {
            i += 1;
        }
        i
    }

    fn enter(&mut self, at: usize) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("nesting deeper than 128 levels", at);
        }
        Some(())
    }

    /// An object at `i` (its `{`). With `members`, this is the top level: kept members go to
    /// their slots.
    fn object(&mut self, i: usize, mut members: Option<&mut dyn Members>) -> Option<usize> {
        self.enter(i)?;
        let first_name = self.names.len();
        let mut i = self.ws(i + 1);
        if self.byte(i) == b'}' {
            i += 1;
        } else {
            loop {
                if self.byte(i) != b'"' {
                    return self.fail("expected a member name", i);
                }
                let end = self.string(i)?;
                let name = match self.unescaped.take() {
                    Some(owned) => Cow::Owned(owned.into_bytes()),
                    None => Cow::Borrowed(&self.bytes[i + 1..end - 1]),
                };
                i = self.ws(end);
                if self.byte(i) != b':' {
                    return self.fail("expected ':' after a member name", i);
                }
                i = self.ws(i + 1);
                match members.as_mut().and_then(|m| m.slot(&name)) {
                    Some(slot) => {
                        if slot.is_some() {
                            self.fault = Some(duplicate(&name));
                            return None;
                        }
                        let (end, value) = self.loose(i)?;
                        *slot = Some(value);
                        i = end;
                    }
                    None => {
                        self.names.push(name);
                        i = self.skip(i)?;
                    }
                }
                i = self.ws(i);
                match self.byte(i) {
                    b',' => i = self.ws(i + 1),
                    b'}' => {
                        i += 1;
                        break;
                    }
                    _ => return self.fail("expected ',' or '}' after a member", i),
                }
            }
        }
        self.check_repeats(first_name)?;
        self.depth -= 1;
        Some(i)
    }

    /// Refuses a repeated name among `names[first..]`, then forgets them.
    fn check_repeats(&mut self, first: usize) -> Option<()> {
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
            self.fault = Some(duplicate(name));
            return None;
        }
        self.names.truncate(first);
        Some(())
    }

    /// A value whose content a caller keeps, at its first byte.
    fn loose(&mut self, i: usize) -> Option<(usize, Loose)> {
        match self.byte(i) {
            b'"' => {
                let end = self.string(i)?;
                Some((end, Loose::Str(self.text(i, end))))
            }
            b'[' => {
                let (end, strings) = self.array(i, true)?;
                Some((end, strings.map_or(Loose::Array, Loose::Strs)))
            }
            b'{' => Some((self.object(i, None)?, Loose::Object)),
            b'-' | b'0'..=b'9' => self.number(i),
            b'n' => Some((self.literal(i, b"null")?, Loose::Null)),
            b't' => Some((self.literal(i, b"true")?, Loose::Bool)),
            b'f' => Some((self.literal(i, b"false")?, Loose::Bool)),
            _ => self.fail("expected a value", i),
        }
    }

    /// A value nobody keeps, at its first byte: checked just as strictly.
    fn skip(&mut self, i: usize) -> Option<usize> {
        match self.byte(i) {
            b'"' => {
                let end = self.string(i)?;
                self.unescaped = None;
                Some(end)
            }
            b'[' => self.array(i, false).map(|(end, _)| end),
            b'{' => self.object(i, None),
            b'-' | b'0'..=b'9' => self.number_end(i).map(|(end, _)| end),
            b'n' => self.literal(i, b"null"),
            b't' => self.literal(i, b"true"),
            b'f' => self.literal(i, b"false"),
            _ => self.fail("expected a value", i),
        }
    }

    /// An array at `i` (its `[`); with `collect`, also its elements while all are strings.
    fn array(&mut self, i: usize, collect: bool) -> Option<(usize, Option<Vec<Text>>)> {
        self.enter(i)?;
        let mut strings = collect.then(Vec::new);
        let mut i = self.ws(i + 1);
        if self.byte(i) == b']' {
            self.depth -= 1;
            return Some((i + 1, strings));
        }
        loop {
            match (self.byte(i), strings.as_mut()) {
                (b'"', Some(list)) => {
                    let end = self.string(i)?;
                    list.push(self.text(i, end));
                    i = end;
                }
                _ => {
                    strings = None;
                    i = self.skip(i)?;
                }
            }
            i = self.ws(i);
            match self.byte(i) {
                b',' => i = self.ws(i + 1),
                b']' => {
                    self.depth -= 1;
                    return Some((i + 1, strings));
                }
                _ => return self.fail("expected ',' or ']' after an array element", i),
            }
        }
    }

    fn literal(&mut self, i: usize, literal: &'static [u8]) -> Option<usize> {
        if self.bytes[i..].starts_with(literal) {
            Some(i + literal.len())
        } else {
            self.fail("expected a value", i)
        }
    }

    fn digits(&self, mut i: usize) -> usize {
        while let Some(b'0'..=b'9') = self.bytes.get(i) {
            i += 1;
        }
        i
    }

    /// Checks the number at `i` against
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` and its range; returns its end and
    /// whether it is an integer.
    fn number_end(&mut self, i: usize) -> Option<(usize, bool)> {
        let int_start = if self.byte(i) == b'-' { i + 1 } else { i };
        let mut j = self.digits(int_start);
        if j == int_start {
            return self.fail("expected a digit", j);
        }
        if self.bytes[int_start] == b'0' && j > int_start + 1 {
            return self.fail("leading zero in a number", int_start + 1);
        }
        let integer_digits = j - int_start;
        let mut integer = true;
        if self.byte(j) == b'.' {
            integer = false;
            let start = j + 1;
            j = self.digits(start);
            if j == start {
                return self.fail("expected a digit after '.'", j);
            }
        }
        if let b'e' | b'E' = self.byte(j) {
            integer = false;
            j += 1;
            if let b'+' | b'-' = self.byte(j) {
                j += 1;
            }
            let start = j;
            j = self.digits(start);
            if j == start {
                return self.fail("expected a digit in the exponent", j);
            }
        }
        // Up to 18 digits always fit i64; anything else must at least be a finite double.
        if !integer || integer_digits > 18 {
            match self.text[i..j].parse::<f64>() {
                Ok(f) if f.is_finite() => {}
                _ => return self.fail("number out of range", i),
            }
        }
        Some((j, integer))
    }

    fn number(&mut self, i: usize) -> Option<(usize, Loose)> {
        let (end, integer) = self.number_end(i)?;
        let lexeme = &self.text[i..end];
        let value = match (integer, lexeme.parse::<i64>()) {
            (true, Ok(n)) => Loose::Int(n),
            (true, Err(_)) => Loose::Huge,
            (false, _) => lexeme.parse().map_or(Loose::Huge, Loose::Float),
        };
        Some((end, value))
    }

    /// The string that `string(i)` just read, ending before `end`.
    fn text(&mut self, i: usize, end: usize) -> Text {
        match self.unescaped.take() {
            Some(owned) => Text::Owned(owned.into_boxed_str()),
            // `parse_object` refuses texts whose offsets would not fit u32.
            None => Text::At((i + 1) as u32, (end - 1) as u32),
        }
    }

    /// A string at `i` (its opening quote); returns the position after the closing quote.
    /// With escapes, the unescaped copy is left in `self.unescaped`.
    #[inline(always)]
    fn string(&mut self, i: usize) -> Option<usize> {
        let start = i + 1;
        let stop = start + plain_run(&self.bytes[start..]);
        if self.byte(stop) == b'"' {
            return Some(stop + 1);
        }
        self.escaped_string(start, stop)
    }

    /// The rest of a string that stopped at something other than its closing quote.
    #[cold]
    fn escaped_string(&mut self, start: usize, mut i: usize) -> Option<usize> {
        let mut owned = String::from(&self.text[start..i]);
        loop {
            match self.bytes.get(i) {
                Some(b'"') => {
                    self.unescaped = Some(owned);
                    return Some(i + 1);
                }
                Some(b'\\') => {
                    let (c, next) = self.escape(i + 1)?;
                    owned.push(c);
                    i = next;
                }
                Some(0x00..=0x1f) => return self.fail("control character in a string", i),
                Some(_) => {
                    // Copy the run up to the next stop (input is valid UTF-8, and every stop
                    // is ASCII, so the run ends on a character boundary).
                    let run = i;
                    i += plain_run(&self.bytes[run..]);
                    owned.push_str(&self.text[run..i]);
                }
                None => return self.fail("unterminated string", i),
            }
        }
    }

    /// One escape at `i` (after its backslash): the character and the position after it.
    fn escape(&mut self, i: usize) -> Option<(char, usize)> {
        let c = match self.byte(i) {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(i + 1),
            _ => return self.fail("invalid escape", i),
        };
        Some((c, i + 1))
    }

    /// The rest of `\uXXXX` at `i`, with its low surrogate when it is a high one.
    fn unicode_escape(&mut self, i: usize) -> Option<(char, usize)> {
        const LONE: &str = "lone surrogate in a \\u escape";
        let first = self.hex4(i)?;
        let mut end = i + 4;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.bytes[end..].starts_with(b"\\u") {
                    return self.fail(LONE, i);
                }
                let second = self.hex4(end + 2)?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return self.fail(LONE, i);
                }
                end += 6;
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return self.fail(LONE, i),
            _ => first,
        };
        match char::from_u32(code) {
            Some(c) => Some((c, end)),
            None => self.fail(LONE, i),
        }
    }

    fn hex4(&mut self, i: usize) -> Option<u32> {
        let mut value = 0;
        for at in i..i + 4 {
            match char::from(self.byte(at)).to_digit(16) {
                Some(digit) => value = value * 16 + digit,
                None => return self.fail("expected four hex digits in a \\u escape", at),
            }
        }
        Some(value)
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

/// Keeps no member.
#[cfg(test)]
struct NoMembers;

#[cfg(test)]
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
