//! The active expirer: reclaims the memory of expired keys promptly.
//!
//! Correctness never depends on it (every access checks deadlines); it only
//! makes memory go back. It runs on its own OS thread so that a burst of a
//! million deadlines never stalls a tokio worker, visits every shard every
//! tick, and bounds the work done under one shard lock so clients waiting on
//! that shard are delayed by microseconds, not milliseconds. When a shard's
//! budget runs out it goes round again at once instead of sleeping.
//!
//! Between passes it sleeps one tick, or less when something must happen
//! sooner: the `due` callback (the coordination layer's) does its own
//! timed work and names the next instant it needs a pass at (a lock with
//! waiters expiring, a lock-delay ending), and a thread that learns of a
//! sooner one unparks the expirer ([`Expirer::thread`]). A lock with
//! waiters is thus handed over within a millisecond of its deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use super::Keyspace;

/// Expired keys removed under one shard lock before it is released.
const BUDGET_PER_SHARD: usize = 2_000;
const TICK: Duration = Duration::from_millis(10);
/// After reclaiming this many keys, hand free heap pages back to the OS.
const TRIM_AFTER: usize = 50_000;

/// glibc keeps freed memory in its heaps; after a mass expiry, give the
/// free pages back so RSS follows the keyspace down.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and releases the allocator's free pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Called after each pass with the store clock's time; returns when the
/// next pass is needed at the latest (store µs; u64::MAX: one tick is fine).
pub type Due = Box<dyn FnMut(u64) -> u64 + Send>;

pub struct Expirer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Expirer {
    pub fn start(keyspace: Arc<Keyspace>, mut due: Due) -> Expirer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("redlockd-expirer".into())
            .spawn(move || {
                let mut since_trim = 0usize;
                while !flag.load(Ordering::Relaxed) {
                    let mut more = false;
                    for db in &keyspace.dbs {
                        let now = keyspace.clock.now_us();
                        for shard in 0..db.shard_count() {
                            let (removed, exhausted) = db.reclaim_shard(shard, now, BUDGET_PER_SHARD);
                            since_trim += removed;
                            more |= exhausted;
                        }
                    }
                    let now = keyspace.clock.now_us();
                    let next = due(now);
                    if !more {
                        if since_trim >= TRIM_AFTER {
                            release_free_memory();
                            since_trim = 0;
                        }
                        // Just past the deadline: a pass at it exactly would find it not yet due.
                        let sleep = Duration::from_micros(next.saturating_sub(now).saturating_add(50));
                        std::thread::park_timeout(sleep.min(TICK));
                    }
                }
            })
            .expect("spawn expirer thread");
        Expirer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Expirer {
    /// The expirer's thread, to unpark when a pass is needed sooner than
    /// it planned.
    pub fn thread(&self) -> Option<Thread> {
        self.thread.as_ref().map(|t| t.thread().clone())
    }
}

impl Drop for Expirer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
