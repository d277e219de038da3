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
            let d = digest_hex(&e.value);
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
    ctx: &Ctx<'_>,
    keys: &mut Locked<'_>,
    key: &[u8],
    cond: Condition<'_>,
    release: bool,
) -> Result<bool, CmdError> {
    let now = keys.now;
    let place = keys.place(key)?;
    let outcome = match place.entry() {
        None => Release::Missing,
        Some(e) if cond.holds(Some(&e.value)) => Release::Released,
        Some(_) => Release::NotOwner,
    };
    let removed = (outcome == Release::Released).then(|| place.remove()).flatten();
    if release {
        let token = removed.as_ref().map_or(&b""[..], |e| &e.value);
        let held = removed.as_ref().is_some_and(Entry::is_lock);
        ctx.shared.locks.released(ctx.client.db, key, token, outcome, held, now);
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

/// `LOCK.ACQUIRE key token PX ms` → fencing token, or nil when another
/// token holds the key. The same token re-acquiring extends and keeps its fence.
pub fn lock_acquire(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() != 5 {
        return Err(CmdError::Syntax);
    }
    let (key, token) = (args[1], args[2]);
    let deadline = lock_deadline(keys, args[3], args[4])?;
    let fence = match keys.get(key)? {
        Some(e) if *e.value != *token => None,
        Some(e) if e.fence() != 0 => Some(e.fence()),
        _ => Some(ctx.shared.keyspace.fences.next()),
    };
    let Some(fence) = fence else {
        ctx.shared.locks.busy();
        ctx.out.null();
        return Ok(());
    };
    keys.set(key, token, deadline)?;
    if let Some(e) = keys.get_mut(key)? {
        e.set_fence(fence);
    }
    granted(&ctx.shared.locks, keys, ctx.client.db, key, token)?;
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
    let owned = matches!(keys.get(args[1])?, Some(e) if *e.value == *args[2]);
    if owned {
        keys.set_deadline(args[1], deadline)?;
    }
    ctx.out.int(owned as i64);
    Ok(())
}

/// `LOCK.INFO key` → {token, ttl (ms, -1 if none), fence (nil if none)} or nil.
pub fn lock_info(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let now = keys.now;
    let Some(e) = keys.get(args[1])? else {
        ctx.out.null();
        return Ok(());
    };
    let ttl = pttl_of(e, now);
    let out = &mut *ctx.out;
    out.map(3);
    out.bulk_str("token");
    out.bulk(&e.value);
    out.bulk_str("ttl");
    out.int(ttl);
    out.bulk_str("fence");
    if e.fence() == 0 {
        out.null()
    } else {
        out.int(e.fence() as i64)
    }
    Ok(())
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
    let accepted = keys.get(key)?.map_or(0, |e| e.fence());
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
