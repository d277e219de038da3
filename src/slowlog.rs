//! The slow log (SLOWLOG): the most recent commands that ran for at least
//! `slowlog-log-slower-than` microseconds, newest first, at most
//! `slowlog-max-len` of them, each with its arguments trimmed as Redis trims
//! them (32 arguments, 128 bytes each).
//!
//! Every command asks [`SlowLog::is_slow`] with its duration: one relaxed
//! load and a comparison. Only a slow command takes the lock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Arguments kept per entry; the last one kept says how many more there were.
const MAX_ARGS: usize = 32;
/// Bytes kept per argument; the rest is summarised.
const MAX_ARG_BYTES: usize = 128;

pub struct SlowLog {
    /// Microseconds; negative disables the log, 0 logs every command.
    pub slower_than: AtomicI64,
    pub max_len: AtomicU64,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

#[derive(Clone)]
pub struct Entry {
    pub id: u64,
    /// Unix time in seconds when the command ran.
    pub time: i64,
    pub duration_us: u64,
    pub args: Vec<Vec<u8>>,
    /// The client's address (`ip:port`) and name.
    pub addr: String,
    pub name: String,
}

impl SlowLog {
    pub fn new(slower_than: i64, max_len: u64) -> Self {
        SlowLog {
            slower_than: AtomicI64::new(slower_than),
            max_len: AtomicU64::new(max_len),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether a command that ran `usec` microseconds belongs in the log.
    #[inline]
    pub fn is_slow(&self, usec: u64) -> bool {
        let threshold = self.slower_than.load(Ordering::Relaxed);
        threshold >= 0 && usec >= threshold as u64
    }

    /// Log a command (that [`is_slow`](Self::is_slow)).
    pub fn push(&self, usec: u64, args: &[&[u8]], addr: String, name: String) {
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: crate::store::clock::Clock::wall_ms() / 1000,
            duration_us: usec,
            args: trim(args),
            addr,
            name,
        };
        let max = self.max_len.load(Ordering::Relaxed) as usize;
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max);
    }

    /// The newest `count` entries (all of them with None).
    pub fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let entries = self.entries.lock();
        entries.iter().take(count.unwrap_or(usize::MAX)).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }
}

/// The arguments as Redis's `slowlogCreateEntry` keeps them.
fn trim(args: &[&[u8]]) -> Vec<Vec<u8>> {
    let kept = args.len().min(MAX_ARGS);
    (0..kept)
        .map(|j| {
            if kept != args.len() && j == kept - 1 {
                format!("... ({} more arguments)", args.len() - kept + 1).into_bytes()
            } else if args[j].len() > MAX_ARG_BYTES {
                let mut a = args[j][..MAX_ARG_BYTES].to_vec();
                a.extend_from_slice(format!("... ({} more bytes)", args[j].len() - MAX_ARG_BYTES).as_bytes());
                a
            } else {
                args[j].to_vec()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_arguments_as_redis_does() {
        let long = vec![b'x'; 130];
        let many: Vec<&[u8]> = (0..40).map(|_| &b"a"[..]).collect();
        let t = trim(&many);
        assert_eq!(t.len(), 32);
        assert_eq!(t[31], b"... (9 more arguments)");
        let t = trim(&[b"set", &long]);
        assert_eq!(&t[1][..128], &long[..128]);
        assert_eq!(&t[1][128..], b"... (2 more bytes)");
    }

    #[test]
    fn keeps_the_newest_up_to_max_len() {
        let log = SlowLog::new(0, 2);
        for i in 0..3u8 {
            log.push(5, &[&[b'a' + i]], "a:1".into(), String::new());
        }
        let e = log.newest(None);
        assert_eq!(e.iter().map(|e| e.id).collect::<Vec<_>>(), [2, 1]);
        assert!(!log.is_slow(5) || log.slower_than.load(Ordering::Relaxed) == 0);
        log.slower_than.store(-1, Ordering::Relaxed);
        assert!(!log.is_slow(u64::MAX));
        log.reset();
        assert!(log.is_empty());
    }
}
