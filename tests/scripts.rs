//! Every catalogued lock script, invoked as its client invokes it (EVALSHA
//! with the catalogued digest, numkeys and argument layout), on an owned,
//! foreign, missing and expired key. Expectations are written here from the
//! catalogue's prose (`src/scripts/lock-scripts.json`), independently of the
//! server's table; a script the table leaves out must be refused clearly.

mod common;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Raw, Server, eventually};

const TOKEN: &str = "tok-\u{1F512}-owner";
const OTHER: &str = "someone-else";

/// Expected reply.
#[derive(Clone, Copy, Debug)]
enum E {
    Is(&'static str),
    /// An integer in a range (remaining TTLs).
    IntIn(i64, i64),
    /// `*2` of the value and a PTTL in range.
    ValuePttl(&'static str),
    Nil,
}

/// How the client lays out KEYS and ARGV.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// KEYS = [lock]; ARGV = [token, then these].
    Token(&'static [&'static str]),
    /// KEYS = [lock]; ARGV = [these, token, then more] (sesamecare: db first).
    DbThenToken(&'static [&'static str]),
    /// KEYS = [lock, ttl, token]; no ARGV (node-redis-warlock touch).
    WarlockTouch,
    /// KEYS = [lock, channel]; ARGV = [token].
    TokenWithChannelKey,
    /// KEYS = [lock]; ARGV = [these] (no token).
    NoToken(&'static [&'static str]),
    /// bsm/redislock obtain: ARGV = [token, len(token), ttl].
    BsmObtain,
}

/// Replies on a key held by us, held by another, missing; expired must equal missing.
struct Case {
    layout: Layout,
    owned: E,
    foreign: E,
    missing: E,
    /// After the call on an owned key: does it still exist?
    owned_survives: bool,
}

const fn case(layout: Layout, owned: E, foreign: E, missing: E, owned_survives: bool) -> Case {
    Case {
        layout,
        owned,
        foreign,
        missing,
        owned_survives,
    }
}

use E::*;
use Layout::*;

const TTL: &[&str] = &["60000"];

fn expectations() -> BTreeMap<&'static str, Case> {
    let release = || case(Token(&[]), Is(":1"), Is(":0"), Is(":0"), false);
    let extend = || case(Token(TTL), Is(":1"), Is(":0"), Is(":0"), true);
    let spring_unlock = || case(Token(&["chan"]), Is(":1"), Nil, Nil, false);
    let spring_obtain = || case(Token(TTL), Is(":1"), Nil, Is(":1"), true);
    let rb_lock = || case(Token(&["60000", "yes"]), Is("+OK"), Nil, Is("+OK"), true);
    let multi_acquire = || case(Token(TTL), Is(":0"), Is(":0"), Is(":1"), true);
    let multi_extend = || case(Token(TTL), Is(":1"), Is(":0"), Is(":0"), true);
    let multi_release = || case(Token(&[]), Is(":1"), Is(":0"), Is(":0"), false);
    let pttl = || {
        case(
            NoToken(&[]),
            ValuePttl(TOKEN),
            ValuePttl(OTHER),
            Is("*2\r\n$-1\r\n:-2"),
            true,
        )
    };
    BTreeMap::from([
        // redis-py
        ("c3f8721cbb97f72bc19e972846bd7aaf91901658", release()),
        (
            "a4e8783852e6b949f9ef3a97212805108459a890",
            case(Token(&["60000", "1"]), Is(":1"), Is(":0"), Is(":0"), true),
        ),
        ("1cac51482acf5858da00f6d685d68f886cd6b6b2", extend()),
        (
            "5688a2541c9edd77746bcd2385e65ff3639a664f",
            case(Token(TTL), Is(":0"), Is(":0"), Is(":1"), true),
        ),
        ("4a484ac024e9b025224cd9f8e1d59dbf3c15d00d", extend()),
        // pottery
        (
            "f5f7bd3a3aa4a63c507c1155c5ea1219b350d992",
            case(Token(&[]), IntIn(1, 100_000), Is(":0"), Is(":0"), true),
        ),
        (
            "f458acd98fe495b8e4ff97c0f53f745f2c4aa252",
            case(Token(&[]), IntIn(1, 100_000), Is(":0"), Is(":0"), true),
        ),
        ("ba015a80261b616e7a62d35df0b8e3edbe6c9414", extend()),
        ("307044d49c8f033fbb885e9e0f1b7fe9e0e60675", extend()),
        ("a4aada0b36710970eedaaaeec4a6b7d8c78c4f80", release()),
        ("d141b64a0a43e66a8576edaea6123638c0d74b31", release()),
        // redlock-py
        ("4e92fdc63815b3a0a2dd1c1df3694de73607c88d", release()),
        // aioredlock
        (
            "c75a9bf1538efcdb1f383acc3e273c5089d57e58",
            case(Token(TTL), Is("+OK"), Is("-ERR ERROR"), Is("+OK"), true),
        ),
        (
            "241e4ca540a1cc4ec1f32d9eb9f879e607d7e6e5",
            case(Token(&[]), Is(":1"), Is("-ERR ERROR"), Is("+OK"), false),
        ),
        (
            "f908d3f43dbcabc68fc0c9ecaf1fa4a285ecdb0a",
            case(Token(&[]), IntIn(1, 100), Is("-ERR ERROR"), Is("-ERR ERROR"), true),
        ),
        // npm redlock v4, v5, 4.0/4.1, <= 3
        ("e5a322e2634ef59a516e8ea150cb085afafee684", multi_acquire()),
        ("0f0f23b9048b36752b5be114f357ba083449f908", multi_release()),
        ("ce46f80993d5dac20dd066eb301a4e37994bdbed", multi_extend()),
        ("96da70f7716f27d278a5218544df37fd8b0a5e4c", multi_acquire()),
        ("aed6f382e410db8ba7926d4e5e9aab410bf2a78a", multi_extend()),
        ("e4612211c9f8f51c257e26e056b0a654b3187242", multi_release()),
        ("d01fb69e6ecc8bad3ca9bacba9f4f9e96862313f", multi_acquire()),
        ("517e7ed95f00c0c4a209c6a7afcc6ab797d30b85", multi_release()),
        ("acaf90b4697bb48bb5f603e9e613a54df7536c70", multi_extend()),
        ("1d48b4c6fea2cdadc46b3346de5c2eaf121c7bb3", multi_extend()),
        ("cf0e94b2e9ffc7e04395cf88f7583fc309985910", release()),
        (
            "a2c2e4c111924caec00216d4881ed37a644435ce",
            case(Token(&["60"]), Is(":1"), Is(":0"), Is(":0"), true),
        ),
        ("a7aba3bc5d6e99b3003da8b9d80a63b9f4092ecf", extend()),
        (
            "862f31bf38e9b63ce28d6e9e5143551bb34ef981",
            case(Token(TTL), Nil, Nil, Is("+OK"), true),
        ),
        // @sesamecare-oss/redlock: ARGV[1] is the db index
        (
            "1b77b94aa78451d55dfa97e18819bfbfc596cb5b",
            case(DbThenToken(TTL), Is(":0"), Is(":0"), Is(":1"), true),
        ),
        (
            "820e9778d2b6733e9ed771e4be90ae73a95a6f3b",
            case(DbThenToken(TTL), Is(":1"), Is(":0"), Is(":0"), true),
        ),
        (
            "df51f6837dcfe303d334e6abea9aeae192bab216",
            case(DbThenToken(&[]), Is(":1"), Is(":0"), Is(":0"), false),
        ),
        // redis-semaphore Mutex
        ("7157921a7cc7cfba979acf6d63f073151df17d12", release()),
        ("594683e49a64ebaf975caf5f8079a1d097c438f1", extend()),
        // node-redis-warlock
        ("5cc368fb92acd8fee3a986dc8e971d6cf28c3b44", release()),
        (
            "78d3bb55c589f1b2edf66f3527f5017f8dfcd6bb",
            case(WarlockTouch, Is("+OK"), Is(":0"), Is(":0"), true),
        ),
        // simple-redis-mutex: nil whatever happened
        (
            "02718596825c5bf6c57af391b4dc01a6d2d9d88a",
            case(TokenWithChannelKey, Nil, Nil, Nil, false),
        ),
        // redsync
        (
            "e950836ed1e694540c503ef9972b8de518044d3b",
            case(Token(&[]), Is(":1"), Is(":0"), Is(":-1"), false),
        ),
        ("d75bb8b5bd13532ddedd17762e772346e39b321e", extend()),
        (
            "b6b55c439e02c6f52ffb8be7ec8c0d0ac816ea79",
            case(Token(TTL), Is(":1"), Is(":0"), Is(":1"), true),
        ),
        ("00583931c4e4d483f6233879c133c71ed5393f9d", release()),
        (
            "009e6775acf362b837433e2ab6f2b772e391079e",
            case(Token(TTL), Is("+OK"), Is("$3\r\nERR"), Is("$3\r\nERR"), true),
        ),
        ("53692746b44cae854b8dfa32b177218bbe40baee", extend()),
        // bsm/redislock
        (
            "eb0c00d98f6f33b4262419a509002884540f30be",
            case(BsmObtain, Is("+OK"), Nil, Is("+OK"), true),
        ),
        (
            "9470c810040e272ee6c579d8d4331aaf6332a7b1",
            case(Token(&[]), Is("+OK"), Nil, Nil, false),
        ),
        (
            "5a22d7e8431313862816d4416b5e46dd70fc340d",
            case(Token(TTL), Is("+OK"), Nil, Nil, true),
        ),
        (
            "66e1084c2d842a7e8c271925aae90219fac4e129",
            case(Token(&[]), IntIn(1, 100_000), Nil, Nil, true),
        ),
        (
            "6484da7d58920897fdc22b7f9afd1a3d47524ea8",
            case(Token(&[]), IntIn(1, 100_000), Is(":-3"), Is(":-3"), true),
        ),
        (
            "80a1b5f2cfccec3b7119ba7721d2127682b691a7",
            case(BsmObtain, Is("+OK"), Nil, Is("+OK"), true),
        ),
        // Spring Integration
        ("175897a4e379e99e79a54937be09226f76cdcfe5", spring_obtain()),
        ("8426c8df41c64d8177dce3ecbbe9146ef3759cd2", spring_obtain()),
        ("6d2bc6d16248df19e144841297222544e3c7800a", spring_obtain()),
        (
            "879e0f7b8d83c3266d4e996627438c05dbda0b89",
            case(Token(TTL), Is(":1"), Nil, Nil, true),
        ),
        ("7a71e9443a2a41539fb115a5a27d5a748a871aed", spring_unlock()),
        ("f0f9038aa2b6d6c3436c72d147573ea2a58f0ef2", spring_unlock()),
        ("b2dedc0ab01c17f9f20e3e6ddb62dcb6afbed0bd", spring_unlock()),
        ("356d97191f2b63031781ccc0e8e82f02e1995a90", spring_unlock()),
        (
            "67aebbcba76d9674162e8906de1f669866f48e07",
            case(TokenWithChannelKey, Is(":1"), Nil, Nil, false),
        ),
        (
            "4d7192f70618a620282e427698f9cde890151e58",
            case(TokenWithChannelKey, Is(":1"), Nil, Nil, false),
        ),
        // Spring 5.5 unlock has no owner check: it deletes whoever holds the key.
        (
            "c1ae6c899d164de076f40ffe82eba8fb8e27af6c",
            case(NoToken(&["chan"]), Is(":1"), Is(":1"), Nil, false),
        ),
        (
            "20b5c3728736e2367b496c16390f9df56916a76f",
            case(NoToken(&["chan"]), Is(":1"), Is(":1"), Nil, false),
        ),
        // RedLock.net (LF and CRLF builds)
        ("18b2a577dbe847b16bebde190d69a1613d68e60e", release()),
        ("cb0427378f700ddb2f0e9394dbb0a40bd6dba04a", release()),
        (
            "9f614a785a5f9ae8c6396c6b4bf94d2087342603",
            case(Token(TTL), Is(":1"), Is(":-1"), Is(":1"), true),
        ),
        (
            "3e7c6bf3e080bb97a92e77362149c26252b98212",
            case(Token(TTL), Is(":1"), Is(":-1"), Is(":1"), true),
        ),
        // rslock, redlock crate
        ("daf86bbf8740dd3ca86733367a016364b2110627", release()),
        ("17a49af0c4b1a9034503fa84f3570f5ca76c4cbf", extend()),
        ("544c68b7ffd46e5d7ccc58a27204557efba43310", release()),
        ("edd478c3e9deb21a48d55681748153e3711d50b2", release()),
        // redlock-rb
        ("ceb2b2062e40c51a2b3963fd078bc71f11bdc65c", rb_lock()),
        ("a90bf4be8a6e440e3cc24540eb2f9ff1e16fbcc3", rb_lock()),
        (
            "7fe7b0bc5c4277123d3b46d49d1c5a8bc6e4fe8a",
            case(Token(TTL), Is("+OK"), Nil, Is("+OK"), true),
        ),
        ("8e4905cee18e7c3188d10f2b8b170e403baed34f", release()),
        ("963db4d9f0ccfdb859098be0b29f8b41dc02ed97", release()),
        (
            "91d2b7405df91e02c3e2389f7f1c089b9f9e2632",
            case(Token(&["60"]), Is(":0"), Is(":1"), Is(":1"), true),
        ),
        ("78d2ca48a6dc9ef6892059792a3a0c5237733d64", pttl()),
        ("cd1ae9bb543136ebc0a80a277cd59a7cec83b296", pttl()),
    ])
}

/// Libraries whose scripts need lists, hashes or sorted sets: out of scope,
/// and they must get the clear unsupported-script error.
const OUT_OF_SCOPE: &[&str] = &["python-redis-lock", "Redisson", "redis-semaphore Semaphore"];

/// pottery NextID (not a lock; tested in `pottery_nextid_and_redis_py_extend_modes`).
const NEXTID: &[&str] = &[
    "556429c2d8baca516a475ebb22d380cbccae7313",
    "317b4461fc08fad2543724073eb618dbb16770ad",
    "655bab76f2e789f07bcc4e8e09c919337d858411",
];

fn invoke(c: &mut Raw, cmd: &str, sha: &str, layout: Layout, key: &str) -> String {
    let token_len = TOKEN.len().to_string();
    let mut keys: Vec<&str> = vec![key];
    let mut argv: Vec<&str> = Vec::new();
    match layout {
        Token(rest) => {
            argv.push(TOKEN);
            argv.extend(rest);
        }
        DbThenToken(rest) => {
            argv.push("0");
            argv.push(TOKEN);
            argv.extend(rest);
        }
        WarlockTouch => keys.extend(["60000", TOKEN]),
        TokenWithChannelKey => {
            keys.push("channel");
            argv.push(TOKEN);
        }
        NoToken(rest) => argv.extend(rest),
        BsmObtain => argv.extend([TOKEN, token_len.as_str(), "60000"]),
    }
    let numkeys = keys.len().to_string();
    let mut args: Vec<&str> = vec![cmd, sha, &numkeys];
    args.extend(keys);
    args.extend(argv);
    c.cmd_str(&args)
}

fn check(reply: &str, expected: E, what: &str) {
    let reply = reply.strip_suffix("\r\n").unwrap_or(reply);
    match expected {
        Is(text) => assert_eq!(reply, text, "{what}"),
        Nil => assert_eq!(reply, "$-1", "{what}"),
        IntIn(lo, hi) => {
            let n: i64 = reply
                .strip_prefix(':')
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what}: {reply:?}"));
            assert!((lo..=hi).contains(&n), "{what}: {n} not in {lo}..={hi}");
        }
        ValuePttl(value) => {
            let prefix = format!("*2\r\n${}\r\n{value}\r\n:", value.len());
            let rest = reply
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{what}: {reply:?}"));
            let n: i64 = rest.parse().unwrap_or_else(|_| panic!("{what}: {reply:?}"));
            assert!((1..=100_000).contains(&n), "{what}: pttl {n}");
        }
    }
}

#[test]
fn every_catalogued_lock_script_on_owned_foreign_missing_and_expired_keys() {
    let server = Server::start();
    let mut c = server.raw();
    let cases = expectations();
    for (i, (sha, case)) in cases.iter().enumerate() {
        for cmd in ["EVALSHA", "evalsha"] {
            let key = format!("lock:{i}:{cmd}");
            let what = |scenario: &str| format!("{sha} via {cmd}, {scenario} key");
            // Owned by us.
            c.cmd(&["SET", &key, TOKEN, "PX", "50000"]);
            check(&invoke(&mut c, cmd, sha, case.layout, &key), case.owned, &what("owned"));
            let exists = c.cmd_str(&["EXISTS", &key]) == ":1\r\n";
            assert_eq!(
                exists,
                case.owned_survives,
                "{}: key exists afterwards = {exists}",
                what("owned")
            );
            // Held by someone else.
            c.cmd(&["SET", &key, OTHER, "PX", "50000"]);
            check(
                &invoke(&mut c, cmd, sha, case.layout, &key),
                case.foreign,
                &what("foreign"),
            );
            // Missing.
            c.cmd(&["DEL", &key]);
            check(
                &invoke(&mut c, cmd, sha, case.layout, &key),
                case.missing,
                &what("missing"),
            );
            // Ours, but expired: must behave exactly as missing.
            c.cmd(&["SET", &key, TOKEN, "PX", "1"]);
            std::thread::sleep(Duration::from_millis(3));
            check(
                &invoke(&mut c, cmd, sha, case.layout, &key),
                case.missing,
                &what("expired"),
            );
            c.cmd(&["DEL", &key]);
        }
    }
}

#[test]
fn the_catalogue_is_covered_or_refused() {
    let json: serde_json::Value = serde_json::from_str(include_str!("../src/scripts/lock-scripts.json")).unwrap();
    let cases = expectations();
    let server = Server::start();
    let mut c = server.raw();
    let mut unsupported = BTreeSet::new();
    for entry in json.as_array().unwrap() {
        let sha = entry["sha1"].as_str().unwrap();
        let library = entry["library"].as_str().unwrap();
        let status = entry["status"].as_str().unwrap();
        if cases.contains_key(sha) || NEXTID.contains(&sha) {
            assert_eq!(c.cmd_str(&["SCRIPT", "EXISTS", sha]), "*1\r\n:1\r\n", "{sha}");
            continue;
        }
        let out_of_scope = OUT_OF_SCOPE.iter().any(|l| library.contains(l)) || status.contains("not planned");
        assert!(
            out_of_scope,
            "{sha} ({library}) is neither supported nor declared out of scope"
        );
        assert_eq!(
            c.cmd_str(&["EVALSHA", sha, "1", "k", "v"]),
            "-NOSCRIPT No matching script. Please use EVAL.\r\n"
        );
        assert_eq!(c.cmd_str(&["SCRIPT", "EXISTS", sha]), "*1\r\n:0\r\n");
        unsupported.insert(sha.to_string());
    }
    assert!(unsupported.len() >= 40, "{}", unsupported.len());
}

#[test]
fn multi_key_scripts_are_all_or_nothing() {
    let server = Server::start();
    let mut c = server.raw();
    let acquire = "96da70f7716f27d278a5218544df37fd8b0a5e4c";
    let release = "e4612211c9f8f51c257e26e056b0a654b3187242";
    assert_eq!(
        c.cmd_str(&["EVALSHA", acquire, "3", "r1", "r2", "r3", "v", "60000"]),
        ":3\r\n"
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", acquire, "2", "r3", "r4", "w", "60000"]),
        ":0\r\n"
    );
    assert_eq!(c.cmd_str(&["EXISTS", "r4"]), ":0\r\n");
    c.cmd(&["SET", "r2", "stolen"]);
    assert_eq!(c.cmd_str(&["EVALSHA", release, "3", "r1", "r2", "r3", "v"]), ":2\r\n");
    assert_eq!(c.cmd_str(&["GET", "r2"]), "$6\r\nstolen\r\n");
    // bsm/redislock refuses all when one key is not ours.
    let obtain = "eb0c00d98f6f33b4262419a509002884540f30be";
    let bsm_release = "9470c810040e272ee6c579d8d4331aaf6332a7b1";
    assert_eq!(
        c.cmd_str(&["EVALSHA", obtain, "2", "b1", "b2", "tok:meta", "3", "60000"]),
        "+OK\r\n"
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", obtain, "2", "b1", "b2", "tok:other-meta", "3", "60000"]),
        "+OK\r\n",
        "re-obtain by token prefix"
    );
    assert_eq!(c.cmd_str(&["GET", "b1"]), "$14\r\ntok:other-meta\r\n");
    c.cmd(&["SET", "b2", "xyz"]);
    assert_eq!(
        c.cmd_str(&["EVALSHA", bsm_release, "2", "b1", "b2", "tok:other-meta"]),
        "$-1\r\n"
    );
    assert_eq!(c.cmd_str(&["EXISTS", "b1"]), ":1\r\n");
}

/// With `--lua no` (tests/lua.rs covers the interpreter).
#[test]
fn eval_hashes_the_text_and_refuses_unknown_scripts() {
    let server = Server::start_with(&["--lua", "no"]);
    let mut c = server.raw();
    let reply = c.cmd_str(&["EVAL", "return redis.call('GET', KEYS[1])", "1", "k"]);
    assert!(
        reply.starts_with("-ERR unsupported script (sha1 ")
            && reply.ends_with("): redlockd runs with --lua no; use DELEX/DELIFEQ/SET IFEQ or LOCK.*\r\n"),
        "{reply}"
    );
    assert!(
        c.cmd_str(&["SCRIPT", "LOAD", "return 1"])
            .starts_with("-ERR unsupported script (sha1 e0e1f9fabfc9d4800c877a703b823ac0578ff8db)")
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"]),
        "-NOSCRIPT No matching script. Please use EVAL.\r\n"
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", "short", "0"]),
        "-NOSCRIPT No matching script. Please use EVAL.\r\n"
    );
    // EVALSHA is case-insensitive about the digest, like Redis.
    c.cmd(&["SET", "k", "v"]);
    assert_eq!(
        c.cmd_str(&["EVALSHA", "C3F8721CBB97F72BC19E972846BD7AAF91901658", "1", "k", "v"]),
        ":1\r\n"
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", "c3f8721cbb97f72bc19e972846bd7aaf91901658", "-1"]),
        "-ERR Number of keys can't be negative\r\n"
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", "c3f8721cbb97f72bc19e972846bd7aaf91901658", "3", "k"]),
        "-ERR Number of keys can't be greater than number of args\r\n"
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA", "c3f8721cbb97f72bc19e972846bd7aaf91901658", "x"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert!(
        c.cmd_str(&["EVALSHA", "c3f8721cbb97f72bc19e972846bd7aaf91901658", "0"])
            .starts_with(
                "-ERR script c3f8721cbb97f72bc19e972846bd7aaf91901658 (redis-py release) was called with 0 keys"
            )
    );
    // Read-only variants run only the read-only scripts.
    c.cmd(&["SET", "p", "v", "PX", "60000"]);
    assert!(
        c.cmd_str(&["EVALSHA_RO", "f5f7bd3a3aa4a63c507c1155c5ea1219b350d992", "1", "p", "v"])
            .starts_with(':')
    );
    assert_eq!(
        c.cmd_str(&["EVALSHA_RO", "c3f8721cbb97f72bc19e972846bd7aaf91901658", "1", "p", "v"]),
        "-ERR Write commands are not allowed from read-only scripts.\r\n"
    );
    assert_eq!(c.cmd(&["SCRIPT", "FLUSH"]), b"+OK\r\n");
    assert_eq!(
        c.cmd_str(&[
            "SCRIPT",
            "EXISTS",
            "c3f8721cbb97f72bc19e972846bd7aaf91901658",
            "ffffffffffffffffffffffffffffffffffffffff"
        ]),
        "*2\r\n:1\r\n:0\r\n"
    );
    assert_eq!(
        c.cmd_str(&["SCRIPT", "KILL"]),
        "-NOTBUSY No scripts in execution right now.\r\n"
    );
}

#[test]
fn binary_tokens_compare_byte_exactly() {
    let server = Server::start();
    let mut c = server.raw();
    let token: &[u8] = &[
        0x00, 0xff, 0x80, 0x0d, 0x0a, 0x7f, 0xc3, 0x28, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    let mut almost = token.to_vec();
    almost[19] ^= 1;
    c.cmd_bytes(&[b"SET", b"rs", token, b"NX", b"PX", b"60000"]);
    let rslock_unlock = b"daf86bbf8740dd3ca86733367a016364b2110627";
    let rslock_extend = b"17a49af0c4b1a9034503fa84f3570f5ca76c4cbf";
    assert_eq!(
        c.cmd_bytes(&[b"EVALSHA", rslock_extend, b"1", b"rs", &almost, b"1000"]),
        b":0\r\n"
    );
    assert_eq!(
        c.cmd_bytes(&[b"EVALSHA", rslock_extend, b"1", b"rs", token, b"90000"]),
        b":1\r\n"
    );
    assert_eq!(
        c.cmd_bytes(&[b"EVALSHA", rslock_unlock, b"1", b"rs", &almost]),
        b":0\r\n"
    );
    assert_eq!(c.cmd_bytes(&[b"EVALSHA", rslock_unlock, b"1", b"rs", token]), b":1\r\n");
}

#[test]
fn pottery_nextid_and_redis_py_extend_modes() {
    let server = Server::start();
    let mut c = server.raw();
    let nextid = "556429c2d8baca516a475ebb22d380cbccae7313";
    assert_eq!(c.cmd_str(&["EVALSHA", nextid, "1", "nextid:x", "5"]), ":5\r\n");
    assert_eq!(c.cmd_str(&["GET", "nextid:x"]), "$1\r\n5\r\n");
    assert_eq!(c.cmd_str(&["EVALSHA", nextid, "1", "nextid:x", "3"]), "$-1\r\n");
    assert_eq!(c.cmd_str(&["EVALSHA", nextid, "1", "nextid:x", "6"]), ":6\r\n");
    let old_nextid = "317b4461fc08fad2543724073eb618dbb16770ad";
    assert!(
        c.cmd_str(&["EVALSHA", old_nextid, "1", "nextid:missing", "1"])
            .starts_with("-ERR user_script:1: attempt to compare nil with number")
    );
    // redis-py extend: "0" adds to the remaining TTL, "1" replaces it; no TTL refuses.
    let extend = "a4e8783852e6b949f9ef3a97212805108459a890";
    c.cmd(&["SET", "l", "t", "PX", "100000"]);
    assert_eq!(c.cmd_str(&["EVALSHA", extend, "1", "l", "t", "50000", "0"]), ":1\r\n");
    let pttl: i64 = c
        .cmd_str(&["PTTL", "l"])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(pttl > 100_000 && pttl <= 150_000, "{pttl}");
    assert_eq!(c.cmd_str(&["EVALSHA", extend, "1", "l", "t", "5000", "1"]), ":1\r\n");
    let pttl: i64 = c
        .cmd_str(&["PTTL", "l"])
        .trim_start_matches(':')
        .trim()
        .parse()
        .unwrap();
    assert!(pttl <= 5000, "{pttl}");
    c.cmd(&["SET", "l", "t"]);
    assert_eq!(c.cmd_str(&["EVALSHA", extend, "1", "l", "t", "5000", "1"]), ":0\r\n");
    // redlock-rb refuses a free key when new locks are not allowed ('no').
    let rb = "ceb2b2062e40c51a2b3963fd078bc71f11bdc65c";
    assert_eq!(c.cmd_str(&["EVALSHA", rb, "1", "rb", "v", "1000", "no"]), "$-1\r\n");
    assert_eq!(c.cmd_str(&["EXISTS", "rb"]), ":0\r\n");
    // A lock granted through a script expires like any other.
    assert_eq!(c.cmd_str(&["EVALSHA", rb, "1", "rb", "v", "20", "yes"]), "+OK\r\n");
    assert!(eventually(Duration::from_secs(5), || c.cmd_str(&["EXISTS", "rb"]) == ":0\r\n"));
}
