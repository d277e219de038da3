//! The declarative command table: name, arity, flags, key positions, handler.
//!
//! Dispatch, arity checks, MULTI queueing, key locking, COMMAND output and
//! INFO commandstats are all driven by this one table. Arity follows Redis:
//! positive = exact argument count (including the name), negative = at least.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{CmdResult, Ctx, connection, expire, keys, locks, scripting, server, strings, transactions};
use crate::store::Locked;

pub type Handler = fn(&mut Ctx<'_>, &mut Locked<'_>, &[&[u8]]) -> CmdResult;

/// Where a command's keys are among its arguments.
#[derive(Debug, Clone, Copy)]
pub enum KeySpec {
    /// No keys.
    None,
    /// Keys at `first`, `first+step`, ... up to `last` (negative: from the end).
    Range { first: usize, last: isize, step: usize },
    /// `args[at]` says how many keys follow from `first` (EVAL).
    NumKeys { at: usize, first: usize },
    /// The whole keyspace of the current database.
    All,
}

pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const FAST: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const LOADING: u32 = 1 << 5;
    pub const STALE: u32 = 1 << 6;
    pub const NO_AUTH: u32 = 1 << 7;
    /// Runs at once even inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT, RESET).
    pub const SKIP_QUEUE: u32 = 1 << 8;
    /// Refused inside MULTI.
    pub const NO_MULTI: u32 = 1 << 9;
    pub const DENYOOM: u32 = 1 << 10;
    /// Creates a key only where none is (SETNX, MSETNX, RENAMENX,
    /// LOCK.ACQUIRE): a lock grant, refused while `--restart-delay` runs.
    /// SET (with NX, IFNE or IFDNE) and EVAL (of an acquire script) grant
    /// only with some arguments, and check for themselves.
    pub const GRANTS_LOCK: u32 = 1 << 11;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
    ];
}

pub struct CommandSpec {
    /// Lowercase name, as COMMAND reports it.
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub group: &'static str,
    pub summary: &'static str,
    pub handler: Handler,
}

use flags::*;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    group: &'static str,
    summary: &'static str,
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        group,
        summary,
        handler,
    }
}

const K1: KeySpec = KeySpec::Range {
    first: 1,
    last: 1,
    step: 1,
};
const KALL: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 1,
};
const KNONE: KeySpec = KeySpec::None;
const KEVAL: KeySpec = KeySpec::NumKeys { at: 2, first: 3 };

const RW: u32 = WRITE | DENYOOM;
const RO: u32 = READONLY;
const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST;

pub static COMMANDS: &[CommandSpec] = &[
    // connection
    spec(
        "ping",
        -1,
        FAST,
        KNONE,
        "connection",
        "Returns the server's liveliness response.",
        connection::ping,
    ),
    spec(
        "echo",
        2,
        FAST,
        KNONE,
        "connection",
        "Returns the given string.",
        connection::echo,
    ),
    spec(
        "hello",
        -1,
        CONN | NO_AUTH,
        KNONE,
        "connection",
        "Handshakes with the Redis server.",
        connection::hello,
    ),
    spec(
        "quit",
        -1,
        CONN | NO_AUTH | SKIP_QUEUE,
        KNONE,
        "connection",
        "Closes the connection.",
        connection::quit,
    ),
    spec(
        "reset",
        1,
        CONN | NO_AUTH | SKIP_QUEUE,
        KNONE,
        "connection",
        "Resets the connection.",
        connection::reset,
    ),
    spec(
        "select",
        2,
        CONN,
        KNONE,
        "connection",
        "Changes the selected database.",
        connection::select,
    ),
    spec(
        "client",
        -2,
        NOSCRIPT | LOADING | STALE,
        KNONE,
        "connection",
        "A container for client connection commands.",
        connection::client,
    ),
    spec(
        "auth",
        -2,
        CONN | NO_AUTH,
        KNONE,
        "connection",
        "Authenticates the connection.",
        connection::auth,
    ),
    // server
    spec(
        "info",
        -1,
        LOADING | STALE,
        KNONE,
        "server",
        "Returns information and statistics about the server.",
        server::info,
    ),
    spec(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        KNONE,
        "server",
        "A container for server configuration commands.",
        server::config,
    ),
    spec(
        "dbsize",
        1,
        RO | FAST,
        KeySpec::All,
        "server",
        "Returns the number of keys in the database.",
        server::dbsize,
    ),
    spec(
        "flushdb",
        -1,
        WRITE,
        KeySpec::All,
        "server",
        "Removes all keys from the current database.",
        server::flushdb,
    ),
    spec(
        "flushall",
        -1,
        WRITE,
        KNONE,
        "server",
        "Removes all keys from all databases.",
        server::flushall,
    ),
    spec(
        "time",
        1,
        LOADING | STALE | FAST,
        KNONE,
        "server",
        "Returns the server time.",
        server::time,
    ),
    spec(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI,
        KNONE,
        "server",
        "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        server::shutdown,
    ),
    spec(
        "command",
        -1,
        LOADING | STALE,
        KNONE,
        "server",
        "Returns detailed information about all commands.",
        server::command,
    ),
    spec(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        KNONE,
        "server",
        "Asynchronously rewrites the append-only file to disk.",
        server::bgrewriteaof,
    ),
    spec(
        "wait",
        3,
        0,
        KNONE,
        "generic",
        "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
        server::wait,
    ),
    spec(
        "publish",
        3,
        LOADING | STALE | FAST,
        KNONE,
        "pubsub",
        "Posts a message to a channel.",
        server::publish,
    ),
    // keys
    spec(
        "del",
        -2,
        WRITE,
        KALL,
        "generic",
        "Deletes one or more keys.",
        keys::del,
    ),
    spec(
        "unlink",
        -2,
        WRITE | FAST,
        KALL,
        "generic",
        "Asynchronously deletes one or more keys.",
        keys::del,
    ),
    spec(
        "exists",
        -2,
        RO | FAST,
        KALL,
        "generic",
        "Determines whether one or more keys exist.",
        keys::exists,
    ),
    spec(
        "touch",
        -2,
        RO | FAST,
        KALL,
        "generic",
        "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        keys::exists,
    ),
    spec(
        "type",
        2,
        RO | FAST,
        K1,
        "generic",
        "Determines the type of value stored at a key.",
        keys::type_,
    ),
    spec(
        "keys",
        2,
        RO,
        KeySpec::All,
        "generic",
        "Returns all key names that match a pattern.",
        keys::keys,
    ),
    spec(
        "scan",
        -2,
        RO,
        KeySpec::All,
        "generic",
        "Iterates over the key names in the database.",
        keys::scan,
    ),
    spec(
        "randomkey",
        1,
        RO,
        KeySpec::All,
        "generic",
        "Returns a random key name from the database.",
        keys::randomkey,
    ),
    spec(
        "rename",
        3,
        WRITE,
        KeySpec::Range {
            first: 1,
            last: 2,
            step: 1,
        },
        "generic",
        "Renames a key and overwrites the destination.",
        keys::rename,
    ),
    spec(
        "renamenx",
        3,
        WRITE | FAST | GRANTS_LOCK,
        KeySpec::Range {
            first: 1,
            last: 2,
            step: 1,
        },
        "generic",
        "Renames a key only when the target key name doesn't exist.",
        keys::renamenx,
    ),
    // expiry
    spec(
        "expire",
        -3,
        WRITE | FAST,
        K1,
        "generic",
        "Sets the expiration time of a key in seconds.",
        expire::expire,
    ),
    spec(
        "pexpire",
        -3,
        WRITE | FAST,
        K1,
        "generic",
        "Sets the expiration time of a key in milliseconds.",
        expire::pexpire,
    ),
    spec(
        "expireat",
        -3,
        WRITE | FAST,
        K1,
        "generic",
        "Sets the expiration time of a key to a Unix timestamp.",
        expire::expireat,
    ),
    spec(
        "pexpireat",
        -3,
        WRITE | FAST,
        K1,
        "generic",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        expire::pexpireat,
    ),
    spec(
        "ttl",
        2,
        RO | FAST,
        K1,
        "generic",
        "Returns the expiration time in seconds of a key.",
        expire::ttl,
    ),
    spec(
        "pttl",
        2,
        RO | FAST,
        K1,
        "generic",
        "Returns the expiration time in milliseconds of a key.",
        expire::pttl,
    ),
    spec(
        "expiretime",
        2,
        RO | FAST,
        K1,
        "generic",
        "Returns the expiration time of a key as a Unix timestamp.",
        expire::expiretime,
    ),
    spec(
        "pexpiretime",
        2,
        RO | FAST,
        K1,
        "generic",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        expire::pexpiretime,
    ),
    spec(
        "persist",
        2,
        WRITE | FAST,
        K1,
        "generic",
        "Removes the expiration time of a key.",
        expire::persist,
    ),
    // strings
    spec(
        "get",
        2,
        RO | FAST,
        K1,
        "string",
        "Returns the string value of a key.",
        strings::get,
    ),
    spec(
        "set",
        -3,
        RW,
        K1,
        "string",
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
        strings::set,
    ),
    spec(
        "setnx",
        3,
        RW | FAST | GRANTS_LOCK,
        K1,
        "string",
        "Set the string value of a key only when the key doesn't exist.",
        strings::setnx,
    ),
    spec(
        "setex",
        4,
        RW,
        K1,
        "string",
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
        strings::setex,
    ),
    spec(
        "psetex",
        4,
        RW,
        K1,
        "string",
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
        strings::psetex,
    ),
    spec(
        "getset",
        3,
        RW | FAST,
        K1,
        "string",
        "Returns the previous string value of a key after setting it to a new value.",
        strings::getset,
    ),
    spec(
        "getdel",
        2,
        WRITE | FAST,
        K1,
        "string",
        "Returns the string value of a key after deleting the key.",
        strings::getdel,
    ),
    spec(
        "getex",
        -2,
        WRITE | FAST,
        K1,
        "string",
        "Returns the string value of a key after setting its expiration time.",
        strings::getex,
    ),
    spec(
        "mget",
        -2,
        RO | FAST,
        KALL,
        "string",
        "Atomically returns the string values of one or more keys.",
        strings::mget,
    ),
    spec(
        "mset",
        -3,
        RW,
        KeySpec::Range {
            first: 1,
            last: -1,
            step: 2,
        },
        "string",
        "Atomically creates or modifies the string values of one or more keys.",
        strings::mset,
    ),
    spec(
        "msetnx",
        -3,
        RW | GRANTS_LOCK,
        KeySpec::Range {
            first: 1,
            last: -1,
            step: 2,
        },
        "string",
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        strings::msetnx,
    ),
    spec(
        "incr",
        2,
        RW | FAST,
        K1,
        "string",
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        strings::incr,
    ),
    spec(
        "decr",
        2,
        RW | FAST,
        K1,
        "string",
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        strings::incr,
    ),
    spec(
        "incrby",
        3,
        RW | FAST,
        K1,
        "string",
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        strings::incr,
    ),
    spec(
        "decrby",
        3,
        RW | FAST,
        K1,
        "string",
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        strings::incr,
    ),
    spec(
        "incrbyfloat",
        3,
        RW | FAST,
        K1,
        "string",
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        strings::incrbyfloat,
    ),
    spec(
        "append",
        3,
        RW | FAST,
        K1,
        "string",
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        strings::append,
    ),
    spec(
        "strlen",
        2,
        RO | FAST,
        K1,
        "string",
        "Returns the length of a string value.",
        strings::strlen,
    ),
    spec(
        "getrange",
        4,
        RO,
        K1,
        "string",
        "Returns a substring of the string stored at a key.",
        strings::getrange,
    ),
    spec(
        "substr",
        4,
        RO,
        K1,
        "string",
        "Returns a substring from a string value.",
        strings::getrange,
    ),
    spec(
        "setrange",
        4,
        RW,
        K1,
        "string",
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        strings::setrange,
    ),
    // transactions
    spec(
        "multi",
        1,
        NOSCRIPT | LOADING | STALE | FAST | SKIP_QUEUE,
        KNONE,
        "transactions",
        "Starts a transaction.",
        transactions::multi,
    ),
    spec(
        "exec",
        1,
        NOSCRIPT | LOADING | STALE | SKIP_QUEUE,
        KNONE,
        "transactions",
        "Executes all commands in a transaction.",
        transactions::exec,
    ),
    spec(
        "discard",
        1,
        NOSCRIPT | LOADING | STALE | FAST | SKIP_QUEUE,
        KNONE,
        "transactions",
        "Discards a transaction.",
        transactions::discard,
    ),
    spec(
        "watch",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | SKIP_QUEUE,
        KALL,
        "transactions",
        "Monitors changes to keys to determine the execution of a transaction.",
        transactions::watch,
    ),
    spec(
        "unwatch",
        1,
        NOSCRIPT | LOADING | STALE | FAST,
        KNONE,
        "transactions",
        "Forgets about watched keys of a transaction.",
        transactions::unwatch,
    ),
    // locks (Redis 8.4 / Valkey 9 and redlockd's own)
    spec(
        "delex",
        -2,
        WRITE | FAST,
        K1,
        "string",
        "Conditionally removes the specified key based on value or digest comparison.",
        locks::delex,
    ),
    spec(
        "digest",
        2,
        RO | FAST,
        K1,
        "string",
        "Returns the XXH3 hash of a string value.",
        locks::digest,
    ),
    spec(
        "delifeq",
        3,
        WRITE | FAST,
        K1,
        "string",
        "Deletes the key if its value equals the given value.",
        locks::delifeq,
    ),
    spec(
        "lock.acquire",
        -5,
        RW | FAST | GRANTS_LOCK,
        K1,
        "lock",
        "Acquires a lock with an owner token and a TTL; returns a fencing token.",
        locks::lock_acquire,
    ),
    spec(
        "lock.release",
        3,
        WRITE | FAST,
        K1,
        "lock",
        "Releases a lock held with the given token.",
        locks::lock_release,
    ),
    spec(
        "lock.extend",
        5,
        WRITE | FAST,
        K1,
        "lock",
        "Extends a lock held with the given token.",
        locks::lock_extend,
    ),
    spec(
        "lock.info",
        2,
        RO | FAST,
        K1,
        "lock",
        "Returns a lock's owner token, remaining TTL and fence.",
        locks::lock_info,
    ),
    spec(
        "fence.set",
        4,
        RW | FAST,
        K1,
        "lock",
        "Sets a value unless a higher fencing token was already accepted for the key.",
        locks::fence_set,
    ),
    spec(
        "fence.incrby",
        4,
        RW | FAST,
        K1,
        "lock",
        "Increments a counter unless a higher fencing token was already accepted for the key.",
        locks::fence_incrby,
    ),
    spec(
        "fence.raise",
        2,
        WRITE | FAST,
        KNONE,
        "lock",
        "Raises the instance's fencing counter to at least the given value.",
        locks::fence_raise,
    ),
    // scripting without Lua
    spec(
        "eval",
        -3,
        NOSCRIPT | WRITE,
        KEVAL,
        "scripting",
        "Executes a server-side Lua script (catalogued lock scripts only).",
        scripting::eval,
    ),
    spec(
        "evalsha",
        -3,
        NOSCRIPT | WRITE,
        KEVAL,
        "scripting",
        "Executes a server-side Lua script by SHA1 digest (catalogued lock scripts only).",
        scripting::evalsha,
    ),
    spec(
        "eval_ro",
        -3,
        NOSCRIPT | READONLY,
        KEVAL,
        "scripting",
        "Executes a read-only server-side Lua script.",
        scripting::eval,
    ),
    spec(
        "evalsha_ro",
        -3,
        NOSCRIPT | READONLY,
        KEVAL,
        "scripting",
        "Executes a read-only server-side Lua script by SHA1 digest.",
        scripting::evalsha,
    ),
    spec(
        "script",
        -2,
        NOSCRIPT,
        KNONE,
        "scripting",
        "A container for Lua scripts management commands.",
        scripting::script,
    ),
];

type Index = HashMap<&'static [u8], usize, ahash::RandomState>;

/// The name index, built on the first lookup, which is also when the
/// table gives INFO commandstats its counters: no command runs before it.
fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        crate::stats::register_commands(COMMANDS.len());
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    })
}

/// Find a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
    let index = index();
    let mut buf = [0u8; 24];
    if name.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index.get(&*lower).map(|&i| (i, &COMMANDS[i]))
}

/// The last command name a client sent, exactly as sent, and what it
/// resolved to: clients repeat their commands (a pipeline of GETs, a lock
/// loop of SET and EVALSHA), so most lookups are one comparison instead of a
/// lowercase copy, a hash and a probe.
#[derive(Default)]
pub struct LookupCache {
    /// The name's bytes, zero-padded (names up to 16 bytes are cached).
    name: u128,
    len: usize,
    index: usize,
}

impl LookupCache {
    pub fn lookup(&mut self, name: &[u8]) -> Option<(usize, &'static CommandSpec)> {
        if name.len() > 16 {
            return lookup(name);
        }
        let mut bytes = [0u8; 16];
        bytes[..name.len()].copy_from_slice(name);
        let packed = u128::from_le_bytes(bytes);
        if self.len == name.len() && self.name == packed && self.len > 0 {
            return Some((self.index, &COMMANDS[self.index]));
        }
        let found = lookup(name)?;
        (self.name, self.len, self.index) = (packed, name.len(), found.0);
        Some(found)
    }
}

pub fn arity_ok(spec: &CommandSpec, argc: usize) -> bool {
    if spec.arity >= 0 {
        argc == spec.arity as usize
    } else {
        argc >= (-spec.arity) as usize
    }
}
