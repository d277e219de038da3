//! Lock commands without Lua.
//!
//! - Redis 8.4 / Valkey 9 compare-and-delete: DELEX, DIGEST, DELIFEQ (and
//!   SET ... IFEQ in `strings`).
//! - redlockd's own lock family with fencing tokens: LOCK.ACQUIRE,
//!   LOCK.RELEASE, LOCK.EXTEND, LOCK.INFO. A lock key is an ordinary string
//!   key holding the owner's token, so GET/PTTL/DEL/SET IFEQ work on it.
//! - Fenced writes: FENCE.SET / FENCE.INCRBY accept a write only if its
//!   token is at least the highest token the key ever accepted, so a holder
//!   whose lock expired while it was paused cannot overwrite newer data.
//!   FENCE.RAISE lets a Redlock client push the instance's counter up.

use xxhash_rust::xxh3::xxh3_64;

use super::args::{int, is};
use super::strings::{Condition, ExpiryOpt, parse_set_options};
use super::table::{CommandSpec, flags};
use super::ttl::{ExpireArg, Form, pttl_of};
use super::{CmdError, CmdResult, Ctx};
use crate::lockstats::{LockStats, Release};
use crate::pubsub::LockEvent;
use crate::pubsub::events::{GENERIC, STRING};
use crate::store::{Deadline, Entry, Locked};

/// DIGEST's text: XXH3-64 of the value, 16 lowercase hex digits.
pub fn digest_hex(value: &[u8]) -> String {
    format!("{:016x}", xxh3_64(value))
}

/// An IFDEQ/IFDNE argument: exactly 16 hexadecimal digits, in either case.
/// Anything else can never equal a digest, and would silently make IFDEQ
/// never match and IFDNE always match: a client bug worth an error.
pub fn digest_arg(arg: &[u8]) -> Result<&[u8], CmdError> {
    if arg.len() == 16 && arg.iter().all(u8::is_ascii_hexdigit) {
        Ok(arg)
    } else {
        Err(CmdError::InvalidDigest)
    }
}

pub fn digest(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    match keys.get(args[1])? {
        Some(e) => {
            let d = digest_hex(e.str()?);
            ctx.out.bulk(d.as_bytes());
        }
        None => ctx.out.null(),
    }
    Ok(())
}

/// `DELEX key [IFEQ v | IFNE v | IFDEQ d | IFDNE d]` → 1 deleted, 0 not.
pub fn delex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let cond = match args.len() {
        2 => Condition::Always,
        4 => {
            let (opt, v) = (args[2], args[3]);
            if is(opt, "ifeq") {
                Condition::ValueEq(v)
            } else if is(opt, "ifne") {
                Condition::ValueNe(v)
            } else if is(opt, "ifdeq") {
                Condition::DigestEq(digest_arg(v)?)
            } else if is(opt, "ifdne") {
                Condition::DigestNe(digest_arg(v)?)
            } else {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    // Deleting only what one owns is a lock release; the other conditions are not.
    let release = matches!(cond, Condition::ValueEq(_) | Condition::DigestEq(_));
    let deleted = delete_if(ctx, keys, args[1], cond, release)?;
    ctx.out.int(deleted as i64);
    Ok(())
}

/// Delete `key` if it exists and `cond` holds for its value; with
/// `release`, count it as a lock release attempt.
fn delete_if(
    ctx: &mut Ctx<'_>,
    keys: &mut Locked<'_>,
    key: &[u8],
    cond: Condition<'_>,
    release: bool,
) -> Result<bool, CmdError> {
    let now = keys.now;
    let place = keys.place(key)?;
    let outcome = match place.entry() {
        None => Release::Missing,
        // Without a condition any type is deleted; a condition compares a string.
        Some(_) if cond == Condition::Always => Release::Released,
        Some(e) if cond.holds(Some(e.str()?)) => Release::Released,
        Some(_) => Release::NotOwner,
    };
    let removed = (outcome == Release::Released).then(|| place.remove()).flatten();
    if release {
        let token = removed.as_ref().and_then(|e| e.str().ok()).map_or(&b""[..], |v| v);
        let held = removed.as_ref().is_some_and(Entry::is_lock);
        ctx.shared.locks.released(ctx.client.db, key, token, outcome, held, now);
    }
    if let Some(e) = &removed {
        ctx.notify(GENERIC, "del", key);
        if release && let Ok(token) = e.str() {
            ctx.lock_event(key, LockEvent::Released { token });
        }
    }
    Ok(outcome == Release::Released)
}

/// `DELIFEQ key value` (Valkey 9) → 1/0.
pub fn delifeq(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let deleted = delete_if(ctx, keys, args[1], Condition::ValueEq(args[2]), true)?;
    ctx.out.int(deleted as i64);
    Ok(())
}

/// Whether a command is a lock acquire: one the restart delay gates
/// (LOCK.ACQUIRE, SETNX...), SET NX with a TTL, or a catalogued script that
/// grants. Asked only for a command refused before it ran.
pub fn grants_lock(spec: &CommandSpec, args: &[&[u8]]) -> bool {
    let script = |sha: &[u8]| crate::scripts::lookup(sha).is_some_and(|s| s.op.grants());
    match spec.name {
        _ if spec.flags & flags::GRANTS_LOCK != 0 => true,
        "set" => parse_set_options(args)
            .is_ok_and(|o| o.cond == Condition::Missing && !matches!(o.expiry, ExpiryOpt::None | ExpiryOpt::KeepTtl)),
        "evalsha" => args.get(1).is_some_and(|sha| script(sha)),
        "eval" => args
            .get(1)
            .is_some_and(|text| script(crate::scripts::sha1_hex(text).as_bytes())),
        _ => false,
    }
}

/// A lock command has just stored `token` under `key` as a grant (or a
/// holder's renewal): mark the value as a held lock and count the grant.
/// Every grant goes through here, so that what [`crate::lockstats`] calls a
/// lock is exactly what lock commands granted.
pub fn granted(locks: &LockStats, keys: &mut Locked<'_>, db: usize, key: &[u8], token: &[u8]) -> CmdResult {
    if let Some(e) = keys.get_mut(key)? {
        e.mark_lock();
    }
    locks.acquired(db, key, token, keys.now);
    Ok(())
}

/// Parse the `PX ms` / `EX s` pair of LOCK.ACQUIRE/LOCK.EXTEND into a
/// deadline, with SET's validation.
fn lock_deadline(keys: &Locked<'_>, unit: &[u8], value: &[u8]) -> Result<Deadline, CmdError> {
    let form = if is(unit, "px") {
        Form::Px
    } else if is(unit, "ex") {
        Form::Ex
    } else {
        return Err(CmdError::Syntax);
    };
    Ok(ExpireArg::set_style(form, value)?.deadline(keys.now))
}

/// `LOCK.ACQUIRE key token PX ms [WAIT ms] [ONCLOSE [GRACE ms]] [DELAY ms]`
/// → fencing token, or nil when another token holds the key (or others
/// wait for it, or its lock-delay runs). The same token re-acquiring
/// extends and keeps its fence. With WAIT the client blocks in the key's
/// FIFO queue until granted (the fence) or the wait ends (nil); inside
/// MULTI it tries once, as BLPOP does.
pub fn lock_acquire(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (key, token) = (args[1], args[2]);
    let deadline = lock_deadline(keys, args[3], args[4])?;
    let opts = super::coordination::AcquireOptions::parse(&args[5..])?;
    let db = ctx.client.db;
    let coord = &ctx.shared.coord;
    let now = keys.now;
    // Those already waiting come first, should the key be free for them.
    if coord.active() {
        coord.grant_if_free(db, keys, key);
    }
    // When the holder's lease ends (0: free, but others come first).
    let held_until = keys.get(key)?.map_or(0, |e| e.deadline());
    // `held`: this token already holds the key (re-acquiring extends it).
    let (fence, held) = match keys.get(key)? {
        Some(e) if **e.str()? != *token => (None, true),
        Some(e) if e.fence() != 0 => (Some(e.fence()), true),
        Some(_) => (Some(ctx.shared.keyspace.fences.next()), false),
        None if coord.grantable(db, key, now) => (Some(ctx.shared.keyspace.fences.next()), false),
        None => (None, false),
    };
    let Some(fence) = fence else {
        if let Some(wait) = opts.wait
            && ctx.client.may_block()
        {
            return super::coordination::block_on_lock(ctx, key, token, args[3], args[4], &opts, wait, held_until);
        }
        ctx.shared.locks.busy();
        ctx.out.null();
        return Ok(());
    };
    coord.note_holder(db, key, fence, ctx.client.handle.id);
    keys.set(key, token, deadline)?;
    if let Some(e) = keys.get_mut(key)? {
        e.set_fence(fence);
    }
    granted(&ctx.shared.locks, keys, ctx.client.db, key, token)?;
    ctx.notify(STRING, "set", key);
    ctx.notify(GENERIC, "expire", key);
    // The holder re-acquiring only extends its lock.
    let event = if held {
        LockEvent::Extended {
            token,
            pttl: pttl_of_deadline(deadline, keys.now),
        }
    } else {
        LockEvent::Acquired { token, fence }
    };
    ctx.lock_event(key, event);
    if opts.onclose.is_some() || opts.delay.is_some() {
        coord.lock_options(db, key, token, fence, ctx.client.handle.id, opts.onclose, opts.delay);
    }
    ctx.out.int(fence as i64);
    Ok(())
}

/// `LOCK.RELEASE key token` → 1/0.
pub fn lock_release(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let deleted = delete_if(ctx, keys, args[1], Condition::ValueEq(args[2]), true)?;
    ctx.out.int(deleted as i64);
    Ok(())
}

/// `LOCK.EXTEND key token PX ms` → 1/0.
pub fn lock_extend(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let deadline = lock_deadline(keys, args[3], args[4])?;
    let fence = match keys.get(args[1])? {
        Some(e) if **e.str()? == *args[2] => Some(e.fence()),
        _ => None,
    };
    if let Some(fence) = fence {
        keys.set_deadline(args[1], deadline)?;
        let coord = &ctx.shared.coord;
        coord.extended(ctx.client.db, args[1], args[2], fence, ctx.client.handle.id);
        ctx.notify(GENERIC, "expire", args[1]);
        let pttl = pttl_of_deadline(deadline, keys.now);
        ctx.lock_event(args[1], LockEvent::Extended { token: args[2], pttl });
    }
    let owned = fence.is_some();
    ctx.out.int(owned as i64);
    Ok(())
}

/// `LOCK.INFO key` → {token, ttl (ms, -1 if none), fence (nil if none),
/// waiters} or nil.
pub fn lock_info(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let now = keys.now;
    let waiters = ctx.shared.coord.queue_len(ctx.client.db, args[1]);
    let Some(e) = keys.get(args[1])? else {
        ctx.out.null();
        return Ok(());
    };
    let ttl = pttl_of(e, now);
    let token = e.str()?;
    let out = &mut *ctx.out;
    out.map(4);
    out.bulk_str("token");
    out.bulk(token);
    out.bulk_str("ttl");
    out.int(ttl);
    out.bulk_str("fence");
    if e.fence() == 0 {
        out.null()
    } else {
        out.int(e.fence() as i64)
    }
    out.bulk_str("waiters");
    out.int(waiters as i64);
    Ok(())
}

/// Milliseconds from `now` (µs) to a lock's `deadline`, as PTTL rounds.
fn pttl_of_deadline(deadline: Deadline, now: u64) -> i64 {
    (deadline.saturating_sub(now).div_ceil(1000)) as i64
}

fn fence_token(arg: &[u8]) -> Result<u64, CmdError> {
    let t = int(arg)?;
    if t < 0 {
        return Err(CmdError::NotInteger);
    }
    Ok(t as u64)
}

/// Run `write` on `key` only if `token` is at least the highest token the
/// key ever accepted (else `-FENCED`), then record `token` as accepted. The
/// key's fence history survives the write even though the value changes.
fn fenced_write<T>(
    ctx: &Ctx<'_>,
    keys: &mut Locked<'_>,
    key: &[u8],
    token: u64,
    write: impl FnOnce(&mut Locked<'_>) -> Result<T, CmdError>,
) -> Result<T, CmdError> {
    let accepted = match keys.get(key)? {
        Some(e) => {
            e.str()?;
            e.fence()
        }
        None => 0,
    };
    if token < accepted {
        ctx.shared.locks.fence_rejected();
        return Err(CmdError::msg(format!(
            "FENCED stale token {token}, key already accepted token {accepted}"
        )));
    }
    let result = write(keys)?;
    if let Some(e) = keys.get_mut(key)? {
        e.set_fence(accepted.max(token));
    }
    Ok(result)
}

/// `FENCE.SET key value token` → OK, or -FENCED. Keeps the key's TTL.
pub fn fence_set(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let token = fence_token(args[3])?;
    fenced_write(ctx, keys, args[1], token, |keys| {
        let deadline = keys.get(args[1])?.map_or(0, |e| e.deadline());
        Ok(keys.set(args[1], args[2], deadline)?)
    })?;
    ctx.notify(STRING, "set", args[1]);
    ctx.out.ok();
    Ok(())
}

/// `FENCE.INCRBY key delta token` → the new value, or -FENCED.
pub fn fence_incrby(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let delta = int(args[2])?;
    let token = fence_token(args[3])?;
    let n = fenced_write(ctx, keys, args[1], token, |keys| {
        super::strings::incr_by(keys, args[1], delta)
    })?;
    ctx.notify(STRING, "incrby", args[1]);
    ctx.out.int(n);
    Ok(())
}

/// `FENCE.RAISE floor` → the instance's fencing counter after raising it to
/// at least `floor`; every later LOCK.ACQUIRE fence is greater.
pub fn fence_raise(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let floor = fence_token(args[1])?;
    let fences = &ctx.shared.keyspace.fences;
    fences.raise_to(floor);
    ctx.out.int(fences.current() as i64);
    Ok(())
}
