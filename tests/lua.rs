//! Scripts outside the catalogue, on the embedded Lua: the same scripts to
//! redis-server 7 and redlockd, replies compared byte for byte (RESP2 and
//! RESP3), then what only redlockd can show: the time limit with BUSY and
//! SCRIPT KILL, replay of a script's effects from the append-only file,
//! and `--lua no`.

mod common;
use std::time::Duration;

use common::{Differential, Raw, Server, encode};

/// Scripts written for these tests, with their keys and arguments.
const SCRIPTS: &[&[&str]] = &[
    // Counters.
    &["return redis.call('INCR', KEYS[1])", "1", "counter"],
    &["return redis.call('INCRBY', KEYS[1], ARGV[1])", "1", "counter", "41"],
    &[
        "local n = redis.call('INCR', KEYS[1]) if n > tonumber(ARGV[1]) then redis.call('SET', KEYS[1], 0) return 'wrapped' end return n",
        "1",
        "counter",
        "43",
    ],
    // Compare-and-swap on a string.
    &[
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2]) end return false",
        "1",
        "cas",
        "old",
        "new",
    ],
    &["return redis.call('SET', KEYS[1], 'old')", "1", "cas"],
    &[
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2]) end return false",
        "1",
        "cas",
        "old",
        "new",
    ],
    &["return redis.call('GET', KEYS[1])", "1", "cas"],
    // A lock release of the usual shape, not in the catalogue (its text differs).
    &[
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end -- ours",
        "1",
        "cas",
        "new",
    ],
    // An undeclared key is reachable too.
    &[
        "redis.call('SET', 'undeclared', 'u') return redis.call('GET', 'undeclared')",
        "0",
    ],
    // Lua values to replies.
    &["return 42", "0"],
    &["return 3.99", "0"],
    &["return -3.99", "0"],
    &["return 'text'", "0"],
    &["return {1, 2, 3.7, 'a', nil, 4}", "0"],
    &["return {1, {2, {3, 'x'}}, true, false}", "0"],
    &["return true", "0"],
    &["return false", "0"],
    &["return nil", "0"],
    &["return", "0"],
    &["return {ok='fine'}", "0"],
    &["return {ok='two\\r\\nlines'}", "0"],
    &["return {err='boom'}", "0"],
    &["return {err='MYCODE something'}", "0"],
    &["return redis.status_reply('FINE')", "0"],
    &["return redis.error_reply('plain')", "0"],
    &["return redis.error_reply('-CODE with code')", "0"],
    &["return redis.error_reply(1)", "0"],
    &["return {1, {err='inner'}, {ok='st'}}", "0"],
    &["return {double=3.5}", "0"],
    &["return {double=0.1}", "0"],
    &["return {big_number='123456789012345678901234567890'}", "0"],
    &["return {map={a=1}}", "0"],
    &["return {set={x=true}}", "0"],
    &["return {verbatim_string={format='txt', string='hello'}}", "0"],
    &["return KEYS", "2", "k1", "k2", "a1"],
    &["return ARGV", "1", "k1", "a1", "a2"],
    &["return #KEYS + #ARGV", "0"],
    // Replies to Lua values.
    &[
        "return {type(redis.call('GET', 'missing')), redis.call('GET', 'missing')}",
        "0",
    ],
    &["local r = redis.call('SET', 'k', 'v') return {type(r), r.ok}", "0"],
    &["return redis.call('MGET', 'k', 'missing', 'k')", "0"],
    &["return redis.call('SET', 'num', 3.14)", "0"],
    &["return redis.call('GET', 'num')", "0"],
    &["return redis.call('SET', 'int', 10)", "0"],
    &["return redis.call('INCRBYFLOAT', 'int', '0.5')", "0"],
    // RESP3 inside the script.
    &["redis.setresp(3) return {type(redis.call('GET', 'missing'))}", "0"],
    &["redis.setresp(3) return true", "0"],
    &["redis.setresp(3) return false", "0"],
    &["redis.setresp(3) return {double=2.5}", "0"],
    &["redis.setresp(2) return redis.call('TTL', 'k')", "0"],
    // Errors, raised and caught.
    &["return redis.call('nosuch')", "0"],
    &["return redis.call('GET')", "0"],
    &["return redis.call()", "0"],
    &["return redis.call('GET', {})", "0"],
    &["return redis.call('EVAL', 'return 1', 0)", "0"],
    &["return redis.call('MULTI')", "0"],
    &["return redis.call('INCR', 'k')", "0"],
    &["redis.call('SET', 'before', '1')\nreturn redis.call('INCR', 'k')", "0"],
    &["return redis.pcall('INCR', 'k')", "0"],
    &["return redis.pcall('nosuch')", "0"],
    &[
        "local ok, e = pcall(redis.call, 'INCR', 'k') return {tostring(ok), e}",
        "0",
    ],
    &[
        "local ok, e = pcall(function() error({err='MY own'}) end) return {tostring(ok), e}",
        "0",
    ],
    &["local ok, e = pcall(error, 'plain') return {tostring(ok), e}", "0"],
    &["local r = redis.pcall('INCR', 'k') return r.err", "0"],
    &["error('xx')", "0"],
    &["error({err='MY x'})", "0"],
    &["\n\nlocal t = nil\nreturn t.x", "0"],
    &["return 1 +", "0"],
    &["return redis.setresp(4)", "0"],
    &["return redis.sha1hex()", "0"],
    &["return redis.log(9, 'x')", "0"],
    &["return redis.log(redis.LOG_WARNING)", "0"],
    // Helpers.
    &["return redis.sha1hex('abc')", "0"],
    &[
        "redis.log(redis.LOG_DEBUG, 'from a test') return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
        "0",
    ],
    &[
        "return {tostring(math.random()), tostring(math.random(10)), tostring(math.random(5, 7))}",
        "0",
    ],
    &["math.randomseed(42) return tostring(math.random())", "0"],
    &["return math.random(0)", "0"],
    // cjson.
    &["return cjson.encode({a=1})", "0"],
    &["return cjson.encode({1, 2.5, 'x/y\\1\\127', true, false})", "0"],
    &["return cjson.encode({1, 2, nil, 4})", "0"],
    &["return cjson.encode({})", "0"],
    &["return cjson.encode(1e20)", "0"],
    &["return cjson.encode({[1]=1, [20]=2})", "0"],
    &["return cjson.encode(function() end)", "0"],
    &["return cjson.encode({[true]=1})", "0"],
    &["return cjson.encode(0/0)", "0"],
    &[
        "return cjson.encode(cjson.decode('[1,2.5,{\"a\":null},\"\\\\u00e9\\\\n\",true]'))",
        "0",
    ],
    &["local t = cjson.decode('{\"k\":[1,2,3]}') return t.k", "0"],
    &["return tostring(cjson.decode('null') == cjson.null)", "0"],
    &["return cjson.decode('[1,')", "0"],
    &["return cjson.decode('[1 2]')", "0"],
    &["return cjson.decode('{')", "0"],
    &["return cjson.decode('')", "0"],
    &["return cjson.decode('[1] x')", "0"],
    &["local ok, e = pcall(cjson.decode, '{') return e", "0"],
    // bit.
    &[
        "return {bit.band(0xff, 0x0f), bit.bor(1, 2, 4), bit.bxor(5, 3), bit.bnot(0)}",
        "0",
    ],
    &[
        "return {bit.lshift(1, 31), bit.lshift(1, 32), bit.rshift(-1, 28), bit.arshift(-256, 4)}",
        "0",
    ],
    &[
        "return {bit.rol(0x12345678, 8), bit.ror(0x12345678, 8), bit.bswap(0x12345678)}",
        "0",
    ],
    &[
        "return {bit.tobit(2^32 + 5), bit.tobit(-1), bit.tobit(0xffffffff), bit.tobit(2.5), bit.tobit(3.5)}",
        "0",
    ],
    &[
        "return {bit.tohex(255), bit.tohex(-1, -4), bit.tohex(0x1234, 2), bit.tohex(1, 12)}",
        "0",
    ],
    &["return bit.band('x')", "0"],
    &["return bit.band()", "0"],
    &["return bit.tobit('12')", "0"],
    // The sandbox.
    &["x = 1", "0"],
    &["return y", "0"],
    &["return os", "0"],
    &["return io", "0"],
    &["return loadfile", "0"],
    &["return dofile", "0"],
    &["return require", "0"],
    &["return print", "0"],
    &["return debug", "0"],
    &["_G.x = 1", "0"],
    &["redis.call = nil", "0"],
    &["string.foo = 1", "0"],
    &["return string.format('%d-%s', 7, 'x')", "0"],
    &["return table.concat({'a', 'b'}, ',')", "0"],
    &["local f = loadstring('return 7') return f()", "0"],
    &["local f = loadstring('z = 1') return f()", "0"],
    &["return type(_G)", "0"],
    &[
        "local ok = pcall(function() local t = setmetatable({}, {}) return t end) return tostring(ok)",
        "0",
    ],
];

fn eval_args(script: &[&str]) -> Vec<String> {
    let mut args = vec!["EVAL".to_string()];
    args.extend(script.iter().map(|s| s.to_string()));
    args
}

fn run_all(d: &mut Differential) {
    for script in SCRIPTS {
        let args = eval_args(script);
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        d.check(&refs);
    }
}

#[test]
fn scripts_match_redis_resp2() {
    let mut d = Differential::new();
    run_all(&mut d);
}

#[test]
fn scripts_match_redis_resp3() {
    let mut d = Differential::new();
    // HELLO's own reply differs (version, client id); what follows must not.
    d.r.cmd(&["HELLO", "3"]);
    d.o.cmd(&["HELLO", "3"]);
    run_all(&mut d);
}

#[test]
fn read_only_scripts_and_the_script_cache_match_redis() {
    let mut d = Differential::new();
    let get = "return redis.call('GET', KEYS[1])";
    let set = "return redis.call('SET', KEYS[1], ARGV[1])";
    let sha_get = sha1(get);
    d.run(&[
        &["SET", "k", "v"],
        &["EVAL_RO", get, "1", "k"],
        &["EVAL_RO", set, "1", "k", "x"],
        &["EVAL_RO", "redis.call('DEL', 'k') return 1", "0"],
        &["EVAL_RO", "return redis.pcall('SET', 'k', 'x')", "0"],
        &["GET", "k"],
        &["SCRIPT", "EXISTS", &sha_get],
        &["SCRIPT", "LOAD", get],
        &["SCRIPT", "LOAD", set],
        &["SCRIPT", "LOAD", "return 1 +"],
        &["EVALSHA", "4a8e11a2b0ef0a0fe6b64e1f1c66e8a6b6a1f1b2", "0"],
    ]);
    let sha = String::from_utf8(d.check(&["SCRIPT", "LOAD", get])).unwrap();
    let sha = sha.lines().nth(1).unwrap().to_string();
    let sha_set = sha1(set);
    d.run(&[
        &[
            "SCRIPT",
            "EXISTS",
            &sha,
            &sha_set,
            "ffffffffffffffffffffffffffffffffffffffff",
        ],
        &["EVALSHA", &sha, "1", "k"],
        &["EVALSHA", &sha.to_uppercase(), "1", "k"],
        &["EVALSHA_RO", &sha, "1", "k"],
        &["EVALSHA_RO", &sha_set, "1", "k", "y"],
        &["EVALSHA", &sha_set, "1", "k", "y"],
        &["EVALSHA", &sha, "1", "k"],
        &["EVALSHA", &sha, "-1"],
        &["EVALSHA", &sha, "5", "k"],
        &["EVALSHA", "short", "0"],
        // An EVAL caches its script too.
        &["EVAL", "return 'cached by eval'", "0"],
        &["EVALSHA", &sha1("return 'cached by eval'"), "0"],
        &["SCRIPT", "FLUSH", "BOGUS"],
        &["SCRIPT", "FLUSH"],
        &["SCRIPT", "EXISTS", &sha, &sha_set],
        &["EVALSHA", &sha, "1", "k"],
        &["SCRIPT", "LOAD", get],
        &["SCRIPT", "FLUSH", "ASYNC"],
        &["EVALSHA", &sha, "1", "k"],
        &["SCRIPT", "LOAD", get],
        &["SCRIPT", "FLUSH", "SYNC"],
        &["SCRIPT", "EXISTS", &sha],
        &["SCRIPT", "KILL"],
    ]);
}

fn sha1(text: &str) -> String {
    redlockd::scripts::sha1_hex(text.as_bytes())
}

/// Send a command without waiting for its reply.
fn send(c: &mut Raw, args: &[&str]) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.send(&encode(&args));
}

/// The time limit, on a server at `port`: a script past it makes other
/// clients' commands fail with BUSY; SCRIPT KILL stops it. The replies seen.
fn busy_then_kill(mut runner: Raw, mut other: Raw) -> Vec<String> {
    let mut seen = Vec::new();
    seen.push(String::from_utf8(other.cmd(&["CONFIG", "SET", "busy-reply-threshold", "100"])).unwrap());
    send(&mut runner, &["EVAL", "local i = 0 while true do i = i + 1 end", "0"]);
    std::thread::sleep(Duration::from_millis(300));
    seen.push(other.cmd_str(&["GET", "x"]));
    seen.push(other.cmd_str(&["SCRIPT", "LOAD", "return 1"]));
    seen.push(other.cmd_str(&["SHUTDOWN"]));
    seen.push(other.cmd_str(&["SCRIPT", "KILL"]));
    seen.push(String::from_utf8(runner.read_frame()).unwrap());
    seen.push(other.cmd_str(&["PING"]));
    seen.push(other.cmd_str(&["SCRIPT", "KILL"]));
    seen
}

#[test]
fn a_script_past_the_time_limit_gets_busy_and_script_kill_stops_it() {
    let redis = common::RedisServer::start();
    let ours = Server::start();
    let theirs = busy_then_kill(redis.raw(), redis.raw());
    let mine = busy_then_kill(ours.raw(), ours.raw());
    assert_eq!(mine, theirs);
    assert!(mine[1].starts_with("-BUSY"), "{mine:?}");
}

#[test]
fn a_script_that_wrote_is_unkillable_and_shutdown_nosave_ends_the_server() {
    let mut ours = Server::start();
    let mut runner = ours.raw();
    let mut other = ours.raw();
    other.cmd(&["CONFIG", "SET", "lua-time-limit", "100"]);
    assert_eq!(
        other.cmd_str(&["CONFIG", "GET", "busy-reply-threshold"]),
        "*2\r\n$20\r\nbusy-reply-threshold\r\n$3\r\n100\r\n"
    );
    send(
        &mut runner,
        &["EVAL", "redis.call('SET', 'w', '1') while true do end", "0"],
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        other.cmd_str(&["SCRIPT", "KILL"]),
        "-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n"
    );
    assert!(other.cmd_str(&["GET", "w"]).starts_with("-BUSY"));
    send(&mut other, &["SHUTDOWN", "NOSAVE"]);
    let status = ours.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "SHUTDOWN NOSAVE did not end the server");
}

#[test]
fn a_scripts_effects_replay_from_the_append_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let args = ["--appendonly", "yes", "--appendfsync", "always", "--dir", &d];
    let port;
    {
        let server = Server::start_with(&args);
        port = server.port;
        let mut c = server.raw();
        let script = "redis.call('SET', KEYS[1], ARGV[1]) \
                      redis.call('INCRBY', 'undeclared:counter', 5) \
                      redis.call('SET', 'gone', 'x') redis.call('DEL', 'gone') \
                      redis.call('SET', 'ttl', 'v', 'PX', 600000) \
                      return redis.call('INCR', 'undeclared:counter')";
        assert_eq!(c.cmd_str(&["EVAL", script, "1", "k", "value"]), ":6\r\n");
        // A script failing midway keeps what it did before the error, as Redis.
        let failing = "redis.call('SET', 'half', 'done') return redis.call('INCR', KEYS[1])";
        assert!(
            c.cmd_str(&["EVAL", failing, "1", "k"])
                .starts_with("-ERR value is not an integer")
        );
        let sha = c.cmd_str(&["SCRIPT", "LOAD", "return redis.call('INCR', KEYS[1])"]);
        let sha = sha.lines().nth(1).unwrap().to_string();
        assert_eq!(c.cmd_str(&["EVALSHA", &sha, "1", "n"]), ":1\r\n");
        drop(server);
    }
    let server = Server::start_on_port_with(port, &args);
    let mut c = server.raw();
    assert_eq!(c.cmd_str(&["GET", "k"]), "$5\r\nvalue\r\n");
    assert_eq!(c.cmd_str(&["GET", "undeclared:counter"]), "$1\r\n6\r\n");
    assert_eq!(c.cmd_str(&["EXISTS", "gone"]), ":0\r\n");
    let pttl: i64 = c
        .cmd_str(&["PTTL", "ttl"])
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap();
    assert!((1..=600_000).contains(&pttl), "{pttl}");
    assert_eq!(c.cmd_str(&["GET", "half"]), "$4\r\ndone\r\n");
    assert_eq!(c.cmd_str(&["GET", "n"]), "$1\r\n1\r\n");
}

#[test]
fn with_lua_off_only_catalogued_scripts_run() {
    let server = Server::start_with(&["--lua", "no"]);
    let mut c = server.raw();
    let reply = c.cmd_str(&["EVAL", "return 1", "0"]);
    assert!(
        reply.starts_with("-ERR unsupported script (sha1 e0e1f9fabfc9d4800c877a703b823ac0578ff8db)"),
        "{reply}"
    );
    let reply = c.cmd_str(&["SCRIPT", "LOAD", "return 1"]);
    assert!(reply.starts_with("-ERR unsupported script"), "{reply}");
    assert_eq!(
        c.cmd_str(&["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]),
        "-NOSCRIPT No matching script. Please use EVAL.\r\n"
    );
    // A catalogued script (redis-py's lock release) still runs, natively.
    let release = "c3f8721cbb97f72bc19e972846bd7aaf91901658";
    c.cmd(&["SET", "lock", "tok"]);
    assert_eq!(c.cmd_str(&["EVALSHA", release, "1", "lock", "tok"]), ":1\r\n");
    assert_eq!(c.cmd_str(&["SCRIPT", "EXISTS", release]), "*1\r\n:1\r\n");
}

#[test]
fn compare_and_swap_on_a_hash_matches_redis() {
    let mut d = Differential::new();
    let cas = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then \
               redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0";
    d.run(&[
        &["EVAL", cas, "1", "h", "f", "old", "new"],
        &["EVAL", "return redis.call('HSET', KEYS[1], 'f', 'old')", "1", "h"],
        &["EVAL", cas, "1", "h", "f", "old", "new"],
        &["EVAL", "return redis.call('HGETALL', KEYS[1])", "1", "h"],
        &["EVAL", cas, "1", "h", "f", "old", "newer"],
    ]);
}
