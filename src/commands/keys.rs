//! Generic key commands: DEL/UNLINK, EXISTS/TOUCH, TYPE, OBJECT, KEYS, SCAN,
//! RANDOMKEY, RENAME(NX). They work on every type.

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
    let t = keys.get(args[1])?.map_or("none", |e| e.value.type_name());
    ctx.out.simple(t);
    Ok(())
}

/// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key`, `OBJECT HELP`.
pub fn object(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    if args.len() == 2 && is(sub, "help") {
        ctx.help(&[
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ]);
        return Ok(());
    }
    let known = ["encoding", "refcount", "idletime", "freq", "help"]
        .iter()
        .find(|s| is(sub, s));
    let Some(name) = known else {
        return Err(super::error::unknown_subcommand(sub, "object"));
    };
    if args.len() != 3 || *name == "help" {
        return Err(CmdError::msg(format!(
            "ERR wrong number of arguments for 'object|{name}' command"
        )));
    }
    let Some(e) = keys.get(args[2])? else {
        ctx.out.null();
        return Ok(());
    };
    if is(sub, "encoding") {
        ctx.out.bulk_str(e.value.encoding());
    } else if is(sub, "refcount") {
        ctx.out.int(1);
    } else if is(sub, "idletime") {
        // No access clock is kept per key.
        ctx.out.int(0);
    } else {
        return Err(CmdError::Static(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ));
    }
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
    let (mut pattern, mut count, mut type_filter) = (None, 10usize, None);
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
            type_filter = Some(opts.value()?);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut found: Vec<Box<[u8]>> = Vec::new();
    let next = keys.scan(cursor, count, |k, e| {
        if type_filter.is_none_or(|t| is(t, e.value.type_name())) && pattern.is_none_or(|p| glob::matches(p, k, false))
        {
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
    if !keys.contains(from)? {
        return Err(CmdError::NoSuchKey);
    }
    if from == to {
        return Ok(!nx);
    }
    if nx && keys.contains(to)? {
        return Ok(false);
    }
    // Moved, not copied: a container is not duplicated on the way.
    let Some(entry) = keys.remove(from)? else {
        unreachable!("checked above")
    };
    let deadline = entry.deadline();
    keys.place(to)?.set_value(entry.value, deadline);
    // A list renamed onto a key clients are blocked on serves them.
    crate::coord::lists::signal_ready(keys, to);
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
