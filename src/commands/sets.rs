//! Set commands (SADD, SREM, SMEMBERS, SPOP, SSCAN, ...), Redis 7.0's
//! semantics and texts. A set is a [`crate::store::types::Set`]. SPOP's
//! random choice is made here; the append-only file records the set that
//! results, so replay does not depend on it.

use super::containers::{ScanOptions, empty_scan, parse_cursor, positive_count, read, write};
use super::{CmdError, CmdResult, Ctx};
use crate::store::types::Set;
use crate::store::{Locked, SmallBytes};

pub fn sadd(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let place = keys.place(args[1])?;
    // A new set takes the encoding its first member calls for.
    let new = place.entry().is_none().then(|| Set::for_member(args[2]));
    let added = match new {
        Some(mut s) => {
            let n = args[2..].iter().filter(|m| s.insert(m)).count();
            place.set_value(crate::store::Value::Set(Box::new(s)), crate::store::NO_DEADLINE);
            n
        }
        None => write(keys, args[1], false, |s: &mut Set| {
            Ok(args[2..].iter().filter(|m| s.insert(m)).count())
        })?
        .unwrap_or(0),
    };
    ctx.out.int(added as i64);
    Ok(())
}

pub fn srem(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = write(keys, args[1], false, |s: &mut Set| {
        Ok(args[2..].iter().filter(|m| s.remove(m)).count())
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn sismember(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let found = read::<Set>(keys, args[1])?.is_some_and(|s| s.contains(args[2]));
    ctx.out.int(found as i64);
    Ok(())
}

pub fn smismember(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let s = read::<Set>(keys, args[1])?;
    ctx.out.array(args.len() - 2);
    for m in &args[2..] {
        ctx.out.int(s.is_some_and(|s| s.contains(m)) as i64);
    }
    Ok(())
}

pub fn scard(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = read::<Set>(keys, args[1])?.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn smembers(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let Some(s) = read::<Set>(keys, args[1])? else {
        ctx.out.set(0);
        return Ok(());
    };
    ctx.out.set(s.len());
    for m in s.iter() {
        m.with_bytes(|b| ctx.out.bulk(b));
    }
    Ok(())
}

fn random_index(n: usize) -> usize {
    rand::random_range(0..n)
}

/// `SPOP key [count]`
pub fn spop(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = args.get(2).map(|c| positive_count(c)).transpose()?;
    let popped = write(keys, args[1], false, |s: &mut Set| {
        let n = count.map_or(1, |c| c as usize).min(s.len());
        if count.is_some() && n == s.len() {
            // The whole set, in its order, as Redis answers it.
            let all = s.iter().map(|m| m.to_bytes()).collect();
            *s = Set::default();
            return Ok(all);
        }
        let mut popped: Vec<SmallBytes> = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(m) = s.random(random_index).map(|m| m.to_bytes()) else {
                break;
            };
            s.remove(&m);
            popped.push(m);
        }
        Ok(popped)
    })?;
    match (popped, count) {
        (None, None) => ctx.out.null(),
        (Some(p), None) => ctx.out.bulk_or_null(p.first().map(|m| &m[..])),
        (p, Some(_)) => {
            let p = p.unwrap_or_default();
            ctx.out.set(p.len());
            for m in &p {
                ctx.out.bulk(m);
            }
        }
    }
    Ok(())
}

/// `SRANDMEMBER key [count]`: a negative count may repeat members.
pub fn srandmember(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2) {
        Some(c) => match crate::protocol::decode::parse_i64(c) {
            Some(i64::MIN) => {
                return Err(CmdError::Static(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            Some(n) => Some(n),
            None => return Err(CmdError::NotInteger),
        },
        None => None,
    };
    let Some(s) = read::<Set>(keys, args[1])? else {
        match count {
            Some(_) => ctx.out.array(0),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let Some(count) = count else {
        let m = s.random(random_index).map(|m| m.to_bytes());
        ctx.out.bulk_or_null(m.as_deref());
        return Ok(());
    };
    if count < 0 {
        let n = count.unsigned_abs() as usize;
        ctx.out.array(n);
        for _ in 0..n {
            if let Some(m) = s.random(random_index) {
                m.with_bytes(|b| ctx.out.bulk(b));
            }
        }
        return Ok(());
    }
    let n = count as usize;
    if n >= s.len() {
        ctx.out.array(s.len());
        for m in s.iter() {
            m.with_bytes(|b| ctx.out.bulk(b));
        }
        return Ok(());
    }
    // Distinct members: a random sample of positions in iteration order.
    let mut all: Vec<SmallBytes> = s.iter().map(|m| m.to_bytes()).collect();
    for i in 0..n {
        let j = i + random_index(all.len() - i);
        all.swap(i, j);
    }
    ctx.out.array(n);
    for m in &all[..n] {
        ctx.out.bulk(m);
    }
    Ok(())
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`
pub fn sscan(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(args[2])?;
    let Some(s) = read::<Set>(keys, args[1])? else {
        empty_scan(ctx);
        return Ok(());
    };
    let opts = ScanOptions::parse(args)?;
    let mut items = Vec::new();
    let next = s.scan(cursor, opts.count, |m| {
        m.with_bytes(|b| {
            if opts.matches(b) {
                items.push(b.to_vec());
            }
        })
    });
    super::containers::scan_reply(ctx, next, &items);
    Ok(())
}
