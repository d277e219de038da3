//! Every server flag, spelled as redis-server spells it, and the runtime
//! settings that `CONFIG SET` may change.

use std::sync::atomic::{AtomicU64, Ordering};

use clap::Args;

/// Flags of the server (also accepted with redis-server's `--name value` form).
#[derive(Args, Debug, Clone)]
pub struct ServerConfig {
    /// TCP port to listen on; 0 picks a free port (the chosen one is logged
    /// and printed as `redlockd listening on ADDR`).
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Threads serving clients: 0 (the default) is one worker per core
    /// (work-stealing), for the most lock cycles per second; 1 is a single
    /// event loop, like redis-server, for a steadier tail latency when the
    /// clients share the machine's few cores.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Accept queue length of the listening socket.
    #[arg(long, default_value_t = 511)]
    pub tcp_backlog: u32,
    /// Number of databases (SELECT 0..N-1).
    #[arg(long, default_value_t = 16)]
    pub databases: usize,
    /// Most simultaneous clients; the next one gets an error and is closed.
    /// Lowered at start (with a warning) when the open-files limit cannot
    /// be raised to fit them, as redis-server does.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=u32::MAX as u64))]
    pub maxclients: u64,
    /// Past this many bytes allocated, refuse commands that may grow memory
    /// (SET, LOCK.ACQUIRE...) with -OOM; reads, deletes, lock releases and
    /// expiry go on, and no lock is ever evicted (policy noeviction).
    /// redis-server units: 100mb, 1gb; 0 = no limit.
    #[arg(long, default_value = "0", value_parser = parse_memory)]
    pub maxmemory: u64,
    /// Send TCP keepalive probes to a client silent for this many seconds
    /// (then every third of it; 3 unanswered probes close the connection),
    /// so half-open connections are noticed (0 = off).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=i32::MAX as u64))]
    pub tcp_keepalive: u64,
    /// Close a client idle this many seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Log level: redis-server's debug|verbose|notice|warning, or a tracing
    /// filter (`RUST_LOG` wins when set).
    #[arg(long, alias = "loglevel", default_value = "notice")]
    pub log_level: String,
    /// Log lines as text, or as one JSON object a line (for log shippers).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Largest bulk string a client may send (redis-server units: 512mb, 1gb).
    #[arg(long, default_value = "512mb", value_parser = parse_memory)]
    pub proto_max_bulk_len: u64,
    /// Largest query buffer of one client before it is disconnected.
    #[arg(long, default_value = "1gb", value_parser = parse_memory)]
    pub client_query_buffer_limit: u64,
    /// Replies waiting for a client that does not read: "normal HARD SOFT
    /// SECONDS" as in redis.conf (0 = no limit). Over HARD, or over SOFT for
    /// SECONDS, the client is disconnected.
    #[arg(long, default_value = "normal 256mb 64mb 60", value_parser = OutputLimit::parse)]
    pub client_output_buffer_limit: OutputLimit,
    /// Keyspace notifications, as redis.conf's notify-keyspace-events:
    /// class letters (g$x... or A) plus K and/or E; empty = off.
    #[arg(long, default_value = "", value_parser = crate::pubsub::events::parse_flag)]
    pub notify_keyspace_events: u32,
    /// Require this password (AUTH / HELLO AUTH) before any other command.
    #[arg(long)]
    pub requirepass: Option<String>,
    /// With no password, refuse clients that are not on 127.0.0.1 or ::1.
    #[arg(long, default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub protected_mode: bool,
    /// Log commands that ran at least this many microseconds in the slow
    /// log (SLOWLOG GET); -1 logs nothing, 0 every command.
    #[arg(long, default_value_t = 10_000, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub slowlog_log_slower_than: i64,
    /// Entries the slow log keeps (the oldest go first).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub slowlog_max_len: u64,
    /// Keep LATENCY samples of commands (and append-only file writes) that
    /// took at least this many milliseconds; 0 keeps none.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
    pub latency_monitor_threshold: u64,
    /// After start, refuse lock grants (SET NX, LOCK.ACQUIRE, acquire scripts)
    /// for this many milliseconds: Redlock's delayed restart (0 = off).
    #[arg(long, default_value_t = 0)]
    pub restart_delay: u64,
    /// Chubby's lock-delay: after a lock expires while held (not after a
    /// release), it cannot be granted again for this many milliseconds, so
    /// a holder that lost it to a pause can notice before anyone else
    /// writes (0 = off; LOCK.ACQUIRE ... DELAY ms sets it per lock).
    #[arg(long, default_value_t = 0)]
    pub lock_delay: u64,
    /// Most clients blocked at once in LOCK.ACQUIRE / SEM.ACQUIRE ... WAIT;
    /// past it a blocking acquire gets an error.
    #[arg(long, default_value_t = 100_000)]
    pub max_waiters: u64,
    /// Most clients blocked at once on one lock or semaphore.
    #[arg(long, default_value_t = 10_000)]
    pub max_waiters_per_key: u64,
    /// Log every write to an append-only file and replay it on start.
    #[arg(long, default_value = "no", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub appendonly: bool,
    /// always (reply after fsync; one fsync per batch of writes), everysec, no.
    #[arg(long, default_value = "everysec", value_parser = ["always", "everysec", "no"])]
    pub appendfsync: String,
    /// Directory of the append-only file.
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
    #[arg(long, default_value = "appendonly.aof")]
    pub appendfilename: String,
    /// Rewrite the log when it grew by this percentage since the last rewrite...
    #[arg(long, default_value_t = 100)]
    pub auto_aof_rewrite_percentage: u64,
    /// ...and is at least this large.
    #[arg(long, default_value = "64mb", value_parser = parse_memory)]
    pub auto_aof_rewrite_min_size: u64,
    /// Port of the HTTP server for Prometheus metrics (`/metrics`), health
    /// checks (`/healthz`, `/readyz`) and the status page (`/`), on
    /// `--bind`'s address (0 = off).
    #[arg(long, default_value_t = 0)]
    pub metrics_port: u16,
    /// TLS port (0 = no TLS listener).
    #[arg(long, default_value_t = 0)]
    pub tls_port: u16,
    #[arg(long)]
    pub tls_cert_file: Option<std::path::PathBuf>,
    #[arg(long)]
    pub tls_key_file: Option<std::path::PathBuf>,
    /// CA certificates that client certificates must chain to.
    #[arg(long)]
    pub tls_ca_cert_file: Option<std::path::PathBuf>,
    /// With a CA file: require client certificates (mutual TLS).
    #[arg(long, default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub tls_auth_clients: bool,
    /// Replicated group: this node's id (see `--raft-peers`).
    #[arg(long, default_value_t = 0)]
    pub raft_id: u64,
    /// Replicated group: the port of the group link (openraft RPCs and
    /// forwarded commands), on `--bind`'s address.
    #[arg(long, default_value_t = 0)]
    pub raft_port: u16,
    /// Replicated group: every member as `id@host:raftport`, comma
    /// separated; empty = a single server. The addresses are how THIS node
    /// reaches each peer.
    #[arg(long, default_value = "")]
    pub raft_peers: String,
    /// Replicated group: the master name the SENTINEL commands answer to.
    #[arg(long, default_value = "redlockd")]
    pub raft_name: String,
    /// Replicated group: how long a command waits for a leader before
    /// `-TRYAGAIN no leader elected`.
    #[arg(long, default_value_t = 2000)]
    pub leader_wait_ms: u64,
    #[arg(long, default_value_t = 80)]
    pub raft_heartbeat_ms: u64,
    /// Election timeout: openraft draws one between this and 1.5 times this.
    #[arg(long, default_value_t = 400)]
    pub raft_election_timeout_ms: u64,
    /// Log entries since the last snapshot that trigger a new one (tests lower it).
    #[arg(long, default_value_t = 50_000, hide = true)]
    pub raft_snapshot_entries: u64,
    /// Run scripts the catalogue does not know on an embedded, sandboxed
    /// Lua 5.1 (no: only catalogued scripts run, anything else is refused).
    #[arg(long, default_value = "yes", value_parser = parse_yes_no, action = clap::ArgAction::Set)]
    pub lua: bool,
    /// A Lua script running longer than this many milliseconds makes other
    /// clients' commands fail with -BUSY until it ends or SCRIPT KILL stops
    /// it (0: they wait).
    #[arg(long, alias = "lua-time-limit", default_value_t = 5000)]
    pub busy_reply_threshold: u64,
    /// The config file the server was started with (`redlockd FILE`), as
    /// an absolute path: CONFIG REWRITE writes to it.
    #[arg(skip)]
    pub config_file: Option<std::path::PathBuf>,
}

/// redis-server's yes/no flags.
pub fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("expected yes or no, got '{s}'")),
    }
}

/// The `normal` class of client-output-buffer-limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl OutputLimit {
    pub fn parse(s: &str) -> Result<OutputLimit, String> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        let [class, hard, soft, secs] = parts.as_slice() else {
            return Err("expected 'normal HARD SOFT SECONDS'".into());
        };
        if !class.eq_ignore_ascii_case("normal") {
            return Err(format!("only the 'normal' class applies to redlockd, got '{class}'"));
        }
        Ok(OutputLimit {
            hard: parse_memory(hard)?,
            soft: parse_memory(soft)?,
            soft_seconds: secs.parse().map_err(|_| format!("invalid seconds '{secs}'"))?,
        })
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 6379,
            bind: "127.0.0.1".into(),
            threads: 0,
            tcp_backlog: 511,
            databases: 16,
            maxclients: 10_000,
            maxmemory: 0,
            tcp_keepalive: 300,
            timeout: 0,
            log_level: "notice".into(),
            log_format: "text".into(),
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: OutputLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60,
            },
            notify_keyspace_events: 0,
            requirepass: None,
            protected_mode: true,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            restart_delay: 0,
            lock_delay: 0,
            max_waiters: 100_000,
            max_waiters_per_key: 10_000,
            appendonly: false,
            appendfsync: "everysec".into(),
            dir: ".".into(),
            appendfilename: "appendonly.aof".into(),
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 << 20,
            metrics_port: 0,
            tls_port: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: true,
            raft_id: 0,
            raft_port: 0,
            raft_peers: String::new(),
            raft_name: "redlockd".into(),
            leader_wait_ms: 2000,
            raft_heartbeat_ms: 80,
            raft_election_timeout_ms: 400,
            raft_snapshot_entries: 50_000,
            lua: true,
            busy_reply_threshold: 5000,
            config_file: None,
        }
    }
}

/// Parse a size the way redis-server does: `100`, `1k` (1000), `1kb` (1024),
/// `1m`, `1mb`, `1g`, `1gb`, case-insensitive.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let split = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size '{s}'"))?;
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(format!("invalid size unit in '{s}'")),
    };
    n.checked_mul(mul).ok_or_else(|| format!("size '{s}' is too large"))
}

/// The settings `CONFIG SET` can change while the server runs.
pub struct Settings {
    pub maxclients: AtomicU64,
    /// Bytes; 0 = no limit.
    pub maxmemory: AtomicU64,
    /// Seconds; applies to connections accepted after a change.
    pub tcp_keepalive: AtomicU64,
    pub timeout: AtomicU64,
    pub proto_max_bulk_len: AtomicU64,
    pub client_query_buffer_limit: AtomicU64,
    /// None: no password; every client is authenticated from the start.
    pub requirepass: parking_lot::RwLock<Option<Box<[u8]>>>,
    pub protected_mode: std::sync::atomic::AtomicBool,
}

impl Settings {
    pub fn new(cfg: &ServerConfig) -> Self {
        Settings {
            maxclients: AtomicU64::new(cfg.maxclients),
            maxmemory: AtomicU64::new(cfg.maxmemory),
            tcp_keepalive: AtomicU64::new(cfg.tcp_keepalive),
            timeout: AtomicU64::new(cfg.timeout),
            proto_max_bulk_len: AtomicU64::new(cfg.proto_max_bulk_len),
            client_query_buffer_limit: AtomicU64::new(cfg.client_query_buffer_limit),
            // As in Redis, an empty password is no password.
            requirepass: parking_lot::RwLock::new(
                cfg.requirepass
                    .as_ref()
                    .filter(|p| !p.is_empty())
                    .map(|p| p.as_bytes().into()),
            ),
            protected_mode: std::sync::atomic::AtomicBool::new(cfg.protected_mode),
        }
    }

    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }

    pub fn password_required(&self) -> bool {
        self.requirepass.read().is_some()
    }

    /// Compare a password with the configured one in constant time (both
    /// are hashed first, so neither length nor content leaks through timing).
    pub fn password_matches(&self, given: &[u8]) -> bool {
        use sha1::{Digest, Sha1};
        let guard = self.requirepass.read();
        let Some(expected) = guard.as_deref() else { return true };
        let (a, b) = (Sha1::digest(expected), Sha1::digest(given));
        a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units_as_redis() {
        assert_eq!(parse_memory("512mb"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory("1k"), Ok(1000));
        assert_eq!(parse_memory("1KB"), Ok(1024));
        assert_eq!(parse_memory("7"), Ok(7));
        assert!(parse_memory("1xb").is_err());
        assert!(parse_memory("").is_err());
    }

    #[test]
    fn output_limit_and_yes_no() {
        assert_eq!(
            OutputLimit::parse("normal 256mb 64mb 60"),
            Ok(OutputLimit {
                hard: 256 << 20,
                soft: 64 << 20,
                soft_seconds: 60
            })
        );
        assert!(OutputLimit::parse("replica 0 0 0").is_err());
        assert_eq!(parse_yes_no("YES"), Ok(true));
        assert!(parse_yes_no("maybe").is_err());
    }
}
