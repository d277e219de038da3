//! The coordination layer in a replicated group of three real nodes:
//! per-lock lock-delay (`DELAY`) and semaphore leases end by the log (a
//! tick entry the leader proposes when they are due, applied alike on every
//! node), and semaphore holders, lock options and running lock-delays
//! survive a node's catch-up from a snapshot (the state digest, which
//! covers them, converges; the caught-up node, made the only member, still
//! knows them). `--lock-delay` cannot be changed on one node of a group.

mod common;

use std::time::{Duration, Instant};

use common::eventually;
use common::group::Group;
use common::int;

/// Small snapshots, so that a restarted node catches up from one.
const FLAGS: &[&str] = &["--raft-snapshot-entries", "40", "--leader-wait-ms", "3000"];

fn applied(g: &Group, id: u64) -> u64 {
    g.node(id).raft_field("applied").unwrap().parse().unwrap()
}

/// No entry is proposed for a while: no timer is left due (one that a
/// tick did not end would make the leader propose a tick every 10 ms).
fn quiet(g: &Group, leader: u64) {
    let index = applied(g, leader);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(applied(g, leader), index, "ticks keep coming");
}

#[test]
fn lock_delays_and_semaphore_leases_end_by_the_log() {
    let g = Group::start(3, &["--leader-wait-ms", "3000"]);
    let leader = g.wait_leader(Duration::from_secs(10));
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    let (f1, f2) = (g.node(followers[0]), g.node(followers[1]));

    // A semaphore holder's lease ends at a tick entry the leader proposes
    // at its deadline (nothing else is written meanwhile, no key has a TTL).
    let sent = Instant::now();
    int(&f1.raw().cmd_str(&["SEM.ACQUIRE", "s", "a", "LIMIT", "1", "PX", "300"]));
    let index = applied(&g, leader);
    assert!(
        eventually(Duration::from_secs(5), || g
            .nodes
            .iter()
            .all(|n| applied(&g, n.id) > index)),
        "no tick entry after the holder's deadline"
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "ticked before the deadline"
    );
    for n in &g.nodes {
        assert_eq!(n.raw().cmd_str(&["SEM.INFO", "s"]), "$-1\r\n", "node {}", n.id);
    }
    // The tick ended the lease on every node: nothing more is due.
    quiet(&g, leader);
    int(&f2
        .raw()
        .cmd_str(&["SEM.ACQUIRE", "s", "b", "LIMIT", "1", "PX", "60000"]));
    g.wait_converged(Duration::from_secs(5));

    // DELAY through a follower: after the lock expires, nobody gets it for
    // the delay, asked of the leader or of a follower; then it is free.
    let sent = Instant::now();
    int(&f1
        .raw()
        .cmd_str(&["LOCK.ACQUIRE", "k", "t", "PX", "200", "DELAY", "2000"]));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(f2.raw().cmd_str(&["GET", "k"]), "$-1\r\n");
    let other = ["LOCK.ACQUIRE", "k", "other", "PX", "60000"];
    assert_eq!(g.node(leader).raw().cmd_str(&other), "$-1\r\n");
    assert_eq!(f2.raw().cmd_str(&other), "$-1\r\n");
    assert!(sent.elapsed() < Duration::from_millis(2200));
    // The running delay is replicated state: every node holds the same.
    g.wait_converged(Duration::from_secs(5));
    let mut fence = None;
    assert!(eventually(Duration::from_secs(10), || {
        let reply = f1.raw().cmd_str(&other);
        fence = reply.starts_with(':').then(|| int(&reply));
        fence.is_some()
    }));
    // Its logical time never runs faster than real time.
    assert!(
        sent.elapsed() >= Duration::from_millis(2200),
        "granted during the delay"
    );
    g.wait_converged(Duration::from_secs(5));
    quiet(&g, leader);

    // --lock-delay is the same on every node.
    let reply = f1.raw().cmd_str(&["CONFIG", "SET", "lock-delay", "100"]);
    assert!(
        reply.starts_with(
            "-ERR CONFIG SET failed (possibly related to argument 'lock-delay') - lock-delay cannot be changed in a replicated group"
        ),
        "{reply}"
    );
    assert_eq!(
        f1.raw().cmd_str(&["CONFIG", "GET", "lock-delay"]),
        "*2\r\n$10\r\nlock-delay\r\n$1\r\n0\r\n"
    );
}

#[test]
fn semaphores_and_lock_delays_survive_a_snapshot_catch_up() {
    let mut g = Group::start(3, FLAGS);
    let leader = g.wait_leader(Duration::from_secs(10));
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();
    let (down, other) = (followers[0], followers[1]);
    g.kill9(down);

    // With a node down: semaphore holders, a held lock with DELAY, and a
    // lock-delay running after an expiry ...
    let o = g.node(other);
    for (sem, token, limit) in [("s1", "a", "2"), ("s1", "b", "2"), ("s2", "c", "1")] {
        int(&o
            .raw()
            .cmd_str(&["SEM.ACQUIRE", sem, token, "LIMIT", limit, "PX", "60000"]));
    }
    int(&o
        .raw()
        .cmd_str(&["LOCK.ACQUIRE", "held", "t", "PX", "60000", "DELAY", "30000"]));
    int(&o
        .raw()
        .cmd_str(&["LOCK.ACQUIRE", "delayed", "t", "PX", "100", "DELAY", "60000"]));
    // (A deadline beyond the monotonic range is kept as Unix ms with the
    // top bit set: a snapshot carries it as an unsigned number.)
    let far = ["SET", "far", "f", "PXAT", "9000000000000000000"];
    assert_eq!(o.raw().cmd_str(&far), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(o.raw().cmd_str(&["GET", "delayed"]), "$-1\r\n");
    let coord_index = applied(&g, leader);
    // ... then enough writes for snapshots, and the log purged behind them.
    for i in 0..120 {
        let node = g.node([leader, other][i % 2]);
        assert_eq!(node.raw().cmd_str(&["SET", &format!("bulk{i}"), "x"]), "+OK\r\n");
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            g.node(leader)
                .raft_field("purged")
                .is_some_and(|p| p.parse::<i64>().unwrap() > coord_index as i64)
        }),
        "the leader kept the log of the coordination writes"
    );

    // The restarted node catches up from a snapshot: the digest covers
    // the coordination state, so it converges only if that came along.
    g.restart(down);
    g.wait_converged(Duration::from_secs(15));

    // Make it the only member (and so the leader): it still knows them.
    let l = g.node(leader);
    assert_eq!(l.raw().cmd_str(&["RAFT.REMOVE", &other.to_string()]), "+OK\r\n");
    g.kill9(other);
    assert_eq!(
        g.node(leader).raw().cmd_str(&["RAFT.REMOVE", &leader.to_string()]),
        "+OK\r\n"
    );
    g.kill9(leader);
    assert_eq!(g.wait_leader(Duration::from_secs(10)), down);
    let n = g.node(down);
    let s1 = n.raw().cmd_str(&["SEM.INFO", "s1"]);
    assert!(
        s1.starts_with("*6\r\n$5\r\nlimit\r\n:2\r\n$7\r\nholders\r\n*2\r\n")
            && s1.contains("$1\r\na\r\n")
            && s1.contains("$1\r\nb\r\n"),
        "{s1}"
    );
    assert_eq!(
        n.raw().cmd_str(&["SEM.ACQUIRE", "s2", "z", "LIMIT", "1", "PX", "1000"]),
        "$-1\r\n"
    );
    assert_eq!(
        n.raw().cmd_str(&["LOCK.ACQUIRE", "delayed", "z", "PX", "1000"]),
        "$-1\r\n"
    );
    assert_eq!(n.raw().cmd_str(&["GET", "held"]), "$1\r\nt\r\n");
    assert_eq!(n.raw().cmd_str(&["GET", "bulk119"]), "$1\r\nx\r\n");
    assert_eq!(n.raw().cmd_str(&["PEXPIRETIME", "far"]), ":9000000000000000000\r\n");
}
