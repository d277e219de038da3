//! Glob patterns from clients (KEYS, SCAN MATCH, CONFIG GET, COMMAND LIST
//! FILTERBY PATTERN) against the real binary: Redis's own regression tests
//! for hostile patterns, and the same patterns sent to redis-server with the
//! replies compared as sets.

mod common;
use std::collections::BTreeSet;

use common::{Differential, Raw, Server};
use redis_protocol::resp2::{decode::decode, types::OwnedFrame};

type Names = BTreeSet<Vec<u8>>;

fn frame(bytes: &[u8]) -> OwnedFrame {
    match decode(bytes) {
        Ok(Some((f, len))) if len == bytes.len() => f,
        other => panic!(
            "not one RESP2 frame: {other:?} from {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn bulks(f: OwnedFrame) -> Vec<Vec<u8>> {
    match f {
        OwnedFrame::Array(items) => items
            .into_iter()
            .map(|i| match i {
                OwnedFrame::BulkString(b) => b,
                other => panic!("not a bulk string: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// KEYS' reply, as a set.
fn keys(raw: &mut Raw, pattern: &[u8]) -> Names {
    bulks(frame(&raw.cmd_bytes(&[b"KEYS", pattern]))).into_iter().collect()
}

/// Every key a full SCAN MATCH iteration returns (bounded: no more calls
/// than keys plus one).
fn scan_all(raw: &mut Raw, pattern: &[u8], bound: usize) -> Names {
    let mut found = Names::new();
    let mut cursor = b"0".to_vec();
    for _ in 0..=bound {
        let reply = frame(&raw.cmd_bytes(&[b"SCAN", &cursor, b"MATCH", pattern, b"COUNT", b"100"]));
        let OwnedFrame::Array(mut parts) = reply else {
            panic!("SCAN reply {reply:?}")
        };
        assert_eq!(parts.len(), 2);
        found.extend(bulks(parts.pop().expect("keys")));
        match parts.pop() {
            Some(OwnedFrame::BulkString(next)) => cursor = next,
            other => panic!("SCAN cursor {other:?}"),
        }
        if cursor == b"0" {
            return found;
        }
    }
    panic!("SCAN did not finish within {bound} calls");
}

/// The names of CONFIG GET's flat name/value reply.
fn config_names(raw: &mut Raw, pattern: &[u8]) -> Names {
    bulks(frame(&raw.cmd_bytes(&[b"CONFIG", b"GET", pattern])))
        .into_iter()
        .step_by(2)
        .collect()
}

fn command_names(raw: &mut Raw, pattern: &[u8]) -> Names {
    let reply = raw.cmd_bytes(&[b"COMMAND", b"LIST", b"FILTERBY", b"PATTERN", pattern]);
    bulks(frame(&reply)).into_iter().collect()
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Redis's tests/unit/keyspace.tcl, "Regression for pattern matching long
/// nested loops" and "... very long nested loops": both answer at once with
/// no keys, through KEYS and SCAN MATCH (the connection's 10 s reply timeout
/// fails the test if the server is stuck).
#[test]
fn redis_regression_pattern_matching_nested_loops() {
    let server = Server::start();
    let mut c = server.raw();
    let long_a = vec![b'a'; 50_000];
    let very_long_pattern = b"*?".repeat(50_000);
    for (key, pattern) in [
        (
            &b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..],
            &b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"[..],
        ),
        (&long_a, &very_long_pattern),
    ] {
        assert_eq!(c.cmd_str(&["FLUSHDB"]), "+OK\r\n");
        assert_eq!(c.cmd_bytes(&[b"SET", key, b"1"]), b"+OK\r\n");
        assert_eq!(c.cmd_bytes(&[b"KEYS", pattern]), b"*0\r\n");
        assert_eq!(
            c.cmd_bytes(&[b"SCAN", b"0", b"MATCH", pattern]),
            b"*2\r\n$1\r\n0\r\n*0\r\n"
        );
    }
    // The issue's case: the same pattern against a 10,000-byte key, many times.
    assert_eq!(c.cmd_str(&["FLUSHDB"]), "+OK\r\n");
    for i in 0..100 {
        let mut key = vec![b'a'; 10_000];
        key.extend_from_slice(i.to_string().as_bytes());
        assert_eq!(c.cmd_bytes(&[b"SET", &key, b"1"]), b"+OK\r\n");
    }
    assert_eq!(
        c.cmd_str(&["KEYS", "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b"]),
        "*0\r\n"
    );
    assert_eq!(c.cmd_str(&["DBSIZE"]), ":100\r\n");
}

/// Keys that exercise every pattern feature, bytes above 0x7f and NUL
/// included, and the empty key (which only KEYS * and SCAN MATCH * list).
const KEYS: &[&[u8]] = &[
    b"",
    b"a",
    b"b",
    b"A",
    b"B",
    b"ab",
    b"aB",
    b"abc",
    b"aXbYc",
    b"hello",
    b"hallo",
    b"hillo",
    b"heeeello",
    b"Hello",
    b"[",
    b"]",
    b"^",
    b"-",
    b"_",
    b"`",
    b"*",
    b"?",
    b"\\",
    b"[a]",
    b"a[b",
    b"a]b",
    b"a-b",
    b"a^b",
    b"a*b",
    b"a?b",
    b"a\\b",
    b"a\\",
    b"lock:1",
    b"lock:*",
    b"LOCK:x",
    b"\x00",
    b"x\x00y",
    b"\x10",
    b"\x7f",
    b"\x80",
    b"\xc8",
    b"\xff",
    b"a\xffb",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
];

/// Patterns for the corners of Redis's matcher (see src/glob.rs).
const PATTERNS: &[&[u8]] = &[
    b"*",
    b"**",
    b"***",
    b"",
    b"?",
    b"??",
    b"*?",
    b"?*",
    b"*??",
    b"a*",
    b"*a",
    b"*b*",
    b"a*b*c",
    b"h?llo",
    b"h*llo",
    b"h[ae]llo",
    b"h[^e]llo",
    b"h[a-b]llo",
    b"h[b-a]llo",
    b"[a-z]",
    b"[z-a]",
    b"[A-Z]",
    b"[^a-z]",
    b"[Z-a]",
    b"[a-Z]",
    b"[",
    b"[^",
    b"a[",
    b"a[^",
    b"a[b",
    b"[a",
    b"[]",
    b"[]]",
    b"[]a]",
    b"[^]a]",
    b"[^]",
    b"[a-]b]",
    b"[a-]",
    b"[a-",
    b"[-]",
    b"[-a]",
    b"[a-b-c]",
    b"[\\]]",
    b"[\\-]",
    b"[\\",
    b"[a\\",
    b"[\\a]",
    b"[[]",
    b"[\\[]",
    b"\\",
    b"a\\",
    b"a\\\\",
    b"\\*",
    b"\\?",
    b"\\[",
    b"\\[a]",
    b"a\\*b",
    b"a[\\*]b",
    b"a[*?]b",
    b"[*?]",
    b"[a-\xff]",
    b"[\xff-a]",
    b"[\x80-\xff]",
    b"[^\x00-\x7f]",
    b"a[\x00-\xff]b",
    b"x?y",
    b"x[\x00]y",
    b"\x00",
    b"lock:\\*",
    b"lock:*",
    b"LOCK:*",
    b"[lL]ock:?",
    b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
    b"*a*a*a*a*",
    b"*a*a*a*a*b",
    b"a*?",
];

/// A fixed stream of small random patterns over the pattern alphabet (a
/// xorshift, so failures reproduce).
fn random_patterns(n: usize) -> Vec<Vec<u8>> {
    const ALPHABET: &[u8] = b"*?[]^-\\abAB\xc8";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let len = (next() % 7) as usize;
            (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect()
        })
        .collect()
}

/// KEYS and SCAN MATCH with each pattern against redis-server: the same set
/// of keys.
#[test]
fn keys_and_scan_match_agree_with_redis() {
    let mut d = Differential::new();
    for key in KEYS {
        d.check_raw(&common::encode(&[b"SET", key, b"1"]), 1);
    }
    let random = random_patterns(400);
    let patterns = PATTERNS.iter().copied().chain(random.iter().map(|p| &p[..]));
    let mut matched_some = 0;
    for pattern in patterns {
        let theirs = keys(&mut d.r, pattern);
        let ours = keys(&mut d.o, pattern);
        assert_eq!(
            ours.iter().map(|k| show(k)).collect::<Vec<_>>(),
            theirs.iter().map(|k| show(k)).collect::<Vec<_>>(),
            "KEYS {:?} (left: redlockd, right: redis-server)",
            show(pattern)
        );
        let scanned = scan_all(&mut d.o, pattern, KEYS.len());
        assert_eq!(
            scanned,
            scan_all(&mut d.r, pattern, KEYS.len()),
            "SCAN MATCH {:?}",
            show(pattern)
        );
        assert_eq!(scanned, ours, "SCAN MATCH {:?} and KEYS disagree", show(pattern));
        matched_some += !ours.is_empty() as usize;
    }
    assert!(
        matched_some > 100,
        "the patterns should select keys, not only miss: {matched_some}"
    );
}

/// CONFIG GET and COMMAND LIST FILTERBY PATTERN match without case. redis-server
/// knows more names than redlockd, so compare among the names both know.
#[test]
fn config_get_and_command_list_patterns_agree_with_redis() {
    let mut d = Differential::new();
    for (what, list) in [
        ("CONFIG GET", config_names as fn(&mut Raw, &[u8]) -> Names),
        ("COMMAND LIST FILTERBY PATTERN", command_names),
    ] {
        let ours_all = list(&mut d.o, b"*");
        let theirs_all = list(&mut d.r, b"*");
        let both: Names = ours_all.intersection(&theirs_all).cloned().collect();
        assert!(both.len() > 10, "{what}: too few names in common: {both:?}");
        let patterns: &[&[u8]] = &[
            b"*",
            b"max*",
            b"MAX*",
            b"*PORT",
            b"*port*",
            b"[m]axclients",
            b"[M-N]AXCLIENTS",
            b"[^a-l]*",
            b"maxclient?",
            b"*-*",
            b"APPEND*",
            b"[\\A]ppendonly",
            b"\\Appendonly",
            b"d?r",
            b"get",
            b"GET",
            b"*SET*",
            b"[a-c]*",
            b"[C-A]*",
            b"[",
            b"*[",
            b"**",
            b"",
        ];
        for pattern in patterns {
            let ours: Names = list(&mut d.o, pattern).intersection(&both).cloned().collect();
            let theirs: Names = list(&mut d.r, pattern).intersection(&both).cloned().collect();
            assert_eq!(
                ours,
                theirs,
                "{what} {:?} (left: redlockd, right: redis-server)",
                show(pattern)
            );
        }
    }
    // A name without `[*?` is looked up, not matched: `\` is no escape there,
    // and the reply spells the name as asked. One name per reply, so the
    // bytes compare (the order of several is Redis's hash order).
    d.run(&[
        &["CONFIG", "GET", "DATABASES"],
        &["CONFIG", "GET", "DATABASES", "databases"],
        &["CONFIG", "GET", "databas?", "DATABASES"],
        &["CONFIG", "GET", "\\databases"],
        &["CONFIG", "GET", "\\d?tabases"],
        &["CONFIG", "GET", "[\\D]atabases"],
        &["CONFIG", "GET", "no-such-parameter"],
    ]);
}
