//! Blocking acquires in a group: `LOCK.ACQUIRE ... WAIT ms` and
//! `SEM.ACQUIRE ... WAIT ms`. The queues live on the leader.
//!
//! ```text
//! client ─▶ node N: wait(id) ─(N follows: Rpc::Wait over the group link)─▶ leader: queue of the key
//! leader: an entry touched the key, or its holder's deadline came ─▶ propose the head's acquire (no WAIT)
//!         fence ─▶ the head's reply │ nil ─▶ it stays the head
//! ```
//!
//! A waiter is the acquire's argv without its WAIT, under an id (node,
//! sequence) that names it on every attempt. The leader keeps a FIFO queue
//! per key and tries only the head: when an applied entry names the key
//! ([`Waiters::touched`], from the state machine), when a timer set at the
//! holder's deadline or at the end of a lock-delay fires, and when a waiter
//! arrives. A try is the plain acquire proposed as a log entry, so the
//! grant and its fence come from the log like any write's, and a try that
//! finds the key taken (by an entry ordered before it) changes nothing.
//! One try per key is in flight at a time; an entry that touches the key
//! meanwhile (other than the try's own) makes the key be looked at again
//! when the try ends (`touches`), so no release is missed.
//!
//! Guarantees: a waiter is granted only by a committed entry (never while
//! the lock is held: the state machine decides); waiters are granted in
//! their arrival order at the leader; a waiter's end (its WAIT ran out, its
//! connection closed, CLIENT UNBLOCK) takes it out of the queue
//! ([`Waiters::cancel`]), and a grant that raced with its end is released
//! again by the leader. What a group does not give: a plain acquire
//! (without WAIT) may take a key between a release and the head's try
//! (the entries are ordered, and neither knows of the other), and when the
//! leader changes the waiters queue again at the new leader, in the order
//! they reach it (each node sends its own again, with the same id).
//! A waiter whose grant's reply was lost with a leader asks again with the
//! same token, which the lock or semaphore already holds: the acquire then
//! answers its fence again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::debug;

use super::forward::{Outcome, binds_client, error_bytes, submit};
use super::network::{Rpc, RpcReply};
use super::{Group, Op};
use crate::commands::key_positions;
use crate::commands::table::{self, KeySpec};
use crate::coord::lists::Served;
use crate::coord::{Granted, Ticket, TicketKind, too_many_waiters};
use crate::store::clock::NO_DEADLINE;

/// A waiter's name: (node that took the command, sequence number).
pub type WaiterId = (u64, u64);

/// A blocking acquire, as the leader queues it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitRequest {
    pub id: WaiterId,
    /// Its client's group-wide id (an ONCLOSE grant is bound to it).
    pub client: u64,
    pub db: u32,
    pub resp3: bool,
    /// The acquire without its `WAIT ms`.
    pub args: Vec<Vec<u8>>,
}

/// How a wait at the leader ended.
#[derive(Debug, Serialize, Deserialize)]
pub enum WaitReply {
    /// The reply bytes of the acquire that granted it (or of its error).
    Reply(Vec<u8>),
    /// This node does not lead (any more): ask the leader.
    NotLeader,
}

/// The answer to [`Waiters::cancel`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Cancelled {
    /// It was still waiting: it never holds the key.
    Removed,
    /// Not queued here: granted (its reply is on its way) or never seen.
    NotFound,
}

/// How long a follower's call to the leader may wait for a grant: a wait
/// is cancelled by its own end, not by the link (whose timeouts close it).
const WAIT_CALL: Duration = Duration::from_secs(86_400 * 365);
/// How long a cancellation may take before the waiter's node releases by
/// token what it may have been granted.
const CANCEL_CALL: Duration = Duration::from_secs(1);
/// A try answered nil while the key looked free (something this node does
/// not model kept it): look again after this, not at once.
const RETRY: Duration = Duration::from_millis(10);

struct Waiter {
    id: WaiterId,
    client: u64,
    resp3: bool,
    args: Vec<Vec<u8>>,
    tx: oneshot::Sender<WaitReply>,
}

/// A head's try in flight.
struct Try {
    id: WaiterId,
    /// The session of every attempt of the try: it applies at most once.
    session: (u64, u64),
    resp3: bool,
    args: Vec<Vec<u8>>,
    op: Op,
}

#[derive(Default)]
struct KeyQueue {
    waiters: VecDeque<Waiter>,
    /// The waiter whose try is in flight.
    trying: Option<WaiterId>,
    /// Entries that touched the key during the try (its own is one).
    touches: u32,
    /// When a timer will look at the key again (group µs; 0: none set).
    timer_at: u64,
}

/// (database, key).
pub type QueueKey = (u32, Vec<u8>);

/// The leader's queues of blocked acquires.
#[derive(Default)]
pub struct Waiters {
    queues: Mutex<HashMap<QueueKey, KeyQueue>>,
    /// Waiters in all queues: the state machine skips [`Waiters::touched`]
    /// with one load while it is 0 (always, on a follower).
    count: AtomicUsize,
    group: OnceLock<Weak<Group>>,
}

/// What a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Lock,
    Sem,
    /// An element of a list (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH on one key).
    List,
}

impl Kind {
    pub fn of(args: &[Vec<u8>]) -> Kind {
        if args[0].eq_ignore_ascii_case(b"sem.acquire") {
            Kind::Sem
        } else if args[0].eq_ignore_ascii_case(b"lock.acquire") {
            Kind::Lock
        } else {
            Kind::List
        }
    }
}

/// Whether reply bytes are a nil: RESP2's bulk or array, RESP3's null (a
/// lock taken, a list still empty).
fn is_nil(bytes: &[u8]) -> bool {
    bytes == b"$-1\r\n" || bytes == b"*-1\r\n" || bytes == b"_\r\n"
}

/// Whether reply bytes grant something that must be given back when its
/// waiter is gone: a lock's or a slot's fence. (An element served to a
/// waiter that closed is gone, as in Redis when a client closes before
/// reading its reply.)
fn is_grant(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b':')
}

impl Waiters {
    pub fn set_group(&self, group: &Arc<Group>) {
        let _ = self.group.set(Arc::downgrade(group));
    }

    fn group(&self) -> Option<Arc<Group>> {
        self.group.get().and_then(Weak::upgrade)
    }

    /// Queue `req` here, as the leader; its reply when it is granted (or
    /// fails), or [`WaitReply::NotLeader`]. A request whose id is queued
    /// already (sent again after a lost link) keeps its place.
    pub fn enqueue(self: &Arc<Self>, req: WaitRequest) -> oneshot::Receiver<WaitReply> {
        let (tx, rx) = oneshot::channel();
        let Some(group) = self.group().filter(|g| g.leading_term().is_some()) else {
            let _ = tx.send(WaitReply::NotLeader);
            return rx;
        };
        if req.args.len() < 2 {
            let _ = tx.send(WaitReply::Reply(error_bytes("ERR syntax error")));
            return rx;
        }
        let key = (req.db, req.args[1].clone());
        let coord = &group.shared.coord;
        let mut queues = self.queues.lock();
        let queue = queues.entry(key.clone()).or_default();
        if let Some(w) = queue.waiters.iter_mut().find(|w| w.id == req.id) {
            w.tx = tx;
            return rx;
        }
        let refused = if queue.waiters.len() as u64 >= coord.max_waiters_per_key.load(Ordering::Relaxed) {
            Some(too_many_waiters(true))
        } else if self.count.load(Ordering::Relaxed) as u64 >= coord.max_waiters.load(Ordering::Relaxed) {
            Some(too_many_waiters(false))
        } else {
            None
        };
        if let Some(e) = refused {
            if queue.waiters.is_empty() && queue.trying.is_none() {
                queues.remove(&key);
            }
            let _ = tx.send(WaitReply::Reply(error_bytes(&e.text(""))));
            return rx;
        }
        queue.waiters.push_back(Waiter {
            id: req.id,
            client: req.client,
            resp3: req.resp3,
            args: req.args,
            tx,
        });
        self.count.fetch_add(1, Ordering::Relaxed);
        group.shared.locks.waiters.fetch_add(1, Ordering::Relaxed);
        drop(queues);
        self.look(&group, &key);
        rx
    }

    /// Take waiter `id` out of `key`'s queue.
    pub fn cancel(&self, id: WaiterId, db: u32, key: &[u8]) -> Cancelled {
        let mut queues = self.queues.lock();
        let qk = (db, key.to_vec());
        let Some(queue) = queues.get_mut(&qk) else {
            return Cancelled::NotFound;
        };
        let Some(at) = queue.waiters.iter().position(|w| w.id == id) else {
            return Cancelled::NotFound;
        };
        queue.waiters.remove(at);
        self.left(1);
        if queue.waiters.is_empty() && queue.trying.is_none() {
            queues.remove(&qk);
        }
        Cancelled::Removed
    }

    /// How many wait for `key` of `db` here.
    pub fn queue_len(&self, db: u32, key: &[u8]) -> usize {
        if !self.any() {
            return 0;
        }
        self.queues
            .lock()
            .get(&(db, key.to_vec()))
            .map_or(0, |q| q.waiters.len())
    }

    /// Whether any waiter is queued here.
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    fn left(&self, n: usize) {
        self.count.fetch_sub(n, Ordering::Relaxed);
        if let Some(group) = self.group() {
            group.shared.locks.waiters.fetch_sub(n as u64, Ordering::Relaxed);
        }
    }

    /// An applied entry ran a command on these keys of `db`: look at those
    /// with waiters.
    pub fn touched(self: &Arc<Self>, db: u32, keys: Touched<'_>) {
        let Some(group) = self.group() else { return };
        for key in self.queued(db, keys) {
            self.look(&group, &key);
        }
    }

    /// The queued keys among `keys` of `db`.
    fn queued(&self, db: u32, keys: Touched<'_>) -> Vec<QueueKey> {
        if !self.any() {
            return Vec::new();
        }
        let queues = self.queues.lock();
        match keys {
            Touched::Keys(keys) => keys
                .into_iter()
                .map(|k| (db, k.to_vec()))
                .filter(|k| queues.contains_key(k))
                .collect(),
            Touched::Any => queues.keys().cloned().collect(),
        }
    }

    /// The keys with waiters that `op` (of `db`) may free: a release, a
    /// delete, a script, a flush names them. See [`Waiters::try_heads`].
    pub fn may_free(&self, db: u32, op: &Op) -> Vec<QueueKey> {
        if !self.any() {
            return Vec::new();
        }
        let commands: Vec<&Vec<Vec<u8>>> = match op {
            Op::Command(args) => vec![args],
            Op::Multi(commands) => commands.iter().collect(),
            Op::AsClient(_, op) => return self.may_free(db, op),
            _ => return Vec::new(),
        };
        let mut keys = Vec::new();
        for args in commands.into_iter().filter(|a| may_free(a)) {
            let argv: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            keys.extend(self.queued(db, touched_keys(&argv)));
        }
        keys
    }

    /// The leader has just proposed a command that may free `keys`: their
    /// heads' tries are proposed right behind it, without waiting for it to
    /// apply, so that a hand-over costs no commit of its own (the try and
    /// the release usually share an entry). A try that comes too early (the
    /// key was not freed) answers nil and changes nothing.
    pub fn try_heads(self: &Arc<Self>, keys: Vec<QueueKey>) {
        let Some(group) = self.group() else { return };
        let mut queues = self.queues.lock();
        for key in keys {
            if let Some(queue) = queues.get_mut(&key)
                && queue.trying.is_none()
            {
                self.start_try(&group, queue, &key);
            }
        }
    }

    /// Every waiter is told to ask the leader (this node no longer leads).
    pub fn drain(&self) {
        let drained: Vec<KeyQueue> = self.queues.lock().drain().map(|(_, q)| q).collect();
        let n: usize = drained.iter().map(|q| q.waiters.len()).sum();
        if n > 0 {
            self.left(n);
        }
        for w in drained.into_iter().flat_map(|q| q.waiters) {
            let _ = w.tx.send(WaitReply::NotLeader);
        }
    }

    /// Try `key`'s head now if the key may be free, else plan a look at the
    /// time it may be; nothing while a try is in flight (but note it).
    fn look(self: &Arc<Self>, group: &Arc<Group>, key: &QueueKey) {
        let Some(term) = group.leading_term() else {
            self.drain();
            return;
        };
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(key) else { return };
        if queue.trying.is_some() {
            queue.touches += 1;
            return;
        }
        let before = queue.waiters.len();
        queue.waiters.retain(|w| !w.tx.is_closed());
        let gone = before - queue.waiters.len();
        let Some(head) = queue.waiters.front() else {
            queues.remove(key);
            drop(queues);
            if gone > 0 {
                self.left(gone);
            }
            return;
        };
        let now = group.time.peek(term);
        let free_at = free_at(group, key, Kind::of(&head.args), now);
        if free_at <= now {
            self.start_try(group, queue, key);
            drop(queues);
        } else if free_at != u64::MAX && (queue.timer_at == 0 || free_at < queue.timer_at) {
            queue.timer_at = free_at;
            drop(queues);
            self.look_at(group, key, Duration::from_micros(free_at - now));
        } else {
            drop(queues);
        }
        if gone > 0 {
            self.left(gone);
        }
    }

    /// Start the try of `queue`'s head, under the queues' lock.
    fn start_try(self: &Arc<Self>, group: &Arc<Group>, queue: &mut KeyQueue, key: &QueueKey) {
        let Some(head) = queue.waiters.front() else { return };
        queue.trying = Some(head.id);
        queue.touches = 0;
        let op = if binds_client(&head.args) {
            Op::AsClient(head.client, Box::new(Op::Command(head.args.clone())))
        } else {
            Op::Command(head.args.clone())
        };
        let (id, resp3, args) = (head.id, head.resp3, head.args.clone());
        // Queued for the log now, behind whatever the caller just proposed
        // (one session for every attempt of this try: applied at most once).
        let session = group.next_session();
        let first = group
            .leading_term()
            .map(|term| group.enqueue_proposal(term, Some(session), key.0, resp3, op.clone()));
        let (this, group, key) = (self.clone(), group.clone(), key.clone());
        tokio::spawn(async move {
            let first = match first {
                Some(first) => first.await,
                None => Err(Outcome::NotLeader),
            };
            let tried = Try {
                id,
                session,
                resp3,
                args,
                op,
            };
            this.finish_try(group, key, tried, first).await
        });
    }

    /// Look at `key` again after `after`.
    fn look_at(self: &Arc<Self>, group: &Arc<Group>, key: &QueueKey, after: Duration) {
        let (this, group, key) = (self.clone(), Arc::downgrade(group), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(group) = group.upgrade() else { return };
            if let Some(q) = this.queues.lock().get_mut(&key) {
                q.timer_at = 0;
            }
            this.look(&group, &key);
        });
    }

    /// Propose the head's acquire and answer it, or keep it waiting.
    /// The try's first attempt ended with `first`: attempt again while its
    /// fate is unknown, then answer the head or keep it waiting.
    async fn finish_try(
        self: Arc<Self>,
        group: Arc<Group>,
        key: QueueKey,
        tried: Try,
        first: Result<Vec<u8>, Outcome>,
    ) {
        let Try {
            id,
            session,
            resp3,
            args,
            op,
        } = tried;
        let mut attempt = first;
        let reply = loop {
            match attempt {
                Ok(bytes) => break Some(bytes),
                Err(Outcome::Fail(text)) => break Some(error_bytes(&text)),
                Err(Outcome::NotLeader) => break None,
                Err(Outcome::TimedOut) => {}
            }
            let Some(term) = group.leading_term() else { break None };
            attempt = group
                .enqueue_proposal(term, Some(session), key.0, resp3, op.clone())
                .await;
        };
        let Some(bytes) = reply else {
            if let Some(q) = self.queues.lock().get_mut(&key) {
                q.trying = None;
            }
            self.drain();
            return;
        };
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(&key) else {
            drop(queues);
            if is_grant(&bytes) {
                give_back(&group, key.0, &args);
            }
            return;
        };
        queue.trying = None;
        if is_nil(&bytes) {
            // Taken by an entry ordered before the try, or kept by a rule
            // the leader's look does not model: look again, at once if
            // another entry touched the key meanwhile or it looks taken (a
            // timer is then set), else after a pause (no busy loop).
            let others = queue.touches > 1;
            drop(queues);
            let Some(term) = group.leading_term() else {
                self.drain();
                return;
            };
            let now = group.time.peek(term);
            if others || free_at(&group, &key, Kind::of(&args), now) > now {
                self.look(&group, &key);
            } else {
                self.look_at(&group, &key, RETRY);
            }
            return;
        }
        let waiter = queue
            .waiters
            .iter()
            .position(|w| w.id == id)
            .and_then(|at| queue.waiters.remove(at));
        drop(queues);
        let told = match waiter {
            Some(w) => {
                self.left(1);
                w.tx.send(WaitReply::Reply(bytes.clone())).is_ok()
            }
            None => false,
        };
        if !told && is_grant(&bytes) {
            debug!(?id, "a waiter ended as it was granted: released again");
            give_back(&group, key.0, &args);
        }
        self.look(&group, &key);
    }
}

/// The keys an applied command touched.
pub enum Touched<'a> {
    Keys(Vec<&'a [u8]>),
    /// Any key (FLUSHDB, expiry, a closed client's locks).
    Any,
}

/// The keys `argv` names, or any key for a write that names none it could
/// change (FLUSHDB, FLUSHALL).
pub fn touched_keys<'a>(argv: &[&'a [u8]]) -> Touched<'a> {
    let Some((_, spec)) = table::lookup(argv[0]) else {
        return Touched::Keys(Vec::new());
    };
    match spec.keys {
        KeySpec::None if spec.flags & table::flags::WRITE == 0 => Touched::Keys(Vec::new()),
        KeySpec::None | KeySpec::All => Touched::Any,
        ref keys => match key_positions(keys, argv) {
            Ok(range) => Touched::Keys(range.map(|i| argv[i]).collect()),
            Err(_) => Touched::Keys(Vec::new()),
        },
    }
}

/// Whether a command may free a lock or a semaphore slot, or fill a list:
/// a release, a delete, a script (the lock libraries' releases), a flush,
/// a push.
fn may_free(args: &[Vec<u8>]) -> bool {
    const FREEING: &[&str] = &[
        "lock.release",
        "sem.release",
        "del",
        "unlink",
        "delex",
        "delifeq",
        "getdel",
        "eval",
        "evalsha",
        "flushdb",
        "flushall",
        "lpush",
        "rpush",
        "lpushx",
        "rpushx",
        "lmove",
        "rpoplpush",
    ];
    args.first()
        .is_some_and(|name| FREEING.iter().any(|f| name.eq_ignore_ascii_case(f.as_bytes())))
}

/// When `key` may be grantable (group µs): 0 if now, u64::MAX if only an
/// entry can free it (a key without a deadline).
fn free_at(group: &Group, (db, key): &QueueKey, kind: Kind, now: u64) -> u64 {
    let db = *db as usize;
    let coord = &group.shared.coord;
    let stored = group.shared.keyspace.dbs.get(db).and_then(|d| d.peek_deadline(key));
    match kind {
        Kind::Sem => coord.sem_free_at(db, key),
        // A list is there to pop from until it is empty (then it is gone)
        // or expired.
        Kind::List => match stored {
            Some(deadline) if deadline == NO_DEADLINE || deadline > now => 0,
            _ => u64::MAX,
        },
        Kind::Lock => {
            let held = match stored {
                None => 0,
                Some(NO_DEADLINE) => u64::MAX,
                Some(deadline) => deadline,
            };
            held.max(coord.delayed_until(db, key))
        }
    }
}

/// Release what `args`' acquire granted (its token), through the log.
fn give_back(group: &Arc<Group>, db: u32, args: &[Vec<u8>]) {
    match Kind::of(args) {
        Kind::List => {}
        kind => release(group, db, kind == Kind::Sem, &args[1], &args[2]),
    }
}

/// Release a grant that reached a blocked connection as it closed.
pub fn give_back_ticket(group: &Arc<Group>, ticket: &Ticket) {
    if let TicketKind::Group { sem, list: false } = ticket.kind {
        release(group, ticket.db as u32, sem, &ticket.key, &ticket.token);
    }
}

/// Release `token`'s hold of lock or semaphore `key`, through the log.
fn release(group: &Arc<Group>, db: u32, sem: bool, key: &[u8], token: &[u8]) {
    let name: &[u8] = if sem { b"SEM.RELEASE" } else { b"LOCK.RELEASE" };
    let op = Op::Command(vec![name.to_vec(), key.to_vec(), token.to_vec()]);
    let group = group.clone();
    tokio::spawn(async move {
        submit(&group, db, false, false, op).await;
    });
}

/// One wait at whoever leads now (this node, or over the group link): the
/// reply bytes, or None if it must be asked again (no leader, not the
/// leader any more, the link was lost).
async fn wait_once(group: &Arc<Group>, req: &WaitRequest) -> Option<Vec<u8>> {
    match group.leader().0? {
        id if id == group.id => match group.waiters.enqueue(req.clone()).await {
            Ok(WaitReply::Reply(bytes)) => Some(bytes),
            _ => None,
        },
        id => {
            let link = group.links.get(id, &group.raft_addr(id)?);
            match link.call(&Rpc::Wait(req.clone()), WAIT_CALL).await {
                Ok(RpcReply::Wait(WaitReply::Reply(bytes))) => Some(bytes),
                Ok(_) => None,
                Err(e) => {
                    debug!("wait at {id}: {e:?}");
                    None
                }
            }
        }
    }
}

/// Take `req` out of the leader's queue: true if it was still there (it
/// is never granted then); false if it was not or the leader could not be
/// asked (a grant may be on its way).
async fn cancel(group: &Arc<Group>, req: &WaitRequest) -> bool {
    let key = &req.args[1];
    match group.leader().0 {
        Some(id) if id == group.id => matches!(group.waiters.cancel(req.id, req.db, key), Cancelled::Removed),
        Some(id) => {
            let Some(addr) = group.raft_addr(id) else { return false };
            let rpc = Rpc::CancelWait(req.id, req.db, key.clone());
            matches!(
                group.links.get(id, &addr).call(&rpc, CANCEL_CALL).await,
                Ok(RpcReply::CancelWait(Cancelled::Removed))
            )
        }
        None => false,
    }
}

/// A blocked connection's wait, run as its own task on the connection's
/// node: the grant (or error) goes to `tx` as an encoded reply. It waits
/// through leader changes (asking each new leader, with the same id). If
/// the connection stops waiting first (`tx` dropped: its WAIT ran out,
/// CLIENT UNBLOCK, it closed), the waiter leaves the leader's queue, and a
/// grant that raced with that is released again, so that no lock stays
/// with a connection that was told nil or is gone.
pub async fn serve_waiter(group: Arc<Group>, req: WaitRequest, mut tx: oneshot::Sender<Granted>) {
    loop {
        let mut once = Box::pin(wait_once(&group, &req));
        tokio::select! {
            got = &mut once => match got {
                Some(bytes) => {
                    let grant = is_grant(&bytes);
                    let reply = Granted {
                        fence: 0,
                        aof_mark: 0,
                        served: Some(Box::new(Served::Encoded(bytes))),
                    };
                    if tx.send(reply).is_err() && grant {
                        give_back(&group, req.db, &req.args);
                    }
                    return;
                }
                None => {
                    drop(once);
                    tokio::select! {
                        _ = group.metrics_changed(Duration::from_millis(20)) => {}
                        _ = tx.closed() => return,
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
            _ = tx.closed() => {
                if !cancel(&group, &req).await
                    && let Ok(Some(bytes)) = tokio::time::timeout(CANCEL_CALL, once).await
                    && is_grant(&bytes)
                {
                    give_back(&group, req.db, &req.args);
                }
                return;
            }
        }
    }
}

/// While this node does not lead, its queues stay empty: when it stops
/// leading, every waiter queued here is told to ask the new leader.
pub async fn drain_on_stepping_down(group: Weak<Group>) {
    loop {
        let Some(g) = group.upgrade() else { return };
        g.metrics_changed(Duration::from_secs(1)).await;
        if g.leading_term().is_none() && g.waiters.count.load(Ordering::Relaxed) > 0 {
            g.waiters.drain();
        }
    }
}
