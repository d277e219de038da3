//! Clients blocked on lists: BLPOP, BRPOP, BLMOVE and BRPOPLPUSH that
//! found every key empty, in Redis's order.
//!
//! # Ready keys, then serving
//! A push ([`crate::commands::lists::push`], the one way elements enter a
//! list) or a RENAME onto the key signals it as ready ([`signal_ready`])
//! while anyone is blocked on a list at all. The ready keys are served once the top-level command
//! that pushed has run (so a push inside MULTI/EXEC or a script wakes
//! waiters after the EXEC or the script, as Redis's `handleClientsBlockedOnKeys`),
//! in the order they became ready, still under the pushing command's shard
//! locks: nobody pops in between. A key's waiters are served longest-waiting
//! first while the list has elements; a client blocked on several keys is
//! served once and leaves every queue. BLMOVE's push onto its destination
//! makes that key ready in turn. A waiter whose destination's shard the
//! pushing command does not hold is served right after it, under fresh
//! locks of both keys ([`Coord::serve_list`] says which key it needs).
//!
//! The ready keys of the command running on a thread are kept in a
//! thread-local list: a command runs start to end on one thread.
//!
//! # Locking order
//! shard lock(s) → `lists` → the append-only file's buffer.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;

use super::{Coord, DbKey, Granted, Ticket, TicketKind};
use crate::commands::CmdError;
use crate::commands::lists::{End, move_element, pop};
use crate::persist::aof::key_record;
use crate::store::types::{Container, List};
use crate::store::{Db, Locked, SmallBytes};

/// Clients blocked on lists, all instances of this process: pushes skip
/// signalling with one load while it is 0.
static LIST_WAITERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Keys made ready by the command running on this thread: the address
    /// of their [`Db`] and the key, in the order they became ready.
    static READY: RefCell<Vec<(usize, Box<[u8]>)>> = const { RefCell::new(Vec::new()) };
}

/// `key` of the database `keys` views received elements: its waiters, if
/// any, are served after the command.
#[inline]
pub fn signal_ready(keys: &Locked<'_>, key: &[u8]) {
    if LIST_WAITERS.load(Ordering::Relaxed) == 0 {
        return;
    }
    let db = keys.db() as *const Db as usize;
    READY.with(|r| {
        let mut r = r.borrow_mut();
        if !r.iter().any(|(d, k)| *d == db && **k == *key) {
            r.push((db, key.into()));
        }
    });
}

/// The keys made ready on this thread since the last call, in order.
/// (One load while nobody is blocked on a list: a key signalled before the
/// last waiter left is looked at later, and has no waiters then.)
fn take_ready() -> Vec<(usize, Box<[u8]>)> {
    if LIST_WAITERS.load(Ordering::Relaxed) == 0 {
        return Vec::new();
    }
    READY.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// What a blocked list command does once one of its keys has elements.
#[derive(Debug, Clone)]
pub enum ListOp {
    /// BLPOP / BRPOP: pop one element from this end.
    Pop(End),
    /// BLMOVE / BRPOPLPUSH: move one element onto `dst`.
    Move { from: End, to: End, dst: Box<[u8]> },
}

/// The reply a served list waiter receives (in [`Granted::served`]).
#[derive(Debug)]
pub enum Served {
    /// BLPOP / BRPOP: the key served and its element.
    Popped { key: Box<[u8]>, item: SmallBytes },
    /// BLMOVE / BRPOPLPUSH: the element moved.
    Moved(SmallBytes),
    /// The serving failed (a destination of the wrong type): the client is
    /// unblocked with this error, as Redis does.
    Failed(CmdError),
    /// A reply already encoded: a replicated group's blocking acquire,
    /// answered by the leader's apply (`crate::group::waiters`).
    Encoded(Vec<u8>),
}

struct ListWaiter {
    db: usize,
    keys: Vec<Box<[u8]>>,
    op: ListOp,
    tx: oneshot::Sender<Granted>,
}

/// Per key, the tickets of its waiters in arrival order; per ticket, the
/// waiter.
#[derive(Default)]
pub(super) struct ListState {
    queues: HashMap<DbKey, VecDeque<u64>>,
    waiters: HashMap<u64, ListWaiter>,
}

impl ListState {
    /// Take waiter `id` out of every queue it is in.
    fn remove(&mut self, id: u64) -> Option<ListWaiter> {
        let w = self.waiters.remove(&id)?;
        for key in &w.keys {
            let dk = (w.db, key.clone());
            if let Some(q) = self.queues.get_mut(&dk) {
                q.retain(|&t| t != id);
                if q.is_empty() {
                    self.queues.remove(&dk);
                }
            }
        }
        Some(w)
    }
}

impl Coord {
    /// Block a client on `keys` (all empty, under their shard locks, so a
    /// push cannot slip in between the attempt and the queueing).
    pub fn enqueue_list(&self, db: usize, keys: &[&[u8]], op: ListOp) -> (Ticket, oneshot::Receiver<Granted>) {
        let (tx, rx) = oneshot::channel();
        let id = self.ticket();
        let mut own: Vec<Box<[u8]>> = Vec::with_capacity(keys.len());
        for k in keys {
            if !own.iter().any(|o| **o == **k) {
                own.push((*k).into());
            }
        }
        let mut st = self.lists.lock();
        for k in &own {
            st.queues.entry((db, k.clone())).or_default().push_back(id);
        }
        let ticket = Ticket {
            kind: TicketKind::List,
            db,
            key: own[0].clone(),
            token: Box::default(),
            id,
        };
        st.waiters.insert(id, ListWaiter { db, keys: own, op, tx });
        LIST_WAITERS.fetch_add(1, Ordering::Relaxed);
        self.stats.waiters.fetch_add(1, Ordering::Relaxed);
        (ticket, rx)
    }

    /// Take a list waiter out of its queues: false if it was served meanwhile.
    pub(super) fn list_cancel(&self, ticket: &Ticket) -> bool {
        let gone = self.lists.lock().remove(ticket.id).is_some();
        if gone {
            self.list_left();
        }
        gone
    }

    fn list_left(&self) {
        LIST_WAITERS.fetch_sub(1, Ordering::Relaxed);
        self.left();
    }

    /// After a top-level command, with its shard locks (`locked`): serve
    /// the keys it made ready, in order, and those the serving makes ready
    /// (BLMOVE's destinations); then, under fresh locks, the ones whose
    /// waiters need a key `locked` does not hold.
    pub fn serve_ready(&self, mut locked: Locked<'_>) {
        let mut ready: VecDeque<(usize, Box<[u8]>)> = take_ready().into();
        if ready.is_empty() {
            return;
        }
        let held = locked.db() as *const Db as usize;
        let mut later = VecDeque::new();
        while let Some((db_addr, key)) = ready.pop_front() {
            if let Some(db) = self.db_index(db_addr) {
                if db_addr == held && locked.contains(&key).is_ok() {
                    if self.serve_list(db, &mut locked, &key).is_some() {
                        later.push_back((db, key));
                    }
                } else {
                    later.push_back((db, key));
                }
            }
            ready.extend(take_ready());
        }
        drop(locked);
        while let Some((db, key)) = later.pop_front() {
            loop {
                let dst = self.list_head_target(db, &key);
                let now = self.keyspace.clock.now_us();
                let mut own = self.keyspace.dbs[db].lock_keys(std::iter::once(&key[..]).chain(dst.as_deref()), now);
                let blocked = self.serve_list(db, &mut own, &key);
                drop(own);
                for (db_addr, k) in take_ready() {
                    if let Some(d) = self.db_index(db_addr) {
                        later.push_back((d, k));
                    }
                }
                if blocked.is_none() {
                    break;
                }
            }
        }
    }

    /// The index of the database at `addr` (as [`signal_ready`] noted it).
    fn db_index(&self, addr: usize) -> Option<usize> {
        self.keyspace
            .dbs
            .iter()
            .position(|d| std::ptr::eq(d, addr as *const Db))
    }

    /// The destination the first waiter of `key` would push to, if it is
    /// a BLMOVE (to lock it with `key` before [`serve_list`](Self::serve_list)).
    fn list_head_target(&self, db: usize, key: &[u8]) -> Option<Box<[u8]>> {
        let st = self.lists.lock();
        let id = *st.queues.get(&(db, Box::<[u8]>::from(key)))?.front()?;
        match &st.waiters.get(&id)?.op {
            ListOp::Move { dst, .. } => Some(dst.clone()),
            ListOp::Pop(_) => None,
        }
    }

    /// Serve the waiters of the ready list `key` of `db` (under its shard
    /// lock, in `locked`), longest-waiting first, while it has elements.
    /// Stops at a BLMOVE waiter whose destination `locked` does not hold,
    /// and returns that destination: the caller serves it under fresh
    /// locks.
    pub fn serve_list(&self, db: usize, locked: &mut Locked<'_>, key: &[u8]) -> Option<Box<[u8]>> {
        let now = locked.now;
        let dk = (db, Box::<[u8]>::from(key));
        let mut st = self.lists.lock();
        loop {
            let id = *st.queues.get(&dk)?.front()?;
            let Some(w) = st.waiters.get(&id) else {
                st.remove(id);
                continue;
            };
            if w.tx.is_closed() {
                st.remove(id);
                self.list_left();
                continue;
            }
            let has_items = matches!(
                locked.get(key),
                Ok(Some(e)) if List::of(&e.value).is_some_and(|l| !l.is_empty())
            );
            if !has_items {
                return None;
            }
            if let ListOp::Move { dst, .. } = &w.op
                && **dst != *key
                && locked.contains(dst).is_err()
            {
                return Some(dst.clone());
            }
            let Some(w) = st.remove(id) else { continue };
            self.list_left();
            let (served, touched): (Served, Option<&[u8]>) = match &w.op {
                ListOp::Pop(end) => match pop(locked, key, *end, 1) {
                    Ok(Some(mut items)) if !items.is_empty() => (
                        Served::Popped {
                            key: key.into(),
                            item: items.swap_remove(0),
                        },
                        None,
                    ),
                    Ok(_) => continue,
                    Err(e) => (Served::Failed(e), None),
                },
                ListOp::Move { from, to, dst } => match move_element(locked, key, dst, *from, *to) {
                    Ok(Some(item)) => (Served::Moved(item), Some(&dst[..])),
                    Ok(None) => continue,
                    Err(e) => (Served::Failed(e), None),
                },
            };
            let aof_mark = match (&self.aof, &served) {
                (Some(aof), Served::Popped { .. } | Served::Moved(_)) => aof.append(|buf| {
                    for k in std::iter::once(key).chain(touched) {
                        let entry = locked.get(k).ok().flatten();
                        key_record(buf, db, k, entry, now);
                    }
                }),
                _ => 0,
            };
            // A client that went away as it was served: the element is
            // gone, as in Redis when a client closes before reading its reply.
            let _ = w.tx.send(Granted {
                fence: 0,
                aof_mark,
                served: Some(Box::new(served)),
            });
        }
    }
}
