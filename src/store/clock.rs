//! Time for the store: a monotonic clock for deadlines, wall time only at the edges.
//!
//! Deadlines are microseconds on a monotonic clock that starts at 1 when the
//! process starts (0 means "no deadline"), so TTLs count down correctly even
//! if the wall clock jumps. Absolute times that clients send (EXAT, PXAT,
//! EXPIREAT) or ask for (EXPIRETIME) are converted once, at the boundary.

use std::time::{SystemTime, UNIX_EPOCH};

/// A deadline in monotonic microseconds; [`NO_DEADLINE`] means persistent.
pub type Deadline = u64;
pub const NO_DEADLINE: Deadline = 0;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// [`monotonic_us`] when the clock was created.
    epoch_us: u64,
}

/// CLOCK_MONOTONIC in microseconds. Every command reads it once, so it
/// stays in u64 arithmetic (`Instant::elapsed().as_micros()` goes through
/// u128 and costs several times as much).
#[inline]
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes only the timespec we pass; CLOCK_MONOTONIC
    // always exists on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            epoch_us: monotonic_us(),
        }
    }

    /// Monotonic microseconds since start, never 0.
    #[inline]
    pub fn now_us(&self) -> u64 {
        monotonic_us() - self.epoch_us + 1
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn wall_ms() -> i64 {
        Self::wall_us() / 1000
    }

    /// Wall-clock microseconds since the Unix epoch.
    pub fn wall_us() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }

    /// Convert an absolute Unix time in ms into a monotonic deadline. Times in
    /// the past give a deadline at or before `now` (the key is already expired).
    pub fn deadline_from_unix_ms(unix_ms: i64, now_us: u64) -> Deadline {
        let delta_us = unix_ms.saturating_mul(1000).saturating_sub(Self::wall_us());
        offset_deadline(now_us, delta_us)
    }

    /// The Unix time in ms at which a monotonic deadline falls (rounded to
    /// the nearest ms, so a PXAT comes back exactly).
    pub fn unix_ms_of(deadline: Deadline, now_us: u64) -> i64 {
        let unix_us = Self::wall_us() + (deadline as i64 - now_us as i64);
        (unix_us + 500).div_euclid(1000)
    }
}

/// `now + delta_us`, clamped so that a past time still yields a real
/// (non-zero) deadline and a huge one does not overflow.
pub fn offset_deadline(now_us: u64, delta_us: i64) -> Deadline {
    if delta_us <= 0 {
        now_us.saturating_sub(delta_us.unsigned_abs()).max(1).min(now_us)
    } else {
        now_us.saturating_add(delta_us as u64)
    }
}

/// Remaining time of a deadline in ms, rounded up so that a key set with
/// `PX 100` reports 100 immediately afterwards, as Redis does.
pub fn remaining_ms(deadline: Deadline, now_us: u64) -> i64 {
    (deadline.saturating_sub(now_us) as i64 + 999) / 1000
}
