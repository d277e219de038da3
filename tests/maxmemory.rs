//! `maxmemory`: past the limit, commands that may grow memory get Redis's
//! -OOM error while reads, deletes, lock releases and extends, and expiry go
//! on; no lock is evicted; and under an address-space cap the server stays
//! up instead of aborting.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Differential, Raw, RedisServer, Server, eventually};

const OOM: &str = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
const VALUE_SIZE: usize = 100 * 1024;

/// redis-py's Lock scripts: release (GET, DEL) and extend (GET, PTTL, PEXPIRE).
const RELEASE_REDIS_PY: &str = "c3f8721cbb97f72bc19e972846bd7aaf91901658";
const EXTEND_REDIS_PY: &str = "a4e8783852e6b949f9ef3a97212805108459a890";
/// redis-py's LuaLock acquire (SETNX first) and rslock's extend (GET, SET PX).
const ACQUIRE_REDIS_PY: &str = "5688a2541c9edd77746bcd2385e65ff3639a664f";
const EXTEND_RSLOCK: &str = "17a49af0c4b1a9034503fa84f3570f5ca76c4cbf";

/// SET `prefix{i}` to 100 KB values until the server answers -OOM; how
/// many were stored. Any reply but +OK or -OOM fails the test.
fn fill_until_oom(c: &mut Raw, prefix: &str, at_most: usize) -> usize {
    let value = vec![b'v'; VALUE_SIZE];
    for i in 0..at_most {
        let key = format!("{prefix}{i}");
        let reply = c.cmd_bytes(&[b"SET", key.as_bytes(), &value]);
        if reply == OOM.as_bytes() {
            return i;
        }
        assert_eq!(String::from_utf8_lossy(&reply), "+OK\r\n", "SET {key}");
    }
    panic!("no -OOM after {at_most} values of {VALUE_SIZE} bytes");
}

/// A numeric field of INFO.
fn info_field(c: &mut Raw, section: &str, name: &str) -> u64 {
    let text = c.cmd_str(&["INFO", section]);
    let prefix = format!("{name}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name} in {text:?}"))
}

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

#[test]
fn past_maxmemory_growth_is_refused_and_everything_else_goes_on() {
    let server = Server::start_with(&["--maxmemory", "20mb"]);
    let mut c = server.raw();
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "maxmemory"]),
        "*2\r\n$9\r\nmaxmemory\r\n$8\r\n20971520\r\n"
    );
    // Locks taken before the limit is reached.
    for (key, token) in [("lock:a", "tok-a"), ("lock:c", "tok-c"), ("lock:d", "tok-d")] {
        assert_eq!(c.cmd_str(&["SET", key, token, "NX", "PX", "60000"]), "+OK\r\n");
    }
    assert!(
        c.cmd_str(&["LOCK.ACQUIRE", "lock:b", "tok-b", "PX", "60000"])
            .starts_with(':')
    );

    let stored = fill_until_oom(&mut c, "fill:", 1000);
    assert!(stored > 100, "only {stored} values of 100 KB fit under 20 MB");

    // Everything that may grow memory is refused, scripts whose first write is a SET too.
    for cmd in [
        &["SET", "x", "1"][..],
        &["SET", "lock:e", "t", "NX", "PX", "1000"],
        &["SETNX", "x", "1"],
        &["INCR", "n"],
        &["APPEND", "fill:0", "x"],
        &["MSET", "x", "1", "y", "2"],
        &["LOCK.ACQUIRE", "lock:e", "t", "PX", "1000"],
        &["EVALSHA", ACQUIRE_REDIS_PY, "1", "lock:e", "t", "1000"],
        &["EVALSHA", EXTEND_RSLOCK, "1", "lock:c", "tok-c", "60000"],
    ] {
        assert_eq!(c.cmd_str(cmd), OOM, "{cmd:?}");
    }
    // Reads go on.
    let value = c.cmd(&["GET", "fill:0"]);
    assert_eq!(value.len(), VALUE_SIZE + format!("${VALUE_SIZE}\r\n\r\n").len());
    assert_eq!(c.cmd_str(&["GET", "lock:a"]), bulk("tok-a"));
    assert_eq!(c.cmd_str(&["PING"]), "+PONG\r\n");
    // Holders extend (PEXPIRE, LOCK.EXTEND, redis-py's extend script) and release.
    assert_eq!(c.cmd_str(&["PEXPIRE", "lock:a", "60000"]), ":1\r\n");
    assert_eq!(c.cmd_str(&["LOCK.EXTEND", "lock:b", "tok-b", "PX", "60000"]), ":1\r\n");
    assert_eq!(
        c.cmd_str(&["EVALSHA", EXTEND_REDIS_PY, "1", "lock:c", "tok-c", "60000", "1"]),
        ":1\r\n"
    );
    assert_eq!(c.cmd_str(&["DELIFEQ", "lock:a", "tok-a"]), ":1\r\n");
    assert_eq!(c.cmd_str(&["LOCK.RELEASE", "lock:b", "tok-b"]), ":1\r\n");
    assert_eq!(
        c.cmd_str(&["EVALSHA", RELEASE_REDIS_PY, "1", "lock:c", "tok-c"]),
        ":1\r\n"
    );
    assert_eq!(c.cmd_str(&["DELEX", "lock:d", "IFEQ", "tok-d"]), ":1\r\n");

    let used = info_field(&mut c, "memory", "used_memory");
    assert!(used < 22 << 20, "used_memory {used} is far past maxmemory 20 MB");
    let memory = c.cmd_str(&["INFO", "memory"]);
    for line in [
        "maxmemory:20971520\r\n",
        "maxmemory_human:20.00M\r\n",
        "maxmemory_policy:noeviction\r\n",
    ] {
        assert!(memory.contains(line), "{line:?} not in {memory:?}");
    }
    assert!(info_field(&mut c, "memory", "used_memory_peak") >= used);

    // DEL frees memory: SET works again.
    let ten: Vec<String> = (0..10).map(|i| format!("fill:{i}")).collect();
    let mut del = vec!["DEL"];
    del.extend(ten.iter().map(String::as_str));
    assert_eq!(c.cmd_str(&del), ":10\r\n");
    assert_eq!(c.cmd_str(&["SET", "after-del", "v"]), "+OK\r\n");

    // Expiry goes on: PEXPIRE is not refused, and the expirer frees the
    // memory of keys no client touches again.
    for i in 10..stored {
        assert_eq!(c.cmd_str(&["PEXPIRE", &format!("fill:{i}"), "20"]), ":1\r\n");
    }
    assert!(
        eventually(Duration::from_secs(10), || info_field(&mut c, "memory", "used_memory")
            < 4 << 20),
        "expired values were not freed"
    );
    // The expirer frees a batch's memory before it counts the batch.
    assert!(
        eventually(Duration::from_secs(10), || info_field(&mut c, "stats", "expired_keys")
            >= (stored - 10) as u64),
        "expired keys were not counted"
    );
    assert!(fill_until_oom(&mut c, "refill:", 1000) > 100);
}

#[test]
fn config_set_maxmemory_turns_the_limit_on_and_off() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "maxmemory"]),
        "*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
    assert_eq!(c.cmd_str(&["SET", "before", "v"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["CONFIG", "SET", "maxmemory", "1"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["SET", "k", "v"]), OOM);
    assert_eq!(c.cmd_str(&["GET", "before"]), bulk("v"));
    assert_eq!(c.cmd_str(&["CONFIG", "SET", "maxmemory", "0"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["SET", "k", "v"]), "+OK\r\n");
    // redis.conf units.
    for (given, bytes) in [
        ("100mb", "104857600"),
        ("1gb", "1073741824"),
        ("5k", "5000"),
        ("2KB", "2048"),
    ] {
        assert_eq!(c.cmd_str(&["CONFIG", "SET", "maxmemory", given]), "+OK\r\n");
        assert_eq!(
            c.cmd_str(&["CONFIG", "GET", "maxmemory"]),
            format!("*2\r\n$9\r\nmaxmemory\r\n{}", bulk(bytes))
        );
    }
    assert_eq!(
        c.cmd_str(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
        "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - redlockd never evicts keys (an evicted lock is a lock granted twice): the only policy is noeviction\r\n"
    );
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "maxmemory-policy"]),
        "*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoeviction\r\n"
    );
    // The flag takes the same units.
    let flagged = Server::start_with(&["--maxmemory", "1gb"]);
    assert_eq!(
        flagged.raw().cmd_str(&["CONFIG", "GET", "maxmemory"]),
        format!("*2\r\n$9\r\nmaxmemory\r\n{}", bulk("1073741824"))
    );
    let (status, stderr) = Server::start_expecting_failure(&["--maxmemory", "1.5gb"]);
    assert!(!status.success() && stderr.contains("maxmemory"), "{stderr}");
}

/// Both servers always over the limit (1 byte): refusals, MULTI/EXEC and
/// CONFIG replies compared byte for byte.
#[test]
fn differential_oom_replies_and_config() {
    let redis = RedisServer::start_with(&["--maxmemory", "1"]);
    let ours = Server::start_with(&["--maxmemory", "1"]);
    let (r, o) = (redis.raw(), ours.raw());
    let mut d = Differential { redis, ours, r, o };
    d.run(&[
        &["CONFIG", "GET", "maxmemory"],
        &["CONFIG", "GET", "maxmemory-policy"],
        &["SET", "k", "v"],
        &["SET", "k", "v", "NX", "PX", "1000"],
        &["SET", "k"],
        &["SETNX", "k", "v"],
        &["SETEX", "k", "10", "v"],
        &["GETSET", "k", "v"],
        &["MSET", "a", "1"],
        &["MSETNX", "a", "1"],
        &["INCR", "n"],
        &["INCRBYFLOAT", "n", "1.5"],
        &["APPEND", "k", "v"],
        &["SETRANGE", "k", "0", "v"],
        &["GET", "k"],
        &["EXISTS", "k"],
        &["DEL", "k"],
        &["UNLINK", "k"],
        &["PEXPIRE", "k", "100"],
        &["GETDEL", "k"],
        &["GETEX", "k", "PX", "100"],
        &["PING"],
        // Inside MULTI everything but EXEC/DISCARD/QUIT/RESET is refused.
        &["MULTI"],
        &["GET", "k"],
        &["PING"],
        &["NOSUCHCOMMAND"],
        &["MULTI"],
        &["WATCH", "k"],
        &["EXEC"],
        &["MULTI"],
        &["DEL", "k"],
        &["DISCARD"],
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
        &["CONFIG", "SET", "maxmemory-policy", "NOEVICTION"],
        &["CONFIG", "SET", "maxmemory", "abc"],
        &["CONFIG", "SET", "maxmemory", "-1"],
        &["CONFIG", "SET", "maxmemory", "1.5gb"],
        &["CONFIG", "SET", "maxmemory", "3mb"],
        &["CONFIG", "GET", "maxmemory"],
        &["CONFIG", "SET", "maxmemory", "1"],
    ]);
    // A transaction that may grow memory, queued under the limit and run past it.
    d.run(&[
        &["CONFIG", "SET", "maxmemory", "0"],
        &["MULTI"],
        &["SET", "k", "v"],
        &["GET", "k"],
    ]);
    let (mut r2, mut o2) = (d.redis.raw(), d.ours.raw());
    assert_eq!(
        o2.cmd_str(&["CONFIG", "SET", "maxmemory", "1"]),
        r2.cmd_str(&["CONFIG", "SET", "maxmemory", "1"])
    );
    d.run(&[&["EXEC"], &["EXEC"], &["MULTI"], &["PING"], &["EXEC"]]);
    d.run(&[
        &["CONFIG", "SET", "maxmemory", "0"],
        &["SET", "k", "v"],
        &["CONFIG", "GET", "maxmemory"],
    ]);
}

/// Start redlockd with its address space capped (prlimit execs it, so the
/// process is redlockd itself); the server and its port.
fn start_capped(cap: u64, args: &[&str]) -> (Server, u16) {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={cap}"))
        .arg(env!("CARGO_BIN_EXE_redlockd"))
        .args(["--port", "0", "--threads", "2", "--log-level", "warning"])
        .args(args)
        .stderr(Stdio::null());
    let server =
        Server::launch(cmd).unwrap_or_else(|line| panic!("redlockd did not start under a {cap}-byte cap: {line:?}"));
    let port = server.port;
    (server, port)
}

/// Under an address-space cap, without maxmemory a client that writes kills
/// the server (allocation failure aborts the process and every lock is
/// lost); with maxmemory well below the cap it gets -OOM and the server
/// stays up with its locks.
#[test]
fn under_an_address_space_cap_the_server_stays_up() {
    const CAP: u64 = 512 << 20;
    let value = vec![b'v'; VALUE_SIZE];

    let (mut uncapped, port) = start_capped(CAP, &[]);
    let mut c = Raw::connect(port);
    assert_eq!(c.cmd_str(&["PING"]), "+PONG\r\n");
    let mut died = false;
    for i in 0..2 * CAP as usize / VALUE_SIZE {
        let request = common::encode(&[b"SET", format!("fill:{i}").as_bytes(), &value]);
        if c.stream.write_all(&request).is_err() || c.read_until_closed_or_frame() != b"+OK\r\n" {
            died = true;
            break;
        }
    }
    assert!(died, "{} bytes of values did not exhaust a {CAP}-byte cap", 2 * CAP);
    let status = uncapped.child().wait().expect("wait");
    assert!(!status.success(), "the server should have aborted: {status}");

    let (mut capped, port) = start_capped(CAP, &["--maxmemory", "64mb"]);
    let mut c = Raw::connect(port);
    assert_eq!(c.cmd_str(&["SET", "lock", "holder", "NX", "PX", "60000"]), "+OK\r\n");
    let stored = fill_until_oom(&mut c, "fill:", 2 * CAP as usize / VALUE_SIZE);
    assert!(stored > 300, "only {stored} values of 100 KB fit under 64 MB");
    // Keep pushing: every further write is refused, none kills the server.
    for i in 0..50 {
        assert_eq!(
            c.cmd_bytes(&[b"SET", format!("more:{i}").as_bytes(), &value]),
            OOM.as_bytes()
        );
    }
    assert!(
        capped.child().try_wait().expect("try_wait").is_none(),
        "the server exited"
    );
    let mut fresh = Raw::connect(port);
    assert_eq!(fresh.cmd_str(&["PING"]), "+PONG\r\n");
    assert_eq!(fresh.cmd_str(&["GET", "lock"]), bulk("holder"));
    assert_eq!(fresh.cmd_str(&["DELIFEQ", "lock", "holder"]), ":1\r\n");
}
