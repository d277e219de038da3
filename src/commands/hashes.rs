//! Hash commands (HSET, HGET, HINCRBY, HSCAN, ...), Redis 7.0's semantics
//! and texts. The structure is [`crate::store::types::Hash`].

use super::args::{float, int};
use super::containers::{ScanOptions, empty_scan, parse_cursor, read, scan_reply, write};
use super::strings::format_incr_float;
use super::{CmdError, CmdResult, Ctx};
use crate::store::Locked;
use crate::store::types::Hash;

/// `HSET key field value [field value ...]` → fields added.
pub fn hset(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let added = set_pairs(keys, args)?;
    ctx.out.int(added as i64);
    Ok(())
}

/// `HMSET key field value [field value ...]` → OK.
pub fn hmset(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    set_pairs(keys, args)?;
    ctx.out.ok();
    Ok(())
}

fn set_pairs(keys: &mut Locked<'_>, args: &[&[u8]]) -> Result<usize, CmdError> {
    if !args.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity);
    }
    let added = write(keys, args[1], true, |h: &mut Hash| {
        Ok(args[2..].chunks_exact(2).filter(|p| h.insert(p[0], p[1])).count())
    })?;
    Ok(added.unwrap_or(0))
}

/// `HSETNX key field value` → 1 if set, 0 if the field existed.
pub fn hsetnx(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let set = write(keys, args[1], true, |h: &mut Hash| {
        Ok(h.get(args[2]).is_none() && h.insert(args[2], args[3]))
    })?;
    ctx.out.int(set.unwrap_or(false) as i64);
    Ok(())
}

pub fn hget(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let v = read::<Hash>(keys, args[1])?.and_then(|h| h.get(args[2]));
    ctx.out.bulk_or_null(v);
    Ok(())
}

pub fn hmget(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let h = read::<Hash>(keys, args[1])?;
    ctx.out.array(args.len() - 2);
    for f in &args[2..] {
        ctx.out.bulk_or_null(h.and_then(|h| h.get(f)));
    }
    Ok(())
}

/// `HDEL key field [field ...]` → fields removed.
pub fn hdel(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = write(keys, args[1], false, |h: &mut Hash| {
        Ok(args[2..].iter().filter(|f| h.remove(f)).count())
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn hexists(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let found = read::<Hash>(keys, args[1])?.is_some_and(|h| h.get(args[2]).is_some());
    ctx.out.int(found as i64);
    Ok(())
}

pub fn hlen(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = read::<Hash>(keys, args[1])?.map_or(0, |h| h.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn hstrlen(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = read::<Hash>(keys, args[1])?
        .and_then(|h| h.get(args[2]))
        .map_or(0, |v| v.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// HGETALL: a map (RESP3), field value pairs (RESP2).
pub fn hgetall(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let Some(h) = read::<Hash>(keys, args[1])? else {
        ctx.out.map(0);
        return Ok(());
    };
    ctx.out.map(h.len());
    for (f, v) in h.iter() {
        ctx.out.bulk(f);
        ctx.out.bulk(v);
    }
    Ok(())
}

pub fn hkeys(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    list_half(ctx, keys, args, true)
}

pub fn hvals(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    list_half(ctx, keys, args, false)
}

fn list_half(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], fields: bool) -> CmdResult {
    let Some(h) = read::<Hash>(keys, args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    ctx.out.array(h.len());
    for (f, v) in h.iter() {
        ctx.out.bulk(if fields { f } else { v });
    }
    Ok(())
}

/// `HINCRBY key field increment` → the new value.
pub fn hincrby(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let delta = int(args[3])?;
    let n = write(keys, args[1], true, |h: &mut Hash| {
        let current = match h.get(args[2]) {
            Some(v) => int(v).map_err(|_| CmdError::Static("ERR hash value is not an integer"))?,
            None => 0,
        };
        let n = current.checked_add(delta).ok_or(CmdError::Overflow)?;
        h.insert(args[2], itoa::Buffer::new().format(n).as_bytes());
        Ok(n)
    })?;
    ctx.out.int(n.unwrap_or(0));
    Ok(())
}

/// `HINCRBYFLOAT key field increment` → the new value, as INCRBYFLOAT writes it.
pub fn hincrbyfloat(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let delta = float(args[3])?;
    if !delta.is_finite() {
        return Err(CmdError::Static("ERR value is NaN or Infinity"));
    }
    let text = write(keys, args[1], true, |h: &mut Hash| {
        let current = match h.get(args[2]) {
            Some(v) => float(v).map_err(|_| CmdError::Static("ERR hash value is not a float"))?,
            None => 0.0,
        };
        let n = current + delta;
        if !n.is_finite() {
            return Err(CmdError::NanOrInfinity);
        }
        let text = format_incr_float(n);
        h.insert(args[2], text.as_bytes());
        Ok(text)
    })?;
    ctx.out.bulk(text.unwrap_or_default().as_bytes());
    Ok(())
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`
pub fn hscan(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(args[2])?;
    let Some(h) = read::<Hash>(keys, args[1])? else {
        empty_scan(ctx);
        return Ok(());
    };
    let opts = ScanOptions::parse(args)?;
    let mut items = Vec::new();
    let mut visit = |f: &[u8], v: &[u8]| {
        if opts.matches(f) {
            items.push(f.to_vec());
            items.push(v.to_vec());
        }
    };
    let next = match h {
        Hash::Pack(_) => {
            h.iter().for_each(|(f, v)| visit(f, v));
            0
        }
        Hash::Table(t) => t.scan(cursor, opts.count, |(f, v)| visit(f, v)),
    };
    scan_reply(ctx, next, &items);
    Ok(())
}
