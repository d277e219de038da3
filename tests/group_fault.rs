//! Fault injection against a replicated group, in the spirit of Jepsen.
//!
//! Three nodes whose raft links all go through per-link proxies (node i
//! reaches node j through proxy(i→j)), clients on every node doing lock
//! acquire → fenced write → release and acknowledged INCRs, and a nemesis
//! that kills -9 and restarts nodes, pauses the leader (SIGSTOP/SIGCONT) and
//! cuts every link of one node. Each operation is recorded (invoke and
//! completion time, ok / fail / unknown); afterwards the history is checked:
//!
//! - the counter is at least the acknowledged increments and at most those
//!   plus the ones whose outcome is unknown (no acknowledged write lost);
//! - holds on a lock, measured by their holders (from the grant's
//!   acknowledgement to the release's invocation, or to invocation + TTL),
//!   never overlap: no two clients held the same lock at once;
//! - fences strictly increase in real-time grant order, and so do the fences
//!   of accepted fenced writes; each data key ends with the value of the
//!   highest-fenced write that may have been applied;
//! - every node converges: the same applied index, the same key count in
//!   its own keyspace (INFO keyspace is served locally), and the same values
//!   read through each node while it is the leader.
//!
//! `GROUP_FAULT_SECS` sets the nemesis' run time (default 60); the summary
//! line goes to stderr.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::group::{Group, Plan};
use common::proxy::{Cut, Proxy};
use redlockd::redlock::{CallError, Instance, Reply};

/// The time allowed to one client call: the leader wait (2 s) plus a forward.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const LOCK_TTL: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------- launcher

/// SIGSTOP a process, and SIGCONT it when dropped, even on a panic.
struct Paused(u32);

impl Paused {
    fn pause(pid: u32) -> Paused {
        // SAFETY: a signal to a child process this test started.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// A group whose every raft link i→j goes through its own proxy.
struct Cluster {
    group: Group,
    /// links[i][j]: node i's link to node j (None on the diagonal).
    links: Vec<Vec<Option<Proxy>>>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        let plan = Plan::new(n);
        let links: Vec<Vec<Option<Proxy>>> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| (i != j).then(|| Proxy::start(([127, 0, 0, 1], plan.raft_ports[j]).into())))
                    .collect()
            })
            .collect();
        let peers: Vec<String> = (0..n)
            .map(|i| {
                (0..n)
                    .map(|j| match &links[i][j] {
                        Some(p) => format!("{}@{}", plan.ids[j], p.addr()),
                        None => format!("{}@127.0.0.1:{}", plan.ids[j], plan.raft_ports[j]),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        Cluster {
            group: Group::launch(&plan, &peers, &[]),
            links,
        }
    }

    /// Cut (or heal) every link from and to node index `k`.
    fn isolate(&self, k: usize, cut: Option<Cut>) {
        for i in 0..self.links.len() {
            for j in 0..self.links.len() {
                if (i == k || j == k)
                    && let Some(p) = &self.links[i][j]
                {
                    match cut {
                        Some(how) => p.cut_with(how),
                        None => p.heal(),
                    }
                }
            }
        }
    }
}

fn addrs(group: &Group) -> Vec<String> {
    group.nodes.iter().map(|n| n.addr()).collect()
}

// ---------------------------------------------------------------- calls

/// A blocking call with its own small runtime (for the nemesis and checks).
fn call_sync(addr: &str, args: &[&str], timeout: Duration) -> Result<Reply, CallError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let inst = Instance::new(addr);
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    rt.block_on(inst.call(&args, timeout))
}

/// `key:value` lines of a bulk reply (RAFT.INFO, INFO sections).
fn fields(reply: &Reply) -> HashMap<String, String> {
    let Reply::Bulk(Some(b)) = reply else {
        return HashMap::new();
    };
    String::from_utf8_lossy(b)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn raft_info(addr: &str) -> Option<HashMap<String, String>> {
    call_sync(addr, &["RAFT.INFO"], Duration::from_millis(500))
        .ok()
        .map(|r| fields(&r))
        .filter(|f| !f.is_empty())
}

/// The node (index) that says it is the leader, among the running ones
/// (with short timeouts: a paused node must not stall the nemesis).
fn find_leader(group: &Group) -> Option<usize> {
    group.nodes.iter().position(|n| {
        n.is_up()
            && raft_info(&n.addr())
                .and_then(|f| f.get("state").cloned())
                .is_some_and(|s| s == "Leader")
    })
}

/// Wait (bounded) until one node leads and every node has applied the same
/// index and holds the same state digest (RAFT.INFO), twice in a row; the
/// leader, or what the nodes reported last.
fn wait_converged(group: &Group, within: Duration) -> Result<usize, String> {
    let deadline = Instant::now() + within;
    let mut last: Option<Vec<(String, String)>> = None;
    let mut seen = String::new();
    while Instant::now() < deadline {
        let states: Vec<Option<(String, String)>> = group
            .nodes
            .iter()
            .map(|n| {
                let f = raft_info(&n.addr())?;
                Some((f.get("applied")?.clone(), f.get("digest")?.clone()))
            })
            .collect();
        seen = format!("{states:?}");
        let states: Option<Vec<(String, String)>> = states.into_iter().collect();
        match (states, find_leader(group)) {
            (Some(s), Some(leader)) if s.windows(2).all(|w| w[0] == w[1]) => {
                if last.as_ref() == Some(&s) {
                    return Ok(leader);
                }
                last = Some(s);
            }
            _ => last = None,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(seen)
}

/// Retry a command across nodes until the group answers it (bounded).
fn group_call(group: &Group, args: &[&str], within: Duration) -> Reply {
    let deadline = Instant::now() + within;
    let mut last = None;
    while Instant::now() < deadline {
        for n in group.nodes.iter().filter(|n| n.is_up()) {
            match call_sync(&n.addr(), args, CALL_TIMEOUT) {
                Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN") => {
                    last = Some(Reply::Error(e))
                }
                Ok(r) => return r,
                Err(e) => last = Some(Reply::Error(e.to_string())),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the group did not answer {args:?} within {within:?}: {last:?}");
}

// ---------------------------------------------------------------- history

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Res {
    Ok,
    /// Known not applied (refused, TRYAGAIN, connection refused).
    Fail,
    /// May or may not have been applied.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Acquire,
    Write,
    Release,
    Incr,
}

#[derive(Debug, Clone)]
struct Op {
    client: usize,
    kind: Kind,
    lock: usize,
    invoke: Instant,
    complete: Instant,
    res: Res,
    fence: Option<u64>,
}

type History = Arc<Mutex<Vec<Op>>>;

/// Classify a call: the reply, or why there is none.
fn classify(r: &Result<Reply, CallError>) -> Res {
    match r {
        Ok(Reply::Error(e)) if e.starts_with("UNCERTAIN") => Res::Unknown,
        Ok(Reply::Error(_)) | Ok(Reply::Bulk(None)) => Res::Fail,
        Ok(_) => Res::Ok,
        // Never connected: nothing was sent.
        Err(CallError::Unreachable(why)) if why.contains("refused") => Res::Fail,
        Err(_) => Res::Unknown,
    }
}

async fn lock_client(client: usize, addr: String, locks: usize, stop: Arc<AtomicBool>, history: History) {
    let inst = Instance::new(addr);
    let ttl = LOCK_TTL.as_millis().to_string();
    let mut seq = 0u64;
    let record = |kind, lock, invoke, res, fence| {
        history.lock().unwrap().push(Op {
            client,
            kind,
            lock,
            invoke,
            complete: Instant::now(),
            res,
            fence,
        })
    };
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let lock = (client + seq as usize) % locks;
        let key = format!("lock:{lock}");
        let token = format!("c{client}-{seq}");
        let t0 = Instant::now();
        // Every other client blocks a little for its lock (the group's
        // leader queues it): such grants are held to the same checks.
        let mut acquire: Vec<&[u8]> = vec![b"LOCK.ACQUIRE", key.as_bytes(), token.as_bytes(), b"PX", ttl.as_bytes()];
        if client % 2 == 1 {
            acquire.extend([&b"WAIT"[..], b"200"]);
        }
        let r = inst.call(&acquire, CALL_TIMEOUT).await;
        let res = classify(&r);
        let fence = match r {
            Ok(Reply::Int(f)) => Some(f as u64),
            _ => None,
        };
        record(Kind::Acquire, lock, t0, res, fence);
        match (res, fence) {
            (Res::Ok, Some(f)) => {
                let data = format!("data:{lock}");
                let value = format!("{f}:{client}:{seq}");
                let t1 = Instant::now();
                let w = inst
                    .call(
                        &[
                            b"FENCE.SET",
                            data.as_bytes(),
                            value.as_bytes(),
                            f.to_string().as_bytes(),
                        ],
                        CALL_TIMEOUT,
                    )
                    .await;
                record(Kind::Write, lock, t1, classify(&w), Some(f));
            }
            (Res::Fail, _) => {
                tokio::time::sleep(Duration::from_millis(rand::random_range(5..30))).await;
                continue;
            }
            // A node that cannot say whether it granted is in trouble:
            // release (below), then give it a moment.
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        // Release what we hold, or may hold (an unknown acquire).
        let t2 = Instant::now();
        let r = inst
            .call(&[b"LOCK.RELEASE", key.as_bytes(), token.as_bytes()], CALL_TIMEOUT)
            .await;
        record(Kind::Release, lock, t2, classify(&r), fence);
    }
}

async fn incr_client(client: usize, addr: String, stop: Arc<AtomicBool>, history: History) {
    let inst = Instance::new(addr);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let r = inst.call(&[b"INCR", b"counter"], CALL_TIMEOUT).await;
        let res = classify(&r);
        history.lock().unwrap().push(Op {
            client,
            kind: Kind::Incr,
            lock: 0,
            invoke: t0,
            complete: Instant::now(),
            res,
            fence: None,
        });
        if res != Res::Ok {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------- checks

/// For ops sorted by nothing in particular: every `b` invoked after `a`
/// completed has a fence strictly greater than `a`'s. Violations, described.
fn check_real_time_increasing(ops: &[&Op], what: &str) -> Vec<String> {
    let mut by_complete: Vec<&Op> = ops.to_vec();
    by_complete.sort_by_key(|o| o.complete);
    let mut by_invoke: Vec<&Op> = ops.to_vec();
    by_invoke.sort_by_key(|o| o.invoke);
    let mut violations = Vec::new();
    let mut done = 0;
    let mut max_before: Option<&Op> = None;
    for b in by_invoke {
        while done < by_complete.len() && by_complete[done].complete < b.invoke {
            let a = by_complete[done];
            if max_before.is_none_or(|m| a.fence > m.fence) {
                max_before = Some(a);
            }
            done += 1;
        }
        if let Some(a) = max_before
            && b.fence <= a.fence
        {
            violations.push(format!(
                "{what}: fence {:?} (client {}) invoked after fence {:?} (client {}) completed",
                b.fence, b.client, a.fence, a.client
            ));
        }
    }
    violations
}

/// Holds measured by their holders: [grant acknowledged, release invoked
/// or grant invoked + TTL]. Overlaps on one lock are violations.
fn check_holds(history: &[Op], locks: usize) -> Vec<String> {
    let mut violations = Vec::new();
    for lock in 0..locks {
        let mut holds: Vec<(Instant, Instant, usize, u64)> = Vec::new();
        let grants = history
            .iter()
            .filter(|o| o.kind == Kind::Acquire && o.res == Res::Ok && o.lock == lock);
        for g in grants {
            let release = history
                .iter()
                .find(|o| o.kind == Kind::Release && o.client == g.client && o.fence == g.fence && o.lock == lock)
                .map(|o| o.invoke);
            let expiry = g.invoke + LOCK_TTL;
            let end = release.map_or(expiry, |r| r.min(expiry));
            holds.push((g.complete, end, g.client, g.fence.unwrap_or(0)));
        }
        holds.sort_by_key(|h| h.0);
        let mut open: Option<(Instant, usize, u64)> = None;
        for (start, end, client, fence) in holds {
            if let Some((until, c, f)) = open
                && start < until
            {
                violations.push(format!(
                    "lock:{lock}: client {client} (fence {fence}) granted while client {c} (fence {f}) held it"
                ));
            }
            if open.is_none_or(|(until, _, _)| end > until) {
                open = Some((end, client, fence));
            }
        }
    }
    violations
}

// ---------------------------------------------------------------- the test

#[derive(Default, Debug)]
struct Faults {
    kills: usize,
    pauses: usize,
    partitions: usize,
}

fn nemesis(cluster: &mut Cluster, run_for: Duration, faults: &mut Faults) {
    let deadline = Instant::now() + run_for;
    let n = cluster.group.nodes.len();
    let mut round = 0usize;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rand::random_range(800..1500)));
        let leader = find_leader(&cluster.group);
        // Alternate targets between the leader and a random node.
        let target = match leader {
            Some(l) if round.is_multiple_of(2) => l,
            _ => rand::random_range(0..n),
        };
        let id = cluster.group.nodes[target].id;
        match round % 3 {
            0 => {
                cluster.group.kill9(id);
                faults.kills += 1;
                std::thread::sleep(Duration::from_millis(rand::random_range(500..2000)));
                cluster.group.restart(id);
            }
            1 => {
                if let Some(pid) = leader.and_then(|l| cluster.group.nodes[l].pid()) {
                    let paused = Paused::pause(pid);
                    faults.pauses += 1;
                    std::thread::sleep(Duration::from_millis(rand::random_range(1000..2500)));
                    drop(paused);
                }
            }
            _ => {
                let how = if rand::random_bool(0.5) {
                    Cut::Refuse
                } else {
                    Cut::Blackhole
                };
                cluster.isolate(target, Some(how));
                faults.partitions += 1;
                std::thread::sleep(Duration::from_millis(rand::random_range(1000..3000)));
                cluster.isolate(target, None);
            }
        }
        round += 1;
    }
}

#[test]
fn jepsen_style_faults_keep_locks_and_counter_linearizable() {
    let run_for = Duration::from_secs(
        std::env::var("GROUP_FAULT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let started = Instant::now();
    let mut cluster = Cluster::start(3);
    wait_converged(&cluster.group, Duration::from_secs(20)).expect("a leader at start");
    let locks = 2;
    let stop = Arc::new(AtomicBool::new(false));
    let history: History = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let addrs = addrs(&cluster.group);
    let mut tasks = Vec::new();
    for c in 0..6 {
        let addr = addrs[c % addrs.len()].clone();
        tasks.push(rt.spawn(lock_client(c, addr, locks, stop.clone(), history.clone())));
    }
    for c in 6..9 {
        let addr = addrs[c % addrs.len()].clone();
        tasks.push(rt.spawn(incr_client(c, addr, stop.clone(), history.clone())));
    }

    let mut faults = Faults::default();
    nemesis(&mut cluster, run_for, &mut faults);
    // Heal: every link open, every node running; the clients go on a little.
    for k in 0..cluster.group.nodes.len() {
        cluster.isolate(k, None);
        if !cluster.group.nodes[k].is_up() {
            let id = cluster.group.nodes[k].id;
            cluster.group.restart(id);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).expect("client task");
    }
    drop(rt);
    let history = std::mem::take(&mut *history.lock().unwrap());

    // Let every lock expire and the group settle.
    std::thread::sleep(LOCK_TTL + Duration::from_millis(500));
    let group = &cluster.group;
    let mut violations = Vec::new();
    if let Err(seen) = wait_converged(group, Duration::from_secs(20)) {
        violations.push(format!("the nodes did not converge (applied, digest): {seen}"));
    }

    // The counter.
    let count = |kind: Kind, res: Res| history.iter().filter(|o| o.kind == kind && o.res == res).count();
    let (acked, unknown) = (count(Kind::Incr, Res::Ok), count(Kind::Incr, Res::Unknown));
    let counter = match group_call(group, &["GET", "counter"], Duration::from_secs(20)) {
        Reply::Bulk(Some(v)) => String::from_utf8_lossy(&v).parse::<usize>().unwrap_or(usize::MAX),
        Reply::Bulk(None) => 0,
        other => panic!("GET counter: {other:?}"),
    };
    if counter < acked || counter > acked + unknown {
        violations.push(format!(
            "counter {counter} outside [acked {acked}, acked + unknown {}]",
            acked + unknown
        ));
    }

    // Locks and fences.
    violations.extend(check_holds(&history, locks));
    let grants: Vec<&Op> = history
        .iter()
        .filter(|o| o.kind == Kind::Acquire && o.res == Res::Ok)
        .collect();
    let mut fences: Vec<u64> = grants.iter().filter_map(|o| o.fence).collect();
    fences.sort_unstable();
    if fences.windows(2).any(|w| w[0] == w[1]) {
        violations.push("two grants got the same fence".into());
    }
    violations.extend(check_real_time_increasing(&grants, "grant"));
    for lock in 0..locks {
        let writes: Vec<&Op> = history
            .iter()
            .filter(|o| o.kind == Kind::Write && o.res == Res::Ok && o.lock == lock)
            .collect();
        violations.extend(check_real_time_increasing(&writes, &format!("data:{lock} write")));
        // The key keeps the highest-fenced write that may have been applied.
        let highest_acked = writes.iter().filter_map(|o| o.fence).max();
        let final_value = match group_call(group, &["GET", &format!("data:{lock}")], Duration::from_secs(20)) {
            Reply::Bulk(v) => v,
            other => panic!("GET data:{lock}: {other:?}"),
        };
        let final_fence = final_value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.split(':').next())
            .and_then(|f| f.parse::<u64>().ok());
        let possible = history.iter().any(|o| {
            o.kind == Kind::Write
                && o.lock == lock
                && o.res != Res::Fail
                && o.fence == final_fence
                && final_fence.is_some()
        });
        if final_fence < highest_acked || (final_value.is_some() && !possible) {
            violations.push(format!(
                "data:{lock} ends as {final_value:?}, but the highest acknowledged fence is {highest_acked:?}"
            ));
        }
    }

    // Convergence (besides applied index and digest, above): the same key
    // count in every node's own keyspace.
    let keyspaces: Vec<Option<String>> = group
        .nodes
        .iter()
        .map(|n| {
            call_sync(&n.addr(), &["INFO", "keyspace"], CALL_TIMEOUT)
                .ok()
                .map(|r| fields(&r).get("db0").cloned().unwrap_or_default())
        })
        .collect();
    if keyspaces.iter().any(|k| k.is_none()) || keyspaces.windows(2).any(|w| w[0] != w[1]) {
        violations.push(format!("the nodes' keyspaces differ: {keyspaces:?}"));
    }

    let res_count = |res: Res| history.iter().filter(|o| o.res == res).count();
    eprintln!(
        "group_fault: ops={} ok={} fail={} unknown={} grants={} fenced_writes={} incr_acked={acked} incr_unknown={unknown} counter={counter} faults={} (kill9={} pause={} partition={}) violations={} elapsed={:.0}s",
        history.len(),
        res_count(Res::Ok),
        res_count(Res::Fail),
        res_count(Res::Unknown),
        grants.len(),
        count(Kind::Write, Res::Ok),
        faults.kills + faults.pauses + faults.partitions,
        faults.kills,
        faults.pauses,
        faults.partitions,
        violations.len(),
        started.elapsed().as_secs_f64(),
    );
    assert!(violations.is_empty(), "violations:\n{}", violations.join("\n"));
    assert!(grants.len() > 10 && acked > 10, "too little progress to check anything");
}

// ---------------------------------------------------------------- smaller tests

/// The history checks catch what they are for (and pass what is legal).
#[test]
fn the_checks_catch_overlapping_holds_and_stale_fences() {
    let t0 = Instant::now();
    let op = |client, kind, invoke: u64, complete: u64, fence| Op {
        client,
        kind,
        lock: 0,
        invoke: t0 + Duration::from_millis(invoke),
        complete: t0 + Duration::from_millis(complete),
        res: Res::Ok,
        fence: Some(fence),
    };
    // Granted to 2 while 1 held it (1 released at 100).
    let h = [
        op(1, Kind::Acquire, 0, 10, 5),
        op(1, Kind::Release, 100, 110, 5),
        op(2, Kind::Acquire, 40, 50, 6),
    ];
    assert_eq!(check_holds(&h, 1).len(), 1);
    // Granted once the release was invoked: legal.
    let h = [
        op(1, Kind::Acquire, 0, 10, 5),
        op(1, Kind::Release, 100, 110, 5),
        op(2, Kind::Acquire, 90, 105, 6),
    ];
    assert!(check_holds(&h, 1).is_empty());
    // Never released: held until invoke + TTL.
    let ttl = LOCK_TTL.as_millis() as u64;
    let h = [
        op(1, Kind::Acquire, 0, 10, 5),
        op(2, Kind::Acquire, ttl - 50, ttl - 40, 6),
    ];
    assert_eq!(check_holds(&h, 1).len(), 1);
    let h = [
        op(1, Kind::Acquire, 0, 10, 5),
        op(2, Kind::Acquire, ttl - 50, ttl + 1, 6),
    ];
    assert!(check_holds(&h, 1).is_empty());
    // A grant invoked after another completed must have a greater fence;
    // concurrent ones may come in either order.
    let (a, later, concurrent) = (
        op(1, Kind::Acquire, 0, 10, 7),
        op(2, Kind::Acquire, 20, 30, 6),
        op(3, Kind::Acquire, 5, 30, 6),
    );
    assert_eq!(check_real_time_increasing(&[&a, &later], "grant").len(), 1);
    assert!(check_real_time_increasing(&[&a, &concurrent], "grant").is_empty());
}

#[test]
fn proxy_cuts_and_heals_a_link() {
    let server = Server::start();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port).into());
    let via = proxy.addr();
    assert_eq!(
        call_sync(&via, &["PING"], CALL_TIMEOUT),
        Ok(Reply::Status("PONG".into()))
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let live = Instance::new(via.clone());
    assert!(rt.block_on(live.call(&[b"PING"], CALL_TIMEOUT)).is_ok());
    proxy.cut();
    // The live connection is gone, and new ones are refused.
    assert!(rt.block_on(live.call(&[b"PING"], CALL_TIMEOUT)).is_err());
    assert!(call_sync(&via, &["PING"], CALL_TIMEOUT).is_err());
    proxy.cut_with(Cut::Blackhole);
    assert_eq!(
        call_sync(&via, &["PING"], Duration::from_millis(300)),
        Err(CallError::TimedOut)
    );
    proxy.heal();
    assert_eq!(
        call_sync(&via, &["PING"], CALL_TIMEOUT),
        Ok(Reply::Status("PONG".into()))
    );
}

fn counter_line(out: &std::process::Output) -> HashMap<String, i64> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        out.status.success() && line.starts_with("counter final="),
        "counter failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// The Redlock helper's group mode: the counter ends exact while the
/// leader is killed mid-run, and `run` gets a fence from the group.
#[test]
fn counter_over_a_group_survives_a_leader_kill() {
    let mut cluster = Group::start(3, &[]);
    let leader = wait_converged(&cluster, Duration::from_secs(20)).expect("a leader");
    let group = addrs(&cluster).join(",");
    let counter = Command::new(env!("CARGO_BIN_EXE_redlockd"))
        .args(["counter", "--group", &group, "--workers", "4", "--increments", "60"])
        .args(["--fenced", "--ttl", "5s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("counter");
    let progressed = common::eventually(Duration::from_secs(20), || {
        matches!(call_sync(&cluster.nodes[leader].addr(), &["GET", "counter"], CALL_TIMEOUT),
            Ok(Reply::Bulk(Some(v))) if String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0) >= 40)
    });
    assert!(progressed, "the counter made no progress");
    cluster.kill9(cluster.nodes[leader].id);
    let out = counter.wait_with_output().expect("counter ran");
    let fields = counter_line(&out);
    assert_eq!(fields["final"], 240, "{fields:?}");
    assert_eq!(fields["lost"], 0, "{fields:?}");

    let run = Command::new(env!("CARGO_BIN_EXE_redlockd"))
        .args(["run", "--group", &group, "--lock", "nightly", "--ttl", "5s"])
        .args(["--", "sh", "-c", "echo \"fence=$REDLOCKD_FENCE\""])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let fence: u64 = stdout.trim().trim_start_matches("fence=").parse().expect("a fence");
    assert!(fence > 0);
}

/// Five nodes lose two (the leader among them): writes go on, none lost.
#[test]
fn five_nodes_survive_two_kills() {
    let mut cluster = Group::start(5, &[]);
    let leader = wait_converged(&cluster, Duration::from_secs(20)).expect("a leader");
    let mut acked = 0;
    let mut incr = |cluster: &Group, n: usize| {
        for _ in 0..n {
            match group_call(cluster, &["INCR", "c"], Duration::from_secs(20)) {
                Reply::Int(_) => acked += 1,
                other => panic!("INCR: {other:?}"),
            }
        }
    };
    incr(&cluster, 20);
    let id = |i: usize| cluster.nodes[i].id;
    let (leader_id, other_id, third_id) = (id(leader), id((leader + 1) % 5), id((leader + 2) % 5));
    cluster.kill9(leader_id);
    cluster.kill9(other_id);
    incr(&cluster, 20);
    assert_eq!(
        group_call(&cluster, &["GET", "c"], Duration::from_secs(20)),
        Reply::Bulk(Some(acked.to_string().into_bytes()))
    );
    // A third loss leaves no majority: a write is refused, never wrong.
    cluster.kill9(third_id);
    let alive = cluster.nodes.iter().find(|n| n.is_up()).unwrap().addr();
    let r = call_sync(&alive, &["INCR", "c"], Duration::from_secs(10));
    assert!(
        matches!(&r, Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") || e.starts_with("UNCERTAIN")),
        "{r:?}"
    );
}
