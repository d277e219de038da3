//! The latency monitor (LATENCY LATEST/HISTORY/RESET/GRAPH/DOCTOR), as
//! Redis 7's `latency.c` keeps it: per event, the latest 160 samples (one a
//! second: a later spike in the same second raises that second's sample)
//! and the all-time maximum, in milliseconds, kept only for spikes of at
//! least `latency-monitor-threshold` ms (0, the default, keeps none).
//!
//! Events, named as Redis names them:
//! - `command` / `fast-command`: a command (one with the `fast` flag for the
//!   second) that ran at least the threshold — what a lock client waits;
//! - `aof-write`: one write(2) of the append-only file;
//! - `aof-fsync-always`: its fsync under `appendfsync always`, which every
//!   acknowledged lock grant then waits for.
//!
//! Every command asks [`LatencyMonitor::is_spike`]: one relaxed load and a
//! comparison. Only a spike takes the lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES: usize = 160;

/// One event's time series (Redis's `latencyTimeSeries`).
#[derive(Clone)]
pub struct Series {
    /// Where the next sample goes.
    idx: usize,
    /// The all-time maximum, in ms.
    pub max: u64,
    /// (Unix seconds, ms); time 0 is an unused slot.
    samples: [(i64, u64); SAMPLES],
}

impl Series {
    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        (0..SAMPLES)
            .map(move |j| self.samples[(self.idx + j) % SAMPLES])
            .filter(|s| s.0 != 0)
    }

    /// The latest sample.
    pub fn latest(&self) -> (i64, u64) {
        self.samples[(self.idx + SAMPLES - 1) % SAMPLES]
    }
}

pub struct LatencyMonitor {
    /// Milliseconds; 0 = off.
    pub threshold_ms: AtomicU64,
    events: Mutex<BTreeMap<&'static str, Series>>,
}

impl LatencyMonitor {
    pub fn new(threshold_ms: u64) -> Self {
        LatencyMonitor {
            threshold_ms: AtomicU64::new(threshold_ms),
            events: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether something that took `usec` µs is a spike worth a sample
    /// (Redis compares whole milliseconds).
    #[inline]
    pub fn is_spike(&self, usec: u64) -> bool {
        let threshold = self.threshold_ms.load(Relaxed);
        threshold != 0 && usec / 1000 >= threshold
    }

    /// Record `usec` for `event` if it is a spike.
    pub fn add_if_spike(&self, event: &'static str, usec: u64) {
        if self.is_spike(usec) {
            self.add(event, usec / 1000, crate::store::Clock::wall_ms() / 1000);
        }
    }

    /// Record a spike of `ms` at Unix second `now` (Redis's `latencyAddSample`).
    pub fn add(&self, event: &'static str, ms: u64, now: i64) {
        let mut events = self.events.lock();
        let ts = events.entry(event).or_insert_with(|| Series {
            idx: 0,
            max: 0,
            samples: [(0, 0); SAMPLES],
        });
        ts.max = ts.max.max(ms);
        let prev = (ts.idx + SAMPLES - 1) % SAMPLES;
        if ts.samples[prev].0 == now {
            ts.samples[prev].1 = ts.samples[prev].1.max(ms);
            return;
        }
        ts.samples[ts.idx] = (now, ms);
        ts.idx = (ts.idx + 1) % SAMPLES;
    }

    /// Every event's series, by name.
    pub fn events(&self) -> Vec<(&'static str, Series)> {
        self.events.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    pub fn series(&self, event: &[u8]) -> Option<Series> {
        self.events
            .lock()
            .iter()
            .find(|(k, _)| k.as_bytes() == event)
            .map(|(_, v)| v.clone())
    }

    /// Forget `event` (every event when None); how many were forgotten.
    pub fn reset(&self, event: Option<&[u8]>) -> usize {
        let mut events = self.events.lock();
        match event {
            None => std::mem::take(&mut *events).len(),
            Some(name) => {
                let before = events.len();
                events.retain(|k, _| k.as_bytes() != name);
                before - events.len()
            }
        }
    }

    /// LATENCY DOCTOR's report: Redis 7.0's sentences for a disabled
    /// monitor, for no spike, and for each event's statistics, with its
    /// advice for the events redlockd has (its advice about the machine —
    /// transparent huge pages, swapping, fork — has nothing to observe here).
    pub fn doctor(&self, slowlog_slower_than_us: i64) -> String {
        let threshold = self.threshold_ms.load(Relaxed);
        let events = self.events();
        if events.is_empty() && threshold == 0 {
            return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
        }
        if events.is_empty() {
            return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".into();
        }
        let now = crate::store::Clock::wall_ms() / 1000;
        let mut report = String::from(
            "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
        );
        let (mut slowlog_off, mut slowlog_tuning, mut commands) = (false, false, false);
        let (mut scheduler, mut fsync_always) = (false, false);
        for (n, (event, ts)) in events.iter().enumerate() {
            let samples: Vec<(i64, u64)> = ts.samples().collect();
            let count = samples.len().max(1) as u64;
            let avg = samples.iter().map(|s| s.1).sum::<u64>() / count;
            let mad = samples.iter().map(|s| s.1.abs_diff(avg)).sum::<u64>() / count;
            let oldest = samples.iter().map(|s| s.0).min().unwrap_or(now);
            let period = (now - oldest).max(1) as f64;
            report.push_str(&format!(
                "{}. {event}: {} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.\n",
                n + 1,
                samples.len(),
                period / count as f64,
                ts.max
            ));
            scheduler |= *event == "fast-command";
            fsync_always |= *event == "aof-fsync-always";
            if *event == "command" {
                commands = true;
                if slowlog_slower_than_us < 0 {
                    slowlog_off = true;
                } else if slowlog_slower_than_us / 1000 > threshold as i64 {
                    slowlog_tuning = true;
                }
            }
        }
        if !(commands || scheduler || fsync_always) {
            report.push_str("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n");
            return report;
        }
        report.push_str("\nI have a few advices for you:\n\n");
        if slowlog_off {
            report.push_str(&format!("- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n", threshold * 1000));
        }
        if slowlog_tuning {
            report.push_str(&format!("- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.\n", threshold * 1000));
        }
        if commands {
            report.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
        }
        if scheduler {
            report.push_str("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n");
        }
        if fsync_always {
            report.push_str("- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if possible try to relax the fsync policy to 'onesec'.\n");
        }
        if commands {
            report.push_str("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n");
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_a_second_the_highest_and_the_all_time_max() {
        let m = LatencyMonitor::new(10);
        assert!(!m.is_spike(9_999) && m.is_spike(10_000));
        m.add("command", 20, 100);
        m.add("command", 50, 100);
        m.add("command", 30, 100);
        m.add("command", 15, 101);
        let ts = m.series(b"command").unwrap();
        assert_eq!(ts.samples().collect::<Vec<_>>(), vec![(100, 50), (101, 15)]);
        assert_eq!((ts.latest(), ts.max), ((101, 15), 50));
        assert!(m.series(b"COMMAND").is_none());
    }

    #[test]
    fn the_ring_keeps_the_latest_samples() {
        let m = LatencyMonitor::new(1);
        for t in 1..=(SAMPLES as i64 + 5) {
            m.add("aof-write", t as u64, t);
        }
        let ts = m.series(b"aof-write").unwrap();
        let samples: Vec<_> = ts.samples().collect();
        assert_eq!(samples.len(), SAMPLES);
        assert_eq!(samples[0], (6, 6));
        assert_eq!(ts.latest(), (SAMPLES as i64 + 5, SAMPLES as u64 + 5));
    }

    #[test]
    fn reset_forgets_named_events_or_all() {
        let m = LatencyMonitor::new(1);
        m.add("command", 5, 1);
        m.add("aof-write", 5, 1);
        assert_eq!(m.reset(Some(b"nope")), 0);
        assert_eq!(m.reset(Some(b"command")), 1);
        assert_eq!(m.reset(None), 1);
        assert!(m.events().is_empty());
    }
}
