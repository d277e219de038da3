//! The state of one redlockd instance, independent of any connection: the
//! keyspace (with its fence counter), configuration and runtime settings,
//! the append-only file, the lock-grant gate of a delayed restart, the
//! client registry (CLIENT LIST/KILL, INFO clients), WATCH bookkeeping,
//! the publish/subscribe registry ([`crate::pubsub`]) and connection counters.
//!
//! It sits below both the network side (`server`, which creates it and
//! registers connections) and `commands` (which read and change it), so that
//! neither depends on the other for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{Notify, broadcast};

use crate::config::{ServerConfig, Settings};
use crate::lockstats::LockStats;
use crate::persist::aof::{Aof, Fsync, RewritePolicy};
use crate::pubsub::{LockEvent, PubSub, events};
use crate::stats::ServerCounters;
use crate::store::Keyspace;
use crate::store::clock::monotonic_us;

/// Everything a command may read or change besides its own connection.
pub struct Shared {
    pub config: ServerConfig,
    pub settings: Settings,
    pub keyspace: Arc<Keyspace>,
    /// The append-only file, when `--appendonly yes`.
    pub aof: Option<Arc<Aof>>,
    pub clients: ClientRegistry,
    pub watches: Watches,
    pub counters: ServerCounters,
    /// The Lua interpreter for uncatalogued scripts (`--lua`).
    pub lua: crate::commands::lua::Engine,
    pub slowlog: crate::slowlog::SlowLog,
    /// LATENCY's samples; the append-only file's writer adds its own.
    pub latency: Arc<crate::latency::LatencyMonitor>,
    /// Lock grant/release counters and recent lock events (`/metrics`, status page).
    pub locks: Arc<LockStats>,
    pub started: Instant,
    /// Channels, subscribers, keyspace notifications and lock events.
    pub pubsub: Arc<PubSub>,
    /// Waiter queues, client-bound locks, lock-delay and semaphores.
    pub coord: Arc<crate::coord::Coord>,
    /// Lock grants are refused until the restart delay has passed (`--restart-delay`).
    pub grants: GrantGate,
    pub run_id: String,
    /// The address actually bound (differs from the config with `--port 0`).
    pub local_addr: Mutex<Option<SocketAddr>>,
    /// Fired once to stop the server (SIGINT/SIGTERM or SHUTDOWN).
    pub shutdown: broadcast::Sender<()>,
    /// The replicated group this node is a member of (`--raft-peers`).
    pub group: std::sync::OnceLock<Arc<crate::group::Group>>,
}

/// Redlock's delayed restart: an instance that lost its memory must not grant
/// a lock that a holder may still believe it has, so grants wait out a delay.
pub struct GrantGate {
    resume_at: Instant,
    /// Set once the delay has passed: every lock grant asks, and after the
    /// first few seconds the answer never changes, so it costs one load.
    open: AtomicBool,
}

impl GrantGate {
    pub fn new(delay: std::time::Duration) -> Self {
        GrantGate {
            resume_at: Instant::now() + delay,
            open: AtomicBool::new(delay.is_zero()),
        }
    }

    /// How long grants stay refused; None once they are allowed.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        if self.open.load(Ordering::Relaxed) {
            return None;
        }
        let left = self.resume_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.open.store(true, Ordering::Relaxed);
            return None;
        }
        Some(left)
    }
}

impl Shared {
    /// Build the server state; with `--appendonly yes` the log is replayed
    /// here, before any client is served.
    pub fn new(config: ServerConfig) -> std::io::Result<Arc<Shared>> {
        let (shutdown, _) = broadcast::channel(1);
        let run_id: String = (0..40)
            .map(|_| char::from(b"0123456789abcdef"[rand::random_range(0..16)]))
            .collect();
        let keyspace = Arc::new(Keyspace::new(config.databases));
        let locks = Arc::new(LockStats::new(config.metrics_port != 0));
        let latency = Arc::new(crate::latency::LatencyMonitor::new(config.latency_monitor_threshold));
        let aof = if config.appendonly {
            let path = config.dir.join(&config.appendfilename);
            let rewrite = RewritePolicy {
                percentage: config.auto_aof_rewrite_percentage,
                min_size: config.auto_aof_rewrite_min_size,
            };
            Some(Aof::open(
                &path,
                Fsync::parse(&config.appendfsync),
                rewrite,
                keyspace.clone(),
                latency.clone(),
            )?)
        } else {
            None
        };
        let pubsub = Arc::new(PubSub::new(config.notify_keyspace_events));
        // Keys removed by expiry (lazily or by the expirer, after the log's
        // replay): the `expired` keyspace notification; and for a lock
        // (a value a lock grant stored) expired while held: counted,
        // logged, the status page's "expired" event and the `__lock__`
        // channel's `expired`.
        for (i, db) in keyspace.dbs.iter().enumerate() {
            let (locks, pubsub) = (locks.clone(), pubsub.clone());
            db.set_expire_hook(Box::new(move |key, entry| {
                pubsub.notify(events::EXPIRED, "expired", i, key);
                if entry.is_lock()
                    && let Ok(token) = entry.str()
                {
                    locks.expired(i, key, token, entry.deadline());
                    pubsub.lock_event(key, LockEvent::Expired { token });
                }
            }));
        }
        let coord = crate::coord::Coord::new(keyspace.clone(), aof.clone(), locks.clone(), pubsub.clone(), &config);
        Ok(Arc::new(Shared {
            coord,
            settings: Settings::new(&config),
            keyspace,
            aof,
            clients: ClientRegistry::default(),
            watches: Watches::default(),
            counters: ServerCounters::default(),
            lua: crate::commands::lua::Engine::new(config.lua, config.busy_reply_threshold),
            slowlog: crate::slowlog::SlowLog::new(config.slowlog_log_slower_than, config.slowlog_max_len),
            locks,
            pubsub,
            latency,
            started: Instant::now(),
            grants: GrantGate::new(std::time::Duration::from_millis(config.restart_delay)),
            run_id,
            local_addr: Mutex::new(None),
            shutdown,
            group: std::sync::OnceLock::new(),
            config,
        }))
    }
}

/// What other connections may see or do to one client.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    /// The socket's file descriptor (-1 until the server sets it).
    pub fd: AtomicI32,
    pub created: Instant,
    pub name: Mutex<String>,
    pub lib_name: Mutex<String>,
    pub lib_ver: Mutex<String>,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    /// When the client last sent anything ([`monotonic_us`]).
    pub last_input_us: AtomicU64,
    /// Statistics slot of the last command (`table::stat_index`, for
    /// CLIENT LIST `cmd=`; `usize::MAX` before the first).
    pub last_cmd: AtomicUsize,
    /// Commands queued inside MULTI, or -1 outside (CLIENT LIST `multi=`).
    pub multi: AtomicI64,
    /// CLIENT NO-EVICT / NO-TOUCH, as set (flags `e` and `T`).
    pub no_evict: AtomicBool,
    pub no_touch: AtomicBool,
    pub killed: AtomicBool,
    pub kill: Notify,
    /// Channels, patterns and shard channels subscribed to (CLIENT LIST
    /// `sub`, `psub`, `ssub`), kept by [`crate::pubsub::Subscriptions`].
    pub subscriptions: [AtomicUsize; 3],
    /// [`BLOCK_NONE`], or blocked in a WAIT acquire ([`BLOCK_WAITING`]),
    /// or unblocked by CLIENT UNBLOCK ([`BLOCK_TIMEOUT`], [`BLOCK_ERROR`]).
    pub block: AtomicU8,
    /// Wakes the blocked connection when CLIENT UNBLOCK sets `block`.
    pub unblock: Notify,
    /// In a replicated group: this client took or extended a lock that its
    /// close may release (ONCLOSE), so its close goes through the log.
    pub group_bound: AtomicBool,
}

pub const BLOCK_NONE: u8 = 0;
pub const BLOCK_WAITING: u8 = 1;
pub const BLOCK_TIMEOUT: u8 = 2;
pub const BLOCK_ERROR: u8 = 3;

impl ClientHandle {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            fd: AtomicI32::new(-1),
            created: Instant::now(),
            name: Mutex::new(String::new()),
            lib_name: Mutex::new(String::new()),
            lib_ver: Mutex::new(String::new()),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            last_input_us: AtomicU64::new(monotonic_us()),
            last_cmd: AtomicUsize::new(usize::MAX),
            multi: AtomicI64::new(-1),
            no_evict: AtomicBool::new(false),
            no_touch: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            subscriptions: Default::default(),
            block: AtomicU8::new(BLOCK_NONE),
            unblock: Notify::new(),
            group_bound: AtomicBool::new(false),
        }
    }

    /// CLIENT UNBLOCK: end this client's blocking wait as `how`
    /// ([`BLOCK_TIMEOUT`] or [`BLOCK_ERROR`]); false if it is not blocked.
    pub fn unblock(&self, how: u8) -> bool {
        let hit = self
            .block
            .compare_exchange(BLOCK_WAITING, how, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if hit {
            self.unblock.notify_waiters();
        }
        hit
    }

    pub fn request_kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    /// Record input from the client (now).
    pub fn touch(&self) {
        self.last_input_us.store(monotonic_us(), Ordering::Relaxed);
    }

    /// How long since the client last sent anything.
    pub fn idle(&self) -> std::time::Duration {
        let last = self.last_input_us.load(Ordering::Relaxed);
        std::time::Duration::from_micros(monotonic_us().saturating_sub(last))
    }

    /// The command-table index of the client's last command, if any.
    pub fn last_command(&self) -> Option<usize> {
        Some(self.last_cmd.load(Ordering::Relaxed)).filter(|&i| i != usize::MAX)
    }

    /// One CLIENT LIST / CLIENT INFO line (without the trailing newline),
    /// with Redis 7.2's fields in its order; `cmd` is the name of
    /// [`last_command`](Self::last_command), or "NULL". The buffers belong
    /// to the connection task and are not measured: their fields are 0.
    pub fn describe(&self, cmd: &str) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = self.idle().as_secs();
        let multi = self.multi.load(Ordering::Relaxed);
        let [sub, psub, ssub] = self.subscriptions.each_ref().map(|n| n.load(Ordering::Relaxed));
        let mut flags = String::new();
        if sub + psub + ssub > 0 {
            flags.push('P');
        }
        if multi >= 0 {
            flags.push('x');
        }
        if self.block.load(Ordering::Relaxed) != BLOCK_NONE {
            flags.push('b');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if self.no_touch.load(Ordering::Relaxed) {
            flags.push('T');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db={} sub={sub} psub={psub} ssub={ssub} multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd.load(Ordering::Relaxed),
            self.name.lock(),
            age,
            idle,
            self.db.load(Ordering::Relaxed),
            cmd,
            self.resp.load(Ordering::Relaxed),
            self.lib_name.lock(),
            self.lib_ver.lock(),
        )
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
}

impl ClientRegistry {
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let handle = Arc::new(ClientHandle::new(id, addr, laddr));
        self.clients.lock().insert(id, handle.clone());
        handle
    }

    pub fn get(&self, id: u64) -> Option<Arc<ClientHandle>> {
        self.clients.lock().get(&id).cloned()
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn count(&self) -> usize {
        self.clients.lock().len()
    }

    /// Every client, in id order.
    pub fn snapshot(&self) -> Vec<Arc<ClientHandle>> {
        let mut v: Vec<_> = self.clients.lock().values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }
}

/// Keys under WATCH, and the flags of the clients watching them.
///
/// A write command marks every watcher of the keys it touched (whether or
/// not it changed the value, as Redis does for most commands); EXEC of a
/// marked client fails. When nobody watches anything, a write costs one
/// relaxed load.
/// (database index, key)
type WatchedKey = (usize, Box<[u8]>);

#[derive(Default)]
pub struct Watches {
    active: AtomicUsize,
    keys: Mutex<HashMap<WatchedKey, Vec<Arc<AtomicBool>>>>,
}

impl Watches {
    pub fn watch(&self, db: usize, key: &[u8], flag: &Arc<AtomicBool>) {
        let mut keys = self.keys.lock();
        let list = keys.entry((db, key.into())).or_default();
        if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
            list.push(flag.clone());
            self.active.fetch_add(1, Ordering::SeqCst);
        }
    }

    pub fn unwatch(&self, db: usize, key: &[u8], flag: &Arc<AtomicBool>) {
        let mut keys = self.keys.lock();
        let k = (db, Box::<[u8]>::from(key));
        if let Some(list) = keys.get_mut(&k) {
            let before = list.len();
            list.retain(|f| !Arc::ptr_eq(f, flag));
            self.active.fetch_sub(before - list.len(), Ordering::SeqCst);
            if list.is_empty() {
                keys.remove(&k);
            }
        }
    }

    #[inline]
    pub fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    pub fn touch(&self, db: usize, key: &[u8]) {
        if !self.any() {
            return;
        }
        if let Some(list) = self.keys.lock().get(&(db, Box::<[u8]>::from(key))) {
            for f in list {
                f.store(true, Ordering::SeqCst);
            }
        }
    }

    /// FLUSHDB/FLUSHALL: every watcher of `db` (or of every db) is marked.
    pub fn touch_db(&self, db: Option<usize>) {
        if !self.any() {
            return;
        }
        for ((d, _), list) in self.keys.lock().iter() {
            if db.is_none_or(|x| x == *d) {
                for f in list {
                    f.store(true, Ordering::SeqCst);
                }
            }
        }
    }
}
