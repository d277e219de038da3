//! The append-only file: record encoding, the writer thread (group commit),
//! background rewrite, and replay at start.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::protocol::decode::{ArgSource, Decoder, Limits, MAX_ARGS};
use crate::protocol::encode_command as encode;
use crate::store::{Clock, Entry, Keyspace, NO_DEADLINE};

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

/// The record of one key's state (its absence when `entry` is None).
pub fn key_record(out: &mut Vec<u8>, db: usize, key: &[u8], entry: Option<&Entry>, now: u64) {
    let db = db.to_string();
    match entry {
        Some(e) => {
            let unix_ms = if e.has_deadline() {
                Clock::unix_ms_of(e.deadline(), now).max(1)
            } else {
                0
            };
            let (unix_ms, fence) = (unix_ms.to_string(), e.fence.to_string());
            encode(
                out,
                &[
                    b"RL.SET",
                    db.as_bytes(),
                    key,
                    &e.value,
                    unix_ms.as_bytes(),
                    fence.as_bytes(),
                ],
            );
        }
        None => encode(out, &[b"RL.DEL", db.as_bytes(), key]),
    }
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

/// Rewrite thresholds.
#[derive(Debug, Clone, Copy)]
pub struct RewritePolicy {
    pub percentage: u64,
    pub min_size: u64,
}

impl Aof {
    /// Open (creating) the log at `path`, replay it into `keyspace`, and
    /// start the writer thread.
    pub fn open(
        path: &Path,
        policy: Fsync,
        rewrite: RewritePolicy,
        keyspace: Arc<Keyspace>,
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
            rewrite,
            rewriting: None,
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
}

impl Writer {
    fn run(mut self) {
        let mut last_sync = Instant::now();
        let mut unsynced = false;
        loop {
            let (chunk, end, stop, rewrite_requested) = {
                let mut p = self.aof.pending.lock();
                if p.buf.is_empty() && !p.stop && !p.rewrite_requested {
                    self.aof.wake.wait_for(
                        &mut p,
                        Duration::from_millis(if self.rewriting.is_some() { 10 } else { 250 }),
                    );
                }
                let requested = std::mem::take(&mut p.rewrite_requested);
                (std::mem::take(&mut p.buf), p.appended, p.stop, requested)
            };
            if !chunk.is_empty() {
                if let Err(e) = self.file.write_all(&chunk) {
                    // Without a durable log the lock guarantees are void: stop.
                    tracing::error!("cannot write the append-only file: {e}; exiting");
                    std::process::exit(1);
                }
                unsynced = true;
                self.aof
                    .stats
                    .current_size
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                if let Some(r) = self.rewriting.as_mut() {
                    r.tail.extend_from_slice(&chunk);
                }
            }
            let sync_now = match self.aof.policy {
                Fsync::Always => unsynced,
                Fsync::EverySec => unsynced && (last_sync.elapsed() >= Duration::from_secs(1) || stop),
                Fsync::No => stop && unsynced,
            };
            if sync_now {
                if let Err(e) = self.file.sync_data() {
                    tracing::error!("cannot fsync the append-only file: {e}; exiting");
                    std::process::exit(1);
                }
                last_sync = Instant::now();
                unsynced = false;
            }
            self.aof.durable.send_replace(end);
            if self.rewriting.as_ref().is_some_and(|r| r.snapshot.is_finished()) {
                self.finish_rewrite();
            }
            let size = self.aof.stats.current_size.load(Ordering::Relaxed);
            let base = self.aof.stats.base_size.load(Ordering::Relaxed).max(1);
            let grown = size >= self.rewrite.min_size
                && self.rewrite.percentage > 0
                && size.saturating_sub(base) * 100 / base >= self.rewrite.percentage;
            if self.rewriting.is_none() && (rewrite_requested || grown) && !stop {
                self.start_rewrite();
            }
            if stop {
                self.aof.stopped.store(true, Ordering::Release);
                if let Some(r) = self.rewriting.take() {
                    let _ = r.snapshot.join();
                    let _ = std::fs::remove_file(&r.temp);
                }
                return;
            }
        }
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
                self.aof.stats.current_size.store(size, Ordering::Relaxed);
                self.aof.stats.base_size.store(size, Ordering::Relaxed);
                self.aof.stats.rewrites.fetch_add(1, Ordering::Relaxed);
                self.aof.stats.last_rewrite_ok.store(true, Ordering::Relaxed);
                info!(size, "background append-only file rewrite finished");
            }
            Err(e) => {
                warn!("append-only file rewrite failed: {e}");
                let _ = std::fs::remove_file(&r.temp);
                self.aof.stats.last_rewrite_ok.store(false, Ordering::Relaxed);
            }
        }
        self.aof.stats.rewrite_in_progress.store(false, Ordering::SeqCst);
    }
}

/// Write every live key, one shard at a time, then the fence counter.
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
    fence_record(&mut buf, keyspace.fences.current());
    file.write_all(&buf)?;
    Ok(file)
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn bad(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

/// Replay the log into the keyspace; returns its (possibly truncated) size.
/// A torn last record is cut off with a warning; corruption elsewhere is an
/// error (the server refuses to start rather than forget locks).
fn replay(path: &Path, keyspace: &Keyspace) -> std::io::Result<u64> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    let limits = Limits {
        max_bulk_len: u64::MAX,
        max_args: MAX_ARGS,
        authenticated: true,
    };
    let mut decoder = Decoder::new();
    let mut pos = 0;
    let (mut records, mut expired, mut max_fence) = (0u64, 0u64, 0u64);
    let wall = Clock::wall_ms();
    while pos < data.len() {
        let frame = match decoder.decode(&data[pos..], &limits) {
            Ok(Some(f)) if f.source == ArgSource::Input => f,
            Ok(None) => break,
            _ => return Err(bad(format!("bad record at offset {pos} of {}", path.display()))),
        };
        let base = &data[pos..];
        let args: Vec<&[u8]> = decoder.args().iter().map(|r| &base[r.clone()]).collect();
        let db_of = |a: &[u8]| {
            parse_u64(a)
                .map(|d| d as usize)
                .filter(|d| *d < keyspace.dbs.len())
                .ok_or_else(|| bad(format!("bad database index at offset {pos}")))
        };
        let now = keyspace.clock.now_us();
        match args.first().copied() {
            Some(b"RL.SET") if args.len() == 6 => {
                let db = db_of(args[1])?;
                let unix_ms = parse_u64(args[4]).ok_or_else(|| bad(format!("bad expiry at offset {pos}")))? as i64;
                let fence = parse_u64(args[5]).ok_or_else(|| bad(format!("bad fence at offset {pos}")))?;
                max_fence = max_fence.max(fence);
                let mut locked = keyspace.dbs[db].lock_keys(std::iter::once(args[2]), now);
                if unix_ms != 0 && unix_ms <= wall {
                    expired += 1;
                    let _ = locked.remove(args[2]);
                } else {
                    let deadline = if unix_ms == 0 {
                        NO_DEADLINE
                    } else {
                        Clock::deadline_from_unix_ms(unix_ms, now)
                    };
                    let _ = locked.set(args[2], args[3], deadline);
                    if let Ok(Some(e)) = locked.get_mut(args[2]) {
                        e.fence = fence;
                    }
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
            Some(b"RL.FENCE") if args.len() == 2 => {
                max_fence = max_fence.max(parse_u64(args[1]).ok_or_else(|| bad(format!("bad fence at offset {pos}")))?);
            }
            _ => return Err(bad(format!("unknown record at offset {pos} of {}", path.display()))),
        }
        records += 1;
        pos += frame.len;
    }
    if pos < data.len() {
        warn!(
            "{}: the last record is incomplete ({} bytes after offset {pos}); truncating it, as after a crash mid-write",
            path.display(),
            data.len() - pos
        );
        file.set_len(pos as u64)?;
        file.seek(SeekFrom::End(0))?;
        file.sync_all()?;
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
