//! Stopping while a long command runs: SIGTERM, SIGINT and SHUTDOWN end the
//! process within a bounded time (the command finishes first, as in
//! Redis), and what was written before is in the append-only file.

mod common;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{REPLY_TIMEOUT, Raw, Server, encode};

/// Keys written before each test's long command.
const KEYS: usize = 1_000_000;
/// The bound on exiting that every test asserts.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// Write `KEYS` keys, 1,000 per MSET, pipelined.
fn fill(c: &mut Raw) {
    let batches = KEYS / 1000;
    let mut all = Vec::new();
    for b in 0..batches {
        let pairs: Vec<String> = (b * 1000..(b + 1) * 1000)
            .flat_map(|i| [format!("key:{i}"), i.to_string()])
            .collect();
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        args.extend(pairs.iter().map(|s| s.as_bytes()));
        all.extend_from_slice(&encode(&args));
    }
    c.send(&all);
    for _ in 0..batches {
        assert_eq!(c.read_frame(), b"+OK\r\n");
    }
}

/// redlockd with its log read by the test (and passed on to stderr), for a
/// test that must wait for the server to have seen a signal. Killed on drop.
struct Logged {
    server: Server,
    log: mpsc::Receiver<String>,
}

impl Logged {
    fn start(args: &[&str]) -> Logged {
        let mut cmd = Server::command();
        cmd.args(["--port", "0", "--log-level", "warning"])
            .args(args)
            .stderr(Stdio::piped());
        let mut server = Server::launch(cmd).unwrap_or_else(|line| panic!("unexpected first line: {line:?}"));
        let stderr = BufReader::new(server.child().stderr.take().expect("stderr"));
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = tx.send(line);
            }
        });
        Logged { server, log }
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}");
    }
}

/// Send KEYS * on a new connection and read its reply on a thread; the
/// thread yields whatever arrived before the server closed the connection.
fn long_keys(port: u16) -> std::thread::JoinHandle<Vec<u8>> {
    let mut c = Raw::connect(port);
    c.send(&encode(&[b"KEYS", b"*"]));
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = c.stream.read_to_end(&mut all);
        all
    })
}

/// With one thread, wait until the server is busy in the command just sent:
/// a PING on another connection goes unanswered for 100 ms.
fn wait_until_busy(port: u16) {
    let mut probe = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    probe
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        probe.write_all(b"PING\r\n").expect("send PING");
        let mut pong = [0u8; 7];
        match probe.read_exact(&mut pong) {
            Ok(()) => assert_eq!(&pong, b"+PONG\r\n"),
            Err(_) => return,
        }
    }
    panic!("the server never looked busy");
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill only sends a signal to the child we started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

/// The reply to KEYS * was sent whole before the process ended: the
/// command finished rather than being cut off.
fn assert_whole_keys_reply(reply: &[u8]) {
    let header = format!("*{}\r\n", KEYS + 1);
    assert!(
        reply.starts_with(header.as_bytes()),
        "KEYS reply starts {:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(20)])
    );
    let (_, len) = redis_protocol::resp2::decode::decode(reply)
        .ok()
        .flatten()
        .expect("a whole reply");
    assert_eq!(len, reply.len(), "bytes after the reply");
}

/// Restart on the same port and directory: the keys are back.
fn assert_replayed(port: u16, args: &[&str]) {
    let server = Server::start_on_port_with(port, args);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["DBSIZE"]), format!(":{}\r\n", KEYS + 1));
    assert_eq!(c.cmd_str(&["GET", "last"]), "$7\r\nwritten\r\n");
    assert_eq!(c.cmd_str(&["GET", "key:999999"]), "$6\r\n999999\r\n");
}

/// SIGTERM while KEYS * runs on the only thread: the command finishes, its
/// reply goes out, the process exits 0, and the log has every key.
#[test]
fn sigterm_during_a_long_command_exits_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().to_str().expect("utf-8 path");
    let args = ["--threads", "1", "--appendonly", "yes", "--dir", dir];
    let mut server = Server::start_with(&args);
    let port = server.port;
    fill(&mut server.raw());
    assert_eq!(server.raw().cmd_str(&["SET", "last", "written"]), "+OK\r\n");
    let keys = long_keys(port);
    wait_until_busy(port);
    signal(server.pid(), libc::SIGTERM);
    let status = server.wait_exit(EXIT_WITHIN).expect("redlockd exited");
    assert!(status.success(), "{status:?}");
    assert_whole_keys_reply(&keys.join().expect("reader"));
    assert_replayed(port, &args);
}

/// A second SIGINT while the first signal waits behind a long command exits
/// at once (status 1, as Redis's "You insist... exiting now."), saving the
/// append-only file first: the forced exit, which otherwise comes only
/// after a command longer than the 10 s grace.
#[test]
fn second_sigint_exits_at_once_and_saves_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path().to_str().expect("utf-8 path");
    let args = ["--threads", "1", "--appendonly", "yes", "--dir", dir];
    let mut server = Logged::start(&args);
    let port = server.server.port;
    fill(&mut Raw::connect(port));
    assert_eq!(Raw::connect(port).cmd_str(&["SET", "last", "written"]), "+OK\r\n");
    let keys = long_keys(port);
    wait_until_busy(port);
    signal(server.server.pid(), libc::SIGTERM);
    server.wait_for_log("Received SIGTERM scheduling shutdown");
    signal(server.server.pid(), libc::SIGINT);
    server.wait_for_log("You insist... exiting now.");
    let status = server.server.wait_exit(EXIT_WITHIN).expect("redlockd exited");
    assert_eq!(status.code(), Some(1), "{status:?}");
    let _ = keys.join();
    assert_replayed(port, &args);
}

/// SHUTDOWN from another client while KEYS * runs ends the process, with
/// one thread (SHUTDOWN waits for the command) and with two (SHUTDOWN runs
/// beside it).
#[test]
fn shutdown_during_a_long_command_ends_the_process() {
    for threads in ["1", "2"] {
        let mut server = Server::start_with(&["--threads", threads]);
        fill(&mut server.raw());
        assert_eq!(server.raw().cmd_str(&["SET", "last", "written"]), "+OK\r\n");
        let mut other = server.raw();
        let keys = long_keys(server.port);
        if threads == "1" {
            wait_until_busy(server.port);
        }
        other.send(&encode(&[b"SHUTDOWN"]));
        let status = server.wait_exit(EXIT_WITHIN).expect("redlockd exited");
        assert!(status.success(), "--threads {threads}: {status:?}");
        assert_eq!(other.read_until_closed(), b"", "SHUTDOWN has no reply");
        let _ = keys.join();
    }
}
