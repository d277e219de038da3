//! A replicated group (redlockd nodes started with `--raft-peers`) used as
//! ONE lock server: every grant is committed through the group's log before
//! it is acknowledged, so no quorum of independent instances is needed.
//!
//! Any node serves any command (followers forward to the leader), so the
//! client talks to one node and moves to the next only when that node
//! cannot answer: a connection error, a timeout (a killed or paused node),
//! `-TRYAGAIN` (no leader elected within the node's wait; nothing was
//! applied) or `-UNCERTAIN` (the write may or may not have been applied).
//! Each operation retries until a deadline it is given, so the retries stay
//! bounded.
//!
//! Retrying a command whose first attempt got no answer may apply it twice.
//! The lock commands are idempotent for their holder (a second LOCK.ACQUIRE
//! with the same token returns the same fence; LOCK.EXTEND and LOCK.RELEASE
//! are owner-checked), and so is a fenced write of an absolute value while
//! the lock is held; callers retry nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::arith::validity;
use super::client::{CallError, Instance, Reply};
use super::quorum::{Lock, Outcome, Redlock, RedlockError, ms};

/// Time allowed to one node for one call before trying the next: a commit
/// takes milliseconds, a dead or paused node never answers.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause after every node of the group failed once (an election is running).
const ROUND_PAUSE: Duration = Duration::from_millis(100);

/// The nodes of one group, with the one that answered last preferred.
pub struct Group {
    nodes: Vec<Instance>,
    preferred: AtomicUsize,
    call_timeout: Duration,
}

/// Whether an error reply means "this node cannot answer now, ask
/// another", and whether the command may nevertheless have been applied.
fn retryable(error: &str) -> Option<bool> {
    if error.starts_with("TRYAGAIN") {
        Some(false)
    } else if error.starts_with("UNCERTAIN") {
        Some(true)
    } else {
        None
    }
}

impl Group {
    pub fn new<S: Into<String>>(addrs: impl IntoIterator<Item = S>, call_timeout: Option<Duration>) -> Group {
        let nodes: Vec<Instance> = addrs.into_iter().map(Instance::new).collect();
        // Spread clients over the nodes; each sticks to its node while it answers.
        let first = rand::random_range(0..nodes.len().max(1));
        Group {
            nodes,
            preferred: AtomicUsize::new(first),
            call_timeout: call_timeout.unwrap_or(DEFAULT_CALL_TIMEOUT),
        }
    }

    /// The nodes' addresses, comma-separated, for messages.
    pub fn describe(&self) -> String {
        self.nodes.iter().map(|n| n.addr.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Send `args` to the preferred node, moving on to the next node on a
    /// connection error, a timeout, `-TRYAGAIN` or `-UNCERTAIN`, until
    /// `deadline`. Any other reply (including other errors) is the group's
    /// answer.
    pub async fn call_until(&self, args: &[&[u8]], deadline: Instant) -> Result<Reply, CallError> {
        self.call_until_counting(args, deadline).await.0
    }

    /// [`Group::call_until`], also saying how many attempts went unanswered
    /// (timed out, lost their connection or got `-UNCERTAIN`): each of them
    /// may have been applied, so a caller can tell a clean answer from one
    /// after retries.
    pub async fn call_until_counting(&self, args: &[&[u8]], deadline: Instant) -> (Result<Reply, CallError>, usize) {
        if self.nodes.is_empty() {
            return (Err(CallError::Unreachable("no group nodes given".into())), 0);
        }
        let mut last = CallError::TimedOut;
        let mut unanswered = 0;
        let mut failed_in_round = 0;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (Err(last), unanswered);
            }
            let i = self.preferred.load(Ordering::Relaxed) % self.nodes.len();
            let node = &self.nodes[i];
            match node.call(args, self.call_timeout.min(left)).await {
                Ok(Reply::Error(e)) if let Some(maybe_applied) = retryable(&e) => {
                    unanswered += usize::from(maybe_applied);
                    last = CallError::Unreachable(format!("{}: {e}", node.addr));
                }
                Ok(reply) => return (Ok(reply), unanswered),
                Err(e) => {
                    unanswered += 1;
                    last = e;
                }
            }
            // Move on, unless another task already did.
            let _ =
                self.preferred
                    .compare_exchange(i, (i + 1) % self.nodes.len(), Ordering::Relaxed, Ordering::Relaxed);
            failed_in_round += 1;
            if failed_in_round >= self.nodes.len() {
                failed_in_round = 0;
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(ROUND_PAUSE.min(left)).await;
            }
        }
    }
}

/// How long a release keeps trying: the lock expires by itself anyway.
const RELEASE_FOR: Duration = Duration::from_secs(2);

fn group_error(group: &Group, operation: &'static str, outcome: Outcome) -> RedlockError {
    RedlockError::Group {
        operation,
        nodes: group.describe(),
        outcome,
    }
}

fn outcome_of(reply: Reply) -> Outcome {
    match reply {
        Reply::Bulk(None) | Reply::Int(0) => Outcome::Refused,
        Reply::Error(e) => Outcome::Error(e),
        other => Outcome::Error(format!("unexpected reply {other:?}")),
    }
}

impl Redlock {
    /// LOCK.ACQUIRE on the group, retried across nodes for as long as a
    /// grant could still leave some validity. The fence is the group's
    /// (strictly increasing across leaders), so no FENCE.RAISE is needed.
    pub(super) async fn group_acquire(
        &self,
        group: &Group,
        resource: &[u8],
        token: Vec<u8>,
        ttl: Duration,
        start: Instant,
    ) -> Result<Lock, RedlockError> {
        let drift = self.drift(ttl);
        let deadline = start + ttl.saturating_sub(drift);
        let px = ms(ttl);
        let args: [&[u8]; 5] = [b"LOCK.ACQUIRE", resource, &token, b"PX", &px];
        match group.call_until(&args, deadline).await {
            Ok(Reply::Int(fence)) => {
                let elapsed = start.elapsed();
                match validity(ttl, elapsed, drift) {
                    Some(valid) => Ok(Lock {
                        resource: resource.to_vec(),
                        token,
                        fence: Some(fence as u64),
                        ttl,
                        validity: valid,
                        since: start,
                        extensions: 0,
                    }),
                    None => {
                        group_release(group, resource, &token, ttl).await;
                        Err(RedlockError::ValidityExhausted {
                            operation: "acquire",
                            elapsed,
                        })
                    }
                }
            }
            Ok(other) => Err(group_error(group, "acquire", outcome_of(other))),
            Err(e) => {
                // An attempt that got no answer may have been granted.
                group_release(group, resource, &token, ttl).await;
                Err(group_error(group, "acquire", Outcome::Failed(e)))
            }
        }
    }

    /// LOCK.EXTEND on the group, retried while the lock is still valid.
    pub(super) async fn group_extend(
        &self,
        group: &Group,
        lock: &mut Lock,
        ttl: Duration,
        start: Instant,
    ) -> Result<(), RedlockError> {
        let deadline = lock.since + lock.validity;
        let px = ms(ttl);
        let args: [&[u8]; 5] = [b"LOCK.EXTEND", &lock.resource, &lock.token, b"PX", &px];
        match group.call_until(&args, deadline).await {
            Ok(Reply::Int(1)) => {
                let elapsed = start.elapsed();
                match validity(ttl, elapsed, self.drift(ttl)) {
                    Some(valid) if lock.remaining() > Duration::ZERO => {
                        lock.validity = valid;
                        lock.since = start;
                        lock.ttl = ttl;
                        lock.extensions += 1;
                        Ok(())
                    }
                    _ => Err(RedlockError::ValidityExhausted {
                        operation: "extend",
                        elapsed,
                    }),
                }
            }
            Ok(other) => Err(group_error(group, "extend", outcome_of(other))),
            Err(e) => Err(group_error(group, "extend", Outcome::Failed(e))),
        }
    }
}

/// LOCK.RELEASE on the group (owner-checked, so a retry is harmless); 1 if
/// it deleted the lock.
pub(super) async fn group_release(group: &Group, resource: &[u8], token: &[u8], ttl: Duration) -> usize {
    let deadline = Instant::now() + RELEASE_FOR.min(ttl);
    let args: [&[u8]; 3] = [b"LOCK.RELEASE", resource, token];
    usize::from(matches!(group.call_until(&args, deadline).await, Ok(Reply::Int(1))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tryagain_and_uncertain_move_on() {
        assert_eq!(retryable("TRYAGAIN no leader elected"), Some(false));
        assert_eq!(retryable("UNCERTAIN the group lost its leader"), Some(true));
        assert_eq!(retryable("FENCED stale token"), None);
        assert_eq!(retryable("ERR unknown command"), None);
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        // Two ports nothing listens on: every call fails at once.
        let dead: Vec<String> = (0..2)
            .map(|_| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            })
            .collect();
        let group = Group::new(dead, None);
        let start = Instant::now();
        let r = group.call_until(&[b"PING"], start + Duration::from_millis(300)).await;
        assert!(matches!(r, Err(CallError::Unreachable(_))), "{r:?}");
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
