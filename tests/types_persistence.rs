//! Containers survive a restart with `--appendonly yes`: every type, its
//! order where Redis defines one, its TTL, binary members, after replaying
//! the log and again after a rewrite; an expired container stays gone.

mod common;
use common::{Raw, Server, rewrite_aof};

fn start(dir: &std::path::Path) -> Server {
    let dir = dir.display().to_string();
    Server::start_with(&["--appendonly", "yes", "--appendfsync", "always", "--dir", &dir])
}

/// What a client sees of every key this test writes.
fn state(c: &mut Raw) -> Vec<String> {
    let mut seen = Vec::new();
    for cmd in [
        &["HGETALL", "h"][..],
        &["LRANGE", "l", "0", "-1"],
        &["SMEMBERS", "ints"],
        &["SCARD", "words"],
        &["SISMEMBER", "words", "w17"],
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        &["OBJECT", "ENCODING", "z"],
        &["OBJECT", "ENCODING", "ints"],
        &["TYPE", "gone"],
        &["EXISTS", "shortlived"],
        &["GET", "s"],
        &["DBSIZE"],
    ] {
        seen.push(c.cmd_str(cmd));
    }
    let ttl: i64 = c
        .cmd_str(&["PTTL", "h"])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 3_000_000 && ttl <= 3_600_000, "the hash keeps its TTL: {ttl}");
    assert_eq!(c.cmd_str(&["TTL", "l"]), ":-1\r\n");
    seen.push(String::from_utf8_lossy(&c.cmd_bytes(&[b"HGET", b"bin", b"\x00\r\n"])).into_owned());
    seen
}

#[test]
fn every_type_comes_back_with_its_ttl_after_replay_and_after_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = server.raw();
    for cmd in [
        &["HSET", "h", "b", "2", "a", "1", "c", "3"][..],
        &["HDEL", "h", "a"],
        &["HINCRBY", "h", "n", "7"],
        &["EXPIRE", "h", "3600"],
        &["RPUSH", "l", "x", "y", "z"],
        &["LPOP", "l"],
        &["LPUSH", "l", "w"],
        &["SADD", "ints", "3", "1", "2"],
        &["SADD", "gone", "a"],
        &["SREM", "gone", "a"],
        &["ZADD", "z", "0.1", "a", "-inf", "b", "2", "c"],
        &["ZINCRBY", "z", "1", "a"],
        &["SADD", "shortlived", "a"],
        &["PEXPIRE", "shortlived", "150"],
        &["SET", "s", "string"],
    ] {
        let reply = c.cmd_str(cmd);
        assert!(!reply.starts_with('-'), "{cmd:?}: {reply}");
    }
    for i in 0..600 {
        c.cmd_str(&["SADD", "words", &format!("w{i}")]);
    }
    c.cmd_bytes(&[b"HSET", b"bin", b"\x00\r\n", b"\xff\x00"]);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = state(&mut c);
    assert_eq!(
        before[0],
        "*6\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n$1\r\nn\r\n$1\r\n7\r\n"
    );
    assert_eq!(before[9], ":0\r\n", "expired");
    server.kill9();

    let mut server = start(dir.path());
    let mut c = server.raw();
    assert_eq!(state(&mut c), before, "after replaying the log");
    rewrite_aof(&mut c);
    server.kill9();

    let server = start(dir.path());
    let mut c = server.raw();
    assert_eq!(state(&mut c), before, "after a rewrite");
    let log = std::fs::read(dir.path().join("appendonly.aof")).unwrap();
    assert!(
        log.windows(8).any(|w| w == b"RL.VALUE"),
        "containers are written in full by the rewrite"
    );
}
