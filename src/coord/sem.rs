//! Counting semaphores: `SEM.ACQUIRE key token LIMIT n PX ms [WAIT ms]`,
//! SEM.RELEASE, SEM.EXTEND, SEM.INFO.
//!
//! A semaphore admits up to `limit` holders at once, each with its own
//! token, fence and deadline; further acquirers wait in FIFO order and are
//! admitted as slots free up (a release, or a holder's deadline passing:
//! the expirer wakes at the earliest deadline of a semaphore with waiters,
//! [`Coord::due`]). A semaphore is not a string key: it lives in its own
//! namespace per database, beside the keyspace (so GET/DEL/FLUSHDB do not
//! see it), and exists while it has holders or waiters. Its holders are
//! logged to the append-only file (`RL.SEMSET` / `RL.SEMDEL`) and come
//! back with their deadlines after a restart.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{Coord, DbKey, Granted, Ticket, TicketKind};
use crate::commands::CmdError;
use crate::persist::aof::{sem_del_record, sem_set_record};
use crate::store::clock::remaining_ms;
use crate::store::{Clock, Deadline};

/// One holder of a semaphore slot.
#[derive(Debug, Clone)]
pub struct Holder {
    pub token: Box<[u8]>,
    pub fence: u64,
    pub deadline: Deadline,
}

struct SemWaiter {
    ticket: u64,
    token: Box<[u8]>,
    ttl_ms: i64,
    tx: oneshot::Sender<Granted>,
}

struct Sem {
    limit: u64,
    holders: Vec<Holder>,
    waiters: VecDeque<SemWaiter>,
}

/// A live holder with its semaphore: database, name, limit, the holder,
/// and how many wait.
pub type HolderRow = (usize, Box<[u8]>, u64, Holder, usize);

/// Every semaphore of an instance, by database and name.
#[derive(Default)]
pub struct Semaphores {
    map: Mutex<HashMap<DbKey, Sem>>,
    /// Semaphores in `map`: the expirer's pass skips them with one load.
    live: AtomicUsize,
}

impl Semaphores {
    /// Replay of `RL.SEMSET`: `token` holds a slot of `key` (of `limit`).
    pub fn restore(&self, db: usize, key: &[u8], token: &[u8], fence: u64, deadline: Deadline, limit: u64) {
        let mut map = self.map.lock();
        let sem = map.entry((db, key.into())).or_insert_with(|| Sem {
            limit,
            holders: Vec::new(),
            waiters: VecDeque::new(),
        });
        sem.limit = limit;
        sem.holders.retain(|h| *h.token != *token);
        sem.holders.push(Holder {
            token: token.into(),
            fence,
            deadline,
        });
        self.live.store(map.len(), Ordering::Relaxed);
    }

    /// Replay of `RL.SEMDEL`.
    pub fn forget(&self, db: usize, key: &[u8], token: &[u8]) {
        let mut map = self.map.lock();
        let dk = (db, Box::<[u8]>::from(key));
        if let Some(sem) = map.get_mut(&dk) {
            sem.holders.retain(|h| *h.token != *token);
            if sem.holders.is_empty() && sem.waiters.is_empty() {
                map.remove(&dk);
            }
        }
        self.live.store(map.len(), Ordering::Relaxed);
    }

    /// Forget every holder (a group snapshot is loaded next); a semaphore
    /// with waiters stays for them.
    pub fn clear_holders(&self) {
        let mut map = self.map.lock();
        map.retain(|_, sem| {
            sem.holders.clear();
            !sem.waiters.is_empty()
        });
        self.live.store(map.len(), Ordering::Relaxed);
    }

    /// The earliest holder deadline of any semaphore (u64::MAX if none).
    pub fn earliest_deadline(&self) -> u64 {
        if self.live.load(Ordering::Relaxed) == 0 {
            return u64::MAX;
        }
        let map = self.map.lock();
        map.values()
            .flat_map(|sem| sem.holders.iter().map(|h| h.deadline))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Every live holder, with its semaphore's database, name and limit
    /// (the append-only file's rewrite, LOCK.LIST).
    pub fn holders(&self, now: u64) -> Vec<HolderRow> {
        let map = self.map.lock();
        let mut out = Vec::new();
        for ((db, key), sem) in map.iter() {
            for h in sem.holders.iter().filter(|h| h.deadline > now) {
                out.push((*db, key.clone(), sem.limit, h.clone(), sem.waiters.len()));
            }
        }
        out
    }
}

/// How a SEM.ACQUIRE ended.
pub enum SemAcquire {
    Granted(u64),
    Busy,
    Queued(Ticket, oneshot::Receiver<Granted>),
}

/// What SEM.INFO reports.
pub struct SemInfo {
    pub limit: u64,
    /// (token, fence, remaining ms)
    pub holders: Vec<(Box<[u8]>, u64, i64)>,
    pub waiters: usize,
}

impl Coord {
    pub(super) fn sems(&self) -> &Semaphores {
        &self.keyspace.sems
    }

    fn log_holder(&self, db: usize, key: &[u8], limit: u64, h: &Holder, now: u64) -> u64 {
        self.aof.as_ref().map_or(0, |aof| {
            let unix_ms = Clock::unix_ms_of(h.deadline, now).max(1);
            aof.append(|buf| sem_set_record(buf, db, key, &h.token, unix_ms, h.fence, limit))
        })
    }

    fn log_forget(&self, db: usize, key: &[u8], token: &[u8]) {
        if let Some(aof) = &self.aof {
            aof.append(|buf| sem_del_record(buf, db, key, token));
        }
    }

    /// Drop the holders whose deadline passed, then admit waiters into the
    /// free slots, in order.
    fn sem_settle(&self, sem: &mut Sem, db: usize, key: &[u8], now: u64) {
        sem.holders.retain(|h| h.deadline > now);
        while (sem.holders.len() as u64) < sem.limit {
            let Some(w) = sem.waiters.pop_front() else { break };
            self.left();
            if w.tx.is_closed() {
                continue;
            }
            let holder = Holder {
                token: w.token.clone(),
                fence: self.keyspace.fences.next(),
                deadline: Clock::deadline_in_ms(w.ttl_ms, now),
            };
            let aof_mark = self.log_holder(db, key, sem.limit, &holder, now);
            if w.tx
                .send(Granted {
                    fence: holder.fence,
                    aof_mark,
                    served: None,
                })
                .is_err()
            {
                self.log_forget(db, key, &w.token);
                continue;
            }
            self.stats.acquired(db, key, &w.token, now);
            sem.holders.retain(|h| *h.token != *w.token);
            sem.holders.push(holder);
        }
    }

    /// `SEM.ACQUIRE`: a slot for `token` (or its own again, extended), a
    /// place in the queue with `wait`, or busy.
    #[allow(clippy::too_many_arguments)]
    pub fn sem_acquire(
        &self,
        db: usize,
        key: &[u8],
        token: &[u8],
        limit: u64,
        ttl_ms: i64,
        wait: bool,
        now: u64,
    ) -> Result<SemAcquire, CmdError> {
        let mut map = self.sems().map.lock();
        let mut due = 0;
        let dk = (db, Box::<[u8]>::from(key));
        let sem = map.entry(dk.clone()).or_insert_with(|| Sem {
            limit,
            holders: Vec::new(),
            waiters: VecDeque::new(),
        });
        self.sem_settle(sem, db, key, now);
        let result = if sem.limit != limit && !(sem.holders.is_empty() && sem.waiters.is_empty()) {
            Err(CmdError::msg(format!(
                "ERR semaphore LIMIT {limit} does not match the semaphore's current limit {}",
                sem.limit
            )))
        } else {
            sem.limit = limit;
            let deadline = Clock::deadline_in_ms(ttl_ms, now);
            if let Some(h) = sem.holders.iter_mut().find(|h| *h.token == *token) {
                h.deadline = deadline;
                let h = h.clone();
                self.log_holder(db, key, limit, &h, now);
                self.stats.acquired(db, key, token, now);
                Ok(SemAcquire::Granted(h.fence))
            } else if (sem.holders.len() as u64) < limit && sem.waiters.is_empty() {
                let h = Holder {
                    token: token.into(),
                    fence: self.keyspace.fences.next(),
                    deadline,
                };
                self.log_holder(db, key, limit, &h, now);
                self.stats.acquired(db, key, token, now);
                sem.holders.push(h.clone());
                Ok(SemAcquire::Granted(h.fence))
            } else if wait {
                due = sem.holders.iter().map(|h| h.deadline).min().unwrap_or(0);
                self.admit(sem.waiters.len()).map(|()| {
                    let (tx, rx) = oneshot::channel();
                    let id = self.ticket();
                    sem.waiters.push_back(SemWaiter {
                        ticket: id,
                        token: token.into(),
                        ttl_ms,
                        tx,
                    });
                    let ticket = Ticket {
                        kind: TicketKind::Sem,
                        db,
                        key: key.into(),
                        token: token.into(),
                        id,
                    };
                    SemAcquire::Queued(ticket, rx)
                })
            } else {
                self.stats.busy();
                Ok(SemAcquire::Busy)
            }
        };
        if sem.holders.is_empty() && sem.waiters.is_empty() {
            map.remove(&dk);
        }
        self.sems().live.store(map.len(), Ordering::Relaxed);
        drop(map);
        if matches!(result, Ok(SemAcquire::Queued(..))) {
            self.wake_expirer_by(due);
        }
        result
    }

    /// `SEM.RELEASE`: whether `token` held a slot.
    pub fn sem_release_token(&self, db: usize, key: &[u8], token: &[u8]) -> bool {
        let now = self.keyspace.clock.now_us();
        let mut map = self.sems().map.lock();
        let dk = (db, Box::<[u8]>::from(key));
        let Some(sem) = map.get_mut(&dk) else {
            return false;
        };
        sem.holders.retain(|h| h.deadline > now);
        let before = sem.holders.len();
        sem.holders.retain(|h| *h.token != *token);
        let released = sem.holders.len() < before;
        if released {
            self.log_forget(db, key, token);
            self.stats
                .released(db, key, token, crate::lockstats::Release::Released, true, now);
        }
        self.sem_settle(sem, db, key, now);
        if sem.holders.is_empty() && sem.waiters.is_empty() {
            map.remove(&dk);
        }
        self.sems().live.store(map.len(), Ordering::Relaxed);
        released
    }

    /// `SEM.EXTEND`: whether `token` held a slot (now until `ttl_ms` from now).
    pub fn sem_extend(&self, db: usize, key: &[u8], token: &[u8], ttl_ms: i64, now: u64) -> bool {
        let mut map = self.sems().map.lock();
        let Some(sem) = map.get_mut(&(db, Box::<[u8]>::from(key))) else {
            return false;
        };
        let limit = sem.limit;
        let Some(h) = sem.holders.iter_mut().find(|h| *h.token == *token && h.deadline > now) else {
            return false;
        };
        h.deadline = Clock::deadline_in_ms(ttl_ms, now);
        let h = h.clone();
        self.log_holder(db, key, limit, &h, now);
        true
    }

    /// `SEM.INFO`.
    pub fn sem_info(&self, db: usize, key: &[u8], now: u64) -> Option<SemInfo> {
        let mut map = self.sems().map.lock();
        let sem = map.get_mut(&(db, Box::<[u8]>::from(key)))?;
        self.sem_settle(sem, db, key, now);
        Some(SemInfo {
            limit: sem.limit,
            holders: sem
                .holders
                .iter()
                .map(|h| (h.token.clone(), h.fence, remaining_ms(h.deadline, now)))
                .collect(),
            waiters: sem.waiters.len(),
        })
    }

    /// When a slot of `key` may be free for `token` (store µs): 0 if one
    /// is now, the semaphore does not exist or `token` holds one already,
    /// else its holders' earliest deadline. Read-only (a group's leader
    /// plans its waiters' next try with it).
    pub fn sem_free_at(&self, db: usize, key: &[u8], token: &[u8]) -> u64 {
        let map = self.sems().map.lock();
        match map.get(&(db, Box::<[u8]>::from(key))) {
            Some(sem) if sem.holders.len() as u64 >= sem.limit && !sem.holders.iter().any(|h| *h.token == *token) => {
                sem.holders.iter().map(|h| h.deadline).min().unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Take a semaphore waiter out of its queue: false if it was admitted meanwhile.
    pub(super) fn sem_cancel(&self, ticket: &Ticket) -> bool {
        let mut map = self.sems().map.lock();
        let dk = (ticket.db, ticket.key.clone());
        let Some(sem) = map.get_mut(&dk) else {
            return false;
        };
        let Some(at) = sem.waiters.iter().position(|w| w.ticket == ticket.id) else {
            return false;
        };
        sem.waiters.remove(at);
        self.left();
        if sem.holders.is_empty() && sem.waiters.is_empty() {
            map.remove(&dk);
        }
        self.sems().live.store(map.len(), Ordering::Relaxed);
        true
    }

    /// The expirer's pass over semaphores: expire holders, admit waiters,
    /// drop empty semaphores; the earliest deadline a waiter waits for.
    pub(super) fn sem_due(&self, now: u64) -> u64 {
        if self.sems().live.load(Ordering::Relaxed) == 0 {
            return u64::MAX;
        }
        let mut next = u64::MAX;
        let mut map = self.sems().map.lock();
        map.retain(|(db, key), sem| {
            if sem.holders.iter().any(|h| h.deadline <= now) {
                self.sem_settle(sem, *db, key, now);
            }
            if !sem.waiters.is_empty() {
                next = sem.holders.iter().map(|h| h.deadline).fold(next, u64::min);
            }
            !(sem.holders.is_empty() && sem.waiters.is_empty())
        });
        self.sems().live.store(map.len(), Ordering::Relaxed);
        next
    }
}
