//! Small holes closed together: TCP keepalive on accepted sockets, maxclients
//! bounded by the open-files limit, CONFIG SET validation, the restart delay
//! gating every create-if-absent command, and IFDEQ/IFDNE digest syntax.
//! Differential against redis-server where Redis has the behaviour.

mod common;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Differential, Raw, Server, free_port};

// ---------------------------------------------------------------- keepalive

/// The server's side of its established connections, as `ss` shows them
/// with their timers: `timer:(keepalive,…)` marks SO_KEEPALIVE sockets.
fn server_sockets(port: u16) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-tnoH", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .expect("ss (iproute2) must be installed");
    assert!(
        out.status.success(),
        "ss failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether an `ss` line is the server side of the connection whose client end is `client`.
fn is_peer(line: &str, client: &std::net::TcpStream) -> bool {
    let peer = client.local_addr().unwrap().to_string();
    line.split_whitespace().nth(3) == Some(peer.as_str())
}

/// The server-side socket of the connection whose client end is `client`.
fn server_side_of(port: u16, client: &std::net::TcpStream) -> String {
    let lines = server_sockets(port);
    let found: Vec<&String> = lines.iter().filter(|l| is_peer(l, client)).collect();
    assert_eq!(found.len(), 1, "one server socket for {client:?} in {lines:?}");
    found[0].clone()
}

#[test]
fn accepted_sockets_get_tcp_keepalive_with_the_configured_idle_time() {
    let server = Server::start_with(&["--tcp-keepalive", "7"]);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    let line = server_side_of(server.port, &c.stream);
    // ss prints the time to the first probe: seconds here, "4min59sec" or
    // "5min" for 300.
    assert!(line.contains("timer:(keepalive,") && !line.contains("min"), "{line}");
    assert_eq!(
        c.cmd_str(&["CONFIG", "GET", "tcp-keepalive"]),
        "*2\r\n$13\r\ntcp-keepalive\r\n$1\r\n7\r\n"
    );

    // Redis's default is 300 seconds.
    let default = Server::start();
    let mut d = default.raw();
    assert_eq!(d.cmd(&["PING"]), b"+PONG\r\n");
    let line = server_side_of(default.port, &d.stream);
    assert!(line.contains("timer:(keepalive,") && line.contains("min"), "{line}");

    // 0 turns it off; CONFIG SET turns it on for connections accepted later.
    let off = Server::start_with(&["--tcp-keepalive", "0"]);
    let mut before = off.raw();
    assert_eq!(before.cmd(&["PING"]), b"+PONG\r\n");
    assert!(!server_side_of(off.port, &before.stream).contains("keepalive"));
    assert_eq!(before.cmd_str(&["CONFIG", "SET", "tcp-keepalive", "9"]), "+OK\r\n");
    let mut after = off.raw();
    assert_eq!(after.cmd(&["PING"]), b"+PONG\r\n");
    assert!(server_side_of(off.port, &after.stream).contains("timer:(keepalive,"));
    assert!(!server_side_of(off.port, &before.stream).contains("keepalive"));
}

#[test]
fn tls_connections_get_tcp_keepalive_too() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let tls_port = free_port();
    let server = Server::start_with(&[
        "--tcp-keepalive",
        "7",
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        cert.to_str().unwrap(),
        "--tls-key-file",
        key.to_str().unwrap(),
    ]);
    // The TLS listener is bound just after the address is announced.
    let mut client = None;
    assert!(common::eventually(Duration::from_secs(5), || {
        client = std::net::TcpStream::connect(("127.0.0.1", tls_port)).ok();
        client.is_some()
    }));
    let client = client.unwrap();
    // Keepalive is set when the socket is accepted, before the handshake.
    assert!(common::eventually(Duration::from_secs(5), || server_sockets(tls_port)
        .iter()
        .any(|l| is_peer(l, &client) && l.contains("timer:(keepalive,"))));
    drop(server);
}

// ---------------------------------------------------------------- maxclients

#[test]
fn config_set_validates_like_redis() {
    let mut d = Differential::new();
    d.run(&[
        &["CONFIG", "SET", "maxclients", "0"],
        &["CONFIG", "SET", "maxclients", "-1"],
        &["CONFIG", "SET", "maxclients", "abc"],
        &["CONFIG", "SET", "maxclients", "+5"],
        &["CONFIG", "SET", "maxclients", "05"],
        &["CONFIG", "SET", "maxclients", "1.5"],
        &["CONFIG", "SET", "maxclients", ""],
        &["CONFIG", "SET", "maxclients", "4294967296"],
        &["CONFIG", "SET", "timeout", "-1"],
        &["CONFIG", "SET", "timeout", "2147483648"],
        &["CONFIG", "SET", "tcp-keepalive", "-1"],
        &["CONFIG", "SET", "tcp-keepalive", "abc"],
        &["CONFIG", "SET", "tcp-keepalive", "2147483648"],
        // A parameter named twice, as spelled by the client.
        &["CONFIG", "SET", "maxclients", "100", "maxclients", "200"],
        &["CONFIG", "SET", "maxclients", "100", "MAXCLIENTS", "200"],
        &["CONFIG", "SET", "timeout", "1", "maxclients", "100", "timeout", "2"],
        // The first problem in argument order is the one reported.
        &["CONFIG", "SET", "NOSUCH", "1", "maxclients", "5", "maxclients", "4"],
        &["CONFIG", "SET", "maxclients", "5", "maxclients", "4", "nosuch", "1"],
        &["CONFIG", "SET", "maxclients", "0", "nosuch", "1"],
        // All or nothing: nothing changed by the refused commands above...
        &["CONFIG", "GET", "maxclients"],
        &["CONFIG", "GET", "timeout"],
        &["CONFIG", "SET", "maxclients", "50", "timeout", "-1"],
        &["CONFIG", "GET", "maxclients"],
        // ...and everything by an accepted one.
        &[
            "CONFIG",
            "SET",
            "maxclients",
            "50",
            "timeout",
            "5",
            "tcp-keepalive",
            "60",
        ],
        &["CONFIG", "GET", "maxclients"],
        &["CONFIG", "GET", "timeout"],
        &["CONFIG", "GET", "tcp-keepalive"],
        &["CONFIG", "SET", "maxclients", "10000"],
        &["CONFIG", "GET", "maxclients"],
    ]);
}

#[test]
fn maxclients_flag_below_one_is_refused() {
    let (status, stderr) = Server::start_expecting_failure(&["--maxclients", "0"]);
    assert!(!status.success(), "{stderr}");
    let (status, stderr) = Server::start_expecting_failure(&["--tcp-keepalive", "-1"]);
    assert!(!status.success(), "{stderr}");
}

/// redlockd or redis-server started under `prlimit --nofile=N:N`; killed on drop.
struct Limited {
    child: Child,
    port: u16,
    /// redlockd's log, read to the end once it exits.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Limited {
    fn redlockd(nofile: u32) -> Limited {
        let mut child = Command::new("prlimit")
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(env!("CARGO_BIN_EXE_redlockd"))
            .args(["--port", "0", "--log-level", "warning"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run prlimit (util-linux)");
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut limited = Limited {
            child,
            port: 0,
            stderr: Some(stderr),
        };
        let line = rx.recv_timeout(common::REPLY_TIMEOUT).unwrap_or_default();
        limited.port = match line.trim().rsplit(':').next().and_then(|p| p.parse().ok()) {
            Some(port) => port,
            None => panic!("redlockd did not start: {:?} {}", line, limited.log()),
        };
        limited
    }

    fn redis(nofile: u32) -> Limited {
        let port = free_port();
        let child = Command::new("prlimit")
            .arg(format!("--nofile={nofile}:{nofile}"))
            .args(["redis-server", "--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run prlimit redis-server");
        let limited = Limited {
            child,
            port,
            stderr: None,
        };
        assert!(
            common::eventually(Duration::from_secs(10), || std::net::TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "redis-server did not start"
        );
        limited
    }

    /// Stop the process and return what it logged.
    fn log(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr.take().map(|t| t.join().unwrap()).unwrap_or_default()
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn maxclients_is_lowered_to_what_the_open_files_limit_allows() {
    let mut ours = Limited::redlockd(64);
    let theirs = Limited::redis(64);
    let mut o = Raw::connect(ours.port);
    let mut r = Raw::connect(theirs.port);
    for cmd in [
        &["CONFIG", "GET", "maxclients"][..],
        &["CONFIG", "SET", "maxclients", "40"],
        &["CONFIG", "SET", "maxclients", "20"],
        &["CONFIG", "SET", "maxclients", "33"],
        &["CONFIG", "GET", "maxclients"],
        &["CONFIG", "SET", "maxclients", "32"],
        &["CONFIG", "GET", "maxclients"],
    ] {
        assert_eq!(o.cmd_str(cmd), r.cmd_str(cmd), "reply to {cmd:?} (left: redlockd)");
    }
    assert_eq!(
        o.cmd_str(&["CONFIG", "GET", "maxclients"]),
        "*2\r\n$10\r\nmaxclients\r\n$2\r\n32\r\n"
    );
    // 32 clients (with `o` / `r`) are served; the 33rd is told, not left hanging.
    for port in [ours.port, theirs.port] {
        let held: Vec<Raw> = (0..31)
            .map(|_| {
                let mut c = Raw::connect(port);
                assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
                c
            })
            .collect();
        let mut extra = Raw::connect(port);
        assert_eq!(extra.read_until_closed(), b"-ERR max number of clients reached\r\n");
        drop(held);
    }
    drop(o);
    let log = ours.log();
    assert!(
        log.contains("maxclients has been reduced to 32 to compensate for low ulimit"),
        "{log}"
    );
}

#[test]
fn too_few_open_files_for_any_client_stops_the_start() {
    let out = Command::new("prlimit")
        .arg("--nofile=32:32")
        .arg(env!("CARGO_BIN_EXE_redlockd"))
        .args(["--port", "0", "--log-level", "warning"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Your current 'ulimit -n' of 32 is not enough for the server to start"),
        "{stderr}"
    );
    // redis-server refuses to start the same way.
    let status = Command::new("prlimit")
        .args(["--nofile=32:32", "redis-server", "--port", &free_port().to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

// ---------------------------------------------------------------- restart delay

fn is_tryagain(reply: &str) -> bool {
    reply.starts_with("-TRYAGAIN instance restarting, lock grants resume in ")
}

/// Every command that creates a key only where none is.
const GRANTS: &[&[&str]] = &[
    &["SETNX", "k1", "v"],
    &["SET", "k2", "v", "NX"],
    &["SET", "k3", "v", "NX", "GET"],
    &["SET", "k4", "v", "IFNE", "x"],
    &["SET", "k5", "v", "IFDNE", "0123456789abcdef"],
    &["MSETNX", "k6", "v", "k7", "v"],
    &["RENAMENX", "source", "k8"],
    &["LOCK.ACQUIRE", "k9", "v", "PX", "60000"],
    // redis-py 2.10's LuaLock acquire script.
    &[
        "EVALSHA",
        "5688a2541c9edd77746bcd2385e65ff3639a664f",
        "1",
        "k10",
        "v",
        "60000",
    ],
];

#[test]
fn restart_delay_refuses_every_create_if_absent_command_until_it_ends() {
    let server = Server::start_with(&["--restart-delay", "3000"]);
    // The delay starts after the address is announced, so before this.
    let started = Instant::now();
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["SET", "source", "v"]), "+OK\r\n");
    for cmd in GRANTS {
        let reply = c.cmd_str(cmd);
        assert!(is_tryagain(&reply), "{cmd:?} during the delay: {reply}");
    }
    // Inside a transaction too.
    assert_eq!(c.cmd_str(&["MULTI"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["MSETNX", "k6", "v"]), "+QUEUED\r\n");
    assert_eq!(c.cmd_str(&["RENAMENX", "source", "k8"]), "+QUEUED\r\n");
    let exec = c.cmd_str(&["EXEC"]);
    assert!(
        exec.starts_with("*2\r\n-TRYAGAIN ") && exec.matches("\r\n-TRYAGAIN ").count() == 2,
        "{exec}"
    );
    // Overwrites are not grants.
    assert_eq!(c.cmd_str(&["RENAME", "source", "moved"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["MSET", "source", "v", "other", "v"]), "+OK\r\n");
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "too slow to check inside the delay"
    );
    assert_eq!(
        c.cmd_str(&["EXISTS", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10"]),
        ":0\r\n"
    );

    assert!(common::eventually(Duration::from_secs(10), || !is_tryagain(
        &c.cmd_str(&["SETNX", "k1", "v"])
    )));
    for cmd in &GRANTS[1..] {
        let reply = c.cmd_str(cmd);
        assert!(!reply.starts_with('-'), "{cmd:?} after the delay: {reply}");
    }
    assert_eq!(
        c.cmd_str(&["EXISTS", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10"]),
        ":10\r\n"
    );
}

// ---------------------------------------------------------------- digests

#[test]
fn ifdeq_and_ifdne_take_only_a_16_digit_hex_digest() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["SET", "k", "v"]), "+OK\r\n");
    let error = "-ERR The digest must be exactly 16 hexadecimal characters\r\n";
    for bad in [
        "",
        "abc",
        "0123456789abcde",
        "0123456789abcdef0",
        "0123456789abcdeg",
        "0x23456789abcdef",
        " 123456789abcdef",
    ] {
        for cond in ["IFDEQ", "IFDNE"] {
            assert_eq!(c.cmd_str(&["SET", "k", "new", cond, bad]), error, "SET {cond} {bad:?}");
            assert_eq!(c.cmd_str(&["SET", "absent", "new", cond, bad]), error);
            assert_eq!(c.cmd_str(&["DELEX", "k", cond, bad]), error, "DELEX {cond} {bad:?}");
        }
    }
    assert_eq!(c.cmd_str(&["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(c.cmd_str(&["EXISTS", "absent"]), ":0\r\n");
    // A well-formed digest, in either case, compares as before.
    let digest = c.cmd_str(&["DIGEST", "k"]);
    let digest = digest.lines().nth(1).unwrap().to_string();
    let upper = digest.to_ascii_uppercase();
    assert_eq!(c.cmd_str(&["SET", "k", "v", "IFDNE", &upper]), "$-1\r\n");
    assert_eq!(c.cmd_str(&["SET", "k", "w", "IFDEQ", &upper]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["DELEX", "k", "IFDEQ", &digest]), ":0\r\n");
    assert_eq!(c.cmd_str(&["DELEX", "k", "IFDNE", &digest]), ":1\r\n");
}
