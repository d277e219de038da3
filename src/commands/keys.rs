//! Generic key commands: DEL/UNLINK, EXISTS/TOUCH, TYPE, KEYS, SCAN, RANDOMKEY, RENAME(NX).

use super::args::{Cursor, is};
use super::{CmdError, CmdResult, Ctx};
use crate::glob;
use crate::pubsub::events::GENERIC;
use crate::store::Locked;

pub fn del(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        if keys.remove(key)?.is_some() {
            ctx.notify(GENERIC, "del", key);
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub fn exists(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        n += keys.contains(key)? as i64;
    }
    ctx.out.int(n);
    Ok(())
}

pub fn type_(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let t = if keys.contains(args[1])? { "string" } else { "none" };
    ctx.out.simple(t);
    Ok(())
}

pub fn keys(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let pattern = args[1];
    let all = pattern == b"*";
    let mut found: Vec<Box<[u8]>> = Vec::new();
    keys.scan(0, usize::MAX, |k, _| {
        if all || glob::matches(pattern, k, false) {
            found.push(k.into());
        }
    });
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
    Ok(())
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
pub fn scan(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = std::str::from_utf8(args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CmdError::Static("ERR invalid cursor"))?;
    let (mut pattern, mut count, mut type_ok) = (None, 10usize, true);
    let mut opts = Cursor::new(args, 2);
    while let Some(opt) = opts.next() {
        if is(opt, "match") {
            // As Redis: `MATCH *` filters nothing, not even the empty key
            // (which the pattern "*" does not match).
            pattern = Some(opts.value()?).filter(|p| *p != b"*");
        } else if is(opt, "count") {
            let n = super::args::int(opts.value()?)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            count = n as usize;
        } else if is(opt, "type") {
            type_ok = is(opts.value()?, "string");
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut found: Vec<Box<[u8]>> = Vec::new();
    let next = keys.scan(cursor, count, |k, _| {
        if type_ok && pattern.is_none_or(|p| glob::matches(p, k, false)) {
            found.push(k.into());
        }
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
    Ok(())
}

pub fn randomkey(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    let key = keys.random_key(|n| rand::random_range(0..n));
    ctx.out.bulk_or_null(key.as_deref());
    Ok(())
}

fn rename_inner(keys: &mut Locked<'_>, from: &[u8], to: &[u8], nx: bool) -> Result<bool, CmdError> {
    let Some(entry) = keys.get(from)?.cloned() else {
        return Err(CmdError::NoSuchKey);
    };
    if from == to {
        return Ok(!nx);
    }
    if nx && keys.contains(to)? {
        return Ok(false);
    }
    keys.remove(from)?;
    keys.set(to, &entry.value, entry.deadline())?;
    Ok(true)
}

/// RENAME's and RENAMENX's events, when a key moved to another name.
fn renamed(ctx: &mut Ctx<'_>, from: &[u8], to: &[u8]) {
    if from != to {
        ctx.notify(GENERIC, "rename_from", from);
        ctx.notify(GENERIC, "rename_to", to);
    }
}

pub fn rename(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    rename_inner(keys, args[1], args[2], false)?;
    renamed(ctx, args[1], args[2]);
    ctx.out.ok();
    Ok(())
}

pub fn renamenx(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let done = rename_inner(keys, args[1], args[2], true)?;
    if done {
        renamed(ctx, args[1], args[2]);
    }
    ctx.out.int(done as i64);
    Ok(())
}
