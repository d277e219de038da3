//! The expiry family: EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT (NX|XX|GT|LT),
//! TTL/PTTL/EXPIRETIME/PEXPIRETIME and PERSIST.

use super::args::is;
use super::ttl::{ExpireArg, Form, pttl_of, rounded_secs};
use super::{CmdError, CmdResult, Ctx};
use crate::pubsub::events::GENERIC;
use crate::store::{Clock, Locked, NO_DEADLINE};

pub fn expire(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, keys, args, Form::Ex)
}

pub fn pexpire(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, keys, args, Form::Px)
}

pub fn expireat(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, keys, args, Form::ExAt)
}

pub fn pexpireat(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    expire_generic(ctx, keys, args, Form::PxAt)
}

/// `<cmd> key time [NX|XX|GT|LT]`: options first, then the time, then the
/// key, in Redis's order of errors.
fn expire_generic(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], form: Form) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if is(opt, "nx") {
            nx = true
        } else if is(opt, "xx") {
            xx = true
        } else if is(opt, "gt") {
            gt = true
        } else if is(opt, "lt") {
            lt = true
        } else {
            return Err(CmdError::msg(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::Static(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(CmdError::Static(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let when = ExpireArg::expire_style(form, args[2])?;
    let key = args[1];
    let now = keys.now;
    let Some(entry) = keys.get(key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let current = entry.deadline();
    // GT and LT compare Unix times in ms, as Redis does: the same PEXPIREAT
    // twice is neither greater nor less, whatever µs the clocks moved by.
    // A key without a deadline counts as expiring never: GT never beats it,
    // LT always does.
    let compare = || when.unix_ms().cmp(&Clock::unix_ms_of(current, now));
    let refused = (nx && current != NO_DEADLINE)
        || (xx && current == NO_DEADLINE)
        || (gt && (current == NO_DEADLINE || compare().is_le()))
        || (lt && current != NO_DEADLINE && compare().is_ge());
    if refused {
        ctx.out.int(0);
        return Ok(());
    }
    let new_deadline = when.deadline(now);
    if new_deadline <= now {
        keys.remove(key)?;
        ctx.notify(GENERIC, "del", key);
    } else {
        keys.set_deadline(key, new_deadline)?;
        ctx.notify(GENERIC, "expire", key);
    }
    ctx.out.int(1);
    Ok(())
}

pub fn ttl(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, keys, args, false, false)
}

pub fn pttl(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, keys, args, true, false)
}

pub fn expiretime(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, keys, args, false, true)
}

pub fn pexpiretime(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    ttl_generic(ctx, keys, args, true, true)
}

/// -2 for a missing key, -1 for one without a deadline, else the time left
/// (or the Unix time of the deadline when `absolute`), in ms or rounded
/// to the nearest second.
fn ttl_generic(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], millis: bool, absolute: bool) -> CmdResult {
    let now = keys.now;
    let ms = match keys.get(args[1])? {
        None => -2,
        Some(e) if absolute && e.has_deadline() => Clock::unix_ms_of(e.deadline(), now),
        Some(e) => pttl_of(e, now),
    };
    ctx.out.int(if millis || ms < 0 { ms } else { rounded_secs(ms) });
    Ok(())
}

pub fn persist(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let had = matches!(keys.get(args[1])?, Some(e) if e.has_deadline());
    if had {
        keys.set_deadline(args[1], NO_DEADLINE)?;
        ctx.notify(GENERIC, "persist", args[1]);
    }
    ctx.out.int(had as i64);
    Ok(())
}
