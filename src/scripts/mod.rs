//! Lua scripts recognised by their SHA1 and run as native operations.
//!
//! redlockd embeds no Lua interpreter. The lock scripts of popular client
//! libraries (catalogued in `shared/lock-scripts.json`) are recognised by the
//! SHA1 of their exact text and mapped to a handful of parameterised native
//! operations ([`catalogue::Op`]), run by `commands::scripting`. The table is
//! data; adding a library's script is one line.

pub mod catalogue;

use sha1::{Digest, Sha1};

pub use catalogue::{Op, Script};

/// SHA1 of a script's text, as 40 lowercase hex digits (what SCRIPT LOAD returns).
pub fn sha1_hex(text: &[u8]) -> String {
    hex::encode(Sha1::digest(text))
}

/// The native equivalent of a script, by its SHA1 (any case).
pub fn lookup(sha: &[u8]) -> Option<&'static Script> {
    if sha.len() != 40 {
        return None;
    }
    let lower = sha.to_ascii_lowercase();
    let lower = std::str::from_utf8(&lower).ok()?;
    catalogue::CATALOGUE.iter().find(|s| s.sha == lower)
}
