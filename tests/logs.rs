//! Structured logs: with `--log-format json` (or `log-format json` in the
//! config file) every stderr line is one JSON object, and a lock that
//! expires while held, or a connection that ends in an error, is one line
//! with its fields.

mod common;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::{REPLY_TIMEOUT, Server};
use serde_json::Value;

/// Start redlockd with `args` (a config file first, if any) and stderr piped.
fn start(args: &[&str]) -> Server {
    let mut cmd = Server::command();
    cmd.args(args)
        .args(["--port", "0", "--log-level", "notice"])
        .stderr(Stdio::piped());
    Server::launch(cmd).expect("redlockd starts")
}

/// Stop the server and parse every line it wrote to stderr as JSON.
fn stop_and_read_log(mut server: Server) -> Vec<Value> {
    let child = server.child();
    let _ = child.kill();
    let _ = child.wait();
    let mut text = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut text)
        .expect("read stderr");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn find<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
}

#[test]
fn a_lock_expired_while_held_is_one_json_line_with_its_fields() {
    let server = start(&["--log-format", "json"]);
    let mut c = server.raw();
    let key: &[u8] = b"orders:\n\xff<42>";
    assert_eq!(
        c.cmd_bytes(&[b"SET", key, b"token-0123456789", b"NX", b"PX", b"40"]),
        b"+OK\r\n"
    );
    // A key with a TTL that no lock command granted expires silently.
    assert_eq!(c.cmd(&["SET", "cache", "v", "PX", "40"]), b"+OK\r\n");
    std::thread::sleep(Duration::from_millis(120));
    // Reading them removes them now, whatever the background expirer did.
    assert_eq!(c.cmd_bytes(&[b"GET", key]), b"$-1\r\n");
    assert_eq!(c.cmd(&["GET", "cache"]), b"$-1\r\n");
    drop(c);
    let lines = stop_and_read_log(server);
    let line = find(&lines, "lock expired while held");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["target"], "redlockd::locks", "{line}");
    assert_eq!(line["key"], r"orders:\n\xff<42>", "{line}");
    assert_eq!(line["key_len"], key.len(), "{line}");
    assert_eq!(line["db"], 0, "{line}");
    // A prefix only: the token is the holder's secret.
    assert_eq!(line["token_prefix"], "token-01", "{line}");
    assert!(
        line["held_ms"].as_u64().is_some_and(|ms| (35..=60).contains(&ms)),
        "{line}"
    );
    let expiries = lines
        .iter()
        .filter(|l| l["message"] == "lock expired while held")
        .count();
    assert_eq!(expiries, 1, "{lines:#?}");
}

#[test]
fn a_connection_error_is_one_json_line_with_the_client_and_the_config_file_can_ask_for_json() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("redlockd.conf");
    std::fs::write(&conf, "log-format json\n").unwrap();
    let server = start(&[conf.to_str().unwrap()]);
    let mut c = server.raw();
    let id = c.cmd_str(&["CLIENT", "ID"]);
    let id: u64 = id.trim_start_matches(':').trim().parse().expect("a client id");
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let local = s.local_addr().unwrap().to_string();
    s.write_all(b"*1\r\n$x\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(
        reply.starts_with(b"-ERR Protocol error"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    drop((c, s));
    let lines = stop_and_read_log(server);
    let line = find(&lines, "connection error: protocol error");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["addr"], local.as_str(), "{line}");
    // The second connection of the server.
    assert_eq!(line["client_id"], id + 1, "{line}");
    assert!(line["error"].as_str().is_some_and(|e| !e.is_empty()), "{line}");
}

#[test]
fn a_full_disk_and_its_recovery_are_logged_with_their_fields() {
    let Some(fs) = common::Tmpfs::mount("256k") else { return };
    // Space taken now and given back later.
    let filler = fs.path().join("filler");
    std::fs::write(&filler, vec![b'x'; 128 * 1024]).unwrap();
    let dir = fs.path().display().to_string();
    let server = start(&["--log-format", "json", "--appendonly", "yes", "--dir", &dir]);
    let writer = common::fill_disk(server.port, 32);
    let mut c = server.raw();
    assert!(
        common::eventually(Duration::from_secs(10), || c
            .cmd_str(&["SET", "k", "v"])
            .starts_with("-MISCONF")),
        "the disk never filled"
    );
    std::fs::remove_file(&filler).unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || c.cmd_str(&["SET", "k", "v"]) == "+OK\r\n"),
        "writes did not resume"
    );
    drop((c, writer));
    let lines = stop_and_read_log(server);
    let failed = lines
        .iter()
        .find(|l| l["target"] == "redlockd::aof" && l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no append-only file error in {lines:#?}"));
    assert_eq!(failed["op"], "write", "{failed}");
    assert_eq!(failed["errno"], ENOSPC, "{failed}");
    assert!(
        failed["path"].as_str().is_some_and(|p| p.ends_with("appendonly.aof")),
        "{failed}"
    );
    let solved = find(
        &lines,
        "append-only file write error looks solved; accepting writes again",
    );
    assert!(solved["failed_ms"].as_u64().is_some(), "{solved}");
}

/// "No space left on device" on Linux.
const ENOSPC: i64 = 28;
