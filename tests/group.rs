//! A replicated group of three real nodes on loopback: it forms and
//! elects by itself, serves any client on any node, keeps counts exact and
//! fences increasing across a leader's kill -9, catches a restarted node up
//! (from a snapshot), reports the leader the way ROLE, INFO and Sentinel
//! clients expect, and changes its membership with RAFT.ADD/RAFT.REMOVE.

mod common;

use std::time::{Duration, Instant};

use common::group::Group;
use common::int;

/// Small snapshots, so that a restarted node catches up from one.
const FLAGS: &[&str] = &["--raft-snapshot-entries", "40", "--leader-wait-ms", "3000"];

/// Send a write until it is acknowledged, tolerating `-TRYAGAIN` (no
/// leader yet) only; the reply and how many TRYAGAINs it took.
fn until_ok(group: &Group, id: u64, args: &[&str]) -> (String, usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut tries = 0;
    loop {
        let reply = group.node(id).raw().cmd_str(args);
        if !reply.starts_with("-TRYAGAIN") {
            return (reply, tries);
        }
        tries += 1;
        assert!(Instant::now() < deadline, "still {reply:?}");
    }
}

#[test]
fn a_group_replicates_fails_over_and_catches_up() {
    let mut g = Group::start(3, FLAGS);
    let leader = g.wait_leader(Duration::from_secs(10));
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&i| i != leader).collect();

    // Any node serves any client; a follower forwards and replies the same bytes.
    assert_eq!(g.node(followers[0]).raw().cmd_str(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(g.node(followers[1]).raw().cmd_str(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(g.node(leader).raw().cmd_str(&["GET", "k"]), "$1\r\nv\r\n");
    assert!(
        g.node(followers[0])
            .raw()
            .cmd_str(&["WATCH", "k"])
            .starts_with("-ERR WATCH is not supported")
    );
    let mut multi = g.node(followers[1]).raw();
    assert_eq!(multi.cmd_str(&["MULTI"]), "+OK\r\n");
    assert_eq!(multi.cmd_str(&["INCR", "t"]), "+QUEUED\r\n");
    assert_eq!(multi.cmd_str(&["INCR", "t"]), "+QUEUED\r\n");
    assert_eq!(multi.cmd_str(&["EXEC"]), "*2\r\n:1\r\n:2\r\n");

    // ROLE, INFO replication and Sentinel agree on the leader.
    let leader_port = g.node(leader).port.to_string();
    for n in &g.nodes {
        let mut c = n.raw();
        let master = c.cmd_str(&["SENTINEL", "get-master-addr-by-name", "redlockd"]);
        assert_eq!(
            master,
            format!("*2\r\n$9\r\n127.0.0.1\r\n${}\r\n{leader_port}\r\n", leader_port.len())
        );
        let role = c.cmd_str(&["ROLE"]);
        if n.id == leader {
            assert!(role.starts_with("*3\r\n$6\r\nmaster\r\n"), "{role}");
            assert_eq!(n.info_field("role").as_deref(), Some("master"));
        } else {
            assert!(role.starts_with("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n"), "{role}");
            assert!(role.contains(&format!(":{leader_port}\r\n")), "{role}");
            assert_eq!(n.info_field("master_port").as_deref(), Some(leader_port.as_str()));
            assert_eq!(n.info_field("master_link_status").as_deref(), Some("up"));
        }
        assert_eq!(n.info_field("raft_members").as_deref(), Some("1,2,3"));
        assert!(c.cmd_str(&["SENTINEL", "masters"]).contains("num-other-sentinels"));
        assert_eq!(c.cmd_str(&["SENTINEL", "get-master-addr-by-name", "other"]), "*-1\r\n");
    }

    // Counts are exact and fences strictly increase, whichever node is asked.
    let mut last_fence = 0;
    for i in 0..30 {
        let node = g.node(1 + i % 3);
        assert_eq!(int(&node.raw().cmd_str(&["INCR", "counter"])), i as i64 + 1);
        let key = format!("lock{i}");
        let fence = int(&node.raw().cmd_str(&["LOCK.ACQUIRE", &key, "tok", "PX", "60000"]));
        assert!(fence > last_fence, "fence {fence} after {last_fence}");
        last_fence = fence;
    }
    // Expiry is decided by the leader and replicated.
    assert_eq!(
        g.node(followers[0]).raw().cmd_str(&["SET", "short", "1", "PX", "100"]),
        "+OK\r\n"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(g.node(followers[1]).raw().cmd_str(&["GET", "short"]), "$-1\r\n");
    let before = g.wait_converged(Duration::from_secs(5));
    assert!(!before.is_empty());

    // kill -9 the leader: a new one is elected; writes go on, with
    // -TRYAGAIN only while there is none, and nothing acknowledged is lost.
    g.kill9(leader);
    let survivor = followers[0];
    let (reply, _) = until_ok(&g, survivor, &["INCR", "counter"]);
    assert_eq!(int(&reply), 31);
    let new_leader = g.wait_leader(Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    let fence = int(&until_ok(&g, followers[1], &["LOCK.ACQUIRE", "after", "tok", "PX", "60000"]).0);
    assert!(
        fence > last_fence,
        "fence {fence} after the failover, {last_fence} before"
    );

    // Enough writes for snapshots and log purges while it is down ...
    for i in 0..120 {
        let node = g.node(followers[i % 2]);
        assert_eq!(node.raw().cmd_str(&["SET", &format!("bulk{i}"), "x"]), "+OK\r\n");
    }
    // ... then it restarts from its dir and catches up.
    g.restart(leader);
    let digest = g.wait_converged(Duration::from_secs(15));
    assert_ne!(digest, before);
    assert_eq!(g.node(leader).raft_field("keys").as_deref(), Some("154"));
    assert!(
        g.node(new_leader)
            .raft_field("last_snapshot")
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );
    assert_eq!(
        int(&g.node(leader).raw().cmd_str(&["GET", "counter"]).replace("$2\r\n", ":")),
        31
    );
}

#[test]
fn members_are_added_and_removed() {
    let mut g = Group::start(3, FLAGS);
    let leader = g.wait_leader(Duration::from_secs(10));
    for i in 0..10 {
        assert_eq!(g.node(leader).raw().cmd_str(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
    }
    let peers = g.nodes[0].peers.clone();
    let idx = g.start_extra(4, &peers, FLAGS);
    let raft_addr = format!("127.0.0.1:{}", g.nodes[idx].raft_port);
    assert_eq!(g.node(leader).raw().cmd_str(&["RAFT.ADD", "4", &raft_addr]), "+OK\r\n");
    assert_eq!(g.node(leader).raft_field("members").as_deref(), Some("1,2,3,4"));
    g.wait_converged(Duration::from_secs(10));
    // The new member serves clients like any other.
    assert_eq!(g.node(4).raw().cmd_str(&["GET", "k3"]), "$1\r\nv\r\n");
    assert_eq!(g.node(4).raw().cmd_str(&["SET", "from4", "1"]), "+OK\r\n");

    let removed = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    assert_eq!(
        g.node(leader).raw().cmd_str(&["RAFT.REMOVE", &removed.to_string()]),
        "+OK\r\n"
    );
    let members: Vec<String> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&i| i != removed)
        .map(|i| i.to_string())
        .collect();
    assert_eq!(g.node(leader).raft_field("members"), Some(members.join(",")));
    g.kill9(removed);
    assert_eq!(g.node(4).raw().cmd_str(&["INCR", "n"]), ":1\r\n");
    assert!(
        g.node(leader)
            .raw()
            .cmd_str(&["RAFT.REMOVE", "9"])
            .starts_with("-ERR no such member")
    );
}

#[test]
fn a_paused_leader_never_acknowledges_stale_state() {
    let g = Group::start(3, FLAGS);
    let leader = g.wait_leader(Duration::from_secs(10));
    let follower = [1, 2, 3].into_iter().find(|&i| i != leader).unwrap();
    assert_eq!(g.node(follower).raw().cmd_str(&["INCR", "n"]), ":1\r\n");
    let mut on_old = g.node(leader).raw();
    g.pause(leader, true);
    on_old.send(&common::encode(&[b"INCR", b"n"]));
    // The others elect a new leader and go on without it.
    let (reply, _) = until_ok(&g, follower, &["INCR", "n"]);
    assert_eq!(reply, ":2\r\n");
    g.pause(leader, false);
    // The old leader's client gets a later count or an honest error, never a stale ":2".
    let old = String::from_utf8_lossy(&on_old.read_frame()).into_owned();
    let applied = match old.as_str() {
        ":3\r\n" => true,
        r if r.starts_with("-TRYAGAIN") => false,
        r if r.starts_with("-UNCERTAIN") => {
            let n = g.node(follower).raw().cmd_str(&["GET", "n"]);
            n == "$1\r\n3\r\n"
        }
        r => panic!("the paused leader answered {r:?}"),
    };
    let expected = if applied { "$1\r\n3\r\n" } else { "$1\r\n2\r\n" };
    assert_eq!(g.node(leader).raw().cmd_str(&["GET", "n"]), expected);
    g.wait_converged(Duration::from_secs(10));
}
