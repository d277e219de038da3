//! The coordination commands beside the LOCK.* core (`locks`): blocking
//! acquire's options and queueing, LOCK.HOLDER, LOCK.LIST and the
//! semaphores (SEM.ACQUIRE, SEM.RELEASE, SEM.EXTEND, SEM.INFO). The queues,
//! grants and timers they rely on are [`crate::coord`]'s.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::args::{Cursor, int, is};
use super::ttl::{ExpireArg, Form, pttl_of};
use super::{Blocked, CmdError, CmdResult, Ctx};
use crate::coord::LockRequest;
use crate::coord::sem::SemAcquire;
use crate::instance::BLOCK_WAITING;
use crate::store::Locked;

/// LOCK.ACQUIRE's options after `PX ms`.
#[derive(Debug, Default)]
pub struct AcquireOptions {
    /// WAIT ms (0 = forever).
    pub wait: Option<u64>,
    /// ONCLOSE [GRACE ms].
    pub onclose: Option<u64>,
    /// DELAY ms.
    pub delay: Option<u64>,
}

fn millis(arg: &[u8]) -> Result<u64, CmdError> {
    let n = int(arg)?;
    if n < 0 {
        return Err(CmdError::NotInteger);
    }
    Ok(n as u64)
}

/// A WAIT timeout: whole ms, 0 = forever.
fn wait_ms(arg: &[u8]) -> Result<u64, CmdError> {
    let n = int(arg).map_err(|_| CmdError::Static("ERR timeout is not an integer or out of range"))?;
    if n < 0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    Ok(n as u64)
}

impl AcquireOptions {
    pub fn parse(args: &[&[u8]]) -> Result<AcquireOptions, CmdError> {
        let mut o = AcquireOptions::default();
        let mut c = Cursor::new(args, 0);
        while let Some(opt) = c.next() {
            if is(opt, "wait") {
                o.wait = Some(wait_ms(c.value()?)?);
            } else if is(opt, "onclose") {
                o.onclose = Some(0);
            } else if is(opt, "grace") && o.onclose.is_some() {
                o.onclose = Some(millis(c.value()?)?);
            } else if is(opt, "delay") {
                o.delay = Some(millis(c.value()?)?);
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(o)
    }
}

/// The TTL in ms of a validated `PX ms` / `EX s` pair.
fn ttl_ms(unit: &[u8], value: &[u8]) -> Result<i64, CmdError> {
    let form = if is(unit, "ex") { Form::Ex } else { Form::Px };
    match ExpireArg::set_style(form, value)? {
        ExpireArg::In(ms) => Ok(ms),
        ExpireArg::At(_) => Err(CmdError::Syntax),
    }
}

fn block(
    ctx: &mut Ctx<'_>,
    ticket: crate::coord::Ticket,
    rx: tokio::sync::oneshot::Receiver<crate::coord::Granted>,
    wait: u64,
) {
    ctx.client.handle.block.store(BLOCK_WAITING, Ordering::SeqCst);
    ctx.client.blocked = Some(Box::new(Blocked {
        ticket,
        rx,
        timeout: (wait > 0).then(|| Duration::from_millis(wait)),
        stop: None,
    }));
}

/// Queue a LOCK.ACQUIRE that found the lock taken: the connection blocks
/// and replies when the wait ends ([`crate::server::connection`]). The
/// holder's lease ends at `due` (store µs; 0 if the key is free but others
/// come first): the expirer must look then.
#[allow(clippy::too_many_arguments)]
pub fn block_on_lock(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    token: &[u8],
    unit: &[u8],
    value: &[u8],
    opts: &AcquireOptions,
    wait: u64,
    due: u64,
) -> CmdResult {
    let req = LockRequest {
        token: token.into(),
        ttl_ms: ttl_ms(unit, value)?,
        onclose: opts.onclose,
        delay_ms: opts.delay,
    };
    let (ticket, rx) = ctx
        .shared
        .coord
        .enqueue_lock(ctx.client.db, key, ctx.client.handle.id, req, due)?;
    block(ctx, ticket, rx, wait);
    Ok(())
}

/// `LOCK.HOLDER key` → [token, fence (nil if none), PTTL] or nil if free.
pub fn lock_holder(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let now = keys.now;
    let Some(e) = keys.get(args[1])? else {
        ctx.out.null();
        return Ok(());
    };
    ctx.out.array(3);
    ctx.out.bulk(e.str()?);
    if e.fence() == 0 {
        ctx.out.null();
    } else {
        ctx.out.int(e.fence() as i64);
    }
    ctx.out.int(pttl_of(e, now));
    Ok(())
}

/// One row of LOCK.LIST.
struct Held {
    key: Box<[u8]>,
    kind: &'static str,
    token: Box<[u8]>,
    fence: u64,
    pttl: i64,
    client: Option<u64>,
    waiters: usize,
}

/// `LOCK.LIST [MATCH pattern] [COUNT n]` → the held locks (keys that
/// LOCK.ACQUIRE granted: a fence and a deadline) and semaphore slots of the
/// current database, at most COUNT (default 100) of them: key, type, token,
/// fence, PTTL, the holder's client id and name (while it is connected and
/// known: see [`crate::coord::Coord::note_holder`]), and the waiters. Visits one shard at a time, so other
/// clients wait for one shard at most.
pub fn lock_list(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut pattern, mut count) = (None, 100usize);
    let mut opts = Cursor::new(args, 1);
    while let Some(opt) = opts.next() {
        if is(opt, "match") {
            pattern = Some(opts.value()?);
        } else if is(opt, "count") {
            let n = int(opts.value()?)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as usize;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.client.db;
    let now = keys.now;
    let wanted = |k: &[u8]| pattern.is_none_or(|p| crate::glob::matches(p, k, false));
    let mut rows: Vec<Held> = Vec::new();
    let mut visit = |k: &[u8], e: &crate::store::Entry| {
        if let Ok(token) = e.str()
            && rows.len() < count
            && e.fence() != 0
            && e.has_deadline()
            && wanted(k)
        {
            rows.push(Held {
                key: k.into(),
                kind: "lock",
                token: token[..].into(),
                fence: e.fence(),
                pttl: pttl_of(e, now),
                client: None,
                waiters: 0,
            });
        }
    };
    if keys.holds_all() {
        // Inside EXEC, which holds every shard already.
        keys.scan(0, usize::MAX, &mut visit);
    } else {
        let store = &ctx.shared.keyspace.dbs[db];
        for shard in 0..store.shard_count() {
            store.for_each_in_shard(shard, now, &mut visit);
        }
    }
    let coord = &ctx.shared.coord;
    for row in &mut rows {
        row.client = coord.holder_client(db, &row.key, row.fence);
        row.waiters = coord.queue_len(db, &row.key);
    }
    for (d, key, _, h, waiters) in ctx.shared.keyspace.sems.holders(now) {
        if rows.len() >= count {
            break;
        }
        if d == db && wanted(&key) {
            let waiters = waiters + coord.group_queue_len(db, true, &key);
            rows.push(Held {
                pttl: crate::store::clock::remaining_ms(h.deadline, now),
                key,
                kind: "semaphore",
                token: h.token,
                fence: h.fence,
                client: None,
                waiters,
            });
        }
    }
    let names: HashMap<u64, String> = if rows.iter().any(|r| r.client.is_some()) {
        ctx.shared
            .clients
            .snapshot()
            .into_iter()
            .map(|c| (c.id, c.name.lock().clone()))
            .collect()
    } else {
        HashMap::new()
    };
    let out = &mut *ctx.out;
    out.array(rows.len());
    for r in &rows {
        out.map(8);
        out.bulk_str("key");
        out.bulk(&r.key);
        out.bulk_str("type");
        out.bulk_str(r.kind);
        out.bulk_str("token");
        out.bulk(&r.token);
        out.bulk_str("fence");
        out.int(r.fence as i64);
        out.bulk_str("pttl");
        out.int(r.pttl);
        let connected = r.client.filter(|id| names.contains_key(id));
        out.bulk_str("client-id");
        match connected {
            Some(id) => out.int(id as i64),
            None => out.null(),
        }
        out.bulk_str("client-name");
        match connected.and_then(|id| names.get(&id)).filter(|n| !n.is_empty()) {
            Some(name) => out.bulk(name.as_bytes()),
            None => out.null(),
        }
        out.bulk_str("waiters");
        out.int(r.waiters as i64);
    }
    Ok(())
}

/// `SEM.ACQUIRE key token LIMIT n PX ms [WAIT ms]` → fence, or nil.
pub fn sem_acquire(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (key, token) = (args[1], args[2]);
    if !is(args[3], "limit") {
        return Err(CmdError::Syntax);
    }
    let limit = int(args[4])?;
    if limit < 1 {
        return Err(CmdError::Static("ERR LIMIT must be a positive integer"));
    }
    if !is(args[5], "px") && !is(args[5], "ex") {
        return Err(CmdError::Syntax);
    }
    let ttl = ttl_ms(args[5], args[6])?;
    let wait = match args.len() {
        7 => None,
        9 if is(args[7], "wait") => Some(wait_ms(args[8])?),
        _ => return Err(CmdError::Syntax),
    };
    let may_block = wait.is_some() && ctx.client.may_block();
    let db = ctx.client.db;
    match ctx
        .shared
        .coord
        .sem_acquire(db, key, token, limit as u64, ttl, may_block, keys.now)?
    {
        SemAcquire::Granted(fence) => ctx.out.int(fence as i64),
        SemAcquire::Busy => ctx.out.null(),
        SemAcquire::Queued(ticket, rx) => block(ctx, ticket, rx, wait.unwrap_or(0)),
    }
    Ok(())
}

/// `SEM.RELEASE key token` → 1/0.
pub fn sem_release(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let released = ctx.shared.coord.sem_release_token(ctx.client.db, args[1], args[2]);
    ctx.out.int(released as i64);
    Ok(())
}

/// `SEM.EXTEND key token PX ms` → 1/0.
pub fn sem_extend(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if !is(args[3], "px") && !is(args[3], "ex") {
        return Err(CmdError::Syntax);
    }
    let ttl = ttl_ms(args[3], args[4])?;
    let extended = ctx
        .shared
        .coord
        .sem_extend(ctx.client.db, args[1], args[2], ttl, keys.now);
    ctx.out.int(extended as i64);
    Ok(())
}

/// `SEM.INFO key` → {limit, holders: [[token, fence, pttl]...], waiters}, or nil.
pub fn sem_info(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let Some(info) = ctx.shared.coord.sem_info(ctx.client.db, args[1], keys.now) else {
        ctx.out.null();
        return Ok(());
    };
    let out = &mut *ctx.out;
    out.map(3);
    out.bulk_str("limit");
    out.int(info.limit as i64);
    out.bulk_str("holders");
    out.array(info.holders.len());
    for (token, fence, pttl) in &info.holders {
        out.array(3);
        out.bulk(token);
        out.int(*fence as i64);
        out.int(*pttl);
    }
    out.bulk_str("waiters");
    out.int((info.waiters + ctx.shared.coord.group_queue_len(ctx.client.db, true, args[1])) as i64);
    Ok(())
}
