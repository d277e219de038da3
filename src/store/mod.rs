//! The in-memory store: databases of keys (strings and Redis's containers,
//! [`types`]) with exact expiry.
//!
//! Store operations are plain synchronous functions over a [`Locked`] view;
//! nothing here awaits, so no shard lock is ever held across a suspension.

pub mod bytes;
pub mod clock;
pub mod db;
pub mod entry;
pub mod expiry;
pub mod fence;
pub mod types;
mod wheel;

pub use bytes::SmallBytes;
pub use clock::{Clock, Deadline, NO_DEADLINE};
pub use db::{Db, Locked, NotLocked};
pub use entry::Entry;
pub use types::{Value, WrongType};

/// Every database of one server, plus the clock their deadlines use.
pub struct Keyspace {
    pub dbs: Vec<Db>,
    pub clock: Clock,
    pub fences: fence::FenceCounter,
    /// Semaphores live beside the keys, not in them: they are logged and
    /// replayed with them ([`crate::coord::sem`]).
    pub sems: crate::coord::sem::Semaphores,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        Keyspace {
            dbs: (0..databases.max(1)).map(|_| Db::new()).collect(),
            clock: Clock::new(),
            fences: fence::FenceCounter::new(),
            sems: Default::default(),
        }
    }
}
