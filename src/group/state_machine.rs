//! Applying the log to the keyspace, and snapshots of it.
//!
//! The state machine is this node's keyspace (`Shared::keyspace`): an
//! entry's command runs through the ordinary dispatch on a synthetic
//! client, with the store's clock pinned to the entry's time (see the
//! [module doc](super)). Before entry `i` the fence counter is raised to
//! `i << 10`, so fences follow the log order across leaders.
//!
//! A snapshot is the keyspace in the append-only file's record format
//! (`*N` arrays, [`crate::protocol::encode_command`]), one shard at a time:
//! first `RL.GROUP <time µs> <wall µs> <fence counter>`, then one
//! `RL.KEY <db> <key> <value> <deadline> <fence>` per live key, deadlines in
//! the group's logical µs so that every node restores them exactly, then
//! the coordination state that the log replicates
//! ([`crate::coord::Coord::snapshot_records`], sorted):
//! - `RL.LOCKOPT <db> <key> <token> <fence> <delay ms> <client>:<grace ms>`:
//!   a held lock's options (`DELAY`; `ONCLOSE`'s client id and grace),
//!   an empty field for one not given (a record has at most 7 fields);
//! - `RL.PENDING <db> <key> <token> <fence> <grace ms> <at>`: a
//!   client-bound lock released at `at` unless extended first;
//! - `RL.DELAYED <db> <key> <until>`: a lock-delay running until `until`;
//! - `RL.SEM <db> <key> <limit> <token> <fence> <deadline>`: a semaphore
//!   holder (the append-only file's `RL.SEMSET` has a Unix time in ms;
//!   here the deadline is in logical µs, like `RL.KEY`'s);
//!
//! then `RL.SESSION <node> <seq> <reply>` for each remembered write (the
//! session replies are replicated state too). Waiter queues are not in
//! it: a waiter is a connection to one node. Before serialising, keys
//! whose deadline has passed are reclaimed, so that a lock that expired
//! with a lock-delay is in it as its `RL.DELAYED`, on whichever node the
//! snapshot is taken. It is
//! serialised when openraft asks for a builder (between two applies, so it
//! matches the last applied entry) and written to `<dir>/raft/snapshot`
//! with its openraft metadata and a checksum; a restarted node loads it
//! and replays the log after it.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Cursor};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{BasicNode, Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership};
use parking_lot::Mutex;
use smallvec::SmallVec;
use tracing::info;

use super::clock::{GroupTime, reclaim};
use super::log_store::{checked, with_checksum, write_durably};
use super::waiters::{Touched, Waiters, touched_keys};
use super::{Op, Reply, Request, TypeConfig};
use crate::commands::{ClientState, execute_replicated};
use crate::instance::{ClientHandle, Shared};
use crate::persist::aof::{Parsed, container_payload, parse_container, parse_record};
use crate::protocol::{ReplyBuf, encode_command};
use crate::store::Value;
use crate::store::clock::pin;

#[derive(Clone)]
struct Stored {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Arc<Vec<u8>>,
}

pub struct StateMachine {
    shared: Arc<Shared>,
    time: Arc<GroupTime>,
    /// The leader's blocked acquires: told of the keys each entry touches.
    waiters: Arc<Waiters>,
    client: ClientState,
    out: ReplyBuf,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    current: Arc<Mutex<Option<Stored>>>,
    dir: PathBuf,
    /// The replies of the last [`SESSIONS`] writes that carried a session
    /// id, oldest first: a copy of one applies as its first reply.
    sessions: HashMap<(u64, u64), Vec<u8>>,
    session_order: VecDeque<(u64, u64)>,
}

/// How many session replies the state machine keeps (a retry comes within
/// seconds; this is many seconds of writes).
const SESSIONS: usize = 100_000;

fn synthetic_client() -> ClientState {
    let addr = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut client = ClientState::new(Arc::new(ClientHandle::new(0, addr, addr)), true);
    client.replicated = true;
    client
}

fn read_error(e: impl ToString) -> StorageError<u64> {
    StorageIOError::read_snapshot(None, &io::Error::other(e.to_string())).into()
}

impl StateMachine {
    /// The state machine, loaded from `<dir>/snapshot` if there is one.
    pub fn open(
        shared: Arc<Shared>,
        time: Arc<GroupTime>,
        waiters: Arc<Waiters>,
        dir: &Path,
    ) -> io::Result<StateMachine> {
        let mut sm = StateMachine {
            shared,
            time,
            waiters,
            client: synthetic_client(),
            out: ReplyBuf::new(0),
            applied: None,
            membership: StoredMembership::default(),
            current: Arc::new(Mutex::new(None)),
            dir: dir.to_path_buf(),
            sessions: HashMap::new(),
            session_order: VecDeque::new(),
        };
        match std::fs::read(dir.join("snapshot")) {
            Ok(file) => {
                let body = checked(&file).ok_or_else(|| io::Error::other("the raft snapshot file is corrupt"))?;
                let (meta, data): (SnapshotMeta<u64, BasicNode>, Vec<u8>) =
                    bincode::deserialize(body).map_err(io::Error::other)?;
                sm.load(&meta, data)?;
                info!(last = ?meta.last_log_id, "raft snapshot loaded");
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(sm)
    }

    pub fn has_snapshot(&self) -> bool {
        self.current.lock().is_some()
    }

    fn apply_request(&mut self, index: u64, req: &Request) -> Reply {
        let (now, wall) = self.time.advance(req.now_us, req.wall_us);
        if let Some(first) = req.session.and_then(|s| self.sessions.get(&s)) {
            return Reply(first.clone(), Vec::new());
        }
        let reply = self.run_request(index, req, now, wall);
        if let Some(session) = req.session {
            self.remember(session, reply.0.clone());
        }
        reply
    }

    fn remember(&mut self, session: (u64, u64), reply: Vec<u8>) {
        self.sessions.insert(session, reply);
        self.session_order.push_back(session);
        while self.session_order.len() > SESSIONS {
            if let Some(old) = self.session_order.pop_front() {
                self.sessions.remove(&old);
            }
        }
    }

    fn run_request(&mut self, index: u64, req: &Request, now: u64, wall: i64) -> Reply {
        if let Op::AsClient(id, op) = &req.op {
            let inner = Request {
                op: (**op).clone(),
                ..req.clone()
            };
            self.set_client_id(*id);
            let reply = self.run_request(index, &inner, now, wall);
            self.set_client_id(0);
            return reply;
        }
        let keyspace = &self.shared.keyspace;
        keyspace.fences.raise_to(index << 10);
        let _pinned = pin(now, wall);
        self.client.db = (req.db as usize).min(keyspace.dbs.len() - 1);
        self.out.buf.clear();
        self.out.resp3 = req.resp3;
        match &req.op {
            Op::Command(args) if !args.is_empty() => {
                let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
                execute_replicated(&self.shared, &mut self.client, &mut self.out, &argv);
                self.touched(req.db, &argv);
            }
            Op::Command(_) => {}
            Op::Multi(commands) => {
                execute_replicated(&self.shared, &mut self.client, &mut self.out, &[b"MULTI"]);
                for args in commands.iter().filter(|a| !a.is_empty()) {
                    let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
                    execute_replicated(&self.shared, &mut self.client, &mut self.out, &argv);
                }
                self.out.buf.clear();
                execute_replicated(&self.shared, &mut self.client, &mut self.out, &[b"EXEC"]);
                for args in commands.iter().filter(|a| !a.is_empty()) {
                    let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
                    self.touched(req.db, &argv);
                }
            }
            // Expiry, then the coordination timers (lock-delays ending,
            // client-bound releases, semaphore leases), at this entry's time
            // on every node. `due` hands nothing to a waiter here: a group's
            // waiters queue at its leader (`super::waiters`), which is told
            // next; the rest of `due` follows the replicated state only.
            Op::Tick => {
                reclaim(keyspace, now);
                self.shared.coord.due(now);
                self.touched_all();
            }
            // Unwrapped before: see above.
            Op::AsClient(..) => {}
            Op::ClientClosed(id) => {
                self.shared.coord.client_closed(*id);
                self.touched_all();
            }
            // A batch is unpacked by `apply`; one nested in another is not made.
            Op::Batch(_) => {}
        }
        Reply(self.out.buf.to_vec(), Vec::new())
    }

    /// The synthetic client's id (its handle is its own: no other owner).
    fn set_client_id(&mut self, id: u64) {
        if let Some(handle) = Arc::get_mut(&mut self.client.handle) {
            handle.id = id;
        }
    }

    /// Any key may have been freed (expiry, a closed client's locks).
    fn touched_all(&self) {
        if self.waiters.any() {
            self.waiters.touched(0, Touched::Any);
        }
    }

    /// Tell the leader's waiters which keys a command of `db` touched.
    fn touched(&self, db: u32, argv: &[&[u8]]) {
        if self.waiters.any() {
            self.waiters.touched(db, touched_keys(argv));
        }
    }

    /// The keyspace and the coordination state as snapshot records (see
    /// the module doc).
    fn serialise(&self) -> Vec<u8> {
        let keyspace = &self.shared.keyspace;
        let (now, wall) = self.time.applied();
        // An expired key's lock-delay starts when it is reclaimed (the
        // store's refill hook): do it now, as the next tick would.
        reclaim(keyspace, now);
        let mut buf = Vec::new();
        let header = [now.to_string(), wall.to_string(), keyspace.fences.current().to_string()];
        encode_command(
            &mut buf,
            &[
                b"RL.GROUP",
                header[0].as_bytes(),
                header[1].as_bytes(),
                header[2].as_bytes(),
            ],
        );
        for (i, db) in keyspace.dbs.iter().enumerate() {
            let db_no = i.to_string();
            for shard in 0..db.shard_count() {
                db.for_each_in_shard(shard, now, |key, e| {
                    let (deadline, fence) = (e.deadline().to_string(), e.fence().to_string());
                    // A string as itself, a container as the AOF's payload of it.
                    let payload = match &e.value {
                        Value::Str(v) => std::borrow::Cow::Borrowed(&v[..]),
                        container => std::borrow::Cow::Owned(container_payload(container)),
                    };
                    encode_command(
                        &mut buf,
                        &[
                            b"RL.KEY",
                            db_no.as_bytes(),
                            key,
                            &payload,
                            deadline.as_bytes(),
                            fence.as_bytes(),
                            e.value.type_name().as_bytes(),
                        ],
                    );
                });
            }
        }
        self.shared.coord.snapshot_records(now, &mut buf);
        for session in &self.session_order {
            let (node, seq) = (session.0.to_string(), session.1.to_string());
            let reply = self.sessions.get(session).map_or(&[][..], |r| &r[..]);
            encode_command(&mut buf, &[b"RL.SESSION", node.as_bytes(), seq.as_bytes(), reply]);
        }
        buf
    }

    /// Replace the keyspace and the coordination state with a snapshot's.
    fn load(&mut self, meta: &SnapshotMeta<u64, BasicNode>, data: Vec<u8>) -> io::Result<()> {
        let shared = self.shared.clone();
        let keyspace = &shared.keyspace;
        let coord = &shared.coord;
        let bad = |why: &str| io::Error::other(format!("bad raft snapshot: {why}"));
        let num = |a: &[u8]| std::str::from_utf8(a).ok().and_then(|s| s.parse::<i64>().ok());
        // Deadlines and fences are u64 (a far deadline has its top bit set).
        let unum = |a: &[u8]| std::str::from_utf8(a).ok().and_then(|s| s.parse::<u64>().ok());
        // An optional field: empty for none.
        let opt = |a: &[u8]| if a.is_empty() { Some(None) } else { unum(a).map(Some) };
        let (now, _) = self.time.applied();
        for db in &keyspace.dbs {
            db.lock_all(now).clear();
        }
        coord.clear_replicated();
        let db_index = |db: u64| {
            (db < keyspace.dbs.len() as u64)
                .then_some(db as usize)
                .ok_or_else(|| bad("bad database"))
        };
        self.sessions.clear();
        self.session_order.clear();
        let mut pos = 0;
        let mut now = now;
        while pos < data.len() {
            let Parsed::Record { args, len } = parse_record(&data[pos..]) else {
                return Err(bad("unreadable record"));
            };
            match args.first().copied() {
                Some(b"RL.GROUP") if args.len() == 4 => {
                    let (t, w, f) = (num(args[1]), num(args[2]), num(args[3]));
                    let (Some(t), Some(w), Some(f)) = (t, w, f) else {
                        return Err(bad("bad header"));
                    };
                    now = t as u64;
                    self.time.reset(now, w);
                    keyspace.fences.set(f as u64);
                }
                Some(b"RL.KEY") if args.len() == 7 => {
                    let (Some(db), Some(deadline), Some(fence)) = (num(args[1]), unum(args[4]), unum(args[5])) else {
                        return Err(bad("bad key record"));
                    };
                    let db = keyspace.dbs.get(db as usize).ok_or_else(|| bad("bad database"))?;
                    let mut locked = db.lock_keys(std::iter::once(args[2]), now);
                    if args[6] == b"string" {
                        let _ = locked.set(args[2], args[3], deadline);
                    } else {
                        let value = parse_container(args[6], args[3]).ok_or_else(|| bad("bad container"))?;
                        if let Ok(place) = locked.place(args[2]) {
                            place.set_value(value, deadline);
                        }
                    }
                    if let Ok(Some(e)) = locked.get_mut(args[2]) {
                        e.set_fence(fence);
                    }
                }
                Some(b"RL.LOCKOPT") if args.len() == 7 => {
                    let bound = match args[6].iter().position(|&c| c == b':') {
                        None if args[6].is_empty() => Some(None),
                        None => None,
                        Some(at) => unum(&args[6][..at]).zip(unum(&args[6][at + 1..])).map(Some),
                    };
                    let (Some(db), Some(fence), Some(delay), Some(bound)) =
                        (unum(args[1]), unum(args[4]), opt(args[5]), bound)
                    else {
                        return Err(bad("bad lock options record"));
                    };
                    coord.restore_lock_options(db_index(db)?, args[2], args[3], fence, delay, bound);
                }
                Some(b"RL.PENDING") if args.len() == 7 => {
                    let (Some(db), Some(fence), Some(grace), Some(at)) =
                        (unum(args[1]), unum(args[4]), unum(args[5]), unum(args[6]))
                    else {
                        return Err(bad("bad pending release record"));
                    };
                    coord.restore_pending(db_index(db)?, args[2], args[3], fence, grace, at);
                }
                Some(b"RL.DELAYED") if args.len() == 4 => {
                    let (Some(db), Some(until)) = (unum(args[1]), unum(args[3])) else {
                        return Err(bad("bad lock-delay record"));
                    };
                    coord.restore_delayed(db_index(db)?, args[2], until);
                }
                Some(b"RL.SEM") if args.len() == 7 => {
                    let (Some(db), Some(limit), Some(fence), Some(deadline)) =
                        (unum(args[1]), unum(args[3]), unum(args[5]), unum(args[6]))
                    else {
                        return Err(bad("bad semaphore record"));
                    };
                    keyspace
                        .sems
                        .restore(db_index(db)?, args[2], args[4], fence, deadline, limit);
                }
                Some(b"RL.SESSION") if args.len() == 4 => {
                    let (Some(node), Some(seq)) = (num(args[1]), num(args[2])) else {
                        return Err(bad("bad session record"));
                    };
                    self.remember((node as u64, seq as u64), args[3].to_vec());
                }
                _ => return Err(bad("unknown record")),
            }
            pos += len;
        }
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.current.lock() = Some(Stored {
            meta: meta.clone(),
            data: Arc::new(data),
        });
        Ok(())
    }
}

fn save(dir: &Path, stored: &Stored) -> io::Result<()> {
    let body = bincode::serialize(&(&stored.meta, &*stored.data)).map_err(io::Error::other)?;
    write_durably(dir, "snapshot", &with_checksum(body))
}

/// Builds a snapshot already serialised between two applies.
pub struct Builder {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
    current: Arc<Mutex<Option<Stored>>>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let stored = Stored {
            meta: self.meta.clone(),
            data: Arc::new(std::mem::take(&mut self.data)),
        };
        let (dir, to_save) = (self.dir.clone(), stored.clone());
        tokio::task::spawn_blocking(move || save(&dir, &to_save))
            .await
            .map_err(read_error)?
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(Some(stored.meta.signature()), &e)))?;
        info!(last = ?stored.meta.last_log_id, size = stored.data.len(), "raft snapshot written");
        *self.current.lock() = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data.to_vec())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            replies.push(match &entry.payload {
                EntryPayload::Blank => Reply::default(),
                EntryPayload::Normal(Request {
                    op: Op::Batch(requests),
                    ..
                }) => {
                    let replies = requests.iter().map(|r| self.apply_request(entry.log_id.index, r).0);
                    Reply(Vec::new(), replies.collect())
                }
                EntryPayload::Normal(req) => self.apply_request(entry.log_id.index, req),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    Reply::default()
                }
            });
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        let last = self.applied;
        Builder {
            meta: SnapshotMeta {
                last_log_id: last,
                last_membership: self.membership.clone(),
                snapshot_id: format!(
                    "{}-{}",
                    last.map_or(0, |l| l.leader_id.term),
                    last.map_or(0, |l| l.index)
                ),
            },
            data: self.serialise(),
            current: self.current.clone(),
            dir: self.dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        self.load(meta, snapshot.into_inner()).map_err(read_error)?;
        let stored = self.current.lock().clone().expect("just loaded");
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || save(&dir, &stored))
            .await
            .map_err(read_error)?
            .map_err(read_error)?;
        info!(last = ?meta.last_log_id, "raft snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.current.lock().clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data.to_vec())),
        }))
    }
}
