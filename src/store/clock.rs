//! Time for the store: a monotonic clock for deadlines, wall time only at the edges.
//!
//! A [`Deadline`] is a `u64` in one of two forms:
//!
//! - **Near** (`1 ..< 2^62`): microseconds on a monotonic clock that starts
//!   at 1 when the process starts, so TTLs count down correctly even if the
//!   wall clock jumps. 2^62 µs is about 146,000 years after start.
//! - **Far** (top bit set): the absolute Unix time in milliseconds in the
//!   low 63 bits. Redis accepts deadlines up to `i64::MAX` ms after the
//!   epoch (`SET k v PXAT 9223372036854775807`, `PX 9e18`), which no µs
//!   count fits; a deadline beyond the near range is kept in Redis's own
//!   unit instead, so PEXPIRETIME and the AOF give it back exactly.
//!
//! 0 ([`NO_DEADLINE`]) means persistent. A far deadline compares greater
//! than every near deadline and every monotonic "now", so the store's
//! `deadline <= now` checks and the order of deadlines stay plain integer
//! comparisons: a far deadline never comes in the life of the process
//! (which is also why the expiry wheel does not keep one). Between two far
//! deadlines the order is their Unix time.
//!
//! Absolute times that clients send (EXAT, PXAT, EXPIREAT) or ask for
//! (EXPIRETIME) and relative TTLs in ms are converted here and nowhere else.
//!
//! In a replicated group (`crate::group`) a command runs with the time its
//! log entry was stamped with, not this node's clocks: [`pin`] sets both
//! readings for the current thread while the entry applies, so every node
//! computes the same deadlines from the same entry.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// In a replicated group, the time of the last applied entry: the store's
/// "now" outside an apply (0 = not in a group), so that nothing on a node
/// expires keys by the node's own clock.
static GROUP_NOW: AtomicU64 = AtomicU64::new(0);

/// Make unpinned [`Clock::now_us`] readings follow the group's applied time.
pub fn follow_group_time(now_us: u64) {
    GROUP_NOW.store(now_us.max(1), Ordering::Release);
}

thread_local! {
    /// (store µs, wall µs) pinned by [`pin`]; store µs 0 = not pinned.
    static PINNED: Cell<(u64, i64)> = const { Cell::new((0, 0)) };
}

/// While the returned guard lives, this thread's [`Clock::now_us`] reads
/// `now_us` (never 0) and [`Clock::wall_us`] reads `wall_us`.
pub fn pin(now_us: u64, wall_us: i64) -> Pinned {
    PINNED.with(|p| p.set((now_us.max(1), wall_us)));
    Pinned(())
}

/// Unpins the thread's clock when dropped (see [`pin`]).
pub struct Pinned(());

impl Drop for Pinned {
    fn drop(&mut self) {
        PINNED.with(|p| p.set((0, 0)));
    }
}

/// A deadline, near or far (see the module doc); [`NO_DEADLINE`] means persistent.
pub type Deadline = u64;
pub const NO_DEADLINE: Deadline = 0;

/// Near deadlines (monotonic µs) are below this.
const NEAR_LIMIT: u64 = 1 << 62;
/// Marks a far deadline: Unix ms in the low 63 bits.
const FAR: u64 = 1 << 63;

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
        let pinned = PINNED.with(|p| p.get().0);
        if pinned != 0 {
            return pinned;
        }
        let group = GROUP_NOW.load(Ordering::Relaxed);
        if group != 0 {
            return group;
        }
        monotonic_us() - self.epoch_us + 1
    }

    /// Wall-clock milliseconds since the Unix epoch.
    pub fn wall_ms() -> i64 {
        Self::wall_us().div_euclid(1000)
    }

    /// Wall-clock microseconds since the Unix epoch.
    pub fn wall_us() -> i64 {
        let (pinned, wall) = PINNED.with(|p| p.get());
        if pinned != 0 {
            return wall;
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }

    /// The deadline at an absolute Unix time in ms. A time in the past gives
    /// a deadline at or before `now_us` (the key is already expired).
    pub fn deadline_from_unix_ms(unix_ms: i64, now_us: u64) -> Deadline {
        // i128: a Unix time in µs near i64::MAX ms does not fit an i64.
        let delta_us = unix_ms as i128 * 1000 - Self::wall_us() as i128;
        if delta_us <= 0 {
            return past(now_us, delta_us.unsigned_abs());
        }
        match u64::try_from(now_us as i128 + delta_us) {
            Ok(d) if d < NEAR_LIMIT => d,
            _ => far(unix_ms),
        }
    }

    /// The deadline `ms` milliseconds after `now_us`; `ms <= 0` gives a
    /// deadline already passed. The wall clock is read only for a far one.
    #[inline]
    pub fn deadline_in_ms(ms: i64, now_us: u64) -> Deadline {
        if ms <= 0 {
            return past(now_us, ms.unsigned_abs().saturating_mul(1000) as u128);
        }
        match (ms as u64).checked_mul(1000).and_then(|us| now_us.checked_add(us)) {
            Some(d) if d < NEAR_LIMIT => d,
            _ => far(Self::wall_ms().saturating_add(ms)),
        }
    }

    /// The Unix time in ms at which a deadline falls (a near one rounded to
    /// the nearest ms, so a PXAT comes back exactly).
    pub fn unix_ms_of(deadline: Deadline, now_us: u64) -> i64 {
        if deadline & FAR != 0 {
            return (deadline & !FAR) as i64;
        }
        // Both are near (< 2^62), so the difference fits an i64.
        let unix_us = Self::wall_us() + (deadline as i64 - now_us as i64);
        (unix_us + 500).div_euclid(1000)
    }
}

/// Whether a deadline is far: one that never comes while the process runs,
/// so the expiry wheel need not keep it.
pub fn is_far(deadline: Deadline) -> bool {
    deadline & FAR != 0
}

/// A far deadline at `unix_ms` (clamped to what the form holds).
fn far(unix_ms: i64) -> Deadline {
    FAR | unix_ms.max(0) as u64
}

/// A deadline `ago_us` before `now_us`, kept a real (non-zero) deadline.
fn past(now_us: u64, ago_us: u128) -> Deadline {
    now_us
        .saturating_sub(u64::try_from(ago_us).unwrap_or(u64::MAX))
        .max(1)
        .min(now_us)
}

/// Remaining time of a deadline in ms (never negative), as PTTL counts it.
/// A near one is rounded up, so that a key set with `PX 100` reports 100
/// immediately afterwards, as Redis does.
pub fn remaining_ms(deadline: Deadline, now_us: u64) -> i64 {
    if is_far(deadline) {
        return ((deadline & !FAR) as i64 - Clock::wall_ms()).max(0);
    }
    (deadline.saturating_sub(now_us) as i64 + 999) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_deadlines_count_in_microseconds() {
        let now = 5_000_000;
        assert_eq!(Clock::deadline_in_ms(100, now), now + 100_000);
        assert_eq!(remaining_ms(Clock::deadline_in_ms(100, now), now), 100);
        assert_eq!(remaining_ms(now + 1, now), 1);
        assert_eq!(remaining_ms(now - 1, now), 0);
    }

    #[test]
    fn past_times_give_a_real_deadline_already_passed() {
        let now = 5_000_000;
        for d in [
            Clock::deadline_in_ms(0, now),
            Clock::deadline_in_ms(-1, now),
            Clock::deadline_in_ms(i64::MIN, now),
            Clock::deadline_from_unix_ms(1, now),
            Clock::deadline_from_unix_ms(i64::MIN, now),
        ] {
            assert!(d != NO_DEADLINE && d <= now, "{d}");
        }
        assert_eq!(Clock::deadline_in_ms(-1, now), now - 1000);
    }

    #[test]
    fn far_deadlines_keep_their_unix_time_exactly() {
        let now = 5_000_000;
        for unix_ms in [
            i64::MAX,
            i64::MAX - 1,
            9_000_000_000_000_000_000,
            10_000_000_000_000_000,
        ] {
            let d = Clock::deadline_from_unix_ms(unix_ms, now);
            assert!(d > now && d >= NEAR_LIMIT);
            assert_eq!(Clock::unix_ms_of(d, now), unix_ms);
            let left = remaining_ms(d, now);
            let later = unix_ms - Clock::wall_ms();
            assert!((later..=later + 1000).contains(&left), "{left} vs {later}");
        }
        // Their order is their Unix time's, above every near deadline.
        let a = Clock::deadline_from_unix_ms(i64::MAX - 1, now);
        let b = Clock::deadline_from_unix_ms(i64::MAX, now);
        assert!(a < b && a > NEAR_LIMIT - 1);
    }

    #[test]
    fn relative_ttls_beyond_the_near_range_become_far() {
        let now = 5_000_000;
        let wall = Clock::wall_ms();
        let d = Clock::deadline_in_ms(9_000_000_000_000_000_000, now);
        let at = Clock::unix_ms_of(d, now);
        assert!((wall + 9_000_000_000_000_000_000..wall + 9_000_000_000_000_001_000).contains(&at));
        let left = remaining_ms(d, now);
        assert!((9_000_000_000_000_000_000 - 1000..=9_000_000_000_000_000_000).contains(&left));
        // Saturates rather than wrapping past i64::MAX.
        assert_eq!(Clock::unix_ms_of(Clock::deadline_in_ms(i64::MAX, now), now), i64::MAX);
    }

    #[test]
    fn absolute_times_round_trip_near_deadlines() {
        let now = 5_000_000;
        let at = Clock::wall_ms() + 3_600_000;
        let d = Clock::deadline_from_unix_ms(at, now);
        assert!(d < NEAR_LIMIT);
        assert_eq!(Clock::unix_ms_of(d, now), at);
    }
}
