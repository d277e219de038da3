//! Differential tests: the same commands to Debian's redis-server and to
//! redlockd, replies compared byte for byte. Wherever Redis defines the
//! behaviour, this is the test: it finds wording and edge-case drift that
//! hand-written expectations miss.

mod common;
use common::Differential;

#[test]
fn strings_get_set_and_options() {
    let mut d = Differential::new();
    d.run(&[
        &["GET", "missing"],
        &["SET", "k", "v"],
        &["GET", "k"],
        &["SET", "k", "v2", "NX"],
        &["SET", "k", "v2", "XX"],
        &["SET", "new", "v", "XX"],
        &["SET", "k", "v3", "GET"],
        &["SET", "absent", "v", "GET"],
        &["SET", "k", "v4", "NX", "GET"],
        &["SET", "k", "v", "nx", "xx"],
        &["SET", "k", "v", "EX", "10", "PX", "100"],
        &["SET", "k", "v", "EX", "10", "EX", "10"],
        &["SET", "k", "v", "KEEPTTL", "EX", "10"],
        &["SET", "k", "v", "KEEPTTL", "KEEPTTL"],
        &["SET", "k", "v", "NX", "NX"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "EX", "0"],
        &["SET", "k", "v", "EX", "-5"],
        &["SET", "k", "v", "PX", "abc"],
        &["SET", "k", "v", "EX", "abc", "NX", "XX"],
        &["SET", "k", "v", "EX", "9223372036854775807"],
        &["SET", "k", "v", "PXAT", "0"],
        &["SET", "k", "v", "FOO"],
        &["SET", "k", "v", "PERSIST"],
        &["SET", "k"],
        &["GET"],
        &["GET", "a", "b"],
        &["SETNX", "k", "x"],
        &["SETNX", "fresh", "x"],
        &["GETSET", "k", "y"],
        &["GETSET", "nokey", "y"],
        &["GETDEL", "nokey2"],
        &["GETDEL", "k"],
        &["GET", "k"],
        &["SETEX", "k", "0", "v"],
        &["SETEX", "k", "-1", "v"],
        &["SETEX", "k", "x", "v"],
        &["PSETEX", "k", "0", "v"],
        &["SETEX", "k", "100", "v"],
        &["GET", "k"],
        &["GETEX", "k"],
        &["GETEX", "k", "EX", "0"],
        &["GETEX", "k", "EX", "abc"],
        &["GETEX", "k", "PERSIST"],
        &["TTL", "k"],
        &["GETEX", "k", "EX", "100", "PX", "5"],
        &["GETEX", "k", "FOO"],
        &["GETEX", "missing"],
        &["GETEX", "k", "PXAT", "1"],
        &["EXISTS", "k"],
        &["MSET", "a", "1", "b", "2"],
        &["MSET", "a"],
        &["MSET", "a", "1", "b"],
        &["MGET", "a", "b", "nope"],
        &["MSETNX", "a", "x", "c", "3"],
        &["MSETNX", "c", "3", "d", "4"],
        &["MGET", "c", "d"],
        &["STRLEN", "a"],
        &["STRLEN", "nope"],
        &["APPEND", "a", "23"],
        &["APPEND", "new-append", "xy"],
        &["GET", "a"],
    ]);
}

#[test]
fn binary_safe_keys_and_values() {
    let mut d = Differential::new();
    let key: &[u8] = b"k\x00\r\n\xff";
    let value: &[u8] = b"\x00\x01\x02\r\n\xfe\xff";
    for cmd in [
        &[&b"SET"[..], key, value][..],
        &[b"GET", key],
        &[b"STRLEN", key],
        &[b"EXISTS", key],
        &[b"DEL", key],
    ] {
        let theirs = d.r.cmd_bytes(cmd);
        let ours = d.o.cmd_bytes(cmd);
        assert_eq!(ours, theirs);
    }
}

#[test]
fn counters_and_their_errors() {
    let mut d = Differential::new();
    d.run(&[
        &["INCR", "n"],
        &["INCRBY", "n", "41"],
        &["DECR", "n"],
        &["DECRBY", "n", "10"],
        &["INCRBY", "n", "abc"],
        &["INCRBY", "n", "1.5"],
        &["INCRBY", "n", " 1"],
        &["INCRBY", "n", "99999999999999999999"],
        &["SET", "max", "9223372036854775807"],
        &["INCR", "max"],
        &["SET", "min", "-9223372036854775808"],
        &["DECR", "min"],
        &["DECRBY", "n", "-9223372036854775808"],
        &["INCRBY", "min", "-1"],
        &["SET", "s", "hello"],
        &["INCR", "s"],
        &["SET", "sp", " 1"],
        &["INCR", "sp"],
        &["SET", "lead", "01"],
        &["INCR", "lead"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["INCRBYFLOAT", "f", "0.25"],
        &["INCRBYFLOAT", "f", "-3"],
        &["INCRBYFLOAT", "f", "abc"],
        &["INCRBYFLOAT", "f", "1e5000"],
        &["INCRBYFLOAT", "s", "1"],
        &["INCRBYFLOAT", "f2", "10.5"],
        &["INCRBYFLOAT", "f2", "0.1"],
        &["INCRBYFLOAT", "f3", "5.0e3"],
        &["INCRBYFLOAT", "n", "1"],
        &["GET", "f"],
        &["INCR"],
        &["INCR", "a", "b"],
    ]);
}

#[test]
fn ranges() {
    let mut d = Differential::new();
    d.run(&[
        &["SET", "s", "Hello World"],
        &["GETRANGE", "s", "0", "4"],
        &["GETRANGE", "s", "-5", "-1"],
        &["GETRANGE", "s", "-1", "-5"],
        &["GETRANGE", "s", "5", "2"],
        &["GETRANGE", "s", "0", "100"],
        &["GETRANGE", "s", "-100", "2"],
        &["GETRANGE", "s", "x", "2"],
        &["GETRANGE", "nokey", "0", "-1"],
        &["SUBSTR", "s", "0", "2"],
        &["SETRANGE", "s", "6", "Redis"],
        &["GET", "s"],
        &["SETRANGE", "s", "20", "!"],
        &["GET", "s"],
        &["SETRANGE", "s", "-1", "x"],
        &["SETRANGE", "s", "0", ""],
        &["SETRANGE", "empty", "5", ""],
        &["EXISTS", "empty"],
        &["SETRANGE", "new", "3", "abc"],
        &["GET", "new"],
        &["SETRANGE", "s", "536870912", "x"],
    ]);
}

#[test]
fn generic_key_commands() {
    let mut d = Differential::new();
    d.run(&[
        &["MSET", "a", "1", "b", "2", "c", "3"],
        &["EXISTS", "a", "b", "nope", "a"],
        &["TOUCH", "a", "nope", "b"],
        &["TYPE", "a"],
        &["TYPE", "nope"],
        &["DEL", "a", "nope", "a"],
        &["UNLINK", "b"],
        &["DBSIZE"],
        &["KEYS", "c"],
        &["KEYS", "z*"],
        &["RENAME", "nope", "x"],
        &["RENAME", "c", "d"],
        &["GET", "d"],
        &["RENAME", "d", "d"],
        &["SET", "e", "5"],
        &["RENAMENX", "d", "e"],
        &["RENAMENX", "d", "f"],
        &["RENAMENX", "f", "f"],
        &["DEL", "e"],
        &["RANDOMKEY"],
        &["FLUSHDB"],
        &["RANDOMKEY"],
        &["DBSIZE"],
        &["FLUSHALL", "foo"],
        &["FLUSHALL", "ASYNC"],
        &["SCAN", "abc"],
        &["SCAN", "0", "COUNT", "0"],
        &["SCAN", "0", "FOO"],
        &["SCAN", "0"],
    ]);
}

#[test]
fn expiry_commands_deterministic_parts() {
    let mut d = Differential::new();
    d.run(&[
        &["SET", "k", "v"],
        &["TTL", "k"],
        &["PTTL", "k"],
        &["TTL", "nope"],
        &["PTTL", "nope"],
        &["EXPIRETIME", "k"],
        &["EXPIRETIME", "nope"],
        &["PEXPIRETIME", "k"],
        &["EXPIRE", "nope", "10"],
        &["EXPIRE", "k", "100"],
        &["TTL", "k"],
        &["EXPIRE", "k", "100", "NX"],
        &["EXPIRE", "k", "200", "XX"],
        &["EXPIRE", "k", "50", "GT"],
        &["EXPIRE", "k", "300", "GT"],
        &["EXPIRE", "k", "400", "LT"],
        &["EXPIRE", "k", "100", "LT"],
        &["TTL", "k"],
        &["EXPIRE", "k", "10", "NX", "XX"],
        &["EXPIRE", "k", "10", "GT", "LT"],
        &["EXPIRE", "k", "10", "FOO"],
        &["EXPIRE", "k", "abc"],
        &["EXPIRE", "k", "9223372036854775807"],
        &["PEXPIRE", "k", "9223372036854775807"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["TTL", "k"],
        &["EXPIRE", "k", "10", "XX"],
        &["EXPIRE", "k", "10", "GT"],
        &["EXPIRE", "k", "10", "LT"],
        &["TTL", "k"],
        &["EXPIREAT", "k", "1"],
        &["EXISTS", "k"],
        &["SET", "k2", "v"],
        &["EXPIRE", "k2", "-1"],
        &["EXISTS", "k2"],
        &["SET", "k3", "v"],
        &["PEXPIREAT", "k3", "32503680000000"],
        &["EXPIRETIME", "k3"],
        &["PEXPIRETIME", "k3"],
        &["SET", "k4", "v", "EXAT", "32503680000"],
        &["EXPIRETIME", "k4"],
        &["SET", "k4", "w", "KEEPTTL"],
        &["EXPIRETIME", "k4"],
        &["SET", "k4", "x"],
        &["TTL", "k4"],
        &["EXPIRE", "k"],
    ]);
}

#[test]
fn connection_commands() {
    let mut d = Differential::new();
    d.run(&[
        &["PING"],
        &["PING", "hello"],
        &["PING", "a", "b"],
        &["ECHO", "x"],
        &["ECHO"],
        &["SELECT", "1"],
        &["SET", "in1", "x"],
        &["SELECT", "0"],
        &["GET", "in1"],
        &["SELECT", "16"],
        &["SELECT", "-1"],
        &["SELECT", "x"],
        &["CLIENT", "SETNAME", "my-client"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME", "bad name"],
        &["CLIENT", "SETNAME", ""],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "NO-EVICT", "on"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "FOO"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL", "127.0.0.1:1"],
        &["AUTH", "pass"],
        &["AUTH", "user", "pass"],
        &["HELLO", "4"],
        &["HELLO", "abc"],
        &["CONFIG", "GET", "save"],
        &["CONFIG", "GET", "appendonly"],
        &["CONFIG", "GET", "databases"],
        &["CONFIG", "GET", "nonexistent-param"],
        &["CONFIG", "FOO"],
        &["WAIT", "0", "0"],
        &["RESET"],
        &["NOSUCHCOMMAND", "a", "b"],
        &["NOSUCHCOMMAND"],
    ]);
}

#[test]
fn transactions() {
    let mut d = Differential::new();
    d.run(&[
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["MULTI"],
        &["SET", "t", "1"],
        &["INCR", "t"],
        &["GET", "t"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "t", "abc"],
        &["INCR", "t"],
        &["GET", "t"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "t"],
        &["GET", "t"],
        &["EXEC"],
        &["MULTI"],
        &["NOSUCH"],
        &["EXEC"],
        &["MULTI"],
        &["SET", "x", "1"],
        &["DISCARD"],
        &["GET", "x"],
        &["WATCH", "w"],
        &["MULTI"],
        &["WATCH", "w"],
        &["SET", "w", "1"],
        &["EXEC"],
        &["MULTI"],
        &["EXEC"],
        &["UNWATCH"],
        // Found by fuzzing: a script with an impossible numkeys queued in MULTI.
        &["MULTI"],
        &["EVAL", "return 1", "5", "k"],
        &["EVAL", "return 1", "-1"],
        &["EXEC"],
    ]);
}

#[test]
fn watch_conflict_from_another_client() {
    let mut d = Differential::new();
    let mut other_r = d.redis.raw();
    let mut other_o = d.ours.raw();
    d.run(&[&["SET", "w", "0"], &["WATCH", "w"], &["MULTI"], &["INCR", "w"]]);
    assert_eq!(other_r.cmd(&["SET", "w", "9"]), other_o.cmd(&["SET", "w", "9"]));
    d.run(&[
        &["EXEC"],
        &["GET", "w"],
        &["WATCH", "w"],
        &["MULTI"],
        &["INCR", "w"],
        &["EXEC"],
        &["GET", "w"],
    ]);
    // A write to an unrelated key does not abort.
    d.run(&[&["WATCH", "w"], &["MULTI"], &["INCR", "w"]]);
    assert_eq!(
        other_r.cmd(&["SET", "unrelated", "1"]),
        other_o.cmd(&["SET", "unrelated", "1"])
    );
    d.run(&[&["EXEC"]]);
}

#[test]
fn resp3_replies() {
    let mut d = Differential::new();
    // HELLO's own reply differs (version, client id); what follows must not.
    d.r.cmd(&["HELLO", "3"]);
    d.o.cmd(&["HELLO", "3"]);
    d.run(&[
        &["GET", "missing"],
        &["SET", "k", "v"],
        &["SET", "k", "v", "NX"],
        &["MGET", "k", "missing"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["CONFIG", "GET", "save"],
        &["TTL", "k"],
        &["SET", "absent", "v", "XX", "GET"],
        &["WATCH", "k"],
    ]);
    let mut other = d.ours.raw();
    let mut other_r = d.redis.raw();
    d.run(&[&["MULTI"], &["GET", "k"]]);
    other.cmd(&["SET", "k", "changed"]);
    other_r.cmd(&["SET", "k", "changed"]);
    d.run(&[&["EXEC"], &["HELLO", "4"]]);
}

#[test]
fn inline_commands_and_pipelining() {
    let mut d = Differential::new();
    d.check_raw(b"PING\r\n", 1);
    d.check_raw(b"SET a \"hello world\"\r\nGET a\r\n", 2);
    d.check_raw(b"SET b 'it\\'s'\r\nGET b\r\n", 2);
    d.check_raw(b"SET c \"\\x41\\x42\\n\"\r\nGET c\r\n", 2);
    d.check_raw(b"\r\n\r\nPING\n", 1);
    d.check_raw(b"  ECHO   spaced  \r\n", 1);
    // Pipelined multibulk commands with the empty frames Redis ignores.
    d.check_raw(
        b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$0\r\n\r\n",
        3,
    );
    let mut pipeline = Vec::new();
    for i in 0..100 {
        pipeline.extend_from_slice(common::encode(&[b"INCR", b"ctr"]).as_slice());
        if i % 10 == 0 {
            pipeline.extend_from_slice(b"GET ctr\r\n");
        }
    }
    d.check_raw(&pipeline, 110);
}

fn check_protocol_error(input: &[u8]) {
    let mut d = Differential::new();
    d.r.send(input);
    d.o.send(input);
    let theirs = d.r.read_until_closed();
    let ours = d.o.read_until_closed();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&theirs),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn protocol_errors_close_the_connection() {
    check_protocol_error(b"*abc\r\n");
    check_protocol_error(b"*1\r\n+PING\r\n");
    check_protocol_error(b"*1\r\n$abc\r\n");
    check_protocol_error(b"*1\r\n$-5\r\n");
    check_protocol_error(b"SET a \"unterminated\r\n");
    check_protocol_error(b"SET a \"x\"y\r\n");
    check_protocol_error(b"PING\r\n*2\r\n$3\r\nGET\r\n$x\r\n");
}

/// Requests pipelined behind AUTH or RESET are parsed with the limits the
/// client has when they run, not when they arrived: a 20 KB bulk is fine
/// after AUTH and a protocol error after RESET (unauthenticated clients may
/// send 16 KB at most), whether or not it came in the same read.
#[test]
fn limits_follow_authentication_within_a_pipeline() {
    let mut d = Differential::new();
    d.check(&["CONFIG", "SET", "requirepass", "pw"]);
    let big = vec![b'x'; 20_000];
    let set_big = common::encode(&[b"SET", b"big", &big]);
    let get_len = common::encode(&[b"STRLEN", b"big"]);
    // Fresh, unauthenticated connections: AUTH, then the big SET.
    let mut r = d.redis.raw();
    let mut o = d.ours.raw();
    let pipeline = [common::encode(&[b"AUTH", b"pw"]), set_big.clone(), get_len].concat();
    r.send(&pipeline);
    o.send(&pipeline);
    for _ in 0..3 {
        assert_eq!(
            String::from_utf8_lossy(&o.read_frame()),
            String::from_utf8_lossy(&r.read_frame())
        );
    }
    // Authenticated: RESET, then the big SET, which is now refused. (The
    // big SET just before grows the server's read buffer, so that the
    // pipeline usually arrives in one read and is decoded as one batch.)
    assert_eq!(
        o.cmd_bytes(&[b"SET", b"big", &big]),
        r.cmd_bytes(&[b"SET", b"big", &big])
    );
    let pipeline = [common::encode(&[b"RESET"]), set_big].concat();
    r.send(&pipeline);
    o.send(&pipeline);
    let ours = String::from_utf8_lossy(&o.read_until_closed()).into_owned();
    assert_eq!(ours, String::from_utf8_lossy(&r.read_until_closed()));
    assert_eq!(ours, "+RESET\r\n-ERR Protocol error: unauthenticated bulk length\r\n");
}
