//! Load generator for `scripts/bench.sh`: lock cycles, contended locks
//! (blocking LOCK.ACQUIRE ... WAIT against SET NX with a retry sleep), key
//! loading, expiry reclaim, idle connections, and a large MSET in small
//! chunks; and for `scripts/bench-group.sh`: LOCK.ACQUIRE → LOCK.RELEASE
//! cycles, the same cycle on etcd (over its JSON gateway), and a group's
//! failover time. Every mode prints one JSON object on stdout. It talks
//! RESP over its own lean connections (one per task, no pipelining unless
//! stated).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::{Parser, Subcommand};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::types::RangeFrame;
use redlockd::protocol::encode_command as encode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Cli {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    addr: String,
    /// The server's pid, for RSS and CPU readings from /proc.
    #[arg(long)]
    pid: Option<u32>,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Acquire (SET NX PX) → critical section → release, from many tasks.
    Locks {
        #[arg(long, default_value_t = 1000)]
        keys: usize,
        #[arg(long, default_value_t = 50)]
        tasks: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// native (DELEX IFEQ) or evalsha (the script in --script, loaded first).
        #[arg(long, default_value = "evalsha")]
        release: String,
        #[arg(long)]
        script: Option<std::path::PathBuf>,
    },
    /// Contended locks: each task is one client bound to key `task % keys`,
    /// cycling acquire → INCR a counter → release. `wait`: redlockd's
    /// blocking `LOCK.ACQUIRE ... WAIT 0` and LOCK.RELEASE; `retry`: the
    /// best a Redis client has, SET NX PX retried after `retry-ms` (as
    /// node-redlock does) and the release script by EVALSHA. Reports
    /// throughput, the time to acquire (p50/p99), and fairness: the most
    /// and fewest grants a client got, and their ratio.
    Contended {
        #[arg(long, default_value_t = 10)]
        keys: usize,
        #[arg(long, default_value_t = 50)]
        tasks: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// wait or retry.
        #[arg(long, default_value = "wait")]
        method: String,
        #[arg(long, default_value_t = 10)]
        retry_ms: u64,
        /// The release script (for `retry`).
        #[arg(long)]
        script: Option<std::path::PathBuf>,
        /// Work outside the lock after each release (ms): a client that
        /// does more than take the lock.
        #[arg(long, default_value_t = 0)]
        think_ms: u64,
    },
    /// Load lock keys (22-byte tokens) pipelined; report memory per key.
    Load {
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        #[arg(long, default_value_t = 600_000)]
        px: u64,
    },
    /// Load keys with a short TTL and time how long after the last deadline
    /// the server reports them all expired (INFO stats expired_keys).
    Expire {
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
        #[arg(long, default_value_t = 2000)]
        px: u64,
    },
    /// Hold many idle connections; report RSS per connection and PING latency.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        #[arg(long, default_value_t = 2000)]
        pings: usize,
    },
    /// LOCK.ACQUIRE (PX 30000) → LOCK.RELEASE from many tasks (a group: give its leader).
    Native {
        #[arg(long, default_value_t = 1000)]
        keys: usize,
        #[arg(long, default_value_t = 50)]
        tasks: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// The same cycle on etcd, on its leader: a transaction that puts the key
    /// with the task's lease if absent (create_revision == 0), then a delete.
    Etcd {
        /// Client URLs of the members, comma-separated (http://host:port).
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        keys: usize,
        #[arg(long, default_value_t = 50)]
        tasks: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Contended locks on etcd (its own fair lock, the v3lock service), on
    /// its leader: the `contended` report for the same clients and keys.
    EtcdContended {
        /// Client URLs of the members, comma-separated (http://host:port).
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        #[arg(long, default_value_t = 10)]
        keys: usize,
        #[arg(long, default_value_t = 50)]
        tasks: usize,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// kill -9 a group's leader (found by INFO replication among --nodes,
    /// whose pids are --pids in the same order) and time the first
    /// successful LOCK.ACQUIRE through the other nodes.
    Failover {
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        pids: Vec<i32>,
    },
    /// One MSET with this many arguments sent in chunks; report parse time.
    Mset {
        #[arg(long, default_value_t = 100_000)]
        args: usize,
        #[arg(long, default_value_t = 1024)]
        chunk: usize,
    },
}

/// A minimal RESP connection.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

/// A reply reduced to what the bench needs.
#[derive(Debug, PartialEq)]
enum R {
    Ok,
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Err(String),
    Other,
}

impl Conn {
    async fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            buf: BytesMut::with_capacity(4096),
        }
    }

    async fn read_reply(&mut self) -> R {
        loop {
            if let Ok(Some((frame, len))) = decode_range(&self.buf) {
                let text = |(s, e): (usize, usize)| self.buf[s..e].to_vec();
                let r = match frame {
                    RangeFrame::SimpleString(_) => R::Ok,
                    RangeFrame::Null => R::Nil,
                    RangeFrame::Integer(i) => R::Int(i),
                    RangeFrame::BulkString(r) => R::Bulk(text(r)),
                    RangeFrame::Error(r) => R::Err(String::from_utf8_lossy(&text(r)).into_owned()),
                    RangeFrame::Array(_) => R::Other,
                };
                let _ = self.buf.split_to(len);
                return r;
            }
            let n = self.stream.read_buf(&mut self.buf).await.expect("read");
            assert!(n > 0, "server closed the connection");
        }
    }

    async fn cmd(&mut self, args: &[&[u8]]) -> R {
        let mut out = Vec::with_capacity(64);
        encode(&mut out, args);
        self.stream.write_all(&out).await.expect("write");
        self.read_reply().await
    }

    /// Send commands pipelined in batches; the replies, in order.
    async fn pipeline(&mut self, cmds: impl Iterator<Item = Vec<Vec<u8>>>, batch: usize) -> Vec<R> {
        let mut replies = Vec::new();
        let mut pending = Vec::new();
        let mut n = 0;
        for cmd in cmds {
            let refs: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
            encode(&mut pending, &refs);
            n += 1;
            if n == batch {
                self.stream.write_all(&pending).await.expect("write");
                pending.clear();
                for _ in 0..n {
                    replies.push(self.read_reply().await);
                }
                n = 0;
            }
        }
        self.stream.write_all(&pending).await.expect("write");
        for _ in 0..n {
            replies.push(self.read_reply().await);
        }
        replies
    }
}

fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The server's CPU time (user + system) in µs, from /proc/PID/stat.
fn cpu_us(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks as f64 * 1e6 / per_sec)
}

fn rss_bytes(pid: Option<u32>) -> u64 {
    pid.map(|p| proc_status_kb(p, "VmRSS:") * 1024).unwrap_or(0)
}

async fn info_field(c: &mut Conn, section: &str, field: &str) -> i64 {
    let R::Bulk(text) = c.cmd(&[b"INFO", section.as_bytes()]).await else {
        return -1;
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn token(i: usize) -> Vec<u8> {
    // 22 characters, like redlock-py's tokens.
    format!("{:022}", i).into_bytes()
}

async fn locks(
    addr: &str,
    pid: Option<u32>,
    keys: usize,
    tasks: usize,
    seconds: f64,
    release: &str,
    script: Option<&std::path::Path>,
) -> serde_json::Value {
    let sha = match (release, script) {
        ("evalsha", Some(path)) => {
            let text = std::fs::read(path).expect("read release script");
            let mut c = Conn::connect(addr).await;
            match c.cmd(&[b"SCRIPT", b"LOAD", &text]).await {
                R::Bulk(sha) => sha,
                other => panic!("SCRIPT LOAD: {other:?}"),
            }
        }
        ("evalsha", None) => panic!("--release evalsha needs --script"),
        _ => Vec::new(),
    };
    let holders = Holders::new(keys);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (addr, sha, holders, release) = (addr.to_string(), sha.clone(), holders.clone(), release.to_string());
            tokio::spawn(async move {
                let mut c = Conn::connect(&addr).await;
                let mut latencies = Vec::new();
                let mut refused = 0u64;
                let mut i = t;
                while Instant::now() < deadline {
                    let k = (i * 7919) % keys;
                    i += tasks;
                    let key = format!("lock:{k}").into_bytes();
                    let tok = token(t * 1_000_000_000 + i);
                    let start = Instant::now();
                    loop {
                        match c.cmd(&[b"SET", &key, &tok, b"NX", b"PX", b"30000"]).await {
                            R::Ok => break,
                            R::Nil => {
                                refused += 1;
                                tokio::task::yield_now().await;
                            }
                            other => panic!("acquire: {other:?}"),
                        }
                    }
                    holders.enter(k);
                    tokio::task::yield_now().await;
                    holders.leave(k);
                    let r = if release == "native" {
                        c.cmd(&[b"DELEX", &key, b"IFEQ", &tok]).await
                    } else {
                        c.cmd(&[b"EVALSHA", &sha, b"1", &key, &tok]).await
                    };
                    assert_eq!(r, R::Int(1), "release");
                    latencies.push(start.elapsed().as_micros() as u64);
                }
                (latencies, refused)
            })
        })
        .collect();
    let started = Instant::now();
    let cpu_before = cpu_us(pid);
    let mut all = Vec::new();
    let mut refused = 0;
    for h in handles {
        let (l, r) = h.await.expect("task");
        all.extend(l);
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The server's CPU per lock cycle (acquire + release): the cost of a
    // release script, compared between the two servers.
    let cpu_per_cycle = match (cpu_before, cpu_us(pid)) {
        (Some(a), Some(b)) if !all.is_empty() => (b - a) / all.len() as f64,
        _ => 0.0,
    };
    all.sort_unstable();
    serde_json::json!({
        "cpu_us_per_cycle": cpu_per_cycle,
        "cycles_per_sec": all.len() as f64 / elapsed,
        "p50_us": percentile(&all, 0.50),
        "p99_us": percentile(&all, 0.99),
        "overlaps": holders.overlaps(),
        "refused_attempts": refused,
        "cycles": all.len(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn contended(
    addr: &str,
    keys: usize,
    tasks: usize,
    seconds: f64,
    method: &str,
    retry_ms: u64,
    script: Option<&std::path::Path>,
    think_ms: u64,
) -> serde_json::Value {
    let wait = match method {
        "wait" => true,
        "retry" => false,
        other => panic!("--method wait|retry, not {other}"),
    };
    let mut setup = Conn::connect(addr).await;
    let sha = match script {
        Some(path) if !wait => {
            let text = std::fs::read(path).expect("read release script");
            match setup.cmd(&[b"SCRIPT", b"LOAD", &text]).await {
                R::Bulk(sha) => sha,
                other => panic!("SCRIPT LOAD: {other:?}"),
            }
        }
        None if !wait => panic!("--method retry needs --script"),
        _ => Vec::new(),
    };
    for k in 0..keys {
        setup
            .cmd(&[
                b"DEL",
                format!("counter:{k}").as_bytes(),
                format!("contended:{k}").as_bytes(),
            ])
            .await;
    }
    let holders = Holders::new(keys);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (addr, sha, holders) = (addr.to_string(), sha.clone(), holders.clone());
            tokio::spawn(async move {
                let mut c = Conn::connect(&addr).await;
                let k = t % keys;
                let key = format!("contended:{k}").into_bytes();
                let counter = format!("counter:{k}").into_bytes();
                let tok = token(t);
                let mut waits = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    if wait {
                        match c
                            .cmd(&[b"LOCK.ACQUIRE", &key, &tok, b"PX", b"30000", b"WAIT", b"0"])
                            .await
                        {
                            R::Int(_) => {}
                            other => panic!("acquire: {other:?}"),
                        }
                    } else {
                        loop {
                            match c.cmd(&[b"SET", &key, &tok, b"NX", b"PX", b"30000"]).await {
                                R::Ok => break,
                                R::Nil => tokio::time::sleep(Duration::from_millis(retry_ms)).await,
                                other => panic!("acquire: {other:?}"),
                            }
                        }
                    }
                    waits.push(start.elapsed().as_micros() as u64);
                    holders.enter(k);
                    assert!(matches!(c.cmd(&[b"INCR", &counter]).await, R::Int(_)));
                    holders.leave(k);
                    let released = if wait {
                        c.cmd(&[b"LOCK.RELEASE", &key, &tok]).await
                    } else {
                        c.cmd(&[b"EVALSHA", &sha, b"1", &key, &tok]).await
                    };
                    assert_eq!(released, R::Int(1), "release");
                    if think_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(think_ms)).await;
                    }
                }
                waits
            })
        })
        .collect();
    let (per_task, elapsed) = join_contended(handles).await;
    let mut counted = 0;
    for k in 0..keys {
        if let R::Bulk(v) = setup.cmd(&[b"GET", format!("counter:{k}").as_bytes()]).await {
            counted += String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0);
        }
    }
    contended_stats(per_task, elapsed, holders.overlaps(), counted)
}

/// Which keys the bench's own tasks hold right now, to catch a lock that
/// lets two clients in: a task entering a key that another task holds is
/// an overlap.
struct Holders {
    held: Vec<AtomicBool>,
    overlaps: AtomicU64,
}

impl Holders {
    fn new(keys: usize) -> Arc<Holders> {
        Arc::new(Holders {
            held: (0..keys).map(|_| AtomicBool::new(false)).collect(),
            overlaps: AtomicU64::new(0),
        })
    }

    /// Just after the grant of key `k`.
    fn enter(&self, k: usize) {
        if self.held[k].swap(true, Ordering::SeqCst) {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Just before the release of key `k`.
    fn leave(&self, k: usize) {
        self.held[k].store(false, Ordering::SeqCst);
    }

    fn overlaps(&self) -> u64 {
        self.overlaps.load(Ordering::SeqCst)
    }
}

/// Wait for the contended-lock tasks (each: its waits for a grant in µs,
/// one per cycle); their waits and the seconds from now until the last ends.
async fn join_contended(handles: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> (Vec<Vec<u64>>, f64) {
    let started = Instant::now();
    let mut per_task = Vec::new();
    for h in handles {
        per_task.push(h.await.expect("task"));
    }
    (per_task, started.elapsed().as_secs_f64())
}

/// The contended modes' report, redlockd's and etcd's alike: throughput,
/// the wait for a grant (p50/p99), fairness (the most and fewest grants a
/// client got, and their ratio), and safety: overlaps seen by [`Holders`]
/// and increments missing from the counters (`counted`, their sum at the
/// end, against one increment per cycle).
fn contended_stats(per_task: Vec<Vec<u64>>, elapsed: f64, overlaps: u64, counted: u64) -> serde_json::Value {
    let grants: Vec<u64> = per_task.iter().map(|w| w.len() as u64).collect();
    let mut all: Vec<u64> = per_task.into_iter().flatten().collect();
    all.sort_unstable();
    let (most, fewest) = (
        grants.iter().max().copied().unwrap_or(0),
        grants.iter().min().copied().unwrap_or(0),
    );
    serde_json::json!({
        "cycles_per_sec": all.len() as f64 / elapsed,
        "wait_p50_us": percentile(&all, 0.50),
        "wait_p99_us": percentile(&all, 0.99),
        "grants_max": most,
        "grants_min": fewest,
        // JSON has no infinity: a client that never got the lock is null.
        "fairness_max_min": if fewest == 0 { None } else { Some(most as f64 / fewest as f64) },
        "overlaps": overlaps,
        "lost_increments": all.len() as u64 - counted.min(all.len() as u64),
        "cycles": all.len(),
    })
}

/// Wait for the cycle tasks (each: its cycle latencies in µs and its
/// refused attempts) and give their [`cycle_stats`], timed from now.
async fn join_cycles(handles: Vec<tokio::task::JoinHandle<(Vec<u64>, u64)>>) -> serde_json::Value {
    let started = Instant::now();
    let (mut per_task, mut refused) = (Vec::new(), 0);
    for h in handles {
        let (l, r) = h.await.expect("task");
        per_task.push(l);
        refused += r;
    }
    cycle_stats(per_task, started.elapsed().as_secs_f64(), refused)
}

/// Cycles per second and latency percentiles of per-task latency lists.
fn cycle_stats(per_task: Vec<Vec<u64>>, elapsed: f64, refused: u64) -> serde_json::Value {
    let mut all: Vec<u64> = per_task.into_iter().flatten().collect();
    all.sort_unstable();
    serde_json::json!({
        "cycles_per_sec": all.len() as f64 / elapsed,
        "p50_us": percentile(&all, 0.50),
        "p99_us": percentile(&all, 0.99),
        "refused_attempts": refused,
        "cycles": all.len(),
    })
}

async fn native(addr: &str, keys: usize, tasks: usize, seconds: f64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let addr = addr.to_string();
            tokio::spawn(async move {
                let mut c = Conn::connect(&addr).await;
                let (mut latencies, mut refused, mut i) = (Vec::new(), 0u64, t);
                while Instant::now() < deadline {
                    let key = format!("lock:{}", (i * 7919) % keys).into_bytes();
                    let tok = token(t * 1_000_000_000 + i);
                    i += tasks;
                    let start = Instant::now();
                    loop {
                        match c.cmd(&[b"LOCK.ACQUIRE", &key, &tok, b"PX", b"30000"]).await {
                            R::Int(_) => break,
                            R::Nil => {
                                refused += 1;
                                tokio::task::yield_now().await;
                            }
                            other => panic!("LOCK.ACQUIRE: {other:?}"),
                        }
                    }
                    assert_eq!(c.cmd(&[b"LOCK.RELEASE", &key, &tok]).await, R::Int(1), "release");
                    latencies.push(start.elapsed().as_micros() as u64);
                }
                (latencies, refused)
            })
        })
        .collect();
    join_cycles(handles).await
}

/// Kill the leader, then LOCK.ACQUIRE through the others until one grants.
async fn failover(nodes: &[String], pids: &[i32]) -> serde_json::Value {
    assert_eq!(nodes.len(), pids.len(), "one pid per node");
    let mut leader = None;
    for (i, addr) in nodes.iter().enumerate() {
        let mut c = Conn::connect(addr).await;
        if let R::Bulk(text) = c.cmd(&[b"INFO", b"replication"]).await
            && String::from_utf8_lossy(&text)
                .lines()
                .any(|l| l.trim() == "role:master")
        {
            leader = Some(i);
        }
    }
    let leader = leader.expect("a leader among the nodes");
    // SAFETY: a signal to a process the bench script started.
    unsafe { libc::kill(pids[leader], libc::SIGKILL) };
    let killed = Instant::now();
    let mut attempts = 0u64;
    'outer: loop {
        for (i, addr) in nodes.iter().enumerate() {
            if i == leader {
                continue;
            }
            attempts += 1;
            let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await
            else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let mut c = Conn {
                stream,
                buf: BytesMut::new(),
            };
            let tok = token(attempts as usize);
            let args: [&[u8]; 5] = [b"LOCK.ACQUIRE", b"failover", &tok, b"PX", b"1000"];
            if let Ok(R::Int(_)) = tokio::time::timeout(Duration::from_secs(5), c.cmd(&args)).await {
                break 'outer;
            }
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no grant 30 s after the kill"
        );
    }
    serde_json::json!({
        "failover_ms": killed.elapsed().as_secs_f64() * 1000.0,
        "killed_node": leader,
        "attempts": attempts,
    })
}

fn load_cmds(keys: usize, px: u64, prefix: &'static str) -> impl Iterator<Item = Vec<Vec<u8>>> {
    (0..keys).map(move |i| {
        vec![
            b"SET".to_vec(),
            format!("{prefix}{i}").into_bytes(),
            token(i),
            b"PX".to_vec(),
            px.to_string().into_bytes(),
        ]
    })
}

async fn load(addr: &str, pid: Option<u32>, keys: usize, px: u64) -> serde_json::Value {
    let mut c = Conn::connect(addr).await;
    c.cmd(&[b"FLUSHALL"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss0, used0) = (rss_bytes(pid), info_field(&mut c, "memory", "used_memory").await);
    let replies = c.pipeline(load_cmds(keys, px, "lock:"), 1000).await;
    assert!(replies.iter().all(|r| *r == R::Ok));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss1, used1) = (rss_bytes(pid), info_field(&mut c, "memory", "used_memory").await);
    c.cmd(&[b"FLUSHALL"]).await;
    serde_json::json!({
        "keys": keys,
        "rss_per_key": (rss1 as f64 - rss0 as f64) / keys as f64,
        "used_memory_per_key": (used1 - used0) as f64 / keys as f64,
    })
}

async fn expire(addr: &str, pid: Option<u32>, keys: usize, px: u64) -> serde_json::Value {
    let mut c = Conn::connect(addr).await;
    c.cmd(&[b"FLUSHALL"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = rss_bytes(pid);
    let expired0 = info_field(&mut c, "stats", "expired_keys").await;
    let replies = c.pipeline(load_cmds(keys, px, "exp:"), 1000).await;
    assert!(replies.iter().all(|r| *r == R::Ok));
    let last_deadline = Instant::now() + Duration::from_millis(px);
    let rss_full = rss_bytes(pid);
    // Poll only INFO stats: it must not itself reclaim keys.
    let reclaimed_at = loop {
        let expired = info_field(&mut c, "stats", "expired_keys").await - expired0;
        if expired >= keys as i64 {
            break Instant::now();
        }
        if Instant::now() > last_deadline + Duration::from_secs(60) {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let reclaim_ms = reclaimed_at.saturating_duration_since(last_deadline).as_secs_f64() * 1000.0;
    let rss_target = rss0 + (rss_full - rss0) / 4;
    let rss_back_at = loop {
        if rss_bytes(pid) <= rss_target || Instant::now() > reclaimed_at + Duration::from_secs(30) {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    serde_json::json!({
        "keys": keys,
        "reclaimed_ms_after_last_deadline": reclaim_ms,
        "rss_back_ms_after_last_deadline": rss_back_at.saturating_duration_since(last_deadline).as_secs_f64() * 1000.0,
        "rss_before": rss0, "rss_loaded": rss_full, "rss_after": rss_bytes(pid),
    })
}

async fn idle(addr: &str, pid: Option<u32>, conns: usize, pings: usize) -> serde_json::Value {
    let mut probe = Conn::connect(addr).await;
    probe.cmd(&[b"PING"]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rss0 = rss_bytes(pid);
    let mut held = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut c = Conn::connect(addr).await;
        assert_eq!(c.cmd(&[b"PING"]).await, R::Ok);
        held.push(c);
    }
    // Let the server settle (redlockd gives idle buffers back once replies are written).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rss1 = rss_bytes(pid);
    let mut lat = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        probe.cmd(&[b"PING"]).await;
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat.sort_unstable();
    drop(held);
    serde_json::json!({
        "conns": conns,
        "rss_per_conn": (rss1 as f64 - rss0 as f64) / conns as f64,
        "ping_p50_us": percentile(&lat, 0.5),
        "ping_p99_us": percentile(&lat, 0.99),
    })
}

async fn mset(addr: &str, args: usize, chunk: usize) -> serde_json::Value {
    let pairs = args / 2;
    let mut req = Vec::new();
    let mut owned: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for i in 0..pairs {
        owned.push(format!("mset:{i}").into_bytes());
        owned.push(format!("v{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = owned.iter().map(|a| a.as_slice()).collect();
    encode(&mut req, &refs);
    let mut c = Conn::connect(addr).await;
    assert_eq!(c.cmd(&[b"PING"]).await, R::Ok);
    // Five sends; the median, so that one scheduling hiccup does not count.
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for piece in req.chunks(chunk) {
            c.stream.write_all(piece).await.expect("write");
        }
        let r = c.read_reply().await;
        times.push(start.elapsed());
        assert_eq!(r, R::Ok);
    }
    times.sort();
    let median = times[2];
    c.cmd(&[b"FLUSHALL"]).await;
    serde_json::json!({
        "args": pairs * 2 + 1,
        "chunk": chunk,
        "ms": median.as_secs_f64() * 1000.0,
        "ns_per_arg": median.as_nanos() as f64 / (pairs * 2 + 1) as f64,
    })
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let out = match cli.mode {
        Mode::Locks {
            keys,
            tasks,
            seconds,
            release,
            script,
        } => locks(&cli.addr, cli.pid, keys, tasks, seconds, &release, script.as_deref()).await,
        Mode::Contended {
            keys,
            tasks,
            seconds,
            method,
            retry_ms,
            script,
            think_ms,
        } => {
            let script = script.as_deref();
            contended(&cli.addr, keys, tasks, seconds, &method, retry_ms, script, think_ms).await
        }
        Mode::Load { keys, px } => load(&cli.addr, cli.pid, keys, px).await,
        Mode::Expire { keys, px } => expire(&cli.addr, cli.pid, keys, px).await,
        Mode::Idle { conns, pings } => idle(&cli.addr, cli.pid, conns, pings).await,
        Mode::Mset { args, chunk } => mset(&cli.addr, args, chunk).await,
        Mode::Native { keys, tasks, seconds } => native(&cli.addr, keys, tasks, seconds).await,
        Mode::Etcd {
            endpoints,
            keys,
            tasks,
            seconds,
        } => etcd::locks(&endpoints, keys, tasks, seconds).await,
        Mode::EtcdContended {
            endpoints,
            keys,
            tasks,
            seconds,
        } => etcd::contended(&endpoints, keys, tasks, seconds).await,
        Mode::Failover { nodes, pids } => failover(&nodes, &pids).await,
    };
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{out}");
}

/// etcd's side of the comparison, over the JSON gateway that etcd 3.4
/// serves on its client port (its gRPC API transcoded to HTTP/1.1 with
/// keep-alive), so the bench needs no protobuf compiler. Bytes fields are
/// base64 in that API.
mod etcd {
    use std::time::{Duration, Instant};

    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::client::conn::http1::SendRequest;
    use hyper_util::rt::TokioIo;
    use serde_json::{Value, json};
    use tokio::net::TcpStream;

    use super::{Holders, contended_stats, join_contended, join_cycles, token};

    struct Client {
        authority: String,
        sender: SendRequest<Full<Bytes>>,
    }

    impl Client {
        async fn connect(url: &str) -> Client {
            let authority = url.trim_start_matches("http://").trim_end_matches('/').to_string();
            let stream = TcpStream::connect(&authority).await.expect("connect to etcd");
            stream.set_nodelay(true).expect("nodelay");
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("http handshake");
            tokio::spawn(conn);
            Client { authority, sender }
        }

        async fn post(&mut self, path: &str, body: Value) -> Value {
            let req = hyper::Request::post(path)
                .header("host", &self.authority)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request");
            self.sender.ready().await.expect("connection ready");
            let resp = self.sender.send_request(req).await.expect("etcd request");
            let status = resp.status();
            let bytes = resp.into_body().collect().await.expect("etcd body").to_bytes();
            assert!(
                status.is_success(),
                "etcd {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
            serde_json::from_slice(&bytes).expect("etcd JSON")
        }
    }

    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    fn b64(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// The bytes of a base64 field of etcd's replies.
    fn unb64(text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let (mut n, mut bits) = (0u32, 0);
        for c in text.bytes().take_while(|&c| c != b'=') {
            let v = ABC
                .iter()
                .position(|&a| a == c)
                .unwrap_or_else(|| panic!("not base64: {text}"));
            n = (n << 6 | v as u32) & 0xffff;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((n >> bits) as u8);
            }
        }
        out
    }

    /// The decimal numbers stored under keys from `prefix` up to
    /// `range_end` (a linearizable read), summed.
    async fn sum_counters(c: &mut Client, prefix: &[u8], range_end: &[u8]) -> u64 {
        let got = c
            .post("/v3/kv/range", json!({"key": b64(prefix), "range_end": b64(range_end)}))
            .await;
        got["kvs"]
            .as_array()
            .map_or(0, |kvs| kvs.iter().map(counter_value).sum())
    }

    /// The number in a key-value of a range reply (0 if it has no value).
    fn counter_value(kv: &Value) -> u64 {
        let text = unb64(kv["value"].as_str().unwrap_or(""));
        String::from_utf8_lossy(&text).parse().unwrap_or(0)
    }

    /// The member that leads (its status names itself as leader).
    async fn leader(endpoints: &[String]) -> String {
        for e in endpoints {
            let status = Client::connect(e).await.post("/v3/maintenance/status", json!({})).await;
            if status["leader"] == status["header"]["member_id"] {
                return e.clone();
            }
        }
        panic!("no etcd leader among {endpoints:?}");
    }

    /// Each task grants itself one lease (as etcd's concurrency.Mutex keeps
    /// one session lease), then cycles: put-if-absent with the lease → delete.
    pub async fn locks(endpoints: &[String], keys: usize, tasks: usize, seconds: f64) -> Value {
        let leader = leader(endpoints).await;
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let leader = leader.clone();
                tokio::spawn(async move {
                    let mut c = Client::connect(&leader).await;
                    let lease = c.post("/v3/lease/grant", json!({"TTL": 60})).await["ID"].clone();
                    let (mut latencies, mut refused, mut i) = (Vec::new(), 0u64, t);
                    while Instant::now() < deadline {
                        let key = b64(format!("lock:{}", (i * 7919) % keys).as_bytes());
                        let value = b64(&token(t * 1_000_000_000 + i));
                        i += tasks;
                        let start = Instant::now();
                        let txn = json!({
                            "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                            "success": [{"request_put": {"key": key, "value": value, "lease": lease}}],
                        });
                        while c.post("/v3/kv/txn", txn.clone()).await["succeeded"] != json!(true) {
                            refused += 1;
                            tokio::task::yield_now().await;
                        }
                        let deleted = c.post("/v3/kv/deleterange", json!({"key": key})).await;
                        assert_eq!(deleted["deleted"], json!("1"), "delete");
                        latencies.push(start.elapsed().as_micros() as u64);
                    }
                    (latencies, refused)
                })
            })
            .collect();
        let mut stats = join_cycles(handles).await;
        stats["leader"] = json!(leader);
        stats
    }

    /// The `contended` mode on etcd's own lock, the v3lock service (the
    /// server runs concurrency.Mutex: a key `name/lease` per waiter, granted
    /// in revision order, so first come first served). Each task is one
    /// client bound to `contended:{task % keys}`; it grants itself one lease
    /// (TTL 30 s, the redlockd locks' PX) and cycles: `/v3/lock/lock` with
    /// the lease (blocks until granted; the wait is the time to acquire) →
    /// an increment of `counter:K` under the lock → `/v3/lock/unlock`. The
    /// increment is two requests to the leader: a serializable `/v3/kv/range`
    /// of the counter (no quorum round; not stale, since the member applied
    /// the previous holder's put before that holder's unlock, and the unlock
    /// before this grant) and a `/v3/kv/put` of its value + 1 — where
    /// redlockd's cycle has one INCR. So a lock that let two clients in
    /// shows as lost increments, as on redlockd.
    pub async fn contended(endpoints: &[String], keys: usize, tasks: usize, seconds: f64) -> Value {
        let leader = leader(endpoints).await;
        let mut setup = Client::connect(&leader).await;
        // Counters and any lock keys of an earlier run (';' follows ':').
        let ranges: [(&[u8], &[u8]); 2] = [(b"counter:", b"counter;"), (b"contended:", b"contended;")];
        for (from, to) in ranges {
            setup
                .post("/v3/kv/deleterange", json!({"key": b64(from), "range_end": b64(to)}))
                .await;
        }
        let holders = Holders::new(keys);
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let (leader, holders) = (leader.clone(), holders.clone());
                tokio::spawn(async move {
                    let mut c = Client::connect(&leader).await;
                    let lease = c.post("/v3/lease/grant", json!({"TTL": 30})).await["ID"].clone();
                    let k = t % keys;
                    let name = b64(format!("contended:{k}").as_bytes());
                    let counter = b64(format!("counter:{k}").as_bytes());
                    let mut waits = Vec::new();
                    while Instant::now() < deadline {
                        let start = Instant::now();
                        let granted = c.post("/v3/lock/lock", json!({"name": name, "lease": lease})).await;
                        waits.push(start.elapsed().as_micros() as u64);
                        let key = granted["key"].clone();
                        assert!(key.is_string(), "lock: {granted}");
                        holders.enter(k);
                        let got = c
                            .post("/v3/kv/range", json!({"key": counter, "serializable": true}))
                            .await;
                        let n = got["kvs"].get(0).map_or(0, counter_value);
                        let value = b64((n + 1).to_string().as_bytes());
                        c.post("/v3/kv/put", json!({"key": counter, "value": value})).await;
                        holders.leave(k);
                        c.post("/v3/lock/unlock", json!({"key": key})).await;
                    }
                    waits
                })
            })
            .collect();
        let (per_task, elapsed) = join_contended(handles).await;
        let counted = sum_counters(&mut setup, b"counter:", b"counter;").await;
        let mut stats = contended_stats(per_task, elapsed, holders.overlaps(), counted);
        stats["leader"] = json!(leader);
        stats
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn base64_as_rfc4648() {
            assert_eq!(super::b64(b""), "");
            assert_eq!(super::b64(b"f"), "Zg==");
            assert_eq!(super::b64(b"fo"), "Zm8=");
            assert_eq!(super::b64(b"foo"), "Zm9v");
            assert_eq!(super::b64(b"foobar"), "Zm9vYmFy");
        }

        #[test]
        fn base64_decodes_what_it_encodes() {
            for text in [
                &b""[..],
                b"f",
                b"fo",
                b"foo",
                b"foob",
                b"12345",
                b"\x00\xff\x80counter:9",
            ] {
                assert_eq!(super::unb64(&super::b64(text)), text);
            }
            assert_eq!(super::unb64("NDI="), b"42");
        }

        #[test]
        fn counter_values_of_range_replies() {
            assert_eq!(
                super::counter_value(&serde_json::json!({"key": "eA==", "value": "MTc="})),
                17
            );
            // etcd leaves empty fields out of its JSON.
            assert_eq!(super::counter_value(&serde_json::json!({"key": "eA=="})), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Holders, contended_stats};
    use serde_json::json;

    #[test]
    fn holders_count_a_second_holder_only() {
        let h = Holders::new(2);
        h.enter(0);
        h.leave(0);
        h.enter(0);
        h.enter(1);
        assert_eq!(h.overlaps(), 0);
        h.enter(0);
        assert_eq!(h.overlaps(), 1);
    }

    #[test]
    fn contended_stats_of_known_waits() {
        let s = contended_stats(vec![vec![1, 2, 3, 4], vec![5, 6]], 2.0, 1, 5);
        assert_eq!(s["cycles_per_sec"], json!(3.0));
        assert_eq!(s["wait_p50_us"], json!(4));
        assert_eq!(s["wait_p99_us"], json!(6));
        assert_eq!((s["grants_max"].clone(), s["grants_min"].clone()), (json!(4), json!(2)));
        assert_eq!(s["fairness_max_min"], json!(2.0));
        assert_eq!(s["overlaps"], json!(1));
        assert_eq!(s["lost_increments"], json!(1));
        assert_eq!(s["cycles"], json!(6));
    }

    #[test]
    fn contended_stats_of_a_starved_client_and_extra_increments() {
        let s = contended_stats(vec![vec![7, 8], vec![]], 1.0, 0, 9);
        assert_eq!(s["fairness_max_min"], json!(null));
        assert_eq!(s["grants_min"], json!(0));
        assert_eq!(s["lost_increments"], json!(0));
    }
}
