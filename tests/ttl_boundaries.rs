//! TTL boundaries: every command that takes an expiry, fed the values where
//! Redis's validation and arithmetic change (0, ±1, the i64 limits, the
//! seconds-to-ms limit, the largest TTL that can still be added to now),
//! each followed by EXISTS/PTTL/TTL/PEXPIRETIME/EXPIRETIME, all compared
//! with redis-server. Replies are compared byte for byte, except readings
//! that depend on the moment (a TTL counting down, a deadline taken from
//! "now"), which must agree within a tolerance. Then what Redis has no
//! counterpart for: LOCK.* with huge TTLs, far deadlines through the AOF,
//! and far deadlines beside the active expirer.

mod common;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Differential, Raw, Server, eventually};

/// How far two readings of a moving time may differ (the two servers are
/// asked one after the other), in ms; one second for readings in seconds.
const MS_TOLERANCE: u64 = 500;

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn int_of(reply: &[u8]) -> Option<i64> {
    std::str::from_utf8(reply)
        .ok()?
        .strip_prefix(':')?
        .trim_end()
        .parse()
        .ok()
}

/// The values every TTL argument is tried with.
fn boundary_values() -> Vec<String> {
    let max = i64::MAX;
    // The largest relative TTL Redis accepts is LLONG_MAX - now (in ms), or
    // that over 1000 in seconds; step well clear of it on both sides so the
    // moment of the test cannot change the outcome.
    let limit_ms = max - wall_ms();
    let mut values: Vec<i64> = vec![
        0,
        -1,
        1,
        max,
        max / 1000,
        max / 1000 + 1,
        9_000_000_000_000_000_000,
        10_000_000_000_000_000,
        i64::MIN,
        i64::MIN / 1000,
        i64::MIN / 1000 - 1,
        limit_ms - 10_000,
        limit_ms + 10_000,
        limit_ms / 1000 - 10,
        limit_ms / 1000 + 10,
    ];
    values.dedup();
    let mut out: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    // Not integers: the error must be the integer one, not the expiry one.
    out.extend(["9223372036854775808", "1.5", ""].map(String::from));
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Missing,
    Persistent,
    /// A relative TTL of about a day: readings of it move.
    NearTtl,
    /// An absolute deadline far beyond the monotonic range.
    FarTtl,
}

const ALL_STATES: [State; 4] = [State::Missing, State::Persistent, State::NearTtl, State::FarTtl];

fn prepare(d: &mut Differential, state: State) {
    d.check(&["DEL", "k"]);
    if state != State::Missing {
        d.check(&["SET", "k", "v"]);
    }
    match state {
        State::NearTtl => d.check(&["PEXPIRE", "k", "86400000"]),
        State::FarTtl => d.check(&["PEXPIREAT", "k", "9000000000000000000"]),
        _ => Vec::new(),
    };
}

/// Whether a reply says the key's deadline may have changed.
fn changed(reply: &[u8]) -> bool {
    !(reply.starts_with(b"-") || reply == b":0\r\n" || reply == b"$-1\r\n" || reply == b"_\r\n")
}

/// Run `cmd` on both servers in `state`, then compare what it left. A
/// deadline is read exactly when nothing relative to now can have set it.
fn case(d: &mut Differential, state: State, cmd: &[&str], absolute: bool) {
    prepare(d, state);
    let reply = d.check(cmd);
    // A 1 ms TTL may or may not have run out between the two servers'
    // readings: let it run out on both.
    if !absolute && changed(&reply) && cmd.contains(&"1") {
        std::thread::sleep(Duration::from_millis(20));
    }
    let exact = state != State::NearTtl && (absolute || !changed(&reply));
    let what = format!("after {cmd:?} on a key {state:?}");
    d.check(&["EXISTS", "k"]);
    d.check(&["GET", "k"]);
    for (reading, tolerance, moves) in [
        ("PTTL", MS_TOLERANCE, true),
        ("TTL", 1, true),
        ("PEXPIRETIME", MS_TOLERANCE, !exact),
        ("EXPIRETIME", 1, !exact),
    ] {
        let theirs = d.r.cmd(&[reading, "k"]);
        let ours = d.o.cmd(&[reading, "k"]);
        if theirs == ours {
            continue;
        }
        let show = |r: &[u8]| String::from_utf8_lossy(r).into_owned();
        let close = match (int_of(&theirs), int_of(&ours)) {
            (Some(t), Some(o)) => moves && t >= 0 && o >= 0 && t.abs_diff(o) <= tolerance,
            _ => false,
        };
        assert!(
            close,
            "{reading} {what}: redlockd {:?}, redis-server {:?}",
            show(&ours),
            show(&theirs)
        );
    }
}

#[test]
fn set_with_every_expiry_option() {
    let mut d = Differential::new();
    for state in [State::Persistent, State::FarTtl] {
        for (opt, absolute) in [("EX", false), ("PX", false), ("EXAT", true), ("PXAT", true)] {
            for v in boundary_values() {
                case(&mut d, state, &["SET", "k", "v2", opt, &v], absolute);
            }
        }
    }
}

#[test]
fn setex_and_psetex() {
    let mut d = Differential::new();
    for state in [State::Persistent, State::FarTtl] {
        for cmd in ["SETEX", "PSETEX"] {
            for v in boundary_values() {
                case(&mut d, state, &[cmd, "k", &v, "v2"], false);
            }
        }
    }
}

#[test]
fn getex_with_every_expiry_option() {
    let mut d = Differential::new();
    for state in ALL_STATES {
        for (opt, absolute) in [("EX", false), ("PX", false), ("EXAT", true), ("PXAT", true)] {
            for v in boundary_values() {
                case(&mut d, state, &["GETEX", "k", opt, &v], absolute);
            }
        }
    }
}

#[test]
fn the_expire_family_with_every_condition() {
    let mut d = Differential::new();
    for state in ALL_STATES {
        for (cmd, absolute) in [
            ("EXPIRE", false),
            ("PEXPIRE", false),
            ("EXPIREAT", true),
            ("PEXPIREAT", true),
        ] {
            for cond in [None, Some("NX"), Some("XX"), Some("GT"), Some("LT")] {
                for v in boundary_values() {
                    let mut args = vec![cmd, "k", &v];
                    args.extend(cond);
                    case(&mut d, state, &args, absolute);
                }
            }
        }
    }
}

#[test]
fn absolute_deadlines_come_back_exactly() {
    let mut d = Differential::new();
    let future = wall_ms() + 86_400_000;
    // EXPIRETIME rounds to the nearest second, also at the very top.
    let mut times: Vec<i64> = vec![i64::MAX, i64::MAX - 499, i64::MAX - 500, 9_000_000_000_000_000_000];
    let whole_second = future - future % 1000;
    times.extend([whole_second + 499, whole_second + 500, whole_second + 999]);
    for t in times {
        let t = t.to_string();
        d.run(&[
            &["SET", "k", "v", "PXAT", &t],
            &["PEXPIRETIME", "k"],
            &["EXPIRETIME", "k"],
            &["SET", "k", "v"],
            &["PEXPIREAT", "k", &t],
            &["PEXPIRETIME", "k"],
            &["EXPIRETIME", "k"],
            &["PEXPIREAT", "k", &t, "GT"],
            &["PEXPIREAT", "k", &t, "LT"],
            &["GETEX", "k", "PXAT", &t],
            &["PEXPIRETIME", "k"],
        ]);
    }
}

/// What the issue reported: these must count down from what was asked.
#[test]
fn huge_ttls_read_back_as_given() {
    let server = Server::start();
    let mut c = server.raw();
    let before = wall_ms();
    assert_eq!(c.cmd_str(&["SET", "k", "v", "PX", "9000000000000000000"]), "+OK\r\n");
    let pttl = int_of(&c.cmd(&["PTTL", "k"])).unwrap();
    assert!(
        (9_000_000_000_000_000_000 - 1000..=9_000_000_000_000_000_000).contains(&pttl),
        "{pttl}"
    );
    let at = int_of(&c.cmd(&["PEXPIRETIME", "k"])).unwrap();
    let after = wall_ms();
    assert!(
        (before + 9_000_000_000_000_000_000..=after + 9_000_000_000_000_000_000).contains(&at),
        "{at}"
    );
    assert_eq!(c.cmd_str(&["SET", "k", "v", "PXAT", "9223372036854775807"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["PEXPIRETIME", "k"]), ":9223372036854775807\r\n");
}

fn lock_ttl(c: &mut Raw, key: &str) -> i64 {
    let info = c.cmd_str(&["LOCK.INFO", key]);
    let ttl = info
        .split("ttl\r\n:")
        .nth(1)
        .unwrap_or_else(|| panic!("no ttl in {info:?}"));
    ttl.split("\r\n").next().unwrap().parse().unwrap()
}

#[test]
fn lock_commands_take_huge_ttls_and_refuse_overflowing_ones() {
    let server = Server::start();
    let mut c = server.raw();
    let fence = c.cmd_str(&["LOCK.ACQUIRE", "l", "t", "PX", "10000000000000000"]);
    assert!(fence.starts_with(':'), "{fence}");
    for ttl in [lock_ttl(&mut c, "l"), int_of(&c.cmd(&["PTTL", "l"])).unwrap()] {
        assert!(
            (10_000_000_000_000_000 - 1000..=10_000_000_000_000_000).contains(&ttl),
            "{ttl}"
        );
    }
    let at = int_of(&c.cmd(&["PEXPIRETIME", "l"])).unwrap();
    assert!((at - wall_ms() - 10_000_000_000_000_000).abs() < 1000, "{at}");

    // Re-acquiring and extending move the deadline to what was asked.
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "l", "t", "PX", "9000000000000000000"]),
        fence
    );
    assert!(lock_ttl(&mut c, "l") > 8_999_999_999_999_990_000);
    assert_eq!(c.cmd_str(&["LOCK.EXTEND", "l", "t", "EX", "9223372036854"]), ":1\r\n");
    assert_eq!(c.cmd_str(&["TTL", "l"]), ":9223372036854\r\n");
    assert_eq!(c.cmd_str(&["LOCK.EXTEND", "l", "t", "PX", "100"]), ":1\r\n");
    assert!((1..=100).contains(&lock_ttl(&mut c, "l")));

    // SET's rules: not positive, or past LLONG_MAX once converted or added to now.
    let limit_ms = i64::MAX - wall_ms();
    for (cmd, unit, ttl) in [
        ("LOCK.ACQUIRE", "PX", "0".to_string()),
        ("LOCK.ACQUIRE", "PX", "-1".to_string()),
        ("LOCK.ACQUIRE", "PX", i64::MAX.to_string()),
        ("LOCK.ACQUIRE", "PX", (limit_ms + 10_000).to_string()),
        ("LOCK.ACQUIRE", "EX", (i64::MAX / 1000).to_string()),
        ("LOCK.ACQUIRE", "EX", (i64::MAX / 1000 + 1).to_string()),
        ("LOCK.EXTEND", "PX", i64::MIN.to_string()),
        ("LOCK.EXTEND", "EX", (limit_ms / 1000 + 10).to_string()),
    ] {
        assert_eq!(
            c.cmd_str(&[cmd, "l2", "t", unit, &ttl]),
            format!("-ERR invalid expire time in '{}' command\r\n", cmd.to_lowercase()),
            "{cmd} {unit} {ttl}"
        );
    }
    assert_eq!(c.cmd_str(&["EXISTS", "l2"]), ":0\r\n");
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "l2", "t", "PX", "9223372036854775808"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    // Just inside the limit is accepted.
    let fence = c.cmd_str(&["LOCK.ACQUIRE", "l2", "t", "PX", &(limit_ms - 10_000).to_string()]);
    assert!(fence.starts_with(':'), "{fence}");
    let at = int_of(&c.cmd(&["PEXPIRETIME", "l2"])).unwrap();
    assert!((i64::MAX - 11_000..=i64::MAX).contains(&at), "{at}");
}

#[test]
fn far_deadlines_survive_an_aof_restart_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    let mut server = Server::start_with(&args);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["SET", "px", "v", "PX", "10000000000000000"]), "+OK\r\n");
    assert_eq!(
        c.cmd_str(&["SET", "pxat", "v", "PXAT", "9223372036854775807"]),
        "+OK\r\n"
    );
    assert_eq!(c.cmd_str(&["SET", "exat", "v", "EXAT", "9223372036854775"]), "+OK\r\n");
    let fence = c.cmd_str(&["LOCK.ACQUIRE", "lock", "t", "PX", "10000000000000000"]);
    assert_eq!(c.cmd_str(&["SET", "near", "v", "PX", "86400000"]), "+OK\r\n");
    let keys = ["px", "pxat", "exat", "lock", "near"];
    let times = |c: &mut Raw| -> Vec<i64> {
        keys.iter()
            .map(|k| int_of(&c.cmd(&["PEXPIRETIME", k])).unwrap())
            .collect()
    };
    let before = times(&mut c);
    assert_eq!(before[1], i64::MAX);
    assert_eq!(before[2], 9_223_372_036_854_775_000);
    server.kill9();

    let mut server = Server::start_with(&args);
    let mut c = server.raw();
    assert_eq!(times(&mut c), before, "deadlines after replay ({keys:?})");
    assert!(lock_ttl(&mut c, "lock") > 9_999_999_999_990_000);
    assert!(c.cmd_str(&["LOCK.INFO", "lock"]).contains(&format!("fence\r\n{fence}")));

    // A rewrite writes them the same way.
    common::rewrite_aof(&mut c);
    server.kill9();
    let server = Server::start_with(&args);
    let mut c = server.raw();
    assert_eq!(times(&mut c), before, "deadlines after a rewrite and replay");
}

#[test]
fn far_deadlines_stay_out_of_the_expirers_way() {
    let server = Server::start();
    let mut c = server.raw();
    for i in 0..100 {
        let far = format!("far:{i}");
        let near = format!("near:{i}");
        assert_eq!(c.cmd_str(&["SET", &far, "v", "PXAT", "9223372036854775807"]), "+OK\r\n");
        assert_eq!(c.cmd_str(&["SET", &near, "v", "PX", "30"]), "+OK\r\n");
    }
    // The active expirer reclaims the short keys (DBSIZE counts only what
    // is stored) and never the far ones.
    assert!(eventually(Duration::from_secs(10), || c.cmd_str(&["DBSIZE"]) == ":100\r\n"));
    assert_eq!(c.cmd_str(&["EXISTS", "far:0", "far:99"]), ":2\r\n");
    assert_eq!(c.cmd_str(&["PEXPIRETIME", "far:42"]), ":9223372036854775807\r\n");
}
