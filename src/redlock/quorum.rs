//! Acquire, extend and release one resource on a majority of independent
//! instances (the Redlock algorithm), with fencing tokens agreed by the quorum.
//!
//! # Fencing across the quorum
//!
//! Each redlockd instance `i` keeps a counter `c_i`; a grant on `i` returns
//! `c_i + 1` and raises `c_i` to it (`LOCK.ACQUIRE`), and `FENCE.RAISE F`
//! sets `c_i = max(c_i, F)`. An acquisition A that was granted by the set of
//! instances `M_A` (a majority) takes `F_A = max { fence_i : i ∈ M_A }`, then
//! raises every `i ∈ M_A` to `F_A`, and only then — and only if its validity
//! is still positive, measured after the raise — hands the lock out.
//!
//! **Claim.** If B is a later successful acquisition of the same resource,
//! `F_B > F_A`.
//!
//! **Proof.** `M_A` and `M_B` are majorities of the same `N` instances, so
//! they share an instance `j`. On `j`, A's key was written by A's grant and
//! lives until A's TTL runs out or A releases it; A's validity stayed
//! positive after the raise, so (clocks drifting by no more than the drift
//! allowance) the key still existed when `FENCE.RAISE F_A` reached `j`. B's
//! grant on `j` needs the key to be gone (a held key is refused), so it is
//! processed after the raise: `c_j ≥ F_A` at that moment and B's fence on `j`
//! is at least `F_A + 1`. Hence `F_B ≥ fence_j(B) > F_A`. ∎
//!
//! Instances that do not fence (plain Redis) make the lock unfenced
//! (`fence: None`): the argument needs every granting instance to fence.

use std::time::{Duration, Instant};

use futures::future::join_all;

use super::arith::{default_instance_timeout, drift, quorum, validity};
use super::client::{CallError, Instance, Reply};
use super::group::{Group, group_release};

/// Tunables; the defaults are antirez's.
#[derive(Debug, Clone)]
pub struct RedlockConfig {
    /// Attempts after the first one.
    pub retry_count: u32,
    /// Each retry waits a random delay in `0..retry_delay_max`.
    pub retry_delay_max: Duration,
    /// Time allowed to each instance per call; None = min(50 ms, ttl/100).
    pub instance_timeout: Option<Duration>,
    pub drift_factor: f64,
    pub drift_constant: Duration,
    /// Cap on extensions of one lock (None = unlimited).
    pub max_extensions: Option<u32>,
}

impl Default for RedlockConfig {
    fn default() -> Self {
        RedlockConfig {
            retry_count: 3,
            retry_delay_max: Duration::from_millis(200),
            instance_timeout: None,
            drift_factor: 0.01,
            drift_constant: Duration::from_millis(2),
            max_extensions: None,
        }
    }
}

/// A lock held on a majority.
#[derive(Debug, Clone)]
pub struct Lock {
    pub resource: Vec<u8>,
    /// 20 random bytes, unique to this acquisition.
    pub token: Vec<u8>,
    /// Strictly greater than the fence of every earlier grant of the resource
    /// (None when an instance cannot fence).
    pub fence: Option<u64>,
    pub ttl: Duration,
    /// How long the lock was known to be valid when last acquired or extended.
    pub validity: Duration,
    /// When `validity` was measured from.
    pub since: Instant,
    pub extensions: u32,
}

impl Lock {
    /// Time left before the lock may be lost (zero when it may already be).
    pub fn remaining(&self) -> Duration {
        self.validity.saturating_sub(self.since.elapsed())
    }
}

/// What one instance said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    /// Held by someone else (or not ours, for extend/release).
    Refused,
    Failed(CallError),
    /// An error reply.
    Error(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Granted => write!(f, "granted"),
            Outcome::Refused => write!(f, "refused (held by another)"),
            Outcome::Failed(e) => write!(f, "{e}"),
            Outcome::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// Why an operation on the quorum failed.
#[derive(Debug, Clone, PartialEq)]
pub enum RedlockError {
    /// Fewer than a majority agreed (each instance's answer is listed).
    NoQuorum {
        operation: &'static str,
        granted: usize,
        needed: usize,
        outcomes: Vec<(String, Outcome)>,
    },
    /// A majority agreed, but too late: nothing of the TTL was left.
    ValidityExhausted {
        operation: &'static str,
        elapsed: Duration,
    },
    TooManyExtensions(u32),
    /// In group mode: the group refused, answered an error, or no node
    /// answered before the deadline.
    Group {
        operation: &'static str,
        nodes: String,
        outcome: Outcome,
    },
}

impl std::fmt::Display for RedlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedlockError::NoQuorum {
                operation,
                granted,
                needed,
                outcomes,
            } => {
                write!(
                    f,
                    "{operation}: no quorum ({granted} of {} granted, {needed} needed):",
                    outcomes.len()
                )?;
                for (addr, o) in outcomes {
                    write!(f, " {addr} {o};")?;
                }
                Ok(())
            }
            RedlockError::ValidityExhausted { operation, elapsed } => {
                write!(
                    f,
                    "{operation}: a majority agreed but took {elapsed:?}, leaving no validity"
                )
            }
            RedlockError::Group {
                operation,
                nodes,
                outcome,
            } => write!(f, "{operation}: group {nodes}: {outcome}"),
            RedlockError::TooManyExtensions(n) => write!(f, "extend: the lock was already extended {n} times"),
        }
    }
}

impl std::error::Error for RedlockError {}

/// How an instance speaks locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// redlockd: LOCK.* with fences.
    Native,
    /// Redis ≥ 8.4: SET NX PX, SET IFEQ, DELEX.
    Delex,
    /// Older Redis: SET NX PX and Lua compare-and-delete / compare-and-pexpire.
    Script,
}

const RELEASE_SCRIPT: &[u8] =
    b"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
const EXTEND_SCRIPT: &[u8] =
    b"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

fn is_unknown_command(reply: &Reply) -> bool {
    matches!(reply, Reply::Error(e) if e.starts_with("ERR unknown command"))
}

struct Member {
    instance: Instance,
    dialect: std::sync::Mutex<Dialect>,
}

impl Member {
    fn dialect(&self) -> Dialect {
        *self.dialect.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn downgrade(&self, to: Dialect) {
        *self.dialect.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    /// Call, downgrading the dialect and retrying when the instance does not
    /// know the command. `build` gives the command for a dialect.
    async fn call_in_dialect(
        &self,
        timeout: Duration,
        build: impl Fn(Dialect) -> Vec<Vec<u8>>,
    ) -> Result<(Dialect, Reply), CallError> {
        loop {
            let dialect = self.dialect();
            let cmd = build(dialect);
            let args: Vec<&[u8]> = cmd.iter().map(|a| a.as_slice()).collect();
            let reply = self.instance.call(&args, timeout).await?;
            match (dialect, is_unknown_command(&reply)) {
                (Dialect::Native, true) => self.downgrade(Dialect::Delex),
                (Dialect::Delex, true) => self.downgrade(Dialect::Script),
                _ => return Ok((dialect, reply)),
            }
        }
    }
}

/// A Redlock client over N independent instances, or over one replicated
/// group used as a single lock server ([`Redlock::group`]).
pub struct Redlock {
    members: Vec<Member>,
    /// Set in group mode (then `members` is empty).
    group: Option<Group>,
    pub config: RedlockConfig,
}

pub(super) fn ms(d: Duration) -> Vec<u8> {
    d.as_millis().max(1).to_string().into_bytes()
}

impl Redlock {
    pub fn new<S: Into<String>>(addrs: impl IntoIterator<Item = S>, config: RedlockConfig) -> Redlock {
        let members = addrs
            .into_iter()
            .map(|a| Member {
                instance: Instance::new(a),
                dialect: std::sync::Mutex::new(Dialect::Native),
            })
            .collect();
        Redlock {
            members,
            group: None,
            config,
        }
    }

    /// Use the nodes of one replicated group as ONE lock server: each
    /// operation goes to one node (the next on failure), and a grant is
    /// final once the group acknowledged it. `config.instance_timeout` is
    /// the time allowed to one node before trying the next (default 1 s).
    pub fn group<S: Into<String>>(nodes: impl IntoIterator<Item = S>, config: RedlockConfig) -> Redlock {
        Redlock {
            members: Vec::new(),
            group: Some(Group::new(nodes, config.instance_timeout)),
            config,
        }
    }

    fn timeout(&self, ttl: Duration) -> Duration {
        self.config
            .instance_timeout
            .unwrap_or_else(|| default_instance_timeout(ttl))
    }

    pub(super) fn drift(&self, ttl: Duration) -> Duration {
        drift(ttl, self.config.drift_factor, self.config.drift_constant)
    }

    /// Acquire `resource` for `ttl`, retrying `retry_count` times.
    pub async fn acquire(&self, resource: &[u8], ttl: Duration) -> Result<Lock, RedlockError> {
        let mut last = None;
        for attempt in 0..=self.config.retry_count {
            if attempt > 0 {
                self.retry_pause().await;
            }
            match self.try_acquire(resource, ttl).await {
                Ok(lock) => return Ok(lock),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// Keep trying to acquire until `deadline`.
    pub async fn acquire_until(&self, resource: &[u8], ttl: Duration, deadline: Instant) -> Result<Lock, RedlockError> {
        loop {
            match self.try_acquire(resource, ttl).await {
                Ok(lock) => return Ok(lock),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => self.retry_pause().await,
            }
        }
    }

    async fn retry_pause(&self) {
        let max = self.config.retry_delay_max.as_millis().max(1) as u64;
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..max))).await;
    }

    /// One acquisition attempt (no retry).
    pub async fn try_acquire(&self, resource: &[u8], ttl: Duration) -> Result<Lock, RedlockError> {
        let token: [u8; 20] = rand::random();
        let token = token.to_vec();
        let start = Instant::now();
        if let Some(group) = &self.group {
            return self.group_acquire(group, resource, token, ttl, start).await;
        }
        let timeout = self.timeout(ttl);
        let needed = quorum(self.members.len());
        let replies = join_all(self.members.iter().map(|m| {
            m.call_in_dialect(timeout, |d| match d {
                Dialect::Native => vec![
                    b"LOCK.ACQUIRE".to_vec(),
                    resource.to_vec(),
                    token.clone(),
                    b"PX".to_vec(),
                    ms(ttl),
                ],
                _ => vec![
                    b"SET".to_vec(),
                    resource.to_vec(),
                    token.clone(),
                    b"NX".to_vec(),
                    b"PX".to_vec(),
                    ms(ttl),
                ],
            })
        }))
        .await;
        let mut outcomes = Vec::with_capacity(self.members.len());
        // (member index, its fence or None when it cannot fence)
        let mut granted: Vec<(usize, Option<u64>)> = Vec::new();
        for (i, r) in replies.into_iter().enumerate() {
            let outcome = match r {
                Ok((_, Reply::Int(f))) => {
                    granted.push((i, Some(f as u64)));
                    Outcome::Granted
                }
                Ok((_, Reply::Status(_))) => {
                    granted.push((i, None));
                    Outcome::Granted
                }
                Ok((_, Reply::Bulk(None))) => Outcome::Refused,
                Ok((_, Reply::Error(e))) => Outcome::Error(e),
                Ok((_, other)) => Outcome::Error(format!("unexpected reply {other:?}")),
                Err(e) => Outcome::Failed(e),
            };
            outcomes.push((self.members[i].instance.addr.clone(), outcome));
        }
        let mut fence = None;
        if granted.len() >= needed && granted.iter().all(|(_, f)| f.is_some()) {
            let f = granted.iter().filter_map(|(_, f)| *f).max().expect("non-empty");
            // Raise every granting instance to F before handing the lock out.
            let floor = f.to_string().into_bytes();
            let raise: [&[u8]; 2] = [b"FENCE.RAISE", &floor];
            let raised = join_all(
                granted
                    .iter()
                    .map(|(i, _)| self.members[*i].instance.call(&raise, timeout)),
            )
            .await;
            let mut kept = Vec::new();
            for ((i, f), r) in granted.iter().zip(raised) {
                match r {
                    Ok(Reply::Int(_)) => kept.push((*i, *f)),
                    Ok(other) => outcomes[*i].1 = Outcome::Error(format!("FENCE.RAISE: {other:?}")),
                    Err(e) => outcomes[*i].1 = Outcome::Failed(e),
                }
            }
            granted = kept;
            fence = Some(f);
        }
        let elapsed = start.elapsed();
        if granted.len() >= needed {
            if let Some(valid) = validity(ttl, elapsed, self.drift(ttl)) {
                return Ok(Lock {
                    resource: resource.to_vec(),
                    token,
                    fence,
                    ttl,
                    validity: valid,
                    since: start,
                    extensions: 0,
                });
            }
            self.release_token(resource, &token, timeout).await;
            return Err(RedlockError::ValidityExhausted {
                operation: "acquire",
                elapsed,
            });
        }
        // Release everywhere: an instance that timed out may still have granted.
        self.release_token(resource, &token, timeout).await;
        Err(RedlockError::NoQuorum {
            operation: "acquire",
            granted: granted.len(),
            needed,
            outcomes,
        })
    }

    /// Extend the lock to `ttl` from now on a majority, within its validity.
    pub async fn extend(&self, lock: &mut Lock, ttl: Duration) -> Result<(), RedlockError> {
        if let Some(max) = self.config.max_extensions
            && lock.extensions >= max
        {
            return Err(RedlockError::TooManyExtensions(lock.extensions));
        }
        let start = Instant::now();
        if let Some(group) = &self.group {
            return self.group_extend(group, lock, ttl, start).await;
        }
        let timeout = self.timeout(ttl);
        let (resource, token) = (&lock.resource, &lock.token);
        let replies = join_all(self.members.iter().map(|m| {
            m.call_in_dialect(timeout, |d| match d {
                Dialect::Native => vec![
                    b"LOCK.EXTEND".to_vec(),
                    resource.clone(),
                    token.clone(),
                    b"PX".to_vec(),
                    ms(ttl),
                ],
                Dialect::Delex => vec![
                    b"SET".to_vec(),
                    resource.clone(),
                    token.clone(),
                    b"IFEQ".to_vec(),
                    token.clone(),
                    b"PX".to_vec(),
                    ms(ttl),
                ],
                Dialect::Script => vec![
                    b"EVAL".to_vec(),
                    EXTEND_SCRIPT.to_vec(),
                    b"1".to_vec(),
                    resource.clone(),
                    token.clone(),
                    ms(ttl),
                ],
            })
        }))
        .await;
        let outcomes: Vec<(String, Outcome)> = replies
            .into_iter()
            .zip(&self.members)
            .map(|(r, m)| {
                let o = match r {
                    Ok((_, Reply::Int(1))) | Ok((_, Reply::Status(_))) => Outcome::Granted,
                    Ok((_, Reply::Int(0))) | Ok((_, Reply::Bulk(None))) => Outcome::Refused,
                    Ok((_, Reply::Error(e))) => Outcome::Error(e),
                    Ok((_, other)) => Outcome::Error(format!("unexpected reply {other:?}")),
                    Err(e) => Outcome::Failed(e),
                };
                (m.instance.addr.clone(), o)
            })
            .collect();
        let granted = outcomes.iter().filter(|(_, o)| *o == Outcome::Granted).count();
        let needed = quorum(self.members.len());
        // The old lock must still have been valid when the extension landed.
        let still_ours = lock.remaining() > Duration::ZERO;
        let elapsed = start.elapsed();
        match validity(ttl, elapsed, self.drift(ttl)) {
            Some(valid) if granted >= needed && still_ours => {
                lock.validity = valid;
                lock.since = start;
                lock.ttl = ttl;
                lock.extensions += 1;
                Ok(())
            }
            _ if granted < needed => Err(RedlockError::NoQuorum {
                operation: "extend",
                granted,
                needed,
                outcomes,
            }),
            _ => Err(RedlockError::ValidityExhausted {
                operation: "extend",
                elapsed,
            }),
        }
    }

    /// Release on every instance (owner-checked); how many deleted it.
    pub async fn release(&self, lock: &Lock) -> usize {
        if let Some(group) = &self.group {
            return group_release(group, &lock.resource, &lock.token, lock.ttl).await;
        }
        self.release_token(&lock.resource, &lock.token, self.timeout(lock.ttl))
            .await
    }

    async fn release_token(&self, resource: &[u8], token: &[u8], timeout: Duration) -> usize {
        let replies = join_all(self.members.iter().map(|m| {
            m.call_in_dialect(timeout, |d| match d {
                Dialect::Native => vec![b"LOCK.RELEASE".to_vec(), resource.to_vec(), token.to_vec()],
                Dialect::Delex => vec![b"DELEX".to_vec(), resource.to_vec(), b"IFEQ".to_vec(), token.to_vec()],
                Dialect::Script => vec![
                    b"EVAL".to_vec(),
                    RELEASE_SCRIPT.to_vec(),
                    b"1".to_vec(),
                    resource.to_vec(),
                    token.to_vec(),
                ],
            })
        }))
        .await;
        replies
            .into_iter()
            .filter(|r| matches!(r, Ok((_, Reply::Int(1)))))
            .count()
    }
}
