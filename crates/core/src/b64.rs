//! Strict base64url decoding for token segments: unpadded, URL alphabet only, zero trailing
//! bits, so every byte string has exactly one encoding. The same rules as `jose::BASE64URL`
//! (tested against it); this one exists because it runs three times per verified token and
//! decodes into a caller's stack buffer at a third of the general engine's cost.

/// Why a segment is not canonical unpadded base64url, with the offending offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A byte outside `A-Z a-z 0-9 - _` (including `=`).
    Byte { at: usize, byte: u8 },
    /// A length of 4n+1 characters, which no byte string encodes to.
    Length(usize),
    /// The last character carries bits beyond the data (a second spelling of the same bytes).
    TrailingBits { at: usize },
}

impl Fault {
    /// The same fault, for input that started `by` bytes later.
    fn shifted(self, by: usize) -> Fault {
        match self {
            Fault::Byte { at, byte } => Fault::Byte { at: at + by, byte },
            Fault::TrailingBits { at } => Fault::TrailingBits { at: at + by },
            Fault::Length(len) => Fault::Length(len),
        }
    }
}

const NOT: u8 = 0xff;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Each byte's six-bit value, or `NOT`.
static VALUE: [u8; 256] = {
    let mut table = [NOT; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// For each position in a group of four characters, each byte's value already shifted into
/// place in a 24-bit group, or a high bit that marks it invalid: a group then costs four
/// lookups, three ORs and one test.
static SHIFTED: [[u32; 256]; 4] = {
    let mut tables = [[1 << 31; 256]; 4];
    let mut pos = 0;
    while pos < 4 {
        let mut i = 0;
        while i < 64 {
            tables[pos][ALPHABET[i] as usize] = (i as u32) << (18 - 6 * pos);
            i += 1;
        }
        pos += 1;
    }
    tables
};

/// Four characters as a 24-bit group; bit 31 set if any is invalid.
#[inline(always)]
fn group(quad: &[u8]) -> u32 {
    SHIFTED[0][usize::from(quad[0])]
        | SHIFTED[1][usize::from(quad[1])]
        | SHIFTED[2][usize::from(quad[2])]
        | SHIFTED[3][usize::from(quad[3])]
}

/// The exact decoded length of a well-formed segment of `len` characters.
pub(crate) fn decoded_len(len: usize) -> Result<usize, Fault> {
    match len % 4 {
        1 => Err(Fault::Length(len)),
        rem => Ok(len / 4 * 3 + rem.saturating_sub(1)),
    }
}

/// Decodes `input` into the start of `out`, which must hold `decoded_len(input.len())` bytes;
/// returns that length.
pub(crate) fn decode_into(input: &[u8], out: &mut [u8]) -> Result<usize, Fault> {
    let len = decoded_len(input.len()).map_err(|fault| first_bad_byte(input).unwrap_or(fault))?;
    let out = out.get_mut(..len).ok_or(Fault::Length(input.len()))?;
    let done = decode_octets(input, out);
    if input.len() - done >= 8 {
        return Err(bad_byte(input, done));
    }
    decode_tail(&input[done..], &mut out[done / 8 * 6..], done)?;
    Ok(len)
}

/// Decodes the segment at the start of `input` that ends at the first `.` (or at the end),
/// into `out`; returns the segment's length. This finds the end of a token's payload while
/// decoding it, rather than in a separate pass over the same bytes.
pub(crate) fn decode_segment(input: &[u8], out: &mut Vec<u8>) -> Result<usize, Fault> {
    // Room for everything up to the end: the segment can only be shorter.
    out.clear();
    out.resize(input.len() / 4 * 3 + 3, 0);
    let done = decode_octets(input, out);
    // The segment ends at the first byte outside the alphabet, if that is a '.'; it lies
    // within the eight characters where decoding stopped.
    let end = match first_bad_byte(&input[done..]) {
        None => input.len(),
        Some(Fault::Byte { at, byte: b'.' }) => done + at,
        Some(other) => return Err(other.shifted(done)),
    };
    let len = decoded_len(end)?;
    decode_tail(&input[done..end], &mut out[done / 8 * 6..], done)?;
    out.truncate(len);
    Ok(end)
}

/// Decodes groups of eight characters (two with one validity test) from the start of `input`
/// until one holds a byte outside the alphabet or fewer than eight remain; returns how many
/// characters it decoded.
fn decode_octets(input: &[u8], out: &mut [u8]) -> usize {
    let mut done = 0;
    for (octet, sextet) in input.chunks_exact(8).zip(out.chunks_exact_mut(6)) {
        let (hi, lo) = (group(&octet[..4]), group(&octet[4..]));
        if (hi | lo) >> 31 != 0 {
            break;
        }
        let n = u64::from(hi) << 24 | u64::from(lo);
        sextet.copy_from_slice(&n.to_be_bytes()[2..]);
        done += 8;
    }
    done
}

/// Decodes the last characters of a segment (fewer than eight, at offset `at` in it), with the
/// canonical-encoding check on the final one.
fn decode_tail(tail: &[u8], out: &mut [u8], at: usize) -> Result<(), Fault> {
    let bad = |tail: &[u8], at: usize| bad_byte(tail, 0).shifted(at);
    let (tail, out, at) = match tail.split_first_chunk::<4>() {
        Some((quad, rest)) => {
            let n = group(quad);
            if n >> 31 != 0 {
                return Err(bad(tail, at));
            }
            out[..3].copy_from_slice(&n.to_be_bytes()[1..]);
            (rest, &mut out[3..], at + 4)
        }
        None => (tail, out, at),
    };
    let value = |b: u8| VALUE[usize::from(b)];
    match *tail {
        [] => {}
        [a, b] => {
            let (a, b) = (value(a), value(b));
            if (a | b) & 0x80 != 0 {
                return Err(bad(tail, at));
            }
            if b & 0x0f != 0 {
                return Err(Fault::TrailingBits { at: at + 1 });
            }
            out[0] = a << 2 | b >> 4;
        }
        [a, b, c] => {
            let (a, b, c) = (value(a), value(b), value(c));
            if (a | b | c) & 0x80 != 0 {
                return Err(bad(tail, at));
            }
            if c & 0x03 != 0 {
                return Err(Fault::TrailingBits { at: at + 2 });
            }
            out[0] = a << 2 | b >> 4;
            out[1] = b << 4 | c >> 2;
        }
        _ => return Err(Fault::Length(at + tail.len())),
    }
    Ok(())
}

/// Decodes `input` into a new vector.
pub(crate) fn decode(input: &[u8]) -> Result<Vec<u8>, Fault> {
    let len = decoded_len(input.len()).map_err(|fault| first_bad_byte(input).unwrap_or(fault))?;
    let mut out = vec![0; len];
    decode_into(input, &mut out)?;
    Ok(out)
}

/// The fault for the first invalid byte at or after `from` (there is one).
#[cold]
#[inline(never)]
fn bad_byte(input: &[u8], from: usize) -> Fault {
    first_bad_byte(&input[from..]).map_or(Fault::Length(input.len()), |f| f.shifted(from))
}

fn first_bad_byte(input: &[u8]) -> Option<Fault> {
    let at = input.iter().position(|&b| VALUE[usize::from(b)] == NOT)?;
    Some(Fault::Byte {
        at,
        byte: input[at],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::BASE64URL;
    use base64::Engine;
    use proptest::prelude::*;

    #[test]
    fn decodes_rfc_4648_vectors_in_the_url_alphabet() {
        for (encoded, plain) in [
            ("", ""),
            ("Zg", "f"),
            ("Zm8", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg", "foob"),
            ("Zm9vYmE", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(decode(encoded.as_bytes()), Ok(plain.as_bytes().to_vec()));
        }
        assert_eq!(decode(b"-_-_"), Ok(vec![0xfb, 0xff, 0xbf]));
    }

    #[test]
    fn faults_name_the_offset() {
        assert_eq!(decode(b"Zm9v=="), Err(Fault::Byte { at: 4, byte: b'=' }));
        assert_eq!(decode(b"Zm+v"), Err(Fault::Byte { at: 2, byte: b'+' }));
        assert_eq!(decode(b"Zm9vY"), Err(Fault::Length(5)));
        assert_eq!(decode(b"Zh"), Err(Fault::TrailingBits { at: 1 }));
        assert_eq!(decode(b"Zm9"), Err(Fault::TrailingBits { at: 2 }));
    }

    #[test]
    fn a_segment_ends_at_the_first_dot() {
        let mut out = Vec::new();
        assert_eq!(decode_segment(b"Zm9vYmFyZm9vYg.x.y", &mut out), Ok(14));
        assert_eq!(out, b"foobarfoob");
        assert_eq!(decode_segment(b"Zm8", &mut out), Ok(3));
        assert_eq!(out, b"fo");
        assert_eq!(decode_segment(b".Zm8", &mut out), Ok(0));
        assert_eq!(out, b"");
        assert_eq!(
            decode_segment(b"Zm9vYmFyZ.x", &mut out),
            Err(Fault::Length(9))
        );
        assert_eq!(
            decode_segment(b"Zm9vYmFyZm+v.x", &mut out),
            Err(Fault::Byte { at: 10, byte: b'+' })
        );
        assert_eq!(
            decode_segment(b"Zm9vYmFyZh.x", &mut out),
            Err(Fault::TrailingBits { at: 9 })
        );
    }

    proptest! {
        /// Same verdict as decoding the part before the first dot on its own.
        #[test]
        fn segment_decoding_agrees_with_whole_decoding(input in "[A-Za-z0-9_=+. -]{0,40}") {
            let mut out = Vec::new();
            let end = input.find('.').unwrap_or(input.len());
            let whole = decode(&input.as_bytes()[..end]);
            let segment = decode_segment(input.as_bytes(), &mut out).map(|n| (n, out.clone()));
            prop_assert_eq!(segment, whole.map(|bytes| (end, bytes)));
        }

        /// Same verdict and bytes as the general engine configured the same way.
        #[test]
        fn agrees_with_the_base64_crate(input in "[A-Za-z0-9_=+/. -]{0,40}") {
            let ours = decode(input.as_bytes());
            let theirs = BASE64URL.decode(&input);
            prop_assert_eq!(ours.as_ref().ok(), theirs.as_ref().ok(), "{:?} vs {:?}", ours, theirs);
        }

        #[test]
        fn round_trips_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let encoded = BASE64URL.encode(&bytes);
            prop_assert_eq!(decode(encoded.as_bytes()), Ok(bytes));
        }
    }
}
