//! redlockd: a lock server that speaks the Redis protocol.
//!
//! The binary only parses flags and calls [`server::bind`] then
//! [`server::serve`]; everything else is this library: [`protocol`] (framing
//! and replies), [`server`] (accept loop and connections), [`commands`] (the
//! command table and one module per family), [`instance`] (the state every
//! connection shares), [`store`] (sharded keyspace with exact expiry),
//! [`scripts`] (lock scripts recognised by SHA1).
//!
//! Dependencies point one way: `server` → [`metrics`] (the operator's HTTP
//! port) → `commands` → `instance` → [`store`], [`persist`], [`stats`],
//! [`lockstats`], [`config`]; nothing below `commands` knows the command
//! table, and nothing below `server` knows connections.

pub mod cli;
pub mod commands;
pub mod conffile;
pub mod config;
pub mod fdlimit;
pub mod glob;
pub mod group;
pub mod instance;
pub mod lockstats;
pub mod memory;
pub mod metrics;
pub mod persist;
pub mod prefetch;
pub mod protocol;
pub mod redlock;
pub mod scripts;
pub mod server;
pub mod slowlog;
pub mod stats;
pub mod store;

/// redlockd's own version (INFO `redlockd_version`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Redis release whose command semantics redlockd follows (INFO
/// `redis_version`, HELLO `version`): 8.4 added DELEX/DIGEST/SET IFEQ.
pub const VERSION_COMPAT: &str = "8.4.0";
