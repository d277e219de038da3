//! One stored value and its deadline.

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};
use super::types::{Value, WrongType};

/// A value (a string or a container) with an optional deadline.
#[derive(Clone)]
pub struct Entry {
    pub value: Value,
    pub(super) deadline: Deadline,
    /// For a lock key: the fencing token of the grant that holds it. For a
    /// key written with FENCE.*: the highest token ever accepted. 0 = none.
    /// It belongs to the value: overwriting the value with another resets it.
    pub fence: u64,
}

impl Entry {
    pub fn new(value: &[u8], deadline: Deadline) -> Self {
        Entry::with_value(Value::Str(value.into()), deadline)
    }

    pub fn with_value(value: Value, deadline: Deadline) -> Self {
        Entry {
            value,
            deadline,
            fence: 0,
        }
    }

    /// The string value, or [`WrongType`] when the key holds a container.
    #[inline]
    pub fn str(&self) -> Result<&SmallBytes, WrongType> {
        self.value.str()
    }

    /// Give the entry a new string value (whatever it held). A different
    /// value resets the fence (it belonged to the old value); the same
    /// value keeps it.
    pub fn replace_value(&mut self, value: &[u8]) {
        match &mut self.value {
            Value::Str(old) if **old == *value => {}
            Value::Str(old) if old.len() == value.len() => {
                old.copy_from_slice(value);
                self.fence = 0;
            }
            other => {
                *other = Value::Str(value.into());
                self.fence = 0;
            }
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
