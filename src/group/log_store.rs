//! The group's log and vote on disk, under `<dir>/raft`.
//!
//! `log` is one segment file of records `[u32 LE length][u64 LE xxh3 of
//! the body][bincode body]`; a record is an entry, a truncation (entries
//! from an index on are void) or a purge (entries up to a log id are in a
//! snapshot). Loading replays them in order; a record cut short or whose
//! checksum does not match ends the file (what a crash mid-write leaves),
//! and the file is truncated there. Entries live in memory too (their
//! number is bounded by the snapshot policy), so reads never touch disk.
//!
//! Appends go to one writer thread: it takes every batch that is waiting,
//! writes them with one `write`, one `fdatasync`, and only then tells
//! openraft they are durable (group commit without delaying any ack past
//! its fsync). When a purge finds the file grown well past what is live,
//! the thread rewrites it (temp file, fsync, rename). The vote is its own
//! small file, written and fsynced (with a rename) before `save_vote`
//! returns.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::TypeConfig;

/// Rewrite the log file once it is this big and mostly dead.
const REWRITE_AT: u64 = 64 << 20;

#[derive(Serialize, Deserialize)]
enum Record<E> {
    Entry(E),
    Truncate(u64),
    Purge(LogId<u64>),
}

fn encode<E: Serialize>(buf: &mut Vec<u8>, record: &Record<E>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 12]);
    bincode::serialize_into(&mut *buf, record).expect("a log record serialises");
    let len = (buf.len() - start - 12) as u32;
    let sum = xxhash_rust::xxh3::xxh3_64(&buf[start + 12..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 12].copy_from_slice(&sum.to_le_bytes());
}

#[derive(Default)]
struct State {
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
}

enum Job {
    Write(Vec<u8>, Option<LogFlushed<TypeConfig>>),
    /// Replace the whole file with this content.
    Rewrite(Vec<u8>),
}

struct Inner {
    state: Mutex<State>,
    writer: Mutex<std::sync::mpsc::Sender<Job>>,
    dir: PathBuf,
    /// Bytes in the log file (as sent to the writer).
    size: AtomicU64,
}

/// The log storage handed to openraft (and its reader: a clone).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Write `data` to `path` atomically and durably.
pub fn write_durably(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// `data` with its xxh3 appended (the vote and snapshot files).
pub fn with_checksum(mut data: Vec<u8>) -> Vec<u8> {
    let sum = xxhash_rust::xxh3::xxh3_64(&data);
    data.extend_from_slice(&sum.to_le_bytes());
    data
}

/// The body of a file written by [`with_checksum`], if intact.
pub fn checked(data: &[u8]) -> Option<&[u8]> {
    let (body, sum) = data.split_at_checked(data.len().checked_sub(8)?)?;
    (xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() == sum).then_some(body)
}

fn io_error(e: impl ToString) -> StorageError<u64> {
    StorageIOError::write_logs(&io::Error::other(e.to_string())).into()
}

impl LogStore {
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        let mut state = State::default();
        match std::fs::read(dir.join("vote")) {
            Ok(data) => {
                let body = checked(&data).ok_or_else(|| io::Error::other("the raft vote file is corrupt"))?;
                state.vote = Some(bincode::deserialize(body).map_err(io::Error::other)?);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let path = dir.join("log");
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut pos = 0;
        while pos + 12 <= data.len() {
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let sum = u64::from_le_bytes(data[pos + 4..pos + 12].try_into().expect("8 bytes"));
            let Some(body) = data.get(pos + 12..pos + 12 + len) else {
                break;
            };
            if xxhash_rust::xxh3::xxh3_64(body) != sum {
                break;
            }
            let record: Record<Entry<TypeConfig>> = match bincode::deserialize(body) {
                Ok(r) => r,
                Err(_) => break,
            };
            match record {
                Record::Entry(e) => {
                    state.entries.insert(e.log_id.index, e);
                }
                Record::Truncate(since) => {
                    state.entries.split_off(&since);
                }
                Record::Purge(id) => {
                    state.entries = state.entries.split_off(&(id.index + 1));
                    state.last_purged = Some(id);
                }
            }
            pos += 12 + len;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        if pos < data.len() {
            warn!(
                at = pos,
                size = data.len(),
                "raft log: cutting a torn or corrupt tail off {}",
                path.display()
            );
            file.set_len(pos as u64)?;
            file.sync_all()?;
        }
        info!(
            entries = state.entries.len(),
            last = ?state.entries.keys().next_back(),
            "raft log loaded from {}",
            path.display()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let writer_dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("redlockd-raftlog".into())
            .spawn(move || write_loop(file, &writer_dir, rx))?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                writer: Mutex::new(tx),
                dir: dir.to_path_buf(),
                size: AtomicU64::new(pos as u64),
            }),
        })
    }

    /// No vote and no entry: a node that never ran.
    pub fn is_empty(&self) -> bool {
        let s = self.inner.state.lock();
        s.vote.is_none() && s.entries.is_empty() && s.last_purged.is_none()
    }

    fn send(&self, job: Job) -> Result<(), StorageError<u64>> {
        self.inner
            .writer
            .lock()
            .send(job)
            .map_err(|_| io_error("the raft log writer stopped"))
    }
}

/// The writer thread: group commit, one fdatasync per gathered batch.
fn write_loop(mut file: File, dir: &Path, rx: std::sync::mpsc::Receiver<Job>) {
    let path = dir.join("log");
    while let Ok(first) = rx.recv() {
        let mut buf = Vec::new();
        let mut callbacks = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(bytes, cb) => {
                    buf.extend_from_slice(&bytes);
                    callbacks.extend(cb);
                    next = rx.try_recv().ok();
                }
                Job::Rewrite(content) => {
                    let result = file
                        .write_all(&buf)
                        .and_then(|()| write_durably(dir, "log", &content))
                        .and_then(|()| OpenOptions::new().append(true).open(&path));
                    buf.clear();
                    match result {
                        Ok(f) => {
                            file = f;
                            info!(size = content.len(), "raft log rewritten");
                        }
                        Err(e) => warn!("raft log rewrite failed: {e}"),
                    }
                    next = rx.try_recv().ok();
                }
            }
        }
        let result = file.write_all(&buf).and_then(|()| file.sync_data());
        if let Err(e) = &result {
            warn!("raft log write failed: {e}");
        }
        for cb in callbacks {
            cb.log_io_completed(match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            });
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let s = self.inner.state.lock();
        Ok(s.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let s = self.inner.state.lock();
        let last = s
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(s.last_purged);
        Ok(LogState {
            last_purged_log_id: s.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let data = with_checksum(bincode::serialize(vote).map_err(io_error)?);
        write_durably(&self.inner.dir, "vote", &data)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))?;
        self.inner.state.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.inner.state.lock().vote)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut buf = Vec::new();
        {
            let mut s = self.inner.state.lock();
            for e in entries {
                encode(&mut buf, &Record::Entry(&e));
                s.entries.insert(e.log_id.index, e);
            }
        }
        self.inner.size.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.send(Job::Write(buf, Some(callback)))
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut buf = Vec::new();
        encode::<()>(&mut buf, &Record::Truncate(log_id.index));
        self.inner.state.lock().entries.split_off(&log_id.index);
        self.inner.size.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.send(Job::Write(buf, None))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut buf = Vec::new();
        encode::<()>(&mut buf, &Record::Purge(log_id));
        let rewrite = {
            let mut s = self.inner.state.lock();
            s.entries = s.entries.split_off(&(log_id.index + 1));
            s.last_purged = Some(log_id);
            (self.inner.size.load(Ordering::Relaxed) > REWRITE_AT).then(|| {
                let mut content = buf.clone();
                for e in s.entries.values() {
                    encode(&mut content, &Record::Entry(e));
                }
                content
            })
        };
        match rewrite {
            Some(content) if (content.len() as u64) < REWRITE_AT / 2 => {
                self.inner.size.store(content.len() as u64, Ordering::Relaxed);
                self.send(Job::Rewrite(content))
            }
            _ => {
                self.inner.size.fetch_add(buf.len() as u64, Ordering::Relaxed);
                self.send(Job::Write(buf, None))
            }
        }
    }
}
