//! Deadlines waiting to be reclaimed, per shard: what the background
//! expirer consults to find keys whose time has come without scanning.
//!
//! An entry is `(deadline, key hash)`, 16 bytes, no key copy. An entry whose
//! key was since rewritten, persisted or deleted is stale; it costs nothing
//! but its 16 bytes, because removal re-checks that the key in the table
//! really is expired.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::clock::Deadline;

/// Deadlines waiting to be reclaimed in one shard: a timing wheel of
/// [`WHEEL_SLOTS`] slots of 2^[`SLOT_BITS`] µs (~65 ms, ~67 s in all), with
/// a heap for deadlines beyond the wheel. A push is O(1), so a lock grant
/// stays cheap even when millions of stale entries wait.
///
/// A wheel belongs to its shard and is guarded by the shard's lock, like
/// the keys whose deadlines it holds. What the expirer needs to read
/// without that lock, the earliest pending deadline, the shard keeps in an
/// atomic beside the lock, from [`Wheel::earliest`].
#[derive(Default)]
pub(super) struct Wheel {
    /// Allocated on first use: most shards of most databases never see a TTL.
    slots: Vec<Vec<(Deadline, u64)>>,
    /// Absolute slot number (deadline >> SLOT_BITS) of the first slot not yet
    /// fully processed.
    cursor: u64,
    overflow: BinaryHeap<Reverse<(Deadline, u64)>>,
    /// Entries in the slots (not counting the overflow heap).
    len: usize,
}

const SLOT_BITS: u32 = 16;
const WHEEL_SLOTS: u64 = 1024;

impl Wheel {
    fn slot_mut(&mut self, slot: u64) -> &mut Vec<(Deadline, u64)> {
        if self.slots.is_empty() {
            self.slots = (0..WHEEL_SLOTS).map(|_| Vec::new()).collect();
        }
        &mut self.slots[(slot % WHEEL_SLOTS) as usize]
    }

    pub(super) fn push(&mut self, deadline: Deadline, hash: u64, now: u64) {
        if self.len == 0 && self.overflow.is_empty() {
            self.cursor = now >> SLOT_BITS;
        }
        let slot = (deadline >> SLOT_BITS).max(self.cursor);
        if slot >= self.cursor + WHEEL_SLOTS {
            self.overflow.push(Reverse((deadline, hash)));
        } else {
            self.slot_mut(slot).push((deadline, hash));
            self.len += 1;
        }
    }

    /// A lower bound of the earliest pending deadline (u64::MAX if none).
    pub(super) fn earliest(&self) -> u64 {
        if self.len > 0 {
            for i in 0..WHEEL_SLOTS {
                let slot = &self.slots[((self.cursor + i) % WHEEL_SLOTS) as usize];
                if let Some(min) = slot.iter().map(|e| e.0).min() {
                    return min;
                }
            }
        }
        self.overflow.peek().map_or(u64::MAX, |r| r.0.0)
    }

    /// Take at most `budget` deadlines that have passed, calling `remove`
    /// with each one's key hash; how many were taken.
    pub(super) fn pop_due(&mut self, now: u64, budget: usize, mut remove: impl FnMut(u64)) -> usize {
        let mut taken = 0;
        // Deadlines that came within the wheel's reach move into it.
        while let Some(Reverse((deadline, hash))) = self.overflow.peek().copied() {
            if (deadline >> SLOT_BITS) >= self.cursor + WHEEL_SLOTS {
                break;
            }
            self.overflow.pop();
            self.push(deadline, hash, now);
        }
        let now_slot = now >> SLOT_BITS;
        loop {
            if self.len == 0 {
                // Nothing in the wheel: no need to walk the empty slots.
                self.cursor = self.cursor.max(now_slot);
                break;
            }
            if self.cursor > now_slot || taken >= budget {
                break;
            }
            let cursor = self.cursor;
            let slot = self.slot_mut(cursor);
            let mut i = 0;
            let before = slot.len();
            while i < slot.len() && taken < budget {
                if slot[i].0 <= now {
                    remove(slot.swap_remove(i).1);
                    taken += 1;
                } else {
                    i += 1;
                }
            }
            let drained = before - slot.len();
            if slot.capacity() > 1024 && slot.len() * 4 < slot.capacity() {
                slot.shrink_to(slot.len() * 2);
            }
            let done = slot.is_empty() && cursor < now_slot;
            self.len -= drained;
            if done {
                self.cursor += 1;
            } else {
                break;
            }
        }
        taken
    }

    /// Entries waiting, in the wheel and beyond it.
    #[cfg(test)]
    pub(super) fn pending(&self) -> usize {
        self.len + self.overflow.len()
    }
}
