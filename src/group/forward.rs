//! Routing a client's command in a group: run it here, propose it, read
//! on the leader, or forward it to the leader and return its reply bytes.
//!
//! The connection loop (`server::connection`) asks [`route`] about each
//! command; everything but [`Route::Local`] leaves the synchronous batch
//! and is run by [`run`]. Connection commands (PING, SELECT, HELLO,
//! CLIENT, MULTI, ...) and the queueing inside MULTI stay on the node the
//! client talks to; writes and EXEC become log entries; reads run on the
//! leader after a linearizability check. A follower sends the command,
//! with the client's database and protocol, to the leader over the group
//! link and returns the reply unchanged: one extra round trip.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use tracing::debug;

use super::network::{CallError, Rpc, RpcReply};
use super::{Group, Op, Request};
use crate::commands::table::{self, flags};
use crate::commands::{self, ClientState};
use crate::protocol::ReplyBuf;
use crate::store::clock::pin;

/// One attempt at a command on the leader (proposal to commit and apply,
/// or the round trip of a forward); past it the command is tried again,
/// with the same session id (see [`Request::session`]).
const ATTEMPT: Duration = Duration::from_secs(1);

const NO_LEADER: &str = "TRYAGAIN no leader elected";
const UNCERTAIN: &str = "UNCERTAIN no leader confirmed this write within the wait: it may or may not have been applied";

/// How a command is served in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On this node, as a single server would (connection state, MULTI queueing, errors).
    Local,
    /// Refused in a group, with this error.
    Refused(&'static str),
    /// A log entry.
    Write,
    /// A linearizable read on the leader.
    Read,
    /// EXEC: the queued commands as one log entry.
    Exec,
    /// ROLE, SENTINEL, RAFT.*: answered from the group's state.
    Group,
    /// A blocking acquire (`WAIT ms`): queued at the leader ([`super::waiters`]).
    Wait,
}

/// Commands served from the group's state rather than the command table.
const GROUP_COMMANDS: &[&str] = &["role", "sentinel", "raft.add", "raft.remove", "raft.info"];

/// How to serve `args` for `client` (see [`Route`]).
pub fn route(client: &ClientState, args: &[&[u8]]) -> Route {
    if !client.authenticated {
        return Route::Local;
    }
    if client.multi.is_none()
        && GROUP_COMMANDS
            .iter()
            .any(|name| args[0].eq_ignore_ascii_case(name.as_bytes()))
    {
        return Route::Group;
    }
    let Some((_, spec)) = table::lookup(args[0]) else {
        return Route::Local;
    };
    if !table::arity_ok(spec, args.len()) {
        return Route::Local;
    }
    if spec.name == "watch" {
        return Route::Refused("ERR WATCH is not supported in a replicated group");
    }
    if let Some(why) = not_replicable(spec, args) {
        return Route::Refused(why);
    }
    if client.multi.is_none() && split_wait(args).is_some() {
        return Route::Wait;
    }
    if client.multi.is_some() {
        return if spec.flags & flags::RUNS_QUEUE != 0 {
            Route::Exec
        } else {
            Route::Local
        };
    }
    if spec.flags & flags::RUNS_QUEUE != 0 {
        Route::Local // EXEC without MULTI: its error
    } else if spec.flags & flags::WRITE != 0 {
        Route::Write
    } else if spec.flags & flags::READONLY != 0 {
        Route::Read
    } else {
        Route::Local
    }
}

/// Why a command cannot go through the log yet, if it cannot: every node
/// applies an entry on its own, so a command must not depend on the node
/// (SPOP's random pick) nor block in the apply (the blocking pops; blocking
/// acquires are [`Route::Wait`], queued at the leader). DELAY and ONCLOSE
/// are replicated: the snapshots carry lock options and running lock-delays.
fn not_replicable(spec: &table::CommandSpec, args: &[&[u8]]) -> Option<&'static str> {
    match spec.name {
        "spop" => Some("ERR SPOP is not supported in a replicated group (its random pick would differ between nodes)"),
        // One key's queue at the leader serves a blocking pop (see
        // `split_wait`); a wait on several keys would need a waiter in
        // several queues.
        "blpop" | "brpop" if args.len() > 3 => {
            Some("ERR BLPOP and BRPOP on more than one key are not supported in a replicated group")
        }
        _ if spec.flags & flags::BLOCKING != 0 && spec.name.starts_with('b') && !LIST_WAITS.contains(&spec.name) => {
            Some("ERR blocking commands are not supported in a replicated group yet")
        }
        _ => None,
    }
}

/// The blocking pops a group serves through its leader's queues, on one
/// (source) key, `args[1]`.
const LIST_WAITS: &[&str] = &["blpop", "brpop", "blmove", "brpoplpush"];

/// A blocking pop's wait: its timeout (seconds, the last argument) in ms,
/// as Redis reads it; None if it does not parse (the apply answers the
/// error) or names more than one key.
fn list_wait(args: &[&[u8]]) -> Option<u64> {
    let name = std::str::from_utf8(args[0]).ok()?.to_ascii_lowercase();
    let one_key = match name.as_str() {
        "blpop" | "brpop" => args.len() == 3,
        "brpoplpush" => args.len() == 4,
        "blmove" => args.len() == 6,
        _ => false,
    };
    let secs: f64 = std::str::from_utf8(args[args.len() - 1]).ok()?.parse().ok()?;
    (one_key && secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).ceil() as u64)
}

/// A blocking command's argv as the leader tries it (an acquire without
/// its `WAIT ms`; a blocking pop as it is: the apply never blocks, and a
/// pop there answers at once), and the wait (ms, 0 = forever), if `args`
/// is one whose options parse; otherwise the command goes through the log
/// as it is, and its apply answers the error.
pub fn split_wait(args: &[&[u8]]) -> Option<(Vec<Vec<u8>>, u64)> {
    let is = |a: &[u8], name: &str| a.eq_ignore_ascii_case(name.as_bytes());
    if LIST_WAITS.iter().any(|name| is(args[0], name)) {
        let wait = list_wait(args)?;
        return Some((args.iter().map(|a| a.to_vec()).collect(), wait));
    }
    // Where the options start, and which take a value.
    let first = if is(args[0], "lock.acquire") {
        5
    } else if is(args[0], "sem.acquire") {
        7
    } else {
        return None;
    };
    let mut rest = Vec::with_capacity(args.len());
    rest.extend(args.iter().take(first).map(|a| a.to_vec()));
    let mut wait = None;
    let mut i = first;
    while i < args.len() {
        let opt = args[i];
        if is(opt, "wait") {
            let ms: i64 = std::str::from_utf8(args.get(i + 1)?).ok()?.parse().ok()?;
            wait = Some(u64::try_from(ms).ok()?);
            i += 2;
            continue;
        }
        let takes_value = is(opt, "grace") || is(opt, "delay");
        rest.push(opt.to_vec());
        if takes_value {
            rest.push(args.get(i + 1)?.to_vec());
            i += 1;
        }
        i += 1;
    }
    Some((rest, wait?))
}

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";

/// EVALSHA (and EVALSHA_RO) of a script the catalogue does not know goes
/// to the log as EVAL with the script's text, from this node's cache: every
/// node then runs the same text, whatever its own cache holds (a node that
/// caught up from a snapshot has none of the scripts loaded before it).
/// Err if this node does not have it: the client gets NOSCRIPT and loads
/// it again, as after a Redis failover to a replica without it.
fn inline_script(shared: &crate::instance::Shared, commands: &mut [&mut Vec<Vec<u8>>]) -> Result<(), ()> {
    for args in commands.iter_mut() {
        let eval = match args.first() {
            Some(name) if name.eq_ignore_ascii_case(b"evalsha") => &b"EVAL"[..],
            Some(name) if name.eq_ignore_ascii_case(b"evalsha_ro") => &b"EVAL_RO"[..],
            _ => continue,
        };
        let Some(sha) = args.get(1) else { continue };
        if crate::scripts::lookup(sha).is_some() {
            continue;
        }
        let body = shared.lua.body(sha).ok_or(())?;
        args[0] = eval.to_vec();
        args[1] = body;
    }
    Ok(())
}

/// Whether a command binds a lock to its client: an acquire with ONCLOSE,
/// or an extend (which takes over a client-bound lock in its grace).
pub(super) fn binds_client(args: &[Vec<u8>]) -> bool {
    let is = |a: &[u8], name: &str| a.eq_ignore_ascii_case(name.as_bytes());
    match args.first() {
        Some(name) if is(name, "lock.extend") => true,
        Some(name) if is(name, "lock.acquire") => args.iter().skip(5).any(|a| is(a, "onclose")),
        _ => false,
    }
}

/// `op` as `client`'s own when it binds (see [`Op::AsClient`]); its close
/// then goes through the log ([`client_closed`]).
fn as_client(group: &Group, client: &ClientState, binds: bool, op: Op) -> Op {
    if !binds {
        return op;
    }
    client.handle.group_bound.store(true, Ordering::Relaxed);
    Op::AsClient(group.client_id(client.handle.id), Box::new(op))
}

/// A client that took or extended locks closed: release its client-bound
/// locks (after their grace) through the log. (If this node dies first,
/// they end at their TTL.)
pub fn client_closed(group: &Arc<Group>, local: u64) {
    let (group, id) = (group.clone(), group.client_id(local));
    tokio::spawn(async move {
        // Through a leaderless spell too (each try waits --leader-wait-ms);
        // applying it twice releases nothing more.
        for _ in 0..10 {
            let reply = submit(&group, 0, false, false, Op::ClientClosed(id)).await;
            if !(reply.starts_with(b"-TRYAGAIN") || reply.starts_with(b"-UNCERTAIN")) {
                return;
            }
        }
    });
}

/// A command the connection loop hands over: its route and owned argv.
pub struct Call {
    pub route: Route,
    pub args: Vec<Vec<u8>>,
}

/// What a follower sends the leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct Forward {
    pub session: Option<(u64, u64)>,
    pub db: u32,
    pub resp3: bool,
    pub read: bool,
    pub op: Op,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded {
    /// The reply bytes for the client.
    Reply(Vec<u8>),
    /// The receiver is not the leader (nothing was proposed): try again.
    NotLeader,
}

/// Why serving on this node did not give a reply.
pub(super) enum Outcome {
    /// Not the leader; nothing was proposed.
    NotLeader,
    /// Proposed, but not known committed in time: it may still apply.
    TimedOut,
    /// An error reply for the client.
    Fail(String),
}

pub(super) fn error_bytes(text: &str) -> Vec<u8> {
    let mut out = ReplyBuf::new(0);
    out.error(text);
    out.buf.to_vec()
}

/// Serve a command the connection loop handed over, appending its reply to `out`.
pub async fn run(group: &Arc<Group>, client: &mut ClientState, out: &mut ReplyBuf, mut call: Call) {
    if matches!(call.route, Route::Write | Route::Read) && inline_script(&group.shared, &mut [&mut call.args]).is_err()
    {
        out.error(NOSCRIPT);
        return;
    }
    let db = client.db as u32;
    match call.route {
        Route::Local => {
            let argv: SmallVec<[&[u8]; 8]> = call.args.iter().map(|a| &a[..]).collect();
            commands::execute(&group.shared, client, out, &argv);
        }
        Route::Refused(text) => out.error(text),
        Route::Write => {
            let op = as_client(group, client, binds_client(&call.args), Op::Command(call.args));
            let bytes = submit(group, db, out.resp3, false, op).await;
            out.buf.extend_from_slice(&bytes);
        }
        Route::Read => {
            let bytes = submit(group, db, out.resp3, true, Op::Command(call.args)).await;
            out.buf.extend_from_slice(&bytes);
        }
        Route::Exec => {
            if client.multi_error {
                // EXECABORT, as a single server answers.
                commands::execute(&group.shared, client, out, &[b"EXEC"]);
                return;
            }
            let queue = client.multi.take().unwrap_or_default();
            client.handle.multi.store(-1, Ordering::Relaxed);
            let mut commands: Vec<Vec<Vec<u8>>> = queue
                .into_iter()
                .map(|q| q.args.into_iter().map(|a| a.into_vec()).collect())
                .collect();
            if inline_script(&group.shared, &mut commands.iter_mut().collect::<Vec<_>>()).is_err() {
                // As Redis answers EXEC of an EVALSHA it does not know: that
                // command's error inside the reply; here, before any runs.
                out.error(NOSCRIPT);
                return;
            }
            let binds = commands.iter().any(|c| binds_client(c));
            let op = as_client(group, client, binds, Op::Multi(commands));
            let bytes = submit(group, db, out.resp3, false, op).await;
            out.buf.extend_from_slice(&bytes);
        }
        Route::Group => super::role::run(group, client, out, &call.args).await,
        Route::Wait => block(group, client, out.resp3, &call.args),
    }
}

/// Block `client` on a blocking acquire: its wait runs as a task
/// ([`super::waiters::serve_waiter`]) and the connection waits for its
/// reply as for a single server's (`crate::server::connection`).
fn block(group: &Arc<Group>, client: &mut ClientState, resp3: bool, args: &[Vec<u8>]) {
    let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
    let Some((rest, wait)) = split_wait(&argv) else { return };
    let (node, seq) = group.next_session();
    let kind = super::waiters::Kind::of(&rest);
    let ticket = crate::coord::Ticket {
        kind: crate::coord::TicketKind::Group {
            sem: kind == super::waiters::Kind::Sem,
            list: kind == super::waiters::Kind::List,
        },
        db: client.db,
        key: rest[1].clone().into(),
        token: rest.get(2).cloned().unwrap_or_default().into(),
        id: seq,
    };
    if binds_client(&rest) {
        client.handle.group_bound.store(true, Ordering::Relaxed);
    }
    let req = super::waiters::WaitRequest {
        id: (node, seq),
        client: group.client_id(client.handle.id),
        db: client.db as u32,
        resp3,
        args: rest,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(super::waiters::serve_waiter(group.clone(), req, tx, stopped));
    client
        .handle
        .block
        .store(crate::instance::BLOCK_WAITING, Ordering::SeqCst);
    client.blocked = Some(Box::new(commands::Blocked {
        ticket,
        rx,
        timeout: (wait > 0).then(|| Duration::from_millis(wait)),
        stop: Some(stop),
    }));
}

/// Serve `op` wherever the leader is, waiting up to `--leader-wait-ms` for
/// one; the reply bytes for the client.
///
/// A write carries a session id, so that trying it again after an attempt
/// whose fate is unknown (a timeout, a lost link, a leader that stopped
/// answering) is safe: the log applies one id once and answers a repeat
/// with the first reply. Only when the wait runs out with such an attempt
/// behind it does the client get `-UNCERTAIN` instead of `-TRYAGAIN`.
pub async fn submit(group: &Arc<Group>, db: u32, resp3: bool, read: bool, op: Op) -> Vec<u8> {
    let deadline = Instant::now() + group.config.leader_wait;
    let session = (!read).then(|| group.next_session());
    let mut maybe_applied = false;
    loop {
        let (leader, term) = group.leader();
        match leader {
            Some(id) if id == group.id => match serve_here(group, term, session, db, resp3, read, op.clone()).await {
                Ok(bytes) => return bytes,
                Err(Outcome::Fail(text)) => return error_bytes(&text),
                Err(Outcome::TimedOut) => maybe_applied = true,
                Err(Outcome::NotLeader) => {}
            },
            Some(id) => {
                let forward = Rpc::Forward(Forward {
                    session,
                    db,
                    resp3,
                    read,
                    op: op.clone(),
                });
                match forward_to(group, id, &forward).await {
                    Ok(Forwarded::Reply(bytes)) => return bytes,
                    Ok(Forwarded::NotLeader) => {}
                    Err(CallError::NotSent(e)) => debug!("forward to {id}: {e}"),
                    Err(CallError::Lost(e)) => {
                        debug!("forward to {id}: {e}");
                        maybe_applied |= !read;
                    }
                }
            }
            None => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return error_bytes(if maybe_applied { UNCERTAIN } else { NO_LEADER });
        }
        // A new leader shows in the metrics; a stale one needs a moment.
        group.metrics_changed(left.min(Duration::from_millis(20))).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn forward_to(group: &Group, id: u64, forward: &Rpc) -> Result<Forwarded, CallError> {
    let Some(addr) = group.raft_addr(id) else {
        return Err(CallError::NotSent(std::io::Error::other("no address for the leader")));
    };
    let link = group.links.get(id, &addr);
    match link.call(forward, ATTEMPT + Duration::from_millis(200)).await? {
        RpcReply::Forward(f) => Ok(f),
        _ => Err(CallError::Lost(std::io::Error::other("unexpected reply kind"))),
    }
}

/// The leader's side of a forwarded command.
pub async fn serve_forwarded(group: &Arc<Group>, f: Forward) -> Forwarded {
    let Some(term) = group.leading_term() else {
        return Forwarded::NotLeader;
    };
    match serve_here(group, term, f.session, f.db, f.resp3, f.read, f.op).await {
        Ok(bytes) => Forwarded::Reply(bytes),
        // The sender tries again (with the same session id if it is a write).
        Err(Outcome::NotLeader | Outcome::TimedOut) => Forwarded::NotLeader,
        Err(Outcome::Fail(text)) => Forwarded::Reply(error_bytes(&text)),
    }
}

/// Serve on this node as the leader of `term`.
async fn serve_here(
    group: &Group,
    term: u64,
    session: Option<(u64, u64)>,
    db: u32,
    resp3: bool,
    read: bool,
    op: Op,
) -> Result<Vec<u8>, Outcome> {
    if !read {
        return group.propose(term, session, db, resp3, op).await;
    }
    // Reads run at the applied time, which must not lag the leader's: if it
    // does, a tick entry moves it on (and proves leadership, as
    // ensure_linearizable would).
    // A read that cannot be served in time is simply asked again (of
    // whoever leads then), until `--leader-wait-ms` runs out.
    let (applied, _) = group.time.applied();
    if group.time.peek(term) > applied + 1000 {
        match group.propose(term, None, 0, false, Op::Tick).await {
            Ok(_) => {}
            Err(Outcome::Fail(text)) => return Err(Outcome::Fail(text)),
            Err(_) => return Err(Outcome::NotLeader),
        }
    } else {
        match tokio::time::timeout(group.config.leader_wait, group.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {}
            Ok(Err(RaftError::APIError(_))) | Err(_) => return Err(Outcome::NotLeader),
            Ok(Err(e)) => return Err(Outcome::Fail(format!("ERR group: {e}"))),
        }
    }
    let Op::Command(args) = op else {
        return Err(Outcome::Fail("ERR only single commands are read".into()));
    };
    let (now, wall) = group.time.applied();
    let _pinned = pin(now, wall);
    let mut client = reader_client(db);
    let mut out = ReplyBuf::new(0);
    out.resp3 = resp3;
    let argv: SmallVec<[&[u8]; 8]> = args.iter().map(|a| &a[..]).collect();
    commands::execute(&group.shared, &mut client, &mut out, &argv);
    Ok(out.buf.to_vec())
}

fn reader_client(db: u32) -> ClientState {
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
    let mut client = ClientState::new(Arc::new(crate::instance::ClientHandle::new(0, addr, addr)), true);
    client.db = db as usize;
    client
}

impl Group {
    /// Propose `op` as the leader of `term`, stamped now; the reply bytes of
    /// its apply once committed.
    pub(super) async fn propose(
        &self,
        term: u64,
        session: Option<(u64, u64)>,
        db: u32,
        resp3: bool,
        op: Op,
    ) -> Result<Vec<u8>, Outcome> {
        let freeing = self.waiters.may_free(db, &op);
        let committed = self.enqueue_proposal(term, session, db, resp3, op);
        if !freeing.is_empty() {
            self.waiters.try_heads(freeing);
        }
        committed.await
    }

    /// Stamp `op` and queue it for the log now (in call order); the future
    /// of its outcome.
    pub(super) fn enqueue_proposal(
        &self,
        term: u64,
        session: Option<(u64, u64)>,
        db: u32,
        resp3: bool,
        op: Op,
    ) -> impl Future<Output = Result<Vec<u8>, Outcome>> + use<> {
        let (now_us, wall_us) = self.time.stamp(term);
        let request = Request {
            now_us,
            wall_us,
            session,
            db,
            resp3,
            op,
        };
        let committed = self.proposals.propose(request);
        async move {
            match tokio::time::timeout(ATTEMPT, committed).await {
                Ok(Ok(bytes)) => Ok(bytes),
                // Refused before it was appended, or truncated: never applied.
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => Err(Outcome::NotLeader),
                Ok(Err(e)) => Err(Outcome::Fail(format!("ERR group: {e}"))),
                Err(_) => Err(Outcome::TimedOut),
            }
        }
    }

    /// Used by the expirer: propose a tick as the leader of `term`.
    pub(super) async fn propose_tick(&self, term: u64) -> bool {
        self.propose(term, None, 0, false, Op::Tick).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    fn split(args: &[&str]) -> Option<(Vec<Vec<u8>>, u64)> {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        split_wait(&argv)
    }

    #[test]
    fn split_wait_takes_out_every_wait_and_keeps_the_other_options() {
        assert_eq!(
            split(&[
                "LOCK.ACQUIRE",
                "k",
                "t",
                "PX",
                "100",
                "ONCLOSE",
                "GRACE",
                "5",
                "wait",
                "0"
            ]),
            Some((
                owned(&["LOCK.ACQUIRE", "k", "t", "PX", "100", "ONCLOSE", "GRACE", "5"]),
                0
            ))
        );
        // The last WAIT counts, as the apply's parser would have it; none is left.
        assert_eq!(
            split(&[
                "lock.acquire",
                "k",
                "t",
                "PX",
                "100",
                "WAIT",
                "1",
                "DELAY",
                "7",
                "WAIT",
                "9"
            ]),
            Some((owned(&["lock.acquire", "k", "t", "PX", "100", "DELAY", "7"]), 9))
        );
        assert_eq!(
            split(&["SEM.ACQUIRE", "s", "t", "LIMIT", "2", "PX", "100", "WAIT", "50"]),
            Some((owned(&["SEM.ACQUIRE", "s", "t", "LIMIT", "2", "PX", "100"]), 50))
        );
        // Without a WAIT, or with one that does not parse, it is a plain
        // write: the apply answers its error and never blocks.
        for args in [
            &["LOCK.ACQUIRE", "k", "t", "PX", "100"][..],
            &["LOCK.ACQUIRE", "k", "t", "PX", "100", "WAIT"],
            &["LOCK.ACQUIRE", "k", "t", "PX", "100", "WAIT", "-1"],
            &["LOCK.ACQUIRE", "k", "t", "PX", "100", "WAIT", "x"],
            &["LOCK.ACQUIRE", "k", "t", "PX", "100", "DELAY"],
            &["GET", "k"],
        ] {
            assert_eq!(split(args), None, "{args:?}");
        }
    }

    #[test]
    fn an_onclose_acquire_and_an_extend_bind_their_client() {
        assert!(binds_client(&owned(&["LOCK.ACQUIRE", "k", "t", "PX", "1", "onclose"])));
        assert!(binds_client(&owned(&["lock.extend", "k", "t", "PX", "1"])));
        assert!(!binds_client(&owned(&["LOCK.ACQUIRE", "onclose", "t", "PX", "1"])));
        assert!(!binds_client(&owned(&["LOCK.RELEASE", "k", "t"])));
    }
}
