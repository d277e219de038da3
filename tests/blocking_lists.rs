//! BLPOP, BRPOP, BLMOVE and BRPOPLPUSH against redis-server, byte for byte,
//! in RESP2 and RESP3: which blocked client gets which element (longest
//! waiting first, a client blocked on several keys served once), pushes
//! inside MULTI waking waiters after the EXEC, BLMOVE chains, timeouts with
//! decimals, the errors, CLIENT UNBLOCK and a waiter that disconnects; and
//! (redlockd alone) served waiters' pops surviving a restart.

mod common;
use std::time::{Duration, Instant};

use common::{Differential, Pair, Raw};

/// One client on each server.
/// A connection to each server, in RESP3 if `resp3`.
fn pair(d: &Differential, resp3: bool) -> Pair {
    let mut p = Pair::new(&d.redis, &d.ours);
    if resp3 {
        // The HELLO replies name different servers: not compared.
        p.send_only(&["HELLO", "3"]);
    }
    p
}

/// CLIENT UNBLOCK of the client with ids (`rid` on redis-server, `oid`
/// on redlockd), with `how` (TIMEOUT, ERROR) if given; its reply compared.
fn unblock(ctl: &mut Pair, (rid, oid): (&str, &str), how: Option<&str>, what: &str) {
    for (c, id) in [(&mut ctl.r, rid), (&mut ctl.o, oid)] {
        let mut args: Vec<&[u8]> = vec![b"CLIENT", b"UNBLOCK", id.as_bytes()];
        args.extend(how.map(str::as_bytes));
        c.send(&common::encode(&args));
    }
    ctl.reply(what);
}

/// `blocked_clients` of INFO on one server.
fn blocked_on(c: &mut Raw) -> usize {
    let info = c.cmd_str(&["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("blocked_clients")
}

/// Wait until both servers count `n` blocked clients (so the next one
/// blocks after them).
fn wait_blocked(ctl: &mut Pair, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_on(&mut ctl.r) != n || blocked_on(&mut ctl.o) != n {
        assert!(Instant::now() < deadline, "never {n} blocked clients");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Block `w` with `args`, after the `before` clients already blocked.
fn block(ctl: &mut Pair, w: &mut Pair, args: &[&str], before: usize) {
    w.send(args);
    wait_blocked(ctl, before + 1);
}

fn setup(resp3: bool) -> (Differential, Pair) {
    let d = Differential::new();
    let ctl = pair(&d, resp3);
    (d, ctl)
}

fn both(test: impl Fn(bool)) {
    test(false);
    test(true);
}

#[test]
fn waiters_are_served_longest_waiting_first() {
    both(|resp3| {
        let (d, mut ctl) = setup(resp3);
        let mut w: Vec<Pair> = (0..4).map(|_| pair(&d, resp3)).collect();
        block(&mut ctl, &mut w[0], &["BLPOP", "q", "0"], 0);
        block(&mut ctl, &mut w[1], &["BLPOP", "q", "0"], 1);
        block(&mut ctl, &mut w[2], &["BRPOP", "q", "0"], 2);
        block(&mut ctl, &mut w[3], &["BRPOP", "q", "0"], 3);
        ctl.check(&["RPUSH", "q", "a", "b", "c"]);
        for (i, c) in w.iter_mut().take(3).enumerate() {
            c.reply(&format!("waiter {i}"));
        }
        wait_blocked(&mut ctl, 1);
        ctl.check(&["LPUSH", "q", "d", "e"]);
        w[3].reply("last waiter");
        ctl.check(&["LRANGE", "q", "0", "-1"]);
        // Immediate pops: the first non-empty key in argument order.
        ctl.check(&["RPUSH", "k2", "x"]);
        ctl.check(&["RPUSH", "k1", "y"]);
        ctl.check(&["BLPOP", "none", "k2", "k1", "0"]);
        ctl.check(&["BRPOP", "k1", "k2", "0"]);
        ctl.check(&["BLPOP", "k1", "k2", "0.01"]);
    });
}

#[test]
fn a_client_blocked_on_several_keys_is_served_once() {
    both(|resp3| {
        let (d, mut ctl) = setup(resp3);
        let mut w: Vec<Pair> = (0..3).map(|_| pair(&d, resp3)).collect();
        block(&mut ctl, &mut w[0], &["BLPOP", "k1", "k2", "k1", "0"], 0);
        block(&mut ctl, &mut w[1], &["BLPOP", "k2", "k1", "0"], 1);
        block(&mut ctl, &mut w[2], &["BRPOP", "k1", "0"], 2);
        ctl.check(&["RPUSH", "k2", "x", "y"]);
        w[0].reply("first waiter, on k2");
        w[1].reply("second waiter, on k2");
        wait_blocked(&mut ctl, 1);
        ctl.check(&["RPUSH", "k1", "z"]);
        w[2].reply("third waiter, on k1");
        ctl.check(&["EXISTS", "k1", "k2"]);
        // A list renamed onto the key serves its waiters too.
        block(&mut ctl, &mut w[0], &["BLPOP", "k3", "0"], 0);
        ctl.check(&["RPUSH", "tmp", "r1", "r2"]);
        ctl.check(&["RENAME", "tmp", "k3"]);
        w[0].reply("waiter served by RENAME");
        ctl.check(&["LRANGE", "k3", "0", "-1"]);
    });
}

#[test]
fn pushes_in_multi_wake_waiters_after_exec() {
    both(|resp3| {
        let (d, mut ctl) = setup(resp3);
        let mut w: Vec<Pair> = (0..2).map(|_| pair(&d, resp3)).collect();
        block(&mut ctl, &mut w[0], &["BLPOP", "m", "0"], 0);
        block(&mut ctl, &mut w[1], &["BLPOP", "m", "0"], 1);
        ctl.check(&["MULTI"]);
        ctl.check(&["RPUSH", "m", "1", "2", "3"]);
        ctl.check(&["LPOP", "m"]);
        ctl.check(&["LLEN", "m"]);
        ctl.check(&["EXEC"]);
        w[0].reply("first waiter after EXEC");
        w[1].reply("second waiter after EXEC");
        ctl.check(&["LLEN", "m"]);
        // A push that EXEC undoes wakes nobody.
        block(&mut ctl, &mut w[0], &["BLPOP", "m2", "0.3"], 0);
        ctl.check(&["MULTI"]);
        ctl.check(&["RPUSH", "m2", "1"]);
        ctl.check(&["DEL", "m2"]);
        ctl.check(&["EXEC"]);
        w[0].reply("waiter whose key was pushed and deleted in one EXEC");
        // Inside MULTI the blocking commands do not block.
        ctl.check(&["MULTI"]);
        ctl.check(&["BLPOP", "empty", "0"]);
        ctl.check(&["BRPOP", "empty", "0"]);
        ctl.check(&["BLMOVE", "empty", "dst", "LEFT", "RIGHT", "0"]);
        ctl.check(&["BRPOPLPUSH", "empty", "dst", "0"]);
        ctl.check(&["RPUSH", "full", "a", "b"]);
        ctl.check(&["BLPOP", "empty", "full", "0"]);
        ctl.check(&["BLMOVE", "full", "dst", "LEFT", "RIGHT", "0"]);
        ctl.check(&["EXEC"]);
    });
}

#[test]
fn blmove_chains_and_its_destination_type() {
    both(|resp3| {
        let (d, mut ctl) = setup(resp3);
        let mut w: Vec<Pair> = (0..4).map(|_| pair(&d, resp3)).collect();
        block(&mut ctl, &mut w[0], &["BLMOVE", "src", "mid", "LEFT", "RIGHT", "0"], 0);
        block(&mut ctl, &mut w[1], &["BRPOPLPUSH", "mid", "end", "0"], 1);
        block(&mut ctl, &mut w[2], &["BLPOP", "end", "0"], 2);
        ctl.check(&["RPUSH", "src", "v1", "v2"]);
        w[0].reply("BLMOVE src → mid");
        w[1].reply("BRPOPLPUSH mid → end");
        w[2].reply("BLPOP end");
        ctl.check(&["LRANGE", "src", "0", "-1"]);
        ctl.check(&["EXISTS", "mid", "end"]);
        // A destination that became another type: the waiter gets the error.
        block(&mut ctl, &mut w[3], &["BLMOVE", "s2", "str", "RIGHT", "LEFT", "0"], 0);
        ctl.check(&["SET", "str", "x"]);
        ctl.check(&["RPUSH", "s2", "e"]);
        w[3].reply("BLMOVE onto a string");
        ctl.check(&["LRANGE", "s2", "0", "-1"]);
        // At once: an element is moved, the destination checked first.
        ctl.check(&["BLMOVE", "s2", "str", "RIGHT", "LEFT", "0"]);
        ctl.check(&["BLMOVE", "s2", "s2", "RIGHT", "LEFT", "0"]);
        ctl.check(&["BLMOVE", "s2", "other", "RIGHT", "LEFT", "0"]);
        ctl.check(&["LRANGE", "other", "0", "-1"]);
    });
}

#[test]
fn timeouts_and_errors() {
    both(|resp3| {
        let (_d, mut ctl) = setup(resp3);
        for args in [
            &["BLPOP", "nothing", "0.05"][..],
            &["BRPOP", "nothing", "other", ".02"],
            &["BLMOVE", "nothing", "dst", "LEFT", "LEFT", "0.01"],
            &["BRPOPLPUSH", "nothing", "dst", "1e-2"],
            &["BLPOP", "nothing", "-1"],
            &["BLPOP", "nothing", "-0.5"],
            &["BLPOP", "nothing", "abc"],
            &["BLPOP", "nothing", ""],
            &["BLPOP", "nothing", " 1"],
            &["BLPOP", "nothing", "1x"],
            &["BLPOP", "nothing", "nan"],
            &["BLPOP", "nothing", "inf"],
            &["BLPOP", "nothing", "1e16"],
            &["BLPOP", "nothing", "1e99999"],
            &["BLMOVE", "nothing", "dst", "LEFT", "LEFT", "-1"],
            &["BLMOVE", "nothing", "dst", "UP", "LEFT", "x"],
            &["BLMOVE", "nothing", "dst", "LEFT", "DOWN", "0"],
            &["BRPOPLPUSH", "nothing", "dst", "x"],
            &["BLPOP", "nothing"],
            &["BLPOP"],
            &["BLMOVE", "a", "b", "LEFT", "LEFT"],
            &["BRPOPLPUSH", "a", "b"],
            &["SET", "str", "v"],
            &["BLPOP", "nothing", "str", "0"],
            &["BLPOP", "str", "nothing", "x"],
            &["BRPOP", "nothing", "str", "0.01"],
            &["BLMOVE", "str", "dst", "LEFT", "LEFT", "0"],
            &["BRPOPLPUSH", "str", "dst", "0"],
            &["RPUSH", "l", "1"],
            &["BRPOPLPUSH", "l", "str", "0"],
            &["LLEN", "l"],
        ] {
            ctl.check(args);
        }
    });
}

/// Each server's own id for a client.
fn ids(p: &mut Pair) -> (String, String) {
    let id = |c: &mut Raw| {
        let r = c.cmd_str(&["CLIENT", "ID"]);
        r.trim_start_matches(':').trim().to_string()
    };
    (id(&mut p.r), id(&mut p.o))
}

#[test]
fn client_unblock_and_a_waiter_that_disconnects() {
    both(|resp3| {
        let (d, mut ctl) = setup(resp3);
        let mut w: Vec<Pair> = (0..3).map(|_| pair(&d, resp3)).collect();
        let (rid, oid) = ids(&mut w[0]);
        for how in ["TIMEOUT", "ERROR"] {
            for blocking in [&["BLPOP", "u", "0"][..], &["BLMOVE", "u", "v", "RIGHT", "LEFT", "0"]] {
                block(&mut ctl, &mut w[0], blocking, 0);
                unblock(&mut ctl, (&rid, &oid), Some(how), "CLIENT UNBLOCK");
                w[0].reply(&format!("{} unblocked with {how}", blocking[0]));
            }
        }
        unblock(&mut ctl, (&rid, &oid), None, "CLIENT UNBLOCK of a client not blocked");
        // The unblocked client is served normally afterwards.
        w[0].check(&["PING"]);

        // A waiter that goes away leaves its queue.
        block(&mut ctl, &mut w[1], &["BLPOP", "gone", "0"], 0);
        block(&mut ctl, &mut w[2], &["BLPOP", "gone", "0"], 1);
        let gone = w.remove(1);
        drop(gone);
        wait_blocked(&mut ctl, 1);
        ctl.check(&["RPUSH", "gone", "a", "b"]);
        w[1].reply("the waiter behind the one that disconnected");
        ctl.check(&["LRANGE", "gone", "0", "-1"]);
    });
}

/// What a served waiter popped or moved is in the append-only file: after
/// a restart the lists are as the clients saw them.
#[test]
fn served_waiters_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    let args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", &path];
    let ours = common::Server::start_with(&args);
    let mut ctl = ours.raw();
    let mut mover = ours.raw();
    let mut popper = ours.raw();
    let wait_for = |ctl: &mut Raw, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while blocked_on(ctl) != n {
            assert!(Instant::now() < deadline, "never {n} blocked clients");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    mover.send(&common::encode(&[b"BLMOVE", b"src", b"dst", b"LEFT", b"RIGHT", b"0"]));
    wait_for(&mut ctl, 1);
    popper.send(&common::encode(&[b"BRPOP", b"q", b"0"]));
    wait_for(&mut ctl, 2);
    assert_eq!(ctl.cmd_str(&["RPUSH", "src", "a", "b"]), ":2\r\n");
    assert_eq!(String::from_utf8(mover.read_frame()).unwrap(), "$1\r\na\r\n");
    assert_eq!(ctl.cmd_str(&["RPUSH", "q", "x", "y"]), ":2\r\n");
    assert_eq!(
        String::from_utf8(popper.read_frame()).unwrap(),
        "*2\r\n$1\r\nq\r\n$1\r\ny\r\n"
    );
    drop(ours);
    let again = common::Server::start_with(&args);
    let mut c = again.raw();
    assert_eq!(c.cmd_str(&["LRANGE", "src", "0", "-1"]), "*1\r\n$1\r\nb\r\n");
    assert_eq!(c.cmd_str(&["LRANGE", "dst", "0", "-1"]), "*1\r\n$1\r\na\r\n");
    assert_eq!(c.cmd_str(&["LRANGE", "q", "0", "-1"]), "*1\r\n$1\r\nx\r\n");
}
