//! List commands (LPUSH, LPOP, LRANGE, LMOVE, ...), Redis 7.0's semantics
//! and texts. A list is a [`crate::store::types::List`].
//!
//! Every push goes through [`push`] and every pop through [`pop`] or
//! [`move_element`]: the blocking commands (BLPOP, BRPOP, BLMOVE,
//! BRPOPLPUSH) are these same calls, made at once or, for a client that
//! blocked, once a push made a key ready ([`crate::coord::lists`]).

use super::args::{Cursor, int, is};
use super::containers::{check_type, positive_count, read, write};
use super::{CmdError, CmdResult, Ctx};
use crate::coord::lists::ListOp;
use crate::store::types::List;
use crate::store::{Locked, SmallBytes};

/// An end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl End {
    /// `LEFT` or `RIGHT`, in any case.
    pub fn parse(arg: &[u8]) -> Result<End, CmdError> {
        if is(arg, "left") {
            Ok(End::Left)
        } else if is(arg, "right") {
            Ok(End::Right)
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// Push `items` one by one at `end` of the list at `key` (created unless
/// `only_existing`); the list's length after, or None if it did not exist
/// and `only_existing`.
pub fn push(
    keys: &mut Locked<'_>,
    key: &[u8],
    end: End,
    items: &[&[u8]],
    only_existing: bool,
) -> Result<Option<usize>, CmdError> {
    let len = write(keys, key, !only_existing, |l: &mut List| {
        for item in items {
            let item = SmallBytes::from(*item);
            match end {
                End::Left => l.push_front(item),
                End::Right => l.push_back(item),
            }
        }
        Ok(l.len())
    })?;
    if len.is_some() {
        crate::coord::lists::signal_ready(keys, key);
    }
    Ok(len)
}

/// Pop up to `count` elements from `end` of the list at `key` (deleting
/// it once empty); None if there is no such list.
pub fn pop(keys: &mut Locked<'_>, key: &[u8], end: End, count: usize) -> Result<Option<Vec<SmallBytes>>, CmdError> {
    write(keys, key, false, |l: &mut List| {
        let n = count.min(l.len());
        Ok(match end {
            End::Left => l.drain(..n).collect(),
            End::Right => (0..n).filter_map(|_| l.pop_back()).collect(),
        })
    })
}

/// LMOVE's core: pop from `from` of `src`, push at `to` of `dst`; the
/// element moved, or None if `src` is missing. A `dst` of another type is
/// refused before anything moves.
pub fn move_element(
    keys: &mut Locked<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<SmallBytes>, CmdError> {
    if read::<List>(keys, src)?.is_none() {
        return Ok(None);
    }
    if src == dst {
        // In place: a one-element list is never emptied (it keeps its TTL).
        return Ok(write(keys, src, false, |l: &mut List| {
            let item = match from {
                End::Left => l.pop_front(),
                End::Right => l.pop_back(),
            };
            if let Some(item) = &item {
                match to {
                    End::Left => l.push_front(item.clone()),
                    End::Right => l.push_back(item.clone()),
                }
            }
            Ok(item)
        })?
        .flatten());
    }
    check_type::<List>(keys, dst)?;
    let Some(mut popped) = pop(keys, src, from, 1)? else {
        return Ok(None);
    };
    let Some(item) = popped.pop() else { return Ok(None) };
    push(keys, dst, to, &[&item], false)?;
    Ok(Some(item))
}

pub fn lpush(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    push_reply(ctx, keys, args, End::Left, false)
}

pub fn rpush(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    push_reply(ctx, keys, args, End::Right, false)
}

pub fn lpushx(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    push_reply(ctx, keys, args, End::Left, true)
}

pub fn rpushx(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    push_reply(ctx, keys, args, End::Right, true)
}

fn push_reply(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], end: End, only_existing: bool) -> CmdResult {
    let len = push(keys, args[1], end, &args[2..], only_existing)?;
    ctx.out.int(len.unwrap_or(0) as i64);
    Ok(())
}

pub fn lpop(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    pop_reply(ctx, keys, args, End::Left)
}

pub fn rpop(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    pop_reply(ctx, keys, args, End::Right)
}

/// `LPOP key [count]`: an element (or nil) without a count, an array (or a
/// nil array) with one.
fn pop_reply(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::WrongArity);
    }
    let count = args.get(2).map(|c| positive_count(c)).transpose()?;
    if count == Some(0) {
        // Once the key is known to be a list (or missing), as Redis orders it.
        if read::<List>(keys, args[1])?.is_none() {
            ctx.out.null_array();
        } else {
            ctx.out.array(0);
        }
        return Ok(());
    }
    match (pop(keys, args[1], end, count.unwrap_or(1) as usize)?, count) {
        (None, None) => ctx.out.null(),
        (None, Some(_)) => ctx.out.null_array(),
        (Some(items), None) => ctx.out.bulk_or_null(items.first().map(|i| &i[..])),
        (Some(items), Some(_)) => {
            ctx.out.array(items.len());
            for i in &items {
                ctx.out.bulk(i);
            }
        }
    }
    Ok(())
}

pub fn llen(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = read::<List>(keys, args[1])?.map_or(0, |l| l.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// Redis's clamping of a `start stop` range over `len` items: the
/// inclusive index range, or None if empty.
pub fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (start + len).max(0) } else { start };
    let stop = if stop < 0 { stop + len } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

pub fn lrange(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int(args[2])?, int(args[3])?);
    let Some(l) = read::<List>(keys, args[1])? else {
        ctx.out.array(0);
        return Ok(());
    };
    match clamp_range(start, stop, l.len()) {
        None => ctx.out.array(0),
        Some((a, b)) => {
            ctx.out.array(b - a + 1);
            for i in l.range(a..=b) {
                ctx.out.bulk(i);
            }
        }
    }
    Ok(())
}

/// A list index (negative from the end) as a position, if in range.
fn position(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { index + len as i64 } else { index };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub fn lindex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let index = int(args[2])?;
    let item = read::<List>(keys, args[1])?.and_then(|l| l.get(position(index, l.len())?));
    ctx.out.bulk_or_null(item.map(|i| &i[..]));
    Ok(())
}

pub fn lset(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let index = int(args[2])?;
    let done = write(keys, args[1], false, |l: &mut List| {
        let at = position(index, l.len()).ok_or(CmdError::Static("ERR index out of range"))?;
        l[at] = args[3].into();
        Ok(())
    })?;
    done.ok_or(CmdError::NoSuchKey)?;
    ctx.out.ok();
    Ok(())
}

/// `LREM key count element`: count > 0 from the head, < 0 from the tail, 0 all.
pub fn lrem(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let count = int(args[2])?;
    let target = args[3];
    let removed = write(keys, args[1], false, |l: &mut List| {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        let mut removed = 0;
        if count >= 0 {
            let mut i = 0;
            while i < l.len() && removed < limit {
                if *l[i] == *target {
                    l.remove(i);
                    removed += 1;
                } else {
                    i += 1;
                }
            }
        } else {
            let mut i = l.len();
            while i > 0 && removed < limit {
                i -= 1;
                if *l[i] == *target {
                    l.remove(i);
                    removed += 1;
                }
            }
        }
        Ok(removed)
    })?;
    ctx.out.int(removed.unwrap_or(0) as i64);
    Ok(())
}

pub fn ltrim(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (start, stop) = (int(args[2])?, int(args[3])?);
    write(keys, args[1], false, |l: &mut List| {
        match clamp_range(start, stop, l.len()) {
            None => l.clear(),
            Some((a, b)) => {
                l.truncate(b + 1);
                l.drain(..a);
            }
        }
        Ok(())
    })?;
    ctx.out.ok();
    Ok(())
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`
pub fn lpos(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0i64);
    let mut c = Cursor::new(args, 3);
    while let Some(opt) = c.next() {
        if is(opt, "rank") {
            rank = int(c.value()?)?;
            if rank == 0 {
                return Err(CmdError::Static(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if is(opt, "count") {
            let n = int(c.value()?)?;
            if n < 0 {
                return Err(CmdError::Static("ERR COUNT can't be negative"));
            }
            count = Some(n);
        } else if is(opt, "maxlen") {
            maxlen = int(c.value()?)?;
            if maxlen < 0 {
                return Err(CmdError::Static("ERR MAXLEN can't be negative"));
            }
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some(l) = read::<List>(keys, args[1])? else {
        match count {
            Some(_) => ctx.out.array(0),
            None => ctx.out.null(),
        }
        return Ok(());
    };
    let want = match count {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    };
    let scan = if maxlen == 0 {
        l.len()
    } else {
        (maxlen as usize).min(l.len())
    };
    // Redis negates a negative rank, and LONG_MIN stays negative: any
    // match satisfies it, so it acts as -1.
    let mut skip = if rank == i64::MIN { 0 } else { rank.unsigned_abs() - 1 };
    let mut found = Vec::new();
    let indexes: Box<dyn Iterator<Item = usize>> = if rank > 0 {
        Box::new(0..scan)
    } else {
        Box::new((l.len() - scan..l.len()).rev())
    };
    for i in indexes {
        if *l[i] == *args[2] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(i as i64);
            if found.len() >= want {
                break;
            }
        }
    }
    match count {
        Some(_) => {
            ctx.out.array(found.len());
            for i in found {
                ctx.out.int(i);
            }
        }
        None => match found.first() {
            Some(&i) => ctx.out.int(i),
            None => ctx.out.null(),
        },
    }
    Ok(())
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`
pub fn lmove(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (from, to) = (End::parse(args[3])?, End::parse(args[4])?);
    let moved = move_element(keys, args[1], args[2], from, to)?;
    ctx.out.bulk_or_null(moved.as_deref());
    Ok(())
}

/// `RPOPLPUSH source destination`
pub fn rpoplpush(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let moved = move_element(keys, args[1], args[2], End::Right, End::Left)?;
    ctx.out.bulk_or_null(moved.as_deref());
    Ok(())
}

/// A blocking command's timeout in seconds (decimals allowed), as Redis's
/// `getTimeoutFromObjectOrReply`: whole milliseconds, truncated; 0 waits
/// forever. `now_ms` is the Unix time (the deadline must fit in 64 bits).
pub fn timeout_ms(arg: &[u8], now_ms: i64) -> Result<u64, CmdError> {
    const NOT_FLOAT: CmdError = CmdError::Static("ERR timeout is not a float or out of range");
    let text = std::str::from_utf8(arg).map_err(|_| NOT_FLOAT)?;
    // strtold's rules: no leading space, no NaN, and an overflow or
    // underflow of a finite literal is refused.
    if text.is_empty() || text.starts_with(|c: char| c.is_ascii_whitespace()) || text.len() >= 5 * 1024 {
        return Err(NOT_FLOAT);
    }
    let secs: f64 = text.parse().map_err(|_| NOT_FLOAT)?;
    let lower = text.to_ascii_lowercase();
    let mantissa = lower.split('e').next().unwrap_or("");
    // Past an f64's range but maybe not a long double's (Redis's type).
    let exponent = lower
        .contains('e')
        .then(|| lower.rsplit('e').next().and_then(|e| e.parse::<i64>().ok()));
    let overflow = secs.is_infinite() && !lower.contains("inf") && exponent.is_some_and(|e| e.is_none_or(|e| e > 4932));
    let underflow = secs == 0.0
        && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b))
        && exponent.is_some_and(|e| e.is_none_or(|e| e < -4950));
    if secs.is_nan() || overflow || underflow {
        return Err(NOT_FLOAT);
    }
    let ms = secs * 1000.0;
    // C's conversion of an out-of-range double to long long gives
    // LLONG_MIN on x86-64: Redis then calls it negative.
    let ms = if ms.is_finite() && ms > -9.223_372_036_854_775e18 && ms < 9.223_372_036_854_775e18 {
        ms as i64
    } else {
        i64::MIN
    };
    if ms < 0 {
        return Err(CmdError::Static("ERR timeout is negative"));
    }
    if ms > 0 && ms > i64::MAX - now_ms {
        return Err(CmdError::Static("ERR timeout is out of range"));
    }
    Ok(ms as u64)
}

/// Whether this command may block: not inside MULTI/EXEC (Redis's
/// CLIENT_DENY_BLOCKING), where it answers as if timed out. (Scripts may
/// not call the blocking commands at all: NOSCRIPT, as in Redis.)
fn may_block(ctx: &Ctx<'_>) -> bool {
    ctx.client.may_block()
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Block the client on `names` until one is pushed to (or the timeout).
fn block_on(ctx: &mut Ctx<'_>, names: &[&[u8]], op: ListOp, timeout: u64) {
    let (ticket, rx) = ctx.shared.coord.enqueue_list(ctx.client.db, names, op);
    ctx.client
        .handle
        .block
        .store(crate::instance::BLOCK_WAITING, std::sync::atomic::Ordering::SeqCst);
    ctx.client.blocked = Some(Box::new(super::Blocked {
        ticket,
        rx,
        timeout: (timeout > 0).then(|| std::time::Duration::from_millis(timeout)),
        stop: None,
    }));
}

pub fn blpop(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    blocking_pop(ctx, keys, args, End::Left)
}

pub fn brpop(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    blocking_pop(ctx, keys, args, End::Right)
}

/// `BLPOP key [key ...] timeout`: the first non-empty list in argument
/// order serves at once; else the client blocks on them all.
fn blocking_pop(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], end: End) -> CmdResult {
    let names = &args[1..args.len() - 1];
    let timeout = timeout_ms(args[args.len() - 1], unix_ms())?;
    for key in names {
        if read::<List>(keys, key)?.is_none_or(|l| l.is_empty()) {
            continue;
        }
        if let Some(item) = pop(keys, key, end, 1)?.and_then(|mut items| items.pop()) {
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.bulk(&item);
            return Ok(());
        }
    }
    if may_block(ctx) {
        block_on(ctx, names, ListOp::Pop(end), timeout);
    } else {
        ctx.out.null_array();
    }
    Ok(())
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout`
pub fn blmove(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (from, to) = (End::parse(args[3])?, End::parse(args[4])?);
    blocking_move(ctx, keys, args[1], args[2], from, to, args[5])
}

/// `BRPOPLPUSH source destination timeout`
pub fn brpoplpush(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    blocking_move(ctx, keys, args[1], args[2], End::Right, End::Left, args[3])
}

/// LMOVE at once if `src` has elements, else block on it.
fn blocking_move(
    ctx: &mut Ctx<'_>,
    keys: &mut Locked<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
    timeout: &[u8],
) -> CmdResult {
    let timeout = timeout_ms(timeout, unix_ms())?;
    if read::<List>(keys, src)?.is_some() {
        let moved = move_element(keys, src, dst, from, to)?;
        ctx.out.bulk_or_null(moved.as_deref());
    } else if may_block(ctx) {
        let op = ListOp::Move {
            from,
            to,
            dst: dst.into(),
        };
        block_on(ctx, &[src], op, timeout);
    } else {
        ctx.out.null();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{clamp_range, timeout_ms};

    #[test]
    fn timeouts_parse_as_redis() {
        let now = 1_700_000_000_000;
        assert_eq!(timeout_ms(b"0", now).unwrap(), 0);
        assert_eq!(timeout_ms(b"1.5", now).unwrap(), 1500);
        assert_eq!(timeout_ms(b".0009", now).unwrap(), 0);
        assert_eq!(timeout_ms(b"-0.0001", now).unwrap(), 0);
        assert_eq!(timeout_ms(b"9e15", now).unwrap(), 9_000_000_000_000_000_000);
        let text = |a: &[u8]| timeout_ms(a, now).unwrap_err().text("").into_owned();
        for bad in [&b""[..], b" 1", b"abc", b"nan", b"1e99999", b"1e-99999", b"1x"] {
            assert_eq!(text(bad), "ERR timeout is not a float or out of range", "{bad:?}");
        }
        for neg in [&b"-1"[..], b"inf", b"-inf", b"1e400", b"1e16", b"9.3e15"] {
            assert_eq!(text(neg), "ERR timeout is negative", "{neg:?}");
        }
    }

    #[test]
    fn ranges_clamp_as_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(clamp_range(0, -4, 3), None);
        assert_eq!(clamp_range(0, 0, 0), None);
    }
}
