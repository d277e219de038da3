//! Sorted-set commands (ZADD, ZRANGE and its variants, ZPOPMIN, the STORE
//! commands, ZSCAN, ...), Redis 7.0's semantics and texts. A sorted set is
//! a [`crate::store::types::ZSet`]; scores reply as Redis 7.0 prints
//! doubles (`%.17g`, [`crate::protocol::ReplyBuf::double`]).

use super::args::{Cursor, int, is, parse_float};
use super::containers::{ScanOptions, empty_scan, parse_cursor, positive_count, read, scan_reply, write};
use super::lists::clamp_range;
use super::{CmdError, CmdResult, Ctx};
use crate::store::types::{Container, ZSet};
use crate::store::{Locked, NO_DEADLINE, SmallBytes};

const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";

/// A score argument (`strtod`: no NaN).
fn score_arg(arg: &[u8]) -> Result<f64, CmdError> {
    parse_float(arg).ok_or(CmdError::NotFloat)
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`
pub fn zadd(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, false);
    let mut at = 2;
    while at < args.len() {
        let a = args[at];
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if is(a, "gt") {
            gt = true;
        } else if is(a, "lt") {
            lt = true;
        } else if is(a, "ch") {
            ch = true;
        } else if is(a, "incr") {
            incr = true;
        } else {
            break;
        }
        at += 1;
    }
    let elements = args.len() - at;
    if elements == 0 || !elements.is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::Static(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (gt || lt) && nx || (gt && lt) {
        return Err(CmdError::Static(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && elements > 2 {
        return Err(CmdError::Static(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let pairs: Vec<(f64, &[u8])> = args[at..]
        .chunks_exact(2)
        .map(|p| Ok((score_arg(p[0])?, p[1])))
        .collect::<Result<_, CmdError>>()?;
    // (added, updated, the INCR result: None when the condition refused it)
    let result = write(keys, args[1], !xx, |z: &mut ZSet| {
        let (mut added, mut updated, mut last) = (0, 0, None);
        for &(score, member) in &pairs {
            let current = z.score(member);
            let new = match current {
                Some(cur) => {
                    if nx {
                        last = None;
                        continue;
                    }
                    let new = if incr { cur + score } else { score };
                    if new.is_nan() {
                        return Err(CmdError::Static(NAN_SCORE));
                    }
                    if (lt && new >= cur) || (gt && new <= cur) {
                        last = None;
                        continue;
                    }
                    if new != cur {
                        z.insert(member, new);
                        updated += 1;
                    }
                    new
                }
                None => {
                    if xx {
                        last = None;
                        continue;
                    }
                    z.insert(member, score);
                    added += 1;
                    score
                }
            };
            last = Some(new);
        }
        Ok((added, updated, last))
    })?;
    let (added, updated, last) = result.unwrap_or((0, 0, None));
    if incr {
        match last {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    } else {
        ctx.out.int(added + if ch { updated } else { 0 });
    }
    Ok(())
}

/// `ZINCRBY key increment member` → the new score.
pub fn zincrby(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let delta = score_arg(args[2])?;
    let score = write(keys, args[1], true, |z: &mut ZSet| {
        let new = z.score(args[3]).unwrap_or(0.0) + delta;
        if new.is_nan() {
            return Err(CmdError::Static(NAN_SCORE));
        }
        z.insert(args[3], new);
        Ok(new)
    })?;
    ctx.out.double(score.unwrap_or(0.0));
    Ok(())
}

pub fn zrem(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = write(keys, args[1], false, |z: &mut ZSet| {
        Ok(args[2..].iter().filter(|m| z.remove(m).is_some()).count())
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn zscore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    match read::<ZSet>(keys, args[1])?.and_then(|z| z.score(args[2])) {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

pub fn zmscore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let z = read::<ZSet>(keys, args[1])?;
    ctx.out.array(args.len() - 2);
    for m in &args[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

pub fn zcard(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = read::<ZSet>(keys, args[1])?.map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub fn zrank(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    rank_reply(ctx, keys, args, false)
}

pub fn zrevrank(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    rank_reply(ctx, keys, args, true)
}

fn rank_reply(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], rev: bool) -> CmdResult {
    let rank = read::<ZSet>(keys, args[1])?.and_then(|z| Some((z.rank(args[2])?, z.len())));
    match rank {
        Some((r, len)) => ctx.out.int(if rev { len - 1 - r } else { r } as i64),
        None => ctx.out.null(),
    }
    Ok(())
}

/// One end of a score range: `1.5`, `(1.5` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct ScoreBound {
    value: f64,
    exclusive: bool,
}

fn score_bound(arg: &[u8]) -> Option<ScoreBound> {
    match arg.first() {
        Some(b'(') => Some(ScoreBound {
            value: strtod(&arg[1..])?,
            exclusive: true,
        }),
        _ => Some(ScoreBound {
            value: strtod(arg)?,
            exclusive: false,
        }),
    }
}

/// A range bound as Redis's zslParseRange reads it, with a bare `strtod`:
/// "" is 0, leading spaces are skipped, an overflow is ±inf; only NaN and
/// trailing garbage are refused.
fn strtod(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(arg)
        .ok()?
        .trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let value = match text.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        "" => return None,
        _ => text.parse::<f64>().ok()?,
    };
    (!value.is_nan()).then_some(value)
}

fn score_range(min: &[u8], max: &[u8]) -> Result<(ScoreBound, ScoreBound), CmdError> {
    match (score_bound(min), score_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(CmdError::Static("ERR min or max is not a float")),
    }
}

/// The ranks `[start, end)` a score range covers.
fn score_ranks(z: &ZSet, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let start = z.rank_of_score(min.value, !min.exclusive);
    let end = z.rank_of_score(max.value, max.exclusive);
    (start, end.max(start))
}

/// One end of a lex range: `[a`, `(a`, `-`, `+`.
#[derive(Clone, Copy)]
enum LexBound<'a> {
    Min,
    Max,
    Inclusive(&'a [u8]),
    Exclusive(&'a [u8]),
}

fn lex_bound(arg: &[u8]) -> Option<LexBound<'_>> {
    match arg.first()? {
        b'+' if arg.len() == 1 => Some(LexBound::Max),
        b'-' if arg.len() == 1 => Some(LexBound::Min),
        b'[' => Some(LexBound::Inclusive(&arg[1..])),
        b'(' => Some(LexBound::Exclusive(&arg[1..])),
        _ => None,
    }
}

fn lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<(LexBound<'a>, LexBound<'a>), CmdError> {
    match (lex_bound(min), lex_bound(max)) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(CmdError::Static("ERR min or max not valid string range item")),
    }
}

/// The ranks `[start, end)` a lex range covers (all scores equal).
fn lex_ranks(z: &ZSet, min: LexBound<'_>, max: LexBound<'_>) -> (usize, usize) {
    let lower = |b: LexBound<'_>| match b {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Inclusive(m) => z.rank_of_member(m, true),
        LexBound::Exclusive(m) => z.rank_of_member(m, false),
    };
    let upper = |b: LexBound<'_>| match b {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Inclusive(m) => z.rank_of_member(m, false),
        LexBound::Exclusive(m) => z.rank_of_member(m, true),
    };
    let start = lower(min);
    (start, upper(max).max(start))
}

#[derive(Clone, Copy, PartialEq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE-family request: which entries, in which direction.
struct RangeRequest {
    kind: RangeKind,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
}

/// ZRANGE and its older forms: `kind`/`rev` fixed by the command, or None
/// where ZRANGE takes them as options.
fn range_generic(
    ctx: &mut Ctx<'_>,
    keys: &mut Locked<'_>,
    args: &[&[u8]],
    kind: Option<RangeKind>,
    rev: Option<bool>,
) -> CmdResult {
    let mut req = RangeRequest {
        kind: kind.unwrap_or(RangeKind::Rank),
        rev: rev.unwrap_or(false),
        withscores: false,
        offset: 0,
        limit: -1,
    };
    let (mut kind_set, mut rev_set) = (kind.is_some(), rev.is_some());
    let mut c = Cursor::new(args, 4);
    while let Some(opt) = c.next() {
        let left = args.len() - c.position();
        if is(opt, "withscores") {
            req.withscores = true;
        } else if is(opt, "limit") && left >= 2 {
            req.offset = int(c.value()?)?;
            req.limit = int(c.value()?)?;
        } else if !rev_set && is(opt, "rev") {
            req.rev = true;
            rev_set = true;
        } else if !kind_set && is(opt, "bylex") {
            req.kind = RangeKind::Lex;
            kind_set = true;
        } else if !kind_set && is(opt, "byscore") {
            req.kind = RangeKind::Score;
            kind_set = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if (req.limit != -1 || req.offset != 0) && req.kind == RangeKind::Rank {
        return Err(CmdError::Static(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if req.withscores && req.kind == RangeKind::Lex {
        return Err(CmdError::Static(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // BYSCORE and BYLEX with REV take the range as max, min.
    let (lo, hi) = if req.rev && req.kind != RangeKind::Rank {
        (args[3], args[2])
    } else {
        (args[2], args[3])
    };
    enum Parsed<'a> {
        Rank(i64, i64),
        Score(ScoreBound, ScoreBound),
        Lex(LexBound<'a>, LexBound<'a>),
    }
    let parsed = match req.kind {
        RangeKind::Rank => Parsed::Rank(int(lo)?, int(hi)?),
        RangeKind::Score => {
            let (a, b) = score_range(lo, hi)?;
            Parsed::Score(a, b)
        }
        RangeKind::Lex => {
            let (a, b) = lex_range(lo, hi)?;
            Parsed::Lex(a, b)
        }
    };
    let Some(z) = read::<ZSet>(keys, args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    let len = z.len();
    // The ranks selected, ascending, before REV and LIMIT.
    let (start, end) = match parsed {
        Parsed::Rank(a, b) => {
            // Rank ranges count from the end under REV.
            match clamp_range(a, b, len) {
                None => (0, 0),
                Some((a, b)) if req.rev => (len - 1 - b, len - a),
                Some((a, b)) => (a, b + 1),
            }
        }
        Parsed::Score(a, b) => score_ranks(z, a, b),
        Parsed::Lex(a, b) => lex_ranks(z, a, b),
    };
    let entries = &z.entries()[start..end];
    let mut picked: Box<dyn Iterator<Item = &(f64, SmallBytes)>> = if req.rev {
        Box::new(entries.iter().rev())
    } else {
        Box::new(entries.iter())
    };
    let mut n = entries.len();
    if req.kind != RangeKind::Rank {
        // A negative offset selects nothing, a negative limit everything left.
        if req.offset < 0 {
            n = 0;
        } else {
            let skip = (req.offset as u64).min(n as u64) as usize;
            picked = Box::new(picked.skip(skip));
            n -= skip;
        }
        if req.limit >= 0 {
            n = n.min(req.limit as usize);
        }
    }
    emit(ctx, picked.take(n), n, req.withscores);
    Ok(())
}

/// Reply with `n` entries: members, or with scores (RESP2 flat; RESP3
/// `[member, score]` pairs).
fn emit<'a>(ctx: &mut Ctx<'_>, entries: impl Iterator<Item = &'a (f64, SmallBytes)>, n: usize, withscores: bool) {
    let resp3 = ctx.out.resp3;
    ctx.out.array(if withscores && !resp3 { 2 * n } else { n });
    for (s, m) in entries {
        if withscores && resp3 {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        if withscores {
            ctx.out.double(*s);
        }
    }
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
pub fn zrange(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, keys, args, None, None)
}

pub fn zrevrange(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, keys, args, Some(RangeKind::Rank), Some(true))
}

pub fn zrangebyscore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, keys, args, Some(RangeKind::Score), Some(false))
}

pub fn zrevrangebyscore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, keys, args, Some(RangeKind::Score), Some(true))
}

pub fn zrangebylex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, keys, args, Some(RangeKind::Lex), Some(false))
}

pub fn zrevrangebylex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    range_generic(ctx, keys, args, Some(RangeKind::Lex), Some(true))
}

/// `ZCOUNT key min max`
pub fn zcount(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (min, max) = score_range(args[2], args[3])?;
    let n = read::<ZSet>(keys, args[1])?.map_or(0, |z| {
        let (a, b) = score_ranks(z, min, max);
        b - a
    });
    ctx.out.int(n as i64);
    Ok(())
}

/// `ZLEXCOUNT key min max`
pub fn zlexcount(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (min, max) = lex_range(args[2], args[3])?;
    let n = read::<ZSet>(keys, args[1])?.map_or(0, |z| {
        let (a, b) = lex_ranks(z, min, max);
        b - a
    });
    ctx.out.int(n as i64);
    Ok(())
}

/// Remove the entries at ranks `[a, b)` that `select` picks; reply how many.
fn remove_range(
    ctx: &mut Ctx<'_>,
    keys: &mut Locked<'_>,
    key: &[u8],
    select: impl FnOnce(&ZSet) -> (usize, usize),
) -> CmdResult {
    let n = write(keys, key, false, |z: &mut ZSet| {
        let (a, b) = select(z);
        Ok(z.remove_ranks(a..b))
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

pub fn zremrangebyscore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (min, max) = score_range(args[2], args[3])?;
    remove_range(ctx, keys, args[1], |z| score_ranks(z, min, max))
}

pub fn zremrangebylex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (min, max) = lex_range(args[2], args[3])?;
    remove_range(ctx, keys, args[1], |z| lex_ranks(z, min, max))
}

pub fn zremrangebyrank(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int(args[2])?, int(args[3])?);
    remove_range(ctx, keys, args[1], |z| match clamp_range(start, stop, z.len()) {
        Some((a, b)) => (a, b + 1),
        None => (0, 0),
    })
}

pub fn zpopmin(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    pop_reply(ctx, keys, args, false)
}

pub fn zpopmax(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    pop_reply(ctx, keys, args, true)
}

/// Pop up to `count` entries, lowest (or with `max`, highest) first; None
/// if there is no such sorted set. For BZPOPMIN/BZPOPMAX too, once a
/// blocking layer calls it.
pub fn pop(
    keys: &mut Locked<'_>,
    key: &[u8],
    max: bool,
    count: usize,
) -> Result<Option<Vec<(SmallBytes, f64)>>, CmdError> {
    write(keys, key, false, |z: &mut ZSet| {
        let n = count.min(z.len());
        let range = if max { z.len() - n..z.len() } else { 0..n };
        let mut popped: Vec<(SmallBytes, f64)> = z.entries()[range.clone()]
            .iter()
            .map(|(s, m)| (m.clone(), *s))
            .collect();
        if max {
            popped.reverse();
        }
        z.remove_ranks(range);
        Ok(popped)
    })
}

/// `ZPOPMIN key [count]`: RESP2 a flat member, score list; RESP3 a
/// `[member, score]` pair per entry when a count is given.
fn pop_reply(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = args.get(2).map(|c| positive_count(c)).transpose()?;
    let popped = pop(keys, args[1], max, count.unwrap_or(1) as usize)?.unwrap_or_default();
    let nested = ctx.out.resp3 && count.is_some();
    ctx.out.array(if nested { popped.len() } else { 2 * popped.len() });
    for (m, s) in &popped {
        if nested {
            ctx.out.array(2);
        }
        ctx.out.bulk(m);
        ctx.out.double(*s);
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            // inf + -inf is NaN: Redis makes it 0.
            Aggregate::Sum => {
                let s = a + b;
                if s.is_nan() { 0.0 } else { s }
            }
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        }
    }
}

pub fn zunionstore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    store_generic(ctx, keys, args, "zunionstore", false)
}

pub fn zinterstore(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    store_generic(ctx, keys, args, "zinterstore", true)
}

/// `Z{UNION,INTER}STORE destination numkeys key [key ...] [WEIGHTS w ...]
/// [AGGREGATE SUM|MIN|MAX]`; sets as sources count every member as 1.
fn store_generic(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], name: &str, inter: bool) -> CmdResult {
    let n = int(args[2])?;
    if n < 1 {
        return Err(CmdError::msg(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as usize > args.len() - 3 {
        return Err(CmdError::Syntax);
    }
    let n = n as usize;
    let sources = &args[3..3 + n];
    let mut weights = vec![1.0f64; n];
    let mut aggregate = Aggregate::Sum;
    let mut c = Cursor::new(args, 3 + n);
    while let Some(opt) = c.next() {
        let left = args.len() - c.position();
        if is(opt, "weights") && left >= n {
            for w in weights.iter_mut() {
                *w = parse_float(c.value()?).ok_or(CmdError::Static("ERR weight value is not a float"))?;
            }
        } else if is(opt, "aggregate") && left >= 1 {
            let a = c.value()?;
            aggregate = if is(a, "sum") {
                Aggregate::Sum
            } else if is(a, "min") {
                Aggregate::Min
            } else if is(a, "max") {
                Aggregate::Max
            } else {
                return Err(CmdError::Syntax);
            };
        } else {
            return Err(CmdError::Syntax);
        }
    }
    // Every source read (and type-checked) before the destination changes.
    let mut inputs: Vec<Vec<(SmallBytes, f64)>> = Vec::with_capacity(n);
    for key in sources {
        let entries = match keys.get(key)? {
            None => Vec::new(),
            Some(e) => match &e.value {
                crate::store::Value::ZSet(z) => z.entries().iter().map(|(s, m)| (m.clone(), *s)).collect(),
                crate::store::Value::Set(s) => s.iter().map(|m| (m.to_bytes(), 1.0)).collect(),
                _ => return Err(CmdError::WrongType),
            },
        };
        inputs.push(entries);
    }
    let weighted = |s: f64, w: f64| {
        let v = s * w;
        if v.is_nan() { 0.0 } else { v }
    };
    let mut result = ZSet::default();
    if inter {
        // Smallest source first, as Redis: fewer lookups.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| inputs[i].len());
        let lookup: Vec<std::collections::HashMap<&[u8], f64>> = inputs
            .iter()
            .map(|v| v.iter().map(|(m, s)| (&m[..], *s)).collect())
            .collect();
        for (m, s) in &inputs[order[0]] {
            let mut score = weighted(*s, weights[order[0]]);
            let mut everywhere = true;
            for &j in &order[1..] {
                match lookup[j].get(&m[..]) {
                    Some(&o) => score = aggregate.apply(score, weighted(o, weights[j])),
                    None => {
                        everywhere = false;
                        break;
                    }
                }
            }
            if everywhere {
                result.insert(m, score);
            }
        }
    } else {
        // Smallest source first, as Redis (it decides how scores add up).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| inputs[i].len());
        for i in order {
            for (m, s) in &inputs[i] {
                let w = weighted(*s, weights[i]);
                let score = match result.score(m) {
                    Some(cur) => aggregate.apply(cur, w),
                    None => w,
                };
                result.insert(m, score);
            }
        }
    }
    result.compact_if_small();
    let len = result.len();
    let place = keys.place(args[1])?;
    if len == 0 {
        place.remove();
    } else {
        place.set_value(result.into_value(), NO_DEADLINE);
    }
    ctx.out.int(len as i64);
    Ok(())
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`
pub fn zscan(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let cursor = parse_cursor(args[2])?;
    let Some(z) = read::<ZSet>(keys, args[1])? else {
        empty_scan(ctx);
        return Ok(());
    };
    let opts = ScanOptions::parse(args)?;
    let mut items = Vec::new();
    let next = z.scan(cursor, opts.count, |m, s| {
        if opts.matches(m) {
            items.push(m.to_vec());
            items.push(crate::protocol::reply::format_score(s).into_bytes());
        }
    });
    scan_reply(ctx, next, &items);
    Ok(())
}
