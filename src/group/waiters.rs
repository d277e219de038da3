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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
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

/// A blocking command, as the leader queues it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitRequest {
    pub id: WaiterId,
    /// Its client's group-wide id (an ONCLOSE grant is bound to it).
    pub client: u64,
    pub db: u32,
    pub resp3: bool,
    /// The command as the leader tries it (an acquire without its `WAIT
    /// ms`; a pop as it is).
    pub args: Vec<Vec<u8>>,
}

impl WaitRequest {
    /// The queue it waits in.
    pub fn queue(&self) -> QueueKey {
        (self.db, Kind::of(&self.args) == Kind::Sem, self.args[1].clone())
    }
}

/// How a wait at the leader ended.
#[derive(Debug, Serialize, Deserialize)]
pub enum WaitReply {
    /// The reply bytes of the try that answered it (a fence, an element,
    /// an error).
    Reply(Vec<u8>),
    /// This node does not lead (any more): ask the leader.
    NotLeader,
}

/// The answer to [`Waiters::cancel`].
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cancelled {
    /// It was still waiting: it is never granted now.
    Removed,
    /// Its try is in the log: its outcome goes to the waiter as usual (a
    /// grant, or its end if the try answers nil).
    Pending,
    /// Not queued here: answered already, or never seen.
    NotFound,
}

/// How long a follower's call to the leader may wait for a grant: a wait
/// is ended by its waiter (or by the link closing), never by a timeout of
/// the call (whose timeouts close the link).
const WAIT_CALL: Duration = Duration::from_secs(86_400 * 365);
/// How long a cancellation's call to the leader may take.
const CANCEL_CALL: Duration = Duration::from_secs(2);
/// How long a waiter whose wait ended waits for the outcome of a try
/// already in the log (its attempts: one second each).
pub const SETTLE: Duration = Duration::from_secs(3);
/// How often a follower tells the leader its waiter still waits, and how
/// long the leader keeps one it hears nothing of.
pub const ALIVE_EVERY: Duration = Duration::from_secs(1);
const LEASE: Duration = Duration::from_secs(5);
/// A try answered nil while the key looked free (something this node does
/// not model kept it): look again after this, not at once.
const RETRY: Duration = Duration::from_millis(10);

struct Waiter {
    id: WaiterId,
    /// A follower's waiter: dropped once this passes without a word from
    /// its node ([`Waiters::alive`]), which may have died or lost it.
    lease: Option<Instant>,
    client: u64,
    resp3: bool,
    args: Vec<Vec<u8>>,
    tx: oneshot::Sender<WaitReply>,
    /// Its wait ended while its try was in the log: it leaves the queue if
    /// the try answers nil.
    ended: bool,
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
    /// The one timer that looks at the key again: when (group µs), and its
    /// task, aborted when the queue goes or a sooner one replaces it.
    timer: Option<(u64, AbortHandle)>,
}

impl Drop for KeyQueue {
    fn drop(&mut self) {
        if let Some((_, task)) = self.timer.take() {
            task.abort();
        }
    }
}

/// (database, semaphore or not, key): a semaphore is not a key of the
/// keyspace, and its waiters are not a lock's of the same name.
pub type QueueKey = (u32, bool, Vec<u8>);

/// The leader's queues of blocked commands.
///
/// Locking: `queues` is never held while a shard lock is taken (LOCK.INFO
/// reads [`Waiters::queue_len`] under its shard's lock), so a look at the
/// keyspace ([`free_at`]) happens with `queues` released.
#[derive(Default)]
pub struct Waiters {
    queues: Mutex<HashMap<QueueKey, KeyQueue>>,
    /// Waiters in all queues: the state machine skips [`Waiters::touched`]
    /// with one load while it is 0 (always, on a follower).
    count: AtomicUsize,
    group: OnceLock<Weak<Group>>,
    /// Waits ended before they were seen here (a follower's cancel can
    /// overtake its wait: each request of the link runs in its own task):
    /// the wait is refused when it comes. The last [`ENDED`] of them.
    ended: Mutex<(VecDeque<WaiterId>, HashSet<WaiterId>)>,
}

/// How many ended-before-seen waits [`Waiters`] remembers (a wait follows
/// its cancel within a moment; this is many moments of them).
const ENDED: usize = 4096;

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

    /// Queue `req` here, as the leader; its reply when a try answers it,
    /// or [`WaitReply::NotLeader`]. A request whose id is queued already
    /// (sent again after a lost link) keeps its place.
    pub fn enqueue(self: &Arc<Self>, req: WaitRequest, forwarded: bool) -> oneshot::Receiver<WaitReply> {
        let (tx, rx) = oneshot::channel();
        let Some(group) = self.group().filter(|g| g.leading_term().is_some()) else {
            let _ = tx.send(WaitReply::NotLeader);
            return rx;
        };
        if req.args.len() < 3 {
            let _ = tx.send(WaitReply::Reply(error_bytes("ERR syntax error")));
            return rx;
        }
        if self.ended.lock().1.contains(&req.id) {
            let _ = tx.send(WaitReply::NotLeader);
            return rx;
        }
        let key = req.queue();
        let coord = &group.shared.coord;
        let mut queues = self.queues.lock();
        let queue = queues.entry(key.clone()).or_default();
        let lease = forwarded.then(|| Instant::now() + LEASE);
        if let Some(w) = queue.waiters.iter_mut().find(|w| w.id == req.id) {
            w.tx = tx;
            w.ended = false;
            w.lease = lease;
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
            lease,
            client: req.client,
            resp3: req.resp3,
            args: req.args,
            tx,
            ended: false,
        });
        self.count.fetch_add(1, Ordering::Relaxed);
        group.shared.locks.waiters.fetch_add(1, Ordering::Relaxed);
        drop(queues);
        self.look(&group, &key);
        rx
    }

    /// End waiter `id`'s wait in queue `key` (one not seen yet is refused
    /// when it comes).
    pub fn cancel(&self, id: WaiterId, key: &QueueKey) -> Cancelled {
        let mut queues = self.queues.lock();
        let Some(at) = queues
            .get(key)
            .and_then(|queue| queue.waiters.iter().position(|w| w.id == id))
        else {
            drop(queues);
            let mut ended = self.ended.lock();
            if ended.1.insert(id) {
                ended.0.push_back(id);
                while ended.0.len() > ENDED {
                    if let Some(old) = ended.0.pop_front() {
                        ended.1.remove(&old);
                    }
                }
            }
            return Cancelled::NotFound;
        };
        let Some(queue) = queues.get_mut(key) else {
            return Cancelled::NotFound;
        };
        if queue.trying == Some(id) {
            queue.waiters[at].ended = true;
            return Cancelled::Pending;
        }
        queue.waiters.remove(at);
        if queue.waiters.is_empty() && queue.trying.is_none() {
            queues.remove(key);
        }
        drop(queues);
        self.left(1);
        Cancelled::Removed
    }

    /// A follower says its waiter `id` still waits: its lease is renewed.
    /// False if it is not queued here.
    pub fn alive(&self, id: WaiterId, key: &QueueKey) -> bool {
        let mut queues = self.queues.lock();
        let waiter = queues
            .get_mut(key)
            .and_then(|q| q.waiters.iter_mut().find(|w| w.id == id));
        match waiter {
            Some(w) => {
                w.lease = w.lease.map(|_| Instant::now() + LEASE);
                true
            }
            None => false,
        }
    }

    /// Drop the followers' waiters whose lease ran out (their node died, or
    /// lost them with a link), and look at their keys again.
    fn sweep(self: &Arc<Self>, group: &Arc<Group>) {
        if !self.any() {
            return;
        }
        let now = Instant::now();
        let mut swept = Vec::new();
        let mut gone = 0;
        {
            let mut queues = self.queues.lock();
            for (key, q) in queues.iter_mut() {
                let before = q.waiters.len();
                let trying = q.trying;
                q.waiters
                    .retain(|w| Some(w.id) == trying || w.lease.is_none_or(|until| until > now));
                if q.waiters.len() < before {
                    gone += before - q.waiters.len();
                    swept.push(key.clone());
                }
            }
        }
        if gone > 0 {
            debug!(gone, "waiters of followers that stopped renewing them dropped");
            self.left(gone);
        }
        for key in swept {
            self.look(group, &key);
        }
    }

    /// How many wait for lock or list `key` of `db` here (`sem`: for the
    /// semaphore of that name). Called under the key's shard lock.
    pub fn queue_len(&self, db: u32, sem: bool, key: &[u8]) -> usize {
        if !self.any() {
            return 0;
        }
        self.queues
            .lock()
            .get(&(db, sem, key.to_vec()))
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

    /// The queues among `keys` of `db` (a key's lock or list queue and its
    /// semaphore's).
    fn queued(&self, db: u32, keys: Touched<'_>) -> Vec<QueueKey> {
        if !self.any() {
            return Vec::new();
        }
        let queues = self.queues.lock();
        match keys {
            Touched::Keys(keys) => keys
                .into_iter()
                .flat_map(|k| [(db, false, k.to_vec()), (db, true, k.to_vec())])
                .filter(|k| queues.contains_key(k))
                .collect(),
            Touched::Any => queues.keys().cloned().collect(),
        }
    }

    /// The keys with waiters that `op` (of `db`) may free or fill: a
    /// release, a delete, a script, a flush, a push names them. See
    /// [`Waiters::try_heads`].
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
        for mut q in drained {
            for w in q.waiters.drain(..) {
                let _ = w.tx.send(WaitReply::NotLeader);
            }
        }
    }

    /// Try `key`'s head now if the key may be free, else plan a look at the
    /// time it may be; nothing while a try is in flight (but note it).
    fn look(self: &Arc<Self>, group: &Arc<Group>, key: &QueueKey) {
        let Some(term) = group.leading_term() else {
            self.drain();
            return;
        };
        // The head, under the queues' lock; then the keyspace, without it.
        let head = {
            let mut queues = self.queues.lock();
            let Some(queue) = queues.get_mut(key) else { return };
            if queue.trying.is_some() {
                queue.touches += 1;
                return;
            }
            let before = queue.waiters.len();
            let now = Instant::now();
            queue
                .waiters
                .retain(|w| !w.tx.is_closed() && w.lease.is_none_or(|until| until > now));
            let gone = before - queue.waiters.len();
            let head = queue
                .waiters
                .front()
                .map(|w| (w.id, Kind::of(&w.args), w.args[2].clone()));
            if head.is_none() {
                queues.remove(key);
            }
            drop(queues);
            if gone > 0 {
                self.left(gone);
            }
            head
        };
        let Some((id, kind, token)) = head else { return };
        let now = group.time.peek(term);
        let free_at = free_at(group, key, kind, &token, now);
        let mut queues = self.queues.lock();
        let Some(queue) = queues.get_mut(key) else { return };
        // Something changed meanwhile: whoever changed it looks again.
        if queue.trying.is_some() || queue.waiters.front().map(|w| w.id) != Some(id) {
            return;
        }
        if free_at <= now {
            self.start_try(group, queue, key);
        } else if free_at != u64::MAX && queue.timer.as_ref().is_none_or(|(at, _)| free_at < *at) {
            let task = self.look_at(group, key, Duration::from_micros(free_at - now));
            if let Some((_, old)) = queue.timer.replace((free_at, task)) {
                old.abort();
            }
        }
    }

    /// Look at `key` again after `after` (the key's timer).
    fn look_at(self: &Arc<Self>, group: &Arc<Group>, key: &QueueKey, after: Duration) -> AbortHandle {
        let (this, group, key) = (self.clone(), Arc::downgrade(group), key.clone());
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(group) = group.upgrade() else { return };
            if let Some(q) = this.queues.lock().get_mut(&key) {
                q.timer = None;
            }
            this.look(&group, &key);
        })
        .abort_handle()
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
        let mut queues = self.queues.lock();
        // Drained (this node stopped leading) or a queue made since: the
        // waiter asks again, and an acquire by its own token answers the
        // same fence; nothing is released.
        let Some(queue) = queues.get_mut(&key).filter(|q| q.trying == Some(id)) else {
            return;
        };
        queue.trying = None;
        let Some(bytes) = reply else {
            drop(queues);
            self.drain();
            return;
        };
        let at = queue.waiters.iter().position(|w| w.id == id);
        if is_nil(&bytes) {
            // A waiter whose wait ended meanwhile leaves now, told nothing.
            if let Some(at) = at
                && queue.waiters[at].ended
            {
                queue.waiters.remove(at);
                drop(queues);
                self.left(1);
                self.look(&group, &key);
                return;
            }
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
            if others || free_at(&group, &key, Kind::of(&args), &args[2], now) > now {
                self.look(&group, &key);
            } else {
                let task = self.look_at(&group, &key, RETRY);
                if let Some(q) = self.queues.lock().get_mut(&key)
                    && let Some((_, old)) = q.timer.replace((0, task))
                {
                    old.abort();
                }
            }
            return;
        }
        let waiter = at.and_then(|at| queue.waiters.remove(at));
        drop(queues);
        let told = match waiter {
            Some(w) => {
                self.left(1);
                w.tx.send(WaitReply::Reply(bytes.clone())).is_ok()
            }
            None => false,
        };
        if !told && is_grant(&bytes) {
            debug!(?id, "a waiter was gone as it was granted: released again");
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

/// When the head (`kind`, `token`) may be answered (group µs): 0 if now,
/// u64::MAX if only an entry can change that (a key without a deadline, a
/// list that is not there). Reads the keyspace: never under `queues`.
fn free_at(group: &Group, (db, _, key): &QueueKey, kind: Kind, token: &[u8], now: u64) -> u64 {
    let db = *db as usize;
    let coord = &group.shared.coord;
    let Some(store) = group.shared.keyspace.dbs.get(db) else {
        return 0;
    };
    match kind {
        Kind::Sem => coord.sem_free_at(db, key, token),
        // A list is there to pop from until it is empty (then it is gone)
        // or expired.
        Kind::List => match store.peek(key, |e| e.deadline()) {
            Some(deadline) if deadline == NO_DEADLINE || deadline > now => 0,
            _ => u64::MAX,
        },
        Kind::Lock => {
            // Its own token holds it (a grant whose reply was lost): the
            // acquire answers its fence again at once.
            let held = match store.peek(key, |e| (e.deadline(), e.str().is_ok_and(|v| **v == *token))) {
                None | Some((_, true)) => return 0,
                Some((NO_DEADLINE, false)) => u64::MAX,
                Some((deadline, false)) => deadline,
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
/// leader any more, the link was lost, the wait was ended there).
async fn wait_once(group: &Arc<Group>, req: &WaitRequest) -> Option<Vec<u8>> {
    match group.leader().0? {
        id if id == group.id => match group.waiters.enqueue(req.clone(), false).await {
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

/// Tell the leader (if another node) that `req` still waits, in the
/// background: a waiter it stops hearing of is dropped.
fn keep_alive(group: &Arc<Group>, req: &WaitRequest) {
    let Some(id) = group.leader().0.filter(|&id| id != group.id) else {
        return;
    };
    let Some(addr) = group.raft_addr(id) else { return };
    let (link, rpc) = (group.links.get(id, &addr), Rpc::WaitAlive(req.id, req.queue()));
    tokio::spawn(async move {
        let _ = link.call(&rpc, ALIVE_EVERY).await;
    });
}

/// End `req`'s wait at the leader, asking again (whoever leads then) if
/// the leader could not be asked: a wait left queued for nobody would
/// hold up the queue. Err if no leader answered.
async fn cancel(group: &Arc<Group>, req: &WaitRequest) -> Result<Cancelled, ()> {
    for _ in 0..3 {
        match cancel_once(group, req).await {
            Ok(c) => return Ok(c),
            Err(()) => {
                debug!(id = ?req.id, "ending a wait: the leader did not answer, asking again");
                group.metrics_changed(Duration::from_millis(100)).await;
            }
        }
    }
    Err(())
}

async fn cancel_once(group: &Arc<Group>, req: &WaitRequest) -> Result<Cancelled, ()> {
    match group.leader().0 {
        Some(id) if id == group.id => Ok(group.waiters.cancel(req.id, &req.queue())),
        Some(id) => {
            let addr = group.raft_addr(id).ok_or(())?;
            let rpc = Rpc::CancelWait(req.id, req.queue());
            match group.links.get(id, &addr).call(&rpc, CANCEL_CALL).await {
                Ok(RpcReply::CancelWait(c)) => Ok(c),
                _ => Err(()),
            }
        }
        None => Err(()),
    }
}

/// A blocked connection's wait, run as its own task on the connection's
/// node: the try's reply goes to `tx` as an encoded reply. It waits through
/// leader changes (asking each new leader, with the same id). When the
/// connection's wait ends otherwise (`stop` fires or is dropped: its WAIT
/// ran out, CLIENT UNBLOCK, it closed), the waiter leaves the leader's
/// queue; if its try was already in the log, its outcome still goes to
/// `tx` (the connection then answers the grant, as a single server does
/// when a grant races with the timeout), and a grant that finds `tx`
/// closed (the connection is gone) is released again.
pub async fn serve_waiter(
    group: Arc<Group>,
    req: WaitRequest,
    tx: oneshot::Sender<Granted>,
    mut stop: oneshot::Receiver<()>,
) {
    let deliver = |tx: oneshot::Sender<Granted>, bytes: Vec<u8>| {
        let grant = is_grant(&bytes);
        let reply = Granted {
            fence: 0,
            aof_mark: 0,
            served: Some(Box::new(Served::Encoded(bytes))),
        };
        if tx.send(reply).is_err() && grant {
            give_back(&group, req.db, &req.args);
        }
    };
    let mut alive = tokio::time::interval(ALIVE_EVERY);
    alive.tick().await;
    loop {
        let mut once = Box::pin(wait_once(&group, &req));
        let got = loop {
            tokio::select! {
                biased;
                got = &mut once => break Some(got),
                _ = &mut stop => break None,
                _ = alive.tick() => keep_alive(&group, &req),
            }
        };
        match got {
            Some(Some(bytes)) => return deliver(tx, bytes),
            Some(None) => {
                drop(once);
                let stopped = tokio::select! {
                    biased;
                    _ = &mut stop => true,
                    _ = group.metrics_changed(Duration::from_millis(20)) => false,
                };
                if stopped {
                    // Not queued that we know of; a link lost with the wait
                    // in it may have left it there.
                    let _ = cancel(&group, &req).await;
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            None => {
                // Pending or not found: the try's answer may be on its way.
                // Not asked (no leader, the link down): the wait is not
                // sent any more (a wait that was is ended by its link's
                // closing at the leader).
                if matches!(cancel(&group, &req).await, Ok(Cancelled::Pending | Cancelled::NotFound))
                    && let Ok(Some(bytes)) = tokio::time::timeout(SETTLE, once).await
                {
                    deliver(tx, bytes);
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
        g.waiters.sweep(&g);
    }
}
