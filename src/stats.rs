//! Counters behind INFO stats and INFO commandstats.
//!
//! Hot counters (commands processed, per-command calls, keyspace hits and
//! misses) live in per-thread blocks written only by their own thread, so a
//! command never contends on a shared cache line; INFO sums the blocks.
//! Rare events (connections, error replies) use shared atomics or a lock.
//!
//! Per-command counters are indexed by a number the caller gives (the
//! command table's position); the table says how many there are with
//! [`register_commands`] before the first command runs, so this module knows
//! nothing of commands.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

/// Per-thread counters; `per_command[i]` is for command `i`.
pub struct ThreadCounters {
    pub commands: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub per_command: Box<[CommandCounters]>,
}

/// One command's counters, together: a call touches one cache line.
#[derive(Default)]
pub struct CommandCounters {
    pub calls: AtomicU64,
    /// Microseconds spent running the command.
    pub usec: AtomicU64,
    pub failed: AtomicU64,
    pub rejected: AtomicU64,
}

static BLOCKS: Mutex<Vec<Arc<ThreadCounters>>> = Mutex::new(Vec::new());

/// How many commands have counters (see [`register_commands`]).
static COMMANDS: OnceLock<usize> = OnceLock::new();

/// Give counters to commands `0..n`. Called once, by the command table,
/// before any command runs; a counter block made before (there is none) or
/// an index past `n` would count the command in `commands` alone.
pub fn register_commands(n: usize) {
    let _ = COMMANDS.set(n);
}

fn command_count() -> usize {
    COMMANDS.get().copied().unwrap_or(0)
}

thread_local! {
    static LOCAL: OnceCell<Arc<ThreadCounters>> = const { OnceCell::new() };
}

/// Single-writer increment: only the owning thread writes its block.
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Run `f` with this thread's counter block.
#[inline]
pub fn with_local<R>(f: impl FnOnce(&ThreadCounters) -> R) -> R {
    LOCAL.with(|cell| {
        let block = cell.get_or_init(|| {
            let n = command_count();
            let block = Arc::new(ThreadCounters {
                commands: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                per_command: (0..n).map(|_| CommandCounters::default()).collect(),
            });
            BLOCKS.lock().push(block.clone());
            block
        });
        f(block)
    })
}

/// Command `index` ran for `usec` microseconds.
#[inline]
pub fn command_done(index: usize, failed: bool, usec: u64) {
    with_local(|c| {
        bump(&c.commands, 1);
        if let Some(counters) = c.per_command.get(index) {
            bump(&counters.calls, 1);
            bump(&counters.usec, usec);
            if failed {
                bump(&counters.failed, 1);
            }
        }
    })
}

/// A command refused before it ran (arity, unknown, not allowed).
pub fn command_rejected(index: Option<usize>) {
    with_local(|c| {
        bump(&c.commands, 1);
        if let Some(counters) = index.and_then(|i| c.per_command.get(i)) {
            bump(&counters.rejected, 1);
        }
    })
}

#[inline]
pub fn keyspace_lookup(hit: bool) {
    with_local(|c| bump(if hit { &c.hits } else { &c.misses }, 1))
}

/// Totals over every thread.
#[derive(Default, Debug)]
pub struct Totals {
    pub commands: u64,
    pub hits: u64,
    pub misses: u64,
    pub calls: Vec<u64>,
    pub usec: Vec<u64>,
    pub failed: Vec<u64>,
    pub rejected: Vec<u64>,
}

pub fn totals() -> Totals {
    let n = command_count();
    let mut t = Totals {
        calls: vec![0; n],
        usec: vec![0; n],
        failed: vec![0; n],
        rejected: vec![0; n],
        ..Default::default()
    };
    for b in BLOCKS.lock().iter() {
        t.commands += b.commands.load(Ordering::Relaxed);
        t.hits += b.hits.load(Ordering::Relaxed);
        t.misses += b.misses.load(Ordering::Relaxed);
        for (i, c) in b.per_command.iter().enumerate().take(n) {
            t.calls[i] += c.calls.load(Ordering::Relaxed);
            t.usec[i] += c.usec.load(Ordering::Relaxed);
            t.failed[i] += c.failed.load(Ordering::Relaxed);
            t.rejected[i] += c.rejected.load(Ordering::Relaxed);
        }
    }
    t
}

/// CONFIG RESETSTAT. Counters are zeroed with plain stores; an increment
/// racing with the reset on another thread may survive it, which is harmless.
pub fn reset() {
    for b in BLOCKS.lock().iter() {
        for c in [&b.commands, &b.hits, &b.misses] {
            c.store(0, Ordering::Relaxed);
        }
        for c in b.per_command.iter() {
            for n in [&c.calls, &c.usec, &c.failed, &c.rejected] {
                n.store(0, Ordering::Relaxed);
            }
        }
    }
    *ERRORS.lock() = ErrorCounts::default();
}

/// Error replies by their first word (INFO errorstats), and in all.
#[derive(Default, Clone)]
pub struct ErrorCounts {
    pub total: u64,
    /// In first-seen order; at most [`ERROR_KINDS_MAX`] kinds.
    pub by_kind: Vec<(String, u64)>,
}

/// Redis tracks at most 128 kinds of error; more are counted only in the total.
const ERROR_KINDS_MAX: usize = 128;

static ERRORS: Mutex<ErrorCounts> = Mutex::new(ErrorCounts {
    total: 0,
    by_kind: Vec::new(),
});

/// An error reply was sent: count it under its first word (`ERR`,
/// `WRONGTYPE`, `NOSCRIPT`, ...), as Redis's `errorstat_<kind>`. Errors are
/// rare next to commands, so one shared lock serves.
pub fn error_reply(text: &str) {
    let kind = text.split(' ').next().unwrap_or(text);
    let mut errors = ERRORS.lock();
    errors.total += 1;
    if let Some(entry) = errors.by_kind.iter_mut().find(|(k, _)| k == kind) {
        entry.1 += 1;
    } else if errors.by_kind.len() < ERROR_KINDS_MAX {
        errors.by_kind.push((kind.to_owned(), 1));
    }
}

pub fn errors() -> ErrorCounts {
    ERRORS.lock().clone()
}

/// Shared, rarely-bumped server counters.
#[derive(Default)]
pub struct ServerCounters {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
}
