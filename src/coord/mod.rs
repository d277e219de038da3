//! Coordination primitives over the keyspace: the FIFO queues of clients
//! blocked in `LOCK.ACQUIRE ... WAIT`, locks bound to their connection
//! (`ONCLOSE [GRACE ms]`), lock-delay (`--lock-delay`, `DELAY ms`), and
//! semaphores ([`sem`]).
//!
//! # Grants
//! A lock key with waiters is handed to the head of its queue by the code
//! that frees it, under the key's shard lock, so that nobody sees it free
//! in between and only the head wakes (no thundering herd):
//! - after every command that names the key (DEL, DELEX, LOCK.RELEASE,
//!   RENAME, FLUSHDB...), from dispatch, which still holds the command's
//!   shard locks ([`Coord::after_command`]);
//! - when its deadline passes, lazily or in the expirer: the store's refill
//!   hook ([`Coord::on_expired`]) returns the head's entry, which takes the
//!   expired one's place at once. The expirer wakes at the earliest deadline
//!   while anyone waits ([`Coord::due`]), so this is within a millisecond;
//! - when a client-bound lock's connection closes ([`Coord::client_closed`])
//!   or a lock-delay ends ([`Coord::due`]).
//!
//! A grant takes a fence, stores the lock, logs the key's new state to the
//! append-only file, publishes `acquired TOKEN FENCE` on `__lock__:KEY`
//! and sends the fence to the blocked connection through
//! its oneshot channel ([`hand_over`](Coord::hand_over), the one place a
//! waiter is granted). A waiter whose connection went away is skipped; one
//! that goes away as it is granted gives the lock back
//! ([`Coord::give_back`]), so a lock never stays with a closed connection.
//!
//! # In a replicated group
//! Every node applies the log's commands here alike, so the lock options,
//! pending releases, lock-delays and semaphore holders are replicated
//! state: they go into the group's snapshots ([`Coord::snapshot_records`],
//! the `restore_*` methods) and its timers run at tick entries
//! ([`Coord::due`] at the entry's time, proposed by the leader when
//! [`Coord::next_due`] has passed). The queues here stay empty in a group:
//! its blocked acquires queue at its leader (`crate::group::waiters`), and
//! its apply never blocks; a client-bound lock is bound to a group-wide
//! client id, whose close is a log entry.
//!
//! # Locking order
//! shard lock(s) → `state` → the semaphores' lock → the append-only
//! file's buffer. Nothing here is held across an `.await`.

pub mod lists;
pub mod sem;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::Thread;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::commands::CmdError;
use crate::lockstats::{LockStats, Release};
use crate::persist::Aof;
use crate::persist::aof::key_record;
use crate::pubsub::{LockEvent, PubSub};
use crate::store::{Clock, Entry, Keyspace, Locked};

/// A key of one database.
pub type DbKey = (usize, Box<[u8]>);

/// What a granted waiter receives.
#[derive(Debug)]
pub struct Granted {
    pub fence: u64,
    /// End offset of the grant's append-only record (0 without a log):
    /// the reply waits until it is durable, like any write's.
    pub aof_mark: u64,
    /// A list waiter's reply ([`lists`]); None for a lock or a semaphore.
    pub served: Option<Box<lists::Served>>,
}

/// What a blocked connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketKind {
    Lock,
    Sem,
    List,
    /// A blocking command in a replicated group (an acquire of a lock or a
    /// semaphore, or a pop from a list): its queue is the leader's
    /// (`crate::group::waiters`), not this instance's.
    Group {
        sem: bool,
        list: bool,
    },
}

/// What a blocking LOCK.ACQUIRE asks for once it reaches the head.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub token: Box<[u8]>,
    pub ttl_ms: i64,
    /// ONCLOSE: release when the connection closes, after this grace (ms).
    pub onclose: Option<u64>,
    /// DELAY: this lock's lock-delay (ms), instead of `--lock-delay`.
    pub delay_ms: Option<u64>,
}

struct Waiter {
    ticket: u64,
    client: u64,
    req: LockRequest,
    tx: oneshot::Sender<Granted>,
}

/// What a blocked connection keeps to leave its queue, or to give back a
/// grant it can no longer use.
#[derive(Debug)]
pub struct Ticket {
    pub kind: TicketKind,
    pub db: usize,
    pub key: Box<[u8]>,
    pub token: Box<[u8]>,
    pub id: u64,
}

/// Options of a held lock that outlive the command that took it.
struct LockMeta {
    token: Box<[u8]>,
    fence: u64,
    delay_ms: Option<u64>,
    /// ONCLOSE: (client id, grace ms).
    bound: Option<(u64, u64)>,
}

/// A client-bound lock whose client closed: released at `at` (store µs)
/// unless its token extends it first.
struct PendingRelease {
    token: Box<[u8]>,
    fence: u64,
    grace: u64,
    at: u64,
}

#[derive(Default)]
struct State {
    queues: HashMap<DbKey, VecDeque<Waiter>>,
    meta: HashMap<DbKey, LockMeta>,
    /// The keys each client holds with ONCLOSE.
    bound: HashMap<u64, HashSet<DbKey>>,
    pending: HashMap<DbKey, PendingRelease>,
    /// Locks that expired while held: not grantable before this (store µs).
    delayed: HashMap<DbKey, u64>,
}

impl State {
    fn entries(&self) -> usize {
        self.queues.len() + self.meta.len() + self.pending.len() + self.delayed.len()
    }
}

/// The waiter queues, lock options and semaphores of one instance.
pub struct Coord {
    keyspace: Arc<Keyspace>,
    aof: Option<Arc<Aof>>,
    stats: Arc<LockStats>,
    /// The `__lock__:KEY` events of grants and releases made here (an
    /// expiry's is the store's expire hook's, [`crate::instance`]).
    pubsub: Arc<PubSub>,
    state: Mutex<State>,
    /// Clients blocked on lists ([`lists`]).
    lists: Mutex<lists::ListState>,
    /// Entries in `state`: dispatch skips [`Coord::after_command`] with one
    /// load while it is 0.
    active: AtomicUsize,
    /// Lock waiters, all keys.
    lock_waiters: AtomicUsize,
    next_ticket: AtomicU64,
    /// `--lock-delay` (ms), CONFIG SET lock-delay.
    pub lock_delay_ms: AtomicU64,
    /// `--max-waiters`: blocked acquires in all (locks and semaphores).
    pub max_waiters: AtomicU64,
    /// `--max-waiters-per-key`.
    pub max_waiters_per_key: AtomicU64,
    expirer: OnceLock<Thread>,
    /// (fence, client id) of recent grants, by [`holder_slot`].
    holders: Box<[(AtomicU64, AtomicU64)]>,
    /// When the expirer's next pass is planned at the latest (store µs;
    /// u64::MAX: its usual tick), as [`Coord::due`] last told it.
    planned: AtomicU64,
    /// In a replicated group: how many wait for a key in the leader's
    /// queues (`crate::group::waiters`), which are not these.
    group_queues: OnceLock<GroupQueueLen>,
}

/// The length of a key's queue of a group's leader (db, semaphore or not, key).
pub type GroupQueueLen = Box<dyn Fn(usize, bool, &[u8]) -> usize + Send + Sync>;

/// Slots of the table of recent grants' holders (a power of two; 64 KiB).
const HOLDER_SLOTS: usize = 1 << 12;

fn holder_slot(db: usize, key: &[u8]) -> usize {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, db as u64) as usize & (HOLDER_SLOTS - 1)
}

/// Why a blocking acquire cannot wait.
pub fn too_many_waiters(per_key: bool) -> CmdError {
    CmdError::Static(if per_key {
        "ERR max number of waiters for this key reached (max-waiters-per-key)"
    } else {
        "ERR max number of waiters reached (max-waiters)"
    })
}

impl Coord {
    pub fn new(
        keyspace: Arc<Keyspace>,
        aof: Option<Arc<Aof>>,
        stats: Arc<LockStats>,
        pubsub: Arc<PubSub>,
        cfg: &crate::config::ServerConfig,
    ) -> Arc<Coord> {
        let coord = Arc::new(Coord {
            keyspace,
            aof,
            stats,
            pubsub,
            state: Mutex::new(State::default()),
            lists: Mutex::new(lists::ListState::default()),
            active: AtomicUsize::new(0),
            lock_waiters: AtomicUsize::new(0),
            next_ticket: AtomicU64::new(1),
            lock_delay_ms: AtomicU64::new(cfg.lock_delay),
            max_waiters: AtomicU64::new(cfg.max_waiters),
            max_waiters_per_key: AtomicU64::new(cfg.max_waiters_per_key),
            expirer: OnceLock::new(),
            planned: AtomicU64::new(0),
            group_queues: OnceLock::new(),
            holders: (0..HOLDER_SLOTS)
                .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
                .collect(),
        });
        for (db, store) in coord.keyspace.dbs.iter().enumerate() {
            let weak: Weak<Coord> = Arc::downgrade(&coord);
            store.set_refill_hook(Box::new(move |key, entry, now| {
                weak.upgrade().and_then(|c| c.on_expired(db, key, entry, now))
            }));
        }
        coord
    }

    /// The expirer's thread: unparked when something is due sooner than
    /// its next tick.
    pub fn set_expirer(&self, thread: Thread) {
        let _ = self.expirer.set(thread);
    }

    /// Something is due at `at` (store µs): wake the expirer if it planned
    /// its next pass later (not on every enqueue: a contended lock queues
    /// thousands of waiters a second, all due at the same deadline).
    /// (A plan already in the past may be about to be replaced by one that
    /// has not seen `at`: wake it then too.)
    fn wake_expirer_by(&self, at: u64) {
        let planned = self.planned.load(Ordering::SeqCst);
        if (at < planned || planned <= self.keyspace.clock.now_us())
            && let Some(t) = self.expirer.get()
        {
            t.unpark();
        }
    }

    /// Keep `active` equal to the number of entries in `state`.
    fn sync(&self, st: &State) {
        self.active.store(st.entries(), Ordering::Relaxed);
    }

    /// Whether any key has waiters, options or a pending release or delay.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    fn ticket(&self) -> u64 {
        self.next_ticket.fetch_add(1, Ordering::Relaxed)
    }

    /// Count one more waiter against `--max-waiters` (locks and semaphores).
    fn admit(&self, queue_len: usize) -> Result<(), CmdError> {
        if queue_len as u64 >= self.max_waiters_per_key.load(Ordering::Relaxed) {
            return Err(too_many_waiters(true));
        }
        if self.stats.waiters.load(Ordering::Relaxed) >= self.max_waiters.load(Ordering::Relaxed) {
            return Err(too_many_waiters(false));
        }
        self.stats.waiters.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn left(&self) {
        self.stats.waiters.fetch_sub(1, Ordering::Relaxed);
    }

    // ------------------------------------------------------------ locks

    /// Whether a free lock key may be granted to a newcomer now: nobody
    /// waits for it (they come first) and no lock-delay runs. Under the
    /// key's shard lock.
    pub fn grantable(&self, db: usize, key: &[u8], now: u64) -> bool {
        if !self.active() {
            return true;
        }
        let st = self.state.lock();
        let dk = (db, Box::<[u8]>::from(key));
        st.queues.get(&dk).is_none_or(VecDeque::is_empty) && st.delayed.get(&dk).is_none_or(|&until| until <= now)
    }

    /// Queue a blocking acquire of `key` (held until `due`, or reserved for
    /// others: 0): under the key's shard lock, so a release cannot slip in
    /// between the failed attempt and the queueing.
    pub fn enqueue_lock(
        &self,
        db: usize,
        key: &[u8],
        client: u64,
        req: LockRequest,
        due: u64,
    ) -> Result<(Ticket, oneshot::Receiver<Granted>), CmdError> {
        let mut st = self.state.lock();
        let dk = (db, Box::<[u8]>::from(key));
        let len = st.queues.get(&dk).map_or(0, VecDeque::len);
        self.admit(len)?;
        let (tx, rx) = oneshot::channel();
        let id = self.ticket();
        let ticket = Ticket {
            kind: TicketKind::Lock,
            db,
            key: dk.1.clone(),
            token: req.token.clone(),
            id,
        };
        st.queues.entry(dk).or_default().push_back(Waiter {
            ticket: id,
            client,
            req,
            tx,
        });
        self.lock_waiters.fetch_add(1, Ordering::Relaxed);
        self.sync(&st);
        drop(st);
        // The expirer must now wake at the holder's deadline, not a tick later.
        self.wake_expirer_by(due);
        Ok((ticket, rx))
    }

    /// Take a waiter out of its queue (its wait ended, its client was
    /// unblocked or closed): true if it was still there, false if it was
    /// granted meanwhile (the grant is then in its channel).
    pub fn cancel(&self, ticket: &Ticket) -> bool {
        match ticket.kind {
            TicketKind::Sem => return self.sem_cancel(ticket),
            TicketKind::List => return self.list_cancel(ticket),
            // Left by its connection through the group (`crate::group::waiters`).
            TicketKind::Group { .. } => return false,
            TicketKind::Lock => {}
        }
        let mut st = self.state.lock();
        let dk = (ticket.db, ticket.key.clone());
        let Some(queue) = st.queues.get_mut(&dk) else {
            return false;
        };
        let Some(at) = queue.iter().position(|w| w.ticket == ticket.id) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            st.queues.remove(&dk);
        }
        self.lock_waiters.fetch_sub(1, Ordering::Relaxed);
        self.left();
        self.sync(&st);
        true
    }

    /// Give back a grant whose connection closed before it could be
    /// told: the lock (or semaphore slot) goes to the next waiter.
    pub fn give_back(&self, ticket: &Ticket, granted: Granted) {
        match ticket.kind {
            TicketKind::Sem => {
                self.sem_release_token(ticket.db, &ticket.key, &ticket.token);
                return;
            }
            // An element served to a client that closed is gone, as in
            // Redis when it closes before reading its reply.
            TicketKind::List | TicketKind::Group { .. } => return,
            TicketKind::Lock => {}
        }
        let db = &self.keyspace.dbs[ticket.db];
        let now = self.keyspace.clock.now_us();
        let mut locked = db.lock_keys(std::iter::once(&ticket.key[..]), now);
        self.release_if(&mut locked, ticket.db, &ticket.key, &ticket.token, granted.fence);
    }

    /// Release `key` if `token` still holds it with `fence`: logged,
    /// counted as a release, and handed to the next waiter.
    fn release_if(&self, locked: &mut Locked<'_>, db: usize, key: &[u8], token: &[u8], fence: u64) {
        let now = locked.now;
        let Ok(place) = locked.place(key) else { return };
        let owned = place
            .entry()
            .is_some_and(|e| e.str().is_ok_and(|v| **v == *token) && e.fence() == fence);
        if !owned {
            return;
        }
        let held = place.remove().is_some_and(|e| e.is_lock());
        self.stats.released(db, key, token, Release::Released, held, now);
        self.pubsub.lock_event(key, LockEvent::Released { token });
        if let Some(aof) = &self.aof {
            aof.append(|buf| key_record(buf, db, key, None, now));
        }
        self.grant_if_free(db, locked, key);
    }

    /// Pop the head of `key`'s queue that can still be told and grant it
    /// the lock: a fence, the entry it will hold (the caller stores it
    /// under the same shard lock), its options, the log record and the
    /// message to its connection. None if nobody (reachable) waits.
    fn hand_over(&self, st: &mut State, db: usize, key: &[u8], now: u64) -> Option<Entry> {
        let dk = (db, Box::<[u8]>::from(key));
        let queue = st.queues.get_mut(&dk)?;
        let mut granted = None;
        while let Some(w) = queue.pop_front() {
            self.lock_waiters.fetch_sub(1, Ordering::Relaxed);
            self.left();
            if w.tx.is_closed() {
                continue;
            }
            let fence = self.keyspace.fences.next();
            let mut entry = Entry::new(&w.req.token, Clock::deadline_in_ms(w.req.ttl_ms, now));
            entry.set_fence(fence);
            entry.mark_lock();
            let aof_mark = self
                .aof
                .as_ref()
                .map_or(0, |aof| aof.append(|buf| key_record(buf, db, key, Some(&entry), now)));
            let Waiter { client, req, tx, .. } = w;
            if tx
                .send(Granted {
                    fence,
                    aof_mark,
                    served: None,
                })
                .is_err()
            {
                if let Some(aof) = &self.aof {
                    aof.append(|buf| key_record(buf, db, key, None, now));
                }
                continue;
            }
            self.stats.acquired(db, key, &req.token, now);
            self.pubsub.lock_event(
                key,
                LockEvent::Acquired {
                    token: &req.token,
                    fence,
                },
            );
            self.note_holder(db, key, fence, client);
            granted = Some((entry, client, req));
            break;
        }
        if queue.is_empty() {
            st.queues.remove(&dk);
        }
        let (entry, client, req) = granted?;
        if req.onclose.is_some() || req.delay_ms.is_some() {
            Self::set_meta(
                st,
                db,
                key,
                &req.token,
                entry.fence(),
                client,
                req.onclose,
                req.delay_ms,
            );
        }
        Some(entry)
    }

    /// Hand `key` to its next waiter if it is free and no lock-delay runs;
    /// forget the options of a lock that is gone. Under the key's shard lock.
    pub fn grant_if_free(&self, db: usize, locked: &mut Locked<'_>, key: &[u8]) {
        let now = locked.now;
        let held = match locked.get(key) {
            Ok(e) => e.map(|e| e.fence()),
            Err(_) => return,
        };
        let mut st = self.state.lock();
        let dk = (db, Box::<[u8]>::from(key));
        if let Some(m) = st.meta.get(&dk)
            && held != Some(m.fence)
        {
            Self::drop_meta(&mut st, &dk);
        }
        if held.is_some() {
            self.sync(&st);
            return;
        }
        st.pending.remove(&dk);
        match st.delayed.get(&dk) {
            Some(&until) if until > now => {
                self.sync(&st);
                return;
            }
            Some(_) => {
                st.delayed.remove(&dk);
            }
            None => {}
        }
        let entry = self.hand_over(&mut st, db, key, now);
        self.sync(&st);
        drop(st);
        if let Some(entry) = entry {
            let fence = entry.fence();
            if let Ok(token) = entry.str()
                && locked.set(key, token, entry.deadline()).is_ok()
                && let Ok(Some(e)) = locked.get_mut(key)
            {
                e.set_fence(fence);
                e.mark_lock();
            }
        }
    }

    /// After a command ran on `keys` (their shards still locked): hand each
    /// freed key with waiters to its next waiter.
    pub fn after_command<'k>(&self, db: usize, locked: &mut Locked<'_>, keys: impl Iterator<Item = &'k [u8]>) {
        for key in keys {
            let known = {
                let st = self.state.lock();
                let dk = (db, Box::<[u8]>::from(key));
                st.queues.contains_key(&dk) || st.meta.contains_key(&dk)
            };
            if known {
                self.grant_if_free(db, locked, key);
            }
        }
    }

    /// After a command that may have changed any key of `db` (FLUSHDB,
    /// FLUSHALL, EXEC), all its shards locked.
    pub fn after_command_all(&self, db: usize, locked: &mut Locked<'_>) {
        let keys: Vec<Box<[u8]>> = {
            let st = self.state.lock();
            st.queues
                .keys()
                .chain(st.meta.keys())
                .filter(|(d, _)| *d == db)
                .map(|(_, k)| k.clone())
                .collect()
        };
        for key in &keys {
            self.grant_if_free(db, locked, key);
        }
    }

    /// After FLUSHALL: every database's freed keys with waiters, each
    /// under its shard lock (`locked`'s, when it holds all of `db`: inside
    /// EXEC).
    pub fn after_flushall(&self, db: usize, locked: &mut Locked<'_>) {
        let keys: Vec<DbKey> = {
            let st = self.state.lock();
            st.queues.keys().chain(st.meta.keys()).cloned().collect()
        };
        for (d, key) in keys {
            if d == db && locked.holds_all() {
                self.grant_if_free(d, locked, &key);
            } else {
                let now = self.keyspace.clock.now_us();
                let mut own = self.keyspace.dbs[d].lock_keys(std::iter::once(&key[..]), now);
                self.grant_if_free(d, &mut own, &key);
            }
        }
    }

    /// The store's refill hook: `key` (holding `entry`) expired at `now`,
    /// under its shard lock. Starts its lock-delay if it was a lock and one
    /// applies, else returns the entry of its next waiter, if any.
    fn on_expired(&self, db: usize, key: &[u8], entry: &Entry, now: u64) -> Option<Entry> {
        if !self.active() && self.lock_delay_ms.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut st = self.state.lock();
        let dk = (db, Box::<[u8]>::from(key));
        let own_delay = st
            .meta
            .get(&dk)
            .filter(|m| m.fence == entry.fence())
            .and_then(|m| m.delay_ms);
        if st.meta.contains_key(&dk) {
            Self::drop_meta(&mut st, &dk);
        }
        st.pending.remove(&dk);
        let delay = own_delay.unwrap_or_else(|| self.lock_delay_ms.load(Ordering::Relaxed));
        // A lock is a key LOCK.ACQUIRE granted: it has a fence.
        let granted = if entry.fence() != 0 && delay > 0 {
            let until = entry.deadline().max(1).saturating_add(delay.saturating_mul(1000));
            st.delayed.insert(dk, until);
            self.wake_expirer_by(until);
            None
        } else {
            self.hand_over(&mut st, db, key, now)
        };
        self.sync(&st);
        granted
    }

    // ------------------------------------------------- lock options

    #[allow(clippy::too_many_arguments)]
    fn set_meta(
        st: &mut State,
        db: usize,
        key: &[u8],
        token: &[u8],
        fence: u64,
        client: u64,
        onclose: Option<u64>,
        delay_ms: Option<u64>,
    ) {
        let dk = (db, Box::<[u8]>::from(key));
        Self::drop_meta(st, &dk);
        if let Some(_grace) = onclose {
            st.bound.entry(client).or_default().insert(dk.clone());
        }
        st.meta.insert(
            dk,
            LockMeta {
                token: token.into(),
                fence,
                delay_ms,
                bound: onclose.map(|grace| (client, grace)),
            },
        );
    }

    fn drop_meta(st: &mut State, dk: &DbKey) {
        if let Some(LockMeta {
            bound: Some((client, _)),
            ..
        }) = st.meta.remove(dk)
            && let Some(keys) = st.bound.get_mut(&client)
        {
            keys.remove(dk);
            if keys.is_empty() {
                st.bound.remove(&client);
            }
        }
    }

    /// A lock was granted at once (or re-acquired by its holder) with
    /// ONCLOSE or DELAY: remember them while it is held. Under its shard lock.
    #[allow(clippy::too_many_arguments)]
    pub fn lock_options(
        &self,
        db: usize,
        key: &[u8],
        token: &[u8],
        fence: u64,
        client: u64,
        onclose: Option<u64>,
        delay_ms: Option<u64>,
    ) {
        let mut st = self.state.lock();
        let dk = (db, Box::<[u8]>::from(key));
        st.pending.remove(&dk);
        Self::set_meta(&mut st, db, key, token, fence, client, onclose, delay_ms);
        self.sync(&st);
    }

    /// `token` extended `key` (held with `fence`) on `client`'s connection:
    /// a client-bound lock whose connection closed is kept after all, and
    /// is bound to this connection now. Under the key's shard lock.
    pub fn extended(&self, db: usize, key: &[u8], token: &[u8], fence: u64, client: u64) {
        if !self.active() {
            return;
        }
        let mut st = self.state.lock();
        let dk = (db, Box::<[u8]>::from(key));
        let Some(p) = st.pending.remove(&dk) else { return };
        if *p.token == *token && p.fence == fence {
            let delay = st.meta.get(&dk).and_then(|m| m.delay_ms);
            Self::set_meta(&mut st, db, key, token, fence, client, Some(p.grace), delay);
        } else {
            st.pending.insert(dk, p);
        }
        self.sync(&st);
    }

    /// `client`'s connection closed: its client-bound locks are released
    /// now, or at the end of their grace unless extended meanwhile.
    pub fn client_closed(&self, client: u64) {
        if !self.active() {
            return;
        }
        let mut now_release = Vec::new();
        let mut first_due = u64::MAX;
        {
            let mut st = self.state.lock();
            let Some(keys) = st.bound.remove(&client) else { return };
            let now = self.keyspace.clock.now_us();
            for dk in keys {
                let Some(meta) = st.meta.get_mut(&dk) else { continue };
                let Some((_, grace)) = meta.bound.take() else { continue };
                let (token, fence) = (meta.token.clone(), meta.fence);
                if grace == 0 {
                    now_release.push((dk, token, fence));
                } else {
                    let at = now.saturating_add(grace.saturating_mul(1000));
                    first_due = first_due.min(at);
                    st.pending.insert(
                        dk,
                        PendingRelease {
                            token,
                            fence,
                            grace,
                            at,
                        },
                    );
                }
            }
            self.sync(&st);
        }
        self.wake_expirer_by(first_due);
        for ((db, key), token, fence) in now_release {
            let now = self.keyspace.clock.now_us();
            let mut locked = self.keyspace.dbs[db].lock_keys(std::iter::once(&key[..]), now);
            self.release_if(&mut locked, db, &key, &token, fence);
        }
    }

    // ------------------------------------------------------- timers

    /// The expirer's callback, after each pass: end lock-delays and
    /// graces that are due, expire semaphore holders, and name when the
    /// next pass is needed (store µs).
    pub fn due(&self, now: u64) -> u64 {
        let mut next = self.sem_due(now);
        if !self.active() {
            self.planned.store(next, Ordering::SeqCst);
            return next;
        }
        let (ended, released) = {
            let mut st = self.state.lock();
            let mut ended = Vec::new();
            st.delayed.retain(|dk, &mut until| {
                if until <= now {
                    ended.push(dk.clone());
                    false
                } else {
                    next = next.min(until);
                    true
                }
            });
            let mut released = Vec::new();
            st.pending.retain(|dk, p| {
                if p.at <= now {
                    released.push((dk.clone(), p.token.clone(), p.fence));
                    false
                } else {
                    next = next.min(p.at);
                    true
                }
            });
            if !st.queues.is_empty() {
                let earliest = self.keyspace.dbs.iter().map(|d| d.earliest_deadline()).min();
                next = next.min(earliest.unwrap_or(u64::MAX));
            }
            self.sync(&st);
            self.planned.store(next, Ordering::SeqCst);
            (ended, released)
        };
        for (db, key) in ended {
            let mut locked = self.keyspace.dbs[db].lock_keys(std::iter::once(&key[..]), now);
            self.grant_if_free(db, &mut locked, &key);
        }
        for ((db, key), token, fence) in released {
            let mut locked = self.keyspace.dbs[db].lock_keys(std::iter::once(&key[..]), now);
            self.release_if(&mut locked, db, &key, &token, fence);
        }
        next
    }

    /// When a replicated group's leader must next propose a tick entry
    /// for [`Coord::due`] (store µs; u64::MAX: nothing is due): the
    /// earliest end of a lock-delay, of a pending release's grace, or of a
    /// semaphore holder's lease. (Waiters are not counted: there are none
    /// in a group.)
    pub fn next_due(&self) -> u64 {
        let mut next = self.sems().earliest_deadline();
        if self.active() {
            let st = self.state.lock();
            next = st
                .delayed
                .values()
                .chain(st.pending.values().map(|p| &p.at))
                .fold(next, |a, &b| a.min(b));
        }
        next
    }

    // ------------------------------------------- group snapshots

    /// The replicated part of this state as a group snapshot's records
    /// (`crate::group::state_machine` documents them), sorted so that two
    /// nodes in the same state write the same bytes: each lock's options,
    /// each pending release, each lock-delay still running at `now` and
    /// each live semaphore holder. Times are store µs (the group's logical
    /// time). Waiter queues are not in it: a waiter is a connection to one
    /// node. Client ids of ONCLOSE bindings are as the applying node knew them.
    pub fn snapshot_records(&self, now: u64, buf: &mut Vec<u8>) {
        let text = |n: u64| n.to_string().into_bytes();
        let opt = |n: Option<u64>| n.map_or_else(Vec::new, text);
        let mut records: Vec<Vec<u8>> = Vec::new();
        let mut record = |args: &[&[u8]]| {
            let mut r = Vec::new();
            crate::protocol::encode_command(&mut r, args);
            records.push(r);
        };
        {
            let st = self.state.lock();
            for ((db, key), m) in &st.meta {
                record(&[
                    b"RL.LOCKOPT",
                    &text(*db as u64),
                    key,
                    &m.token,
                    &text(m.fence),
                    &opt(m.delay_ms),
                    m.bound
                        .map_or_else(String::new, |(client, grace)| format!("{client}:{grace}"))
                        .as_bytes(),
                ]);
            }
            for ((db, key), p) in &st.pending {
                record(&[
                    b"RL.PENDING",
                    &text(*db as u64),
                    key,
                    &p.token,
                    &text(p.fence),
                    &text(p.grace),
                    &text(p.at),
                ]);
            }
            // A delay that has ended is as good as gone (`grantable`).
            for ((db, key), &until) in st.delayed.iter().filter(|(_, until)| **until > now) {
                record(&[b"RL.DELAYED", &text(*db as u64), key, &text(until)]);
            }
        }
        records.sort_unstable();
        // A semaphore's holders keep their order (SEM.INFO lists them so);
        // semaphores are sorted by name, stably.
        let mut holders = self.sems().holders(now);
        holders.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (db, key, limit, h, _) in holders {
            let mut r = Vec::new();
            crate::protocol::encode_command(
                &mut r,
                &[
                    b"RL.SEM",
                    &text(db as u64),
                    &key,
                    &text(limit),
                    &h.token,
                    &text(h.fence),
                    &text(h.deadline),
                ],
            );
            records.push(r);
        }
        for r in records {
            buf.extend_from_slice(&r);
        }
    }

    /// Before a group snapshot is loaded: forget the replicated state
    /// (lock options, bindings, pending releases, lock-delays, semaphore
    /// holders); waiters stay, they are this node's connections.
    pub fn clear_replicated(&self) {
        let mut st = self.state.lock();
        st.meta.clear();
        st.bound.clear();
        st.pending.clear();
        st.delayed.clear();
        self.sync(&st);
        drop(st);
        self.sems().clear_holders();
    }

    /// A snapshot's `RL.LOCKOPT`: `token` holds `key` with `fence` and
    /// these options (`bound`: ONCLOSE's client id and grace).
    pub fn restore_lock_options(
        &self,
        db: usize,
        key: &[u8],
        token: &[u8],
        fence: u64,
        delay_ms: Option<u64>,
        bound: Option<(u64, u64)>,
    ) {
        let mut st = self.state.lock();
        let (client, onclose) = bound.map_or((0, None), |(c, grace)| (c, Some(grace)));
        Self::set_meta(&mut st, db, key, token, fence, client, onclose, delay_ms);
        self.sync(&st);
    }

    /// A snapshot's `RL.PENDING`: `key` is released at `at` unless `token`
    /// extends it first.
    pub fn restore_pending(&self, db: usize, key: &[u8], token: &[u8], fence: u64, grace: u64, at: u64) {
        let mut st = self.state.lock();
        st.pending.insert(
            (db, key.into()),
            PendingRelease {
                token: token.into(),
                fence,
                grace,
                at,
            },
        );
        self.sync(&st);
    }

    /// A snapshot's `RL.DELAYED`: `key` is not grantable before `until`.
    pub fn restore_delayed(&self, db: usize, key: &[u8], until: u64) {
        let mut st = self.state.lock();
        st.delayed.insert((db, key.into()), until);
        self.sync(&st);
    }

    // ------------------------------------------------------ reports

    /// Until when (store µs) a lock-delay keeps `key` from being granted;
    /// 0 if none runs.
    pub fn delayed_until(&self, db: usize, key: &[u8]) -> u64 {
        if !self.active() {
            return 0;
        }
        let dk = (db, Box::<[u8]>::from(key));
        self.state.lock().delayed.get(&dk).copied().unwrap_or(0)
    }

    /// A replicated group's queues are its leader's: count them too.
    pub fn set_group_queues(&self, len: GroupQueueLen) {
        let _ = self.group_queues.set(len);
    }

    /// Blocked acquires of a group waiting for lock `key` (or semaphore:
    /// `sem`) at its leader (0 when this node does not lead, or without a
    /// group).
    pub fn group_queue_len(&self, db: usize, sem: bool, key: &[u8]) -> usize {
        self.group_queues.get().map_or(0, |len| len(db, sem, key))
    }

    /// Blocked acquires waiting for `key`.
    pub fn queue_len(&self, db: usize, key: &[u8]) -> usize {
        if self.lock_waiters.load(Ordering::Relaxed) == 0 {
            return self.group_queue_len(db, false, key);
        }
        self.state
            .lock()
            .queues
            .get(&(db, Box::<[u8]>::from(key)))
            .map_or(0, VecDeque::len)
    }

    /// Remember that `client` was granted `key` with `fence` (LOCK.LIST
    /// names holders): two stores into a fixed table slot picked by the
    /// key, no map. A later grant of another key in the same slot overwrites
    /// it; the holder is then unknown, never wrong, since fences are unique.
    pub fn note_holder(&self, db: usize, key: &[u8], fence: u64, client: u64) {
        let (f, c) = &self.holders[holder_slot(db, key)];
        f.store(0, Ordering::SeqCst);
        c.store(client, Ordering::SeqCst);
        f.store(fence, Ordering::SeqCst);
    }

    /// The client that was granted `key` with `fence`, if still known.
    pub fn holder_client(&self, db: usize, key: &[u8], fence: u64) -> Option<u64> {
        let (f, c) = &self.holders[holder_slot(db, key)];
        let before = f.load(Ordering::SeqCst);
        let client = c.load(Ordering::SeqCst);
        (before == fence && f.load(Ordering::SeqCst) == fence).then_some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one blocked client costs the server besides its connection and
    /// its token's bytes: its queue entry, the blocked connection's ticket
    /// (boxed), and the oneshot channel's shared state (its value and two
    /// wakers, behind an Arc's counts).
    #[test]
    fn a_waiter_costs_a_few_hundred_bytes() {
        let entry = std::mem::size_of::<Waiter>();
        let blocked = std::mem::size_of::<crate::commands::Blocked>();
        let channel = 16 + 8 + std::mem::size_of::<Option<Granted>>() + 2 * 16;
        let total = entry + blocked + channel;
        assert!(
            total <= 300,
            "a waiter costs {entry} + {blocked} + {channel} = {total} bytes"
        );
    }
}
