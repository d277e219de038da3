//! The declarative command table, one row per command: name, arity, flags,
//! key positions, what the append-only file records, handler, and the group
//! and summary COMMAND DOCS reports.
//!
//! Dispatch, arity checks, MULTI queueing, the OOM and MISCONF gates, key
//! locking, persistence, COMMAND output and INFO commandstats are all driven
//! by this one table; no dispatch code tests a command's name. Arity follows
//! Redis: positive = exact argument count (including the name), negative =
//! at least.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::{
    CmdResult, Ctx, connection, coordination, expire, hashes, keys, lists, locks, pubsub, scripting, server, sets,
    strings, transactions, zsets,
};
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
    /// `args[1]` is a destination and `args[2]` says how many source keys
    /// follow from `args[3]` (ZUNIONSTORE, ZINTERSTORE).
    DestNumKeys,
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
    /// Ends a transaction (EXEC, DISCARD, QUIT, RESET): served inside MULTI
    /// past maxmemory, where queueing anything else is refused, as Redis's
    /// processCommand does.
    pub const ENDS_MULTI: u32 = 1 << 12;
    /// Runs the commands MULTI queued (EXEC): refused with -MISCONF when one
    /// of them writes, and then discards the transaction.
    pub const RUNS_QUEUE: u32 = 1 << 13;
    /// Refused with -MISCONF while the append-only file cannot be written,
    /// though it writes nothing (PING), so that health checks notice.
    pub const HEALTH_CHECK: u32 = 1 << 14;
    /// A container of subcommands (CLIENT, CONFIG, ...): INFO commandstats,
    /// CLIENT LIST `cmd=` and SLOWLOG name the subcommand, as Redis does
    /// (`client|info`); the subcommands are in [`SUBCOMMANDS`](super::SUBCOMMANDS).
    pub const CONTAINER: u32 = 1 << 15;
    /// Served to a RESP2 client in subscriber mode ((P|S)(UN)SUBSCRIBE,
    /// PING, QUIT, RESET); anything else is refused there.
    pub const SUBSCRIBER: u32 = 1 << 16;
    /// May block the client (LOCK.ACQUIRE / SEM.ACQUIRE with WAIT), as
    /// Redis marks BLPOP; inside MULTI it tries once.
    pub const BLOCKING: u32 = 1 << 17;

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
        (BLOCKING, "blocking"),
    ];
}

/// What the append-only file records after a write command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// Nothing: the command writes nothing that outlives a restart.
    Nothing,
    /// The resulting state of each key the command names.
    Keys,
    /// The resulting state of the destination key, `args[1]` (the other
    /// keys are only read).
    Dest,
    /// The current database was emptied.
    FlushDb,
    /// Every database was emptied.
    FlushAll,
    /// The instance's fencing counter, as it now is.
    Fence,
    /// A script's effects: the records its commands made (Lua), or the
    /// resulting state of its declared keys (a catalogued script).
    Script,
    /// A semaphore's holders: [`crate::coord::sem`] logs each change as it
    /// makes it (a grant to a waiter happens outside any command); the
    /// reply waits for those records like any write's.
    Semaphore,
}

pub struct CommandSpec {
    /// Lowercase name, as COMMAND reports it.
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub persist: Persist,
    pub group: &'static str,
    pub summary: &'static str,
    pub handler: Handler,
}

use Persist::{Dest, Fence, FlushAll, FlushDb, Keys, Nothing, Script, Semaphore};
use flags::*;

/// One row of [`COMMANDS`], in the order the table's columns read.
#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    persist: Persist,
    handler: Handler,
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        keys,
        persist,
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
/// The first two arguments (RENAME).
const K12: KeySpec = KeySpec::Range {
    first: 1,
    last: 2,
    step: 1,
};
/// Every other argument from the first (MSET's key-value pairs).
const KPAIRS: KeySpec = KeySpec::Range {
    first: 1,
    last: -1,
    step: 2,
};
/// The second argument (OBJECT ENCODING key).
const K2: KeySpec = KeySpec::Range {
    first: 2,
    last: 2,
    step: 1,
};
/// Every argument but the first and the last (BLPOP's keys before its timeout).
const KBLOCK: KeySpec = KeySpec::Range {
    first: 1,
    last: -2,
    step: 1,
};
/// A destination, then numkeys source keys (ZUNIONSTORE).
const KSTORE: KeySpec = KeySpec::DestNumKeys;
const KNONE: KeySpec = KeySpec::None;
const KDB: KeySpec = KeySpec::All;
const KEVAL: KeySpec = KeySpec::NumKeys { at: 2, first: 3 };

const RW: u32 = WRITE | DENYOOM;
const RO: u32 = READONLY;
/// Connection and transaction commands: not from scripts, served while
/// loading and when stale.
const SESSION: u32 = NOSCRIPT | LOADING | STALE;
const CONN: u32 = SESSION | FAST;

#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    //   name            arity flags                                           keys    persist   handler                group           summary
    // connection
    spec("ping",         -1,   FAST | HEALTH_CHECK | SUBSCRIBER,               KNONE,  Nothing,  connection::ping,      "connection",   "Returns the server's liveliness response."),
    spec("echo",         2,    FAST,                                           KNONE,  Nothing,  connection::echo,      "connection",   "Returns the given string."),
    spec("hello",        -1,   CONN | NO_AUTH,                                 KNONE,  Nothing,  connection::hello,     "connection",   "Handshakes with the Redis server."),
    spec("quit",         -1,   CONN | NO_AUTH | SKIP_QUEUE | ENDS_MULTI | SUBSCRIBER, KNONE,  Nothing,  connection::quit,      "connection",   "Closes the connection."),
    spec("reset",        1,    CONN | NO_AUTH | SKIP_QUEUE | ENDS_MULTI | SUBSCRIBER, KNONE,  Nothing,  connection::reset,     "connection",   "Resets the connection."),
    spec("select",       2,    CONN,                                           KNONE,  Nothing,  connection::select,    "connection",   "Changes the selected database."),
    spec("client",       -2,   SESSION | CONTAINER,                            KNONE,  Nothing,  connection::client,    "connection",   "A container for client connection commands."),
    spec("auth",         -2,   CONN | NO_AUTH,                                 KNONE,  Nothing,  connection::auth,      "connection",   "Authenticates the connection."),
    // server
    spec("info",         -1,   LOADING | STALE,                                KNONE,  Nothing,  server::info,          "server",       "Returns information and statistics about the server."),
    spec("config",       -2,   ADMIN | SESSION | CONTAINER,                    KNONE,  Nothing,  server::config,        "server",       "A container for server configuration commands."),
    spec("dbsize",       1,    RO | FAST,                                      KDB,    Nothing,  server::dbsize,        "server",       "Returns the number of keys in the database."),
    spec("flushdb",      -1,   WRITE,                                          KDB,    FlushDb,  server::flushdb,       "server",       "Removes all keys from the current database."),
    spec("flushall",     -1,   WRITE,                                          KNONE,  FlushAll, server::flushall,      "server",       "Removes all keys from all databases."),
    spec("time",         1,    LOADING | STALE | FAST,                         KNONE,  Nothing,  server::time,          "server",       "Returns the server time."),
    spec("shutdown",     -1,   ADMIN | SESSION | NO_MULTI,                     KNONE,  Nothing,  server::shutdown,      "server",       "Synchronously saves the database(s) to disk and shuts down the Redis server."),
    spec("command",      -1,   LOADING | STALE | CONTAINER,                    KNONE,  Nothing,  server::command,       "server",       "Returns detailed information about all commands."),
    spec("slowlog",      -2,   ADMIN | LOADING | STALE | CONTAINER,            KNONE,  Nothing,  server::slowlog,       "server",       "A container for slow log commands."),
    spec("latency",      -2,   ADMIN | NOSCRIPT | LOADING | STALE | CONTAINER, KNONE,  Nothing,  server::latency,       "server",       "A container for latency diagnostics commands."),
    spec("bgrewriteaof", 1,    ADMIN | NOSCRIPT | NO_MULTI,                    KNONE,  Nothing,  server::bgrewriteaof,  "server",       "Asynchronously rewrites the append-only file to disk."),
    spec("wait",         3,    0,                                              KNONE,  Nothing,  server::wait,          "generic",      "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."),
    // publish/subscribe (shard channels are keys, as Redis's key specs say;
    // their shards are locked for nothing, and only these rare commands pay)
    spec("subscribe",    -2,   SESSION | SUBSCRIBER,                           KNONE,  Nothing,  pubsub::subscribe,     "pubsub",       "Listens for messages published to channels."),
    spec("unsubscribe",  -1,   SESSION | SUBSCRIBER,                           KNONE,  Nothing,  pubsub::unsubscribe,   "pubsub",       "Stops listening to messages posted to channels."),
    spec("psubscribe",   -2,   SESSION | SUBSCRIBER,                           KNONE,  Nothing,  pubsub::psubscribe,    "pubsub",       "Listens for messages published to channels that match one or more patterns."),
    spec("punsubscribe", -1,   SESSION | SUBSCRIBER,                           KNONE,  Nothing,  pubsub::punsubscribe,  "pubsub",       "Stops listening to messages published to channels that match one or more patterns."),
    spec("ssubscribe",   -2,   SESSION | SUBSCRIBER,                           KALL,   Nothing,  pubsub::ssubscribe,    "pubsub",       "Listens for messages published to shard channels."),
    spec("sunsubscribe", -1,   SESSION | SUBSCRIBER,                           KALL,   Nothing,  pubsub::sunsubscribe,  "pubsub",       "Stops listening to messages posted to shard channels."),
    spec("publish",      3,    LOADING | STALE | FAST,                         KNONE,  Nothing,  pubsub::publish,       "pubsub",       "Posts a message to a channel."),
    spec("spublish",     3,    LOADING | STALE | FAST,                         K1,     Nothing,  pubsub::spublish,      "pubsub",       "Post a message to a shard channel"),
    spec("pubsub",       -2,   LOADING | STALE | CONTAINER,                    KNONE,  Nothing,  pubsub::pubsub,        "pubsub",       "A container for Pub/Sub commands."),
    // keys
    spec("del",          -2,   WRITE,                                          KALL,   Keys,     keys::del,             "generic",      "Deletes one or more keys."),
    spec("unlink",       -2,   WRITE | FAST,                                   KALL,   Keys,     keys::del,             "generic",      "Asynchronously deletes one or more keys."),
    spec("exists",       -2,   RO | FAST,                                      KALL,   Nothing,  keys::exists,          "generic",      "Determines whether one or more keys exist."),
    spec("touch",        -2,   RO | FAST,                                      KALL,   Nothing,  keys::exists,          "generic",      "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    spec("type",         2,    RO | FAST,                                      K1,     Nothing,  keys::type_,           "generic",      "Determines the type of value stored at a key."),
    spec("keys",         2,    RO,                                             KDB,    Nothing,  keys::keys,            "generic",      "Returns all key names that match a pattern."),
    spec("scan",         -2,   RO,                                             KDB,    Nothing,  keys::scan,            "generic",      "Iterates over the key names in the database."),
    spec("randomkey",    1,    RO,                                             KDB,    Nothing,  keys::randomkey,       "generic",      "Returns a random key name from the database."),
    spec("rename",       3,    WRITE,                                          K12,    Keys,     keys::rename,          "generic",      "Renames a key and overwrites the destination."),
    spec("object",       -2,   RO | CONTAINER,                                 K2,     Nothing,  keys::object,          "generic",      "A container for object introspection commands."),
    spec("renamenx",     3,    WRITE | FAST | GRANTS_LOCK,                     K12,    Keys,     keys::renamenx,        "generic",      "Renames a key only when the target key name doesn't exist."),
    // expiry
    spec("expire",       -3,   WRITE | FAST,                                   K1,     Keys,     expire::expire,        "generic",      "Sets the expiration time of a key in seconds."),
    spec("pexpire",      -3,   WRITE | FAST,                                   K1,     Keys,     expire::pexpire,       "generic",      "Sets the expiration time of a key in milliseconds."),
    spec("expireat",     -3,   WRITE | FAST,                                   K1,     Keys,     expire::expireat,      "generic",      "Sets the expiration time of a key to a Unix timestamp."),
    spec("pexpireat",    -3,   WRITE | FAST,                                   K1,     Keys,     expire::pexpireat,     "generic",      "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec("ttl",          2,    RO | FAST,                                      K1,     Nothing,  expire::ttl,           "generic",      "Returns the expiration time in seconds of a key."),
    spec("pttl",         2,    RO | FAST,                                      K1,     Nothing,  expire::pttl,          "generic",      "Returns the expiration time in milliseconds of a key."),
    spec("expiretime",   2,    RO | FAST,                                      K1,     Nothing,  expire::expiretime,    "generic",      "Returns the expiration time of a key as a Unix timestamp."),
    spec("pexpiretime",  2,    RO | FAST,                                      K1,     Nothing,  expire::pexpiretime,   "generic",      "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec("persist",      2,    WRITE | FAST,                                   K1,     Keys,     expire::persist,       "generic",      "Removes the expiration time of a key."),
    // strings
    spec("get",          2,    RO | FAST,                                      K1,     Nothing,  strings::get,          "string",       "Returns the string value of a key."),
    spec("set",          -3,   RW,                                             K1,     Keys,     strings::set,          "string",       "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist."),
    spec("setnx",        3,    RW | FAST | GRANTS_LOCK,                        K1,     Keys,     strings::setnx,        "string",       "Set the string value of a key only when the key doesn't exist."),
    spec("setex",        4,    RW,                                             K1,     Keys,     strings::setex,        "string",       "Sets the string value and expiration time of a key. Creates the key if it doesn't exist."),
    spec("psetex",       4,    RW,                                             K1,     Keys,     strings::psetex,       "string",       "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist."),
    spec("getset",       3,    RW | FAST,                                      K1,     Keys,     strings::getset,       "string",       "Returns the previous string value of a key after setting it to a new value."),
    spec("getdel",       2,    WRITE | FAST,                                   K1,     Keys,     strings::getdel,       "string",       "Returns the string value of a key after deleting the key."),
    spec("getex",        -2,   WRITE | FAST,                                   K1,     Keys,     strings::getex,        "string",       "Returns the string value of a key after setting its expiration time."),
    spec("mget",         -2,   RO | FAST,                                      KALL,   Nothing,  strings::mget,         "string",       "Atomically returns the string values of one or more keys."),
    spec("mset",         -3,   RW,                                             KPAIRS, Keys,     strings::mset,         "string",       "Atomically creates or modifies the string values of one or more keys."),
    spec("msetnx",       -3,   RW | GRANTS_LOCK,                               KPAIRS, Keys,     strings::msetnx,       "string",       "Atomically modifies the string values of one or more keys only when all keys don't exist."),
    spec("incr",         2,    RW | FAST,                                      K1,     Keys,     strings::incr,         "string",       "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec("decr",         2,    RW | FAST,                                      K1,     Keys,     strings::decr,         "string",       "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist."),
    spec("incrby",       3,    RW | FAST,                                      K1,     Keys,     strings::incrby,       "string",       "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec("decrby",       3,    RW | FAST,                                      K1,     Keys,     strings::decrby,       "string",       "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist."),
    spec("incrbyfloat",  3,    RW | FAST,                                      K1,     Keys,     strings::incrbyfloat,  "string",       "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist."),
    spec("append",       3,    RW | FAST,                                      K1,     Keys,     strings::append,       "string",       "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec("strlen",       2,    RO | FAST,                                      K1,     Nothing,  strings::strlen,       "string",       "Returns the length of a string value."),
    spec("getrange",     4,    RO,                                             K1,     Nothing,  strings::getrange,     "string",       "Returns a substring of the string stored at a key."),
    spec("substr",       4,    RO,                                             K1,     Nothing,  strings::getrange,     "string",       "Returns a substring from a string value."),
    spec("setrange",     4,    RW,                                             K1,     Keys,     strings::setrange,     "string",       "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist."),
    // hashes
    spec("hset",         -4,   RW | FAST,                                      K1,     Keys,     hashes::hset,          "hash",         "Creates or modifies the value of a field in a hash."),
    spec("hsetnx",       4,    RW | FAST,                                      K1,     Keys,     hashes::hsetnx,        "hash",         "Sets the value of a field in a hash only when the field doesn't exist."),
    spec("hmset",        -4,   RW | FAST,                                      K1,     Keys,     hashes::hmset,         "hash",         "Sets the values of multiple fields."),
    spec("hget",         3,    RO | FAST,                                      K1,     Nothing,  hashes::hget,          "hash",         "Returns the value of a field in a hash."),
    spec("hmget",        -3,   RO | FAST,                                      K1,     Nothing,  hashes::hmget,         "hash",         "Returns the values of all fields in a hash."),
    spec("hdel",         -3,   WRITE | FAST,                                   K1,     Keys,     hashes::hdel,          "hash",         "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain."),
    spec("hexists",      3,    RO | FAST,                                      K1,     Nothing,  hashes::hexists,       "hash",         "Determines whether a field exists in a hash."),
    spec("hlen",         2,    RO | FAST,                                      K1,     Nothing,  hashes::hlen,          "hash",         "Returns the number of fields in a hash."),
    spec("hstrlen",      3,    RO | FAST,                                      K1,     Nothing,  hashes::hstrlen,       "hash",         "Returns the length of the value of a field."),
    spec("hgetall",      2,    RO,                                             K1,     Nothing,  hashes::hgetall,       "hash",         "Returns all fields and values in a hash."),
    spec("hkeys",        2,    RO,                                             K1,     Nothing,  hashes::hkeys,         "hash",         "Returns all fields in a hash."),
    spec("hvals",        2,    RO,                                             K1,     Nothing,  hashes::hvals,         "hash",         "Returns all values in a hash."),
    spec("hincrby",      4,    RW | FAST,                                      K1,     Keys,     hashes::hincrby,       "hash",         "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist."),
    spec("hincrbyfloat", 4,    RW | FAST,                                      K1,     Keys,     hashes::hincrbyfloat,  "hash",         "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist."),
    spec("hscan",        -3,   RO,                                             K1,     Nothing,  hashes::hscan,         "hash",         "Iterates over fields and values of a hash."),
    // lists
    spec("lpush",        -3,   RW | FAST,                                      K1,     Keys,     lists::lpush,          "list",         "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    spec("rpush",        -3,   RW | FAST,                                      K1,     Keys,     lists::rpush,          "list",         "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    spec("lpushx",       -3,   RW | FAST,                                      K1,     Keys,     lists::lpushx,         "list",         "Prepends one or more elements to a list only when the list exists."),
    spec("rpushx",       -3,   RW | FAST,                                      K1,     Keys,     lists::rpushx,         "list",         "Appends an element to a list only when the list exists."),
    spec("lpop",         -2,   WRITE | FAST,                                   K1,     Keys,     lists::lpop,           "list",         "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    spec("rpop",         -2,   WRITE | FAST,                                   K1,     Keys,     lists::rpop,           "list",         "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    spec("llen",         2,    RO | FAST,                                      K1,     Nothing,  lists::llen,           "list",         "Returns the length of a list."),
    spec("lrange",       4,    RO,                                             K1,     Nothing,  lists::lrange,         "list",         "Returns a range of elements from a list."),
    spec("lindex",       3,    RO,                                             K1,     Nothing,  lists::lindex,         "list",         "Returns an element from a list by its index."),
    spec("lset",         4,    RW,                                             K1,     Keys,     lists::lset,           "list",         "Sets the value of an element in a list by its index."),
    spec("lrem",         4,    WRITE,                                          K1,     Keys,     lists::lrem,           "list",         "Removes elements from a list. Deletes the list if the last element was removed."),
    spec("ltrim",        4,    WRITE,                                          K1,     Keys,     lists::ltrim,          "list",         "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    spec("lpos",         -3,   RO,                                             K1,     Nothing,  lists::lpos,           "list",         "Returns the index of matching elements in a list."),
    spec("lmove",        5,    RW,                                             K12,    Keys,     lists::lmove,          "list",         "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    spec("rpoplpush",    3,    RW,                                             K12,    Keys,     lists::rpoplpush,      "list",         "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    spec("blpop",        -3,   WRITE | NOSCRIPT | BLOCKING,                    KBLOCK, Keys,     lists::blpop,          "list",         "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    spec("brpop",        -3,   WRITE | NOSCRIPT | BLOCKING,                    KBLOCK, Keys,     lists::brpop,          "list",         "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    spec("blmove",       6,    RW | NOSCRIPT | BLOCKING,                       K12,    Keys,     lists::blmove,         "list",         "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    spec("brpoplpush",   4,    RW | NOSCRIPT | BLOCKING,                       K12,    Keys,     lists::brpoplpush,     "list",         "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    // sets
    spec("sadd",         -3,   RW | FAST,                                      K1,     Keys,     sets::sadd,            "set",          "Adds one or more members to a set. Creates the key if it doesn't exist."),
    spec("srem",         -3,   WRITE | FAST,                                   K1,     Keys,     sets::srem,            "set",          "Removes one or more members from a set. Deletes the set if the last member was removed."),
    spec("sismember",    3,    RO | FAST,                                      K1,     Nothing,  sets::sismember,       "set",          "Determines whether a member belongs to a set."),
    spec("smismember",   -3,   RO | FAST,                                      K1,     Nothing,  sets::smismember,      "set",          "Determines whether multiple members belong to a set."),
    spec("scard",        2,    RO | FAST,                                      K1,     Nothing,  sets::scard,           "set",          "Returns the number of members in a set."),
    spec("smembers",     2,    RO,                                             K1,     Nothing,  sets::smembers,        "set",          "Returns all members of a set."),
    spec("spop",         -2,   WRITE | FAST,                                   K1,     Keys,     sets::spop,            "set",          "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped."),
    spec("srandmember",  -2,   RO,                                             K1,     Nothing,  sets::srandmember,     "set",          "Get one or multiple random members from a set"),
    spec("sscan",        -3,   RO,                                             K1,     Nothing,  sets::sscan,           "set",          "Iterates over members of a set."),
    // sorted sets
    spec("zadd",         -4,   RW | FAST,                                      K1,     Keys,     zsets::zadd,           "sorted-set",   "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    spec("zincrby",      4,    RW | FAST,                                      K1,     Keys,     zsets::zincrby,        "sorted-set",   "Increments the score of a member in a sorted set."),
    spec("zrem",         -3,   WRITE | FAST,                                   K1,     Keys,     zsets::zrem,           "sorted-set",   "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."),
    spec("zscore",       3,    RO | FAST,                                      K1,     Nothing,  zsets::zscore,         "sorted-set",   "Returns the score of a member in a sorted set."),
    spec("zmscore",      -3,   RO | FAST,                                      K1,     Nothing,  zsets::zmscore,        "sorted-set",   "Returns the score of one or more members in a sorted set."),
    spec("zcard",        2,    RO | FAST,                                      K1,     Nothing,  zsets::zcard,          "sorted-set",   "Returns the number of members in a sorted set."),
    spec("zcount",       4,    RO | FAST,                                      K1,     Nothing,  zsets::zcount,         "sorted-set",   "Returns the count of members in a sorted set that have scores within a range."),
    spec("zlexcount",    4,    RO | FAST,                                      K1,     Nothing,  zsets::zlexcount,      "sorted-set",   "Returns the number of members in a sorted set within a lexicographical range."),
    spec("zrank",        3,    RO | FAST,                                      K1,     Nothing,  zsets::zrank,          "sorted-set",   "Returns the index of a member in a sorted set ordered by ascending scores."),
    spec("zrevrank",     3,    RO | FAST,                                      K1,     Nothing,  zsets::zrevrank,       "sorted-set",   "Returns the index of a member in a sorted set ordered by descending scores."),
    spec("zrange",       -4,   RO,                                             K1,     Nothing,  zsets::zrange,         "sorted-set",   "Returns members in a sorted set within a range of indexes."),
    spec("zrevrange",    -4,   RO,                                             K1,     Nothing,  zsets::zrevrange,      "sorted-set",   "Returns members in a sorted set within a range of indexes in reverse order."),
    spec("zrangebyscore",-4,   RO,                                             K1,     Nothing,  zsets::zrangebyscore,  "sorted-set",   "Returns members in a sorted set within a range of scores."),
    spec("zrevrangebyscore",-4,   RO,                                             K1,     Nothing,  zsets::zrevrangebyscore,"sorted-set",   "Returns members in a sorted set within a range of scores in reverse order."),
    spec("zrangebylex",  -4,   RO,                                             K1,     Nothing,  zsets::zrangebylex,    "sorted-set",   "Returns members in a sorted set within a lexicographical range."),
    spec("zrevrangebylex",-4,   RO,                                             K1,     Nothing,  zsets::zrevrangebylex, "sorted-set",   "Returns members in a sorted set within a lexicographical range in reverse order."),
    spec("zremrangebyscore",4,    WRITE,                                          K1,     Keys,     zsets::zremrangebyscore,"sorted-set",   "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    spec("zremrangebyrank",4,    WRITE,                                          K1,     Keys,     zsets::zremrangebyrank,"sorted-set",   "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    spec("zremrangebylex",4,    WRITE,                                          K1,     Keys,     zsets::zremrangebylex, "sorted-set",   "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    spec("zpopmin",      -2,   WRITE | FAST,                                   K1,     Keys,     zsets::zpopmin,        "sorted-set",   "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    spec("zpopmax",      -2,   WRITE | FAST,                                   K1,     Keys,     zsets::zpopmax,        "sorted-set",   "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    spec("zunionstore",  -4,   RW,                                             KSTORE, Dest,     zsets::zunionstore,    "sorted-set",   "Stores the union of multiple sorted sets in a key."),
    spec("zinterstore",  -4,   RW,                                             KSTORE, Dest,     zsets::zinterstore,    "sorted-set",   "Stores the intersect of multiple sorted sets in a key."),
    spec("zscan",        -3,   RO,                                             K1,     Nothing,  zsets::zscan,          "sorted-set",   "Iterates over members and scores of a sorted set."),
    // transactions
    spec("multi",        1,    CONN | SKIP_QUEUE,                              KNONE,  Nothing,  transactions::multi,   "transactions", "Starts a transaction."),
    spec("exec",         1,    SESSION | SKIP_QUEUE | ENDS_MULTI | RUNS_QUEUE, KNONE,  Nothing,  transactions::exec,    "transactions", "Executes all commands in a transaction."),
    spec("discard",      1,    CONN | SKIP_QUEUE | ENDS_MULTI,                 KNONE,  Nothing,  transactions::discard, "transactions", "Discards a transaction."),
    spec("watch",        -2,   CONN | SKIP_QUEUE,                              KALL,   Nothing,  transactions::watch,   "transactions", "Monitors changes to keys to determine the execution of a transaction."),
    spec("unwatch",      1,    CONN,                                           KNONE,  Nothing,  transactions::unwatch, "transactions", "Forgets about watched keys of a transaction."),
    // locks (Redis 8.4 / Valkey 9 and redlockd's own)
    spec("delex",        -2,   WRITE | FAST,                                   K1,     Keys,     locks::delex,          "string",       "Conditionally removes the specified key based on value or digest comparison."),
    spec("digest",       2,    RO | FAST,                                      K1,     Nothing,  locks::digest,         "string",       "Returns the XXH3 hash of a string value."),
    spec("delifeq",      3,    WRITE | FAST,                                   K1,     Keys,     locks::delifeq,        "string",       "Deletes the key if its value equals the given value."),
    spec("lock.acquire", -5,   RW | FAST | GRANTS_LOCK | BLOCKING,             K1,     Keys,     locks::lock_acquire,   "lock",         "Acquires a lock with an owner token and a TTL, waiting in line with WAIT; returns a fencing token."),
    spec("lock.release", 3,    WRITE | FAST,                                   K1,     Keys,     locks::lock_release,   "lock",         "Releases a lock held with the given token."),
    spec("lock.extend",  5,    WRITE | FAST,                                   K1,     Keys,     locks::lock_extend,    "lock",         "Extends a lock held with the given token."),
    spec("lock.info",    2,    RO | FAST,                                      K1,     Nothing,  locks::lock_info,      "lock",         "Returns a lock's owner token, remaining TTL, fence and number of waiters."),
    spec("lock.holder",  2,    RO | FAST,                                      K1,     Nothing,  coordination::lock_holder, "lock",     "Returns a lock's holder token, fence and remaining TTL."),
    spec("lock.list",    -1,   RO,                                             KNONE,  Nothing,  coordination::lock_list, "lock",       "Lists the held locks and semaphore slots of the database."),
    spec("sem.acquire",  -7,   RW | BLOCKING,                                  K1,     Semaphore, coordination::sem_acquire, "lock",     "Acquires a slot of a counting semaphore, waiting in line with WAIT; returns a fencing token."),
    spec("sem.release",  3,    WRITE | FAST,                                   K1,     Semaphore, coordination::sem_release, "lock",     "Releases a semaphore slot held with the given token."),
    spec("sem.extend",   5,    WRITE | FAST,                                   K1,     Semaphore, coordination::sem_extend, "lock",      "Extends a semaphore slot held with the given token."),
    spec("sem.info",     2,    RO | FAST,                                      K1,     Nothing,  coordination::sem_info,  "lock",       "Returns a semaphore's limit, holders and number of waiters."),
    spec("fence.set",    4,    RW | FAST,                                      K1,     Keys,     locks::fence_set,      "lock",         "Sets a value unless a higher fencing token was already accepted for the key."),
    spec("fence.incrby", 4,    RW | FAST,                                      K1,     Keys,     locks::fence_incrby,   "lock",         "Increments a counter unless a higher fencing token was already accepted for the key."),
    spec("fence.raise",  2,    WRITE | FAST,                                   KNONE,  Fence,    locks::fence_raise,    "lock",         "Raises the instance's fencing counter to at least the given value."),
    // scripting without Lua
    spec("eval",         -3,   NOSCRIPT | WRITE,                               KEVAL,  Script,   scripting::eval,       "scripting",    "Executes a server-side Lua script."),
    spec("evalsha",      -3,   NOSCRIPT | WRITE,                               KEVAL,  Script,   scripting::evalsha,    "scripting",    "Executes a server-side Lua script by SHA1 digest."),
    spec("eval_ro",      -3,   NOSCRIPT | READONLY,                            KEVAL,  Nothing,  scripting::eval_ro,    "scripting",    "Executes a read-only server-side Lua script."),
    spec("evalsha_ro",   -3,   NOSCRIPT | READONLY,                            KEVAL,  Nothing,  scripting::evalsha_ro, "scripting",    "Executes a read-only server-side Lua script by SHA1 digest."),
    spec("script",       -2,   NOSCRIPT | CONTAINER,                           KNONE,  Nothing,  scripting::script,     "scripting",    "A container for Lua scripts management commands."),
];

/// The subcommands of each [`CONTAINER`] row that redlockd serves, by
/// their Redis names.
pub static SUBCOMMANDS: &[(&str, &[&str])] = &[
    (
        "client",
        &[
            "id", "getname", "setname", "setinfo", "info", "list", "kill", "unblock", "no-evict", "no-touch", "help",
        ],
    ),
    ("config", &["get", "set", "resetstat", "rewrite", "help"]),
    ("object", &["encoding", "refcount", "idletime", "freq", "help"]),
    ("command", &["count", "list", "info", "docs", "getkeys", "help"]),
    ("script", &["load", "exists", "flush", "kill", "help"]),
    (
        "pubsub",
        &["channels", "numpat", "numsub", "shardchannels", "shardnumsub", "help"],
    ),
    ("slowlog", &["get", "len", "reset", "help"]),
    (
        "latency",
        &["latest", "history", "reset", "doctor", "graph", "histogram", "help"],
    ),
];

/// The statistics slot of a command: its row's index, or for a container's
/// known subcommand, a slot past the rows ([`stat_name`] names it).
pub fn stat_index(index: usize, args: &[&[u8]]) -> usize {
    if COMMANDS[index].flags & CONTAINER == 0 || args.len() < 2 {
        return index;
    }
    let mut base = COMMANDS.len();
    for (container, subs) in SUBCOMMANDS {
        if *container == COMMANDS[index].name {
            return match subs.iter().position(|s| s.as_bytes().eq_ignore_ascii_case(args[1])) {
                Some(i) => base + i,
                None => index,
            };
        }
        base += subs.len();
    }
    index
}

/// How many statistics slots there are: rows, then subcommands.
pub fn stat_count() -> usize {
    COMMANDS.len() + SUBCOMMANDS.iter().map(|(_, s)| s.len()).sum::<usize>()
}

/// The name of a statistics slot as Redis prints it: `get`, `client|info`.
pub fn stat_name(slot: usize) -> std::borrow::Cow<'static, str> {
    if let Some(c) = COMMANDS.get(slot) {
        return c.name.into();
    }
    let mut base = COMMANDS.len();
    for (container, subs) in SUBCOMMANDS {
        if slot < base + subs.len() {
            return format!("{container}|{}", subs[slot - base]).into();
        }
        base += subs.len();
    }
    "unknown".into()
}

type Index = HashMap<&'static [u8], usize, ahash::RandomState>;

/// The name index, built on the first lookup, which is also when the
/// table gives INFO commandstats its counters: no command runs before it.
fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        crate::stats::register_commands(stat_count());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The append-only file records every write command's effect and no
    /// read's: a write row without a persistence effect would be lost on
    /// restart.
    #[test]
    fn every_write_and_only_writes_persist_something() {
        for c in COMMANDS {
            let write = c.flags & WRITE != 0;
            assert_eq!(write, c.persist != Nothing, "{}", c.name);
        }
    }

    #[test]
    fn every_container_lists_its_subcommands() {
        for c in COMMANDS {
            let listed = SUBCOMMANDS.iter().any(|(name, _)| *name == c.name);
            assert_eq!(c.flags & CONTAINER != 0, listed, "{}", c.name);
        }
        let client = lookup(b"client").unwrap().0;
        let slot = stat_index(client, &[b"CLIENT", b"Info"]);
        assert_eq!(stat_name(slot), "client|info");
        assert_eq!(stat_index(client, &[b"client", b"nosuch"]), client);
        assert_eq!(stat_name(stat_count() - 1), "latency|help");
    }

    #[test]
    fn names_are_lowercase_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in COMMANDS {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert!(seen.insert(c.name), "{} twice", c.name);
        }
    }
}
