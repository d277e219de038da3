//! Native lock commands, by hand (Redis 7 has none of them to compare with):
//! SET IFEQ/IFNE/IFDEQ/IFDNE, DELEX, DIGEST, DELIFEQ, LOCK.*, FENCE.*.

mod common;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, eventually};

#[test]
fn set_ifeq_is_an_owner_checked_extend() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["SET", "lock", "tok", "NX", "PX", "10000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "lock", "tok", "IFEQ", "tok", "PX", "60000"]), b"+OK\r\n");
    let pttl = c.cmd_str(&["PTTL", "lock"]);
    let ms: i64 = pttl.trim_start_matches(':').trim().parse().unwrap();
    assert!(ms > 10_000 && ms <= 60_000, "{pttl}");
    assert_eq!(
        c.cmd(&["SET", "lock", "thief", "IFEQ", "wrong", "PX", "60000"]),
        b"$-1\r\n"
    );
    assert_eq!(c.cmd(&["GET", "lock"]), b"$3\r\ntok\r\n");
    // IFEQ never creates a missing key; IFNE does.
    assert_eq!(c.cmd(&["SET", "fresh", "v", "IFEQ", "v"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["EXISTS", "fresh"]), b":0\r\n");
    assert_eq!(c.cmd(&["SET", "fresh", "v", "IFNE", "x"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "fresh", "w", "IFNE", "v"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["SET", "fresh", "w", "IFNE", "zzz"]), b"+OK\r\n");
    // GET returns the old value whether or not the condition held.
    assert_eq!(c.cmd(&["SET", "fresh", "x", "IFEQ", "nope", "GET"]), b"$1\r\nw\r\n");
    assert_eq!(c.cmd(&["SET", "fresh", "x", "IFEQ", "w", "GET"]), b"$1\r\nw\r\n");
    assert_eq!(c.cmd(&["GET", "fresh"]), b"$1\r\nx\r\n");
    assert_eq!(c.cmd(&["SET", "absent", "x", "IFEQ", "w", "GET"]), b"$-1\r\n");
    // Conflicting conditions and a condition without its value.
    for bad in [
        &["SET", "k", "v", "NX", "IFEQ", "v"][..],
        &["SET", "k", "v", "IFEQ", "v", "XX"],
        &["SET", "k", "v", "IFEQ", "v", "IFNE", "w"],
        &["SET", "k", "v", "IFDEQ", "abc", "IFEQ", "v"],
        &["SET", "k", "v", "IFEQ"],
    ] {
        assert_eq!(c.cmd_str(bad), "-ERR syntax error\r\n", "{bad:?}");
    }
    // KEEPTTL with IFEQ keeps the lock's deadline.
    assert_eq!(c.cmd(&["SET", "lock", "tok2", "IFEQ", "tok", "KEEPTTL"]), b"+OK\r\n");
    assert!(c.cmd_str(&["PTTL", "lock"]).starts_with(":"));
    assert_ne!(c.cmd_str(&["PTTL", "lock"]), ":-1\r\n");
}

#[test]
fn digest_and_digest_conditions() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["DIGEST", "none"]), b"$-1\r\n");
    c.cmd(&["SET", "empty", ""]);
    // XXH3-64 of the empty string (the reference implementation's test vector).
    assert_eq!(c.cmd(&["DIGEST", "empty"]), b"$16\r\n2d06800538d394c2\r\n");
    c.cmd(&["SET", "k", "hello"]);
    let d = c.cmd_str(&["DIGEST", "k"]);
    let digest = d.lines().nth(1).unwrap().to_string();
    assert_eq!(digest.len(), 16);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(c.cmd(&["SET", "k", "v2", "IFDEQ", "0000000000000000"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v2", "IFDEQ", &digest]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "k", "v3", "IFDNE", &digest]), b"+OK\r\n");
    let d3 = c.cmd_str(&["DIGEST", "k"]).lines().nth(1).unwrap().to_string();
    assert_eq!(c.cmd(&["SET", "k", "v4", "IFDNE", &d3]), b"$-1\r\n");
    c.cmd(&["SET", "k", "hello"]);
    assert_eq!(c.cmd(&["DELEX", "k", "IFDNE", &digest]), b":0\r\n");
    assert_eq!(c.cmd(&["DELEX", "k", "IFDEQ", &digest.to_uppercase()]), b":1\r\n");
}

#[test]
fn delex_and_delifeq() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["SET", "k", "tok"]);
    assert_eq!(c.cmd(&["DELEX", "k", "IFEQ", "other"]), b":0\r\n");
    assert_eq!(c.cmd(&["DELEX", "k", "IFNE", "tok"]), b":0\r\n");
    assert_eq!(c.cmd(&["DELEX", "k", "IFEQ", "tok"]), b":1\r\n");
    assert_eq!(c.cmd(&["DELEX", "k", "IFEQ", "tok"]), b":0\r\n");
    assert_eq!(
        c.cmd(&["DELEX", "k", "IFNE", "tok"]),
        b":0\r\n",
        "a missing key is never deleted"
    );
    c.cmd(&["SET", "k", "tok"]);
    assert_eq!(c.cmd(&["DELEX", "k", "IFNE", "x"]), b":1\r\n");
    c.cmd(&["SET", "k", "tok"]);
    assert_eq!(c.cmd(&["DELEX", "k"]), b":1\r\n");
    assert_eq!(c.cmd(&["DELEX", "k"]), b":0\r\n");
    assert_eq!(c.cmd_str(&["DELEX", "k", "IFEQ"]), "-ERR syntax error\r\n");
    assert_eq!(c.cmd_str(&["DELEX", "k", "FOO", "x"]), "-ERR syntax error\r\n");
    assert_eq!(
        c.cmd_str(&["DELEX", "k", "IFEQ", "a", "IFNE", "b"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.cmd_str(&["DELEX"]),
        "-ERR wrong number of arguments for 'delex' command\r\n"
    );
    c.cmd_bytes(&[b"SET", b"bin", b"\x00\xff\x01"]);
    assert_eq!(c.cmd_bytes(&[b"DELIFEQ", b"bin", b"\x00\xff\x02"]), b":0\r\n");
    assert_eq!(c.cmd_bytes(&[b"DELIFEQ", b"bin", b"\x00\xff\x01"]), b":1\r\n");
    assert_eq!(
        c.cmd_str(&["DELIFEQ", "bin"]),
        "-ERR wrong number of arguments for 'delifeq' command\r\n"
    );
}

fn int_of(reply: &str) -> i64 {
    reply
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not an integer reply: {reply:?}"))
}

#[test]
fn lock_family_grants_increasing_fences() {
    let server = Server::start();
    let mut c = server.raw();
    let f1 = int_of(&c.cmd_str(&["LOCK.ACQUIRE", "a", "t1", "PX", "10000"]));
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "a", "t2", "PX", "10000"]), b"$-1\r\n");
    assert_eq!(
        int_of(&c.cmd_str(&["LOCK.ACQUIRE", "a", "t1", "PX", "20000"])),
        f1,
        "re-acquire keeps the fence"
    );
    let f2 = int_of(&c.cmd_str(&["LOCK.ACQUIRE", "b", "t1", "PX", "10000"]));
    assert!(f2 > f1);
    assert_eq!(
        c.cmd(&["GET", "a"]),
        b"$2\r\nt1\r\n",
        "a lock key is a plain string key"
    );
    assert_eq!(c.cmd(&["LOCK.EXTEND", "a", "t2", "PX", "30000"]), b":0\r\n");
    assert_eq!(c.cmd(&["LOCK.EXTEND", "a", "t1", "PX", "30000"]), b":1\r\n");
    let info = c.cmd_str(&["LOCK.INFO", "a"]);
    assert!(
        info.starts_with("*8\r\n$5\r\ntoken\r\n$2\r\nt1\r\n$3\r\nttl\r\n:"),
        "{info}"
    );
    assert!(
        info.ends_with(&format!("$5\r\nfence\r\n:{f1}\r\n$7\r\nwaiters\r\n:0\r\n")),
        "{info}"
    );
    assert_eq!(c.cmd(&["LOCK.RELEASE", "a", "t2"]), b":0\r\n");
    assert_eq!(c.cmd(&["LOCK.RELEASE", "a", "t1"]), b":1\r\n");
    assert_eq!(c.cmd(&["LOCK.INFO", "a"]), b"$-1\r\n");
    let f3 = int_of(&c.cmd_str(&["LOCK.ACQUIRE", "a", "t2", "PX", "30"]));
    assert!(f3 > f2, "a new grant of a released key has a greater fence");
    assert!(eventually(Duration::from_secs(5), || c.cmd(&["EXISTS", "a"]) == b":0\r\n"));
    let f4 = int_of(&c.cmd_str(&["LOCK.ACQUIRE", "a", "t2", "PX", "1000"]));
    assert!(f4 > f3, "even for the same token after expiry");
    c.cmd(&["HELLO", "3"]);
    let info = c.cmd_str(&["LOCK.INFO", "a"]);
    assert!(info.starts_with("%4\r\n"), "{info}");
    c.cmd(&["SET", "plain", "v"]);
    assert!(
        c.cmd_str(&["LOCK.INFO", "plain"])
            .ends_with("$5\r\nfence\r\n_\r\n$7\r\nwaiters\r\n:0\r\n")
    );
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "x", "t", "PX", "0"]),
        "-ERR invalid expire time in 'lock.acquire' command\r\n"
    );
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "x", "t", "QX", "10"]),
        "-ERR syntax error\r\n"
    );
}

#[test]
fn fences_survive_a_restart() {
    let first = {
        let server = Server::start();
        let mut c = server.raw();
        int_of(&c.cmd_str(&["LOCK.ACQUIRE", "k", "t", "PX", "1000"]))
    };
    let server = Server::start();
    let mut c = server.raw();
    let second = int_of(&c.cmd_str(&["LOCK.ACQUIRE", "k", "t", "PX", "1000"]));
    assert!(second > first, "{second} <= {first}");
    let raised = int_of(&c.cmd_str(&["FENCE.RAISE", &(second + 1_000_000).to_string()]));
    assert_eq!(raised, second + 1_000_000);
    let next = int_of(&c.cmd_str(&["LOCK.ACQUIRE", "k2", "t", "PX", "1000"]));
    assert!(next > raised);
}

#[test]
fn fenced_writes_reject_stale_tokens() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["FENCE.SET", "data", "v1", "10"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["FENCE.SET", "data", "v2", "10"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["FENCE.SET", "data", "v3", "12"]), b"+OK\r\n");
    assert_eq!(
        c.cmd_str(&["FENCE.SET", "data", "stale", "11"]),
        "-FENCED stale token 11, key already accepted token 12\r\n"
    );
    assert_eq!(c.cmd(&["GET", "data"]), b"$2\r\nv3\r\n");
    assert_eq!(c.cmd(&["FENCE.INCRBY", "ctr", "1", "5"]), b":1\r\n");
    assert_eq!(c.cmd(&["FENCE.INCRBY", "ctr", "1", "7"]), b":2\r\n");
    assert_eq!(
        c.cmd_str(&["FENCE.INCRBY", "ctr", "1", "6"]),
        "-FENCED stale token 6, key already accepted token 7\r\n"
    );
    assert_eq!(c.cmd(&["GET", "ctr"]), b"$1\r\n2\r\n");
    assert_eq!(
        c.cmd_str(&["FENCE.INCRBY", "ctr", "x", "8"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.cmd_str(&["FENCE.SET", "ctr", "v", "-1"]),
        "-ERR value is not an integer or out of range\r\n"
    );
}

/// Many clients contend for one lock with SET NX PX / DELEX IFEQ; the
/// critical section checks that it is alone.
#[test]
fn native_lock_commands_give_mutual_exclusion() {
    check_mutual_exclusion(Server::start());
}

/// The same with explicit settings: two workers executing commands in
/// parallel (the shard locks keep them atomic, even on a one-core machine
/// where the default would be a single worker), and a single event loop.
#[test]
fn native_lock_commands_give_mutual_exclusion_on_each_threading_model() {
    check_mutual_exclusion(Server::start_with(&["--threads", "2"]));
    check_mutual_exclusion(Server::start_with(&["--threads", "1"]));
}

fn check_mutual_exclusion(server: Server) {
    let overlaps = Arc::new(AtomicUsize::new(0));
    let grants = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (overlaps, grants, port) = (overlaps.clone(), grants.clone(), server.port);
            std::thread::spawn(move || {
                let mut c = common::Raw::connect(port);
                let token = format!("token-{t}");
                let mut mine = 0;
                for _ in 0..3000 {
                    if mine == 100 {
                        break;
                    }
                    if c.cmd(&["SET", "mutex", &token, "NX", "PX", "10000"]) != b"+OK\r\n" {
                        continue;
                    }
                    if c.cmd(&["SET", "inside", &token, "NX"]) != b"+OK\r\n" {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    c.cmd(&["INCR", "counter"]);
                    c.cmd(&["DELEX", "inside", "IFEQ", &token]);
                    assert_eq!(c.cmd(&["DELEX", "mutex", "IFEQ", &token]), b":1\r\n");
                    grants.fetch_add(1, Ordering::SeqCst);
                    mine += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    let g = grants.load(Ordering::SeqCst);
    assert!(g > 0);
    assert_eq!(
        server.raw().cmd_str(&["GET", "counter"]),
        format!("${}\r\n{g}\r\n", g.to_string().len())
    );
}
