//! `redlockd counter`: many workers increment one shared counter under a
//! Redlock, and the run reports whether any update was lost.
//!
//! The lock key and the counter key are separate; the counter lives on the
//! `--store` instance. With `--group` (the nodes of one replicated group,
//! used as one lock server) the counter lives in the group too, unless
//! `--store` is given; a fenced write that gets no answer (its node died) is
//! retried on another node while the lock is still valid: rewriting the same
//! value under the same fence is harmless. Each increment: acquire the lock, GET the counter,
//! SET it to +1 (with `--fenced`: `FENCE.SET` with the lock's fence), release.
//! `--pause-ms` makes worker 0 pause inside its critical section on every
//! tenth increment, like a GC pause: with a short `--ttl` its lock expires
//! meanwhile and another worker takes over. Unfenced, the paused worker's
//! stale write then loses updates; fenced, it is rejected and retried.
//!
//! The last line is machine-readable:
//! `counter final=X expected=Y lost=Z rejected_stale=R acquire_failures=F elapsed_ms=T`.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;

use super::{parse_duration, say};
use crate::redlock::{CallError, Group, Instance, Redlock, RedlockConfig, Reply};

#[derive(Args, Debug, Clone)]
pub struct CounterArgs {
    /// Lock instances, comma-separated host:port.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "group",
        conflicts_with = "group"
    )]
    pub instances: Vec<String>,
    /// The nodes of one replicated group (comma-separated host:port), used
    /// as ONE lock server and, without --store, as the counter's store.
    #[arg(long, value_delimiter = ',')]
    pub group: Vec<String>,
    /// The instance that stores the counter (default with --group: the group).
    #[arg(long, required_unless_present = "group")]
    pub store: Option<String>,
    #[arg(long, default_value_t = 4)]
    pub workers: u64,
    /// Increments per worker.
    #[arg(long, default_value_t = 100)]
    pub increments: u64,
    /// Write with FENCE.SET and the lock's fence, so stale holders are rejected.
    #[arg(long)]
    pub fenced: bool,
    /// Worker 0 pauses this long inside the lock on every tenth increment.
    #[arg(long, default_value_t = 0)]
    pub pause_ms: u64,
    /// Lock TTL.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// Per-instance timeout (default: min(50ms, ttl/100); with --group,
    /// the time allowed to one node before trying the next, default 1s).
    #[arg(long, value_parser = parse_duration)]
    pub instance_timeout: Option<Duration>,
    /// A worker that cannot acquire for this long gives up (the run fails).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub give_up_after: Duration,
    /// The counter's key on the store.
    #[arg(long, default_value = "counter")]
    pub key: String,
    /// The lock's key on the lock instances.
    #[arg(long, default_value = "counter-lock")]
    pub lock: String,
}

#[derive(Default)]
struct Tally {
    done: AtomicU64,
    rejected_stale: AtomicU64,
    acquire_failures: AtomicU64,
    gave_up: AtomicU64,
}

const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the counter lives.
enum Store {
    Instance(Instance),
    /// The group: every call goes to one node, the next one on failure.
    Group(Group),
}

impl Store {
    fn new(args: &CounterArgs) -> Store {
        match &args.store {
            Some(addr) => Store::Instance(Instance::new(addr.clone())),
            None => Store::Group(Group::new(args.group.clone(), args.instance_timeout)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Store::Instance(i) => i.addr.clone(),
            Store::Group(g) => g.describe(),
        }
    }

    /// One command, within `within` (across nodes, for a group).
    async fn call(&self, args: &[&[u8]], within: Duration) -> Result<Reply, CallError> {
        self.call_counting(args, within).await.0
    }

    /// [`Store::call`], with how many attempts went unanswered (timed out
    /// or lost the connection, so they may have been applied).
    async fn call_counting(&self, args: &[&[u8]], within: Duration) -> (Result<Reply, CallError>, usize) {
        match self {
            Store::Instance(i) => {
                let r = i.call(args, within).await;
                let unanswered = usize::from(r.is_err());
                (r, unanswered)
            }
            Store::Group(g) => g.call_until_counting(args, Instant::now() + within).await,
        }
    }
}

fn int_reply(r: &Reply) -> Option<i64> {
    match r {
        Reply::Int(n) => Some(*n),
        Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        Reply::Bulk(None) => Some(0),
        _ => None,
    }
}

async fn worker(id: u64, args: Arc<CounterArgs>, tally: Arc<Tally>) -> Result<(), String> {
    let config = RedlockConfig {
        instance_timeout: args.instance_timeout,
        retry_count: 0,
        ..RedlockConfig::default()
    };
    let redlock = if args.group.is_empty() {
        Redlock::new(args.instances.clone(), config)
    } else {
        Redlock::group(args.group.clone(), config)
    };
    let store = Store::new(&args);
    for n in 0..args.increments {
        let mut failing_since: Option<Instant> = None;
        loop {
            let lock = match redlock.try_acquire(args.lock.as_bytes(), args.ttl).await {
                Ok(lock) => lock,
                Err(e) => {
                    tally.acquire_failures.fetch_add(1, Ordering::Relaxed);
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > args.give_up_after {
                        tally.gave_up.fetch_add(1, Ordering::Relaxed);
                        return Err(format!("worker {id} gave up: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(rand::random_range(1..20))).await;
                    continue;
                }
            };
            failing_since = None;
            // A group retries only while the lock is valid; one instance is
            // asked once.
            let within = |lock: &crate::redlock::Lock| match store {
                Store::Group(_) => lock.remaining(),
                Store::Instance(_) => STORE_TIMEOUT,
            };
            let current = store
                .call(&[b"GET", args.key.as_bytes()], within(&lock))
                .await
                .map_err(|e| format!("store: {e}"))
                .and_then(|r| int_reply(&r).ok_or_else(|| format!("store GET: {r:?}")));
            let current = match current {
                Ok(v) => v,
                Err(_) => {
                    redlock.release(&lock).await;
                    continue;
                }
            };
            if args.pause_ms > 0 && id == 0 && n % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
            }
            let next = (current + 1).to_string();
            let within = within(&lock);
            let (written, unanswered) = if args.fenced {
                let Some(fence) = lock.fence else {
                    return Err("--fenced needs instances that hand out fences (redlockd)".into());
                };
                let fence = fence.to_string();
                store
                    .call_counting(
                        &[b"FENCE.SET", args.key.as_bytes(), next.as_bytes(), fence.as_bytes()],
                        within,
                    )
                    .await
            } else {
                store
                    .call_counting(&[b"SET", args.key.as_bytes(), next.as_bytes()], within)
                    .await
            };
            redlock.release(&lock).await;
            match written {
                Ok(Reply::Status(_)) => break,
                // Stale, and no earlier attempt of this write can have landed.
                Ok(Reply::Error(e)) if e.starts_with("FENCED") && unanswered == 0 => {
                    tally.rejected_stale.fetch_add(1, Ordering::Relaxed);
                }
                // Every attempt was refused (-TRYAGAIN) or none was made
                // (the lock's validity ran out): nothing was written.
                Err(_) if unanswered == 0 => {}
                // The store did not confirm: the increment may or may not have
                // landed; retrying could double count, so report it.
                other => return Err(format!("store write failed: {other:?}")),
            }
        }
        tally.done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

pub async fn main(args: CounterArgs) -> u8 {
    let args = Arc::new(args);
    let store = Store::new(&args);
    if let Err(e) = store.call(&[b"DEL", args.key.as_bytes()], STORE_TIMEOUT).await {
        say(format!("redlockd counter: store {}: {e}", store.describe()));
        return 1;
    }
    let expected = args.workers * args.increments;
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.workers)
        .map(|id| tokio::spawn(worker(id, args.clone(), tally.clone())))
        .collect();
    let progress = Progress::new(expected);
    let mut all = futures::future::join_all(tasks);
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            _ = tokio::time::sleep(Duration::from_millis(200)) => progress.update(tally.done.load(Ordering::Relaxed)),
        }
    };
    progress.update(tally.done.load(Ordering::Relaxed));
    progress.finish();
    let mut ok = true;
    for r in results {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                say(format!("redlockd counter: {e}"));
                ok = false;
            }
            Err(e) => {
                say(format!("redlockd counter: worker panicked: {e}"));
                ok = false;
            }
        }
    }
    let final_value = match store.call(&[b"GET", args.key.as_bytes()], STORE_TIMEOUT).await {
        Ok(r) => int_reply(&r).unwrap_or(-1),
        Err(e) => {
            say(format!("redlockd counter: reading the result: {e}"));
            return 1;
        }
    };
    let line = format!(
        "counter final={final_value} expected={expected} lost={} rejected_stale={} acquire_failures={} elapsed_ms={}",
        expected as i64 - final_value,
        tally.rejected_stale.load(Ordering::Relaxed),
        tally.acquire_failures.load(Ordering::Relaxed),
        started.elapsed().as_millis()
    );
    let _ = writeln!(std::io::stdout(), "{line}");
    if ok { 0 } else { 1 }
}

/// A live count on a terminal (one line, redrawn), plain lines (every 10%) otherwise.
struct Progress {
    terminal: bool,
    total: u64,
    started: Instant,
    last_decile: AtomicU64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            total,
            started: Instant::now(),
            last_decile: AtomicU64::new(0),
        }
    }

    fn update(&self, done: u64) {
        if self.terminal {
            let per_sec = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            let _ = write!(
                std::io::stderr(),
                "\rcounter: {done}/{} increments ({per_sec:.0}/s)",
                self.total
            );
        } else {
            let decile = (done * 10).checked_div(self.total).unwrap_or(10);
            if decile > self.last_decile.swap(decile, Ordering::Relaxed) {
                say(format!("counter: {done}/{} increments", self.total));
            }
        }
    }

    fn finish(&self) {
        if self.terminal {
            let _ = writeln!(std::io::stderr());
        }
    }
}
