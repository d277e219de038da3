//! One stored value and its deadline.

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};

/// A string value with an optional deadline. Values are the only type
/// redlockd stores (locks, counters, fences); other Redis types get WRONGTYPE
/// never, because no command can create them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: SmallBytes,
    pub(super) deadline: Deadline,
    /// For a lock key: the fencing token of the grant that holds it. For a
    /// key written with FENCE.*: the highest token ever accepted. 0 = none.
    /// It belongs to the value: overwriting the value with another resets it.
    pub fence: u64,
}

impl Entry {
    pub fn new(value: &[u8], deadline: Deadline) -> Self {
        Entry {
            value: value.into(),
            deadline,
            fence: 0,
        }
    }

    /// Give the entry a new value. A different value resets the fence (it
    /// belonged to the old value); the same value keeps it.
    pub fn replace_value(&mut self, value: &[u8]) {
        if *self.value != *value {
            if self.value.len() == value.len() {
                self.value.copy_from_slice(value);
            } else {
                self.value = value.into();
            }
            self.fence = 0;
        }
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
