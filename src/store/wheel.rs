//! Deadlines waiting to be reclaimed, per shard: what the background
//! expirer consults to find keys whose time has come without scanning.
//!
//! An entry is `(deadline, key hash)`, 16 bytes, no key copy. An entry whose
//! key was since rewritten, persisted or deleted is stale; it costs nothing
//! but its 16 bytes, because removal re-checks that the key in the table
//! really is expired.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::clock::Deadline;

/// Deadlines waiting to be reclaimed in one shard: a timing wheel of
/// [`WHEEL_SLOTS`] slots of 2^[`SLOT_BITS`] µs (~65 ms, ~67 s in all), with
/// a heap for deadlines beyond the wheel. A push is O(1) (a lock grant must
/// stay cheap even when millions of stale entries wait), and the earliest
/// pending deadline is readable without a lock, so the expirer passes over
/// shards with nothing due without touching their locks.
pub struct ShardExpiry {
    wheel: Mutex<Wheel>,
    earliest: AtomicU64,
}

const SLOT_BITS: u32 = 16;
const WHEEL_SLOTS: u64 = 1024;

#[derive(Default)]
struct Wheel {
    /// Allocated on first use: most shards of most databases never see a TTL.
    slots: Vec<Vec<(Deadline, u64)>>,
    /// Absolute slot number (deadline >> SLOT_BITS) of the first slot not yet
    /// fully processed.
    cursor: u64,
    overflow: BinaryHeap<Reverse<(Deadline, u64)>>,
    /// Entries in the slots (not counting the overflow heap).
    len: usize,
}

impl Wheel {
    fn slot_mut(&mut self, slot: u64) -> &mut Vec<(Deadline, u64)> {
        if self.slots.is_empty() {
            self.slots = (0..WHEEL_SLOTS).map(|_| Vec::new()).collect();
        }
        &mut self.slots[(slot % WHEEL_SLOTS) as usize]
    }

    fn push(&mut self, deadline: Deadline, hash: u64, now: u64) {
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
    fn earliest(&self) -> u64 {
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
}

impl ShardExpiry {
    pub fn new() -> Self {
        ShardExpiry {
            wheel: Mutex::new(Wheel::default()),
            earliest: AtomicU64::new(u64::MAX),
        }
    }

    pub fn push(&self, deadline: Deadline, hash: u64, now: u64) {
        if super::clock::is_far(deadline) {
            return; // never due while the process runs: nothing to reclaim
        }
        self.wheel.lock().push(deadline, hash, now);
        self.earliest.fetch_min(deadline, Ordering::Relaxed);
    }

    pub fn due(&self, now: u64) -> bool {
        self.earliest.load(Ordering::Relaxed) <= now
    }

    /// Take at most `budget` deadlines that have passed, calling `remove`
    /// with each one's key hash; how many were taken.
    pub fn pop_due(&self, now: u64, budget: usize, mut remove: impl FnMut(u64)) -> usize {
        let mut w = self.wheel.lock();
        let mut taken = 0;
        // Deadlines that came within the wheel's reach move into it.
        while let Some(Reverse((deadline, hash))) = w.overflow.peek().copied() {
            if (deadline >> SLOT_BITS) >= w.cursor + WHEEL_SLOTS {
                break;
            }
            w.overflow.pop();
            w.push(deadline, hash, now);
        }
        let now_slot = now >> SLOT_BITS;
        loop {
            if w.len == 0 {
                // Nothing in the wheel: no need to walk the empty slots.
                w.cursor = w.cursor.max(now_slot);
                break;
            }
            if w.cursor > now_slot || taken >= budget {
                break;
            }
            let cursor = w.cursor;
            let slot = w.slot_mut(cursor);
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
            w.len -= drained;
            if done {
                w.cursor += 1;
            } else {
                break;
            }
        }
        self.earliest.store(w.earliest(), Ordering::Relaxed);
        taken
    }

    /// Entries waiting, in the wheel and beyond it.
    #[cfg(test)]
    pub fn pending(&self) -> usize {
        let w = self.wheel.lock();
        w.len + w.overflow.len()
    }

    pub fn clear(&self) {
        *self.wheel.lock() = Wheel::default();
        self.earliest.store(u64::MAX, Ordering::Relaxed);
    }
}
