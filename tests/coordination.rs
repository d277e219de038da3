//! Coordination primitives, black-box against the real binary: blocking
//! fair LOCK.ACQUIRE ... WAIT (FIFO, disconnects, CLIENT UNBLOCK, grant on
//! release, delete and expiry), client-bound locks (ONCLOSE [GRACE]),
//! lock-delay, semaphores, LOCK.HOLDER / LOCK.LIST, waiter limits and the
//! semaphores' persistence.

mod common;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Raw, Server, eventually};

fn int(reply: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(reply);
    s.trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not an integer: {s:?}"))
}

fn send(c: &mut Raw, args: &[&str]) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.send(&common::encode(&args));
}

/// The number of waiters LOCK.INFO reports for `key`.
fn waiters(c: &mut Raw, key: &str) -> i64 {
    let info = c.cmd_str(&["LOCK.INFO", key]);
    let tail = info.split("waiters\r\n:").nth(1).unwrap_or_else(|| panic!("{info}"));
    tail.trim().parse().unwrap()
}

fn holder(c: &mut Raw, key: &str) -> String {
    let reply = c.cmd_str(&["LOCK.HOLDER", key]);
    if reply == "$-1\r\n" {
        return String::new();
    }
    reply.split("\r\n").nth(2).unwrap().to_string()
}

/// Queue `n` more clients on `key` (each one in line before the next comes).
fn queue(server: &Server, observer: &mut Raw, key: &str, n: usize, extra: &[&str]) -> Vec<Raw> {
    let before = waiters(observer, key);
    let mut clients = Vec::new();
    for i in 0..n {
        let mut w = server.raw();
        let token = format!("w{i}");
        let mut args = vec!["LOCK.ACQUIRE", key, &token, "PX", "60000"];
        args.extend_from_slice(extra);
        send(&mut w, &args);
        assert!(eventually(Duration::from_secs(5), || waiters(observer, key)
            == before + i as i64 + 1));
        clients.push(w);
    }
    clients
}

#[test]
fn waiters_are_granted_in_arrival_order() {
    let server = Server::start();
    let mut c = server.raw();
    let f0 = int(&c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]));
    let mut clients = queue(&server, &mut c, "k", 10, &["WAIT", "0"]);
    assert_eq!(
        c.cmd(&["LOCK.ACQUIRE", "k", "late", "PX", "1000"]),
        b"$-1\r\n",
        "no barging in"
    );
    assert_eq!(c.cmd(&["LOCK.RELEASE", "k", "owner"]), b":1\r\n");
    let mut last = f0;
    for (i, w) in clients.iter_mut().enumerate() {
        let fence = int(&w.read_frame());
        assert!(fence > last, "fences grow");
        last = fence;
        let token = format!("w{i}");
        assert_eq!(holder(&mut c, "k"), token);
        assert_eq!(waiters(&mut c, "k"), 9 - i as i64);
        // Freed by every kind of release: LOCK.RELEASE, DEL, DELIFEQ, DELEX.
        match i % 4 {
            0 => assert_eq!(w.cmd(&["LOCK.RELEASE", "k", &token]), b":1\r\n"),
            1 => assert_eq!(w.cmd(&["DEL", "k"]), b":1\r\n"),
            2 => assert_eq!(w.cmd(&["DELIFEQ", "k", &token]), b":1\r\n"),
            _ => assert_eq!(w.cmd(&["DELEX", "k", "IFEQ", &token]), b":1\r\n"),
        }
    }
    assert_eq!(holder(&mut c, "k"), "");
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "k", "late", "PX", "1000"])[0], b':');
}

#[test]
fn a_waiter_that_disconnects_leaves_the_queue() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]);
    let mut clients = queue(&server, &mut c, "k", 3, &["WAIT", "0"]);
    drop(clients.remove(1));
    assert!(eventually(Duration::from_secs(5), || waiters(&mut c, "k") == 2));
    c.cmd(&["FLUSHDB"]);
    int(&clients[0].read_frame());
    assert_eq!(holder(&mut c, "k"), "w0");
    assert_eq!(clients[0].cmd(&["LOCK.RELEASE", "k", "w0"]), b":1\r\n");
    int(&clients[1].read_frame());
    assert_eq!(holder(&mut c, "k"), "w2", "the disconnected w1 was skipped");
    let info = c.cmd_str(&["INFO", "clients"]);
    assert!(info.contains("blocked_clients:0"), "{info}");
}

#[test]
fn client_unblock_ends_a_wait_with_nil_or_an_error() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]);
    let mut w = server.raw();
    let id = int(&w.cmd(&["CLIENT", "ID"])).to_string();
    assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id]), b":0\r\n", "not blocked yet");
    for (reason, reply) in [
        ("TIMEOUT", &b"$-1\r\n"[..]),
        ("ERROR", b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"),
    ] {
        send(&mut w, &["LOCK.ACQUIRE", "k", "w", "PX", "1000", "WAIT", "0"]);
        assert!(eventually(Duration::from_secs(5), || waiters(&mut c, "k") == 1));
        assert!(c.cmd_str(&["CLIENT", "LIST", "ID", &id]).contains("flags=b"));
        assert_eq!(c.cmd(&["CLIENT", "UNBLOCK", &id, reason]), b":1\r\n");
        assert_eq!(w.read_frame(), reply);
        assert_eq!(waiters(&mut c, "k"), 0);
        assert_eq!(w.cmd(&["PING"]), b"+PONG\r\n", "the connection goes on");
    }
    assert_eq!(
        c.cmd_str(&["CLIENT", "UNBLOCK", &id, "MAYBE"]),
        "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
    assert_eq!(
        c.cmd_str(&["CLIENT", "UNBLOCK", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    // The same replies as redis-server gives a client unblocked in BLPOP.
    let redis = common::RedisServer::start();
    let mut r = redis.raw();
    let mut rw = redis.raw();
    let rid = int(&rw.cmd(&["CLIENT", "ID"])).to_string();
    send(&mut rw, &["BLPOP", "list", "0"]);
    assert!(eventually(Duration::from_secs(5), || r
        .cmd(&["CLIENT", "UNBLOCK", &rid, "ERROR"])
        == b":1\r\n"));
    assert_eq!(rw.read_frame(), b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    send(&mut rw, &["BLPOP", "list", "0"]);
    assert!(eventually(Duration::from_secs(5), || r
        .cmd(&["CLIENT", "UNBLOCK", &rid, "TIMEOUT"])
        == b":1\r\n"));
    assert_eq!(
        rw.read_frame(),
        b"*-1\r\n",
        "BLPOP's own timeout reply (LOCK.ACQUIRE's is a nil bulk)"
    );
}

#[test]
fn a_wait_ends_with_nil_and_a_blocked_client_reads_nothing_meanwhile() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]);
    let mut w = server.raw();
    let started = Instant::now();
    // Pipelined: PING waits for the blocked acquire's reply.
    let mut both = common::encode(&[b"LOCK.ACQUIRE", b"k", b"w", b"PX", b"1000", b"WAIT", b"200"]);
    both.extend(common::encode(&[b"PING"]));
    w.send(&both);
    assert_eq!(w.read_frame(), b"$-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(w.read_frame(), b"+PONG\r\n");
    assert_eq!(waiters(&mut c, "k"), 0);
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "k", "w", "PX", "1000", "WAIT", "-1"]),
        "-ERR timeout is negative\r\n"
    );
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "k", "w", "PX", "1000", "WAIT"]),
        "-ERR syntax error\r\n"
    );
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "k", "w", "PX", "1000", "GRACE", "5"]),
        "-ERR syntax error\r\n",
        "GRACE belongs to ONCLOSE"
    );
}

#[test]
fn an_expired_lock_goes_to_its_first_waiter_at_the_deadline() {
    let server = Server::start();
    let mut c = server.raw();
    let mut w = server.raw();
    for round in 0..3 {
        let key = format!("k{round}");
        let sent = Instant::now();
        c.cmd(&["LOCK.ACQUIRE", &key, "owner", "PX", "300"]);
        let acknowledged = Instant::now();
        send(&mut w, &["LOCK.ACQUIRE", &key, "w", "PX", "1000", "WAIT", "5000"]);
        int(&w.read_frame());
        let granted = Instant::now();
        assert!(
            granted >= sent + Duration::from_millis(300),
            "granted before the deadline"
        );
        assert!(
            granted < acknowledged + Duration::from_millis(1300),
            "granted {:?} after the deadline",
            granted - acknowledged - Duration::from_millis(300)
        );
        assert_eq!(holder(&mut c, &key), "w");
    }
}

#[test]
fn a_client_bound_lock_is_released_when_its_connection_closes() {
    let server = Server::start();
    let mut c = server.raw();
    // Without grace: released at once, to the waiter.
    let mut x = server.raw();
    x.cmd(&["CLIENT", "SETNAME", "worker-x"]);
    int(&x.cmd(&["LOCK.ACQUIRE", "k", "x", "PX", "60000", "ONCLOSE"]));
    let list = c.cmd_str(&["LOCK.LIST", "MATCH", "k"]);
    assert!(list.contains("worker-x"), "{list}");
    c.cmd(&["CLIENT", "SETNAME", "observer"]);
    let observer_id = int(&c.cmd(&["CLIENT", "ID"]));
    c.cmd(&["LOCK.ACQUIRE", "plain", "o", "PX", "60000"]);
    let list = c.cmd_str(&["LOCK.LIST", "MATCH", "pl*", "COUNT", "5"]);
    assert!(
        list.contains(&format!(
            "client-id\r\n:{observer_id}\r\n$11\r\nclient-name\r\n$8\r\nobserver\r\n"
        )),
        "{list}"
    );
    let mut w = queue(&server, &mut c, "k", 1, &["WAIT", "0"]).remove(0);
    drop(x);
    int(&w.read_frame());
    assert_eq!(holder(&mut c, "k"), "w0");
    // With grace: kept for the grace, then released.
    let mut y = server.raw();
    int(&y.cmd(&["LOCK.ACQUIRE", "g", "y", "PX", "60000", "ONCLOSE", "GRACE", "1000"]));
    drop(y);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(holder(&mut c, "g"), "y", "kept during the grace");
    assert!(eventually(Duration::from_secs(3), || holder(&mut c, "g").is_empty()));
    // A client that comes back within the grace extends it back, and holds
    // it bound to its new connection.
    let mut z = server.raw();
    let fence = int(&z.cmd(&["LOCK.ACQUIRE", "e", "z", "PX", "60000", "ONCLOSE", "GRACE", "1000"]));
    drop(z);
    std::thread::sleep(Duration::from_millis(100));
    let mut z2 = server.raw();
    assert_eq!(z2.cmd(&["LOCK.EXTEND", "e", "z", "PX", "60000"]), b":1\r\n");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(holder(&mut c, "e"), "z", "the pending release was cancelled");
    let info = c.cmd_str(&["LOCK.INFO", "e"]);
    assert!(info.contains(&format!("fence\r\n:{fence}\r\n")), "{info}");
    drop(z2);
    assert!(eventually(Duration::from_secs(3), || holder(&mut c, "e").is_empty()));
}

#[test]
fn lock_delay_follows_an_expiry_not_a_release() {
    let server = Server::start_with(&["--lock-delay", "1000"]);
    let mut c = server.raw();
    // A release: grantable at once.
    c.cmd(&["LOCK.ACQUIRE", "r", "a", "PX", "60000"]);
    c.cmd(&["LOCK.RELEASE", "r", "a"]);
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "r", "b", "PX", "1000"])[0], b':');
    // An expiry while held: nobody gets it for 1000 ms after the deadline.
    let start = Instant::now();
    c.cmd(&["LOCK.ACQUIRE", "x", "a", "PX", "100"]);
    let mut w = server.raw();
    send(&mut w, &["LOCK.ACQUIRE", "x", "w", "PX", "1000", "WAIT", "5000"]);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(c.cmd(&["EXISTS", "x"]), b":0\r\n", "expired");
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "x", "b", "PX", "1000"]), b"$-1\r\n", "delayed");
    int(&w.read_frame());
    assert!(start.elapsed() >= Duration::from_millis(1100), "{:?}", start.elapsed());
    assert_eq!(holder(&mut c, "x"), "w");
    // Per lock: DELAY overrides the server's, and CONFIG SET changes that.
    assert_eq!(c.cmd(&["CONFIG", "SET", "lock-delay", "0"]), b"+OK\r\n");
    c.cmd(&["LOCK.ACQUIRE", "d", "a", "PX", "50", "DELAY", "1000"]);
    c.cmd(&["LOCK.ACQUIRE", "n", "a", "PX", "50"]);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "d", "b", "PX", "1000"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "n", "b", "PX", "1000"])[0], b':');
    assert!(eventually(Duration::from_secs(3), || c.cmd(&[
        "LOCK.ACQUIRE",
        "d",
        "b",
        "PX",
        "1000"
    ])[0]
        == b':'));
}

#[test]
fn a_semaphore_never_has_more_holders_than_its_limit() {
    let server = Server::start();
    let port = server.port;
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicUsize::new(0));
    let observer = {
        let (stop, most) = (stop.clone(), most.clone());
        std::thread::spawn(move || {
            let mut o = Raw::connect(port);
            while !stop.load(Ordering::SeqCst) {
                let info = o.cmd_str(&["SEM.INFO", "s"]);
                if let Some(rest) = info.split("holders\r\n*").nth(1) {
                    let n: usize = rest.split("\r\n").next().unwrap().parse().unwrap();
                    most.fetch_max(n, Ordering::SeqCst);
                }
            }
        })
    };
    let inside = Arc::new(AtomicUsize::new(0));
    let contenders: Vec<_> = (0..10)
        .map(|i| {
            let inside = inside.clone();
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let token = format!("t{i}");
                for _ in 0..5 {
                    let reply = c.cmd(&["SEM.ACQUIRE", "s", &token, "LIMIT", "3", "PX", "10000", "WAIT", "0"]);
                    assert_eq!(reply[0], b':', "{}", String::from_utf8_lossy(&reply));
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 3, "{now} holders at once");
                    std::thread::sleep(Duration::from_millis(10));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(c.cmd(&["SEM.RELEASE", "s", &token]), b":1\r\n");
                }
            })
        })
        .collect();
    for t in contenders {
        t.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    observer.join().unwrap();
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "observed {most} holders");
    let mut c = server.raw();
    assert_eq!(c.cmd(&["SEM.INFO", "s"]), b"$-1\r\n", "gone once empty");
    // LIMIT must agree with the live semaphore's; a holder's TTL frees its slot.
    c.cmd(&["SEM.ACQUIRE", "s", "a", "LIMIT", "1", "PX", "2000"]);
    assert_eq!(
        c.cmd_str(&["SEM.ACQUIRE", "s", "b", "LIMIT", "2", "PX", "200"]),
        "-ERR semaphore LIMIT 2 does not match the semaphore's current limit 1\r\n"
    );
    assert_eq!(c.cmd(&["SEM.ACQUIRE", "s", "b", "LIMIT", "1", "PX", "200"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["SEM.EXTEND", "s", "b", "PX", "200"]), b":0\r\n");
    assert_eq!(c.cmd(&["SEM.EXTEND", "s", "a", "PX", "300"]), b":1\r\n");
    let started = Instant::now();
    int(&c.cmd(&["SEM.ACQUIRE", "s", "b", "LIMIT", "1", "PX", "200", "WAIT", "3000"]));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.cmd(&["SEM.RELEASE", "s", "a"]), b":0\r\n");
}

#[test]
fn multi_does_not_block() {
    let server = Server::start();
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]);
    let mut m = server.raw();
    assert_eq!(m.cmd(&["MULTI"]), b"+OK\r\n");
    assert_eq!(
        m.cmd(&["LOCK.ACQUIRE", "k", "w", "PX", "1000", "WAIT", "0"]),
        b"+QUEUED\r\n"
    );
    assert_eq!(
        m.cmd(&["SEM.ACQUIRE", "s", "w", "LIMIT", "1", "PX", "1000", "WAIT", "0"]),
        b"+QUEUED\r\n"
    );
    assert_eq!(
        m.cmd(&["SEM.ACQUIRE", "s", "v", "LIMIT", "1", "PX", "1000", "WAIT", "0"]),
        b"+QUEUED\r\n"
    );
    let exec = m.cmd_str(&["EXEC"]);
    assert!(exec.starts_with("*3\r\n$-1\r\n:"), "{exec}");
    assert!(exec.ends_with("$-1\r\n"), "{exec}");
    assert_eq!(waiters(&mut c, "k"), 0);
    let info = c.cmd_str(&["COMMAND", "INFO", "LOCK.ACQUIRE"]);
    assert!(info.contains("blocking"), "{info}");
}

#[test]
fn waiters_are_bounded() {
    let server = Server::start_with(&["--max-waiters", "3", "--max-waiters-per-key", "2"]);
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "a", "owner", "PX", "60000"]);
    c.cmd(&["LOCK.ACQUIRE", "b", "owner", "PX", "60000"]);
    let _a = queue(&server, &mut c, "a", 2, &["WAIT", "0"]);
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "a", "x", "PX", "1000", "WAIT", "0"]),
        "-ERR max number of waiters for this key reached (max-waiters-per-key)\r\n"
    );
    let _b = queue(&server, &mut c, "b", 1, &["WAIT", "0"]);
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "b", "x", "PX", "1000", "WAIT", "0"]),
        "-ERR max number of waiters reached (max-waiters)\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "SET", "max-waiters", "10"]), b"+OK\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "max-waiters"]),
        b"*2\r\n$11\r\nmax-waiters\r\n$2\r\n10\r\n"
    );
    let _more = queue(&server, &mut c, "b", 1, &["WAIT", "0"]);
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "b", "x", "PX", "1000", "WAIT", "0"]),
        "-ERR max number of waiters for this key reached (max-waiters-per-key)\r\n"
    );
}

#[test]
fn shutdown_does_not_wait_for_blocked_clients() {
    let mut server = Server::start();
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]);
    let _w = queue(&server, &mut c, "k", 3, &["WAIT", "0"]);
    c.send(&common::encode(&[b"SHUTDOWN"]));
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn an_appendonly_restart_keeps_semaphore_holders_and_waiter_grants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let args = ["--appendonly", "yes", "--dir", path];
    let server = Server::start_with(&args);
    let port = server.port;
    let mut c = server.raw();
    let f1 = int(&c.cmd(&["SEM.ACQUIRE", "s", "t1", "LIMIT", "2", "PX", "60000"]));
    let f2 = int(&c.cmd(&["SEM.ACQUIRE", "s", "t2", "LIMIT", "2", "PX", "30000"]));
    c.cmd(&["SEM.ACQUIRE", "s", "t3", "LIMIT", "2", "PX", "60000"]);
    c.cmd(&["SEM.ACQUIRE", "gone", "t", "LIMIT", "1", "PX", "60000"]);
    c.cmd(&["SEM.RELEASE", "gone", "t"]);
    // A waiter granted on release is logged too.
    c.cmd(&["LOCK.ACQUIRE", "l", "a", "PX", "60000"]);
    let mut w = queue(&server, &mut c, "l", 1, &["WAIT", "0"]).remove(0);
    c.cmd(&["LOCK.RELEASE", "l", "a"]);
    let fw = int(&w.read_frame());
    drop((c, w, server));
    for rewrite in [false, true] {
        let server = Server::start_on_port_with(port, &args);
        let mut c = server.raw();
        let info = c.cmd_str(&["SEM.INFO", "s"]);
        assert!(info.contains(&format!("$2\r\nt1\r\n:{f1}\r\n:")), "{info}");
        assert!(info.contains(&format!("$2\r\nt2\r\n:{f2}\r\n:")), "{info}");
        assert!(info.contains("holders\r\n*2\r\n"), "{info}");
        let pttl: i64 = info
            .split(&format!(":{f2}\r\n:"))
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(pttl > 0 && pttl <= 30_000, "deadline kept: {pttl}");
        assert_eq!(c.cmd(&["SEM.INFO", "gone"]), b"$-1\r\n");
        assert!(c.cmd_str(&["LOCK.INFO", "l"]).contains(&format!("fence\r\n:{fw}\r\n")));
        assert_eq!(
            c.cmd(&["SEM.ACQUIRE", "s", "t9", "LIMIT", "2", "PX", "1000"]),
            b"$-1\r\n",
            "both slots still taken"
        );
        if !rewrite {
            common::rewrite_aof(&mut c);
        }
    }
}
