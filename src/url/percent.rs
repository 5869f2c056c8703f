//! The one `%XX` decoder, for URL option values and D-Bus address values.

/// Why [`decode`] refused a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PercentError {
    /// The `%` at this byte offset is not followed by two hex digits.
    BadEscape(usize),
    /// The byte at this offset is neither `%` nor one that may stand
    /// unescaped. When the caller's set of such bytes is ASCII, the offset is
    /// a char boundary.
    Unescaped(usize),
}

/// Decodes `%XX` escapes (hex digits in either case) into bytes. Any other
/// byte must satisfy `plain` and is kept as is; the first fault, from the
/// left, is the error.
///
/// URL option values pass `|_| true` (anything may stand unescaped); D-Bus
/// addresses pass their "optionally-escaped" set. The result is bytes: what
/// they must be (UTF-8, free of NUL) is the caller's rule.
pub(crate) fn decode(raw: &str, plain: impl Fn(u8) -> bool) -> Result<Vec<u8>, PercentError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    // Two hex digits make at most 0xff.
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => return Err(PercentError::BadEscape(i)),
                }
                i += 3;
            }
            b if plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return Err(PercentError::Unescaped(i)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_in_either_case_and_keeps_the_rest() {
        let any = |_| true;
        assert_eq!(decode("", any), Ok(Vec::new()));
        assert_eq!(decode("a b/c", any), Ok(b"a b/c".to_vec()));
        assert_eq!(
            decode("%2F%2f%00%ff%FF", any),
            Ok(vec![b'/', b'/', 0, 255, 255])
        );
        assert_eq!(decode("%25%2541", any), Ok(b"%%41".to_vec()));
        assert_eq!(decode("%c3%a9", any), Ok("é".as_bytes().to_vec()));
        assert_eq!(decode("é%20", any), Ok("é ".as_bytes().to_vec()));
    }

    #[test]
    fn a_percent_needs_two_hex_digits() {
        let any = |_| true;
        for (raw, at) in [
            ("%", 0),
            ("a%", 1),
            ("a%2", 1),
            ("ab%zz", 2),
            ("%+1", 0),
            ("%-1", 0),
            ("% 1", 0),
            ("%2é", 0),
            ("%41%4", 3),
            ("%%41", 0),
        ] {
            assert_eq!(
                decode(raw, any),
                Err(PercentError::BadEscape(at)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_first_fault_from_the_left_wins() {
        let alnum = |b: u8| b.is_ascii_alphanumeric();
        assert_eq!(decode("ab%41c", alnum), Ok(b"abAc".to_vec()));
        assert_eq!(decode("a b%zz", alnum), Err(PercentError::Unescaped(1)));
        assert_eq!(decode("a%zz b", alnum), Err(PercentError::BadEscape(1)));
        // Escaped bytes are not subject to `plain`.
        assert_eq!(decode("%20", alnum), Ok(b" ".to_vec()));
        assert_eq!(decode("%41é", alnum), Err(PercentError::Unescaped(3)));
    }
}
