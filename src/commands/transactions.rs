//! MULTI/EXEC/DISCARD/WATCH/UNWATCH.
//!
//! EXEC runs the queued commands with every shard of the current database
//! locked, so no other client's command interleaves with them (Redis's
//! guarantee). WATCH is optimistic: any write to a watched key by anyone
//! marks the watcher, and its EXEC then replies with a null array.

use std::sync::atomic::Ordering;

use super::table::COMMANDS;
use super::{CmdError, CmdResult, Ctx, borrow_args, run_locked};
use crate::store::Locked;

pub fn multi(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static("ERR MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.out.ok();
    Ok(())
}

pub fn discard(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.take().is_none() {
        return Err(CmdError::Static("ERR DISCARD without MULTI"));
    }
    ctx.client.multi_error = false;
    unwatch_all(ctx);
    ctx.out.ok();
    Ok(())
}

pub fn exec(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    let Some(queue) = ctx.client.multi.take() else {
        return Err(CmdError::Static("ERR EXEC without MULTI"));
    };
    let aborted = std::mem::take(&mut ctx.client.multi_error);
    let dirty = ctx.client.dirty.load(Ordering::SeqCst);
    unwatch_all(ctx);
    if aborted {
        return Err(CmdError::Static(
            "EXECABORT Transaction discarded because of previous errors.",
        ));
    }
    if dirty {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(queue.len());
    let keyspace = ctx.shared.keyspace.clone();
    let now = keyspace.clock.now_us();
    let mut db = ctx.client.db;
    let mut locked = keyspace.dbs[db].lock_all(now);
    ctx.client.in_exec = true;
    for q in &queue {
        let spec = &COMMANDS[q.index];
        let args = borrow_args(&q.args);
        run_locked(ctx, q.index, spec, &mut locked, &args);
        if ctx.client.db != db {
            // SELECT inside the transaction: continue on the other database.
            drop(locked);
            db = ctx.client.db;
            locked = keyspace.dbs[db].lock_all(now);
        }
    }
    ctx.client.in_exec = false;
    Ok(())
}

pub fn watch(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(CmdError::Static("ERR WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    for key in &args[1..] {
        if !ctx.client.watched.iter().any(|(d, k)| *d == db && **k == **key) {
            ctx.shared.watches.watch(db, key, &ctx.client.dirty);
            ctx.client.watched.push((db, (*key).into()));
        }
    }
    ctx.out.ok();
    Ok(())
}

pub fn unwatch(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, _: &[&[u8]]) -> CmdResult {
    unwatch_all(ctx);
    ctx.out.ok();
    Ok(())
}

/// Forget every watched key of this client and clear its dirty flag.
pub fn unwatch_all(ctx: &mut Ctx<'_>) {
    for (db, key) in ctx.client.watched.drain(..) {
        ctx.shared.watches.unwatch(db, &key, &ctx.client.dirty);
    }
    ctx.client.dirty.store(false, Ordering::SeqCst);
}
