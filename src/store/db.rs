//! One keyspace (a Redis "database"): a sharded map of key → [`Entry`].
//!
//! # Layout
//! Each shard keeps its entries (key, value, deadline, fence: 64 bytes)
//! densely in a vector, and its hash table holds only 4-byte indexes into
//! it — the layout of `indexmap`, sharded. Hash tables grow by doubling, so
//! a table is between 44% and 87% full; with 64-byte entries in the table
//! that empty space cost up to ~85 bytes a key, with 4-byte indexes (plus
//! the control byte) it costs at most ~7. A removal moves the vector's last entry into the hole and
//! re-points that entry's index.
//!
//! # Locking discipline (decided once, here)
//! A shard is one [`RwLock`] owning everything of the shard: its index
//! table, its entries and its expiry wheel ([`super::wheel`]), so nothing
//! of a shard is reachable without its lock. A command never locks a shard
//! itself: the dispatcher asks for a [`Locked`] view holding the write
//! locks of exactly the shards its keys live in, taken **in ascending
//! shard order** (so two multi-key commands can never deadlock), runs the
//! command against that view, and drops it. A single-key command therefore
//! holds one shard lock for a few hundred nanoseconds; MSET/DEL k1 k2/
//! RENAME/scripts hold theirs together and are atomic; EXEC and
//! whole-keyspace commands (KEYS, SCAN, DBSIZE, FLUSHDB) lock every shard.
//! No lock is ever held across an `.await`. Beside each lock, outside it,
//! is only an atomic copy of the wheel's earliest deadline, so that the
//! expirer passes over shards with nothing due without taking their locks.
//!
//! # Hashing
//! A key is hashed once (ahash, seeded per database); the hash picks the
//! shard from the bits just below its top 7, and the shard's table uses its
//! low bits (the bucket) and top 7 bits (the control byte's tag), so the
//! three choices do not correlate.
//!
//! # Expiry
//! Every access through [`Locked`] checks the deadline first: an expired key
//! is removed on the spot and reported absent, so correctness never depends
//! on the background expirer. The expirer only reclaims memory, driven by
//! each shard's timing wheel of `(deadline, hash)` ([`super::wheel`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockWriteGuard};
use smallvec::SmallVec;

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};
use super::entry::Entry;
use super::types::Value;
use super::wheel::Wheel;
use crate::prefetch::prefetch;

/// A stored key and its entry, in a shard's dense vector.
type Slot = (SmallBytes, Entry);
type Hasher = ahash::RandomState;

/// Shards per database: enough that two cores rarely meet on one lock,
/// few enough that EXEC locking all of them stays cheap.
pub const SHARDS: usize = 32;
/// A hash's shard is its bits `63-7-log2(SHARDS)..63-7` (see "Hashing").
const SHARD_SHIFT: u32 = 64 - SHARDS.trailing_zeros();

pub struct Db {
    shards: Box<[ShardLock]>,
    hasher: Hasher,
    /// Keys removed because their deadline passed (lazily or by the expirer).
    pub expired_keys: AtomicU64,
    /// Told of each key removed because its deadline passed, under its
    /// shard's lock (the status page's "expired" events); unset, an expiry
    /// costs one load more.
    on_expire: OnceLock<ExpireHook>,
    /// Asked, after `on_expire`, for an entry to take an expired key's
    /// place at once (a lock handed to its next waiter).
    on_refill: OnceLock<RefillHook>,
}

/// See [`Db::set_expire_hook`].
pub type ExpireHook = Box<dyn Fn(&[u8], &Entry) + Send + Sync>;
/// See [`Db::set_refill_hook`].
pub type RefillHook = Box<dyn Fn(&[u8], &Entry, u64) -> Option<Entry> + Send + Sync>;

/// A shard's lock and the one thing kept outside it. Cache-line aligned,
/// so that cores taking neighbouring shards do not contend for one line.
#[repr(align(128))]
struct ShardLock {
    shard: RwLock<Shard>,
    /// A lower bound of the earliest deadline in the shard's wheel
    /// (u64::MAX if none), written under the write lock: lowered by every
    /// push, recomputed by every pop.
    earliest: AtomicU64,
}

/// Everything of one shard, guarded by its one lock.
#[derive(Default)]
struct Shard {
    keys: Keys,
    wheel: Wheel,
}

/// A shard's keys: the dense entries and the table of their indexes.
#[derive(Default)]
struct Keys {
    table: HashTable<u32>,
    slots: Vec<Slot>,
    /// Where the table's item array ends (its address; 0 while the table
    /// has no allocation), for [`Db::prefetch_table`] only: hashbrown stores
    /// bucket `b`'s item at `end - (b + 1)` items and bucket `b`'s control
    /// byte at `end + b`. Noted when the table may have moved (an insert, a
    /// shrink, a clear); a wrong value would only make prefetches useless.
    table_end: usize,
}

impl Default for Db {
    fn default() -> Self {
        Self::new()
    }
}

impl Db {
    pub fn new() -> Self {
        let shards = (0..SHARDS)
            .map(|_| ShardLock {
                shard: RwLock::new(Shard::default()),
                earliest: AtomicU64::new(u64::MAX),
            })
            .collect();
        Db {
            shards,
            hasher: Hasher::new(),
            expired_keys: AtomicU64::new(0),
            on_expire: OnceLock::new(),
            on_refill: OnceLock::new(),
        }
    }

    /// Have `hook` called with every key (and its entry) removed because
    /// its deadline passed. Set once; it runs under the key's shard lock,
    /// so it must be brief and must not touch the keyspace.
    pub fn set_expire_hook(&self, hook: ExpireHook) {
        let _ = self.on_expire.set(hook);
    }

    fn expired(&self, (key, entry): &Slot) {
        if let Some(hook) = self.on_expire.get() {
            hook(key, entry);
        }
    }

    /// Have `hook` called (with the key, its expired entry and the time)
    /// for every key removed because its deadline passed, lazily or by the
    /// expirer, after the expire hook; an entry it returns is stored under
    /// the key at once, under the same shard lock, so that nobody sees the
    /// key free in between: that is how an expired lock goes straight to
    /// the head of its waiters. Set once; it must not touch the keyspace.
    pub fn set_refill_hook(&self, hook: RefillHook) {
        let _ = self.on_refill.set(hook);
    }

    fn refill(&self, (key, entry): &Slot, now: u64) -> Option<Entry> {
        self.on_refill.get().and_then(|hook| hook(key, entry, now))
    }

    /// The earliest deadline any shard may have due (a lower bound;
    /// u64::MAX if none): when the expirer must look next for a grant on
    /// expiry to be on time.
    pub fn earliest_deadline(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.earliest.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// `look` at `key`'s entry as stored, even if its deadline has passed,
    /// or None without one; read-only under the shard's read lock, so no
    /// expiry and no hook runs. (A group's leader plans its waiters' next
    /// try with it, outside the log's applies.)
    pub fn peek<R>(&self, key: &[u8], look: impl FnOnce(&Entry) -> R) -> Option<R> {
        let hash = self.hash(key);
        let shard = self.shards[self.shard_of_hash(hash)].shard.read();
        shard.keys.find(hash, key).map(|(_, i)| look(&shard.keys.slots[i].1))
    }

    pub fn hash(&self, key: &[u8]) -> u64 {
        Keys::hash(&self.hasher, key)
    }

    pub fn shard_of_hash(&self, hash: u64) -> usize {
        ((hash << 7) >> SHARD_SHIFT) as usize
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn view<'a>(&'a self, guards: SmallVec<[(usize, ShardGuard<'a>); 2]>, all: bool, now: u64) -> Locked<'a> {
        Locked {
            db: self,
            guards,
            all,
            now,
            first_key: None,
        }
    }

    /// A view holding no locks, for commands that touch no key.
    pub fn unlocked(&self, now: u64) -> Locked<'_> {
        self.view(SmallVec::new(), false, now)
    }

    /// Lock the shards of `keys` (ascending order, each once). The view
    /// lives no longer than the keys, so it can keep the first one's hash.
    pub fn lock_keys<'a>(&'a self, mut keys: impl Iterator<Item = &'a [u8]>, now: u64) -> Locked<'a> {
        let Some(first) = keys.next() else {
            return self.unlocked(now);
        };
        let first_hash = self.hash(first);
        let first_shard = self.shard_of_hash(first_hash);
        let mut guards = SmallVec::new();
        match keys.next() {
            // One key (most commands): no list of shards to build and sort.
            None => guards.push((first_shard, self.shards[first_shard].shard.write())),
            Some(second) => {
                let mut shards: SmallVec<[usize; 4]> = SmallVec::new();
                shards.push(first_shard);
                shards.push(self.shard_of_hash(self.hash(second)));
                for k in keys {
                    shards.push(self.shard_of_hash(self.hash(k)));
                }
                shards.sort_unstable();
                shards.dedup();
                if shards.len() == self.shard_count() {
                    return self.lock_all(now);
                }
                for s in shards {
                    guards.push((s, self.shards[s].shard.write()));
                }
            }
        }
        let mut locked = self.view(guards, false, now);
        // The command's first key is usually the one it touches: keep its hash.
        locked.first_key = Some((first, first_hash));
        locked
    }

    /// Lock every shard (ascending order).
    pub fn lock_all(&self, now: u64) -> Locked<'_> {
        let guards = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| (i, s.shard.write()))
            .collect();
        self.view(guards, true, now)
    }

    /// Visit every live key of one shard under its lock (AOF rewrite takes
    /// its snapshot shard by shard, so clients wait for one shard at most).
    pub fn for_each_in_shard(&self, shard: usize, now: u64, mut visit: impl FnMut(&[u8], &Entry)) {
        for (k, e) in &self.shards[shard].shard.read().keys.slots {
            if !e.is_expired(now) {
                visit(k, e);
            }
        }
    }

    /// Reclaim expired keys of one shard, at most `budget` of them; returns
    /// (removed, budget exhausted). Shrinks the shard's table and entries
    /// when they have become mostly empty, so that memory really goes back.
    pub fn reclaim_shard(&self, shard_no: usize, now: u64, budget: usize) -> (usize, bool) {
        if self.shards[shard_no].earliest.load(Ordering::Relaxed) > now {
            return (0, false);
        }
        let mut shard = self.shards[shard_no].shard.write();
        let (removed, popped) = self.pop_due(shard_no, &mut shard, now, budget);
        shard.keys.shrink_if_sparse(&self.hasher);
        self.expired_keys.fetch_add(removed as u64, Ordering::Relaxed);
        (removed, popped >= budget)
    }

    /// Take at most `budget` passed deadlines from locked shard `shard_no`'s
    /// wheel and remove their keys if still expired; returns (keys removed,
    /// deadlines taken).
    fn pop_due(&self, shard_no: usize, shard: &mut Shard, now: u64, budget: usize) -> (usize, usize) {
        let Shard { keys, wheel } = shard;
        let mut removed = 0;
        let mut refills: SmallVec<[(u64, SmallBytes, Entry); 1]> = SmallVec::new();
        let popped = wheel.pop_due(now, budget, |hash| {
            if let Some(slot) = keys.remove_expired(&self.hasher, hash, now) {
                removed += 1;
                self.expired(&slot);
                if let Some(entry) = self.refill(&slot, now) {
                    refills.push((hash, slot.0, entry));
                }
            }
        });
        for (hash, key, entry) in refills {
            let deadline = entry.deadline;
            keys.insert(&self.hasher, hash, (key, entry));
            self.schedule(shard_no, wheel, deadline, hash, now);
        }
        self.shards[shard_no]
            .earliest
            .store(wheel.earliest(), Ordering::Relaxed);
        (removed, popped)
    }

    /// Tell locked shard `shard_no`'s expiry wheel about a key's changed
    /// deadline (callers skip an unchanged one, already in the wheel: INCR
    /// on a key with a TTL must not add an entry per increment). A
    /// persistent key needs no entry, and neither does a far deadline
    /// ([`super::clock::is_far`]): it never comes due while the process runs.
    fn schedule(&self, shard_no: usize, wheel: &mut Wheel, deadline: Deadline, hash: u64, now: u64) {
        if deadline != NO_DEADLINE && !super::clock::is_far(deadline) {
            wheel.push(deadline, hash, now);
            self.shards[shard_no].earliest.fetch_min(deadline, Ordering::Relaxed);
        }
    }
}

/// Prefetching, for pipelined batches. A lookup of a key that is not in
/// the CPU cache waits for three dependent loads: its table's control
/// group, its index in the table, then its entry. When a batch of requests
/// has arrived, the connection asks for the first two of every request's
/// key before executing any ([`Db::prefetch_table`]), then for the entries
/// ([`Db::prefetch_entry`]), so the loads overlap instead of queueing up
/// one request at a time. Only hints, under a read lock (a busy shard is
/// skipped): the addresses are computed, and [`prefetch`] never reads them.
impl Db {
    /// Start loading the control group and the index at the home position
    /// of `hash` in its shard's table (hashbrown probes from bucket
    /// `hash & (buckets - 1)`; [`Keys::table_end`] says where it lies).
    pub fn prefetch_table(&self, hash: u64) {
        let Some(shard) = self.shards[self.shard_of_hash(hash)].shard.try_read() else {
            return;
        };
        let keys = &shard.keys;
        if keys.table_end == 0 {
            return;
        }
        let home = hash as usize & (keys.table.num_buckets() - 1);
        let control = keys.table_end.wrapping_add(home);
        let index = keys.table_end.wrapping_sub((home + 1) * size_of::<u32>());
        prefetch(std::ptr::without_provenance::<u8>(control));
        prefetch(std::ptr::without_provenance::<u32>(index));
    }

    /// Start loading the entry that `hash`'s first candidate bucket points
    /// to (after [`Db::prefetch_table`], its control group and index are
    /// usually in cache by now).
    pub fn prefetch_entry(&self, hash: u64) {
        let Some(shard) = self.shards[self.shard_of_hash(hash)].shard.try_read() else {
            return;
        };
        let keys = &shard.keys;
        if let Some(&i) = keys.table.iter_hash(hash).next()
            && let Some(slot) = keys.slots.get(i as usize)
        {
            prefetch(slot);
        }
    }
}

/// The address where a table's item array ends, from one of its items and
/// that item's bucket (see [`Keys::table_end`]).
fn table_end(item: &u32, bucket: usize) -> usize {
    (item as *const u32).addr() + (bucket + 1) * size_of::<u32>()
}

/// A live entry found in a locked shard: its bucket in the table and its
/// position in the entries.
type Found = (usize, usize);

/// Where a key is, or would go: its shard (locked) and hash, and its live
/// entry if it has one.
struct Lookup<'t> {
    shard_no: usize,
    hash: u64,
    shard: &'t mut Shard,
    found: Option<Found>,
}

impl Keys {
    fn hash(hasher: &Hasher, key: &[u8]) -> u64 {
        hasher.hash_one(key)
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<Found> {
        let slots = &self.slots;
        // The comparison that succeeds is the last one made: keep its index
        // rather than read the bucket again.
        let mut at = 0;
        let bucket = self.table.find_bucket_index(hash, |&i| {
            at = i as usize;
            *slots[at].0 == *key
        })?;
        Some((bucket, at))
    }

    fn insert(&mut self, hasher: &Hasher, hash: u64, slot: Slot) {
        let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 keys per shard");
        self.slots.push(slot);
        let slots = &self.slots;
        let item = self
            .table
            .insert_unique(hash, i, |&j| Self::hash(hasher, &slots[j as usize].0));
        // The table may have grown into a new allocation.
        self.table_end = table_end(item.get(), item.bucket_index());
    }

    /// Remove the entry that `bucket` (full) points to: the last entry moves
    /// into its place, and that entry's index follows it.
    fn remove(&mut self, hasher: &Hasher, bucket: usize) -> Slot {
        let Ok(item) = self.table.get_bucket_entry(bucket) else {
            unreachable!("a bucket just found full");
        };
        let (i, _) = item.remove();
        let (i, last) = (i as usize, self.slots.len() - 1);
        if i != last {
            let hash = Self::hash(hasher, &self.slots[last].0);
            let moved = self.table.find_mut(hash, |&j| j as usize == last);
            *moved.expect("every entry has an index") = i as u32;
        }
        self.slots.swap_remove(i)
    }

    /// Remove the expired entry whose key has this hash, if there is one.
    /// The key's hash is checked, not only the table's 7-bit tag: an expired
    /// lookalike removed in its place would leave this key behind, counted
    /// by DBSIZE, with no deadline left in the wheel to reclaim it.
    fn remove_expired(&mut self, hasher: &Hasher, hash: u64, now: u64) -> Option<Slot> {
        let slots = &self.slots;
        let found = self.table.find_bucket_index(hash, |&i| {
            let (key, entry) = &slots[i as usize];
            entry.is_expired(now) && Self::hash(hasher, key) == hash
        });
        found.map(|bucket| self.remove(hasher, bucket))
    }

    /// Give memory back once three quarters of it is unused.
    fn shrink_if_sparse(&mut self, hasher: &Hasher) {
        let len = self.slots.len();
        if self.table.capacity() > 64 && len * 4 < self.table.capacity() {
            let slots = &self.slots;
            self.table
                .shrink_to(len * 2, |&i| Self::hash(hasher, &slots[i as usize].0));
            let table = &self.table;
            let any_item = table
                .iter_buckets()
                .next()
                .and_then(|b| Some((table.get_bucket(b)?, b)));
            self.table_end = any_item.map_or(0, |(item, b)| table_end(item, b));
        }
        if self.slots.capacity() > 64 && len * 4 < self.slots.capacity() {
            self.slots.shrink_to(len * 2);
        }
    }
}

type ShardGuard<'a> = RwLockWriteGuard<'a, Shard>;

/// Write access to the keys of some shards of one [`Db`], for one command.
pub struct Locked<'a> {
    db: &'a Db,
    guards: SmallVec<[(usize, ShardGuard<'a>); 2]>,
    /// All shards are held and `guards[i]` is shard `i`.
    all: bool,
    /// The command's "now" (monotonic µs): one instant for the whole command,
    /// as Redis uses, so a command never sees a key both alive and expired.
    pub now: u64,
    /// The first key locked and its hash, computed to find its shard: the
    /// key a single-key command then looks up (borrowed, not copied).
    first_key: Option<(&'a [u8], u64)>,
}

/// A key's place in a locked shard ([`Locked::place`]): its live entry, if
/// any, and where a new one would go.
pub struct Place<'v, 'k> {
    db: &'v Db,
    now: u64,
    key: &'k [u8],
    lookup: Lookup<'v>,
}

/// The value [`Place::put`] stores: string bytes (kept in place when equal,
/// with their fence) or a whole value of any type.
enum NewValue<'a> {
    Str(&'a [u8]),
    Any(Value),
}

impl<'v> Place<'v, '_> {
    /// The key's live entry.
    pub fn entry(&self) -> Option<&Entry> {
        self.lookup.found.map(|(_, i)| &self.lookup.shard.keys.slots[i].1)
    }

    /// The key's live entry, to modify its value in place. Its deadline can
    /// only be changed through [`Place::set`] or [`Place::set_deadline`]
    /// (the expiry wheel must hear of it).
    pub fn entry_mut(&mut self) -> Option<&mut Entry> {
        self.lookup.found.map(|(_, i)| &mut self.lookup.shard.keys.slots[i].1)
    }

    /// [`Place::entry_mut`], for as long as the view's borrow lasts.
    pub fn into_entry_mut(self) -> Option<&'v mut Entry> {
        let Lookup { shard, found, .. } = self.lookup;
        found.map(|(_, i)| &mut shard.keys.slots[i].1)
    }

    /// Store `value` with `deadline`, replacing the live entry if there is one.
    pub fn set(self, value: &[u8], deadline: Deadline) {
        self.put(NewValue::Str(value), deadline);
    }

    /// Store `value` (any type) with `deadline`, replacing the live entry if
    /// there is one (its fence too).
    pub fn set_value(self, value: Value, deadline: Deadline) {
        self.put(NewValue::Any(value), deadline);
    }

    /// What [`Place::set`] and [`Place::set_value`] share: replace the live
    /// entry's value or insert one, and schedule a changed deadline.
    #[inline]
    fn put(self, value: NewValue<'_>, deadline: Deadline) {
        let Place { db, now, key, lookup } = self;
        let Lookup {
            shard_no,
            hash,
            shard,
            found,
        } = lookup;
        let deadline_changed = match found {
            Some((_, i)) => {
                let e = &mut shard.keys.slots[i].1;
                match value {
                    NewValue::Str(v) => e.replace_value(v),
                    NewValue::Any(v) => {
                        e.value = v;
                        e.set_fence(0);
                        e.clear_lock();
                    }
                }
                std::mem::replace(&mut e.deadline, deadline) != deadline
            }
            None => {
                let entry = match value {
                    NewValue::Str(v) => Entry::new(v, deadline),
                    NewValue::Any(v) => Entry::with_value(v, deadline),
                };
                shard.keys.insert(&db.hasher, hash, (key.into(), entry));
                true
            }
        };
        if deadline_changed {
            db.schedule(shard_no, &mut shard.wheel, deadline, hash, now);
        }
    }

    /// Change the live entry's deadline; false if there is no live entry.
    pub fn set_deadline(self, deadline: Deadline) -> bool {
        let Place { db, now, lookup, .. } = self;
        let Lookup {
            shard_no,
            hash,
            shard,
            found,
        } = lookup;
        let Some((_, i)) = found else { return false };
        if std::mem::replace(&mut shard.keys.slots[i].1.deadline, deadline) != deadline {
            db.schedule(shard_no, &mut shard.wheel, deadline, hash, now);
        }
        true
    }

    /// Remove the live entry, returning it.
    pub fn remove(self) -> Option<Entry> {
        let Lookup { shard, found, .. } = self.lookup;
        let (bucket, _) = found?;
        Some(shard.keys.remove(&self.db.hasher, bucket).1)
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

    /// Hold every shard of the database instead of the ones held now (a
    /// Lua script, which may touch keys it did not declare). The shards
    /// held are let go first, so the ascending order holds; nothing read
    /// before carries over, so call it before reading anything.
    pub fn lock_all_in_place(&mut self) {
        if !self.all {
            self.guards.clear();
            *self = self.db.lock_all(self.now);
        }
    }

    /// The locked shard `hash` lives in.
    fn shard(&mut self, hash: u64) -> Result<(usize, &mut Shard), NotLocked> {
        let n = self.db.shard_of_hash(hash);
        let guard = if self.all {
            &mut self.guards[n].1
        } else {
            &mut self.guards.iter_mut().find(|(s, _)| *s == n).ok_or(NotLocked)?.1
        };
        Ok((n, guard))
    }

    /// The hash of `key`; the first key's was computed when it was locked.
    /// The same slice (the usual case) is recognised by its address, and the
    /// bytes are compared otherwise, so the hash is never another key's.
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        match self.first_key {
            Some((first, hash)) if std::ptr::eq(key, first) || key == first => hash,
            _ => self.db.hash(key),
        }
    }

    /// Find the live entry of `key` with one probe, removing it first if its
    /// deadline has passed.
    fn find_live(&mut self, key: &[u8]) -> Result<Lookup<'_>, NotLocked> {
        let hash = self.hash(key);
        let (now, db) = (self.now, self.db);
        let (shard_no, shard) = self.shard(hash)?;
        let mut found = shard.keys.find(hash, key);
        if let Some((_, i)) = found
            && shard.keys.slots[i].1.is_expired(now)
            && let Some((bucket, _)) = found.take()
        {
            let slot = shard.keys.remove(&db.hasher, bucket);
            db.expired_keys.fetch_add(1, Ordering::Relaxed);
            db.expired(&slot);
            if let Some(entry) = db.refill(&slot, now) {
                let deadline = entry.deadline;
                shard.keys.insert(&db.hasher, hash, (slot.0, entry));
                db.schedule(shard_no, &mut shard.wheel, deadline, hash, now);
                found = shard.keys.find(hash, key);
            }
        }
        Ok(Lookup {
            shard_no,
            hash,
            shard,
            found,
        })
    }

    /// The live entry of `key`, if any.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<&Entry>, NotLocked> {
        Ok(self.place(key)?.into_entry_mut().map(|e| &*e))
    }

    /// The live entry of `key` for in-place modification of its value. Its
    /// deadline can only be changed through [`Locked::set_deadline`].
    pub fn get_mut(&mut self, key: &[u8]) -> Result<Option<&mut Entry>, NotLocked> {
        Ok(self.place(key)?.into_entry_mut())
    }

    pub fn contains(&mut self, key: &[u8]) -> Result<bool, NotLocked> {
        Ok(self.place(key)?.entry().is_some())
    }

    /// Find `key` once, to read its live entry and then write or remove it
    /// without a second lookup (SET's condition, then its write).
    pub fn place<'k>(&mut self, key: &'k [u8]) -> Result<Place<'_, 'k>, NotLocked> {
        let (now, db) = (self.now, self.db);
        let lookup = self.find_live(key)?;
        Ok(Place { db, now, key, lookup })
    }

    /// Store `value` under `key` with `deadline`, replacing any old entry
    /// ([`Entry::replace_value`] says what happens to its fence).
    pub fn set(&mut self, key: &[u8], value: &[u8], deadline: Deadline) -> Result<(), NotLocked> {
        self.place(key)?.set(value, deadline);
        Ok(())
    }

    /// Change the deadline of a live key; false if the key does not exist.
    pub fn set_deadline(&mut self, key: &[u8], deadline: Deadline) -> Result<bool, NotLocked> {
        Ok(self.place(key)?.set_deadline(deadline))
    }

    /// Remove `key`; the removed live entry, if there was one.
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Entry>, NotLocked> {
        Ok(self.place(key)?.remove())
    }

    /// The locked shards, each with its number.
    fn shards(&mut self) -> impl Iterator<Item = (usize, &mut Shard)> {
        self.guards.iter_mut().map(|(n, guard)| (*n, &mut **guard))
    }

    /// Drop every key whose deadline has passed from the locked shards, so
    /// that counting and iteration see only live keys.
    fn purge_expired(&mut self) {
        let (now, db) = (self.now, self.db);
        let mut purged = 0;
        for (n, shard) in self.shards() {
            purged += db.pop_due(n, shard, now, usize::MAX).0 as u64;
        }
        db.expired_keys.fetch_add(purged, Ordering::Relaxed);
    }

    /// Number of live keys in the locked shards.
    pub fn len(&mut self) -> usize {
        self.purge_expired();
        self.guards.iter().map(|(_, shard)| shard.keys.table.len()).sum()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Remove every key of the locked shards; returns how many there were.
    pub fn clear(&mut self) -> usize {
        let db = self.db;
        let mut removed = 0;
        for (n, shard) in self.shards() {
            removed += shard.keys.slots.len();
            *shard = Shard::default();
            db.shards[n].earliest.store(u64::MAX, Ordering::Relaxed);
        }
        removed
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
            let keys = &self.guards[shard].1.keys;
            let buckets = keys.table.num_buckets();
            while bucket < buckets {
                if let Some(&i) = keys.table.get_bucket(bucket) {
                    let (k, e) = &keys.slots[i as usize];
                    if !e.is_expired(now) {
                        visit(k, e);
                        visited += 1;
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
        for (_, shard) in &self.guards {
            let slots = &shard.keys.slots;
            if let Some((key, _)) = slots.get(target) {
                return Some(key.to_vec());
            }
            target -= slots.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_expiry_wheel_keeps_no_far_deadline() {
        use crate::store::Clock;
        let db = Db::new();
        let now = 5_000_000;
        let far = [
            Clock::deadline_from_unix_ms(i64::MAX, now),
            Clock::deadline_in_ms(9_000_000_000_000_000_000, now),
        ];
        for (i, deadline) in far.into_iter().enumerate() {
            let key = format!("far{i}");
            let mut locked = db.lock_keys([key.as_bytes()].into_iter(), now);
            locked.set(key.as_bytes(), b"v", deadline).unwrap();
        }
        assert!(db.shards.iter().all(|s| s.earliest.load(Ordering::Relaxed) == u64::MAX));
        let near = Clock::deadline_in_ms(1, now);
        let mut locked = db.lock_keys([&b"near"[..]].into_iter(), now);
        locked.set(b"near", b"v", near).unwrap();
        drop(locked);
        assert_eq!(
            db.shards
                .iter()
                .filter(|s| s.earliest.load(Ordering::Relaxed) == near)
                .count(),
            1
        );
    }

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
    fn reclaim_uses_the_wheel_and_skips_rewritten_keys() {
        let db = Db::new();
        {
            let mut l = db.lock_all(1);
            l.set(b"a", b"1", 10).unwrap();
            l.set(b"a", b"1", 1000).unwrap(); // the wheel entry for 10 is now stale
            l.set(b"b", b"1", 10).unwrap();
        }
        let removed: usize = (0..db.shard_count()).map(|s| db.reclaim_shard(s, 20, 100).0).sum();
        assert_eq!(removed, 1);
        let mut l = db.lock_all(20);
        assert!(l.get(b"a").unwrap().is_some());
        assert_eq!(l.len(), 1);
    }

    /// The dense layout moves entries on every removal: random operations
    /// on few keys (so that removals hit every position) must agree with a
    /// plain map, through lookups, expiry, reclaim, scans and random picks.
    #[test]
    fn agrees_with_a_model_under_random_operations() {
        use proptest::prelude::*;
        use std::collections::BTreeMap;

        #[derive(Debug, Clone)]
        enum Op {
            Set(u8, u8, Option<u64>),
            Remove(u8),
            Get(u8),
            Tick(u64),
            Reclaim,
            Scan,
            Random(usize),
            Clear,
        }
        let op = prop_oneof![
            8 => (0u8..40, any::<u8>(), prop::option::of(1u64..50)).prop_map(|(k, v, t)| Op::Set(k, v, t)),
            5 => (0u8..40).prop_map(Op::Remove),
            4 => (0u8..40).prop_map(Op::Get),
            2 => (1u64..20).prop_map(Op::Tick),
            1 => Just(Op::Reclaim),
            1 => Just(Op::Scan),
            1 => any::<usize>().prop_map(Op::Random),
            1 => Just(Op::Clear),
        ];
        let config = ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(ops in prop::collection::vec(op, 1..400))| {
            let db = Db::new();
            let mut model: BTreeMap<Vec<u8>, (Vec<u8>, u64)> = BTreeMap::new();
            let mut now = 1u64;
            let key = |k: u8| format!("key:{k}").into_bytes();
            for op in ops {
                model.retain(|_, (_, d)| *d == NO_DEADLINE || *d > now);
                match op {
                    Op::Set(k, v, ttl) => {
                        let deadline = ttl.map_or(NO_DEADLINE, |t| now + t);
                        let value = vec![v; 1 + v as usize % 30];
                        db.lock_keys([&key(k)[..]].into_iter(), now).set(&key(k), &value, deadline).unwrap();
                        model.insert(key(k), (value, deadline));
                    }
                    Op::Remove(k) => {
                        let got = db.lock_keys([&key(k)[..]].into_iter(), now).remove(&key(k)).unwrap();
                        prop_assert_eq!(got.map(|e| e.str().unwrap().to_vec()), model.remove(&key(k)).map(|m| m.0));
                    }
                    Op::Get(k) => {
                        // Locked with one copy of the key, looked up with another:
                        // the view must recognise the first key by its bytes too.
                        let locked_as = key(k);
                        let mut l = db.lock_keys([&locked_as[..]].into_iter(), now);
                        let got = l.get(&key(k)).unwrap().map(|e| (e.str().unwrap().to_vec(), e.deadline()));
                        prop_assert_eq!(got, model.get(&key(k)).cloned());
                    }
                    Op::Tick(t) => now += t,
                    Op::Reclaim => {
                        for shard in 0..db.shard_count() {
                            db.reclaim_shard(shard, now, 7);
                        }
                    }
                    Op::Scan => {
                        let mut l = db.lock_all(now);
                        let mut seen = BTreeMap::new();
                        l.scan(0, usize::MAX, |k, e| {
                            seen.insert(k.to_vec(), (e.str().unwrap().to_vec(), e.deadline()));
                        });
                        prop_assert_eq!(l.len(), model.len());
                        prop_assert_eq!(&seen, &model);
                    }
                    Op::Random(r) => {
                        let picked = db.lock_all(now).random_key(|n| r % n);
                        prop_assert_eq!(picked.is_some(), !model.is_empty());
                        if let Some(k) = picked {
                            prop_assert!(model.contains_key(&k));
                        }
                    }
                    Op::Clear => {
                        // Expired keys not yet reclaimed are counted too.
                        let removed = db.lock_all(now).clear();
                        prop_assert!(removed >= model.len());
                        prop_assert_eq!(db.lock_all(now).len(), 0);
                        model.clear();
                    }
                }
            }
            let mut rewritten = BTreeMap::new();
            for shard in 0..db.shard_count() {
                db.for_each_in_shard(shard, now, |k, e| {
                    rewritten.insert(k.to_vec(), (e.str().unwrap().to_vec(), e.deadline()));
                });
            }
            model.retain(|_, (_, d)| *d == NO_DEADLINE || *d > now);
            prop_assert_eq!(rewritten, model);
        });
    }

    #[test]
    fn rewriting_a_value_under_the_same_deadline_adds_no_expiry_entry() {
        let db = Db::new();
        let mut l = db.lock_all(1);
        l.set(b"counter", b"0", 1_000_000).unwrap();
        for i in 1..100 {
            l.set(b"counter", i.to_string().as_bytes(), 1_000_000).unwrap();
        }
        l.set(b"counter", b"x", 2_000_000).unwrap();
        drop(l);
        let pending: usize = db.shards.iter().map(|s| s.shard.read().wheel.pending()).sum();
        assert_eq!(pending, 2, "one entry per distinct deadline");
    }

    /// Two expired keys of one shard whose hashes share the table's 7-bit
    /// tag: reclaiming one key's deadline must remove that key.
    #[test]
    fn reclaiming_a_deadline_removes_its_own_key_not_a_lookalike() {
        let db = Db::new();
        let mut by_tag: std::collections::HashMap<u64, Vec<u8>> = std::collections::HashMap::new();
        let mut pairs = Vec::new();
        for i in 0..200_000 {
            let key = format!("k{i}").into_bytes();
            let hash = db.hash(&key);
            if db.shard_of_hash(hash) != 0 {
                continue;
            }
            match by_tag.remove(&(hash >> 57)) {
                Some(other) => pairs.push((other, key)),
                None => {
                    by_tag.insert(hash >> 57, key);
                }
            }
            if pairs.len() == 40 {
                break;
            }
        }
        assert_eq!(pairs.len(), 40);
        for (a, b) in pairs {
            for (gone, kept) in [(&a, &b), (&b, &a)] {
                let mut l = db.lock_all(1);
                l.clear();
                l.set(&a, b"1", 10).unwrap();
                l.set(&b, b"1", 10).unwrap();
                drop(l);
                let mut shard = db.shards[0].shard.write();
                assert!(shard.keys.remove_expired(&db.hasher, db.hash(gone), 20).is_some());
                assert_eq!(shard.keys.slots.len(), 1);
                assert_eq!(*shard.keys.slots[0].0, **kept);
            }
        }
    }

    /// Prefetching reads the table and the entries under a read lock only:
    /// run it on empty, growing, shrunk and write-locked shards, for present
    /// and absent keys, and check it changed nothing a client can see.
    #[test]
    fn prefetching_is_only_a_hint() {
        let db = Db::new();
        let keys: Vec<Vec<u8>> = (0..5000).map(|i| format!("key:{i}").into_bytes()).collect();
        let everything = |db: &Db| {
            let mut seen = Vec::new();
            db.lock_all(10)
                .scan(0, usize::MAX, |k, e| seen.push((k.to_vec(), e.str().unwrap().to_vec())));
            seen.sort();
            seen
        };
        for k in &keys {
            db.prefetch_table(db.hash(k));
            db.prefetch_entry(db.hash(k));
        }
        for (i, k) in keys.iter().enumerate() {
            db.lock_keys(std::iter::once(&k[..]), 10)
                .set(k, k, NO_DEADLINE)
                .unwrap();
            if i % 3 == 0 {
                let gone = &keys[i / 2];
                db.lock_keys(std::iter::once(&gone[..]), 10).remove(gone).unwrap();
            }
        }
        let before = everything(&db);
        assert!(before.len() > 3000, "{}", before.len());
        {
            // A shard held for writing is skipped, not waited for.
            let held = db.lock_keys(std::iter::once(&keys[0][..]), 10);
            for k in &keys {
                db.prefetch_table(db.hash(k));
                db.prefetch_entry(db.hash(k));
            }
            drop(held);
        }
        for k in keys.iter().chain([&b"absent".to_vec()]) {
            db.prefetch_table(db.hash(k));
            db.prefetch_entry(db.hash(k));
        }
        assert_eq!(everything(&db), before);
    }

    /// Prefetching finds a shard's table through [`Keys::table_end`]: it
    /// must follow the table through growth, removals, shrinking and
    /// clearing, and be where hashbrown really keeps the items (a change of
    /// hashbrown's layout fails here instead of quietly making every
    /// prefetch miss).
    #[test]
    fn table_end_follows_the_table() {
        let db = Db::new();
        let check = |db: &Db| {
            let mut items = 0;
            for lock in &db.shards {
                let keys = &lock.shard.read().keys;
                for b in keys.table.iter_buckets() {
                    assert_eq!(table_end(keys.table.get_bucket(b).unwrap(), b), keys.table_end);
                    items += 1;
                }
            }
            items
        };
        let key = |i: u32| format!("key:{i}").into_bytes();
        let mut l = db.lock_all(1);
        for i in 0..20_000 {
            let deadline = if i % 8 == 0 { NO_DEADLINE } else { 100 };
            l.set(&key(i), b"v", deadline).unwrap();
        }
        drop(l);
        assert_eq!(check(&db), 20_000);
        let mut l = db.lock_all(1);
        for i in (0..20_000).step_by(16) {
            l.remove(&key(i)).unwrap();
        }
        drop(l);
        assert_eq!(check(&db), 20_000 - 1250);
        let capacity = |db: &Db| -> usize { db.shards.iter().map(|s| s.shard.read().keys.table.capacity()).sum() };
        let before = capacity(&db);
        for shard in 0..db.shard_count() {
            db.reclaim_shard(shard, 200, usize::MAX);
        }
        assert!(capacity(&db) * 2 < before, "the tables shrank");
        assert_eq!(check(&db), 1250);
        db.lock_all(200).clear();
        assert_eq!(check(&db), 0);
        let mut l = db.lock_all(200);
        for i in 0..1000 {
            l.set(&key(i), b"v", NO_DEADLINE).unwrap();
        }
        drop(l);
        assert_eq!(check(&db), 1000);
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
