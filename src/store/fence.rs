//! The instance's fencing counter: one number that grows with every lock grant.
//!
//! Fences must be strictly increasing across every grant this instance ever
//! makes, for all keys, including after a restart. With no persistence the
//! counter is seeded from the wall clock in microseconds: a restarted
//! process starts above every fence the previous one could have handed out,
//! **assuming** the previous process granted fewer than one fence per
//! microsecond on average and the wall clock did not step backwards across
//! the restart. `raise_to` lets a Redlock client push the counter up to a
//! fence agreed by a quorum.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct FenceCounter {
    last: AtomicU64,
}

impl Default for FenceCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl FenceCounter {
    pub fn new() -> Self {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        FenceCounter {
            last: AtomicU64::new(now_us),
        }
    }

    /// A fence greater than every fence handed out before.
    pub fn next(&self) -> u64 {
        self.last.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Make every later fence greater than `floor`.
    pub fn raise_to(&self, floor: u64) {
        self.last.fetch_max(floor, Ordering::SeqCst);
    }

    /// Set the counter outright: in a replicated group it is part of the
    /// replicated state, so it starts from 0 or from a snapshot.
    pub fn set(&self, value: u64) {
        self.last.store(value, Ordering::SeqCst);
    }

    pub fn current(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }
}
