//! A Redlock client: a lock held only when a majority of N independent
//! instances granted it, with quorum-agreed fencing tokens; or, with
//! [`Redlock::group`], one replicated redlockd group used as a single lock
//! server (its grants are already committed by a majority).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use redlockd::redlock::{Redlock, RedlockConfig};
//! let redlock = Redlock::new(["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"], RedlockConfig::default());
//! let lock = redlock.acquire(b"printer", Duration::from_secs(10)).await?;
//! // ... use lock.fence to fence writes ...
//! redlock.release(&lock).await;
//! # Ok(()) }
//! ```

pub mod arith;
pub mod client;
pub mod group;
pub mod quorum;
pub mod watchdog;

pub use client::{CallError, Instance, Reply};
pub use group::Group;
pub use quorum::{Lock, Outcome, Redlock, RedlockConfig, RedlockError};
pub use watchdog::Watchdog;
