//! Every error a command can reply with, and its exact Redis text, in one place.

use std::borrow::Cow;

use crate::store::{NotLocked, WrongType};

#[derive(Debug, Clone, PartialEq)]
pub enum CmdError {
    /// `ERR wrong number of arguments for '<cmd>' command`
    WrongArity,
    Syntax,
    NotInteger,
    NotFloat,
    Overflow,
    NanOrInfinity,
    /// `ERR invalid expire time in '<cmd>' command`
    InvalidExpire,
    WrongType,
    NoSuchKey,
    StringTooLong,
    /// An IFDEQ/IFDNE argument that is not a digest as DIGEST prints it.
    InvalidDigest,
    /// An error text with its code (`ERR ...`, `NOSCRIPT ...`), fixed.
    Static(&'static str),
    /// An error text with its code, built at run time.
    Message(String),
}

pub type CmdResult = Result<(), CmdError>;

/// Past `maxmemory`, to a command that may grow memory (Redis's `oomerr`).
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

impl CmdError {
    /// The reply text (without the leading '-'); `cmd` is the lowercase name
    /// of the command that failed.
    pub fn text(&self, cmd: &str) -> Cow<'static, str> {
        match self {
            CmdError::WrongArity => format!("ERR wrong number of arguments for '{cmd}' command").into(),
            CmdError::Syntax => "ERR syntax error".into(),
            CmdError::NotInteger => "ERR value is not an integer or out of range".into(),
            CmdError::NotFloat => "ERR value is not a valid float".into(),
            CmdError::Overflow => "ERR increment or decrement would overflow".into(),
            CmdError::NanOrInfinity => "ERR increment would produce NaN or Infinity".into(),
            CmdError::InvalidExpire => format!("ERR invalid expire time in '{cmd}' command").into(),
            CmdError::WrongType => "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
            CmdError::NoSuchKey => "ERR no such key".into(),
            CmdError::StringTooLong => "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into(),
            CmdError::InvalidDigest => "ERR The digest must be exactly 16 hexadecimal characters".into(),
            CmdError::Static(s) => (*s).into(),
            CmdError::Message(s) => s.clone().into(),
        }
    }

    pub fn msg(s: impl Into<String>) -> CmdError {
        CmdError::Message(s.into())
    }
}

impl From<NotLocked> for CmdError {
    fn from(_: NotLocked) -> Self {
        CmdError::Static("ERR internal error: key outside the command's key specification")
    }
}

impl From<WrongType> for CmdError {
    fn from(_: WrongType) -> Self {
        CmdError::WrongType
    }
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' ` (Redis 7 text).
pub fn unknown_command(args: &[&[u8]]) -> String {
    let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]).into_owned();
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push('\'');
        rest.push_str(&String::from_utf8_lossy(&a[..a.len().min(room)]));
        rest.push_str("' ");
    }
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}

/// Redis's refusal while the append-only file cannot be written
/// (`writeCommandsGetDiskErrorMessage`): `MISCONF Errors writing to the AOF
/// file: <strerror>`.
pub fn misconf_aof(errno: i32) -> String {
    let error = std::io::Error::from_raw_os_error(errno).to_string();
    // std writes "<strerror> (os error N)"; Redis prints strerror alone.
    let text = error.strip_suffix(&format!(" (os error {errno})")).unwrap_or(&error);
    format!("MISCONF Errors writing to the AOF file: {text}")
}

/// `ERR unknown subcommand 'x'. Try CLIENT HELP.`
pub fn unknown_subcommand(sub: &[u8], cmd: &str) -> CmdError {
    let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned();
    CmdError::msg(format!(
        "ERR unknown subcommand '{sub}'. Try {} HELP.",
        cmd.to_ascii_uppercase()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn misconf_names_the_error_as_strerror_does() {
        assert_eq!(
            super::misconf_aof(libc::ENOSPC),
            "MISCONF Errors writing to the AOF file: No space left on device"
        );
        assert_eq!(
            super::misconf_aof(libc::EIO),
            "MISCONF Errors writing to the AOF file: Input/output error"
        );
    }
}
