//! Small helpers for reading command arguments: case-insensitive keywords
//! and Redis's strict number parsing.

use super::error::CmdError;
use crate::protocol::decode::parse_i64;

/// Case-insensitive comparison against an ASCII keyword.
#[inline]
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// A word of up to 8 bytes as one integer, ASCII case folded, for matching
/// keywords with one comparison: `keyword_code(b"PX") == Some(keyword("px"))`.
///
/// Folding sets bit 5 of each byte, which yields a lowercase letter only
/// from a letter, and never yields 0, so for letter-only keywords two codes
/// are equal exactly when the words are equal ignoring case (and length).
#[inline]
pub const fn keyword_code(word: &[u8]) -> Option<u64> {
    if word.len() > 8 {
        return None;
    }
    let mut code = 0u64;
    let mut i = 0;
    while i < word.len() {
        code |= ((word[i] | 0x20) as u64) << (8 * i);
        i += 1;
    }
    Some(code)
}

/// The code of a letter-only keyword, for `match` arms (see [`keyword_code`]).
pub const fn keyword(word: &str) -> u64 {
    let bytes = word.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_lowercase(), "keywords are lowercase letters");
        i += 1;
    }
    match keyword_code(bytes) {
        Some(code) => code,
        None => panic!("keywords are at most 8 bytes"),
    }
}

/// An integer argument, or `ERR value is not an integer or out of range`.
#[inline]
pub fn int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or(CmdError::NotInteger)
}

/// A float argument as Redis's string2ld accepts it, or `ERR value is not a valid float`.
pub fn float(arg: &[u8]) -> Result<f64, CmdError> {
    parse_float(arg).ok_or(CmdError::NotFloat)
}

/// Parse a float: no leading/trailing space, no NaN; "inf"/"-inf" allowed.
pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        // A finite literal that overflows is out of range (strtold's ERANGE).
        _ => s.parse().ok().filter(|v: &f64| v.is_finite())?,
    };
    if v.is_nan() { None } else { Some(v) }
}

/// A cursor over the options that follow a command's fixed arguments.
pub struct Cursor<'a, 'b> {
    args: &'b [&'a [u8]],
    pos: usize,
}

impl<'a, 'b> Cursor<'a, 'b> {
    pub fn new(args: &'b [&'a [u8]], start: usize) -> Self {
        Cursor { args, pos: start }
    }

    /// The next argument, if any.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&'a [u8]> {
        let a = self.args.get(self.pos).copied();
        if a.is_some() {
            self.pos += 1;
        }
        a
    }

    /// The index of the argument [`Cursor::next`] returns next.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The value an option needs (`EX <seconds>`), or a syntax error.
    pub fn value(&mut self) -> Result<&'a [u8], CmdError> {
        self.next().ok_or(CmdError::Syntax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_codes_match_exactly_the_word_in_any_case() {
        let px = keyword("px");
        for yes in [&b"px"[..], b"PX", b"pX", b"Px"] {
            assert_eq!(keyword_code(yes), Some(px), "{yes:?}");
        }
        // Bytes that differ from a letter only in bit 5 ('P' ^ 0x20 = 'p',
        // but '0' ^ 0x20 = 0x10), other lengths, trailing NULs and spaces.
        for no in [
            &b"p"[..],
            b"pxx",
            b"px\0",
            b"px ",
            b"\x10x",
            b"p\x58\x00",
            b"0x",
            b"",
            b"pxpxpxpxp",
        ] {
            assert_ne!(keyword_code(no), Some(px), "{no:?}");
        }
        // Every pair of bytes: a match exactly when it is case-insensitively "px".
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let word = [a, b];
                assert_eq!(
                    keyword_code(&word) == Some(px),
                    word.eq_ignore_ascii_case(b"px"),
                    "{word:?}"
                );
            }
        }
    }
}
