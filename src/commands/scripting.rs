//! EVAL/EVALSHA/EVAL_RO/EVALSHA_RO/SCRIPT.
//!
//! A script is recognised by the SHA1 of its text (EVAL, SCRIPT LOAD) or by
//! the SHA itself (EVALSHA) and, when the catalogue knows it, run as the
//! native operation it maps it to, without Lua. Every catalogued SHA is
//! built in: EVALSHA works without a prior SCRIPT LOAD, SCRIPT EXISTS
//! answers 1, SCRIPT FLUSH cannot remove them. Any other script runs on
//! the embedded Lua ([`super::lua`]) with `--lua yes`, and is refused with
//! a clear error with `--lua no`.

use super::args::{int, is};
use super::error::{OOM, unknown_subcommand};
use super::ttl::{ExpireArg, Form, pttl_of, rounded_secs};
use super::{CmdError, CmdResult, Ctx, lua};
use crate::config::Settings;
use crate::lockstats::{LockStats, Release};
use crate::memory;
use crate::protocol::ReplyBuf;
use crate::scripts::catalogue::{AddMode, Arg, NumKeys, Op, Owner, ReleaseReply, Reply, Script, Ttl};
use crate::scripts::{self, sha1_hex};
use crate::store::{Deadline, Locked, NO_DEADLINE};

/// An uncatalogued script with `--lua no`.
fn unsupported(sha: &str) -> CmdError {
    CmdError::msg(format!(
        "ERR unsupported script (sha1 {sha}): redlockd runs with --lua no; use DELEX/DELIFEQ/SET IFEQ or LOCK.*"
    ))
}

const NOSCRIPT: CmdError = CmdError::Static("NOSCRIPT No matching script. Please use EVAL.");

/// Whether a script may write (EVAL, EVALSHA) or not (EVAL_RO, EVALSHA_RO).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

pub fn eval(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    eval_text(ctx, keys, args, Access::ReadWrite)
}

pub fn eval_ro(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    eval_text(ctx, keys, args, Access::ReadOnly)
}

pub fn evalsha(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    eval_sha(ctx, keys, args, Access::ReadWrite)
}

pub fn evalsha_ro(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    eval_sha(ctx, keys, args, Access::ReadOnly)
}

/// EVAL and EVAL_RO: hash the text, then run what it is known as.
fn eval_text(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], access: Access) -> CmdResult {
    let sha = sha1_hex(args[1]);
    match scripts::lookup(sha.as_bytes()) {
        Some(script) => run_script(ctx, keys, script, args, access),
        None if ctx.shared.lua.enabled() => {
            let source = lua::Source::Text {
                body: args[1],
                sha: &sha,
            };
            lua::eval(ctx, keys, source, args, access == Access::ReadOnly)
        }
        None => Err(unsupported(&sha)),
    }
}

/// EVALSHA and EVALSHA_RO.
fn eval_sha(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], access: Access) -> CmdResult {
    match scripts::lookup(args[1]) {
        Some(script) => run_script(ctx, keys, script, args, access),
        None if ctx.shared.lua.enabled() => {
            lua::eval(ctx, keys, lua::Source::Sha(args[1]), args, access == Access::ReadOnly)
        }
        None => Err(NOSCRIPT),
    }
}

/// `SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP`
pub fn script(ctx: &mut Ctx<'_>, _: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let sub = args[1];
    if is(sub, "load") && args.len() == 3 {
        let sha = sha1_hex(args[2]);
        if scripts::lookup(sha.as_bytes()).is_none() {
            if !ctx.shared.lua.enabled() {
                return Err(unsupported(&sha));
            }
            ctx.shared.lua.load(args[2], &sha)?;
        }
        ctx.out.bulk(sha.as_bytes());
    } else if is(sub, "exists") && args.len() >= 3 {
        ctx.out.array(args.len() - 2);
        for sha in &args[2..] {
            ctx.out
                .int((scripts::lookup(sha).is_some() || ctx.shared.lua.exists(sha)) as i64);
        }
    } else if is(sub, "flush") && args.len() <= 3 {
        if args.len() == 3 && !is(args[2], "async") && !is(args[2], "sync") {
            return Err(CmdError::Static("ERR SCRIPT FLUSH only support SYNC|ASYNC option"));
        }
        // Built-in scripts cannot be forgotten; Lua's cache is emptied at
        // once either way (nothing of it outlives the call to free later).
        ctx.shared.lua.flush();
        ctx.out.ok();
    } else if is(sub, "kill") && args.len() == 2 {
        ctx.shared.lua.kill()?;
        ctx.out.ok();
    } else if is(sub, "help") && args.len() == 2 {
        let help = [
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache (built-in lock scripts always remain).",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "HELP",
            "    Print this help.",
        ];
        ctx.help(&help);
    } else {
        return Err(unknown_subcommand(sub, "script"));
    }
    Ok(())
}

/// The KEYS and ARGV of one invocation.
struct Invocation<'a, 'b> {
    keys: &'b [&'a [u8]],
    argv: &'b [&'a [u8]],
    /// Memory was past maxmemory when the script started.
    past_maxmemory: bool,
    /// Where grants and releases are counted, and the connection's database.
    locks: &'b LockStats,
    db: usize,
}

impl<'a> Invocation<'a, '_> {
    fn acquired(&self, key: &[u8], token: &[u8], now: u64) {
        self.locks.acquired(self.db, key, token, now);
    }

    fn released(&self, key: &[u8], token: &[u8], how: Release, now: u64) {
        self.locks.released(self.db, key, token, how, now);
    }

    fn get(&self, arg: Arg) -> &'a [u8] {
        match arg {
            Arg::A(i) => self.argv.get(i - 1).copied().unwrap_or(b""),
            Arg::K(i) => self.keys.get(i - 1).copied().unwrap_or(b""),
        }
    }

    /// Call before a script's SET. Redis 7 runs a script without a shebang
    /// until its first write; if that is a command that may grow memory and
    /// memory was past maxmemory when the script started, the script fails
    /// there (so releases and PEXPIRE extends go on). In every operation
    /// here a SET is the first write.
    fn may_grow(&self) -> CmdResult {
        if self.past_maxmemory {
            return Err(CmdError::Static(OOM));
        }
        Ok(())
    }
}

fn run_script(
    ctx: &mut Ctx<'_>,
    keys: &mut Locked<'_>,
    script: &'static Script,
    args: &[&[u8]],
    access: Access,
) -> CmdResult {
    // Checked again here (cheap): a handler must not trust its caller with slicing.
    let numkeys = super::key_positions(&super::table::KeySpec::NumKeys { at: 2, first: 3 }, args)?.len();
    let inv = Invocation {
        keys: &args[3..3 + numkeys],
        argv: &args[3 + numkeys..],
        past_maxmemory: memory::over(Settings::get(&ctx.shared.settings.maxmemory)),
        locks: &ctx.shared.locks,
        db: ctx.client.db,
    };
    let keys_ok = match script.numkeys {
        NumKeys::Exactly(n) => numkeys == n,
        NumKeys::AtLeastOne => numkeys >= 1,
    };
    if !keys_ok || inv.argv.len() < script.min_argv {
        return Err(CmdError::msg(format!(
            "ERR script {} ({} {}) was called with {} keys and {} arguments, which it does not take",
            script.sha,
            script.library,
            script.operation,
            numkeys,
            inv.argv.len()
        )));
    }
    if access == Access::ReadOnly && script.op.writes() {
        return Err(CmdError::Static(
            "ERR Write commands are not allowed from read-only scripts.",
        ));
    }
    if script.op.grants() {
        ctx.check_grants_allowed()?;
    }
    if let Some(db_arg) = script.select_db {
        // pcall(SELECT n): an invalid index is swallowed; another valid
        // database would need a second keyspace lock, which we do not take.
        if let Ok(db) = int(inv.get(db_arg))
            && db >= 0
            && (db as usize) < ctx.shared.keyspace.dbs.len()
            && db as usize != ctx.client.db
        {
            return Err(CmdError::Static(
                "ERR redlockd runs this script only on the connection's selected database",
            ));
        }
    }
    let result = run_op(ctx.out, keys, script, &inv);
    if script.op.grants() && matches!(result, Err(CmdError::Static(OOM))) {
        ctx.shared.locks.refused();
    }
    result
}

fn reply(out: &mut ReplyBuf, r: Reply) -> CmdResult {
    match r {
        Reply::Ok => out.ok(),
        Reply::Int(n) => out.int(n),
        Reply::Nil => out.null(),
        Reply::Bulk(s) => out.bulk_str(s),
        Reply::Error(e) => return Err(CmdError::Static(e)),
    }
    Ok(())
}

/// A TTL argument in ms for `SET ... PX`, with SET's validation and error.
fn px_deadline(now: u64, ttl: &[u8]) -> Result<Deadline, CmdError> {
    match ExpireArg::set_style(Form::Px, ttl) {
        Ok(t) => Ok(t.deadline(now)),
        Err(CmdError::InvalidExpire) => Err(CmdError::Static("ERR invalid expire time in 'set' command")),
        Err(e) => Err(e),
    }
}

/// Apply `how` to an existing key: PEXPIRE/EXPIRE (a due time deletes) or SET PX.
fn apply_ttl(keys: &mut Locked<'_>, key: &[u8], token: &[u8], ttl: &[u8], how: Ttl) -> CmdResult {
    let form = match how {
        Ttl::SetPx => {
            let d = px_deadline(keys.now, ttl)?;
            keys.set(key, token, d)?;
            return Ok(());
        }
        Ttl::Pexpire => Form::Px,
        Ttl::Expire => Form::Ex,
    };
    expire_key(keys, key, ExpireArg::expire_style(form, ttl)?)
}

/// Give an existing key the deadline of `when`, or delete it if that has come.
fn expire_key(keys: &mut Locked<'_>, key: &[u8], when: ExpireArg) -> CmdResult {
    let d = when.deadline(keys.now);
    if d <= keys.now {
        keys.remove(key)?;
    } else {
        keys.set_deadline(key, d)?;
    }
    Ok(())
}

fn value_of<'l>(keys: &'l mut Locked<'_>, key: &[u8]) -> Result<Option<&'l [u8]>, CmdError> {
    Ok(keys.get(key)?.map(|e| &*e.value))
}

fn owns(keys: &mut Locked<'_>, key: &[u8], token: &[u8]) -> Result<bool, CmdError> {
    Ok(value_of(keys, key)? == Some(token))
}

/// GETRANGE key 0 len-1 == string.sub(token, 1, len), as bsm/redislock checks.
fn prefix_owned(value: Option<&[u8]>, token: &[u8], len: i64) -> bool {
    let cut = |s: &[u8]| -> Vec<u8> {
        let end = if len <= 0 {
            (s.len() as i64 + len - 1).max(0) as usize
        } else {
            (len as usize).min(s.len())
        };
        s[..end.min(s.len())].to_vec()
    };
    cut(value.unwrap_or(b"")) == cut(token)
}

fn run_op(out: &mut ReplyBuf, keys: &mut Locked<'_>, script: &Script, inv: &Invocation<'_, '_>) -> CmdResult {
    let k1 = inv.keys.first().copied().unwrap_or(b"");
    let now = keys.now;
    match script.op {
        Op::Release { owner, reply: how } => {
            let place = keys.place(k1)?;
            let current = place.entry().map(|e| &*e.value);
            let present = current.is_some();
            let mine = match owner {
                Some(o) => current == Some(inv.get(o)),
                None => present,
            };
            let removed = if mine { place.remove() } else { None };
            let token = owner.map_or_else(|| removed.as_ref().map_or(&b""[..], |e| &e.value), |o| inv.get(o));
            inv.released(k1, token, release_outcome(mine, present), now);
            match how {
                ReleaseReply::Count => out.int(mine as i64),
                ReleaseReply::MissingMinusOne => out.int(if mine {
                    1
                } else if !present {
                    -1
                } else {
                    0
                }),
                ReleaseReply::AioRedlock if mine => out.int(1),
                ReleaseReply::AioRedlock if !present => out.ok(),
                ReleaseReply::AioRedlock => return Err(CmdError::Static("ERR ERROR")),
                ReleaseReply::TrueOrNil if mine => out.int(1),
                ReleaseReply::TrueOrNil | ReleaseReply::AlwaysNil => out.null(),
            }
        }
        Op::Extend {
            owner,
            ttl,
            how,
            done,
            refused,
            add_mode,
        } => {
            let token = inv.get(owner);
            let key = k1;
            let Some(entry) = keys.get(key)? else {
                return reply(out, refused);
            };
            if *entry.value != *token {
                return reply(out, refused);
            }
            let pttl = pttl_of(entry, now);
            match add_mode {
                None => {
                    if how == Ttl::SetPx {
                        inv.may_grow()?;
                    }
                    apply_ttl(keys, key, token, inv.get(ttl), how)?
                }
                Some(mode) => {
                    if pttl < 0 {
                        return reply(out, refused);
                    }
                    let add = match mode {
                        AddMode::Always => true,
                        AddMode::Flag(f) => inv.get(f) == b"0",
                    };
                    let ms = int(inv.get(ttl))?;
                    let total = if add {
                        pttl.checked_add(ms).ok_or(CmdError::InvalidExpire)?
                    } else {
                        ms
                    };
                    expire_key(keys, key, ExpireArg::expire_in_ms(total)?)?;
                }
            }
            reply(out, done)?;
        }
        Op::AcquireOrRenew {
            owner,
            ttl,
            when_free,
            free_gate,
            when_owned,
            refused,
        } => {
            let ttl_arg = inv.get(ttl);
            let (token, owned_now) = match owner {
                Owner::Exact(t) => {
                    let token = inv.get(t);
                    (token, owns(keys, k1, token)?)
                }
                Owner::Prefix { token, len } => {
                    let token = inv.get(token);
                    let len = int(inv.get(len))?;
                    let value = value_of(keys, k1)?;
                    (token, value.is_some() && prefix_owned(value, token, len))
                }
            };
            let free = !keys.contains(k1)?;
            let gate_open = free_gate.is_none_or(|g| inv.get(g) == b"yes");
            if free
                && gate_open
                && let Some(r) = when_free
            {
                inv.may_grow()?;
                // An empty TTL means none (redis-py 2.10's LuaLock without timeout).
                let d = if ttl_arg.is_empty() {
                    NO_DEADLINE
                } else {
                    px_deadline(now, ttl_arg)?
                };
                keys.set(k1, token, d)?;
                inv.acquired(k1, token, now);
                return reply(out, r);
            }
            // Without a grant for a free key, the script only renews: no acquire.
            let acquire = when_free.is_some();
            match when_owned {
                Some((how, r)) if owned_now => {
                    if how == Ttl::SetPx {
                        inv.may_grow()?;
                    }
                    apply_ttl(keys, k1, token, ttl_arg, how)?;
                    if acquire {
                        inv.acquired(k1, token, now);
                    }
                    reply(out, r)?;
                }
                _ => {
                    if acquire {
                        inv.locks.busy();
                    }
                    reply(out, refused)?
                }
            }
        }
        Op::MultiAcquire { value, ttl } => {
            for k in inv.keys {
                if keys.contains(k)? {
                    inv.locks.busy();
                    out.int(0);
                    return Ok(());
                }
            }
            inv.may_grow()?;
            let d = px_deadline(now, inv.get(ttl))?;
            for k in inv.keys {
                keys.set(k, inv.get(value), d)?;
                inv.acquired(k, inv.get(value), now);
            }
            out.int(inv.keys.len() as i64);
        }
        Op::MultiExtend { value, ttl } => {
            let token = inv.get(value);
            for k in inv.keys {
                if !owns(keys, k, token)? {
                    out.int(0);
                    return Ok(());
                }
            }
            inv.may_grow()?;
            let d = px_deadline(now, inv.get(ttl))?;
            for k in inv.keys {
                keys.set(k, token, d)?;
            }
            out.int(inv.keys.len() as i64);
        }
        Op::MultiRelease { value } => {
            let token = inv.get(value);
            let mut n = 0;
            for k in inv.keys {
                let current = value_of(keys, k)?;
                let (present, mine) = (current.is_some(), current == Some(token));
                if mine {
                    keys.remove(k)?;
                    n += 1;
                }
                inv.released(k, token, release_outcome(mine, present), now);
            }
            out.int(n);
        }
        Op::BsmObtain { value, len, ttl } => {
            // Its script starts with MSETNX, whatever the keys hold.
            inv.may_grow()?;
            let token = inv.get(value);
            let len = int(inv.get(len))?;
            let mut all_free = true;
            for k in inv.keys {
                all_free &= !keys.contains(k)?;
            }
            if !all_free {
                for k in inv.keys {
                    let v = value_of(keys, k)?;
                    if !prefix_owned(v, token, len) {
                        inv.locks.busy();
                        out.null();
                        return Ok(());
                    }
                }
            }
            let when = ExpireArg::expire_style(Form::Px, inv.get(ttl))?;
            for k in inv.keys {
                keys.set(k, token, NO_DEADLINE)?;
                inv.acquired(k, token, now);
            }
            for k in inv.keys {
                expire_key(keys, k, when)?;
            }
            out.ok();
        }
        Op::BsmRelease { value } | Op::BsmRefresh { value, .. } | Op::BsmTtl { value } => {
            let token = inv.get(value);
            for k in inv.keys {
                let current = value_of(keys, k)?;
                if current != Some(token) {
                    if matches!(script.op, Op::BsmRelease { .. }) {
                        inv.released(k, token, release_outcome(false, current.is_some()), now);
                    }
                    out.null();
                    return Ok(());
                }
            }
            match script.op {
                Op::BsmRelease { .. } => {
                    for k in inv.keys {
                        keys.remove(k)?;
                        inv.released(k, token, Release::Released, now);
                    }
                    out.ok();
                }
                Op::BsmRefresh { ttl, .. } => {
                    for k in inv.keys {
                        apply_ttl(keys, k, token, inv.get(ttl), Ttl::Pexpire)?;
                    }
                    out.ok();
                }
                _ => {
                    let mut min = 0;
                    for k in inv.keys {
                        if let Some(e) = keys.get(k)? {
                            let p = pttl_of(e, now);
                            if p > 0 && (min == 0 || p < min) {
                                min = p;
                            }
                        }
                    }
                    out.int(min);
                }
            }
        }
        Op::OwnerTtl {
            owner,
            seconds,
            clamp_to_zero,
            refused,
        } => {
            let token = inv.get(owner);
            let Some(e) = keys.get(k1)? else {
                return reply(out, refused);
            };
            if *e.value != *token {
                return reply(out, refused);
            }
            let ms = pttl_of(e, now);
            let v = if seconds && ms >= 0 { rounded_secs(ms) } else { ms };
            out.int(if clamp_to_zero { v.max(0) } else { v });
        }
        Op::ValueAndPttl => {
            out.array(2);
            match keys.get(k1)? {
                Some(e) => {
                    out.bulk(&e.value);
                    out.int(pttl_of(e, now));
                }
                None => {
                    out.null();
                    out.int(-2);
                }
            }
        }
        Op::NextId { missing_is_error } => {
            let lua_error = || {
                CmdError::msg(format!(
                    "ERR user_script:1: attempt to compare nil with number script: {}, on @user_script:1.",
                    script.sha
                ))
            };
            let candidate = lua_number(inv.get(Arg::A(1))).ok_or_else(lua_error)?;
            let current = value_of(keys, k1)?.and_then(lua_number);
            let raise = match current {
                None if missing_is_error => return Err(lua_error()),
                None => true,
                Some(c) => c < candidate,
            };
            if raise {
                inv.may_grow()?;
                let text = format_lua_number(candidate);
                keys.set(k1, text.as_bytes(), NO_DEADLINE)?;
                out.int(candidate as i64);
            } else {
                out.null();
            }
        }
    }
    Ok(())
}

/// How a release attempt ended: it deleted the key (`mine`), or found it
/// held by another token, or found nothing.
fn release_outcome(mine: bool, present: bool) -> Release {
    match (mine, present) {
        (true, _) => Release::Released,
        (false, true) => Release::NotOwner,
        (false, false) => Release::Missing,
    }
}

/// Lua's tonumber for the decimal strings lock scripts see.
fn lua_number(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Lua 5.1's number-to-string ("%.14g") for the integers NextID stores.
fn format_lua_number(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}
