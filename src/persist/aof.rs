//! The append-only file: record encoding, the writer thread (group commit),
//! background rewrite, and replay at start.
//!
//! A write error (a full disk) does not stop the process — that only turns
//! into a crash loop, the first write after each restart failing again.
//! As in Redis, the writer keeps the records, cuts any partial write off the
//! file (so it stays a valid log), publishes the errno (dispatch then
//! refuses write commands with `-MISCONF`, INFO reports
//! `aof_last_write_status:err`) and retries once a second; the first retry
//! that succeeds lifts the refusal. The clients whose writes were already
//! taken get no reply until their records are in the file (fsynced, with
//! `appendfsync always`): nothing is acknowledged that a crash could lose.
//! Redis instead exits under `always` (its reply is already queued) and
//! acknowledges the failed write under `everysec`; replies here wait for the
//! writer anyway, so they can wait out the error. Meanwhile other clients
//! may read such an unlogged write, as during any group commit, only longer.
//! A failed `everysec` fsync also refuses writes until an fsync succeeds; a
//! failed `always` fsync cuts the records off and writes them again (pages
//! a failed fsync dropped are not trusted), or exits if they cannot be cut.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use smallvec::SmallVec;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::latency::LatencyMonitor;
use crate::protocol::encode_command as encode;
use crate::store::types::{Container, Hash, List, Set, ZSet};
use crate::store::{Clock, Deadline, Entry, Keyspace, NO_DEADLINE, SmallBytes, Value};

/// When the log is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// After every batch of writes, before their replies are sent.
    Always,
    /// Once a second, in the background.
    EverySec,
    /// Never explicitly (the OS decides).
    No,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// The record of one key's state (its absence when `entry` is None): a
/// string is `RL.SET db key value unix_ms fence [lock]` (`lock`: a value
/// stored by a lock grant, so that a restart keeps counting it as a held
/// lock, [`crate::lockstats`]), a container `RL.VALUE db key unix_ms type
/// payload`, the whole container in one argument ([`container_payload`]).
/// A container is written whole after each write to it: replay stays a
/// plain overwrite, at a cost linear in its size.
pub fn key_record(out: &mut Vec<u8>, db: usize, key: &[u8], entry: Option<&Entry>, now: u64) {
    let db = db.to_string();
    match entry {
        Some(e) => {
            let unix_ms = if e.has_deadline() {
                Clock::unix_ms_of(e.deadline(), now).max(1)
            } else {
                0
            };
            let unix_ms = unix_ms.to_string();
            match &e.value {
                Value::Str(v) => {
                    let fence = e.fence().to_string();
                    let record: [&[u8]; 7] = [
                        b"RL.SET",
                        db.as_bytes(),
                        key,
                        v,
                        unix_ms.as_bytes(),
                        fence.as_bytes(),
                        b"lock",
                    ];
                    encode(out, &record[..if e.is_lock() { 7 } else { 6 }]);
                }
                container => {
                    let payload = container_payload(container);
                    encode(
                        out,
                        &[
                            b"RL.VALUE",
                            db.as_bytes(),
                            key,
                            unix_ms.as_bytes(),
                            container.type_name().as_bytes(),
                            &payload,
                        ],
                    );
                }
            }
        }
        None => encode(out, &[b"RL.DEL", db.as_bytes(), key]),
    }
}

/// A container's elements, each as a 4-byte little-endian length and its
/// bytes, in the container's order: a hash's field then value, a sorted
/// set's member then its score (the 8 bytes of the f64, exact).
pub fn container_payload(value: &Value) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    }
    let mut out = Vec::new();
    match value {
        Value::Str(v) => put(&mut out, v),
        Value::Hash(h) => h.iter().for_each(|(f, v)| {
            put(&mut out, f);
            put(&mut out, v);
        }),
        Value::List(l) => l.iter().for_each(|v| put(&mut out, v)),
        Value::Set(s) => s.iter().for_each(|m| m.with_bytes(|b| put(&mut out, b))),
        Value::ZSet(z) => z.entries().iter().for_each(|(score, m)| {
            put(&mut out, m);
            put(&mut out, &score.to_bits().to_le_bytes());
        }),
    }
    out
}

/// The container a [`container_payload`] describes, or None if the
/// payload is not one (a type or length that does not add up).
pub fn parse_container(kind: &[u8], mut payload: &[u8]) -> Option<Value> {
    let mut items: Vec<&[u8]> = Vec::new();
    while !payload.is_empty() {
        let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        items.push(payload.get(4..4 + len)?);
        payload = &payload[4 + len..];
    }
    let value = match kind {
        b"hash" if items.len().is_multiple_of(2) => {
            let mut h = Hash::default();
            for pair in items.chunks_exact(2) {
                h.insert(pair[0], pair[1]);
            }
            h.into_value()
        }
        b"list" => items
            .iter()
            .map(|&v| SmallBytes::from(v))
            .collect::<List>()
            .into_value(),
        b"set" => {
            let mut s = Set::for_member(items.first()?);
            for m in &items {
                s.insert(m);
            }
            s.into_value()
        }
        b"zset" if items.len().is_multiple_of(2) => {
            let mut z = ZSet::default();
            for pair in items.chunks_exact(2) {
                let score = f64::from_bits(u64::from_le_bytes(pair[1].try_into().ok()?));
                if score.is_nan() {
                    return None;
                }
                z.insert(pair[0], score);
            }
            z.into_value()
        }
        _ => return None,
    };
    // An empty container is never stored.
    (!items.is_empty()).then_some(value)
}

pub fn flushdb_record(out: &mut Vec<u8>, db: usize) {
    encode(out, &[b"RL.FLUSHDB", db.to_string().as_bytes()]);
}

pub fn flushall_record(out: &mut Vec<u8>) {
    encode(out, &[b"RL.FLUSHALL"]);
}

pub fn fence_record(out: &mut Vec<u8>, fence: u64) {
    encode(out, &[b"RL.FENCE", fence.to_string().as_bytes()]);
}

/// A semaphore holder's state: `token` holds a slot of `key` (of `limit`
/// slots) with `fence` until `unix_ms`.
pub fn sem_set_record(out: &mut Vec<u8>, db: usize, key: &[u8], token: &[u8], unix_ms: i64, fence: u64, limit: u64) {
    encode(
        out,
        &[
            b"RL.SEMSET",
            db.to_string().as_bytes(),
            key,
            token,
            unix_ms.to_string().as_bytes(),
            fence.to_string().as_bytes(),
            limit.to_string().as_bytes(),
        ],
    );
}

/// `token` no longer holds a slot of semaphore `key`.
pub fn sem_del_record(out: &mut Vec<u8>, db: usize, key: &[u8], token: &[u8]) {
    encode(out, &[b"RL.SEMDEL", db.to_string().as_bytes(), key, token]);
}

struct Pending {
    buf: Vec<u8>,
    /// Bytes ever appended (the offset just past the last record).
    appended: u64,
    stop: bool,
    rewrite_requested: bool,
}

/// What INFO persistence reports.
#[derive(Default)]
pub struct AofStats {
    pub current_size: AtomicU64,
    pub base_size: AtomicU64,
    pub rewrite_in_progress: AtomicBool,
    pub rewrites: AtomicU64,
    pub last_rewrite_ok: AtomicBool,
    /// The errno of the write (or fsync) error that stops writes; 0 while
    /// the log is healthy.
    pub write_errno: AtomicI32,
}

pub struct Aof {
    pub policy: Fsync,
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<u64>,
    pub stats: AofStats,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Set by the writer once it has written and fsynced its last records.
    stopped: AtomicBool,
}

/// How often a failed write is retried (Redis retries once a second too).
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// At most one log line per this long about a write error that lasts.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

/// Rewrite thresholds.
#[derive(Debug, Clone, Copy)]
pub struct RewritePolicy {
    pub percentage: u64,
    pub min_size: u64,
}

impl Aof {
    /// Open (creating) the log at `path`, replay it into `keyspace`, and
    /// start the writer thread (which reports slow writes to `latency`).
    pub fn open(
        path: &Path,
        policy: Fsync,
        rewrite: RewritePolicy,
        keyspace: Arc<Keyspace>,
        latency: Arc<LatencyMonitor>,
    ) -> std::io::Result<Arc<Aof>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let size = replay(path, &keyspace)?;
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (durable, _) = watch::channel(0);
        let aof = Arc::new(Aof {
            policy,
            pending: Mutex::new(Pending {
                buf: Vec::new(),
                appended: 0,
                stop: false,
                rewrite_requested: false,
            }),
            wake: Condvar::new(),
            durable,
            stats: AofStats::default(),
            writer: Mutex::new(None),
            stopped: AtomicBool::new(false),
        });
        aof.stats.current_size.store(size, Ordering::Relaxed);
        aof.stats.base_size.store(size, Ordering::Relaxed);
        aof.stats.last_rewrite_ok.store(true, Ordering::Relaxed);
        let writer = Writer {
            aof: aof.clone(),
            file,
            path: path.to_path_buf(),
            keyspace,
            latency,
            rewrite,
            rewriting: None,
            unwritten: Vec::new(),
            partial: 0,
            file_len: size,
            durable: 0,
            unsynced: false,
            last_sync: Instant::now(),
            failure: None,
            fsync_failed: false,
        };
        let handle = std::thread::Builder::new()
            .name("redlockd-aof".into())
            .spawn(move || writer.run())?;
        *aof.writer.lock() = Some(handle);
        Ok(aof)
    }

    /// Append records (built by `fill`); returns the offset just past them.
    /// Call while holding the shard locks of the keys the records describe.
    pub fn append(&self, fill: impl FnOnce(&mut Vec<u8>)) -> u64 {
        let mut p = self.pending.lock();
        let before = p.buf.len();
        fill(&mut p.buf);
        p.appended += (p.buf.len() - before) as u64;
        let end = p.appended;
        drop(p);
        self.wake.notify_one();
        end
    }

    /// Wait until everything up to `offset` is written to the file (and,
    /// with `appendfsync always`, fsynced): the writer thread does both for
    /// all pending records at once, so concurrent clients share one fsync.
    pub async fn wait_durable(&self, offset: u64) {
        let mut rx = self.durable.subscribe();
        let _ = rx.wait_for(|d| *d >= offset).await;
    }

    /// The errno of the error that stops writes (Redis's MISCONF), if any:
    /// one relaxed load, for dispatch's hot path.
    pub fn write_error(&self) -> Option<i32> {
        match self.stats.write_errno.load(Ordering::Relaxed) {
            0 => None,
            errno => Some(errno),
        }
    }

    pub fn request_rewrite(&self) -> bool {
        if self.stats.rewrite_in_progress.load(Ordering::SeqCst) {
            return false;
        }
        self.pending.lock().rewrite_requested = true;
        self.wake.notify_one();
        true
    }

    /// Flush and fsync what is pending, then stop the writer.
    pub fn shutdown(&self) {
        self.pending.lock().stop = true;
        self.wake.notify_one();
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }

    /// Have the writer write and fsync what is pending and stop, waiting at
    /// most `limit`; whether it did. For a process exit that cannot wait for
    /// [`Aof::shutdown`]: it takes no store lock and does not wait for a
    /// rewrite in progress (whose snapshot may wait on a long command).
    pub fn flush_for_exit(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let Some(mut pending) = self.pending.try_lock_until(deadline) else {
            return false;
        };
        pending.stop = true;
        drop(pending);
        self.wake.notify_one();
        while !self.stopped.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// A rewrite under way: the snapshot thread, and the records written to the
/// old log since it started (to be appended to the new one).
struct Rewriting {
    snapshot: JoinHandle<std::io::Result<File>>,
    tail: Vec<u8>,
    temp: PathBuf,
}

struct Writer {
    aof: Arc<Aof>,
    file: File,
    path: PathBuf,
    keyspace: Arc<Keyspace>,
    rewrite: RewritePolicy,
    rewriting: Option<Rewriting>,
    /// Records taken from the queue and not yet durable: not in the file,
    /// or (with `appendfsync always`) not yet fsynced.
    unwritten: Vec<u8>,
    /// How much of `unwritten` is in the file already: a partial write that
    /// could not be cut off again (the retry goes on from there).
    partial: usize,
    /// The file's length up to the last durable record: where a failed
    /// write is cut back to.
    file_len: u64,
    /// Offset (in bytes ever appended) just past the last durable record.
    durable: u64,
    unsynced: bool,
    last_sync: Instant,
    /// The write (or fsync) error that stops writes, while it lasts.
    failure: Option<Failure>,
    /// LATENCY's `aof-write` and `aof-fsync-always` events.
    latency: Arc<LatencyMonitor>,
    /// The last failure was an `everysec` fsync (cleared by the next good fsync).
    fsync_failed: bool,
}

/// A write error under way.
struct Failure {
    /// When it began (the recovery's log line says how long it lasted).
    since: Instant,
    retry_at: Instant,
    logged_at: Instant,
    /// Failed retries since the last log line (that line not counted).
    unlogged: u64,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (stop, rewrite_requested) = self.take_queued();
            if stop || self.failure.as_ref().is_none_or(|f| Instant::now() >= f.retry_at) {
                self.flush(stop);
            }
            self.aof.durable.send_replace(self.durable);
            if self.rewriting.as_ref().is_some_and(|r| r.snapshot.is_finished()) {
                self.finish_rewrite();
            }
            let size = self.aof.stats.current_size.load(Ordering::Relaxed);
            let base = self.aof.stats.base_size.load(Ordering::Relaxed).max(1);
            // No automatic rewrite while the log cannot be written: it would fail too.
            let grown = size >= self.rewrite.min_size
                && self.rewrite.percentage > 0
                && size.saturating_sub(base) * 100 / base >= self.rewrite.percentage
                && self.failure.is_none();
            if self.rewriting.is_none() && (rewrite_requested || grown) && !stop {
                self.start_rewrite();
            }
            if stop {
                if !self.unwritten.is_empty() {
                    tracing::error!(
                        "exiting with {} bytes of writes (never acknowledged) that could not be written to the append-only file",
                        self.unwritten.len() - self.partial
                    );
                }
                self.aof.stopped.store(true, Ordering::Release);
                if let Some(r) = self.rewriting.take() {
                    let _ = r.snapshot.join();
                    let _ = std::fs::remove_file(&r.temp);
                }
                return;
            }
        }
    }

    /// Wait for records (or a stop, a rewrite request, the next retry or
    /// periodic fsync), and move the queued records to `unwritten`.
    fn take_queued(&mut self) -> (bool, bool) {
        let mut p = self.aof.pending.lock();
        if p.buf.is_empty() && !p.stop && !p.rewrite_requested {
            let mut wait = Duration::from_millis(if self.rewriting.is_some() { 10 } else { 250 });
            if let Some(f) = &self.failure {
                wait = wait.min(f.retry_at.saturating_duration_since(Instant::now()));
            }
            self.aof.wake.wait_for(&mut p, wait);
        }
        if self.unwritten.is_empty() {
            // Hand the (empty) buffer back to the queue: no allocation per batch.
            std::mem::swap(&mut self.unwritten, &mut p.buf);
        } else {
            self.unwritten.extend_from_slice(&p.buf);
            p.buf.clear();
        }
        (p.stop, std::mem::take(&mut p.rewrite_requested))
    }

    /// Write what is queued, and fsync when the policy says so; a failure
    /// stops writes until a retry succeeds.
    fn flush(&mut self, stop: bool) {
        if !self.unwritten.is_empty()
            && let Err((op, e)) = self.write_unwritten()
        {
            return self.failed(op, e);
        }
        let sync_due = self.unsynced
            && match self.aof.policy {
                // write_unwritten fsyncs each write.
                Fsync::Always => false,
                Fsync::EverySec => stop || self.last_sync.elapsed() >= Duration::from_secs(1),
                Fsync::No => stop,
            };
        if sync_due {
            if let Err(e) = self.file.sync_data() {
                // Redis's everysec: the writes stay acknowledged (they are in
                // the file), but no more are taken until an fsync succeeds.
                self.fsync_failed = true;
                return self.failed("fsync", e);
            }
            self.unsynced = false;
            self.fsync_failed = false;
            self.last_sync = Instant::now();
        }
        if !self.fsync_failed
            && let Some(f) = self.failure.take()
        {
            self.aof.stats.write_errno.store(0, Ordering::Relaxed);
            warn!(
                target: "redlockd::aof",
                path = %self.path.display(),
                failed_ms = f.since.elapsed().as_millis() as u64,
                "append-only file write error looks solved; accepting writes again"
            );
        }
    }

    /// Write `unwritten` (and with `appendfsync always` fsync it): then it
    /// is durable, and the clients waiting for it get their replies. An
    /// error comes with what failed: "write" or "fsync".
    fn write_unwritten(&mut self) -> Result<(), (&'static str, std::io::Error)> {
        let started = Instant::now();
        let mut result = write_counted(&mut self.file, &self.unwritten, &mut self.partial).map_err(|e| ("write", e));
        self.latency
            .add_if_spike("aof-write", started.elapsed().as_micros() as u64);
        let always = self.aof.policy == Fsync::Always;
        if result.is_ok() && always {
            let started = Instant::now();
            result = self.file.sync_data().map_err(|e| ("fsync", e));
            self.latency
                .add_if_spike("aof-fsync-always", started.elapsed().as_micros() as u64);
        }
        if let Err((_, e)) = &result {
            if self.partial > 0 {
                // Cut back to the last whole record, as Redis does: the file
                // stays a valid log while the error lasts (a restart then
                // finds nothing to cut), and the retry writes these bytes
                // again rather than trusting pages a failed fsync may have
                // dropped.
                match self.file.set_len(self.file_len) {
                    Ok(()) => self.partial = 0,
                    Err(cut) if always => {
                        tracing::error!(
                            target: "redlockd::aof",
                            path = %self.path.display(),
                            error = %e,
                            cut_error = %cut,
                            "cannot fsync the append-only file nor cut the unsynced records off it; exiting"
                        );
                        std::process::exit(1);
                    }
                    Err(cut) => {
                        warn!(
                            target: "redlockd::aof",
                            path = %self.path.display(),
                            error = %cut,
                            "cannot cut a partial record off the append-only file; the retry completes it"
                        )
                    }
                }
            }
            return result;
        }
        let n = self.unwritten.len() as u64;
        if let Some(r) = self.rewriting.as_mut() {
            r.tail.extend_from_slice(&self.unwritten);
        }
        self.unwritten.clear();
        self.partial = 0;
        self.file_len += n;
        self.durable += n;
        self.aof.stats.current_size.fetch_add(n, Ordering::Relaxed);
        if always {
            self.last_sync = Instant::now();
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Stop accepting writes (the MISCONF gate reads `write_errno`), log
    /// (at most every [`ERROR_LOG_EVERY`]), and retry in [`RETRY_EVERY`];
    /// `op` is what failed ("write" or "fsync").
    fn failed(&mut self, op: &'static str, e: std::io::Error) {
        let errno = e.raw_os_error().filter(|&n| n != 0).unwrap_or(libc::EIO);
        self.aof.stats.write_errno.store(errno, Ordering::Relaxed);
        let now = Instant::now();
        let ongoing = self.failure.is_some();
        let mut f = self.failure.take().unwrap_or(Failure {
            since: now,
            retry_at: now,
            logged_at: now,
            unlogged: 0,
        });
        if ongoing && now.duration_since(f.logged_at) < ERROR_LOG_EVERY {
            f.unlogged += 1;
        } else {
            tracing::error!(
                target: "redlockd::aof",
                path = %self.path.display(),
                op,
                errno,
                error = %e,
                failing_ms = now.duration_since(f.since).as_millis() as u64,
                unlogged_failures = f.unlogged,
                "append-only file {op} failed; refusing write commands until it can be written (retrying every {RETRY_EVERY:?})"
            );
            f.logged_at = now;
            f.unlogged = 0;
        }
        f.retry_at = now + RETRY_EVERY;
        self.failure = Some(f);
    }

    fn start_rewrite(&mut self) {
        let temp = self.path.with_extension("aof.rewrite");
        let keyspace = self.keyspace.clone();
        let target = temp.clone();
        self.aof.stats.rewrite_in_progress.store(true, Ordering::SeqCst);
        info!("background append-only file rewriting started");
        let snapshot = std::thread::spawn(move || snapshot(&keyspace, &target));
        self.rewriting = Some(Rewriting {
            snapshot,
            tail: Vec::new(),
            temp,
        });
    }

    fn finish_rewrite(&mut self) {
        let Some(r) = self.rewriting.take() else { return };
        let result = r
            .snapshot
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("snapshot thread panicked")));
        let done = result.and_then(|mut file| {
            file.write_all(&r.tail)?;
            file.sync_data()?;
            std::fs::rename(&r.temp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)?.sync_all()?;
            }
            let size = file.metadata()?.len();
            Ok((OpenOptions::new().append(true).open(&self.path)?, size))
        });
        match done {
            Ok((file, size)) => {
                self.file = file;
                // The new file ends with the last durable record.
                self.file_len = size;
                self.partial = 0;
                // ... and is fsynced (an earlier fsync error is moot).
                self.unsynced = false;
                self.fsync_failed = false;
                self.aof.stats.current_size.store(size, Ordering::Relaxed);
                self.aof.stats.base_size.store(size, Ordering::Relaxed);
                self.aof.stats.rewrites.fetch_add(1, Ordering::Relaxed);
                self.aof.stats.last_rewrite_ok.store(true, Ordering::Relaxed);
                info!(size, "background append-only file rewrite finished");
            }
            Err(e) => {
                warn!(target: "redlockd::aof", error = %e, "append-only file rewrite failed");
                let _ = std::fs::remove_file(&r.temp);
                self.aof.stats.last_rewrite_ok.store(false, Ordering::Relaxed);
            }
        }
        self.aof.stats.rewrite_in_progress.store(false, Ordering::SeqCst);
    }
}

/// Write every live key, one shard at a time, then the semaphore holders
/// and the fence counter.
fn snapshot(keyspace: &Keyspace, path: &Path) -> std::io::Result<File> {
    let mut file = File::create(path)?;
    let mut buf = Vec::with_capacity(1 << 20);
    for (i, db) in keyspace.dbs.iter().enumerate() {
        for shard in 0..db.shard_count() {
            let now = keyspace.clock.now_us();
            db.for_each_in_shard(shard, now, |k, e| key_record(&mut buf, i, k, Some(e), now));
            if buf.len() > 1 << 20 {
                file.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    let now = keyspace.clock.now_us();
    for (db, key, limit, h, _) in keyspace.sems.holders(now) {
        let unix_ms = Clock::unix_ms_of(h.deadline, now).max(1);
        sem_set_record(&mut buf, db, &key, &h.token, unix_ms, h.fence, limit);
    }
    fence_record(&mut buf, keyspace.fences.current());
    file.write_all(&buf)?;
    Ok(file)
}

/// Write `buf[*written..]`, counting in `written` what got in even when an
/// error stops it (`write_all` does not say).
fn write_counted(file: &mut File, buf: &[u8], written: &mut usize) -> std::io::Result<()> {
    while *written < buf.len() {
        match file.write(&buf[*written..]) {
            // As Redis does, a write that makes no progress counts as a full disk.
            Ok(0) => return Err(std::io::Error::from_raw_os_error(libc::ENOSPC)),
            Ok(n) => *written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Replay the log into the keyspace; returns its (possibly truncated) size.
///
/// Only a torn *last* record — what a crash in the middle of a write leaves —
/// is cut off, after a copy of the whole file is kept as `<file>.bak`: the
/// record must be well formed as far as it goes, claim more bytes than the
/// file has left (so it is the last thing in the file by its own account),
/// and no whole record may start anywhere after it (or its claim is a
/// corrupted length hiding the records behind it). Anything else is
/// corruption: an error naming the offset, and the file is left as it is
/// (the server refuses to start rather than forget locks).
fn replay(path: &Path, keyspace: &Keyspace) -> std::io::Result<u64> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut pos = 0;
    let (mut records, mut expired, mut max_fence) = (0u64, 0u64, 0u64);
    let wall = Clock::wall_ms();
    while pos < data.len() {
        let (args, len) = match parse_record(&data[pos..]) {
            Parsed::Record { args, len } => (args, len),
            Parsed::Bad { at, why } => {
                return Err(bad(format!(
                    "bad record at offset {pos} of {}: {why} at offset {}",
                    path.display(),
                    pos + at
                )));
            }
            Parsed::Torn { claimed } => {
                if let Some(next) = next_record(&data, pos + 1) {
                    return Err(bad(format!(
                        "bad record at offset {pos} of {}: it claims {claimed} bytes, more than the {} left, \
                         but a whole record starts at offset {next}: a corrupted length, not a torn last record",
                        path.display(),
                        data.len() - pos
                    )));
                }
                cut_torn_tail(path, pos, data.len())?;
                break;
            }
        };
        let db_of = |a: &[u8]| {
            parse_u64(a)
                .map(|d| d as usize)
                .filter(|d| *d < keyspace.dbs.len())
                .ok_or_else(|| bad(format!("bad database index at offset {pos}")))
        };
        let now = keyspace.clock.now_us();
        match args.first().copied() {
            Some(b"RL.SET") if args.len() == 6 || (args.len() == 7 && args[6] == b"lock") => {
                let db = db_of(args[1])?;
                let unix_ms = parse_u64(args[4]).ok_or_else(|| bad(format!("bad expiry at offset {pos}")))? as i64;
                let fence = parse_u64(args[5]).ok_or_else(|| bad(format!("bad fence at offset {pos}")))?;
                max_fence = max_fence.max(fence);
                let mut locked = keyspace.dbs[db].lock_keys(std::iter::once(args[2]), now);
                if let Some(deadline) = live_deadline(unix_ms, wall, now) {
                    let _ = locked.set(args[2], args[3], deadline);
                    if let Ok(Some(e)) = locked.get_mut(args[2]) {
                        e.set_fence(fence);
                        if args.len() == 7 {
                            e.mark_lock();
                        }
                    }
                } else {
                    expired += 1;
                    let _ = locked.remove(args[2]);
                }
            }
            Some(b"RL.VALUE") if args.len() == 6 => {
                let db = db_of(args[1])?;
                let unix_ms = parse_u64(args[3]).ok_or_else(|| bad(format!("bad expiry at offset {pos}")))? as i64;
                let value =
                    parse_container(args[4], args[5]).ok_or_else(|| bad(format!("bad container at offset {pos}")))?;
                let mut locked = keyspace.dbs[db].lock_keys(std::iter::once(args[2]), now);
                if let Some(deadline) = live_deadline(unix_ms, wall, now) {
                    if let Ok(place) = locked.place(args[2]) {
                        place.set_value(value, deadline);
                    }
                } else {
                    expired += 1;
                    let _ = locked.remove(args[2]);
                }
            }
            Some(b"RL.DEL") if args.len() == 3 => {
                let db = db_of(args[1])?;
                let _ = keyspace.dbs[db]
                    .lock_keys(std::iter::once(args[2]), now)
                    .remove(args[2]);
            }
            Some(b"RL.FLUSHDB") if args.len() == 2 => {
                keyspace.dbs[db_of(args[1])?].lock_all(now).clear();
            }
            Some(b"RL.FLUSHALL") if args.len() == 1 => {
                for db in &keyspace.dbs {
                    db.lock_all(now).clear();
                }
            }
            Some(b"RL.SEMSET") if args.len() == 7 => {
                let db = db_of(args[1])?;
                let unix_ms = parse_u64(args[4]).ok_or_else(|| bad(format!("bad expiry at offset {pos}")))? as i64;
                let fence = parse_u64(args[5]).ok_or_else(|| bad(format!("bad fence at offset {pos}")))?;
                let limit = parse_u64(args[6]).ok_or_else(|| bad(format!("bad limit at offset {pos}")))?;
                max_fence = max_fence.max(fence);
                if unix_ms <= wall {
                    expired += 1;
                    keyspace.sems.forget(db, args[2], args[3]);
                } else {
                    let deadline = Clock::deadline_from_unix_ms(unix_ms, now);
                    keyspace.sems.restore(db, args[2], args[3], fence, deadline, limit);
                }
            }
            Some(b"RL.SEMDEL") if args.len() == 4 => {
                keyspace.sems.forget(db_of(args[1])?, args[2], args[3]);
            }
            Some(b"RL.FENCE") if args.len() == 2 => {
                max_fence = max_fence.max(parse_u64(args[1]).ok_or_else(|| bad(format!("bad fence at offset {pos}")))?);
            }
            _ => {
                return Err(bad(format!(
                    "bad record at offset {pos} of {}: unknown record",
                    path.display()
                )));
            }
        }
        records += 1;
        pos += len;
    }
    keyspace.fences.raise_to(max_fence);
    info!(
        records,
        expired,
        fence = keyspace.fences.current(),
        "loaded {}",
        path.display()
    );
    Ok(pos as u64)
}

/// A record's absolute expiry (Unix ms, 0 = none) as a deadline of this
/// process's clock, or None when it has already passed (the key is dropped).
fn live_deadline(unix_ms: i64, wall: i64, now: u64) -> Option<Deadline> {
    match unix_ms {
        0 => Some(NO_DEADLINE),
        ms if ms <= wall => None,
        ms => Some(Clock::deadline_from_unix_ms(ms, now)),
    }
}

/// The most arguments a record has (`RL.SEMSET`, `RL.SET` of a lock).
const MAX_RECORD_ARGS: u64 = 7;

/// What [`parse_record`] found at the start of a slice.
pub(crate) enum Parsed<'a> {
    /// A whole record: its arguments and its length in bytes.
    Record {
        /// Inline up to six (a lock's seventh spills: clippy bounds the
        /// size of `header`'s `Err`, a `Parsed`).
        args: SmallVec<[&'a [u8]; 6]>,
        len: usize,
    },
    /// Well formed as far as it goes, but the slice ends before the
    /// `claimed` bytes its headers announce (a lower bound: the headers of
    /// arguments not reached yet are not counted).
    Torn { claimed: usize },
    /// Not a record: what is wrong, at which offset of the slice.
    Bad { at: usize, why: &'static str },
}

/// Read one record strictly, as the writer produces it: `*N\r\n` then N
/// times `$len\r\n<bytes>\r\n`, lengths in plain decimal. (The client
/// decoder is lenient where Redis is, and takes inline commands; a log has
/// no such excuse.)
pub(crate) fn parse_record(data: &[u8]) -> Parsed<'_> {
    let (n, mut pos) = match header(data, 0, b'*') {
        Ok(h) => h,
        Err(p) => return p,
    };
    if n == 0 || n > MAX_RECORD_ARGS {
        return Parsed::Bad {
            at: 1,
            why: "bad argument count",
        };
    }
    let mut args = SmallVec::new();
    for _ in 0..n {
        let (len, start) = match header(data, pos, b'$') {
            Ok(h) => h,
            Err(p) => return p,
        };
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        for (i, &want) in b"\r\n".iter().enumerate() {
            match data.get(end.saturating_add(i)) {
                None => {
                    return Parsed::Torn {
                        claimed: end.saturating_add(2),
                    };
                }
                Some(&c) if c != want => {
                    return Parsed::Bad {
                        at: end + i,
                        why: "expected CRLF after the value",
                    };
                }
                Some(_) => {}
            }
        }
        args.push(&data[start..end]);
        pos = end + 2;
    }
    Parsed::Record { args, len: pos }
}

/// `<prefix><digits>\r\n` at `at`: the number, and the offset after the line.
fn header<'a>(data: &[u8], at: usize, prefix: u8) -> Result<(u64, usize), Parsed<'a>> {
    match data.get(at) {
        None => return Err(Parsed::Torn { claimed: at + 4 }),
        Some(&c) if c != prefix => {
            return Err(Parsed::Bad {
                at,
                why: if prefix == b'*' { "expected '*'" } else { "expected '$'" },
            });
        }
        Some(_) => {}
    }
    let (mut n, mut digits, mut pos) = (0u64, 0, at + 1);
    loop {
        match data.get(pos) {
            None => return Err(Parsed::Torn { claimed: pos + 3 }),
            Some(b'\r') if digits > 0 => break,
            // At most 19 digits (no overflow), no leading zero.
            Some(&c @ b'0'..=b'9') if digits < 19 && !(digits == 1 && n == 0) => {
                n = n * 10 + u64::from(c - b'0');
                digits += 1;
            }
            Some(_) => {
                return Err(Parsed::Bad {
                    at: pos,
                    why: "bad length",
                });
            }
        }
        pos += 1;
    }
    match data.get(pos + 1) {
        None => Err(Parsed::Torn { claimed: pos + 2 }),
        Some(b'\n') => Ok((n, pos + 2)),
        Some(_) => Err(Parsed::Bad {
            at: pos + 1,
            why: "expected CRLF after the length",
        }),
    }
}

/// Whether `args` is a record replay knows (name and argument count).
fn known(args: &[&[u8]]) -> bool {
    matches!(
        (args.first().copied(), args.len()),
        (Some(b"RL.SET"), 6)
            | (Some(b"RL.VALUE"), 6)
            | (Some(b"RL.DEL"), 3)
            | (Some(b"RL.FLUSHDB"), 2)
            | (Some(b"RL.FLUSHALL"), 1)
            | (Some(b"RL.FENCE"), 2)
            | (Some(b"RL.SEMSET"), 7)
            | (Some(b"RL.SEMDEL"), 4)
    )
}

/// The offset of the first whole, known record starting at or after `from`.
fn next_record(data: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'*', &data[from..])
        .map(|i| from + i)
        .find(|&at| matches!(parse_record(&data[at..]), Parsed::Record { ref args, .. } if known(args)))
}

/// Where the original log is kept before a torn record is cut off:
/// `<file>.bak`, replaced each time.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".bak");
    PathBuf::from(name)
}

/// Cut the log at `at`, the start of its torn last record, after keeping a
/// copy of the whole file (if the copy cannot be made, nothing is cut and
/// the server does not start).
fn cut_torn_tail(path: &Path, at: usize, len: usize) -> std::io::Result<()> {
    let backup = backup_path(path);
    std::fs::copy(path, &backup)
        .and_then(|_| File::open(&backup)?.sync_all())
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "{}: the last record (offset {at}) is incomplete, but no copy of the file could be kept as {} before cutting it: {e}",
                    path.display(),
                    backup.display()
                ),
            )
        })?;
    warn!(
        "{}: the last record is incomplete ({} bytes after offset {at}); truncating it, as after a crash mid-write (the original file is kept as {})",
        path.display(),
        len - at,
        backup.display()
    );
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(at as u64)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every container type survives its record, order and scores exactly;
    /// a payload that does not add up is refused, never half-read.
    #[test]
    fn container_payloads_round_trip_and_bad_ones_are_refused() {
        let mut h = Hash::default();
        h.insert(b"b", b"\x00\r\n");
        h.insert(b"a", b"");
        let list: List = [&b"x"[..], b"", b"\xff"].iter().map(|v| SmallBytes::from(*v)).collect();
        let mut set = Set::for_member(b"7");
        set.insert(b"7");
        set.insert(b"-3");
        let mut words = Set::for_member(b"w");
        words.insert(b"w");
        let mut z = ZSet::default();
        z.insert(b"m", 0.1);
        z.insert(b"n", f64::NEG_INFINITY);
        z.insert(b"o", -0.0);
        for value in [
            h.into_value(),
            list.into_value(),
            set.into_value(),
            words.into_value(),
            z.into_value(),
        ] {
            let payload = container_payload(&value);
            let back = parse_container(value.type_name().as_bytes(), &payload).expect("parses");
            assert_eq!(container_payload(&back), payload, "{}", value.type_name());
            assert_eq!(back.encoding(), value.encoding());
            // Cut anywhere inside: refused.
            for cut in 1..payload.len() {
                let whole = parse_container(value.type_name().as_bytes(), &payload[..cut])
                    .map(|v| container_payload(&v) == payload[..cut]);
                assert_ne!(whole, Some(false), "{} cut at {cut}", value.type_name());
            }
        }
        assert!(
            parse_container(b"hash", &[1, 0, 0, 0, b'f']).is_none(),
            "a field without its value"
        );
        assert!(parse_container(b"nosuch", &[1, 0, 0, 0, b'f']).is_none());
        assert!(parse_container(b"list", &[]).is_none(), "no empty container");
        let nan = f64::NAN.to_bits().to_le_bytes();
        let mut bad = vec![1, 0, 0, 0, b'm', 8, 0, 0, 0];
        bad.extend_from_slice(&nan);
        assert!(parse_container(b"zset", &bad).is_none(), "a NaN score");
    }

    #[test]
    fn a_record_is_whole_or_torn_at_every_length_and_bad_when_damaged() {
        let mut rec = Vec::new();
        encode(&mut rec, &[b"RL.SET", b"0", b"key", b"", b"1764000000000", b"7"]);
        for n in 0..rec.len() {
            assert!(
                matches!(parse_record(&rec[..n]), Parsed::Torn { .. }),
                "prefix of {n} bytes"
            );
        }
        assert!(matches!(parse_record(&rec), Parsed::Record { len, .. } if len == rec.len()));
        for at in memchr::memchr2_iter(b'\r', b'\n', &rec) {
            let mut bad = rec.clone();
            for damage in [b'0', b'X'] {
                bad[at] = damage;
                assert!(matches!(parse_record(&bad), Parsed::Bad { .. }), "{at}: {damage}");
            }
        }
    }
}
