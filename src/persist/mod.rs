//! Durability: the append-only file.
//!
//! redlockd logs the *effect* of every write, not the command: after a write
//! command, the resulting state of each key it names is appended as one
//! record (`RL.SET db key value unix_ms fence [lock]`, a container's whole
//! state as `RL.VALUE db key unix_ms type payload`, or `RL.DEL db key`), while the
//! command still holds the keys' shard locks, so records of the same key are
//! in the order the store applied them. Effects make replay deterministic
//! (no relative TTLs, no scripts, no fences to recompute) and make a
//! background rewrite trivially correct: replaying any suffix of records over
//! a snapshot gives the latest state of every key.
//!
//! When the log cannot be written, [`Aof::write_error`] says so and dispatch
//! refuses write commands (Redis's `-MISCONF`) until a retry succeeds.

pub mod aof;

pub use aof::{Aof, Fsync};
