//! Redlock across independent redlockd processes: the counter example with
//! crashes, quorum loss and recovery; fencing under adversarial
//! interleavings; `redlockd run`; and the client against real Redis.

mod common;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{RedisServer, Server, eventually};
use redlockd::redlock::{Redlock, RedlockConfig, RedlockError};

fn cluster(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::start()).collect()
}

fn addrs(servers: &[Server]) -> String {
    servers.iter().map(|s| s.addr()).collect::<Vec<_>>().join(",")
}

/// Parse `counter final=X expected=Y lost=Z rejected_stale=R ...` into pairs.
fn counter_fields(line: &str) -> std::collections::HashMap<String, i64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
        .collect()
}

fn counter_cmd(instances: &str, store: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redlockd"));
    cmd.args([
        "counter",
        "--instances",
        instances,
        "--store",
        store,
        "--instance-timeout",
        "200ms",
    ])
    .args(extra);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd
}

fn finish(child: std::process::Child) -> (std::collections::HashMap<String, i64>, String) {
    let out = child.wait_with_output().expect("counter ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "counter failed: {stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default().to_string();
    assert!(line.starts_with("counter final="), "{stdout}");
    (counter_fields(&line), stderr)
}

/// `redlockd run --lock job` over `instances`, with extra options, around `command`.
fn run_cmd(instances: &str, options: &[&str], command: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redlockd"));
    cmd.args([
        "run",
        "--instance-timeout",
        "200ms",
        "--instances",
        instances,
        "--lock",
        "job",
    ])
    .args(options)
    .arg("--")
    .args(command);
    cmd
}

#[test]
fn counter_over_five_instances_loses_no_update() {
    let servers = cluster(5);
    let store = Server::start();
    let child = counter_cmd(
        &addrs(&servers),
        &store.addr(),
        &["--workers", "8", "--increments", "50"],
    )
    .spawn()
    .unwrap();
    let (f, _) = finish(child);
    assert_eq!((f["final"], f["expected"], f["lost"]), (400, 400, 0));
}

#[test]
fn counter_survives_two_crashed_instances() {
    let mut servers = cluster(5);
    let store = Server::start();
    let child = counter_cmd(
        &addrs(&servers),
        &store.addr(),
        &["--workers", "6", "--increments", "150"],
    )
    .spawn()
    .unwrap();
    // Crash two instances once the run is under way.
    let mut s = store.raw();
    assert!(eventually(Duration::from_secs(30), || s
        .cmd_str(&["GET", "counter"])
        .len()
        > 6));
    servers[1].kill9();
    servers[3].kill9();
    let (f, _) = finish(child);
    assert_eq!((f["final"], f["lost"]), (900, 0));
}

#[test]
fn quorum_loss_stops_grants_until_instances_return() {
    let mut servers = cluster(5);
    let store = Server::start();
    let instances = addrs(&servers);
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let child = counter_cmd(
        &instances,
        &store.addr(),
        &["--workers", "4", "--increments", "100", "--ttl", "500ms"],
    )
    .spawn()
    .unwrap();
    let mut s = store.raw();
    assert!(eventually(Duration::from_secs(30), || s
        .cmd_str(&["GET", "counter"])
        .len()
        > 6));
    for i in [0, 2, 4] {
        servers[i].kill9();
    }
    // With 2 of 5 alive nobody can hold the lock: once a holder that
    // acquired before the crash has finished (within its TTL), the counter
    // stands still.
    std::thread::sleep(Duration::from_millis(600));
    let frozen = s.cmd_str(&["GET", "counter"]);
    let direct = Redlock::new(
        servers.iter().map(|s| s.addr()),
        RedlockConfig {
            retry_count: 0,
            ..Default::default()
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let refused = rt.block_on(direct.try_acquire(b"counter-lock", Duration::from_secs(1)));
    match refused {
        Err(RedlockError::NoQuorum {
            granted,
            needed: 3,
            outcomes,
            ..
        }) => {
            assert!(granted <= 2, "{granted}");
            assert_eq!(outcomes.len(), 5);
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(600)); // longer than the lock TTL
    assert_eq!(s.cmd_str(&["GET", "counter"]), frozen, "no grant without a quorum");
    // Restarted instances wait out a TTL before they grant, as an empty
    // instance must not grant a lock a holder may still believe it has.
    // Restart the crashed instances where they were, after more than a TTL
    // (Redlock's delayed restart), and the run completes exactly.
    for i in [0, 2, 4] {
        servers[i] = Server::start_on_port(ports[i]);
    }
    let (f, _) = finish(child);
    assert_eq!((f["final"], f["lost"]), (400, 0));
    assert!(f["acquire_failures"] > 0);
}

#[test]
fn a_paused_holder_is_fenced_off() {
    let servers = cluster(5);
    let store = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redlock = Redlock::new(servers.iter().map(|s| s.addr()), RedlockConfig::default());
    let mut st = store.raw();
    rt.block_on(async {
        let a = redlock
            .acquire(b"res", Duration::from_millis(100))
            .await
            .expect("A acquires");
        let fa = a.fence.expect("fenced").to_string();
        assert_eq!(st.cmd_str(&["FENCE.SET", "data", "from-a-1", &fa]), "+OK\r\n");
        // A "pauses": B keeps trying until A's lock has expired everywhere.
        let b = redlock
            .acquire_until(
                b"res",
                Duration::from_secs(10),
                Instant::now() + Duration::from_secs(10),
            )
            .await
            .expect("B acquires");
        let fb = b.fence.expect("fenced");
        assert!(fb > a.fence.unwrap());
        assert_eq!(st.cmd_str(&["FENCE.SET", "data", "from-b", &fb.to_string()]), "+OK\r\n");
        // A wakes up and writes with its stale fence: rejected.
        let stale = st.cmd_str(&["FENCE.SET", "data", "from-a-2", &fa]);
        assert!(stale.starts_with("-FENCED stale token"), "{stale}");
        assert_eq!(st.cmd_str(&["GET", "data"]), "$6\r\nfrom-b\r\n");
        redlock.release(&b).await;
    });
    let (f, _) = finish(
        counter_cmd(
            &addrs(&servers),
            &store.addr(),
            &[
                "--workers",
                "3",
                "--increments",
                "20",
                "--ttl",
                "80ms",
                "--pause-ms",
                "250",
                "--fenced",
            ],
        )
        .spawn()
        .unwrap(),
    );
    // Whether a stale write happens depends on scheduling (the deterministic
    // case is above); whatever happens, fencing loses no update.
    assert_eq!((f["final"], f["lost"]), (60, 0), "{f:?}");
}

/// Fences from acquisitions whose majorities differ, with instance counters
/// skewed by large jumps, must still strictly increase.
#[test]
fn quorum_fences_increase_under_adversarial_interleavings() {
    let servers = cluster(5);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redlock = Redlock::new(
        servers.iter().map(|s| s.addr()),
        RedlockConfig {
            retry_count: 0,
            ..Default::default()
        },
    );
    let mut conns: Vec<_> = servers.iter().map(|s| s.raw()).collect();
    let mut last = 0u64;
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..60 {
        // Block up to two instances (a foreign holder), so majorities differ.
        let blocked: Vec<usize> = (0..(next() % 3) as usize).map(|_| (next() % 5) as usize).collect();
        for &i in &blocked {
            conns[i].cmd(&["SET", "r", "someone-else", "PX", "60000"]);
        }
        // Skew one instance's counter far ahead now and then.
        if next() % 4 == 0 {
            let i = (next() % 5) as usize;
            let jump = (last + 1 + next() % 1_000_000_000).to_string();
            conns[i].cmd(&["FENCE.RAISE", &jump]);
        }
        let lock = rt
            .block_on(redlock.try_acquire(b"r", Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let fence = lock.fence.expect("fenced");
        assert!(fence > last, "round {round}: fence {fence} after {last}");
        last = fence;
        // Sometimes release, sometimes let it expire by deleting (a crash-like loss).
        if next() % 2 == 0 {
            rt.block_on(redlock.release(&lock));
        }
        for c in conns.iter_mut() {
            c.cmd(&["DEL", "r"]);
        }
    }
}

#[test]
fn run_wraps_a_command_under_the_lock() {
    let servers = cluster(3);
    let instances = addrs(&servers);
    let out = run_cmd(
        &instances,
        &["--ttl", "3s"],
        &["sh", "-c", "echo fence=$REDLOCKD_FENCE; exit 7"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let fence: u64 = stdout
        .trim()
        .strip_prefix("fence=")
        .and_then(|f| f.parse().ok())
        .expect("fence in env");
    assert!(fence > 0);
    // Released afterwards.
    let mut c = servers[0].raw();
    assert_eq!(c.cmd(&["EXISTS", "job"]), b":0\r\n");
    // While someone else holds it, run gives up after --wait with 75.
    for s in &servers {
        s.raw().cmd(&["SET", "job", "other", "PX", "60000"]);
    }
    let out = run_cmd(&instances, &["--wait", "300ms"], &["true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no quorum"), "{out:?}");
}

#[test]
fn run_kills_the_command_when_the_lock_is_lost() {
    let servers = cluster(3);
    let instances = addrs(&servers);
    let mut child = run_cmd(&instances, &["--ttl", "600ms"], &["sleep", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut conns: Vec<_> = servers.iter().map(|s| s.raw()).collect();
    assert!(eventually(Duration::from_secs(10), || conns[0].cmd(&["EXISTS", "job"])
        == b":1\r\n"));
    // Someone steals the lock everywhere: the next extension fails.
    for c in conns.iter_mut() {
        c.cmd(&["SET", "job", "thief", "PX", "60000"]);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "run did not notice the lost lock");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(70));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("lost lock 'job'"), "{stderr}");
}

#[test]
fn the_client_works_against_real_redis() {
    let redis: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let redlock = Redlock::new(
        redis.iter().map(|r| format!("127.0.0.1:{}", r.port)),
        RedlockConfig::default(),
    );
    rt.block_on(async {
        let mut lock = redlock
            .acquire(b"res", Duration::from_secs(5))
            .await
            .expect("acquire on Redis");
        assert_eq!(lock.fence, None, "Redis cannot fence");
        assert!(redlock.try_acquire(b"res", Duration::from_secs(5)).await.is_err());
        redlock
            .extend(&mut lock, Duration::from_secs(20))
            .await
            .expect("extend on Redis");
        let mut c = redis[0].raw();
        let pttl: i64 = c
            .cmd_str(&["PTTL", "res"])
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap();
        assert!(pttl > 5_000, "{pttl}");
        assert_eq!(redlock.release(&lock).await, 3);
        assert_eq!(c.cmd(&["EXISTS", "res"]), b":0\r\n");
    });
}
