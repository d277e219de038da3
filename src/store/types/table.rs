//! The hash table behind large hashes, sets and sorted sets: a
//! [`HashTable`] keyed by each item's bytes, with Redis's operations on it
//! (cursor scans, fair random picks) that a plain map does not offer.

use std::sync::OnceLock;

use hashbrown::HashTable;

use crate::store::SmallBytes;

/// An item stored in a [`Table`]: found by its key bytes.
pub trait Keyed {
    fn key(&self) -> &[u8];
}

impl Keyed for SmallBytes {
    fn key(&self) -> &[u8] {
        self
    }
}

impl<V> Keyed for (SmallBytes, V) {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// One seed for every container table of the process: a table per value
/// must not carry its own 32-byte hasher.
fn hasher() -> &'static ahash::RandomState {
    static HASHER: OnceLock<ahash::RandomState> = OnceLock::new();
    HASHER.get_or_init(ahash::RandomState::new)
}

fn hash(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

#[derive(Clone)]
pub struct Table<T> {
    table: HashTable<T>,
}

impl<T: Keyed> Default for Table<T> {
    fn default() -> Self {
        Table {
            table: HashTable::new(),
        }
    }
}

impl<T: Keyed> Table<T> {
    pub fn with_capacity(n: usize) -> Self {
        Table {
            table: HashTable::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.table.find(hash(key), |t| t.key() == key)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        self.table.find_mut(hash(key), |t| t.key() == key)
    }

    /// Insert `item`, returning the item it replaced (same key), if any.
    pub fn insert(&mut self, item: T) -> Option<T> {
        let h = hash(item.key());
        match self.table.find_mut(h, |t| t.key() == item.key()) {
            Some(slot) => Some(std::mem::replace(slot, item)),
            None => {
                self.table.insert_unique(h, item, |t| hash(t.key()));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let removed = self
            .table
            .find_entry(hash(key), |t| t.key() == key)
            .ok()
            .map(|e| e.remove().0);
        // Give memory back once three quarters of it is unused.
        if removed.is_some() && self.table.capacity() > 64 && self.table.len() * 4 < self.table.capacity() {
            self.table.shrink_to(self.table.len() * 2, |t| hash(t.key()));
        }
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.table.iter()
    }

    /// Visit items from `cursor` (a bucket position) until about `count`
    /// were visited; returns the next cursor, 0 at the end. As with SCAN, an
    /// item present throughout is visited at least once unless the table is
    /// resized between calls.
    pub fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(&T)) -> u64 {
        let buckets = self.table.num_buckets();
        let mut bucket = usize::try_from(cursor).unwrap_or(usize::MAX);
        let (mut visited, mut examined) = (0usize, 0usize);
        while bucket < buckets {
            if let Some(t) = self.table.get_bucket(bucket) {
                visit(t);
                visited += 1;
            }
            bucket += 1;
            examined += 1;
            if (visited >= count || examined >= count.saturating_mul(10)) && bucket < buckets {
                return bucket as u64;
            }
        }
        0
    }

    /// A uniformly chosen item; `pick(n)` returns a number below `n`.
    pub fn random(&self, mut pick: impl FnMut(usize) -> usize) -> Option<&T> {
        let len = self.table.len();
        if len == 0 {
            return None;
        }
        let buckets = self.table.num_buckets();
        // A table at least an eighth full: random buckets find an item
        // quickly, each item equally likely. A sparser one: count to it.
        if len * 8 >= buckets {
            loop {
                if let Some(t) = self.table.get_bucket(pick(buckets)) {
                    return Some(t);
                }
            }
        }
        self.table.iter().nth(pick(len))
    }
}
