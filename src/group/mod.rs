//! A replicated lock group: N redlockd nodes that act as one linearizable
//! server, on openraft (`--raft-peers`; without it none of this runs).
//!
//! ```text
//! client ─▶ any node ─(follower: forward over the group link)─▶ leader
//! leader: command ─▶ client_write(entry) ─▶ fsync on a majority ─▶ apply on every node ─▶ reply from its own apply
//! ```
//!
//! **What the log carries: the command.** An entry is the argv of one
//! command (or of a whole MULTI/EXEC), the client's database and protocol,
//! and the leader's stamp: the group's logical time in µs and its wall
//! clock. Every node applies it through the same dispatch as a single
//! server ([`crate::commands::execute_replicated`], on a synthetic client)
//! with its clock pinned to the stamp ([`crate::store::clock::pin`]), so
//! the apply reads no clock and no randomness of its own and every node
//! reaches the same state; the leader's reply is the reply bytes of its own
//! apply, so the client gets exactly what a single server would send.
//! (Recording effects instead would need a second, effect-producing path
//! through every handler; the command is one path for both.)
//!
//! **Writes** are acknowledged only from a committed entry: fsynced on a
//! majority, then applied here. **Reads** on the leader go through
//! `ensure_linearizable` (or a tick entry, below) and then read locally;
//! a follower forwards every command that touches data to the leader and
//! returns its reply bytes unchanged. With no leader a command waits up to
//! `--leader-wait-ms`, then gets `-TRYAGAIN no leader elected`. A write
//! whose fate became unknown (the leader lost its link or its quorum with
//! the entry in flight) is tried again with the same session id, which the
//! state machine applies once; only if no leader confirms it within the
//! wait does the client get `-UNCERTAIN ...`: it may or may not apply.
//!
//! **Time and expiry** ([`clock`]): deadlines are in the group's logical
//! time. The leader stamps entries with it; it advances with the leader's
//! monotonic clock, and a new leader restarts it from the highest stamp it
//! has applied, so the leaderless gap does not count. Followers never
//! expire anything by their own clocks: the store's "now" is the time of
//! the last applied entry, and when a deadline has passed by the leader's
//! time the leader proposes a tick entry that moves the group's time on
//! (the expired keys then disappear on every node at the same entry).
//! Guarantee: a key set with a TTL lives at least that TTL of real time
//! counted from when the leader **stamped** the entry (which precedes the
//! acknowledgement by one commit round trip), across any failover; after
//! a failover an orphaned lock is free at most TTL + the election time
//! later (plus the tick period, 10 ms).
//!
//! **Fences** ([`state_machine`]): before applying entry `i` the fence
//! counter is raised to `i << 10`, so a grant's fence is strictly greater
//! than every fence granted before by any leader.
//!
//! Parts: [`config`] (flags), [`network`] (the group link: openraft RPCs
//! and forwarded commands on one persistent connection per peer),
//! [`log_store`] (the log segment file and the vote), [`state_machine`]
//! (apply and snapshots), [`forward`] (routing a client's command),
//! [`clock`] (logical time and the leader's expirer), [`role`] (ROLE, INFO
//! replication, SENTINEL, RAFT.*).

// openraft's error types are large, and its traits fix them as our results'.
#![allow(clippy::result_large_err)]

pub mod batch;
pub mod clock;
pub mod config;
pub mod forward;
pub mod log_store;
pub mod network;
pub mod role;
pub mod state_machine;
pub mod waiters;

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use openraft::BasicNode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::instance::Shared;

openraft::declare_raft_types!(
    /// The group's openraft types: entries carry a [`Request`], applies
    /// answer a [`Reply`].
    pub TypeConfig:
        D = Request,
        R = Reply,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Metrics = openraft::RaftMetrics<u64, BasicNode>;

/// One log entry's command, stamped by the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// The group's logical time (µs) when the leader stamped it.
    pub now_us: u64,
    /// The leader's wall clock then (µs since the Unix epoch).
    pub wall_us: i64,
    /// (node that took the command, sequence number): a write tried again
    /// after an attempt whose fate is unknown carries the same id, and the
    /// state machine applies an id once (later copies get the first reply).
    pub session: Option<(u64, u64)>,
    pub db: u32,
    pub resp3: bool,
    pub op: Op,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    /// One command's argv.
    Command(Vec<Vec<u8>>),
    /// The commands of a MULTI ... EXEC, applied as one.
    Multi(Vec<Vec<Vec<u8>>>),
    /// Moves the group's time on (expiry); no command.
    Tick,
    /// Requests proposed concurrently, in one entry ([`batch`]): applied in
    /// order, each as if it were an entry of its own.
    Batch(Vec<Request>),
    /// An op run as the client `id` ([`Group::client_id`]) rather than the
    /// anonymous one: a lock taken with ONCLOSE is bound to it, and an
    /// extend binds to it a lock whose client closed in its grace.
    AsClient(u64, Box<Op>),
    /// Client `id` closed: its client-bound locks are released (after
    /// their grace) at this entry on every node.
    ClientClosed(u64),
}

/// The reply bytes of an applied entry (RESP, as the client gets them);
/// for a [`Op::Batch`], each request's in the second field, in order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply(pub Vec<u8>, pub Vec<Vec<u8>>);

/// A running group member.
pub struct Group {
    pub id: u64,
    pub raft: Raft,
    pub config: config::GroupConfig,
    pub shared: Arc<Shared>,
    pub time: Arc<clock::GroupTime>,
    pub links: Arc<network::Links>,
    metrics: watch::Receiver<Metrics>,
    /// Members' client (RESP) addresses, learned over the group link.
    client_addrs: Mutex<HashMap<u64, String>>,
    /// The last session sequence number handed out (starts at the wall
    /// clock in µs, so a restarted node never reuses one).
    sessions: std::sync::atomic::AtomicU64,
    /// Where proposals queue to be batched into log entries.
    proposals: batch::Proposals,
    /// Blocked acquires queued here while this node leads.
    pub waiters: Arc<waiters::Waiters>,
}

/// Group mode needs neither the append-only file (the log is the
/// durability) nor the restart delay (a restarted node replays the log).
pub fn adjust_config(config: &mut crate::config::ServerConfig) {
    if !config.raft_peers.is_empty() {
        config.appendonly = false;
        config.restart_delay = 0;
    }
}

/// Start this node's group member, or None without `--raft-peers`.
pub async fn start(shared: &Arc<Shared>) -> std::io::Result<Option<Arc<Group>>> {
    let Some(cfg) = config::GroupConfig::from_server(&shared.config).map_err(std::io::Error::other)? else {
        return Ok(None);
    };
    std::fs::create_dir_all(&cfg.dir)?;
    // The fence counter is replicated state: it starts from the log.
    shared.keyspace.fences.set(0);
    let time = Arc::new(clock::GroupTime::default());
    crate::store::clock::follow_group_time(1);
    let log = log_store::LogStore::open(&cfg.dir)?;
    let waiters = Arc::new(waiters::Waiters::default());
    let sm = state_machine::StateMachine::open(shared.clone(), time.clone(), waiters.clone(), &cfg.dir)?;
    let fresh = log.is_empty() && !sm.has_snapshot();
    let links = Arc::new(network::Links::new(cfg.peers.clone()));
    let raft_config = openraft::Config {
        cluster_name: cfg.name.clone(),
        heartbeat_interval: cfg.heartbeat_ms,
        election_timeout_min: cfg.election_ms,
        election_timeout_max: cfg.election_ms * 3 / 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(cfg.snapshot_entries),
        max_in_snapshot_log_to_keep: cfg.snapshot_entries.min(1000),
        ..Default::default()
    }
    .validate()
    .map_err(std::io::Error::other)?;
    let network = network::Network { links: links.clone() };
    let raft = Raft::new(cfg.id, Arc::new(raft_config), network, log, sm)
        .await
        .map_err(std::io::Error::other)?;
    let listener = crate::server::bind_addr(&cfg.bind, cfg.raft_port, 128)?;
    let metrics = raft.metrics();
    let group = Arc::new(Group {
        id: cfg.id,
        raft: raft.clone(),
        shared: shared.clone(),
        time,
        links,
        metrics,
        client_addrs: Mutex::new(HashMap::new()),
        sessions: std::sync::atomic::AtomicU64::new(crate::store::clock::Clock::wall_us().max(0) as u64),
        proposals: batch::Proposals::start(raft.clone()),
        waiters,
        config: cfg,
    });
    group.waiters.set_group(&group);
    let waiters = group.waiters.clone();
    shared
        .coord
        .set_group_queues(Box::new(move |db, sem, key| waiters.queue_len(db as u32, sem, key)));
    info!(id = group.id, port = group.config.raft_port, "group link listening");
    tokio::spawn(network::serve(listener, group.clone()));
    if fresh && group.config.founding() {
        // Every founding member proposes the same membership; openraft
        // accepts identical ones. Addresses stay empty: each node reaches a
        // founding member through its own --raft-peers.
        let members: BTreeMap<u64, BasicNode> = group.config.peers.keys().map(|&id| (id, BasicNode::new(""))).collect();
        if let Err(e) = group.raft.initialize(members).await {
            warn!("group initialize: {e}");
        }
    }
    tokio::spawn(clock::run_expirer(group.clone()));
    tokio::spawn(waiters::drain_on_stepping_down(Arc::downgrade(&group)));
    tokio::spawn(network::exchange_hellos(group.clone()));
    Ok(Some(group))
}

impl Group {
    /// (leader, term) as this node knows them now. A leader that has not
    /// heard from a quorum for two election timeouts (partitioned from the
    /// majority, which has surely elected another by then) does not count
    /// itself as one: its new commands wait for a leader, and get
    /// `-TRYAGAIN` rather than a write that could never commit.
    pub fn leader(&self) -> (Option<u64>, u64) {
        let m = self.metrics.borrow();
        let leader = m.current_leader.filter(|&l| l != self.id || self.quorum_heard(&m));
        (leader, m.current_term)
    }

    /// The term in which this node leads, if it does (see [`Group::leader`]).
    pub fn leading_term(&self) -> Option<u64> {
        let m = self.metrics.borrow();
        (m.current_leader == Some(self.id) && m.state.is_leader() && self.quorum_heard(&m)).then_some(m.current_term)
    }

    fn quorum_heard(&self, m: &Metrics) -> bool {
        m.millis_since_quorum_ack
            .is_none_or(|ms| ms <= 2 * self.config.election_ms)
    }

    pub fn metrics(&self) -> Metrics {
        self.metrics.borrow().clone()
    }

    /// Wait until the metrics change, or `limit` passes.
    pub async fn metrics_changed(&self, limit: Duration) {
        let mut rx = self.metrics.clone();
        rx.borrow_and_update();
        let _ = tokio::time::timeout(limit, rx.changed()).await;
    }

    /// A new session id for a write taken by this node.
    pub fn next_session(&self) -> (u64, u64) {
        (
            self.id,
            self.sessions.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
        )
    }

    /// The group-wide id of this node's client `local` (the node in the
    /// top 16 bits): what client-bound locks are bound to in the log.
    pub fn client_id(&self, local: u64) -> u64 {
        (self.id << 48) | (local & ((1 << 48) - 1))
    }

    /// This node's client address, as the others should report it.
    pub fn my_client_addr(&self) -> String {
        let port = self
            .shared
            .local_addr
            .lock()
            .map_or(self.shared.config.port, |a| a.port());
        let host = match self.config.bind.as_str() {
            "0.0.0.0" | "::" | "*" => self
                .config
                .peers
                .get(&self.id)
                .and_then(|a| a.rsplit_once(':'))
                .map_or("127.0.0.1".to_string(), |(h, _)| h.to_string()),
            h => h.to_string(),
        };
        format!("{host}:{port}")
    }

    /// A member's client address, if known.
    pub fn client_addr(&self, id: u64) -> Option<String> {
        if id == self.id {
            return Some(self.my_client_addr());
        }
        self.client_addrs.lock().get(&id).cloned()
    }

    pub fn learn_client_addr(&self, id: u64, addr: String) {
        self.client_addrs.lock().insert(id, addr);
    }

    /// Where this node reaches member `id` on the group link.
    pub fn raft_addr(&self, id: u64) -> Option<String> {
        if let Some(a) = self.config.peers.get(&id) {
            return Some(a.clone());
        }
        let m = self.metrics.borrow();
        m.membership_config
            .nodes()
            .find(|(n, _)| **n == id)
            .map(|(_, node)| node.addr.clone())
            .filter(|a| !a.is_empty())
    }
}
