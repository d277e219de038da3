//! One stored value, its deadline, and what belongs to the value: its
//! fence and whether a lock grant stored it (the lock mark).

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};
use super::types::{Value, WrongType};

/// A value (a string or a container) with an optional deadline.
#[derive(Clone)]
pub struct Entry {
    pub value: Value,
    pub(super) deadline: Deadline,
    /// The fence ([`Entry::fence`]) in the low 63 bits and the lock mark
    /// ([`Entry::is_lock`]) in the top bit: fences are at most `i64::MAX`
    /// (they are replied as integers), so the mark costs the entry no byte
    /// (a key's slot stays 64 bytes). Both belong to the value: overwriting
    /// the value with another resets them.
    tag: u64,
}

/// The lock mark's bit in [`Entry::tag`].
const LOCK_MARK: u64 = 1 << 63;

impl Entry {
    pub fn new(value: &[u8], deadline: Deadline) -> Self {
        Entry::with_value(Value::Str(value.into()), deadline)
    }

    pub fn with_value(value: Value, deadline: Deadline) -> Self {
        Entry {
            value,
            deadline,
            tag: 0,
        }
    }

    /// The string value, or [`WrongType`] when the key holds a container.
    #[inline]
    pub fn str(&self) -> Result<&SmallBytes, WrongType> {
        self.value.str()
    }

    /// Give the entry a new string value (whatever it held). A different
    /// value resets the fence and the lock mark (they belonged to the old
    /// value); the same value keeps them.
    pub fn replace_value(&mut self, value: &[u8]) {
        match &mut self.value {
            Value::Str(old) if **old == *value => {}
            Value::Str(old) if old.len() == value.len() => {
                old.copy_from_slice(value);
                self.tag = 0;
            }
            other => {
                *other = Value::Str(value.into());
                self.tag = 0;
            }
        }
    }

    /// For a lock key: the fencing token of the grant that holds it. For a
    /// key written with FENCE.*: the highest token ever accepted. 0 = none.
    pub fn fence(&self) -> u64 {
        self.tag & !LOCK_MARK
    }

    /// Set the fence (at most `i64::MAX`; higher bits are dropped), keeping the lock mark.
    pub fn set_fence(&mut self, fence: u64) {
        self.tag = (self.tag & LOCK_MARK) | (fence & !LOCK_MARK);
    }

    /// Whether the value was stored by a lock grant (see [`crate::lockstats`]
    /// for the rule): the key is a held lock until the value changes or the
    /// key goes.
    pub fn is_lock(&self) -> bool {
        self.tag & LOCK_MARK != 0
    }

    /// Mark the value as stored by a lock grant.
    pub fn mark_lock(&mut self) {
        self.tag |= LOCK_MARK;
    }

    /// The value is no longer one a lock grant stored.
    pub fn clear_lock(&mut self) {
        self.tag &= !LOCK_MARK;
    }

    pub fn deadline(&self) -> Deadline {
        self.deadline
    }

    pub fn has_deadline(&self) -> bool {
        self.deadline != NO_DEADLINE
    }

    pub fn is_expired(&self, now_us: u64) -> bool {
        self.deadline != NO_DEADLINE && self.deadline <= now_us
    }
}
