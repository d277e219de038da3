//! `--metrics-port`: Prometheus metrics with exact counter values after a
//! known sequence of lock commands, health checks (readyz during the
//! restart delay), and the `/locks` JSON for keys that are markup or not
//! UTF-8. HTTP is spoken by hand over a TCP socket (HTTP/1.1, one request
//! per connection).

mod common;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{REPLY_TIMEOUT, Server, eventually, free_port};

/// Start redlockd with the metrics server on a free port; (server, metrics port).
fn start(args: &[&str]) -> (Server, u16) {
    let port = free_port();
    let p = port.to_string();
    let mut all = vec!["--metrics-port", p.as_str()];
    all.extend_from_slice(args);
    let server = Server::start_with(&all);
    (server, port)
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// `GET path` over a fresh connection.
fn get(port: u16, path: &str) -> Reply {
    // The server announces its RESP address before it binds the metrics port.
    let mut conn = None;
    eventually(REPLY_TIMEOUT, || {
        conn = TcpStream::connect(("127.0.0.1", port)).ok();
        conn.is_some()
    });
    let mut s = conn.expect("connect to the metrics port");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the HTTP reply");
    let text = String::from_utf8(raw).expect("UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete reply");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status");
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// The value of one sample line (`name{labels} value`) of `/metrics`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn scrape(port: u16) -> String {
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("content-type: text/plain; version=0.0.4"), "{}", r.head);
    r.body
}

const NPM_ACQUIRE: &str = "e5a322e2634ef59a516e8ea150cb085afafee684";
const NPM_RELEASE: &str = "0f0f23b9048b36752b5be114f357ba083449f908";

#[test]
fn counters_count_every_grant_and_release_decision_once() {
    let (server, port) = start(&[]);
    let mut c = server.raw();
    // Grants: SET NX PX, LOCK.ACQUIRE, a catalogued acquire script.
    assert_eq!(c.cmd(&["SET", "a", "t1", "NX", "PX", "30000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "a", "t2", "NX", "PX", "30000"]), b"$-1\r\n");
    assert!(c.cmd_str(&["LOCK.ACQUIRE", "b", "tok", "PX", "30000"]).starts_with(':'));
    assert_eq!(c.cmd(&["LOCK.ACQUIRE", "b", "other", "PX", "30000"]), b"$-1\r\n");
    assert_eq!(c.cmd(&["EVALSHA", NPM_ACQUIRE, "1", "s", "v", "30000"]), b":1\r\n");
    assert_eq!(c.cmd(&["EVALSHA", NPM_ACQUIRE, "1", "s", "w", "30000"]), b":0\r\n");
    // Not lock grants: SET NX without a TTL, a plain SET with one.
    assert_eq!(c.cmd(&["SET", "plain", "v", "NX"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "cache", "v", "PX", "30000"]), b"+OK\r\n");
    // Releases: released, missing, not_owner, by three commands.
    assert_eq!(c.cmd(&["LOCK.RELEASE", "b", "tok"]), b":1\r\n");
    assert_eq!(c.cmd(&["LOCK.RELEASE", "b", "tok"]), b":0\r\n");
    assert_eq!(c.cmd(&["LOCK.RELEASE", "a", "wrong"]), b":0\r\n");
    assert_eq!(c.cmd(&["DELIFEQ", "a", "t1"]), b":1\r\n");
    assert_eq!(c.cmd(&["EVALSHA", NPM_RELEASE, "1", "s", "v"]), b":1\r\n");
    // A plain DELEX is a delete, not a release.
    assert_eq!(c.cmd(&["DELEX", "plain"]), b":1\r\n");
    // A stale fencing token.
    assert_eq!(c.cmd(&["FENCE.SET", "data", "x", "10"]), b"+OK\r\n");
    assert!(c.cmd_str(&["FENCE.SET", "data", "y", "5"]).starts_with("-FENCED"));
    // A lock left to expire.
    assert_eq!(c.cmd(&["SET", "lost", "t", "NX", "PX", "50"]), b"+OK\r\n");

    let mut m = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            m = scrape(port);
            sample(&m, "redlockd_lock_expired_while_held_total") == Some(1.0)
        }),
        "the lock left to expire was never counted:\n{m}"
    );
    let doc: serde_json::Value = serde_json::from_str(&get(port, "/locks").body).expect("valid JSON");
    let lost = &doc["events"][0];
    assert_eq!(
        (&lost["kind"], &lost["key"]),
        (&"expired".into(), &"lost".into()),
        "{doc}"
    );
    // Held from its grant to its deadline.
    assert!(
        lost["held_ms"].as_u64().is_some_and(|ms| (45..=60).contains(&ms)),
        "{lost}"
    );
    let expect = [
        ("redlockd_lock_acquire_total{result=\"granted\"}", 4.0),
        ("redlockd_lock_acquire_total{result=\"busy\"}", 3.0),
        ("redlockd_lock_acquire_total{result=\"refused\"}", 0.0),
        ("redlockd_lock_release_total{result=\"released\"}", 3.0),
        ("redlockd_lock_release_total{result=\"not_owner\"}", 1.0),
        ("redlockd_lock_release_total{result=\"missing\"}", 1.0),
        ("redlockd_fence_rejected_total", 1.0),
        ("redlockd_lock_hold_seconds_count", 3.0),
        // "cache" has a deadline but no lock command granted it.
        ("redlockd_locks_held", 0.0),
        ("redlockd_keys{db=\"0\"}", 2.0),
        ("redlockd_keys{db=\"1\"}", 0.0),
        ("redlockd_expired_keys_total", 1.0),
        ("redlockd_commands_total{cmd=\"lock.acquire\"}", 2.0),
        ("redlockd_commands_total{cmd=\"lock.release\"}", 3.0),
        ("redlockd_commands_total{cmd=\"evalsha\"}", 3.0),
        ("redlockd_commands_total{cmd=\"set\"}", 5.0),
        ("redlockd_connected_clients", 1.0),
        ("redlockd_aof_enabled", 0.0),
        ("redlockd_aof_last_write_ok", 1.0),
        ("redlockd_ready", 1.0),
    ];
    for (series, want) in expect {
        assert_eq!(sample(&m, series), Some(want), "{series} in\n{m}");
    }
    assert!(sample(&m, "redlockd_used_memory_bytes").is_some_and(|v| v > 0.0));
    assert!(sample(&m, "redlockd_uptime_seconds").is_some());
    assert!(m.contains("# TYPE redlockd_lock_hold_seconds histogram"), "{m}");
    let inf = sample(&m, "redlockd_lock_hold_seconds_bucket{le=\"+Inf\"}");
    assert_eq!(inf, Some(3.0), "{m}");
}

#[test]
fn refused_grants_and_readiness_during_the_restart_delay() {
    let (server, port) = start(&["--restart-delay", "1500"]);
    let r = get(port, "/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("restart delay"), "{}", r.body);
    let h = get(port, "/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let mut c = server.raw();
    assert!(
        c.cmd_str(&["SET", "k", "t", "NX", "PX", "1000"])
            .starts_with("-TRYAGAIN")
    );
    assert!(
        c.cmd_str(&["LOCK.ACQUIRE", "k", "t", "PX", "1000"])
            .starts_with("-TRYAGAIN")
    );
    let m = scrape(port);
    assert_eq!(
        sample(&m, "redlockd_lock_acquire_total{result=\"refused\"}"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(sample(&m, "redlockd_ready"), Some(0.0), "{m}");
    assert!(eventually(Duration::from_secs(5), || get(port, "/readyz").status == 200));
    assert_eq!(get(port, "/readyz").body, "ready\n");
}

#[test]
fn refused_grants_past_maxmemory() {
    let (server, port) = start(&["--maxmemory", "1"]);
    let mut c = server.raw();
    assert!(c.cmd_str(&["SET", "k", "t", "NX", "PX", "1000"]).starts_with("-OOM"));
    assert!(
        c.cmd_str(&["EVALSHA", NPM_ACQUIRE, "1", "s", "v", "30000"])
            .starts_with("-OOM")
    );
    // Not a lock grant: refused too, but not counted.
    assert!(c.cmd_str(&["SET", "k", "v"]).starts_with("-OOM"));
    let m = scrape(port);
    assert_eq!(
        sample(&m, "redlockd_lock_acquire_total{result=\"refused\"}"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(sample(&m, "redlockd_maxmemory_bytes"), Some(1.0), "{m}");
}

#[test]
fn locks_json_escapes_markup_and_survives_any_bytes() {
    let (server, port) = start(&[]);
    let mut c = server.raw();
    let evil = "<img src=x onerror=alert(1)>";
    assert!(
        c.cmd_str(&["LOCK.ACQUIRE", evil, "tok-\"<b>", "PX", "60000"])
            .starts_with(':')
    );
    assert_eq!(
        c.cmd_bytes(&[b"SET", b"bin\xff\x00\n", b"\xfe\xfftoken", b"NX", b"PX", b"60000"]),
        b"+OK\r\n"
    );
    let r = get(port, "/locks");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("content-type: application/json"), "{}", r.head);
    assert!(!r.body.contains('<') && !r.body.contains('>'), "{}", r.body);
    let doc: serde_json::Value = serde_json::from_str(&r.body).expect("valid JSON");
    let locks = doc["locks"].as_array().expect("locks");
    assert_eq!(locks.len(), 2, "{doc}");
    let held = locks
        .iter()
        .find(|l| l["key"] == evil)
        .expect("the markup key is listed");
    assert_eq!(held["token"], "tok-\"<b>");
    assert_eq!(held["token_len"], 8);
    assert!(held["fence"].as_u64().is_some_and(|f| f > 0), "{held}");
    assert!(
        held["ttl_ms"].as_i64().is_some_and(|t| t > 50_000 && t <= 60_000),
        "{held}"
    );
    assert!(held["age_ms"].as_u64().is_some_and(|a| a < 10_000), "{held}");
    let bin = locks
        .iter()
        .find(|l| l["key_len"] == 6)
        .expect("the binary key is listed");
    assert_eq!(bin["key"], "bin\u{fffd}\u{0}\n");
    assert_eq!(bin["fence"], serde_json::Value::Null);
    assert_eq!(doc["limit"], 1000);
    assert_eq!(doc["truncated"], false);
    let events = doc["events"].as_array().expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["kind"], "acquired");
    assert_eq!(events[1]["key"], evil);
    assert_eq!(doc["health"]["ready"], true);
    assert_eq!(doc["health"]["granted"], 2);
}

#[test]
fn the_status_page_is_self_contained_and_locked_down() {
    let (_server, port) = start(&[]);
    let r = get(port, "/");
    assert_eq!(r.status, 200);
    assert!(r.head.contains("content-type: text/html"), "{}", r.head);
    assert!(
        r.head.contains("content-security-policy: default-src 'none'"),
        "{}",
        r.head
    );
    assert!(r.body.contains("<title>redlockd status</title>"));
    // No external assets.
    assert!(!r.body.contains("http://") && !r.body.contains("https://") && !r.body.contains(" src="));
    assert!(!r.body.contains("innerHTML"));
    assert_eq!(get(port, "/nope").status, 404);
}

#[test]
fn not_ready_while_the_append_only_file_cannot_be_written() {
    let Some(fs) = common::Tmpfs::mount("256k") else { return };
    let dir = fs.path().display().to_string();
    let (server, port) = start(&["--appendonly", "yes", "--appendfsync", "everysec", "--dir", &dir]);
    assert_eq!(get(port, "/readyz").status, 200);
    let writer = common::fill_disk(server.port, 64);
    assert!(
        eventually(Duration::from_secs(10), || get(port, "/readyz").status == 503),
        "the disk never filled"
    );
    let r = get(port, "/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("append-only file cannot be written"), "{}", r.body);
    let mut c = server.raw();
    assert!(
        c.cmd_str(&["SET", "lock", "t", "NX", "PX", "1000"])
            .starts_with("-MISCONF")
    );
    let m = scrape(port);
    assert_eq!(sample(&m, "redlockd_aof_last_write_ok"), Some(0.0), "{m}");
    assert_eq!(
        sample(&m, "redlockd_lock_acquire_total{result=\"refused\"}"),
        Some(1.0),
        "{m}"
    );
    drop((c, writer));
    drop(server);
}

/// Blocking acquires feed the waiters gauge while they wait, then the wait
/// histogram, and a wait that runs out counts as `result="timeout"`.
#[test]
fn blocking_acquires_feed_waiters_wait_time_and_timeouts() {
    let (server, port) = start(&[]);
    let mut c = server.raw();
    c.cmd(&["LOCK.ACQUIRE", "k", "owner", "PX", "60000"]);
    let mut w = server.raw();
    w.send(&common::encode(&[
        b"LOCK.ACQUIRE",
        b"k",
        b"w",
        b"PX",
        b"1000",
        b"WAIT",
        b"0",
    ]));
    assert!(eventually(REPLY_TIMEOUT, || sample(
        &scrape(port),
        "redlockd_lock_waiters"
    ) == Some(1.0)));
    c.cmd(&["LOCK.RELEASE", "k", "owner"]);
    assert_eq!(w.read_frame()[0], b':');
    assert_eq!(
        c.cmd(&["LOCK.ACQUIRE", "k", "late", "PX", "1000", "WAIT", "50"]),
        b"$-1\r\n"
    );
    let m = scrape(port);
    assert_eq!(sample(&m, "redlockd_lock_waiters"), Some(0.0));
    assert_eq!(sample(&m, "redlockd_lock_acquire_total{result=\"timeout\"}"), Some(1.0));
    assert_eq!(sample(&m, "redlockd_lock_wait_seconds_count"), Some(2.0));
    assert!(
        sample(&m, "redlockd_lock_wait_seconds_sum").is_some_and(|s| s >= 0.05),
        "{m}"
    );
}

/// What `redlockd_locks_held` and the expiry counter read after `wait`
/// lets short TTLs pass: (held, expired while held, expired keys).
fn lock_gauges(port: u16, expired_keys: f64) -> (f64, f64, String) {
    let mut m = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            m = scrape(port);
            sample(&m, "redlockd_expired_keys_total") == Some(expired_keys)
        }),
        "expected {expired_keys} expired keys:\n{m}"
    );
    let held = sample(&m, "redlockd_locks_held").expect("locks_held");
    let lost = sample(&m, "redlockd_lock_expired_while_held_total").expect("expired_while_held");
    (held, lost, m)
}

#[test]
fn a_lock_is_a_value_a_lock_command_granted() {
    let (server, port) = start(&[]);
    let mut c = server.raw();
    // Locks: the three kinds of grant.
    assert_eq!(c.cmd(&["SET", "l1", "t", "NX", "PX", "60000"]), b"+OK\r\n");
    assert!(c.cmd_str(&["LOCK.ACQUIRE", "l2", "t", "PX", "60000"]).starts_with(':'));
    assert_eq!(c.cmd(&["EVALSHA", NPM_ACQUIRE, "1", "l3", "t", "60000"]), b":1\r\n");
    // Not locks: TTLs given by anything else.
    assert_eq!(c.cmd(&["SET", "cache", "v", "PX", "60000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "ttl", "v"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["PEXPIRE", "ttl", "60000"]), b":1\r\n");
    assert_eq!(c.cmd(&["SETEX", "setex", "60", "v"]), b"+OK\r\n");
    let (held, _, m) = lock_gauges(port, 0.0);
    assert_eq!(held, 3.0, "{m}");
    // Extending (same token, new deadline) keeps a lock; the same token
    // written again by SET XX keeps it too.
    assert_eq!(c.cmd(&["LOCK.EXTEND", "l2", "t", "PX", "90000"]), b":1\r\n");
    assert_eq!(c.cmd(&["SET", "l1", "t", "XX", "PX", "90000"]), b"+OK\r\n");
    assert_eq!(lock_gauges(port, 0.0).0, 3.0);
    // Another value ends it; so does a delete, a rename (the new key is no lock).
    assert_eq!(c.cmd(&["SET", "l1", "other", "PX", "60000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["DEL", "l2"]), b":1\r\n");
    assert_eq!(c.cmd(&["RENAME", "l3", "moved"]), b"+OK\r\n");
    let (held, _, m) = lock_gauges(port, 0.0);
    assert_eq!(held, 0.0, "{m}");
    // A compare-and-delete of a value no grant stored counts as a release
    // attempt that released, but holds nothing: no hold-time sample.
    assert_eq!(c.cmd(&["DELIFEQ", "cache", "v"]), b":1\r\n");
    let m = scrape(port);
    assert_eq!(
        sample(&m, "redlockd_lock_release_total{result=\"released\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(sample(&m, "redlockd_lock_hold_seconds_count"), Some(0.0), "{m}");
    // Expiries: a lock, a former lock overwritten, a plain key with a TTL.
    assert_eq!(c.cmd(&["SET", "lost", "t", "NX", "PX", "30"]), b"+OK\r\n");
    assert!(c.cmd_str(&["LOCK.ACQUIRE", "was", "t", "PX", "60000"]).starts_with(':'));
    assert_eq!(c.cmd(&["SET", "was", "v", "PX", "30"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "plain", "v", "PX", "30"]), b"+OK\r\n");
    let (held, lost, m) = lock_gauges(port, 3.0);
    assert_eq!((held, lost), (0.0, 1.0), "{m}");
    let doc: serde_json::Value = serde_json::from_str(&get(port, "/locks").body).expect("valid JSON");
    let expired: Vec<&serde_json::Value> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "expired")
        .collect();
    assert_eq!(expired.len(), 1, "{doc}");
    assert_eq!(expired[0]["key"], "lost");
    assert_eq!(doc["health"]["expired_while_held"], 1);
}

#[test]
fn a_restart_from_the_append_only_file_keeps_its_locks() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", dir.as_str()];
    let (server, _) = start(&args);
    let mut c = server.raw();
    assert!(c.cmd_str(&["LOCK.ACQUIRE", "l", "t", "PX", "60000"]).starts_with(':'));
    assert_eq!(c.cmd(&["SET", "n", "t", "NX", "PX", "60000"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["SET", "cache", "v", "PX", "60000"]), b"+OK\r\n");
    drop((c, server));
    let (server, port) = start(&args);
    assert_eq!(lock_gauges(port, 0.0).0, 2.0);
    // And after a rewrite of the log, which writes the keys anew.
    common::rewrite_aof(&mut server.raw());
    drop(server);
    let (_server, port) = start(&args);
    assert_eq!(lock_gauges(port, 0.0).0, 2.0);
}

/// A replicated group's member (here a group of one, which elects itself)
/// reports its role, term and log indexes, and is ready once it knows a
/// leader.
#[test]
fn a_group_member_reports_its_role_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().display().to_string();
    let raft_port = free_port().to_string();
    let peers = format!("1@127.0.0.1:{raft_port}");
    let args = [
        "--dir",
        dir.as_str(),
        "--raft-id",
        "1",
        "--raft-port",
        raft_port.as_str(),
        "--raft-peers",
        peers.as_str(),
    ];
    let (server, port) = start(&args);
    let mut c = server.raw();
    let mut written = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            written = c.cmd_str(&["SET", "k", "v"]);
            written == "+OK\r\n"
        }),
        "{written}"
    );
    let mut m = String::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            m = scrape(port);
            sample(&m, "redlockd_group_applied_index").is_some_and(|i| i >= 2.0)
        }),
        "{m}"
    );
    assert_eq!(sample(&m, "redlockd_group_leader"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "redlockd_group_leader_id"), Some(1.0), "{m}");
    assert!(sample(&m, "redlockd_group_term").is_some_and(|t| t >= 1.0), "{m}");
    assert!(
        sample(&m, "redlockd_group_last_log_index").is_some_and(|i| i >= 2.0),
        "{m}"
    );
    assert_eq!(sample(&m, "redlockd_ready"), Some(1.0), "{m}");
    assert_eq!(get(port, "/readyz").status, 200);
}
