//! One keyspace (a Redis "database"): a sharded map of key → [`Entry`].
//!
//! # Locking discipline (decided once, here)
//! The map is a `DashMap` whose shards are the unit of locking. A command
//! never calls the map's per-key API: the dispatcher asks for a [`Locked`]
//! view holding the write locks of exactly the shards its keys live in,
//! taken **in ascending shard order** (so two multi-key commands can never
//! deadlock), runs the command against that view, and drops it. A
//! single-key command therefore holds one shard lock for a few hundred
//! nanoseconds; MSET/DEL k1 k2/RENAME/scripts hold theirs together and are
//! atomic; EXEC and whole-keyspace commands (KEYS, SCAN, DBSIZE, FLUSHDB)
//! lock every shard. No lock is ever held across an `.await`.
//!
//! # Expiry
//! Every access through [`Locked`] checks the deadline first: an expired key
//! is removed on the spot and reported absent, so correctness never depends
//! on the background expirer. The expirer only reclaims memory, driven by a
//! per-shard min-heap of `(deadline, hash)` (16 bytes a key, no key copy).
//! A heap entry whose key was since rewritten or persisted is stale; popping
//! it removes nothing, because removal re-checks that the key in the table
//! really is expired.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::{DashMap, RwLockWriteGuard, SharedValue};
use hashbrown::raw::{Bucket, RawTable};
use parking_lot::Mutex;
use smallvec::SmallVec;

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};
use super::entry::Entry;

type Item = (SmallBytes, SharedValue<Entry>);
type Table = RawTable<Item>;
type ShardGuard<'a> = RwLockWriteGuard<'a, Table>;

/// Shards per database: enough that two cores rarely meet on one lock,
/// few enough that EXEC locking all of them stays cheap.
pub const SHARDS: usize = 32;

/// Deadlines waiting to be reclaimed in one shard: a timing wheel of
/// [`WHEEL_SLOTS`] slots of 2^[`SLOT_BITS`] µs (~65 ms, ~67 s in all), with
/// a heap for deadlines beyond the wheel. A push is O(1) (a lock grant must
/// stay cheap even when millions of stale entries wait), and the earliest
/// pending deadline is readable without a lock, so the expirer passes over
/// shards with nothing due without touching their locks.
struct ShardExpiry {
    wheel: Mutex<Wheel>,
    earliest: AtomicU64,
}

const SLOT_BITS: u32 = 16;
const WHEEL_SLOTS: u64 = 1024;

#[derive(Default)]
struct Wheel {
    /// Allocated on first use: most shards of most databases never see a TTL.
    slots: Vec<Vec<(Deadline, u64)>>,
    /// Absolute slot number (deadline >> SLOT_BITS) of the first slot not yet
    /// fully processed.
    cursor: u64,
    overflow: BinaryHeap<Reverse<(Deadline, u64)>>,
    /// Entries in the slots (not counting the overflow heap).
    len: usize,
}

impl Wheel {
    fn slot_mut(&mut self, slot: u64) -> &mut Vec<(Deadline, u64)> {
        if self.slots.is_empty() {
            self.slots = (0..WHEEL_SLOTS).map(|_| Vec::new()).collect();
        }
        &mut self.slots[(slot % WHEEL_SLOTS) as usize]
    }

    fn push(&mut self, deadline: Deadline, hash: u64, now: u64) {
        if self.len == 0 && self.overflow.is_empty() {
            self.cursor = now >> SLOT_BITS;
        }
        let slot = (deadline >> SLOT_BITS).max(self.cursor);
        if slot >= self.cursor + WHEEL_SLOTS {
            self.overflow.push(Reverse((deadline, hash)));
        } else {
            self.slot_mut(slot).push((deadline, hash));
            self.len += 1;
        }
    }

    /// A lower bound of the earliest pending deadline (u64::MAX if none).
    fn earliest(&self) -> u64 {
        if self.len > 0 {
            for i in 0..WHEEL_SLOTS {
                let slot = &self.slots[((self.cursor + i) % WHEEL_SLOTS) as usize];
                if let Some(min) = slot.iter().map(|e| e.0).min() {
                    return min;
                }
            }
        }
        self.overflow.peek().map_or(u64::MAX, |r| r.0.0)
    }
}

impl ShardExpiry {
    fn new() -> Self {
        ShardExpiry {
            wheel: Mutex::new(Wheel::default()),
            earliest: AtomicU64::new(u64::MAX),
        }
    }

    fn push(&self, deadline: Deadline, hash: u64, now: u64) {
        self.wheel.lock().push(deadline, hash, now);
        self.earliest.fetch_min(deadline, Ordering::Relaxed);
    }

    fn due(&self, now: u64) -> bool {
        self.earliest.load(Ordering::Relaxed) <= now
    }

    /// Take at most `budget` deadlines that have passed, calling `remove`
    /// with each one's key hash; how many were taken.
    fn pop_due(&self, now: u64, budget: usize, mut remove: impl FnMut(u64)) -> usize {
        let mut w = self.wheel.lock();
        let mut taken = 0;
        // Deadlines that came within the wheel's reach move into it.
        while let Some(Reverse((deadline, hash))) = w.overflow.peek().copied() {
            if (deadline >> SLOT_BITS) >= w.cursor + WHEEL_SLOTS {
                break;
            }
            w.overflow.pop();
            w.push(deadline, hash, now);
        }
        let now_slot = now >> SLOT_BITS;
        loop {
            if w.len == 0 {
                // Nothing in the wheel: no need to walk the empty slots.
                w.cursor = w.cursor.max(now_slot);
                break;
            }
            if w.cursor > now_slot || taken >= budget {
                break;
            }
            let cursor = w.cursor;
            let slot = w.slot_mut(cursor);
            let mut i = 0;
            let before = slot.len();
            while i < slot.len() && taken < budget {
                if slot[i].0 <= now {
                    remove(slot.swap_remove(i).1);
                    taken += 1;
                } else {
                    i += 1;
                }
            }
            let drained = before - slot.len();
            if slot.capacity() > 1024 && slot.len() * 4 < slot.capacity() {
                slot.shrink_to(slot.len() * 2);
            }
            let done = slot.is_empty() && cursor < now_slot;
            w.len -= drained;
            if done {
                w.cursor += 1;
            } else {
                break;
            }
        }
        self.earliest.store(w.earliest(), Ordering::Relaxed);
        taken
    }

    fn clear(&self) {
        *self.wheel.lock() = Wheel::default();
        self.earliest.store(u64::MAX, Ordering::Relaxed);
    }
}

pub struct Db {
    map: DashMap<SmallBytes, Entry, ahash::RandomState>,
    expiry: Box<[ShardExpiry]>,
    /// Keys removed because their deadline passed (lazily or by the expirer).
    pub expired_keys: AtomicU64,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    pub fn new() -> Self {
        let map = DashMap::with_hasher_and_shard_amount(ahash::RandomState::new(), SHARDS);
        let expiry = (0..map.shards().len()).map(|_| ShardExpiry::new()).collect();
        Db {
            map,
            expiry,
            expired_keys: AtomicU64::new(0),
        }
    }

    pub fn hash(&self, key: &[u8]) -> u64 {
        self.map.hash_usize(&key) as u64
    }

    pub fn shard_of_hash(&self, hash: u64) -> usize {
        self.map.determine_shard(hash as usize)
    }

    pub fn shard_count(&self) -> usize {
        self.map.shards().len()
    }

    fn view<'a>(&'a self, guards: SmallVec<[(usize, ShardGuard<'a>); 2]>, all: bool, now: u64) -> Locked<'a> {
        Locked {
            db: self,
            guards,
            all,
            now,
            expired: 0,
            last_hash: HashCache::default(),
        }
    }

    /// A view holding no locks, for commands that touch no key.
    pub fn unlocked(&self, now: u64) -> Locked<'_> {
        self.view(SmallVec::new(), false, now)
    }

    /// Lock the shards of `keys` (ascending order, each once).
    pub fn lock_keys<'k>(&self, mut keys: impl Iterator<Item = &'k [u8]>, now: u64) -> Locked<'_> {
        let Some(first) = keys.next() else {
            return self.unlocked(now);
        };
        let first_hash = self.hash(first);
        let mut shards: SmallVec<[usize; 4]> = SmallVec::new();
        shards.push(self.shard_of_hash(first_hash));
        shards.extend(keys.map(|k| self.shard_of_hash(self.hash(k))));
        if shards.len() > 1 {
            shards.sort_unstable();
            shards.dedup();
            if shards.len() == self.shard_count() {
                return self.lock_all(now);
            }
        }
        let guards = shards.into_iter().map(|s| (s, self.map.shards()[s].write())).collect();
        let mut locked = self.view(guards, false, now);
        // The command's first key is usually the one it touches: keep its hash.
        locked.last_hash.put(first, first_hash);
        locked
    }

    /// Lock every shard (ascending order).
    pub fn lock_all(&self, now: u64) -> Locked<'_> {
        let guards = self
            .map
            .shards()
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.write()))
            .collect();
        self.view(guards, true, now)
    }

    /// Visit every live key of one shard under its lock (AOF rewrite takes
    /// its snapshot shard by shard, so clients wait for one shard at most).
    pub fn for_each_in_shard(&self, shard: usize, now: u64, mut visit: impl FnMut(&[u8], &Entry)) {
        let table = self.map.shards()[shard].read();
        // SAFETY: iteration under the shard's lock; references do not escape.
        unsafe {
            for bucket in table.iter() {
                let (k, v) = bucket.as_ref();
                if !v.get().is_expired(now) {
                    visit(k, v.get());
                }
            }
        }
    }

    /// Reclaim expired keys of one shard, at most `budget` of them; returns
    /// (removed, budget exhausted). Shrinks the shard's table when it has
    /// become mostly empty, so that memory really goes back.
    pub fn reclaim_shard(&self, shard: usize, now: u64, budget: usize) -> (usize, bool) {
        if !self.expiry[shard].due(now) {
            return (0, false);
        }
        let mut table = self.map.shards()[shard].write();
        let mut removed = 0;
        let popped = self.expiry[shard].pop_due(now, budget, |hash| {
            removed += table.remove_entry(hash, |(_, v)| v.get().is_expired(now)).is_some() as usize;
        });
        if table.capacity() > 64 && table.len() * 4 < table.capacity() {
            let hasher = |e: &Item| self.hash(&e.0);
            let keep = table.len() * 2;
            table.shrink_to(keep, hasher);
        }
        self.expired_keys.fetch_add(removed as u64, Ordering::Relaxed);
        (removed, popped >= budget)
    }
}

/// The hash of one short key.
struct HashCache {
    len: usize,
    key: [u8; HashCache::MAX],
    hash: u64,
}

impl Default for HashCache {
    fn default() -> Self {
        HashCache {
            len: 0,
            key: [0; HashCache::MAX],
            hash: 0,
        }
    }
}

impl HashCache {
    const MAX: usize = 48;

    fn get(&self, key: &[u8]) -> Option<u64> {
        (self.len > 0 && key.len() == self.len && self.key[..self.len] == *key).then_some(self.hash)
    }

    fn put(&mut self, key: &[u8], hash: u64) {
        if !key.is_empty() && key.len() <= Self::MAX {
            self.key[..key.len()].copy_from_slice(key);
            self.len = key.len();
            self.hash = hash;
        }
    }
}

/// Write access to the keys of some shards of one [`Db`], for one command.
pub struct Locked<'a> {
    db: &'a Db,
    guards: SmallVec<[(usize, ShardGuard<'a>); 2]>,
    /// All shards are held and `guards[i]` is shard `i`.
    all: bool,
    /// The command's "now" (monotonic µs): one instant for the whole command,
    /// as Redis uses, so a command never sees a key both alive and expired.
    pub now: u64,
    expired: u64,
    last_hash: HashCache,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.expired > 0 {
            self.db.expired_keys.fetch_add(self.expired, Ordering::Relaxed);
        }
    }
}

/// Why a key could not be reached through a [`Locked`] view. Only a bug in a
/// command's key specification produces it; it becomes an error reply.
#[derive(Debug)]
pub struct NotLocked;

impl<'a> Locked<'a> {
    pub fn db(&self) -> &'a Db {
        self.db
    }

    /// Whether every shard of the database is held (EXEC, KEYS, FLUSHDB).
    pub fn holds_all(&self) -> bool {
        self.all
    }

    fn table(&mut self, hash: u64) -> Result<(usize, &mut Table), NotLocked> {
        let shard = self.db.shard_of_hash(hash);
        if self.all {
            return Ok((shard, &mut *self.guards[shard].1));
        }
        self.guards
            .iter_mut()
            .find(|(s, _)| *s == shard)
            .map(|(s, g)| (*s, &mut **g))
            .ok_or(NotLocked)
    }

    /// The hash of `key`, remembered for the last (short) key asked about:
    /// a command usually looks its key up, then writes it (one hash instead
    /// of three). The cache compares the key's bytes, so it is never stale.
    fn hash(&mut self, key: &[u8]) -> u64 {
        if let Some(h) = self.last_hash.get(key) {
            return h;
        }
        let h = self.db.hash(key);
        self.last_hash.put(key, h);
        h
    }

    /// Find the live entry of `key` with one probe, removing it first if its
    /// deadline has passed.
    fn find_live(&mut self, key: &[u8]) -> Result<(usize, u64, Option<Bucket<Item>>), NotLocked> {
        let hash = self.hash(key);
        let now = self.now;
        let (shard, table) = self.table(hash)?;
        let Some(bucket) = table.find(hash, |(k, _)| **k == *key) else {
            return Ok((shard, hash, None));
        };
        // SAFETY: the bucket was just found in this table, which we hold locked.
        let expired = unsafe { bucket.as_ref().1.get().is_expired(now) };
        if expired {
            // SAFETY: as above; the bucket is full and belongs to this table.
            unsafe { table.erase(bucket) };
            self.expired += 1;
            return Ok((shard, hash, None));
        }
        Ok((shard, hash, Some(bucket)))
    }

    /// The live entry of `key`, if any.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<&Entry>, NotLocked> {
        let (_, _, bucket) = self.find_live(key)?;
        // SAFETY: the bucket is live in a table we hold locked for as long as
        // the returned reference borrows `self`.
        Ok(bucket.map(|b| unsafe { b.as_ref() }.1.get()))
    }

    /// The live entry of `key` for in-place modification of its value. Its
    /// deadline can only be changed through [`Locked::set_deadline`].
    pub fn get_mut(&mut self, key: &[u8]) -> Result<Option<&mut Entry>, NotLocked> {
        let (_, _, bucket) = self.find_live(key)?;
        // SAFETY: as in `get`, and `&mut self` makes the access exclusive.
        Ok(bucket.map(|b| unsafe { b.as_mut() }.1.get_mut()))
    }

    pub fn contains(&mut self, key: &[u8]) -> Result<bool, NotLocked> {
        Ok(self.find_live(key)?.2.is_some())
    }

    /// Store `value` under `key` with `deadline`, replacing any old entry.
    /// Overwriting with the same value keeps the entry's fence.
    pub fn set(&mut self, key: &[u8], value: &[u8], deadline: Deadline) -> Result<(), NotLocked> {
        let (shard, hash, bucket) = self.find_live(key)?;
        let db = self.db;
        match bucket {
            Some(b) => {
                // SAFETY: live bucket of a table we hold locked.
                let e = unsafe { b.as_mut() }.1.get_mut();
                if *e.value != *value {
                    if e.value.len() == value.len() {
                        e.value.copy_from_slice(value);
                    } else {
                        e.value = value.into();
                    }
                    e.fence = 0;
                }
                e.deadline = deadline;
            }
            None => {
                let (_, table) = self.table(hash)?;
                let hasher = |e: &Item| db.hash(&e.0);
                table.insert(
                    hash,
                    (key.into(), SharedValue::new(Entry::new(value, deadline))),
                    hasher,
                );
            }
        }
        if deadline != NO_DEADLINE {
            db.expiry[shard].push(deadline, hash, self.now);
        }
        Ok(())
    }

    /// Change the deadline of a live key; false if the key does not exist.
    pub fn set_deadline(&mut self, key: &[u8], deadline: Deadline) -> Result<bool, NotLocked> {
        let (shard, hash, bucket) = self.find_live(key)?;
        let Some(b) = bucket else { return Ok(false) };
        // SAFETY: live bucket of a table we hold locked.
        let e = unsafe { b.as_mut() }.1.get_mut();
        let changed = e.deadline != deadline;
        e.deadline = deadline;
        if changed && deadline != NO_DEADLINE {
            self.db.expiry[shard].push(deadline, hash, self.now);
        }
        Ok(true)
    }

    /// Remove `key`; the removed live entry, if there was one.
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Entry>, NotLocked> {
        let (_, hash, bucket) = self.find_live(key)?;
        let Some(b) = bucket else { return Ok(None) };
        let (_, table) = self.table(hash)?;
        // SAFETY: live bucket of this table, which we hold locked.
        let ((_, v), _) = unsafe { table.remove(b) };
        Ok(Some(v.into_inner()))
    }

    /// Drop every key whose deadline has passed from the locked shards, so
    /// that counting and iteration see only live keys.
    fn purge_expired(&mut self) {
        let now = self.now;
        let db = self.db;
        let mut purged = 0;
        for (shard, table) in self.guards.iter_mut() {
            db.expiry[*shard].pop_due(now, usize::MAX, |hash| {
                purged += table.remove_entry(hash, |(_, v)| v.get().is_expired(now)).is_some() as u64;
            });
        }
        self.expired += purged;
    }

    /// Number of live keys in the locked shards.
    pub fn len(&mut self) -> usize {
        self.purge_expired();
        self.guards.iter().map(|(_, t)| t.len()).sum()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Remove every key of the locked shards; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let mut n = 0;
        for (shard, table) in self.guards.iter_mut() {
            n += table.len();
            table.clear();
            table.shrink_to(0, |_| 0);
            self.db.expiry[*shard].clear();
        }
        n
    }

    /// Visit live keys starting at `cursor` (an opaque position: shard and
    /// bucket), until about `limit` keys have been visited (or 64 times as
    /// many empty buckets passed); returns the next cursor (0 when done).
    ///
    /// Keys present for the whole iteration are visited at least once unless
    /// a shard's table is resized in between (a rehash may move an unvisited
    /// key behind the cursor); SCAN documents this.
    pub fn scan(&mut self, cursor: u64, limit: usize, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.purge_expired();
        let now = self.now;
        let mut shard = (cursor >> 40) as usize;
        let mut bucket = (cursor & ((1 << 40) - 1)) as usize;
        let (mut examined, mut visited) = (0usize, 0usize);
        while shard < self.guards.len() {
            let table = &self.guards[shard].1;
            let buckets = table.buckets();
            while bucket < buckets {
                // SAFETY: `bucket < buckets()` and we hold the shard's write lock,
                // so the table cannot change while the reference is used.
                unsafe {
                    if table.is_bucket_full(bucket) {
                        let (k, v) = table.bucket(bucket).as_ref();
                        if !v.get().is_expired(now) {
                            visit(k, v.get());
                            visited += 1;
                        }
                    }
                }
                bucket += 1;
                examined += 1;
                if (visited >= limit || examined >= limit.saturating_mul(64)) && bucket < buckets {
                    return ((shard as u64) << 40) | bucket as u64;
                }
            }
            shard += 1;
            bucket = 0;
            if (visited >= limit || examined >= limit.saturating_mul(64)) && shard < self.guards.len() {
                return (shard as u64) << 40;
            }
        }
        0
    }

    /// A uniformly chosen live key of the locked shards.
    pub fn random_key(&mut self, mut pick: impl FnMut(usize) -> usize) -> Option<Vec<u8>> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let mut target = pick(n);
        for (_, table) in self.guards.iter() {
            if target < table.len() {
                // SAFETY: iteration under the shard's write lock.
                let item = unsafe { table.iter().nth(target).map(|b| b.as_ref().0.to_vec()) };
                return item;
            }
            target -= table.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_key_is_never_visible_and_is_reclaimed() {
        let db = Db::new();
        {
            let mut l = db.lock_all(100);
            l.set(b"a", b"1", 150).unwrap();
            l.set(b"b", b"2", NO_DEADLINE).unwrap();
            assert_eq!(l.len(), 2);
        }
        let mut l = db.lock_all(150);
        assert!(l.get(b"a").unwrap().is_none());
        assert_eq!(l.len(), 1);
        drop(l);
        let mut l = db.lock_keys([&b"a"[..]].into_iter(), 10);
        assert!(l.get(b"a").unwrap().is_none(), "removed, even for an earlier clock");
    }

    #[test]
    fn reclaim_uses_the_heap_and_skips_rewritten_keys() {
        let db = Db::new();
        {
            let mut l = db.lock_all(1);
            l.set(b"a", b"1", 10).unwrap();
            l.set(b"a", b"1", 1000).unwrap(); // the heap entry for 10 is now stale
            l.set(b"b", b"1", 10).unwrap();
        }
        let removed: usize = (0..db.shard_count()).map(|s| db.reclaim_shard(s, 20, 100).0).sum();
        assert_eq!(removed, 1);
        let mut l = db.lock_all(20);
        assert!(l.get(b"a").unwrap().is_some());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn scan_visits_every_key_once() {
        let db = Db::new();
        let mut l = db.lock_all(1);
        for i in 0..1000 {
            l.set(format!("k{i}").as_bytes(), b"v", NO_DEADLINE).unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = l.scan(cursor, 10, |k, _| assert!(seen.insert(k.to_vec())));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 1000);
    }
}
