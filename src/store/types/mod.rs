//! What a key holds: a string, or one of Redis's containers (hash, list,
//! set, sorted set). A string stays inline in its entry (24 bytes, as
//! before containers existed: the string hot path reads one more tag and
//! nothing else); a container is one pointer to its structure.
//!
//! Each container mirrors Redis 7.0's encodings where they show (OBJECT
//! ENCODING, and the reply order of a small hash, set or sorted set). An
//! empty container is never stored: the commands delete the key instead.

pub mod hash;
pub mod set;
pub mod table;
pub mod zset;

use std::collections::VecDeque;

pub use hash::Hash;
pub use set::Set;
pub use zset::ZSet;

use super::SmallBytes;
use crate::protocol::decode::parse_i64;

/// A list value (Redis 7.0 says "quicklist" for every list).
pub type List = VecDeque<SmallBytes>;

#[derive(Clone)]
pub enum Value {
    Str(SmallBytes),
    Hash(Box<Hash>),
    List(Box<List>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
}

// The containers' pointers fit beside the string's tag: an entry did not grow.
const _: () = assert!(std::mem::size_of::<Value>() == 24);

/// A command met a key holding another type than it works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

impl Value {
    /// What TYPE answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// What OBJECT ENCODING answers. For strings as Redis decides when it
    /// stores one: an integer in canonical form is "int", up to 44 bytes
    /// "embstr", longer "raw".
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) if s.len() <= 20 && parse_i64(s).is_some() => "int",
            Value::Str(s) if s.len() <= 44 => "embstr",
            Value::Str(_) => "raw",
            Value::Hash(h) => h.encoding(),
            Value::List(_) => "quicklist",
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
        }
    }

    /// The string, or [`WrongType`] for a container.
    #[inline]
    pub fn str(&self) -> Result<&SmallBytes, WrongType> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(WrongType),
        }
    }
}

/// One of the container types, for code generic over them (look the
/// container up, create it, delete it once empty).
pub trait Container: Default + Sized {
    fn of(value: &Value) -> Option<&Self>;
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    fn into_value(self) -> Value;
    fn is_empty(&self) -> bool;
}

macro_rules! container {
    ($t:ty, $variant:ident) => {
        impl Container for $t {
            fn of(value: &Value) -> Option<&Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(Box::new(self))
            }
            fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }
    };
}

container!(Hash, Hash);
container!(List, List);
container!(Set, Set);
container!(ZSet, ZSet);
