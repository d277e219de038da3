//! Small helpers for reading command arguments: case-insensitive keywords
//! and Redis's strict number parsing.

use super::error::CmdError;
use crate::protocol::decode::parse_i64;

/// Case-insensitive comparison against an ASCII keyword.
#[inline]
pub fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
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

    /// The value an option needs (`EX <seconds>`), or a syntax error.
    pub fn value(&mut self) -> Result<&'a [u8], CmdError> {
        self.next().ok_or(CmdError::Syntax)
    }
}
