//! A damaged append-only file: only a torn last record (a crash mid-write)
//! may be cut off, after a copy of the file is kept; any other damage makes
//! redlockd refuse to start, naming the offset, and leave the file alone.

mod common;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

/// How long a refusing server may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

fn aof_args(dir: &Path) -> Vec<String> {
    vec![
        "--appendonly".into(),
        "yes".into(),
        "--appendfsync".into(),
        "always".into(),
        "--dir".into(),
        dir.display().to_string(),
    ]
}

fn start(dir: &Path) -> Server {
    let args = aof_args(dir);
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    Server::start_with(&refs)
}

/// The keys the fixture log holds, with the reply GET gives for each.
const KEPT: &[(&str, &str)] = &[
    ("plain", "$5\r\nvalue\r\n"),
    ("lock:a", "$7\r\ntoken-a\r\n"),
    ("lock:b", "$7\r\ntoken-b\r\n"),
    ("timed", "$1\r\nt\r\n"),
    ("counter", "$1\r\n2\r\n"),
    ("doomed", "$-1\r\n"),
];

/// A real log, written by redlockd: plain values, locks (with fences and
/// deadlines), a DEL, an EXPIRE, and `last` as the final record.
fn real_log() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = server.raw();
    for (cmd, reply) in [
        (&["SET", "plain", "value"][..], "+OK\r\n"),
        (&["SET", "lock:a", "token-a", "NX", "PX", "600000"], "+OK\r\n"),
        (&["LOCK.ACQUIRE", "lock:b", "token-b", "PX", "600000"], ":"),
        (&["SET", "doomed", "x"], "+OK\r\n"),
        (&["DEL", "doomed"], ":1\r\n"),
        (&["SET", "timed", "t"], "+OK\r\n"),
        (&["EXPIRE", "timed", "600"], ":1\r\n"),
        (&["INCR", "counter"], ":1\r\n"),
        (&["INCR", "counter"], ":2\r\n"),
        (&["SET", "last", "the-final-record"], "+OK\r\n"),
    ] {
        // A lock grant replies with its fence: only its type is known.
        let got = c.cmd_str(cmd);
        assert!(got == reply || (reply == ":" && got.starts_with(':')), "{cmd:?}: {got}");
    }
    // appendfsync always: everything acknowledged is in the file.
    server.kill9();
    std::fs::read(dir.path().join("appendonly.aof")).unwrap()
}

/// Offsets of every occurrence of `needle` in `data`.
fn find_all(data: &[u8], needle: &[u8]) -> Vec<usize> {
    data.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// A directory holding `bytes` as its log.
fn dir_with_log(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appendonly.aof");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// Start on a damaged log: the process must exit non-zero within
/// [`EXIT_WITHIN`], name an offset on stderr, and leave the file as it was
/// (no copy made either).
fn assert_refuses(log: &[u8], what: &str) -> String {
    let (dir, path) = dir_with_log(log);
    let mut child = Command::new(env!("CARGO_BIN_EXE_redlockd"))
        .args(["--port", "0", "--log-level", "warning"])
        .args(aof_args(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start redlockd");
    let deadline = Instant::now() + EXIT_WITHIN;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: redlockd started on a corrupt log (still running after {EXIT_WITHIN:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "{what}: exit status {status}");
    assert!(stderr.contains("at offset"), "{what}: no offset named: {stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), log, "{what}: the log was changed");
    assert!(
        !dir.path().join("appendonly.aof.bak").exists(),
        "{what}: a copy was made though nothing was cut"
    );
    stderr
}

#[test]
fn a_torn_last_record_is_cut_and_the_original_kept() {
    let log = real_log();
    let last = *find_all(&log, b"*6\r\n").last().unwrap();
    for cut in [1, 2, 5, log.len() - last - 1] {
        let torn = &log[..log.len() - cut];
        let (dir, path) = dir_with_log(torn);
        let server = start(dir.path());
        let mut c = server.raw();
        for (key, value) in KEPT {
            assert_eq!(c.cmd_str(&["GET", key]), *value, "{key} after cutting {cut} bytes");
        }
        assert_eq!(
            c.cmd_str(&["EXISTS", "last"]),
            ":0\r\n",
            "only the torn record is dropped"
        );
        let ttl: i64 = c.cmd_str(&["TTL", "timed"])[1..].trim().parse().unwrap();
        assert!((500..=600).contains(&ttl), "the EXPIRE survived: ttl {ttl}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            &log[..last],
            "cut at the torn record's start"
        );
        assert_eq!(
            std::fs::read(dir.path().join("appendonly.aof.bak")).unwrap(),
            torn,
            "the copy holds the original bytes"
        );
    }
}

#[test]
fn a_length_whose_crlf_was_overwritten_in_the_middle_refuses_to_start() {
    let log = real_log();
    // `$13\r\n` precedes each 13-digit unix-ms deadline (the locks, the
    // EXPIRE). Overwritten by digits, the header reads as a length far past
    // the end of the file: what used to pass for a torn last record.
    let headers = find_all(&log, b"$13\r\n");
    assert!(headers.len() >= 3, "fixture has deadlines");
    let at = headers[headers.len() / 2] + 3;
    assert!(at < log.len() / 2 + log.len() / 4, "in the middle");
    for overwrite in [&b"00"[..], b"XX", b"\n\r"] {
        let mut bad = log.clone();
        bad[at..at + 2].copy_from_slice(overwrite);
        assert_refuses(&bad, &format!("CRLF at {at} overwritten by {overwrite:?}"));
    }
}

#[test]
fn a_length_digit_raised_in_the_middle_refuses_to_start() {
    let log = real_log();
    let headers = find_all(&log, b"$13\r\n");
    let at = headers[headers.len() / 2] + 1;
    for digit in [b'2', b'9'] {
        let mut bad = log.clone();
        bad[at] = digit;
        let stderr = assert_refuses(&bad, &format!("length at {at} raised to {}", digit as char));
        assert!(stderr.contains("offset"), "{stderr}");
    }
    // A length raised so far that it claims past the end of the file.
    let mut bad = log.clone();
    let digits = find_all(&log, b"$5\r\nvalue").first().copied().unwrap() + 1;
    bad[digits] = b'9';
    bad.splice(digits..digits, b"99999".iter().copied());
    assert_refuses(&bad, "a length past the end of the file, early in it");
}

#[test]
fn garbage_in_the_first_record_refuses_to_start() {
    let log = real_log();
    for (at, garbage) in [(0, &b"GARBAGE"[..]), (4, b"$x"), (8, b"RL.SEX"), (1, b"9")] {
        let mut bad = log.clone();
        bad[at..at + garbage.len()].copy_from_slice(garbage);
        let stderr = assert_refuses(&bad, &format!("{garbage:?} at {at}"));
        assert!(stderr.contains("offset 0"), "{stderr}");
    }
}

#[test]
fn damage_anywhere_refuses_to_start() {
    let log = real_log();
    // Seven offsets spread over the file, each moved to the next structural
    // byte (a CR or the LF after it: no value in the fixture holds one), so
    // the damage is detectable without checksums.
    for k in 1..8 {
        let from = log.len() * k / 8;
        let cr = from + log[from..].iter().position(|&b| b == b'\r').unwrap();
        let at = if k % 2 == 0 { cr } else { cr + 1 };
        let mut bad = log.clone();
        bad[at] = b'X';
        let stderr = assert_refuses(&bad, &format!("byte {at} of {} overwritten", log.len()));
        assert!(
            stderr.contains(&format!("offset {at}")),
            "names the damaged byte {at}: {stderr}"
        );
    }
}
