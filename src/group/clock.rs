//! The group's logical time, and the leader's expirer.
//!
//! The store's "now" on every node is the time of the last applied entry
//! ([`GroupTime::applied`]): it moves only with the log. The leader stamps
//! each entry with [`GroupTime::stamp`]: from the first stamp of its term it
//! counts from the highest stamp it has applied, advanced by its own
//! monotonic clock. So time never runs during a leaderless gap, never runs
//! faster than real time, and never goes back (apply keeps the maximum).
//!
//! The expirer runs on every node but acts only on the leader: when the
//! earliest deadline in the keyspace, or the coordination layer's next
//! timer (a lock-delay's end, a semaphore holder's lease,
//! [`crate::coord::Coord::next_due`]), has passed by the leader's time, it
//! proposes a tick entry; applying it moves every node's time on, and the
//! keys whose deadline passed disappear, lock-delays end and semaphore
//! holders leave on every node at that entry.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::Group;
use crate::store::clock::{Clock, follow_group_time, monotonic_us};

/// How often the leader looks for passed deadlines.
pub const TICK: Duration = Duration::from_millis(10);

#[derive(Default)]
pub struct GroupTime {
    applied_us: AtomicU64,
    applied_wall: AtomicI64,
    leader: Mutex<LeaderClock>,
}

#[derive(Default)]
struct LeaderClock {
    term: u64,
    base_us: u64,
    base_mono: u64,
    last: u64,
}

impl GroupTime {
    /// The time of the last applied entry: (logical µs, wall µs).
    pub fn applied(&self) -> (u64, i64) {
        (
            self.applied_us.load(Ordering::Acquire).max(1),
            self.applied_wall.load(Ordering::Acquire),
        )
    }

    /// Apply an entry stamped (`stamp`, `wall`): the group's time becomes
    /// the highest stamp applied; returns the time to apply it at.
    pub fn advance(&self, stamp: u64, wall: i64) -> (u64, i64) {
        let now = self.applied_us.load(Ordering::Acquire).max(stamp).max(1);
        self.applied_us.store(now, Ordering::Release);
        self.applied_wall.store(wall, Ordering::Release);
        follow_group_time(now);
        (now, wall)
    }

    /// Set the time outright (a snapshot was installed).
    pub fn reset(&self, now: u64, wall: i64) {
        self.applied_us.store(now, Ordering::Release);
        self.applied_wall.store(wall, Ordering::Release);
        follow_group_time(now);
    }

    /// The leader's time in `term`, without stamping anything.
    pub fn peek(&self, term: u64) -> u64 {
        let mut l = self.leader.lock();
        self.rebase(&mut l, term);
        (l.base_us + (monotonic_us() - l.base_mono)).max(l.last).max(1)
    }

    /// A stamp for an entry proposed by the leader of `term`.
    pub fn stamp(&self, term: u64) -> (u64, i64) {
        let mut l = self.leader.lock();
        self.rebase(&mut l, term);
        let now = (l.base_us + (monotonic_us() - l.base_mono)).max(l.last).max(1);
        l.last = now;
        (now, Clock::wall_us())
    }

    /// On the first stamp of a new term, restart from the highest stamp
    /// applied (the gap since the last leader's last stamp does not count).
    fn rebase(&self, l: &mut LeaderClock, term: u64) {
        if l.term != term {
            let base = self.applied_us.load(Ordering::Acquire);
            *l = LeaderClock {
                term,
                base_us: base,
                base_mono: monotonic_us(),
                last: base,
            };
        }
    }
}

/// The earliest deadline of any key (a lower bound; u64::MAX if none).
pub fn earliest_deadline(group: &Group) -> u64 {
    group
        .shared
        .keyspace
        .dbs
        .iter()
        .map(|db| db.earliest_deadline())
        .min()
        .unwrap_or(u64::MAX)
}

/// Remove the keys whose deadline is at or before `now` (the applied
/// time): they are already invisible; this gives their memory back.
pub fn reclaim(keyspace: &crate::store::Keyspace, now: u64) {
    for db in &keyspace.dbs {
        for shard in 0..db.shard_count() {
            while db.reclaim_shard(shard, now, 2_000).1 {}
        }
    }
}

/// The leader's expirer (see the module doc).
pub async fn run_expirer(group: Arc<Group>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(term) = group.leading_term() else { continue };
        let due = earliest_deadline(&group).min(group.shared.coord.next_due());
        if due != u64::MAX && due <= group.time.peek(term) {
            group.propose_tick(term).await;
        }
    }
}
