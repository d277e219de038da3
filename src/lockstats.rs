//! What happened to locks: the counters behind `/metrics`, the hold-time
//! histogram, the ring of recent lock events behind the status page, and
//! the log line of a lock that expired while held.
//!
//! # What a lock is
//! A key is a held lock while its value is one a lock grant stored: the
//! store marks that value ([`crate::store::Entry::is_lock`]; the mark
//! belongs to the value like its fence, costs no memory, and survives a
//! restart through the append-only file). The grants
//! ([`crate::commands::locks::granted`]) are LOCK.ACQUIRE (a holder's
//! re-acquire included), SET NX with EX/PX/EXAT/PXAT that wrote, and the
//! catalogued acquire scripts (EVAL/EVALSHA: acquire-or-renew, npm redlock's
//! multi-acquire, bsm/redislock's obtain) when they grant or renew. The key
//! stops being a lock when:
//! - it is **released**: deleted by LOCK.RELEASE, DELIFEQ, DELEX IFEQ/IFDEQ
//!   or a catalogued release script — the hold-time histogram and the
//!   "released" event take it;
//! - it **expires while held**: its deadline passes first —
//!   `redlockd_lock_expired_while_held_total`, an "expired" event and a
//!   warning in the log;
//! - it is **otherwise gone**: DEL/UNLINK/GETDEL, FLUSHDB, RENAME (the new
//!   key is not a lock, as its fence is dropped), or a write that changes
//!   the value (SET without NX, INCR, FENCE.SET of another value...). This
//!   is neither a release nor an expiry.
//!
//! Changing only the deadline (LOCK.EXTEND, PEXPIRE, the extend scripts,
//! SET of the same token with XX/IFEQ) keeps the lock. A key given a TTL by
//! anything else (SET EX, EXPIRE) is not a lock.
//!
//! # Costs
//! Commands report each grant or release decision here, once, through
//! [`LockStats::acquired`], [`LockStats::busy`], [`LockStats::refused`] and
//! [`LockStats::released`]; the metrics server only reads. Counters are
//! relaxed atomics (a command pays one uncontended-in-the-common-case
//! `fetch_add`). What only the metrics server shows — the hold-time
//! histogram and the event ring — is kept only when it runs
//! (`--metrics-port`), so that a server without it pays nothing more.
//!
//! Grant times (for hold durations, ages, and the expiry log's "held for")
//! are kept without a map: a fixed table of [`AGE_SLOTS`] atomics, indexed
//! by a hash of (db, key, token), each packing 24 more bits of that hash
//! with the grant's time in ms. A release or a listing finds the time when
//! the slot still holds the same grant; a later grant hashing to the same
//! slot overwrites it, and the age is then unknown (never wrong but with a
//! 2^-36 chance per lookup).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Slots of the grant-time table (a power of two).
pub const AGE_SLOTS: usize = 1 << 12;
/// Recent events kept for the status page.
pub const EVENT_RING: usize = 256;
/// Bytes of a key / token kept in an event.
const KEY_KEPT: usize = 200;
const TOKEN_KEPT: usize = 16;
/// Bytes of a key / token written in a log line.
const KEY_LOGGED: usize = 64;
const TOKEN_LOGGED: usize = 8;
/// Expired-while-held warnings logged in one second at most; the rest of
/// that second's are summed up in one line (a client that leaks locks must
/// not flood the log, or slow the shard locks the warnings are written under).
pub const EXPIRY_LOGS_PER_SEC: u64 = 100;
/// Upper bounds (seconds) of the hold-time histogram's buckets (+Inf implied).
pub const HOLD_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];
/// Upper bounds (seconds) of the wait-time histogram of blocking acquires.
pub const WAIT_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0,
];

/// How a release attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Released,
    NotOwner,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    #[default]
    Acquired,
    Released,
    Expired,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Acquired => "acquired",
            EventKind::Released => "released",
            EventKind::Expired => "expired",
        }
    }
}

/// One lock event; key and token are truncated copies.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub kind: EventKind,
    pub db: usize,
    pub key: Vec<u8>,
    pub key_len: usize,
    pub token: Vec<u8>,
    /// When, on the commands' clock (µs, [`crate::store::Clock::now_us`]).
    pub at_us: u64,
    /// For a release or expiry whose grant time was known: how long it was
    /// held (until its deadline, for an expiry).
    pub held_ms: Option<u64>,
}

/// Lock counters, grant times and recent events of one instance.
pub struct LockStats {
    /// Keep grant times and events (the metrics server runs).
    detailed: bool,
    pub granted: AtomicU64,
    pub busy: AtomicU64,
    pub refused: AtomicU64,
    pub released: AtomicU64,
    pub not_owner: AtomicU64,
    pub missing: AtomicU64,
    pub fence_rejected: AtomicU64,
    /// Locks whose deadline passed before anyone released them.
    pub expired_while_held: AtomicU64,
    /// The second (of the commands' clock) of the expiry warnings being
    /// counted, how many were logged in it and how many were not.
    log_second: AtomicU64,
    logged: AtomicU64,
    unlogged: AtomicU64,
    /// Hold-time histogram: per-bucket (not cumulative) counts, the last
    /// one for +Inf, and the sum in ms.
    pub hold_buckets: [AtomicU64; HOLD_BUCKETS.len() + 1],
    pub hold_sum_ms: AtomicU64,
    /// Blocking acquires (WAIT) whose wait ended without a grant.
    pub timeout: AtomicU64,
    /// Clients blocked in LOCK.ACQUIRE / SEM.ACQUIRE ... WAIT right now.
    pub waiters: AtomicU64,
    /// Wait-time histogram of blocking acquires (granted or not): per-bucket
    /// counts, the last one for +Inf, and the sum in µs.
    pub wait_buckets: [AtomicU64; WAIT_BUCKETS.len() + 1],
    pub wait_sum_us: AtomicU64,
    ages: Box<[AtomicU64]>,
    events: Mutex<VecDeque<Event>>,
}

/// Bits of a packed grant time holding ms (34 years of uptime).
const TIME_BITS: u32 = 40;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

fn grant_hash(db: usize, key: &[u8], token: &[u8]) -> u64 {
    xxh3_64_with_seed(key, db as u64) ^ xxh3_64_with_seed(token, !(db as u64)).rotate_left(17)
}

impl LockStats {
    /// `detailed`: keep the hold-time histogram and recent events (only the
    /// metrics server reads them).
    pub fn new(detailed: bool) -> Self {
        LockStats {
            detailed,
            granted: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            released: AtomicU64::new(0),
            not_owner: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            fence_rejected: AtomicU64::new(0),
            expired_while_held: AtomicU64::new(0),
            log_second: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            hold_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            hold_sum_ms: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            waiters: AtomicU64::new(0),
            wait_buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            wait_sum_us: AtomicU64::new(0),
            ages: (0..AGE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            events: Mutex::new(VecDeque::with_capacity(if detailed { EVENT_RING } else { 0 })),
        }
    }

    /// A lock was granted (or re-acquired by its holder) to `token` at
    /// `now_us` (the command's monotonic time). Only counts: the store's
    /// mark is set by [`crate::commands::locks::granted`], which calls this.
    pub fn acquired(&self, db: usize, key: &[u8], token: &[u8], now_us: u64) {
        self.granted.fetch_add(1, Relaxed);
        let h = grant_hash(db, key, token);
        let packed = (h & !TIME_MASK) | ((now_us / 1000) & TIME_MASK);
        self.ages[h as usize & (AGE_SLOTS - 1)].store(packed, Relaxed);
        if self.detailed {
            self.push(EventKind::Acquired, db, key, token, None, now_us);
        }
    }

    /// An acquire found the lock held by another token.
    pub fn busy(&self) {
        self.busy.fetch_add(1, Relaxed);
    }

    /// A lock grant was refused (restart delay, maxmemory, disk error).
    pub fn refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// A release attempt of `key` by `token` ended as `how`; `held`: what
    /// it deleted was a held lock (its value carried the store's lock mark),
    /// which alone gives a hold time and a "released" event.
    pub fn released(&self, db: usize, key: &[u8], token: &[u8], how: Release, held: bool, now_us: u64) {
        let counter = match how {
            Release::Released => &self.released,
            Release::NotOwner => &self.not_owner,
            Release::Missing => &self.missing,
        };
        counter.fetch_add(1, Relaxed);
        if self.detailed && how == Release::Released && held {
            let held_ms = self.age_ms(db, key, token, now_us);
            if let Some(ms) = held_ms {
                let secs = ms as f64 / 1000.0;
                let bucket = HOLD_BUCKETS
                    .iter()
                    .position(|&b| secs <= b)
                    .unwrap_or(HOLD_BUCKETS.len());
                self.hold_buckets[bucket].fetch_add(1, Relaxed);
                self.hold_sum_ms.fetch_add(ms, Relaxed);
            }
            self.push(EventKind::Released, db, key, token, held_ms, now_us);
        }
    }

    /// A held lock (a marked value) was removed because its deadline
    /// passed; `deadline_us` on the commands' clock. Runs under the key's
    /// shard lock (the store's expire hook).
    pub fn expired(&self, db: usize, key: &[u8], token: &[u8], deadline_us: u64) {
        self.expired_while_held.fetch_add(1, Relaxed);
        let held_ms = self.age_ms(db, key, token, deadline_us);
        self.log_expired(db, key, token, held_ms, deadline_us);
        if self.detailed {
            self.push(EventKind::Expired, db, key, token, held_ms, deadline_us);
        }
    }

    /// A blocking acquire's wait ended after `waited_us`: granted (counted
    /// by [`Self::acquired`] at the grant) or not (a timeout).
    pub fn waited(&self, waited_us: u64, granted: bool) {
        if !granted {
            self.timeout.fetch_add(1, Relaxed);
        }
        let secs = waited_us as f64 / 1e6;
        let bucket = WAIT_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(WAIT_BUCKETS.len());
        self.wait_buckets[bucket].fetch_add(1, Relaxed);
        self.wait_sum_us.fetch_add(waited_us, Relaxed);
    }

    /// Wait-time histogram, as [`Self::hold_histogram`].
    pub fn wait_histogram(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .wait_buckets
            .iter()
            .enumerate()
            .map(|(i, c)| (WAIT_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|b| b.1).sum();
        (self.wait_sum_us.load(Relaxed) as f64 / 1e6, count, buckets)
    }

    /// The warning of a lock expired while held, at most
    /// [`EXPIRY_LOGS_PER_SEC`] a second (see there).
    fn log_expired(&self, db: usize, key: &[u8], token: &[u8], held_ms: Option<u64>, at_us: u64) {
        let second = at_us / 1_000_000;
        if self.log_second.load(Relaxed) != second && self.log_second.swap(second, Relaxed) != second {
            self.logged.store(0, Relaxed);
            let unlogged = self.unlogged.swap(0, Relaxed);
            if unlogged > 0 {
                tracing::warn!(
                    target: "redlockd::locks",
                    count = unlogged,
                    "{unlogged} more locks expired while held (not logged one by one: more than {EXPIRY_LOGS_PER_SEC} a second)"
                );
            }
        }
        if self.logged.fetch_add(1, Relaxed) >= EXPIRY_LOGS_PER_SEC {
            self.unlogged.fetch_add(1, Relaxed);
            return;
        }
        tracing::warn!(
            target: "redlockd::locks",
            db,
            key = %escaped(key, KEY_LOGGED),
            key_len = key.len(),
            token_prefix = %escaped(&token[..token.len().min(TOKEN_LOGGED)], TOKEN_LOGGED),
            held_ms,
            "lock expired while held"
        );
    }

    /// A fenced write was refused for a stale token.
    pub fn fence_rejected(&self) {
        self.fence_rejected.fetch_add(1, Relaxed);
    }

    /// How long ago (ms) `token` was granted `key`, if its grant time is
    /// still in the table.
    pub fn age_ms(&self, db: usize, key: &[u8], token: &[u8], now_us: u64) -> Option<u64> {
        let h = grant_hash(db, key, token);
        let packed = self.ages.get(h as usize & (AGE_SLOTS - 1))?.load(Relaxed);
        if packed == 0 || packed & !TIME_MASK != h & !TIME_MASK {
            return None;
        }
        Some(((now_us / 1000) & TIME_MASK).wrapping_sub(packed & TIME_MASK) & TIME_MASK)
    }

    /// Record an event. Once the ring is full, the evicted event's buffers
    /// are reused: a grant then copies its key without allocating.
    fn push(&self, kind: EventKind, db: usize, key: &[u8], token: &[u8], held_ms: Option<u64>, at_us: u64) {
        let mut ring = self.events.lock();
        let mut event = if ring.len() == EVENT_RING {
            ring.pop_front().unwrap_or_default()
        } else {
            Event::default()
        };
        event.kind = kind;
        event.db = db;
        event.key.clear();
        event.key.extend_from_slice(&key[..key.len().min(KEY_KEPT)]);
        event.key_len = key.len();
        event.token.clear();
        event.token.extend_from_slice(&token[..token.len().min(TOKEN_KEPT)]);
        event.at_us = at_us;
        event.held_ms = held_ms;
        ring.push_back(event);
    }

    /// Recent events, most recent first.
    pub fn recent_events(&self) -> Vec<Event> {
        self.events.lock().iter().rev().cloned().collect()
    }

    /// Hold-time histogram: (sum in seconds, count, per-bucket counts by
    /// upper bound — not cumulative, as prometheus-client's encoder takes them).
    pub fn hold_histogram(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = self
            .hold_buckets
            .iter()
            .enumerate()
            .map(|(i, c)| (HOLD_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), c.load(Relaxed)))
            .collect();
        let count = buckets.iter().map(|b| b.1).sum();
        (self.hold_sum_ms.load(Relaxed) as f64 / 1000.0, count, buckets)
    }
}

/// Client bytes for a log line: at most `max` of them, escaped as Rust's
/// `escape_ascii` does (`\n`, `\xff`...), with "..." when cut.
pub fn escaped(bytes: &[u8], max: usize) -> String {
    let mut s = bytes[..bytes.len().min(max)].escape_ascii().to_string();
    if bytes.len() > max {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_time_is_measured_from_the_grant_of_the_same_token() {
        let s = LockStats::new(true);
        s.acquired(0, b"k", b"t1", 1_000_000);
        assert_eq!(s.age_ms(0, b"k", b"t1", 3_500_000), Some(2500));
        assert_eq!(s.age_ms(0, b"k", b"t2", 3_500_000), None);
        assert_eq!(s.age_ms(1, b"k", b"t1", 3_500_000), None);
        s.released(0, b"k", b"t1", Release::Released, true, 3_500_000);
        let (sum, count, buckets) = s.hold_histogram();
        assert_eq!((sum, count), (2.5, 1));
        assert_eq!(buckets.iter().find(|b| b.0 == 5.0).map(|b| b.1), Some(1));
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 1);
        let events = s.recent_events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, EventKind::Released);
        assert_eq!(events[0].held_ms, Some(2500));
    }

    #[test]
    fn without_detail_only_counters_move() {
        let s = LockStats::new(false);
        s.acquired(0, b"k", b"t", 1);
        s.released(0, b"k", b"t", Release::Released, true, 2);
        assert_eq!(s.granted.load(Relaxed), 1);
        assert_eq!(s.released.load(Relaxed), 1);
        assert!(s.recent_events().is_empty());
        assert_eq!(s.hold_histogram().1, 0);
    }

    #[test]
    fn deleting_a_value_no_grant_stored_is_no_hold() {
        let s = LockStats::new(true);
        s.acquired(0, b"k", b"t", 1_000);
        s.released(0, b"k", b"t", Release::Released, false, 2_000);
        assert_eq!(s.released.load(Relaxed), 1);
        assert_eq!(s.hold_histogram().1, 0);
        assert_eq!(s.recent_events().len(), 1);
    }

    #[test]
    fn expiry_warnings_are_bounded_per_second() {
        let s = LockStats::new(false);
        for i in 0..EXPIRY_LOGS_PER_SEC + 5 {
            s.expired(0, b"k", b"t", 5_000_000 + i);
        }
        assert_eq!(s.unlogged.load(Relaxed), 5);
        s.expired(0, b"k", b"t", 6_000_000);
        assert_eq!((s.unlogged.load(Relaxed), s.logged.load(Relaxed)), (0, 1));
        assert_eq!(s.expired_while_held.load(Relaxed), EXPIRY_LOGS_PER_SEC + 6);
    }

    #[test]
    fn logged_bytes_are_escaped_and_cut() {
        assert_eq!(escaped(b"a\n\xff\"", 10), "a\\n\\xff\\\"");
        assert_eq!(escaped(b"abcdef", 3), "abc...");
    }

    #[test]
    fn the_ring_keeps_the_latest_events() {
        let s = LockStats::new(true);
        for i in 0..EVENT_RING + 10 {
            s.acquired(0, format!("k{i}").as_bytes(), b"t", 1);
        }
        let events = s.recent_events();
        assert_eq!(events.len(), EVENT_RING);
        assert_eq!(events[0].key, format!("k{}", EVENT_RING + 9).as_bytes());
    }
}
