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
//! The tables are the shards of a `DashMap`, and a shard's lock also guards
//! its entry vector. A command never calls the map's per-key API: the
//! dispatcher asks for a [`Locked`] view holding the write locks of exactly
//! the shards its keys live in, taken **in ascending shard order** (so two
//! multi-key commands can never deadlock), runs the command against that
//! view, and drops it. A single-key command therefore holds one shard lock
//! for a few hundred nanoseconds; MSET/DEL k1 k2/RENAME/scripts hold theirs
//! together and are atomic; EXEC and whole-keyspace commands (KEYS, SCAN,
//! DBSIZE, FLUSHDB) lock every shard. No lock is ever held across an `.await`.
//!
//! # Expiry
//! Every access through [`Locked`] checks the deadline first: an expired key
//! is removed on the spot and reported absent, so correctness never depends
//! on the background expirer. The expirer only reclaims memory, driven by
//! each shard's timing wheel of `(deadline, hash)` ([`super::wheel`]).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::{DashMap, RwLockWriteGuard, SharedValue};
use hashbrown::raw::{Bucket, RawTable};
use smallvec::SmallVec;

use super::bytes::SmallBytes;
use super::clock::{Deadline, NO_DEADLINE};
use super::entry::Entry;
use super::wheel::ShardExpiry;

/// A stored key and its entry, in a shard's dense vector.
type Slot = (SmallBytes, Entry);
/// A hash-table item: the index of a [`Slot`] in its shard's vector.
type Index = (u32, SharedValue<()>);
type Table = RawTable<Index>;
type ShardGuard<'a> = RwLockWriteGuard<'a, Table>;

/// One shard's entries. Only ever touched while holding the lock of the
/// shard with the same number: shared for reading, exclusive for writing.
#[derive(Default)]
struct Slots(UnsafeCell<Vec<Slot>>);

// SAFETY: every access goes through `Db::slots`/`Db::shard_mut`, whose
// callers hold the matching shard lock (read or write), which serialises
// writers and excludes readers during writes exactly as for the table.
unsafe impl Sync for Slots {}

/// Shards per database: enough that two cores rarely meet on one lock,
/// few enough that EXEC locking all of them stays cheap.
pub const SHARDS: usize = 32;

pub struct Db {
    /// The shard locks and index tables (keys are hashed by hand, so the
    /// map's own key type is just the index).
    map: DashMap<u32, (), ahash::RandomState>,
    slots: Box<[Slots]>,
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
        let slots = (0..map.shards().len()).map(|_| Slots::default()).collect();
        Db {
            map,
            slots,
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

    /// The entries of shard `n`, to read.
    ///
    /// # Safety
    /// The caller holds shard `n`'s lock (read or write) for as long as the
    /// reference lives, and no [`Db::shard_mut`] view of it exists.
    unsafe fn slots(&self, n: usize) -> &Vec<Slot> {
        // SAFETY: guaranteed by the caller, as above.
        unsafe { &*self.slots[n].0.get() }
    }

    /// Shard `n` for writing: its write-locked `table` paired with its entries.
    ///
    /// # Safety
    /// `table` is shard `n`'s table, borrowed from its write guard, and no
    /// other reference to shard `n`'s entries lives as long as the result.
    unsafe fn shard_mut<'t>(&'t self, n: usize, table: &'t mut Table) -> Shard<'t> {
        // SAFETY: guaranteed by the caller, as above.
        let slots = unsafe { &mut *self.slots[n].0.get() };
        Shard { table, slots }
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
            None => guards.push((first_shard, self.map.shards()[first_shard].write())),
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
                    guards.push((s, self.map.shards()[s].write()));
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
        let _lock = self.map.shards()[shard].read();
        // SAFETY: we hold the shard's read lock while the entries are read.
        for (k, e) in unsafe { self.slots(shard) } {
            if !e.is_expired(now) {
                visit(k, e);
            }
        }
    }

    /// Reclaim expired keys of one shard, at most `budget` of them; returns
    /// (removed, budget exhausted). Shrinks the shard's table and entries
    /// when they have become mostly empty, so that memory really goes back.
    pub fn reclaim_shard(&self, shard: usize, now: u64, budget: usize) -> (usize, bool) {
        if !self.expiry[shard].due(now) {
            return (0, false);
        }
        let mut table = self.map.shards()[shard].write();
        // SAFETY: the table of this shard's write guard; the only view of its entries.
        let mut locked = unsafe { self.shard_mut(shard, &mut table) };
        let mut removed = 0;
        let popped = self.expiry[shard].pop_due(now, budget, |hash| {
            removed += locked.remove_expired(self, hash, now) as usize;
        });
        locked.shrink_if_sparse(self);
        self.expired_keys.fetch_add(removed as u64, Ordering::Relaxed);
        (removed, popped >= budget)
    }
}

impl Db {
    /// Tell shard `shard_no`'s expiry wheel about a key's changed deadline
    /// (callers skip an unchanged one, already in the wheel: INCR on a key
    /// with a TTL must not add an entry per increment). A persistent key
    /// needs no entry.
    fn schedule(&self, shard_no: usize, deadline: Deadline, hash: u64, now: u64) {
        if deadline != NO_DEADLINE {
            self.expiry[shard_no].push(deadline, hash, now);
        }
    }
}

/// Prefetching, for pipelined batches. A lookup of a key that is not in
/// the CPU cache waits for three dependent loads: its table's control
/// group, its index in the table, then its entry. When a batch of requests
/// has arrived, the connection asks for the first two of every request's
/// key before executing any ([`Db::prefetch_table`]), then for the entries
/// ([`Db::prefetch_entry`]), so the loads overlap instead of queueing up
/// one request at a time. Only hints: nothing is read that a write could
/// change without a read lock, and a busy shard is skipped.
impl Db {
    /// Start loading the control group and the index at the home position
    /// of `hash` in its shard's table.
    pub fn prefetch_table(&self, hash: u64) {
        let shard = self.shard_of_hash(hash);
        let Some(table) = self.map.shards()[shard].try_read() else {
            return;
        };
        // hashbrown probes from bucket `hash & mask`; its control bytes start
        // at `data_end`, and bucket i's index is stored just below, at
        // `data_end - (i + 1)`. Prefetching computes addresses, never reads.
        let home = hash as usize & (table.buckets() - 1);
        let data_end = table.data_end().as_ptr();
        prefetch(data_end.cast::<u8>().wrapping_add(home));
        prefetch(data_end.wrapping_sub(home + 1));
    }

    /// Start loading the entry that `hash`'s first candidate bucket points
    /// to (after [`Db::prefetch_table`], its control group and index are
    /// usually in cache by now).
    pub fn prefetch_entry(&self, hash: u64) {
        let shard = self.shard_of_hash(hash);
        let Some(table) = self.map.shards()[shard].try_read() else {
            return;
        };
        // SAFETY: the table outlives the iterator (both within this call),
        // and the read lock we hold keeps writers out while we read a bucket
        // and the entries vector.
        unsafe {
            if let Some(bucket) = table.iter_hash(hash).next() {
                let i = bucket.as_ref().0 as usize;
                let slots = self.slots(shard);
                if i < slots.len() {
                    prefetch(slots.as_ptr().add(i));
                }
            }
        }
    }
}

/// Ask the CPU to start loading the cache line holding `p` (any address:
/// a prefetch never faults).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 has no architectural effect, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A live entry found in a locked shard: its bucket and its position.
type Found = (Bucket<Index>, usize);

/// Where a key is, or would go: its shard (locked) and hash, and its live
/// entry if it has one.
struct Lookup<'t> {
    shard_no: usize,
    hash: u64,
    shard: Shard<'t>,
    found: Option<Found>,
}

/// One locked shard: its index table and its entries, borrowed together.
struct Shard<'t> {
    table: &'t mut Table,
    slots: &'t mut Vec<Slot>,
}

impl Shard<'_> {
    fn find(&self, hash: u64, key: &[u8]) -> Option<Bucket<Index>> {
        let slots = &*self.slots;
        self.table.find(hash, |(i, _)| *slots[*i as usize].0 == *key)
    }

    fn insert(&mut self, db: &Db, hash: u64, slot: Slot) {
        let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 keys per shard");
        self.slots.push(slot);
        let slots = &*self.slots;
        self.table
            .insert(hash, (i, SharedValue::new(())), |(j, _)| db.hash(&slots[*j as usize].0));
    }

    /// Remove the entry `bucket` points to: the last entry moves into its
    /// place, and that entry's index follows it.
    ///
    /// # Safety
    /// `bucket` is a full bucket of this shard's table.
    unsafe fn remove(&mut self, db: &Db, bucket: Bucket<Index>) -> Slot {
        // SAFETY: guaranteed by the caller.
        let ((i, _), _) = unsafe { self.table.remove(bucket) };
        let (i, last) = (i as usize, self.slots.len() - 1);
        if i != last {
            let hash = db.hash(&self.slots[last].0);
            let moved = self.table.find(hash, |(j, _)| *j as usize == last);
            let moved = moved.expect("every entry has an index");
            // SAFETY: `moved` was just found full in this table.
            unsafe { moved.as_mut().0 = i as u32 };
        }
        self.slots.swap_remove(i)
    }

    /// Remove the expired entry whose key has this hash, if there is one.
    /// The key's hash is checked, not only the table's 7-bit tag: an expired
    /// lookalike removed in its place would leave this key behind, counted
    /// by DBSIZE, with no deadline left in the wheel to reclaim it.
    fn remove_expired(&mut self, db: &Db, hash: u64, now: u64) -> bool {
        let slots = &*self.slots;
        let found = self.table.find(hash, |(i, _)| {
            let (key, entry) = &slots[*i as usize];
            entry.is_expired(now) && db.hash(key) == hash
        });
        match found {
            Some(b) => {
                // SAFETY: just found full in this table.
                unsafe { self.remove(db, b) };
                true
            }
            None => false,
        }
    }

    fn clear(&mut self) {
        self.table.clear();
        self.table.shrink_to(0, |_| 0);
        *self.slots = Vec::new();
    }

    /// Give memory back once three quarters of it is unused.
    fn shrink_if_sparse(&mut self, db: &Db) {
        let len = self.slots.len();
        if self.table.capacity() > 64 && len * 4 < self.table.capacity() {
            let slots = &*self.slots;
            self.table.shrink_to(len * 2, |(i, _)| db.hash(&slots[*i as usize].0));
        }
        if self.slots.capacity() > 64 && len * 4 < self.slots.capacity() {
            self.slots.shrink_to(len * 2);
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

impl<'v> Place<'v, '_> {
    /// The key's live entry.
    pub fn entry(&self) -> Option<&Entry> {
        self.lookup.found.as_ref().map(|(_, i)| &self.lookup.shard.slots[*i].1)
    }

    /// The key's live entry, to modify its value in place. Its deadline can
    /// only be changed through [`Place::set`] or [`Place::set_deadline`]
    /// (the expiry wheel must hear of it).
    pub fn entry_mut(&mut self) -> Option<&mut Entry> {
        self.lookup
            .found
            .as_ref()
            .map(|(_, i)| &mut self.lookup.shard.slots[*i].1)
    }

    /// [`Place::entry_mut`], for as long as the view's borrow lasts.
    pub fn into_entry_mut(self) -> Option<&'v mut Entry> {
        let Lookup { shard, found, .. } = self.lookup;
        found.map(|(_, i)| &mut shard.slots[i].1)
    }

    /// Store `value` with `deadline`, replacing the live entry if there is one.
    pub fn set(self, value: &[u8], deadline: Deadline) {
        let Place { db, now, key, lookup } = self;
        let Lookup {
            shard_no,
            hash,
            mut shard,
            found,
        } = lookup;
        let deadline_changed = match found {
            Some((_, i)) => {
                let e = &mut shard.slots[i].1;
                e.replace_value(value);
                std::mem::replace(&mut e.deadline, deadline) != deadline
            }
            None => {
                shard.insert(db, hash, (key.into(), Entry::new(value, deadline)));
                true
            }
        };
        if deadline_changed {
            db.schedule(shard_no, deadline, hash, now);
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
        if std::mem::replace(&mut shard.slots[i].1.deadline, deadline) != deadline {
            db.schedule(shard_no, deadline, hash, now);
        }
        true
    }

    /// Remove the live entry, returning it.
    pub fn remove(self) -> Option<Entry> {
        let Lookup { mut shard, found, .. } = self.lookup;
        let (bucket, _) = found?;
        // SAFETY: the live bucket just found; nothing changed the table since
        // (the place borrows the view mutably).
        Some(unsafe { shard.remove(self.db, bucket) }.1)
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

    /// The locked shard `hash` lives in.
    fn shard(&mut self, hash: u64) -> Result<(usize, Shard<'_>), NotLocked> {
        let n = self.db.shard_of_hash(hash);
        let guard = if self.all {
            &mut self.guards[n].1
        } else {
            &mut self.guards.iter_mut().find(|(s, _)| *s == n).ok_or(NotLocked)?.1
        };
        // SAFETY: the table of shard n's write guard; the view borrows
        // `&mut self`, so it is the only one of these entries.
        Ok((n, unsafe { self.db.shard_mut(n, guard) }))
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
        let (shard_no, mut shard) = self.shard(hash)?;
        let mut found = shard.find(hash, key).map(|bucket| {
            // SAFETY: the bucket was just found full in this table, which we hold locked.
            let i = unsafe { bucket.as_ref().0 } as usize;
            (bucket, i)
        });
        if let Some((_, i)) = found
            && shard.slots[i].1.is_expired(now)
            && let Some((bucket, _)) = found.take()
        {
            // SAFETY: as above.
            unsafe { shard.remove(db, bucket) };
            db.expired_keys.fetch_add(1, Ordering::Relaxed);
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
    fn shards(&mut self) -> impl Iterator<Item = (usize, Shard<'_>)> {
        let db = self.db;
        self.guards.iter_mut().map(move |(n, guard)| {
            // SAFETY: the table of shard n's write guard; each shard appears
            // once in `guards`, and the views borrow `&mut self`.
            (*n, unsafe { db.shard_mut(*n, guard) })
        })
    }

    /// Drop every key whose deadline has passed from the locked shards, so
    /// that counting and iteration see only live keys.
    fn purge_expired(&mut self) {
        let (now, db) = (self.now, self.db);
        let mut purged = 0;
        for (n, mut shard) in self.shards() {
            db.expiry[n].pop_due(now, usize::MAX, |hash| {
                purged += shard.remove_expired(db, hash, now) as u64;
            });
        }
        db.expired_keys.fetch_add(purged, Ordering::Relaxed);
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
        let db = self.db;
        let mut removed = 0;
        for (n, mut shard) in self.shards() {
            removed += shard.slots.len();
            shard.clear();
            db.expiry[n].clear();
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
            let (n, table) = (self.guards[shard].0, &self.guards[shard].1);
            // SAFETY: we hold shard n's write lock, and only read here.
            let slots = unsafe { self.db.slots(n) };
            let buckets = table.buckets();
            while bucket < buckets {
                // SAFETY: `bucket < buckets()` and we hold the shard's write lock,
                // so the table cannot change while the reference is used.
                let index = unsafe { table.is_bucket_full(bucket).then(|| table.bucket(bucket).as_ref().0) };
                if let Some(i) = index {
                    let (k, e) = &slots[i as usize];
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
        for (_, shard) in self.shards() {
            if let Some((key, _)) = shard.slots.get(target) {
                return Some(key.to_vec());
            }
            target -= shard.slots.len();
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
                        prop_assert_eq!(got.map(|e| e.value.to_vec()), model.remove(&key(k)).map(|m| m.0));
                    }
                    Op::Get(k) => {
                        // Locked with one copy of the key, looked up with another:
                        // the view must recognise the first key by its bytes too.
                        let locked_as = key(k);
                        let mut l = db.lock_keys([&locked_as[..]].into_iter(), now);
                        let got = l.get(&key(k)).unwrap().map(|e| (e.value.to_vec(), e.deadline()));
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
                            seen.insert(k.to_vec(), (e.value.to_vec(), e.deadline()));
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
                    rewritten.insert(k.to_vec(), (e.value.to_vec(), e.deadline()));
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
        let pending: usize = db.expiry.iter().map(|e| e.pending()).sum();
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
                let mut table = db.map.shards()[0].write();
                // SAFETY: the table of shard 0's write guard; the only view of its entries.
                let mut shard = unsafe { db.shard_mut(0, &mut table) };
                assert!(shard.remove_expired(&db, db.hash(gone), 20));
                assert_eq!(shard.slots.len(), 1);
                assert_eq!(*shard.slots[0].0, **kept);
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
                .scan(0, usize::MAX, |k, e| seen.push((k.to_vec(), e.value.to_vec())));
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
