//! One stored value, its deadline, and what belongs to the value: its
//! fence and whether a lock grant stored it (the lock mark).

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};

/// A string value with an optional deadline. Values are the only type
/// redlockd stores (locks, counters, fences); other Redis types get WRONGTYPE
/// never, because no command can create them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: SmallBytes,
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
        Entry {
            value: value.into(),
            deadline,
            tag: 0,
        }
    }

    /// Give the entry a new value. A different value resets the fence and
    /// the lock mark (they belonged to the old value); the same value keeps them.
    pub fn replace_value(&mut self, value: &[u8]) {
        if *self.value != *value {
            if self.value.len() == value.len() {
                self.value.copy_from_slice(value);
            } else {
                self.value = value.into();
            }
            self.tag = 0;
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
