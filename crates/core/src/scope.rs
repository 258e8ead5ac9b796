//! Gate-token scopes: the request path normalised once (percent-decoding, dot segments,
//! duplicate slashes), then matched against the token's `URLs` (exact, or a prefix when the
//! pattern ends in `*`) and `verbs` (HTTP methods, any letter case). Pure functions: the server
//! and the gateway call them with the path after any `strip_prefix`.

use std::fmt;

/// Why a request path is refused before any match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// It does not start with `/`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F` (or `%5C`): an encoded separator would let one segment pass for two.
    EncodedSeparator,
    /// A NUL byte, raw or encoded.
    Nul,
    /// An encoded `%` (`%25`): decoded once more downstream (`%252e` → `%2e` → `.`), it could
    /// become a dot segment or a separator.
    EncodedPercent,
    /// Decoded bytes are not UTF-8.
    NotUtf8,
    /// `..` above the root.
    AboveRoot,
    /// A raw backslash, which some servers treat as `/`.
    Backslash,
    /// A dot segment with path parameters (`..;x`), which servers that strip parameters
    /// (Tomcat, Jetty) resolve as `..` after any check has passed.
    DotParameters,
    /// Not in canonical form (`strict_path`): dot segments, `//`, `;`, whitespace, control or
    /// non-ASCII characters, which a server behind the proxy may read differently.
    NotCanonical(&'static str),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path does not start with '/'",
            PathError::BadEscape => "the path has a '%' not followed by two hex digits",
            PathError::EncodedSeparator => "the path has an encoded '/' or '\\' (%2F, %5C)",
            PathError::Nul => "the path has a NUL byte",
            PathError::EncodedPercent => {
                "the path has an encoded '%' (%25), which a second decoding would change"
            }
            PathError::NotUtf8 => "the decoded path is not UTF-8",
            PathError::AboveRoot => "the path climbs above the root with '..'",
            PathError::Backslash => "the path has a backslash",
            PathError::DotParameters => {
                "the path has a dot segment with parameters ('..;' or '.;')"
            }
            PathError::NotCanonical(what) => return write!(f, "the path is not canonical: {what}"),
        })
    }
}

impl std::error::Error for PathError {}

/// The path as every scope check sees it: percent-decoded once, `.` and empty segments
/// dropped, `..` resolved (refused above the root); a trailing `/` is kept. The query is not
/// part of it: pass the path alone.
pub fn normalize_path(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = percent_decode(raw.as_bytes())?;
    let text = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in text.split('/').skip(1) {
        if let Some((name, _)) = segment.split_once(';') {
            if matches!(name, "" | "." | "..") {
                return Err(PathError::DotParameters);
            }
        }
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(text.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Whether `raw` is already what `normalize_path` would make of it, judged without
/// allocating: it starts with `/`, holds only characters that need no decoding (no `%`, no
/// `;`, no backslash), and has no empty, `.` or `..` segment (a trailing `/` is fine). The
/// gateway's fast path for the usual request; anything else goes through `normalize_path`.
pub fn is_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    let plain = bytes.iter().all(|&b| is_path_char(b) && b != b';');
    // Without "//", the only empty segment is the one after a trailing '/'.
    plain && !raw.contains("//") && !raw.split('/').any(|s| s == "." || s == "..")
}

/// A path that must already be canonical, for checks on a request that goes on unchanged (as
/// in forward-auth, where the service behind the proxy parses the raw path itself): decoded
/// once like `normalize_path`, but refused, never resolved, if it holds anything a server could
/// read another way: dot segments (raw or encoded), empty segments (`//`), `;` (path
/// parameters: `/a/..;/b`), whitespace, control or non-ASCII characters. Browsers never send
/// such paths; a check that resolves them would judge a path the service does not serve.
pub fn strict_path(raw: &str) -> Result<String, PathError> {
    let normal = normalize_path(raw)?;
    let decoded =
        String::from_utf8(percent_decode(raw.as_bytes())?).map_err(|_| PathError::NotUtf8)?;
    if decoded.contains(';') {
        return Err(PathError::NotCanonical("';' (path parameters)"));
    }
    if decoded
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(PathError::NotCanonical(
            "whitespace, control or non-ASCII characters",
        ));
    }
    if decoded != normal {
        return Err(PathError::NotCanonical("dot segments or '//'"));
    }
    Ok(normal)
}

/// An RFC 3986 path character that needs no encoding: unreserved, sub-delims, `:`, `@`, `/`.
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// A normalised path written for a request line: every byte that is not an RFC 3986 path
/// character (unreserved, sub-delims, `:`, `@`, `/`) percent-encoded, so that what a server
/// behind the gateway reads is exactly the path the gateway matched. Borrowed when nothing
/// needs encoding (the usual case).
pub fn encode_path(path: &str) -> std::borrow::Cow<'_, str> {
    let keep = is_path_char;
    if path.bytes().all(keep) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(hi), Some(lo)) = (
                    raw.get(i + 1).and_then(|b| hex(*b)),
                    raw.get(i + 2).and_then(|b| hex(*b)),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let byte = (hi * 16 + lo) as u8;
                match byte {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Nul),
                    b'%' => return Err(PathError::EncodedPercent),
                    _ => out.push(byte),
                }
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Whether a normalised `path` is one of `urls`: equal to a pattern, or starting with a
/// pattern that ends in `*` (without the `*`; `/vm1/*` covers `/vm1/` and everything below it,
/// while `/vm1*` also covers `/vm1-other`, so end prefixes with `/*`).
pub fn url_allowed<'a>(urls: impl IntoIterator<Item = &'a str>, path: &str) -> bool {
    urls.into_iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == pattern,
        })
}

/// Whether `method` is one of `verbs` (any letter case). Without a `verbs` claim a gate token
/// reads only: GET and HEAD. A websocket upgrade is a GET.
pub fn verb_allowed<'a>(verbs: Option<impl IntoIterator<Item = &'a str>>, method: &str) -> bool {
    match verbs {
        Some(verbs) => verbs.into_iter().any(|v| v.eq_ignore_ascii_case(method)),
        None => method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_knows_normal_paths() {
        for normal in ["/", "/a", "/a/", "/k8s/apis/v1/x.y", "/a~b/c-d_e"] {
            assert!(is_normal(normal), "{normal}");
        }
        for other in [
            "", "a", "//a", "/a//b", "/./a", "/a/..", "/a/.", "/a%20", "/a;b", "/a\\b",
        ] {
            assert!(!is_normal(other), "{other}");
        }
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        for raw in [
            "/vm1/..;/vm2",
            "/a/.;x/b",
            "/a/%2e%2e;/b",
            "/a/..%3B/b",
            "/;x/a",
        ] {
            assert_eq!(normalize_path(raw), Err(PathError::DotParameters), "{raw}");
        }
        assert_eq!(normalize_path("/a;v=1/b;x").unwrap(), "/a;v=1/b;x");
    }

    #[test]
    fn encoded_paths_read_back_as_the_normalised_path() {
        assert!(matches!(
            encode_path("/k8s/apis/v1/x"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(encode_path("/a b/c?d#e%"), "/a%20b/c%3Fd%23e%25");
        assert_eq!(encode_path("/caf\u{e9}"), "/caf%C3%A9");
        for raw in ["/a%20b/c%3Fd", "/x/%C3%A9t%C3%A9", "/a;b=c/@:!"] {
            let normal = normalize_path(raw).unwrap();
            assert_eq!(
                normalize_path(&encode_path(&normal)).unwrap(),
                normal,
                "{raw}"
            );
        }
    }

    #[test]
    fn paths_are_decoded_once_and_dot_segments_resolved() {
        for (raw, want) in [
            ("/k8s/a/../b", "/k8s/b"),
            ("/k8s/./b", "/k8s/b"),
            ("//k8s//b", "/k8s/b"),
            ("/k8s/b/", "/k8s/b/"),
            ("/k8s/b/.", "/k8s/b/"),
            ("/k8s/b/c/..", "/k8s/b/"),
            ("/k8s/%2e%2e/x", "/x"),
            ("/k8s/%2E%2e/x", "/x"),
            ("/k8s/a%20b", "/k8s/a b"),
            ("/%7Euser", "/~user"),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn paths_that_could_mean_two_things_are_refused() {
        for (raw, want) in [
            ("k8s/b", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
            ("/k8s/a%2fb", PathError::EncodedSeparator),
            ("/k8s/a%2Fb", PathError::EncodedSeparator),
            ("/k8s/a%5cb", PathError::EncodedSeparator),
            ("/k8s/a\\b", PathError::Backslash),
            ("/k8s/a%00", PathError::Nul),
            ("/k8s/a\0", PathError::Nul),
            ("/k8s/%zz", PathError::BadEscape),
            ("/k8s/%2", PathError::BadEscape),
            ("/k8s/%252e%252e/x", PathError::EncodedPercent),
            ("/k8s/100%25", PathError::EncodedPercent),
            ("/k8s/%ff", PathError::NotUtf8),
            ("/..", PathError::AboveRoot),
            ("/k8s/../../etc", PathError::AboveRoot),
            ("/%2e%2e/etc", PathError::AboveRoot),
        ] {
            assert_eq!(normalize_path(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn strict_paths_refuse_what_normalising_would_change() {
        assert_eq!(strict_path("/k8s/vm1/vnc").as_deref(), Ok("/k8s/vm1/vnc"));
        assert_eq!(strict_path("/k8s/vm1/").as_deref(), Ok("/k8s/vm1/"));
        assert_eq!(
            strict_path("/k8s/a%20b"),
            Err(PathError::NotCanonical(
                "whitespace, control or non-ASCII characters"
            ))
        );
        assert_eq!(strict_path("/k8s/%7Euser").as_deref(), Ok("/k8s/~user"));
        for raw in [
            "/k8s/a/../b",
            "/k8s/./b",
            "//k8s/b",
            "/k8s//b",
            "/k8s/%2e%2e/b",
            "/k8s/%2e/b",
            "/vm1/..;/vm2/x",
            "/vm1/%3b/x",
            "/vm1/x;a=b",
            "/vm1/\u{ff0e}\u{ff0e}/vm2",
            "/vm1/%ef%bc%8e%ef%bc%8e/vm2",
            "/vm1/a%09b",
            "/vm1/a%0ab",
        ] {
            assert!(strict_path(raw).is_err(), "{raw}");
        }
        // What normalize_path refuses, strict_path refuses too.
        assert_eq!(strict_path("/k8s/a%2fb"), Err(PathError::EncodedSeparator));
    }

    #[test]
    fn urls_match_exactly_or_by_prefix() {
        let urls = ["/k8s/vm1/vnc", "/k8s/vm2/*"];
        let allowed =
            |raw: &str| normalize_path(raw).is_ok_and(|p| url_allowed(urls.iter().copied(), &p));
        assert!(allowed("/k8s/vm1/vnc"));
        assert!(allowed("//k8s/vm1/./vnc"));
        assert!(allowed("/k8s/vm3/../vm1/vnc"), "normalised first");
        assert!(
            !allowed("/k8s/vm1/vnc/"),
            "a trailing slash is another path"
        );
        assert!(!allowed("/k8s/vm1/vnc/x"), "exact means exact");
        assert!(!allowed("/k8s/vm1/vnc/../../vm3/vnc"));
        assert!(allowed("/k8s/vm2/"));
        assert!(allowed("/k8s/vm2/vnc"));
        assert!(!allowed("/k8s/vm2"), "/vm2/* does not cover /vm2");
        assert!(!allowed("/k8s/vm2/..%2fvm3"));
        assert!(!allowed("/k8s/vm2/../vm3/vnc"));
    }

    #[test]
    fn verbs_match_in_any_case_and_default_to_reading() {
        assert!(verb_allowed(Some(["get"]), "GET"));
        assert!(verb_allowed(Some(["Post", "get"]), "post"));
        assert!(!verb_allowed(Some(["get"]), "DELETE"));
        assert!(verb_allowed(None::<[&str; 0]>, "GET"));
        assert!(verb_allowed(None::<[&str; 0]>, "head"));
        assert!(!verb_allowed(None::<[&str; 0]>, "POST"));
        assert!(!verb_allowed(Some([] as [&str; 0]), "GET"));
    }
}
