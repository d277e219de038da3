//! Who may talk to the server, and what a hostile or stalled client can
//! cost it: passwords, protected mode, output limits, the restart delay.

mod common;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Server, encode};

#[test]
fn requirepass_gates_every_command_but_auth_and_hello() {
    let server = Server::start_with(&["--requirepass", "s3cret"]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd_str(&["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(
        c.cmd_str(&["NOSUCH"]),
        "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
    );
    assert!(
        c.cmd_str(&["HELLO", "3"])
            .starts_with("-NOAUTH HELLO must be called with the client already authenticated")
    );
    assert_eq!(
        c.cmd_str(&["AUTH", "wrong"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        c.cmd_str(&["AUTH", "someone", "s3cret"]),
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd_str(&["AUTH", "s3cret"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["SET", "k", "v"]), "+OK\r\n");
    // RESET de-authenticates.
    assert_eq!(c.cmd_str(&["RESET"]), "+RESET\r\n");
    assert_eq!(c.cmd_str(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
    // HELLO with AUTH authenticates and switches protocol at once.
    assert!(
        c.cmd_str(&["HELLO", "3", "AUTH", "default", "nope"])
            .starts_with("-WRONGPASS")
    );
    assert!(
        c.cmd_str(&["HELLO", "3", "AUTH", "default", "s3cret"])
            .starts_with("%7\r\n")
    );
    assert_eq!(c.cmd_str(&["GET", "k"]), "$1\r\nv\r\n");
    // Commands queued in MULTI are refused too before AUTH.
    let mut d = server.raw();
    assert_eq!(d.cmd_str(&["MULTI"]), "-NOAUTH Authentication required.\r\n");
    // The password can change at run time.
    assert_eq!(c.cmd_str(&["CONFIG", "SET", "requirepass", "other"]), "+OK\r\n");
    assert!(d.cmd_str(&["AUTH", "s3cret"]).starts_with("-WRONGPASS"));
    assert_eq!(d.cmd_str(&["AUTH", "default", "other"]), "+OK\r\n");
}

#[test]
fn unauthenticated_clients_cannot_send_large_requests() {
    let server = Server::start_with(&["--requirepass", "pw"]);
    let mut c = server.raw();
    c.send(b"*11\r\n");
    assert_eq!(
        c.read_until_closed(),
        b"-ERR Protocol error: unauthenticated multibulk length\r\n"
    );
    let mut c = server.raw();
    c.send(b"*2\r\n$3\r\nGET\r\n$100000\r\n");
    assert_eq!(
        c.read_until_closed(),
        b"-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    // Once authenticated, the normal limits apply.
    let mut c = server.raw();
    c.cmd(&["AUTH", "pw"]);
    let big = vec![b'x'; 100_000];
    assert_eq!(c.cmd_bytes(&[b"SET", b"k", &big]), b"+OK\r\n");
}

fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&src.into()).unwrap();
    let dst: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.connect(&dst.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn talk(mut s: TcpStream) -> String {
    s.write_all(b"PING\r\n").unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.ends_with(b"\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Redis treats only 127.0.0.1 and ::1 as local; a client whose source is
/// another loopback address (127.0.0.2) counts as remote, which lets this
/// test exercise protected mode without leaving the machine.
#[test]
fn protected_mode_refuses_non_local_clients_without_a_password() {
    let open = Server::start_with(&["--bind", "0.0.0.0"]);
    assert_eq!(talk(connect_from("127.0.0.1", open.port)), "+PONG\r\n");
    let refused = talk(connect_from("127.0.0.2", open.port));
    assert!(
        refused.starts_with("-DENIED Redis is running in protected mode"),
        "{refused}"
    );
    // A password lifts it (the client must then AUTH as usual).
    let with_pass = Server::start_with(&["--bind", "0.0.0.0", "--requirepass", "pw"]);
    assert_eq!(
        talk(connect_from("127.0.0.2", with_pass.port)),
        "-NOAUTH Authentication required.\r\n"
    );
    // So does turning protected mode off.
    let off = Server::start_with(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
    assert_eq!(talk(connect_from("127.0.0.2", off.port)), "+PONG\r\n");
    let mut admin = open.raw();
    assert_eq!(admin.cmd(&["CONFIG", "SET", "protected-mode", "no"]), b"+OK\r\n");
    assert_eq!(talk(connect_from("127.0.0.2", open.port)), "+PONG\r\n");
}

#[test]
fn a_reply_over_the_hard_output_limit_disconnects() {
    let server = Server::start_with(&["--client-output-buffer-limit", "normal 1mb 0 0"]);
    let mut c = server.raw();
    let big = vec![b'x'; 2 * 1024 * 1024];
    assert_eq!(c.cmd_bytes(&[b"SET", b"big", &big]), b"+OK\r\n");
    c.send(&encode(&[b"GET", b"big"]));
    assert_eq!(c.read_until_closed(), b"");
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    let server = Server::start();
    let mut c = server.raw();
    let value = vec![b'v'; 1024 * 1024];
    assert_eq!(c.cmd_bytes(&[b"SET", b"mb", &value]), b"+OK\r\n");
    let rss = |pid: u32| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let before = rss(server.pid());
    // 2000 GETs of 1 MiB = 2 GB of replies the client never reads.
    let mut stalled = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stalled.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let get = encode(&[b"GET", b"mb"]);
    for _ in 0..2000 {
        if stalled.write_all(&get).is_err() {
            break; // the server stopped reading: backpressure
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let after = rss(server.pid());
    assert!(after < before + 64 * 1024, "RSS grew from {before} kB to {after} kB");
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n", "others are still served");
}

#[test]
fn restart_delay_refuses_lock_grants_only() {
    let server = Server::start_with(&["--restart-delay", "60000"]);
    let mut c = server.raw();
    let tryagain = c.cmd_str(&["SET", "lock", "tok", "NX", "PX", "1000"]);
    assert!(
        tryagain.starts_with("-TRYAGAIN instance restarting, lock grants resume in "),
        "{tryagain}"
    );
    assert!(
        c.cmd_str(&["LOCK.ACQUIRE", "lock", "tok", "PX", "1000"])
            .starts_with("-TRYAGAIN")
    );
    assert!(c.cmd_str(&["SETNX", "lock", "tok"]).starts_with("-TRYAGAIN"));
    assert!(c.cmd_str(&["SET", "lock", "tok", "IFNE", "x"]).starts_with("-TRYAGAIN"));
    // npm redlock's acquire script and redis-py's release script:
    assert!(
        c.cmd_str(&[
            "EVALSHA",
            "96da70f7716f27d278a5218544df37fd8b0a5e4c",
            "1",
            "lock",
            "v",
            "1000"
        ])
        .starts_with("-TRYAGAIN")
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", "c3f8721cbb97f72bc19e972846bd7aaf91901658", "1", "lock", "v"]),
        ":0\r\n"
    );
    // Everything else works.
    assert_eq!(c.cmd_str(&["SET", "plain", "v"]), "+OK\r\n");
    assert_eq!(c.cmd_str(&["INCR", "n"]), ":1\r\n");
    assert_eq!(c.cmd_str(&["DELEX", "plain", "IFEQ", "v"]), ":1\r\n");
    // And grants resume once the delay has passed.
    let short = Server::start_with(&["--restart-delay", "100"]);
    let mut s = short.raw();
    assert!(common::eventually(Duration::from_secs(10), || s
        .cmd(&["SET", "lock", "tok", "NX", "PX", "1000"])
        == b"+OK\r\n"));
}

#[test]
fn ten_thousand_idle_connections() {
    // This process holds the client ends: make room for them (the server
    // raises its own limit the same way).
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain get/setrlimit on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    let server = Server::start_with(&["--maxclients", "10100"]);
    // Ten threads open 1,000 connections each (connects are slow in some
    // sandboxes; in parallel the test stays short).
    let port = server.port;
    let openers: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                (0..1000)
                    .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let conns: Vec<TcpStream> = openers.into_iter().flat_map(|t| t.join().expect("opener")).collect();
    assert_eq!(conns.len(), 10_000);
    let mut c = server.raw();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    assert!(common::eventually(Duration::from_secs(20), || c
        .cmd_str(&["INFO", "clients"])
        .contains("connected_clients:10001\r\n")));
    drop(conns);
    assert!(common::eventually(Duration::from_secs(20), || c
        .cmd_str(&["INFO", "clients"])
        .contains("connected_clients:1\r\n")));
}
