//! Blocking acquires in a replicated group of three real nodes: the queue
//! lives on the leader and every grant is a log entry. Waiters on any node
//! are granted in arrival order, on release and on expiry (never while the
//! lock is held), leave the queue when their wait ends, their connection
//! closes or CLIENT UNBLOCK ends them, and keep waiting through a leader's
//! kill -9; a semaphore's waiters likewise; a client-bound (ONCLOSE) lock
//! is released through the log when its client closes.

mod common;

use std::time::{Duration, Instant};

use common::Raw;
use common::group::Group;
use common::int;

const FLAGS: &[&str] = &["--leader-wait-ms", "3000"];

fn text(frame: Vec<u8>) -> String {
    String::from_utf8_lossy(&frame).into_owned()
}

/// Send a command on a new connection to `node` without reading its reply.
fn send(g: &Group, node: u64, args: &[&str]) -> Raw {
    let mut c = g.node(node).raw();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.send(&common::encode(&args));
    c
}

/// The token holding `key`, as the leader says.
fn holder(g: &Group, leader: u64, key: &str) -> Option<String> {
    let reply = g.node(leader).raw().cmd_str(&["LOCK.HOLDER", key]);
    reply
        .lines()
        .nth(2)
        .map(str::to_string)
        .filter(|_| reply.starts_with("*3"))
}

/// The waiters of `key` the leader's LOCK.INFO counts.
fn waiters(g: &Group, leader: u64, key: &str) -> i64 {
    waiters_on(&mut g.node(leader).raw(), key)
}

/// The same on connection `c` (a polling loop keeps one: every new
/// connection leaves a port in TIME_WAIT, and a test that opens hundreds
/// can take the port a node of another test is about to bind).
fn waiters_on(c: &mut Raw, key: &str) -> i64 {
    let reply = c.cmd_str(&["LOCK.INFO", key]);
    let lines: Vec<&str> = reply.lines().collect();
    let at = lines.iter().position(|l| *l == "waiters").expect("waiters field");
    int(lines[at + 1])
}

fn eventually(within: Duration, f: impl FnMut() -> bool) {
    assert!(common::eventually(within, f), "not within {within:?}");
}

fn start() -> (Group, u64, Vec<u64>) {
    let g = Group::start(3, FLAGS);
    let leader = g.wait_leader(Duration::from_secs(10));
    let followers = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    (g, leader, followers)
}

#[test]
fn waiters_on_every_node_are_granted_in_arrival_order_and_leave_when_their_wait_ends() {
    let (g, leader, followers) = start();
    let nodes = [followers[0], leader, followers[1]];
    let at = |i: usize| nodes[i % 3];
    assert!(
        g.node(leader)
            .raw()
            .cmd_str(&["LOCK.ACQUIRE", "q", "h", "PX", "30000"])
            .starts_with(':')
    );

    // Ten waiters, spread over the three nodes, each arriving after the last.
    let mut blocked = Vec::new();
    for i in 0..10 {
        let token = format!("t{i}");
        blocked.push(send(
            &g,
            at(i),
            &["LOCK.ACQUIRE", "q", &token, "PX", "30000", "WAIT", "0"],
        ));
        eventually(Duration::from_secs(5), || waiters(&g, leader, "q") == i as i64 + 1);
    }
    // The fourth gives up: its connection closes in the middle of the queue.
    drop(blocked.remove(3));
    eventually(Duration::from_secs(5), || waiters(&g, leader, "q") == 9);

    // Each release goes to the next in arrival order, and only to it.
    let mut fences = Vec::new();
    let mut current = "h".to_string();
    for (n, c) in blocked.iter_mut().enumerate() {
        let i = if n >= 3 { n + 1 } else { n };
        let released = g.node(at(n + 1)).raw().cmd_str(&["LOCK.RELEASE", "q", &current]);
        assert_eq!(released, ":1\r\n", "release by {current}");
        let fence = int(&text(c.read_frame()));
        current = format!("t{i}");
        assert_eq!(holder(&g, leader, "q").as_deref(), Some(current.as_str()));
        fences.push(fence);
    }
    assert!(fences.windows(2).all(|w| w[0] < w[1]), "fences {fences:?}");
    assert_eq!(waiters(&g, leader, "q"), 0);

    // A wait that runs out answers nil and leaves the queue: the lock then
    // goes to the one behind it.
    let started = Instant::now();
    let mut short = send(
        &g,
        followers[0],
        &["LOCK.ACQUIRE", "q", "short", "PX", "30000", "WAIT", "300"],
    );
    let mut long = send(
        &g,
        followers[1],
        &["LOCK.ACQUIRE", "q", "long", "PX", "30000", "WAIT", "0"],
    );
    assert_eq!(text(short.read_frame()), "$-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(300));
    eventually(Duration::from_secs(5), || waiters(&g, leader, "q") == 1);
    assert_eq!(g.node(leader).raw().cmd_str(&["LOCK.RELEASE", "q", &current]), ":1\r\n");
    assert!(text(long.read_frame()).starts_with(':'));
    assert_eq!(holder(&g, leader, "q").as_deref(), Some("long"));

    // CLIENT UNBLOCK ends a group waiter too, and it leaves the queue.
    let mut unblocked = g.node(followers[0]).raw();
    let id = int(&unblocked.cmd_str(&["CLIENT", "ID"])).to_string();
    unblocked.send(&common::encode(&[
        b"LOCK.ACQUIRE",
        b"q",
        b"u",
        b"PX",
        b"30000",
        b"WAIT",
        b"0",
    ]));
    eventually(Duration::from_secs(5), || waiters(&g, leader, "q") == 1);
    let answer = g.node(followers[0]).raw().cmd_str(&["CLIENT", "UNBLOCK", &id, "ERROR"]);
    assert_eq!(answer, ":1\r\n");
    assert!(text(unblocked.read_frame()).starts_with("-UNBLOCKED"));
    eventually(Duration::from_secs(5), || waiters(&g, leader, "q") == 0);

    // Inside MULTI a WAIT does not block: it tries once.
    let mut m = g.node(followers[1]).raw();
    assert_eq!(m.cmd_str(&["MULTI"]), "+OK\r\n");
    assert_eq!(
        m.cmd_str(&["LOCK.ACQUIRE", "q", "m", "PX", "1000", "WAIT", "0"]),
        "+QUEUED\r\n"
    );
    assert_eq!(m.cmd_str(&["EXEC"]), "*1\r\n$-1\r\n");
}

#[test]
fn an_expired_lock_goes_to_the_head_never_before_its_deadline_and_waiters_survive_a_leader_kill() {
    let (mut g, leader, followers) = start();
    let started = Instant::now();
    assert!(
        g.node(leader)
            .raw()
            .cmd_str(&["LOCK.ACQUIRE", "e", "old", "PX", "400"])
            .starts_with(':')
    );
    let mut w = send(
        &g,
        followers[0],
        &["LOCK.ACQUIRE", "e", "new", "PX", "30000", "WAIT", "0"],
    );
    let fence = int(&text(w.read_frame()));
    assert!(started.elapsed() >= Duration::from_millis(400), "granted while held");
    assert_eq!(holder(&g, leader, "e").as_deref(), Some("new"));

    // A lock-delay holds the waiter back past the deadline by its length.
    let started = Instant::now();
    let lock = ["LOCK.ACQUIRE", "d", "old", "PX", "200", "DELAY", "300"];
    assert!(g.node(followers[1]).raw().cmd_str(&lock).starts_with(':'));
    let mut w = send(
        &g,
        followers[0],
        &["LOCK.ACQUIRE", "d", "new", "PX", "30000", "WAIT", "0"],
    );
    assert!(text(w.read_frame()).starts_with(':'));
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "granted in the lock-delay"
    );

    // A waiter on a follower keeps waiting while the leader is killed; the
    // lock (in the log) expires under the new leader and goes to it.
    assert!(
        g.node(leader)
            .raw()
            .cmd_str(&["LOCK.ACQUIRE", "k", "held", "PX", "1500"])
            .starts_with(':')
    );
    let mut survivor = send(
        &g,
        followers[0],
        &["LOCK.ACQUIRE", "k", "next", "PX", "30000", "WAIT", "0"],
    );
    eventually(Duration::from_secs(5), || waiters(&g, leader, "k") == 1);
    let killed = Instant::now();
    g.kill9(leader);
    let granted = int(&text(survivor.read_frame()));
    assert!(granted > fence, "fence {granted} after {fence}");
    let new_leader = g.wait_leader(Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    assert_eq!(holder(&g, new_leader, "k").as_deref(), Some("next"));
    assert!(killed.elapsed() < Duration::from_secs(10));
}

#[test]
fn semaphore_waiters_and_client_bound_locks_in_a_group() {
    let (g, leader, followers) = start();
    for t in ["a", "b"] {
        let r = g
            .node(followers[0])
            .raw()
            .cmd_str(&["SEM.ACQUIRE", "s", t, "LIMIT", "2", "PX", "30000"]);
        assert!(r.starts_with(':'), "{r}");
    }
    let mut third = send(
        &g,
        followers[1],
        &["SEM.ACQUIRE", "s", "c", "LIMIT", "2", "PX", "30000", "WAIT", "0"],
    );
    eventually(Duration::from_secs(5), || {
        g.node(leader)
            .raw()
            .cmd_str(&["SEM.INFO", "s"])
            .contains("waiters\r\n:1")
    });
    assert_eq!(g.node(leader).raw().cmd_str(&["SEM.RELEASE", "s", "a"]), ":1\r\n");
    assert!(text(third.read_frame()).starts_with(':'));
    let info = g.node(leader).raw().cmd_str(&["SEM.INFO", "s"]);
    assert!(info.contains("$1\r\nb\r\n") && info.contains("$1\r\nc\r\n"), "{info}");

    // ONCLOSE through a follower: the close is a log entry, and the lock
    // goes to the waiter on the other follower.
    let mut bound = g.node(followers[0]).raw();
    assert!(
        bound
            .cmd_str(&["LOCK.ACQUIRE", "b", "mine", "PX", "30000", "ONCLOSE"])
            .starts_with(':')
    );
    let mut waiter = send(
        &g,
        followers[1],
        &["LOCK.ACQUIRE", "b", "theirs", "PX", "30000", "WAIT", "0"],
    );
    eventually(Duration::from_secs(5), || waiters(&g, leader, "b") == 1);
    assert_eq!(holder(&g, leader, "b").as_deref(), Some("mine"));
    drop(bound);
    assert!(text(waiter.read_frame()).starts_with(':'));
    for node in [leader, followers[0], followers[1]] {
        eventually(Duration::from_secs(5), || {
            g.node(node).raw().cmd_str(&["LOCK.HOLDER", "b"]).contains("theirs")
        });
    }
}

#[test]
fn a_client_bound_lock_outlives_its_close_by_its_grace_unless_extended_back() {
    let (g, leader, followers) = start();
    // Closed and not taken back: released through the log after the grace.
    let mut bound = g.node(followers[0]).raw();
    assert!(
        bound
            .cmd_str(&["LOCK.ACQUIRE", "g1", "t", "PX", "30000", "ONCLOSE", "GRACE", "400"])
            .starts_with(':')
    );
    let closed = Instant::now();
    drop(bound);
    let mut waiter = send(
        &g,
        followers[1],
        &["LOCK.ACQUIRE", "g1", "w", "PX", "30000", "WAIT", "0"],
    );
    assert!(text(waiter.read_frame()).starts_with(':'));
    assert!(
        closed.elapsed() >= Duration::from_millis(400),
        "released within its grace"
    );
    assert_eq!(holder(&g, leader, "g1").as_deref(), Some("w"));

    // Closed, then extended back within the grace from another node: kept,
    // and bound to the new connection (released when that one closes).
    let mut bound = g.node(followers[0]).raw();
    assert!(
        bound
            .cmd_str(&["LOCK.ACQUIRE", "g2", "t", "PX", "30000", "ONCLOSE", "GRACE", "2000"])
            .starts_with(':')
    );
    drop(bound);
    // The close reaches the log (its node proposes it), then the extend.
    std::thread::sleep(Duration::from_millis(500));
    let mut again = g.node(followers[1]).raw();
    assert_eq!(again.cmd_str(&["LOCK.EXTEND", "g2", "t", "PX", "30000"]), ":1\r\n");
    std::thread::sleep(Duration::from_millis(2000));
    assert_eq!(holder(&g, leader, "g2").as_deref(), Some("t"));
    let mut waiter = send(&g, leader, &["LOCK.ACQUIRE", "g2", "w", "PX", "30000", "WAIT", "0"]);
    drop(again);
    assert!(text(waiter.read_frame()).starts_with(':'));
    assert_eq!(holder(&g, leader, "g2").as_deref(), Some("w"));
}

#[test]
fn blocking_pops_on_one_key_wait_at_the_leader() {
    let (g, leader, followers) = start();
    // Two poppers on two followers, served in arrival order by pushes
    // through the third node; the reply bytes are a single server's.
    let mut first = send(&g, followers[0], &["BLPOP", "list", "0"]);
    eventually(Duration::from_secs(5), || {
        g.node(leader)
            .raw()
            .cmd_str(&["INFO", "clients"])
            .contains("blocked_clients:1")
            || g.node(followers[0])
                .raw()
                .cmd_str(&["INFO", "clients"])
                .contains("blocked_clients:1")
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut second = send(&g, followers[1], &["BRPOP", "list", "5"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(g.node(leader).raw().cmd_str(&["RPUSH", "list", "a", "b"]), ":2\r\n");
    assert_eq!(text(first.read_frame()), "*2\r\n$4\r\nlist\r\n$1\r\na\r\n");
    assert_eq!(text(second.read_frame()), "*2\r\n$4\r\nlist\r\n$1\r\nb\r\n");
    for node in [leader, followers[0], followers[1]] {
        assert_eq!(g.node(node).raw().cmd_str(&["EXISTS", "list"]), ":0\r\n");
    }

    // BLMOVE moves what a push brings; a timeout answers as Redis does.
    let mut mover = send(&g, followers[1], &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(g.node(followers[0]).raw().cmd_str(&["LPUSH", "src", "x"]), ":1\r\n");
    assert_eq!(text(mover.read_frame()), "$1\r\nx\r\n");
    assert_eq!(
        g.node(leader).raw().cmd_str(&["LRANGE", "dst", "0", "-1"]),
        "*1\r\n$1\r\nx\r\n"
    );
    let started = Instant::now();
    assert_eq!(
        g.node(followers[0]).raw().cmd_str(&["BLPOP", "empty", "0.3"]),
        "*-1\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Several keys are refused; a bad timeout is Redis's error.
    assert!(
        g.node(leader)
            .raw()
            .cmd_str(&["BLPOP", "a", "b", "0"])
            .starts_with("-ERR BLPOP and BRPOP on more than one key are not supported in a replicated group")
    );
    assert_eq!(
        g.node(followers[0]).raw().cmd_str(&["BLPOP", "a", "-1"]),
        "-ERR timeout is negative\r\n"
    );
}

#[test]
fn waits_that_end_at_once_leave_no_waiter_and_a_holder_waiting_again_gets_its_fence() {
    let (g, leader, followers) = start();
    assert!(
        g.node(leader)
            .raw()
            .cmd_str(&["LOCK.ACQUIRE", "s", "h", "PX", "30000"])
            .starts_with(':')
    );
    // Waits whose connections close at once, through a follower: none is
    // left queued at the leader (nor granted later to nobody).
    for i in 0..20 {
        let token = format!("gone{i}");
        drop(send(
            &g,
            followers[0],
            &["LOCK.ACQUIRE", "s", &token, "PX", "30000", "WAIT", "0"],
        ));
    }
    // LOCK.INFO (which reads the queue under the key's lock) while waiters
    // come and go must not stall the leader.
    let mut churn: Vec<Raw> = (0..4)
        .map(|i| {
            let token = format!("short{i}");
            send(
                &g,
                followers[i % 2],
                &["LOCK.ACQUIRE", "s", &token, "PX", "30000", "WAIT", "50"],
            )
        })
        .collect();
    let mut info = g.node(leader).raw();
    for _ in 0..50 {
        assert!(info.cmd_str(&["LOCK.INFO", "s"]).contains("waiters"));
    }
    for c in &mut churn {
        assert_eq!(text(c.read_frame()), "$-1\r\n");
    }
    let mut left = -1;
    // (A wait whose node could not reach the leader to end it, under load,
    // is dropped there once its lease of 5 s runs out.)
    let gone = common::eventually(Duration::from_secs(15), || {
        left = waiters_on(&mut info, "s");
        left == 0
    });
    assert!(gone, "{left} waiters left");
    assert_eq!(g.node(leader).raw().cmd_str(&["LOCK.RELEASE", "s", "h"]), ":1\r\n");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(holder(&g, leader, "s"), None, "granted to a waiter that was gone");

    // The holder asking again with WAIT (as after a grant whose reply was
    // lost) gets its fence at once, not after its own TTL.
    let fence = g
        .node(followers[1])
        .raw()
        .cmd_str(&["LOCK.ACQUIRE", "s", "me", "PX", "30000"]);
    let started = Instant::now();
    let again = g
        .node(followers[0])
        .raw()
        .cmd_str(&["LOCK.ACQUIRE", "s", "me", "PX", "30000", "WAIT", "5000"]);
    assert_eq!(again, fence);
    assert!(started.elapsed() < Duration::from_secs(5), "waited for its own lock");
}
