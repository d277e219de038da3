//! Byte-exact protocol behaviour over raw sockets: split frames, large
//! requests in small pieces, limits, and that bad input never takes the
//! server down.

mod common;
use std::io::Write;
use std::time::Duration;

use common::{Raw, Server, encode};

#[test]
fn a_request_split_at_every_byte_boundary() {
    let server = Server::start();
    let req = encode(&[b"SET", b"split", b"value with\r\nCRLF"]);
    for cut in 1..req.len() {
        let mut c = server.raw();
        c.send(&req[..cut]);
        std::thread::sleep(Duration::from_millis(1));
        c.send(&req[cut..]);
        assert_eq!(c.read_frame(), b"+OK\r\n", "cut at {cut}");
    }
    let mut c = server.raw();
    assert_eq!(c.cmd(&["GET", "split"]), b"$16\r\nvalue with\r\nCRLF\r\n");
}

#[test]
fn large_request_in_small_chunks() {
    let server = Server::start();
    let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
    for i in 0..20_000 {
        args.push(format!("key:{i}").into_bytes());
        args.push(format!("value:{i}").into_bytes());
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let req = encode(&refs);
    let mut c = server.raw();
    for chunk in req.chunks(1024) {
        c.send(chunk);
    }
    assert_eq!(c.read_frame(), b"+OK\r\n");
    assert_eq!(c.cmd(&["DBSIZE"]), b":20000\r\n");
    assert_eq!(c.cmd(&["GET", "key:19999"]), b"$11\r\nvalue:19999\r\n");
}

#[test]
fn a_large_bulk_value_round_trips() {
    let server = Server::start();
    let value = vec![b'x'; 8 * 1024 * 1024];
    let mut c = server.raw();
    let req = encode(&[b"SET", b"big", &value]);
    for chunk in req.chunks(64 * 1024) {
        c.send(chunk);
    }
    assert_eq!(c.read_frame(), b"+OK\r\n");
    assert_eq!(c.cmd(&["STRLEN", "big"]), b":8388608\r\n");
    let reply = c.cmd(&["GET", "big"]);
    assert_eq!(reply.len(), value.len() + "$8388608\r\n\r\n".len());
}

#[test]
fn pipelined_replies_arrive_in_order() {
    let server = Server::start();
    let mut c = server.raw();
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(encode(&[b"SET", format!("p{i}").as_bytes(), format!("{i}").as_bytes()]));
        batch.extend(encode(&[b"GET", format!("p{i}").as_bytes()]));
    }
    c.send(&batch);
    for i in 0..1000 {
        assert_eq!(c.read_frame(), b"+OK\r\n");
        let v = format!("{i}");
        assert_eq!(c.read_frame(), format!("${}\r\n{v}\r\n", v.len()).into_bytes());
    }
}

/// Each case: the error text, the connection closed, and the server still answering.
fn assert_protocol_error(server: &Server, input: &[u8], expected: &str) {
    let mut c = server.raw();
    c.send(input);
    let got = c.read_until_closed();
    assert_eq!(
        String::from_utf8_lossy(&got),
        expected,
        "input {:?}",
        String::from_utf8_lossy(&input[..input.len().min(40)])
    );
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn limits_are_enforced_on_headers() {
    let server = Server::start_with(&["--proto-max-bulk-len", "1mb"]);
    assert_protocol_error(
        &server,
        b"*1048577\r\n",
        "-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_protocol_error(
        &server,
        b"*2\r\n$3\r\nSET\r\n$1048577\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_protocol_error(
        &server,
        b"*1\r\n$99999999999999999999\r\n",
        "-ERR Protocol error: invalid bulk length\r\n",
    );
    let long_inline = vec![b'a'; 64 * 1024 + 10];
    assert_protocol_error(&server, &long_inline, "-ERR Protocol error: too big inline request\r\n");
    let mut long_header = b"*".to_vec();
    long_header.extend(vec![b'1'; 64 * 1024 + 10]);
    assert_protocol_error(
        &server,
        &long_header,
        "-ERR Protocol error: too big mbulk count string\r\n",
    );
    // Exactly at the bulk limit is fine.
    let mut c = server.raw();
    let value = vec![b'v'; 1024 * 1024];
    c.send(&encode(&[b"SET", b"k", &value]));
    assert_eq!(c.read_frame(), b"+OK\r\n");
}

#[test]
fn a_huge_claimed_length_allocates_nothing_up_front() {
    let server = Server::start();
    let rss_before = rss_kb(server.pid());
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut c = server.raw();
        // Claims 500 MB but sends 5 bytes.
        c.send(b"*2\r\n$3\r\nSET\r\n$524288000\r\nhello");
        conns.push(c);
    }
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n");
    let rss_after = rss_kb(server.pid());
    assert!(
        rss_after < rss_before + 100 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn garbage_never_kills_the_server() {
    let server = Server::start();
    let inputs: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02\xff\r\n".to_vec(),
        b"*-5\r\n".to_vec(),
        b"*1\r\n$0\r\n\r\n".to_vec(),
        b"*2\r\n$4\r\nPING\r\n$-1\r\n".to_vec(),
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvvv\r\n".to_vec(),
        b"$5\r\nhello\r\n".to_vec(),
        b":1\r\n".to_vec(),
        b"*1\r\n$4\r\nPINGxx".to_vec(),
        (0..=255u8).collect(),
    ];
    for input in inputs {
        let mut c = server.raw();
        c.send(&input);
        c.stream.shutdown(std::net::Shutdown::Write).ok();
        let _ = c.read_until_closed();
        assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n", "after {input:?}");
    }
}

#[test]
fn empty_command_name_and_odd_names() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(
        c.cmd_str(&[""]),
        "-ERR unknown command '', with args beginning with: \r\n"
    );
    let long = "x".repeat(200);
    let reply = c.cmd_str(&[&long, "a"]);
    assert!(reply.starts_with("-ERR unknown command 'xxxx"), "{reply}");
    assert!(reply.len() < 300, "name is truncated: {reply}");
    assert_eq!(c.cmd_str(&["pInG"]), "+PONG\r\n");
}

#[test]
fn quit_replies_then_closes() {
    let server = Server::start();
    let mut c = server.raw();
    c.send(b"PING\r\nQUIT\r\nPING\r\n");
    assert_eq!(c.read_until_closed(), b"+PONG\r\n+OK\r\n");
}

#[test]
fn maxclients_refuses_the_next_connection() {
    let server = Server::start_with(&["--maxclients", "3"]);
    let mut held: Vec<Raw> = (0..3).map(|_| server.raw()).collect();
    for c in held.iter_mut() {
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    }
    let mut extra = server.raw();
    assert_eq!(extra.read_until_closed(), b"-ERR max number of clients reached\r\n");
    drop(held.pop());
    assert!(common::eventually(Duration::from_secs(5), || {
        let mut c = server.raw();
        c.send(b"PING\r\n");
        c.read_until_closed_or_frame() == b"+PONG\r\n"
    }));
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = Server::start_with(&["--timeout", "1"]);
    let mut idle = server.raw();
    assert_eq!(idle.cmd(&["PING"]), b"+PONG\r\n");
    // Closed within a bounded wait (the timeout is 1 s; the read timeout is 10 s).
    assert_eq!(idle.read_until_closed(), b"");
}

#[test]
fn shutdown_command_exits_zero() {
    let mut server = Server::start();
    let mut c = server.raw();
    c.cmd(&["SET", "k", "v"]);
    c.send(&encode(&[b"SHUTDOWN"]));
    let _ = c.read_until_closed();
    let status = server.wait_exit(Duration::from_secs(10)).expect("server exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_exits_zero() {
    let mut server = Server::start();
    assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n");
    let pid = server.pid().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = server.wait_exit(Duration::from_secs(10)).expect("server exited");
    assert!(status.success(), "{status:?}");
}

#[test]
fn many_connections_dropped_mid_command() {
    let server = Server::start();
    let mut c = server.raw();
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    let before = rss_kb(server.pid());
    // 2,000 connections, each dropped in the middle of a 1 MiB bulk argument.
    for _ in 0..40 {
        let mut conns = Vec::new();
        for _ in 0..50 {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
            let _ = s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\npartial");
            let _ = s.write_all(&[b'x'; 16 * 1024]);
            conns.push(s);
        }
        drop(conns);
    }
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    assert!(common::eventually(Duration::from_secs(10), || {
        let list = c.cmd_str(&["CLIENT", "LIST"]);
        list.lines().filter(|l| l.contains("id=")).count() == 1
    }));
    let after = rss_kb(server.pid());
    assert!(after < before + 32 * 1024, "RSS went from {before} kB to {after} kB");
    eprintln!("dropped connections: RSS {before} kB before, {after} kB after");
}

/// Inputs that crashed a fuzz target once (tests/data/fuzz-crash-*.bin):
/// the server must answer them and stay up.
#[test]
fn fuzz_regressions() {
    let server = Server::start();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.file_name().unwrap().to_string_lossy().starts_with("fuzz-crash-") {
            continue;
        }
        let input = std::fs::read(&path).unwrap();
        let mut c = server.raw();
        c.send(&input);
        c.stream.shutdown(std::net::Shutdown::Write).ok();
        let _ = c.read_until_closed();
        assert_eq!(server.raw().cmd(&["PING"]), b"+PONG\r\n", "after {}", path.display());
        seen += 1;
    }
    assert!(seen >= 1);
}
