//! Locks that survive a crash: the append-only file, replay, torn records,
//! background rewrite, and fences that never repeat.

mod common;
use std::io::Write;
use std::time::Duration;

use common::{Server, encode, eventually};

fn aof_args(dir: &std::path::Path, fsync: &str) -> Vec<String> {
    vec![
        "--appendonly".into(),
        "yes".into(),
        "--appendfsync".into(),
        fsync.into(),
        "--dir".into(),
        dir.display().to_string(),
    ]
}

fn start(dir: &std::path::Path, fsync: &str, extra: &[&str]) -> Server {
    let mut args = aof_args(dir, fsync);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    Server::start_with(&refs)
}

fn int(reply: &str) -> i64 {
    reply
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not an integer: {reply:?}"))
}

#[test]
fn acknowledged_locks_survive_kill_9_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), "always", &[]);
    // Four clients acquire 250 locks each, pipelined: group commit at work.
    let port = server.port;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let mut c = common::Raw::connect(port);
                let mut batch = Vec::new();
                for i in 0..250 {
                    let key = format!("lock:{w}:{i}");
                    let token = format!("token-{w}-{i}");
                    batch.extend(encode(&[
                        b"LOCK.ACQUIRE",
                        key.as_bytes(),
                        token.as_bytes(),
                        b"PX",
                        b"600000",
                    ]));
                }
                c.send(&batch);
                let mut fences = Vec::new();
                for i in 0..250 {
                    let reply = String::from_utf8(c.read_frame()).unwrap();
                    fences.push((format!("lock:{w}:{i}"), format!("token-{w}-{i}"), int(&reply)));
                }
                fences
            })
        })
        .collect();
    let acknowledged: Vec<(String, String, i64)> = writers.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["SET", "plain", "lock", "NX", "PX", "600000"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["INCR", "counter"]), ":1\r\n");
    let max_fence = acknowledged.iter().map(|(_, _, f)| *f).max().unwrap();
    server.kill9();

    let server = start(dir.path(), "always", &[]);
    let mut c = server.raw();
    let mut found = 0;
    for (key, token, fence) in &acknowledged {
        let info = c.cmd_str(&["LOCK.INFO", key]);
        let expected_start = format!("*8\r\n$5\r\ntoken\r\n${}\r\n{token}\r\n$3\r\nttl\r\n:", token.len());
        assert!(info.starts_with(&expected_start), "{key}: {info}");
        assert!(info.contains(&format!("$5\r\nfence\r\n:{fence}\r\n")), "{key}: {info}");
        let pttl = int(&c.cmd_str(&["PTTL", key]));
        assert!(pttl > 0 && pttl <= 600_000, "{key}: pttl {pttl}");
        found += 1;
    }
    assert_eq!(found, 1000);
    assert_eq!(c.cmd_str(&["GET", "plain"]), "$4\r\nlock\r\n");
    assert_eq!(c.cmd_str(&["GET", "counter"]), "$1\r\n1\r\n");
    let next = int(&c.cmd_str(&["LOCK.ACQUIRE", "fresh", "t", "PX", "1000"]));
    assert!(
        next > max_fence,
        "fence {next} reused after restart (max before: {max_fence})"
    );
    // A held lock is still held: another owner is refused.
    assert_eq!(
        c.cmd_str(&["LOCK.ACQUIRE", "lock:0:0", "intruder", "PX", "1000"]),
        "$-1\r\n"
    );
    eprintln!(
        "crash test: {} locks acknowledged, {found} found after restart",
        acknowledged.len()
    );
}

#[test]
fn a_torn_final_record_is_truncated_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), "always", &[]);
    let mut c = server.raw();
    for i in 0..10 {
        assert_eq!(c.cmd_str(&["SET", &format!("k{i}"), "v", "PX", "600000"]), "+OK\r\n");
    }
    server.kill9();
    let path = dir.path().join("appendonly.aof");
    let good_len = std::fs::metadata(&path).unwrap().len();
    // A crash in the middle of writing the next record.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"*6\r\n$6\r\nRL.SET\r\n$1\r\n0\r\n$2\r\nk1").unwrap();
    drop(f);
    let server = start(dir.path(), "always", &[]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["DBSIZE"]), ":10\r\n");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        good_len,
        "the torn record was cut off"
    );
    // And the log keeps working after the cut.
    assert_eq!(c.cmd_str(&["SET", "after", "x"]), "+OK\r\n");
    drop(server);
    let server = start(dir.path(), "always", &[]);
    assert_eq!(server.raw().cmd_str(&["GET", "after"]), "$1\r\nx\r\n");
}

#[test]
fn corruption_in_the_middle_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("appendonly.aof"),
        b"*3\r\n$6\r\nRL.DEL\r\n$1\r\n0\r\n$1\r\nk\r\nGARBAGE\r\n*1\r\n$11\r\nRL.FLUSHALL\r\n",
    )
    .unwrap();
    let args = aof_args(dir.path(), "always");
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (status, stderr) = Server::start_expecting_failure(&refs);
    assert!(!status.success());
    assert!(
        stderr.contains("unknown record") || stderr.contains("bad record"),
        "{stderr}"
    );
}

#[test]
fn expired_entries_are_skipped_and_graceful_shutdown_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), "everysec", &[]);
    let mut c = server.raw();
    c.cmd(&["SET", "short", "v", "PX", "50"]);
    c.cmd(&["SET", "long", "v"]);
    c.cmd(&["FENCE.SET", "fenced", "v", "42"]);
    c.send(&encode(&[b"SHUTDOWN"]));
    let _ = c.read_until_closed();
    assert!(server.wait_exit(Duration::from_secs(10)).expect("exited").success());
    std::thread::sleep(Duration::from_millis(60));
    let server = start(dir.path(), "everysec", &[]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["EXISTS", "short"]), ":0\r\n");
    assert_eq!(c.cmd_str(&["GET", "long"]), "$1\r\nv\r\n");
    assert!(
        c.cmd_str(&["FENCE.SET", "fenced", "w", "41"]).starts_with("-FENCED"),
        "fence history survives"
    );
    assert!(c.cmd_str(&["INFO", "persistence"]).contains("aof_enabled:1"));
}

#[test]
fn rewrite_compacts_the_log_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "no", &[]);
    let mut c = server.raw();
    let mut batch = Vec::new();
    for i in 0..5000 {
        batch.extend(encode(&[b"SET", b"hot", format!("value-{i}").as_bytes()]));
    }
    for i in 0..100 {
        batch.extend(encode(&[
            b"SET",
            format!("cold:{i}").as_bytes(),
            b"x",
            b"PX",
            b"600000",
        ]));
    }
    c.send(&batch);
    for _ in 0..5100 {
        c.read_frame();
    }
    c.cmd(&["LOCK.ACQUIRE", "l", "t", "PX", "600000"]);
    let fence_before = c.cmd_str(&["LOCK.INFO", "l"]);
    let path = dir.path().join("appendonly.aof");
    assert!(eventually(Duration::from_secs(10), || std::fs::metadata(&path)
        .map(|m| m.len())
        .unwrap_or(0)
        > 150_000));
    let before = std::fs::metadata(&path).unwrap().len();
    common::rewrite_aof(&mut c);
    // Writes during and after the rewrite land in the new file.
    c.cmd(&["SET", "after", "rewrite"]);
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(after < before / 10, "rewrite shrank {before} to {after}");
    drop(server);
    let server = start(dir.path(), "no", &[]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["GET", "hot"]), "$10\r\nvalue-4999\r\n");
    assert_eq!(c.cmd_str(&["DBSIZE"]), ":103\r\n");
    let fence_of = |info: &str| info.rsplit("fence").next().unwrap_or_default().to_string();
    assert_eq!(fence_of(&c.cmd_str(&["LOCK.INFO", "l"])), fence_of(&fence_before));
    assert_eq!(c.cmd_str(&["GET", "after"]), "$7\r\nrewrite\r\n");
}

#[test]
fn the_log_rewrites_itself_when_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "no",
        &[
            "--auto-aof-rewrite-min-size",
            "64kb",
            "--auto-aof-rewrite-percentage",
            "100",
        ],
    );
    let mut c = server.raw();
    let mut batch = Vec::new();
    for i in 0..20_000 {
        batch.extend(encode(&[b"INCR", format!("n{}", i % 10).as_bytes()]));
    }
    c.send(&batch);
    for _ in 0..20_000 {
        c.read_frame();
    }
    assert!(eventually(Duration::from_secs(20), || !c
        .cmd_str(&["INFO", "persistence"])
        .contains("aof_rewrites:0")));
    drop(server);
    let server = start(dir.path(), "no", &[]);
    assert_eq!(server.raw().cmd_str(&["GET", "n3"]), "$4\r\n2000\r\n");
}
