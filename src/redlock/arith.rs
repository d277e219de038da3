//! The Redlock arithmetic, kept free of I/O and clocks so it can be tested
//! exactly: majority, clock drift allowance, remaining validity, and the
//! default per-instance timeout.

use std::time::Duration;

/// How many of `n` instances make a majority.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// The clock-drift allowance for a lock of `ttl`: `ttl * factor + constant`
/// (antirez's Redlock: factor 0.01, constant 2 ms).
pub fn drift(ttl: Duration, factor: f64, constant: Duration) -> Duration {
    ttl.mul_f64(factor) + constant
}

/// How long a lock acquired in `elapsed` is still safely ours:
/// `ttl - elapsed - drift`, or None when nothing is left.
pub fn validity(ttl: Duration, elapsed: Duration, drift: Duration) -> Option<Duration> {
    ttl.checked_sub(elapsed)?.checked_sub(drift).filter(|v| !v.is_zero())
}

/// The default time allowed to each instance: small against the TTL, so one
/// slow instance cannot eat the validity: min(50 ms, ttl / 100), at least 1 ms.
pub fn default_instance_timeout(ttl: Duration) -> Duration {
    (ttl / 100).clamp(Duration::from_millis(1), Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn majorities() {
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
        assert_eq!(quorum(7), 4);
    }

    #[test]
    fn drift_and_validity() {
        assert_eq!(drift(MS(10_000), 0.01, MS(2)), MS(102));
        assert_eq!(drift(MS(0), 0.01, MS(2)), MS(2));
        assert_eq!(validity(MS(10_000), MS(50), MS(102)), Some(MS(9_848)));
        assert_eq!(validity(MS(100), MS(98), MS(3)), None);
        assert_eq!(validity(MS(100), MS(97), MS(3)), None, "exactly zero left is not valid");
        assert_eq!(validity(MS(100), MS(200), MS(3)), None);
    }

    #[test]
    fn instance_timeouts() {
        assert_eq!(default_instance_timeout(MS(30_000)), MS(50));
        assert_eq!(default_instance_timeout(MS(1_000)), MS(10));
        assert_eq!(default_instance_timeout(MS(10)), MS(1));
    }
}
