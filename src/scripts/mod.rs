//! Lua scripts recognised by their SHA1 and run as native operations.
//!
//! These run without Lua (scripts outside the catalogue go to the embedded
//! interpreter, `commands::lua`). The lock scripts of popular client
//! libraries (catalogued in `lock-scripts.json`, next to this file) are
//! recognised by the SHA1 of their exact text and mapped to a handful of
//! parameterised native operations ([`catalogue::Op`]), run by
//! `commands::scripting`. The mapping is data (`native.json`, one row per
//! script), turned into a static table at build time.

pub mod catalogue;

use std::collections::HashMap;
use std::sync::OnceLock;

use sha1::{Digest, Sha1};

pub use catalogue::{Op, Script};

/// SHA1 of a script's text, as 40 lowercase hex digits (what SCRIPT LOAD returns).
pub fn sha1_hex(text: &[u8]) -> String {
    hex::encode(Sha1::digest(text))
}

/// The native equivalent of a script, by its SHA1 (any case), without
/// allocating: EVALSHA is on the hot path of every lock release.
pub fn lookup(sha: &[u8]) -> Option<&'static Script> {
    static INDEX: OnceLock<HashMap<[u8; 40], &'static Script, ahash::RandomState>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        catalogue::CATALOGUE
            .iter()
            .map(|s| (<[u8; 40]>::try_from(s.sha.as_bytes()).expect("40 hex digits"), s))
            .collect()
    });
    let mut key: [u8; 40] = sha.try_into().ok()?;
    key.make_ascii_lowercase();
    index.get(&key).copied()
}
