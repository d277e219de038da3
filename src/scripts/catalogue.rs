//! The SHA1 → native operation table for catalogued lock scripts.
//!
//! Argument positions are 1-based, as in the scripts: `A(2)` is ARGV[2],
//! `K(3)` is KEYS[3] (node-redis-warlock passes its TTL and token as keys).
//! Every row was derived from the semantics in `shared/lock-scripts.json`.

/// Where an operand comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arg {
    A(usize),
    K(usize),
}
use Arg::{A, K};

/// A constant reply of a script.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reply {
    /// `+OK` (a status reply or the result of a successful SET).
    Ok,
    Int(i64),
    /// Lua `false` or nothing: a null.
    Nil,
    /// A bulk string (redsync v1's 'ERR').
    Bulk(&'static str),
    /// An error reply (aioredlock's `redis.error_reply('ERROR')`).
    Error(&'static str),
}

/// How a lock's TTL argument is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ttl {
    /// `PEXPIRE key ms` (≤0 deletes the key and still counts as done).
    Pexpire,
    /// `EXPIRE key s`.
    Expire,
    /// `SET key token PX ms`: rewrites the value, so a non-positive TTL is an error.
    SetPx,
}

/// What release-style scripts return.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReleaseReply {
    /// `:1` deleted, `:0` not the owner or missing.
    Count,
    /// `:1` deleted, `:-1` missing, `:0` held by another (redsync).
    MissingMinusOne,
    /// `:1` deleted, `+OK` missing, `-ERR ERROR` another holder (aioredlock).
    AioRedlock,
    /// `:1` deleted, nil otherwise (Lua true/false: Spring).
    TrueOrNil,
    /// nil whatever happened (simple-redis-mutex).
    AlwaysNil,
}

/// How a "still mine?" check compares the stored value with the token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Owner {
    /// The whole value equals the token.
    Exact(Arg),
    /// The first `len` bytes (given by an argument) of value and token agree
    /// (bsm/redislock stores token+metadata).
    Prefix { token: Arg, len: Arg },
}

/// The native operations, parameterised per library.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// If K1 is owned: delete it. `owner: None` deletes unconditionally.
    Release {
        owner: Option<Arg>,
        reply: ReleaseReply,
    },
    /// If K1 is owned: apply the TTL; reply `done` (or the PEXPIRE result) /
    /// `refused`. `add_mode`: redis-py's extend, which adds to the current
    /// PTTL (always, or when the argument is "0") and refuses keys without TTL.
    Extend {
        owner: Arg,
        ttl: Arg,
        how: Ttl,
        done: Reply,
        refused: Reply,
        add_mode: Option<AddMode>,
    },
    /// Acquire K1 if free, or renew it if already owned.
    AcquireOrRenew {
        owner: Owner,
        ttl: Arg,
        /// Reply when the key was free and is now set (None: never grant a free key).
        when_free: Option<Reply>,
        /// Only grant a free key when this argument is "yes" (redlock-rb).
        free_gate: Option<Arg>,
        /// How an owned key is renewed and the reply (None: refuse).
        when_owned: Option<(Ttl, Reply)>,
        refused: Reply,
    },
    /// npm redlock: all K1..KN free → set all, reply N; else 0.
    MultiAcquire {
        value: Arg,
        ttl: Arg,
    },
    /// npm redlock: all K1..KN owned → SET PX all, reply N; else 0.
    MultiExtend {
        value: Arg,
        ttl: Arg,
    },
    /// npm redlock: delete each owned Ki, reply how many.
    MultiRelease {
        value: Arg,
    },
    /// bsm/redislock: all-or-nothing over K1..KN; nil when any is not owned.
    BsmObtain {
        value: Arg,
        len: Arg,
        ttl: Arg,
    },
    BsmRelease {
        value: Arg,
    },
    BsmRefresh {
        value: Arg,
        ttl: Arg,
    },
    BsmTtl {
        value: Arg,
    },
    /// Remaining TTL of an owned lock; `refused` when not owned.
    OwnerTtl {
        owner: Arg,
        seconds: bool,
        clamp_to_zero: bool,
        refused: Reply,
    },
    /// redlock-rb: `[GET K1, PTTL K1]`.
    ValueAndPttl,
    /// pottery NextID: raise K1 to A1 if greater; reply A1 or nil.
    /// `missing_is_error`: older texts compare nil with a number and fail.
    NextId {
        missing_is_error: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AddMode {
    /// Always add to the current PTTL.
    Always,
    /// Add when this argument is "0", replace otherwise.
    Flag(Arg),
}

/// How many keys a script takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumKeys {
    Exactly(usize),
    AtLeastOne,
}

pub struct Script {
    pub sha: &'static str,
    pub library: &'static str,
    pub operation: &'static str,
    pub numkeys: NumKeys,
    /// ARGV entries the operation reads (more are ignored, as Lua does).
    pub min_argv: usize,
    /// pcall(SELECT, ARGV[n]) first (@sesamecare-oss/redlock).
    pub select_db: Option<Arg>,
    pub op: Op,
}

impl Op {
    /// Whether the operation can grant a lock on a free key (refused during
    /// the restart delay).
    pub fn grants(&self) -> bool {
        matches!(
            self,
            Op::AcquireOrRenew { when_free: Some(_), .. } | Op::MultiAcquire { .. } | Op::BsmObtain { .. }
        )
    }

    /// Whether the operation can change the keyspace (refused by EVAL_RO).
    pub fn writes(&self) -> bool {
        !matches!(self, Op::OwnerTtl { .. } | Op::ValueAndPttl | Op::BsmTtl { .. })
    }
}

const fn s(
    sha: &'static str,
    library: &'static str,
    operation: &'static str,
    numkeys: NumKeys,
    min_argv: usize,
    op: Op,
) -> Script {
    Script {
        sha,
        library,
        operation,
        numkeys,
        min_argv,
        select_db: None,
        op,
    }
}

const ONE: NumKeys = NumKeys::Exactly(1);
const N: NumKeys = NumKeys::AtLeastOne;

const DEL_COUNT: Op = Op::Release {
    owner: Some(A(1)),
    reply: ReleaseReply::Count,
};
const PEXPIRE_1_0: Op = Op::Extend {
    owner: A(1),
    ttl: A(2),
    how: Ttl::Pexpire,
    done: Reply::Int(1),
    refused: Reply::Int(0),
    add_mode: None,
};

pub static CATALOGUE: &[Script] = &[
    // ---- redis-py Lock (sync and asyncio), current
    s(
        "c3f8721cbb97f72bc19e972846bd7aaf91901658",
        "redis-py",
        "release",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "a4e8783852e6b949f9ef3a97212805108459a890",
        "redis-py",
        "extend",
        ONE,
        3,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::Pexpire,
            done: Reply::Int(1),
            refused: Reply::Int(0),
            add_mode: Some(AddMode::Flag(A(3))),
        },
    ),
    s(
        "1cac51482acf5858da00f6d685d68f886cd6b6b2",
        "redis-py",
        "reacquire",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    // ---- redis-py, historical
    s(
        "5688a2541c9edd77746bcd2385e65ff3639a664f",
        "redis-py 2.10 LuaLock",
        "acquire",
        ONE,
        2,
        Op::AcquireOrRenew {
            owner: Owner::Exact(A(1)),
            ttl: A(2),
            when_free: Some(Reply::Int(1)),
            free_gate: None,
            when_owned: None,
            refused: Reply::Int(0),
        },
    ),
    s(
        "4a484ac024e9b025224cd9f8e1d59dbf3c15d00d",
        "redis-py <=3.4",
        "extend",
        ONE,
        2,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::Pexpire,
            done: Reply::Int(1),
            refused: Reply::Int(0),
            add_mode: Some(AddMode::Always),
        },
    ),
    // ---- pottery Redlock / AIORedlock (current and 1.0.0..1.0.4)
    s(
        "f5f7bd3a3aa4a63c507c1155c5ea1219b350d992",
        "pottery",
        "locked",
        ONE,
        1,
        Op::OwnerTtl {
            owner: A(1),
            seconds: false,
            clamp_to_zero: true,
            refused: Reply::Int(0),
        },
    ),
    s(
        "f458acd98fe495b8e4ff97c0f53f745f2c4aa252",
        "pottery 1.0.0",
        "locked",
        ONE,
        1,
        Op::OwnerTtl {
            owner: A(1),
            seconds: false,
            clamp_to_zero: true,
            refused: Reply::Int(0),
        },
    ),
    s(
        "ba015a80261b616e7a62d35df0b8e3edbe6c9414",
        "pottery",
        "extend",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    s(
        "307044d49c8f033fbb885e9e0f1b7fe9e0e60675",
        "pottery 1.0.0",
        "extend",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    s(
        "a4aada0b36710970eedaaaeec4a6b7d8c78c4f80",
        "pottery",
        "release",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "d141b64a0a43e66a8576edaea6123638c0d74b31",
        "pottery 1.0.0",
        "release",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "556429c2d8baca516a475ebb22d380cbccae7313",
        "pottery NextID",
        "set id",
        ONE,
        1,
        Op::NextId {
            missing_is_error: false,
        },
    ),
    s(
        "317b4461fc08fad2543724073eb618dbb16770ad",
        "pottery NextID 1.0.0",
        "set id",
        ONE,
        1,
        Op::NextId { missing_is_error: true },
    ),
    s(
        "655bab76f2e789f07bcc4e8e09c919337d858411",
        "pottery NextID 1.0.5",
        "set id",
        ONE,
        1,
        Op::NextId { missing_is_error: true },
    ),
    // ---- redlock-py
    s(
        "4e92fdc63815b3a0a2dd1c1df3694de73607c88d",
        "redlock-py",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    // ---- aioredlock (texts as sent: leading whitespace stripped)
    s(
        "c75a9bf1538efcdb1f383acc3e273c5089d57e58",
        "aioredlock",
        "set_lock",
        ONE,
        2,
        Op::AcquireOrRenew {
            owner: Owner::Exact(A(1)),
            ttl: A(2),
            when_free: Some(Reply::Ok),
            free_gate: None,
            when_owned: Some((Ttl::SetPx, Reply::Ok)),
            refused: Reply::Error("ERR ERROR"),
        },
    ),
    s(
        "241e4ca540a1cc4ec1f32d9eb9f879e607d7e6e5",
        "aioredlock",
        "unset_lock",
        ONE,
        1,
        Op::Release {
            owner: Some(A(1)),
            reply: ReleaseReply::AioRedlock,
        },
    ),
    s(
        "f908d3f43dbcabc68fc0c9ecaf1fa4a285ecdb0a",
        "aioredlock",
        "get_lock_ttl",
        ONE,
        1,
        Op::OwnerTtl {
            owner: A(1),
            seconds: true,
            clamp_to_zero: false,
            refused: Reply::Error("ERR ERROR"),
        },
    ),
    // ---- npm redlock v4 (tabs), v5 (spaces), 4.0.0..4.1.0, and <=3.1.2
    s(
        "e5a322e2634ef59a516e8ea150cb085afafee684",
        "redlock (npm) 4.2",
        "acquire",
        N,
        2,
        Op::MultiAcquire { value: A(1), ttl: A(2) },
    ),
    s(
        "0f0f23b9048b36752b5be114f357ba083449f908",
        "redlock (npm) 4.2",
        "release",
        N,
        1,
        Op::MultiRelease { value: A(1) },
    ),
    s(
        "ce46f80993d5dac20dd066eb301a4e37994bdbed",
        "redlock (npm) 4.2",
        "extend",
        N,
        2,
        Op::MultiExtend { value: A(1), ttl: A(2) },
    ),
    s(
        "96da70f7716f27d278a5218544df37fd8b0a5e4c",
        "redlock (npm) 5",
        "acquire",
        N,
        2,
        Op::MultiAcquire { value: A(1), ttl: A(2) },
    ),
    s(
        "aed6f382e410db8ba7926d4e5e9aab410bf2a78a",
        "redlock (npm) 5",
        "extend",
        N,
        2,
        Op::MultiExtend { value: A(1), ttl: A(2) },
    ),
    s(
        "e4612211c9f8f51c257e26e056b0a654b3187242",
        "redlock (npm) 5",
        "release",
        N,
        1,
        Op::MultiRelease { value: A(1) },
    ),
    s(
        "d01fb69e6ecc8bad3ca9bacba9f4f9e96862313f",
        "redlock (npm) 4.0",
        "acquire",
        N,
        2,
        Op::MultiAcquire { value: A(1), ttl: A(2) },
    ),
    s(
        "517e7ed95f00c0c4a209c6a7afcc6ab797d30b85",
        "redlock (npm) 4.0",
        "release",
        N,
        1,
        Op::MultiRelease { value: A(1) },
    ),
    s(
        "acaf90b4697bb48bb5f603e9e613a54df7536c70",
        "redlock (npm) 4.0",
        "extend",
        N,
        2,
        Op::MultiExtend { value: A(1), ttl: A(2) },
    ),
    s(
        "1d48b4c6fea2cdadc46b3346de5c2eaf121c7bb3",
        "redlock (npm) 4.1",
        "extend",
        N,
        2,
        Op::MultiExtend { value: A(1), ttl: A(2) },
    ),
    s(
        "cf0e94b2e9ffc7e04395cf88f7583fc309985910",
        "redlock (npm) <=3 / bsm/redislock <=0.9.4",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "a2c2e4c111924caec00216d4881ed37a644435ce",
        "redlock (npm) 0.2",
        "extend",
        ONE,
        2,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::Expire,
            done: Reply::Int(1),
            refused: Reply::Int(0),
            add_mode: None,
        },
    ),
    s(
        "a7aba3bc5d6e99b3003da8b9d80a63b9f4092ecf",
        "redlock (npm) <=3 / bsm/redislock <=0.9.4",
        "extend",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    s(
        "862f31bf38e9b63ce28d6e9e5143551bb34ef981",
        "redlock (npm) 2..3",
        "acquire",
        ONE,
        2,
        Op::AcquireOrRenew {
            owner: Owner::Exact(A(1)),
            ttl: A(2),
            when_free: Some(Reply::Ok),
            free_gate: None,
            when_owned: None,
            refused: Reply::Nil,
        },
    ),
    // ---- redis-semaphore Mutex
    s(
        "7157921a7cc7cfba979acf6d63f073151df17d12",
        "redis-semaphore",
        "release",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "594683e49a64ebaf975caf5f8079a1d097c438f1",
        "redis-semaphore",
        "refresh",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    // ---- node-redis-warlock (TTL and token passed as KEYS[2], KEYS[3])
    s(
        "5cc368fb92acd8fee3a986dc8e971d6cf28c3b44",
        "node-redis-warlock",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "78d3bb55c589f1b2edf66f3527f5017f8dfcd6bb",
        "node-redis-warlock",
        "touch",
        NumKeys::Exactly(3),
        0,
        Op::Extend {
            owner: K(3),
            ttl: K(2),
            how: Ttl::SetPx,
            done: Reply::Ok,
            refused: Reply::Int(0),
            add_mode: None,
        },
    ),
    // ---- simple-redis-mutex (PUBLISH has no subscribers here)
    s(
        "02718596825c5bf6c57af391b4dc01a6d2d9d88a",
        "simple-redis-mutex",
        "release",
        NumKeys::Exactly(2),
        1,
        Op::Release {
            owner: Some(A(1)),
            reply: ReleaseReply::AlwaysNil,
        },
    ),
    // ---- go-redsync/redsync
    s(
        "e950836ed1e694540c503ef9972b8de518044d3b",
        "redsync v4",
        "release",
        ONE,
        1,
        Op::Release {
            owner: Some(A(1)),
            reply: ReleaseReply::MissingMinusOne,
        },
    ),
    s(
        "d75bb8b5bd13532ddedd17762e772346e39b321e",
        "redsync v4",
        "extend",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    s(
        "b6b55c439e02c6f52ffb8be7ec8c0d0ac816ea79",
        "redsync v4",
        "extend (SetNX)",
        ONE,
        2,
        Op::AcquireOrRenew {
            owner: Owner::Exact(A(1)),
            ttl: A(2),
            when_free: Some(Reply::Int(1)),
            free_gate: None,
            when_owned: Some((Ttl::Pexpire, Reply::Int(1))),
            refused: Reply::Int(0),
        },
    ),
    s(
        "00583931c4e4d483f6233879c133c71ed5393f9d",
        "redsync v1..v4.11",
        "release",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "009e6775acf362b837433e2ab6f2b772e391079e",
        "redsync v1",
        "extend",
        ONE,
        2,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::SetPx,
            done: Reply::Ok,
            refused: Reply::Bulk("ERR"),
            add_mode: None,
        },
    ),
    s(
        "53692746b44cae854b8dfa32b177218bbe40baee",
        "redsync v1.2..v3",
        "extend",
        ONE,
        2,
        PEXPIRE_1_0,
    ),
    // ---- bsm/redislock
    s(
        "eb0c00d98f6f33b4262419a509002884540f30be",
        "bsm/redislock",
        "obtain",
        N,
        3,
        Op::BsmObtain {
            value: A(1),
            len: A(2),
            ttl: A(3),
        },
    ),
    s(
        "9470c810040e272ee6c579d8d4331aaf6332a7b1",
        "bsm/redislock",
        "release",
        N,
        1,
        Op::BsmRelease { value: A(1) },
    ),
    s(
        "5a22d7e8431313862816d4416b5e46dd70fc340d",
        "bsm/redislock",
        "refresh",
        N,
        2,
        Op::BsmRefresh { value: A(1), ttl: A(2) },
    ),
    s(
        "66e1084c2d842a7e8c271925aae90219fac4e129",
        "bsm/redislock",
        "TTL",
        N,
        1,
        Op::BsmTtl { value: A(1) },
    ),
    s(
        "6484da7d58920897fdc22b7f9afd1a3d47524ea8",
        "bsm/redislock <=0.9.4",
        "TTL",
        ONE,
        1,
        Op::OwnerTtl {
            owner: A(1),
            seconds: false,
            clamp_to_zero: false,
            refused: Reply::Int(-3),
        },
    ),
    s(
        "80a1b5f2cfccec3b7119ba7721d2127682b691a7",
        "bsm/redislock 0.9.4",
        "obtain",
        ONE,
        3,
        Op::AcquireOrRenew {
            owner: Owner::Prefix { token: A(1), len: A(2) },
            ttl: A(3),
            when_free: Some(Reply::Ok),
            free_gate: None,
            when_owned: Some((Ttl::SetPx, Reply::Ok)),
            refused: Reply::Nil,
        },
    ),
    // ---- Spring Integration RedisLockRegistry (Lua true → :1, false → nil)
    s(
        "175897a4e379e99e79a54937be09226f76cdcfe5",
        "Spring RedisLockRegistry",
        "obtain",
        ONE,
        2,
        SPRING_OBTAIN,
    ),
    s(
        "8426c8df41c64d8177dce3ecbbe9146ef3759cd2",
        "Spring RedisLockRegistry 5.0",
        "obtain",
        ONE,
        2,
        SPRING_OBTAIN,
    ),
    s(
        "6d2bc6d16248df19e144841297222544e3c7800a",
        "Spring RedisLockRegistry 5.5",
        "obtain",
        ONE,
        2,
        SPRING_OBTAIN,
    ),
    s(
        "879e0f7b8d83c3266d4e996627438c05dbda0b89",
        "Spring RedisLockRegistry",
        "renew",
        ONE,
        2,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::Pexpire,
            done: Reply::Int(1),
            refused: Reply::Nil,
            add_mode: None,
        },
    ),
    s(
        "7a71e9443a2a41539fb115a5a27d5a748a871aed",
        "Spring RedisLockRegistry",
        "unlock (pub/sub)",
        ONE,
        2,
        SPRING_UNLOCK,
    ),
    s(
        "f0f9038aa2b6d6c3436c72d147573ea2a58f0ef2",
        "Spring RedisLockRegistry",
        "unlock (spin)",
        ONE,
        1,
        SPRING_UNLOCK,
    ),
    s(
        "c1ae6c899d164de076f40ffe82eba8fb8e27af6c",
        "Spring RedisLockRegistry 5.5",
        "unlock (UNLINK)",
        ONE,
        1,
        Op::Release {
            owner: None,
            reply: ReleaseReply::TrueOrNil,
        },
    ),
    s(
        "20b5c3728736e2367b496c16390f9df56916a76f",
        "Spring RedisLockRegistry 5.5",
        "unlock (DEL)",
        ONE,
        1,
        Op::Release {
            owner: None,
            reply: ReleaseReply::TrueOrNil,
        },
    ),
    s(
        "b2dedc0ab01c17f9f20e3e6ddb62dcb6afbed0bd",
        "Spring RedisLockRegistry 6.0",
        "unlock (DEL, pub/sub)",
        ONE,
        2,
        SPRING_UNLOCK,
    ),
    s(
        "356d97191f2b63031781ccc0e8e82f02e1995a90",
        "Spring RedisLockRegistry 6.0",
        "unlock (DEL, spin)",
        ONE,
        1,
        SPRING_UNLOCK,
    ),
    s(
        "67aebbcba76d9674162e8906de1f669866f48e07",
        "Spring RedisLockRegistry 6.4",
        "unlock (UNLINK, pub/sub)",
        NumKeys::Exactly(2),
        1,
        SPRING_UNLOCK,
    ),
    s(
        "4d7192f70618a620282e427698f9cde890151e58",
        "Spring RedisLockRegistry 6.4",
        "unlock (DEL, pub/sub)",
        NumKeys::Exactly(2),
        1,
        SPRING_UNLOCK,
    ),
    // ---- RedLock.net (LF and CRLF builds)
    s(
        "18b2a577dbe847b16bebde190d69a1613d68e60e",
        "RedLock.net",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "cb0427378f700ddb2f0e9394dbb0a40bd6dba04a",
        "RedLock.net (CRLF)",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "9f614a785a5f9ae8c6396c6b4bf94d2087342603",
        "RedLock.net",
        "extend",
        ONE,
        2,
        REDLOCK_NET_EXTEND,
    ),
    s(
        "3e7c6bf3e080bb97a92e77362149c26252b98212",
        "RedLock.net (CRLF)",
        "extend",
        ONE,
        2,
        REDLOCK_NET_EXTEND,
    ),
    // ---- Rust: rslock, redlock crate
    s(
        "daf86bbf8740dd3ca86733367a016364b2110627",
        "rslock",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "17a49af0c4b1a9034503fa84f3570f5ca76c4cbf",
        "rslock",
        "extend",
        ONE,
        2,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::SetPx,
            done: Reply::Int(1),
            refused: Reply::Int(0),
            add_mode: None,
        },
    ),
    s(
        "544c68b7ffd46e5d7ccc58a27204557efba43310",
        "redlock (crate)",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "edd478c3e9deb21a48d55681748153e3711d50b2",
        "redlock (crate) <=1.0",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    // ---- redlock-rb
    s(
        "ceb2b2062e40c51a2b3963fd078bc71f11bdc65c",
        "redlock-rb",
        "lock",
        ONE,
        3,
        REDLOCK_RB_LOCK,
    ),
    s(
        "a90bf4be8a6e440e3cc24540eb2f9ff1e16fbcc3",
        "redlock-rb 0.2..1.2.1",
        "lock",
        ONE,
        3,
        REDLOCK_RB_LOCK,
    ),
    s(
        "7fe7b0bc5c4277123d3b46d49d1c5a8bc6e4fe8a",
        "redlock-rb 0.1",
        "lock",
        ONE,
        2,
        Op::AcquireOrRenew {
            owner: Owner::Exact(A(1)),
            ttl: A(2),
            when_free: Some(Reply::Ok),
            free_gate: None,
            when_owned: Some((Ttl::SetPx, Reply::Ok)),
            refused: Reply::Nil,
        },
    ),
    s(
        "8e4905cee18e7c3188d10f2b8b170e403baed34f",
        "redlock-rb",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "963db4d9f0ccfdb859098be0b29f8b41dc02ed97",
        "redlock-rb <=1.2.1",
        "unlock",
        ONE,
        1,
        DEL_COUNT,
    ),
    s(
        "91d2b7405df91e02c3e2389f7f1c089b9f9e2632",
        "redlock-rb 0.1.7",
        "extend",
        ONE,
        2,
        Op::Extend {
            owner: A(1),
            ttl: A(2),
            how: Ttl::Expire,
            done: Reply::Int(0),
            refused: Reply::Int(1),
            add_mode: None,
        },
    ),
    s(
        "78d2ca48a6dc9ef6892059792a3a0c5237733d64",
        "redlock-rb",
        "pttl",
        ONE,
        0,
        Op::ValueAndPttl,
    ),
    s(
        "cd1ae9bb543136ebc0a80a277cd59a7cec83b296",
        "redlock-rb 1.2.1",
        "pttl",
        ONE,
        0,
        Op::ValueAndPttl,
    ),
    // ---- @sesamecare-oss/redlock (pcall SELECT ARGV[1] first)
    Script {
        select_db: Some(A(1)),
        ..s(
            "1b77b94aa78451d55dfa97e18819bfbfc596cb5b",
            "@sesamecare-oss/redlock",
            "acquire",
            N,
            3,
            Op::MultiAcquire { value: A(2), ttl: A(3) },
        )
    },
    Script {
        select_db: Some(A(1)),
        ..s(
            "820e9778d2b6733e9ed771e4be90ae73a95a6f3b",
            "@sesamecare-oss/redlock",
            "extend",
            N,
            3,
            Op::MultiExtend { value: A(2), ttl: A(3) },
        )
    },
    Script {
        select_db: Some(A(1)),
        ..s(
            "df51f6837dcfe303d334e6abea9aeae192bab216",
            "@sesamecare-oss/redlock",
            "release",
            N,
            2,
            Op::MultiRelease { value: A(2) },
        )
    },
];

const SPRING_OBTAIN: Op = Op::AcquireOrRenew {
    owner: Owner::Exact(A(1)),
    ttl: A(2),
    when_free: Some(Reply::Int(1)),
    free_gate: None,
    when_owned: Some((Ttl::Pexpire, Reply::Int(1))),
    refused: Reply::Nil,
};
const SPRING_UNLOCK: Op = Op::Release {
    owner: Some(A(1)),
    reply: ReleaseReply::TrueOrNil,
};
const REDLOCK_NET_EXTEND: Op = Op::AcquireOrRenew {
    owner: Owner::Exact(A(1)),
    ttl: A(2),
    when_free: Some(Reply::Int(1)),
    free_gate: None,
    when_owned: Some((Ttl::Pexpire, Reply::Int(1))),
    refused: Reply::Int(-1),
};
const REDLOCK_RB_LOCK: Op = Op::AcquireOrRenew {
    owner: Owner::Exact(A(1)),
    ttl: A(2),
    when_free: Some(Reply::Ok),
    free_gate: Some(A(3)),
    when_owned: Some((Ttl::SetPx, Reply::Ok)),
    refused: Reply::Nil,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shas_are_unique_lowercase_hex() {
        let mut seen = std::collections::HashSet::new();
        for s in CATALOGUE {
            assert_eq!(s.sha.len(), 40, "{}", s.sha);
            assert!(
                s.sha.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                "{}",
                s.sha
            );
            assert!(seen.insert(s.sha), "duplicate {}", s.sha);
        }
    }
}
