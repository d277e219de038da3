//! `redlockd run --instances H:P,... --lock NAME [--ttl 30s] [--wait 10s] -- COMMAND ARGS...`
//! (or `--group H:P,...`: the nodes of one replicated group, used as one
//! lock server)
//!
//! flock(1) for a fleet: acquire the Redlock, run the command while a
//! watchdog keeps the lock alive, release it when the command exits and exit
//! with the command's status. The fence is passed to the command as
//! `REDLOCKD_FENCE` (and the lock name as `REDLOCKD_LOCK`). If the lock is
//! lost, the command is killed and `run` exits with 70.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::{parse_duration, say};
use crate::redlock::{Redlock, RedlockConfig, Watchdog};

/// Exit status when the lock could not be acquired within --wait (EX_TEMPFAIL).
pub const EXIT_NOT_ACQUIRED: u8 = 75;
/// Exit status when the lock was lost while the command ran (EX_SOFTWARE).
pub const EXIT_LOCK_LOST: u8 = 70;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Lock instances, comma-separated host:port (use an odd number, e.g. 5).
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "group",
        conflicts_with = "group"
    )]
    pub instances: Vec<String>,
    /// The nodes of one replicated group (comma-separated host:port), used
    /// as ONE lock server: no quorum of independent instances.
    #[arg(long, value_delimiter = ',')]
    pub group: Vec<String>,
    /// The lock's name (its key on every instance).
    #[arg(long)]
    pub lock: String,
    /// Lock TTL; the watchdog extends it every third of this.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// How long to keep trying to acquire before giving up.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Per-instance timeout (default: min(50ms, ttl/100); with --group,
    /// the time allowed to one node before trying the next, default 1s).
    #[arg(long, value_parser = parse_duration)]
    pub instance_timeout: Option<Duration>,
    /// The command to run under the lock.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub async fn main(args: RunArgs) -> u8 {
    let config = RedlockConfig {
        instance_timeout: args.instance_timeout,
        ..RedlockConfig::default()
    };
    let redlock = Arc::new(if args.group.is_empty() {
        Redlock::new(args.instances.clone(), config)
    } else {
        Redlock::group(args.group.clone(), config)
    });
    let lock = match redlock
        .acquire_until(args.lock.as_bytes(), args.ttl, Instant::now() + args.wait)
        .await
    {
        Ok(lock) => lock,
        Err(e) => {
            say(format!(
                "redlockd run: could not acquire lock '{}' within {:?}: {e}",
                args.lock, args.wait
            ));
            return EXIT_NOT_ACQUIRED;
        }
    };
    let fence = lock.fence.map(|f| f.to_string()).unwrap_or_default();
    let mut child = match tokio::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .env("REDLOCKD_FENCE", &fence)
        .env("REDLOCKD_LOCK", &args.lock)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            redlock.release(&lock).await;
            say(format!("redlockd run: cannot run {:?}: {e}", args.command[0]));
            return 127;
        }
    };
    let mut watchdog = Watchdog::spawn(redlock.clone(), lock);
    tokio::select! {
        status = child.wait() => {
            let lock = watchdog.stop().await;
            redlock.release(&lock).await;
            match status {
                Ok(status) => exit_code(status),
                Err(e) => {
                    say(format!("redlockd run: waiting for the command failed: {e}"));
                    1
                }
            }
        }
        why = watchdog.lost() => {
            say(format!("redlockd run: lost lock '{}': {why}; killing the command", args.lock));
            let _ = child.kill().await;
            EXIT_LOCK_LOST
        }
        _ = crate::server::shutdown_signal() => {
            let _ = child.kill().await;
            let lock = watchdog.stop().await;
            redlock.release(&lock).await;
            128 + 15
        }
    }
}

/// The child's exit code, or 128 + signal as shells report it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        _ => 1,
    }
}
