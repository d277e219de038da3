//! The expiry family: EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT (NX|XX|GT|LT),
//! TTL/PTTL/EXPIRETIME/PEXPIRETIME and PERSIST.

use super::args::{int, is};
use super::{CmdError, CmdResult, Ctx};
use crate::store::clock::{offset_deadline, remaining_ms};
use crate::store::{Clock, Locked, NO_DEADLINE};

/// EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT, told apart by name.
pub fn expire(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0];
    let millis = name[0].eq_ignore_ascii_case(&b'p');
    let absolute = name.len() > 2 && name[name.len() - 2..].eq_ignore_ascii_case(b"at");
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
    let mut when = int(args[2])?;
    if !millis {
        when = when.checked_mul(1000).ok_or(CmdError::InvalidExpire)?;
    }
    let wall_us = Clock::wall_us();
    // Microseconds from now until the requested instant (µs, so that an
    // absolute time comes back exactly from PEXPIRETIME).
    let rel_us = if absolute {
        when.saturating_mul(1000).saturating_sub(wall_us)
    } else {
        when.checked_add(wall_us / 1000).ok_or(CmdError::InvalidExpire)?;
        when.saturating_mul(1000)
    };
    let key = args[1];
    let now = keys.now;
    let Some(entry) = keys.get(key)? else {
        ctx.out.int(0);
        return Ok(());
    };
    let current = entry.deadline();
    let new_deadline = offset_deadline(now, rel_us);
    let refused = (nx && current != NO_DEADLINE)
        || (xx && current == NO_DEADLINE)
        || (gt && (current == NO_DEADLINE || new_deadline <= current))
        || (lt && current != NO_DEADLINE && new_deadline >= current);
    if refused {
        ctx.out.int(0);
        return Ok(());
    }
    if rel_us <= 0 {
        keys.remove(key)?;
    } else {
        keys.set_deadline(key, new_deadline)?;
    }
    ctx.out.int(1);
    Ok(())
}

/// TTL, PTTL, EXPIRETIME and PEXPIRETIME, told apart by name.
pub fn ttl(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let name = args[0];
    let millis = name[0].eq_ignore_ascii_case(&b'p');
    let absolute = name.len() > 4 && name[name.len() - 4..].eq_ignore_ascii_case(b"time");
    let now = keys.now;
    let reply = match keys.get(args[1])? {
        None => -2,
        Some(e) if !e.has_deadline() => -1,
        Some(e) => {
            if absolute {
                let at = Clock::unix_ms_of(e.deadline(), now);
                if millis { at } else { at / 1000 }
            } else {
                let ms = remaining_ms(e.deadline(), now);
                if millis { ms } else { (ms + 500) / 1000 }
            }
        }
    };
    ctx.out.int(reply);
    Ok(())
}

pub fn persist(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let had = matches!(keys.get(args[1])?, Some(e) if e.has_deadline());
    if had {
        keys.set_deadline(args[1], NO_DEADLINE)?;
    }
    ctx.out.int(had as i64);
    Ok(())
}
