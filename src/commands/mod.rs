//! Command dispatch: from an argument list to a reply.
//!
//! The path of one command: look the name up in the declarative
//! [`table`](table::COMMANDS) (arity, flags, key positions, persistence),
//! check arity, queue it if the client is inside MULTI, lock the shards of
//! exactly the keys the table says it touches, run the handler (parse →
//! store operation → reply), record its effect in the append-only file as
//! its row says, and map any error to its Redis text in one place
//! ([`error::CmdError::text`]). Each handler lives in the file of its
//! family: `connection`, `server`, `keys`, `expire`, `strings`, `hashes`,
//! `lists`, `sets`, `zsets` (with what the last four share in
//! `containers`), `transactions`, `locks`, `scripting`, `pubsub`. The state shared across
//! connections is [`crate::instance`]; nothing here knows the network side.

pub mod args;
pub mod connection;
pub mod containers;
pub mod coordination;
pub mod error;
pub mod expire;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod locks;
pub mod lua;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod strings;
pub mod table;
pub mod transactions;
pub mod ttl;
pub mod zsets;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use smallvec::SmallVec;

use crate::config::Settings;
use crate::instance::{ClientHandle, Shared};
use crate::protocol::ReplyBuf;
use crate::store::Locked;
use crate::{memory, stats};
pub use error::{CmdError, CmdResult};
use table::{CommandSpec, KeySpec, Persist, flags};

/// A command queued by MULTI, with owned copies of its arguments.
pub struct Queued {
    pub index: usize,
    pub args: Vec<Box<[u8]>>,
}

/// Per-connection state that commands read and change.
pub struct ClientState {
    pub handle: Arc<ClientHandle>,
    pub db: usize,
    /// Inside MULTI: the queued commands.
    pub multi: Option<Vec<Queued>>,
    /// A command failed to queue: EXEC must abort.
    pub multi_error: bool,
    /// Keys under WATCH, as (db, key).
    pub watched: Vec<(usize, Box<[u8]>)>,
    /// Set by any write to a watched key.
    pub dirty: Arc<AtomicBool>,
    /// Close the connection once the pending replies are written (QUIT).
    pub close: bool,
    /// AUTH (or HELLO AUTH) succeeded, or no password is required.
    pub authenticated: bool,
    /// End offset of this client's last append-only record not yet known
    /// durable; replies wait for it with `appendfsync always`.
    pub aof_mark: u64,
    /// The command this client sent last.
    pub last_command: table::LookupCache,
    /// Its channels and outbox, once it subscribed to something.
    pub pubsub: Option<Box<crate::pubsub::Subscriptions>>,
    /// The append-only records of the Lua script that just ran, for its
    /// EVAL's [`Persist::Script`] (None: a catalogued script ran).
    pub script_effects: Option<Vec<u8>>,
    /// Set by a blocking acquire that must wait: the connection reads no
    /// further command until the wait ends, and then writes its reply.
    pub blocked: Option<Box<Blocked>>,
    /// EXEC is running queued commands: a blocking acquire tries once.
    pub in_exec: bool,
    /// The synthetic client of a replicated group's apply
    /// (`crate::group::state_machine`): it never blocks, every node
    /// applies alike (a group's waiters queue at its leader).
    pub replicated: bool,
}

/// A blocking acquire in its queue ([`crate::coord`]).
pub struct Blocked {
    pub ticket: crate::coord::Ticket,
    pub rx: tokio::sync::oneshot::Receiver<crate::coord::Granted>,
    /// None: wait forever (WAIT 0).
    pub timeout: Option<std::time::Duration>,
    /// A group's wait (`crate::group::waiters::serve_waiter`): told when the
    /// wait ends otherwise than by its answer, so that it leaves the
    /// leader's queue and settles a try already in the log.
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ClientState {
    /// Whether a blocking command may block here: not inside MULTI/EXEC
    /// (Redis's CLIENT_DENY_BLOCKING; it then answers as if timed out),
    /// nor in a group's apply.
    pub fn may_block(&self) -> bool {
        self.multi.is_none() && !self.in_exec && !self.replicated
    }

    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> Self {
        ClientState {
            authenticated,
            aof_mark: 0,
            handle,
            db: 0,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            dirty: Arc::new(AtomicBool::new(false)),
            close: false,
            last_command: table::LookupCache::default(),
            pubsub: None,
            script_effects: None,
            blocked: None,
            in_exec: false,
            replicated: false,
        }
    }

    /// RESP2 subscriber mode: only (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET.
    pub fn in_subscriber_mode(&self) -> bool {
        self.pubsub.as_ref().is_some_and(|p| p.total() > 0) && self.handle.resp.load(Ordering::Relaxed) == 2
    }

    /// Move the messages waiting in this client's outbox after the replies
    /// in `out`, so that what was published before a reply arrives before it.
    #[inline]
    pub fn deliver_pending(&self, out: &mut ReplyBuf) {
        if let Some(p) = &self.pubsub {
            p.outbox.drain_into(&mut out.buf);
        }
    }
}

/// What a handler may use besides the keys.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub client: &'a mut ClientState,
    pub out: &'a mut ReplyBuf,
}

impl Ctx<'_> {
    /// Reply to `<CMD> HELP`: one status line per entry.
    pub fn help(&mut self, lines: &[&str]) {
        self.out.array(lines.len());
        for line in lines {
            self.out.simple(line);
        }
    }

    /// A keyspace notification of `class` (see [`crate::pubsub::events`]):
    /// `event` happened to `key` in the client's database. One relaxed load
    /// when notifications are off.
    #[inline]
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        self.shared.pubsub.notify(class, event, self.client.db, key);
        self.client.deliver_pending(self.out);
    }

    /// A lock event on `__lock__:KEY` (see [`crate::pubsub::PubSub::lock_event`]).
    #[inline]
    pub fn lock_event(&mut self, key: &[u8], event: crate::pubsub::LockEvent<'_>) {
        self.shared.pubsub.lock_event(key, event);
        self.client.deliver_pending(self.out);
    }

    /// Refuse a lock grant while the restart delay runs (Redlock's delayed
    /// restart: an instance that lost its memory must not grant a lock that
    /// a holder may still believe it has).
    pub fn check_grants_allowed(&self) -> CmdResult {
        let Some(left) = self.shared.grants.remaining() else {
            return Ok(());
        };
        self.shared.locks.refused();
        Err(CmdError::msg(format!(
            "TRYAGAIN instance restarting, lock grants resume in {} ms",
            left.as_millis().max(1)
        )))
    }
}

/// Execute one request, writing its reply to `out`.
pub fn execute(shared: &Shared, client: &mut ClientState, out: &mut ReplyBuf, args: &[&[u8]]) {
    execute_with(shared, client, out, args, true);
}

/// Execute one command of a replicated group's log (`crate::group`): as
/// [`execute`], without the refusals that depend on the node rather than on
/// the log (authentication, maxmemory, the append-only file's health): the
/// node that took the command from its client made them before proposing
/// it, and every node must apply the entry alike.
pub fn execute_replicated(shared: &Shared, client: &mut ClientState, out: &mut ReplyBuf, args: &[&[u8]]) {
    execute_with(shared, client, out, args, false);
}

#[inline(always)]
fn execute_with(shared: &Shared, client: &mut ClientState, out: &mut ReplyBuf, args: &[&[u8]], gates: bool) {
    let Some((index, spec)) = client.last_command.lookup(args[0]) else {
        client.handle.last_cmd.store(usize::MAX, Ordering::Relaxed);
        reply_error(out, &error::unknown_command(args));
        flag_transaction(client);
        stats::command_rejected(None);
        return;
    };
    // As Redis's processCommand: the last command is the last one looked
    // up, whether it then runs, is queued or is refused.
    let slot = stat_slot(index, spec, args);
    client.handle.last_cmd.store(slot, Ordering::Relaxed);
    if !table::arity_ok(spec, args.len()) {
        reply_error(out, &CmdError::WrongArity.text(spec.name));
        flag_transaction(client);
        stats::command_rejected(Some(slot));
        return;
    }
    if gates && !client.authenticated && spec.flags & flags::NO_AUTH == 0 {
        reply_error(out, "NOAUTH Authentication required.");
        flag_transaction(client);
        stats::command_rejected(Some(slot));
        return;
    }
    // Refusals before the command runs, in Redis's processCommand order.
    if gates && denied_past_maxmemory(spec, client) && memory::over(Settings::get(&shared.settings.maxmemory)) {
        refuse(shared, client, out, spec, slot, args, error::OOM);
        return;
    }
    if gates
        && let Some(errno) = shared.aof.as_ref().and_then(|aof| aof.write_error())
        && denied_on_disk_error(spec, client)
    {
        refuse(shared, client, out, spec, slot, args, &error::misconf_aof(errno));
        return;
    }
    if client.in_subscriber_mode() && spec.flags & flags::SUBSCRIBER == 0 {
        let why = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            table::stat_name(slot)
        );
        if spec.flags & flags::RUNS_QUEUE != 0 {
            // As Redis's rejectCommand: EXEC's refusal discards the transaction.
            client.multi = None;
            client.handle.multi.store(-1, Ordering::Relaxed);
            client.multi_error = false;
            transactions::unwatch_all(&mut Ctx { shared, client, out });
            reply_error(
                out,
                &format!("EXECABORT Transaction discarded because of: {}", &why[4..]),
            );
        } else {
            reply_error(out, &why);
            flag_transaction(client);
        }
        stats::command_rejected(Some(slot));
        return;
    }
    if shared.lua.running()
        && let Err(busy) = shared.lua.wait_turn(spec, args)
    {
        reply_error(out, busy);
        flag_transaction(client);
        stats::command_rejected(Some(slot));
        return;
    }
    if client.multi.is_some() && spec.flags & flags::SKIP_QUEUE == 0 {
        if spec.flags & flags::NO_MULTI != 0 {
            reply_error(out, "ERR Command not allowed inside a transaction");
            flag_transaction(client);
            return;
        }
        let queued = Queued {
            index,
            args: args.iter().map(|a| Box::<[u8]>::from(*a)).collect(),
        };
        let queue = client.multi.as_mut().expect("checked above");
        queue.push(queued);
        client.handle.multi.store(queue.len() as i64, Ordering::Relaxed);
        out.simple("QUEUED");
        return;
    }
    let mut ctx = Ctx { shared, client, out };
    run(&mut ctx, slot, spec, args);
}

/// Whether the command has `flag`, or is EXEC and would run a command that
/// has it (Redis judges EXEC by the transaction it holds).
fn has_flag(spec: &CommandSpec, client: &ClientState, flag: u32) -> bool {
    spec.flags & flag != 0
        || (spec.flags & flags::RUNS_QUEUE != 0
            && client
                .multi
                .as_ref()
                .is_some_and(|queue| queue.iter().any(|q| table::COMMANDS[q.index].flags & flag != 0)))
}

/// Whether Redis refuses the command past maxmemory: what may grow memory
/// (EXEC of a transaction holding such a command included), and inside
/// MULTI anything but what ends the transaction, since queueing grows it.
fn denied_past_maxmemory(spec: &CommandSpec, client: &ClientState) -> bool {
    has_flag(spec, client, flags::DENYOOM)
        || (client.multi.is_some() && spec.flags & (flags::NO_MULTI | flags::ENDS_MULTI) == 0)
}

/// Whether Redis refuses the command while the append-only file cannot be
/// written: writes, EXEC of a transaction holding one, and PING (so that
/// health checks notice); everything else is served.
fn denied_on_disk_error(spec: &CommandSpec, client: &ClientState) -> bool {
    has_flag(spec, client, flags::WRITE) || spec.flags & flags::HEALTH_CHECK != 0
}

/// Refuse a command before it runs with `why`, as Redis's rejectCommand:
/// EXEC also discards its transaction (`execCommandAbort`); anything else
/// inside MULTI makes EXEC fail.
fn refuse(
    shared: &Shared,
    client: &mut ClientState,
    out: &mut ReplyBuf,
    spec: &CommandSpec,
    slot: usize,
    args: &[&[u8]],
    why: &str,
) {
    if spec.flags & flags::RUNS_QUEUE != 0 && client.multi.is_some() {
        client.multi = None;
        client.handle.multi.store(-1, Ordering::Relaxed);
        client.multi_error = false;
        transactions::unwatch_all(&mut Ctx { shared, client, out });
        reply_error(out, &format!("EXECABORT Transaction discarded because of: {why}"));
    } else {
        reply_error(out, why);
        flag_transaction(client);
    }
    stats::command_rejected(Some(slot));
    // A command that would have granted a lock is a refused grant.
    if locks::grants_lock(spec, args) {
        shared.locks.refused();
    }
}

fn flag_transaction(client: &mut ClientState) {
    if client.multi.is_some() {
        client.multi_error = true;
    }
}

/// Lock the command's keys and run it; `slot` is its statistics slot.
fn run(ctx: &mut Ctx<'_>, slot: usize, spec: &'static CommandSpec, args: &[&[u8]]) {
    let keyspace = &ctx.shared.keyspace;
    let db = &keyspace.dbs[ctx.client.db];
    let now = keyspace.clock.now_us();
    let no_keys = KeyPositions::none();
    let (mut locked, keys) = match &spec.keys {
        KeySpec::None => (db.unlocked(now), no_keys),
        KeySpec::All => (db.lock_all(now), no_keys),
        spec_keys => match key_positions(spec_keys, args) {
            Ok(range) => (db.lock_keys(range.clone().map(|i| args[i]), now), range),
            Err(e) => {
                reply_error(ctx.out, &e.text(spec.name));
                stats::command_done(slot, true, keyspace.clock.now_us().saturating_sub(now));
                return;
            }
        },
    };
    run_with_keys(ctx, slot, spec, &mut locked, args, Ok(keys), now);
    // Clients blocked on the lists this pushed to are served now, after the
    // whole command (EXEC, a script), still under its locks.
    ctx.shared.coord.serve_ready(locked);
}

/// Run a command against keys already locked (by EXEC).
pub fn run_locked(
    ctx: &mut Ctx<'_>,
    index: usize,
    spec: &'static CommandSpec,
    locked: &mut Locked<'_>,
    args: &[&[u8]],
) {
    // Commands queued by MULTI had their key positions checked only now:
    // no handler may see an impossible numkeys.
    let keys = key_positions(&spec.keys, args);
    let start = ctx.shared.keyspace.clock.now_us();
    run_with_keys(ctx, stat_slot(index, spec, args), spec, locked, args, keys, start);
}

/// Run a command whose key positions (or their error) are known; `slot`
/// is its statistics slot ([`stat_slot`]), `start` the store clock's
/// reading before its keys were locked (the one the store uses as "now"),
/// so timing it costs one more clock read.
fn run_with_keys(
    ctx: &mut Ctx<'_>,
    slot: usize,
    spec: &'static CommandSpec,
    locked: &mut Locked<'_>,
    args: &[&[u8]],
    keys: Result<KeyPositions, CmdError>,
    start: u64,
) {
    let (result, keys) = match keys {
        Ok(keys) if spec.flags & flags::GRANTS_LOCK != 0 => (
            ctx.check_grants_allowed()
                .and_then(|()| (spec.handler)(ctx, locked, args)),
            Some(keys),
        ),
        Ok(keys) => ((spec.handler)(ctx, locked, args), Some(keys)),
        Err(e) => (Err(e), None),
    };
    // MULTI, EXEC, DISCARD and RESET start or end a transaction.
    if spec.flags & (flags::SKIP_QUEUE | flags::ENDS_MULTI) != 0 {
        let queued = ctx.client.multi.as_ref().map_or(-1, |q| q.len() as i64);
        ctx.client.handle.multi.store(queued, Ordering::Relaxed);
    }
    let failed = result.is_err();
    if let Err(e) = result {
        reply_error(ctx.out, &e.text(spec.name));
    }
    if spec.flags & flags::WRITE != 0
        && ctx.shared.watches.any()
        && let Some(range) = keys
    {
        for i in range {
            ctx.shared.watches.touch(ctx.client.db, args[i]);
        }
    }
    if spec.persist != Persist::Nothing
        && let Some(aof) = &ctx.shared.aof
    {
        ctx.client.aof_mark = log_effects(aof, ctx, spec, locked, args);
    }
    // A key this freed goes to its first waiter, under the same locks
    // (after the command's own records, which a grant's must follow).
    if ctx.shared.coord.active() {
        hand_freed_keys(ctx, spec, locked, args);
    }
    let usec = ctx.shared.keyspace.clock.now_us().saturating_sub(start);
    stats::command_done(slot, failed, usec);
    if ctx.shared.latency.is_spike(usec) {
        let event = if spec.flags & flags::FAST != 0 {
            "fast-command"
        } else {
            "command"
        };
        ctx.shared.latency.add_if_spike(event, usec);
    }
    // AUTH and HELLO carry passwords; EXEC's commands are logged one by one.
    if ctx.shared.slowlog.is_slow(usec) && spec.flags & (flags::NO_AUTH | flags::RUNS_QUEUE) == 0 {
        log_slow(ctx, args, usec);
    }
}

/// Out of line: only while someone waits for a lock or a lock has options.
#[cold]
#[inline(never)]
fn hand_freed_keys(ctx: &Ctx<'_>, spec: &CommandSpec, locked: &mut Locked<'_>, args: &[&[u8]]) {
    let coord = &ctx.shared.coord;
    let db = ctx.client.db;
    if spec.persist == Persist::FlushAll {
        coord.after_flushall(db, locked);
    } else if locked.holds_all() {
        coord.after_command_all(db, locked);
    } else if let Ok(range) = key_positions(&spec.keys, args) {
        coord.after_command(db, locked, range.map(|i| args[i]));
    }
}

/// Out of line: most commands are not slow, and the hot path stays small.
#[cold]
#[inline(never)]
fn log_slow(ctx: &Ctx<'_>, args: &[&[u8]], usec: u64) {
    let handle = &ctx.client.handle;
    let name = handle.name.lock().clone();
    ctx.shared.slowlog.push(usec, args, handle.addr.to_string(), name);
}

/// The statistics slot of a command: its row, or its subcommand's slot.
#[inline]
fn stat_slot(index: usize, spec: &CommandSpec, args: &[&[u8]]) -> usize {
    if spec.flags & flags::CONTAINER != 0 {
        table::stat_index(index, args)
    } else {
        index
    }
}

/// Send an error reply, counted for INFO errorstats.
fn reply_error(out: &mut ReplyBuf, text: &str) {
    out.error(text);
    stats::error_reply(text);
}

/// Append the effect of a write command to the log ([`record_effects`]),
/// while its keys' shards are still locked, so records of a key are in
/// store order.
fn log_effects(
    aof: &crate::persist::Aof,
    ctx: &mut Ctx<'_>,
    spec: &CommandSpec,
    locked: &mut Locked<'_>,
    args: &[&[u8]],
) -> u64 {
    let db = ctx.client.db;
    // A Lua script's records were collected as its commands ran.
    let script = match spec.persist {
        Persist::Script => ctx.client.script_effects.take(),
        _ => None,
    };
    aof.append(|buf| match script {
        Some(records) => buf.extend_from_slice(&records),
        None => record_effects(buf, ctx.shared, db, spec, locked, args),
    })
}

/// The records of a write command's effect, as its row's [`Persist`] says:
/// the resulting state of each key it names, or the flush / fence counter
/// it changed.
pub(crate) fn record_effects(
    buf: &mut Vec<u8>,
    shared: &Shared,
    db: usize,
    spec: &CommandSpec,
    locked: &mut Locked<'_>,
    args: &[&[u8]],
) {
    use crate::persist::aof::{fence_record, flushall_record, flushdb_record, key_record};
    let now = locked.now;
    match spec.persist {
        Persist::Nothing | Persist::Semaphore => {}
        Persist::FlushDb => flushdb_record(buf, db),
        Persist::FlushAll => flushall_record(buf),
        Persist::Fence => fence_record(buf, shared.keyspace.fences.current()),
        Persist::Dest => {
            let entry = locked.get(args[1]).ok().flatten();
            key_record(buf, db, args[1], entry, now);
        }
        Persist::Keys | Persist::Script => {
            if let Ok(range) = key_positions(&spec.keys, args) {
                for i in range {
                    let entry = locked.get(args[i]).ok().flatten();
                    key_record(buf, db, args[i], entry, now);
                }
            }
        }
    }
}

/// Indexes of the key arguments of a command, from its key specification.
pub fn key_positions(keys: &KeySpec, args: &[&[u8]]) -> Result<KeyPositions, CmdError> {
    match *keys {
        KeySpec::None | KeySpec::All => Ok(KeyPositions::none()),
        KeySpec::Range { first, last, step } => {
            let end = if last < 0 {
                args.len() as isize + last + 1
            } else {
                (last + 1).min(args.len() as isize)
            };
            let end = (end.max(first as isize)) as usize;
            Ok(KeyPositions::range((first..end).step_by(step)))
        }
        KeySpec::NumKeys { at, first } => {
            let n = args::int(args[at])?;
            if n < 0 {
                return Err(CmdError::Static("ERR Number of keys can't be negative"));
            }
            if n as usize > args.len() - first {
                return Err(CmdError::Static(
                    "ERR Number of keys can't be greater than number of args",
                ));
            }
            Ok(KeyPositions::range((first..first + n as usize).step_by(1)))
        }
        KeySpec::DestNumKeys => {
            // A bad count locks the destination alone: the handler replies
            // with the command's own error for it.
            let end = match args::int(args[2]) {
                Ok(n) if n >= 1 && n as usize <= args.len() - 3 => 3 + n as usize,
                _ => 2,
            };
            // args[1], then args[3..end]: the count at args[2] is skipped.
            Ok(KeyPositions {
                range: (1..end).step_by(1),
                skip: 2,
            })
        }
    }
}

/// The argument positions of a command's keys: evenly spaced ones, less
/// one position that is not a key (`skip`; 0, the command's name, when
/// none is), so that ZUNIONSTORE's destination and sources are one range.
#[derive(Clone)]
pub struct KeyPositions {
    range: std::iter::StepBy<std::ops::Range<usize>>,
    skip: usize,
}

impl KeyPositions {
    fn none() -> Self {
        Self::range((0..0).step_by(1))
    }

    fn range(range: std::iter::StepBy<std::ops::Range<usize>>) -> Self {
        KeyPositions { range, skip: 0 }
    }
}

impl Iterator for KeyPositions {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        let i = self.range.next()?;
        if i != self.skip { Some(i) } else { self.range.next() }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.range.len() - (self.skip != 0 && self.range.clone().any(|i| i == self.skip)) as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for KeyPositions {}

/// Borrow owned arguments as the slice-of-slices handlers take.
pub fn borrow_args(args: &[Box<[u8]>]) -> SmallVec<[&[u8]; 8]> {
    args.iter().map(|a| &a[..]).collect()
}
