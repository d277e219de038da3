//! What the container families (hashes, lists, sets, sorted sets) share:
//! finding a key's container with Redis's type check, creating it on the
//! first write, deleting the key once a write left it empty, and the SCAN
//! family's arguments.

use super::args::{Cursor, int, is};
use super::{CmdError, Ctx};
use crate::store::types::Container;
use crate::store::{Locked, NO_DEADLINE};
use crate::{glob, stats};

/// The container at `key` for reading: None if the key is missing,
/// WRONGTYPE if it holds another type. Counts a keyspace hit or miss.
pub fn read<'l, C: Container>(keys: &'l mut Locked<'_>, key: &[u8]) -> Result<Option<&'l C>, CmdError> {
    let found = match keys.get(key)? {
        Some(e) => Some(C::of(&e.value).ok_or(CmdError::WrongType)?),
        None => None,
    };
    stats::keyspace_lookup(found.is_some());
    Ok(found)
}

/// Run `f` on the container at `key` — a new empty one if the key is
/// missing and `create` — and delete the key if `f` left it empty (Redis
/// stores no empty container). None: the key is missing and not created.
/// An error from `f` on a new container leaves no key behind.
pub fn write<C: Container, R>(
    keys: &mut Locked<'_>,
    key: &[u8],
    create: bool,
    f: impl FnOnce(&mut C) -> Result<R, CmdError>,
) -> Result<Option<R>, CmdError> {
    let mut place = keys.place(key)?;
    let Some(entry) = place.entry_mut() else {
        if !create {
            return Ok(None);
        }
        let mut c = C::default();
        let r = f(&mut c)?;
        if !c.is_empty() {
            place.set_value(c.into_value(), NO_DEADLINE);
        }
        return Ok(Some(r));
    };
    let c = C::of_mut(&mut entry.value).ok_or(CmdError::WrongType)?;
    let r = f(c);
    if c.is_empty() {
        place.remove();
    }
    r.map(Some)
}

/// Fail with WRONGTYPE if `key` exists and is not a `C` (a destination
/// checked before anything is changed).
pub fn check_type<C: Container>(keys: &mut Locked<'_>, key: &[u8]) -> Result<(), CmdError> {
    match keys.get(key)? {
        Some(e) if C::of(&e.value).is_none() => Err(CmdError::WrongType),
        _ => Ok(()),
    }
}

/// A SCAN-family cursor (`strtoul`, as Redis's parseScanCursorOrReply).
pub fn parse_cursor(arg: &[u8]) -> Result<u64, CmdError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CmdError::Static("ERR invalid cursor"))
}

/// `[MATCH pattern] [COUNT count]` of HSCAN/SSCAN/ZSCAN (from `args[3]`).
pub struct ScanOptions<'a> {
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
}

impl ScanOptions<'_> {
    pub fn parse<'a>(args: &[&'a [u8]]) -> Result<ScanOptions<'a>, CmdError> {
        let mut o = ScanOptions {
            pattern: None,
            count: 10,
        };
        let mut c = Cursor::new(args, 3);
        while let Some(opt) = c.next() {
            if is(opt, "match") {
                o.pattern = Some(c.value()?).filter(|p| *p != b"*");
            } else if is(opt, "count") {
                let n = int(c.value()?)?;
                if n < 1 {
                    return Err(CmdError::Syntax);
                }
                o.count = n as usize;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(o)
    }

    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob::matches(p, item, false))
    }
}

/// Reply `[cursor, [items...]]`.
pub fn scan_reply(ctx: &mut Ctx<'_>, next: u64, items: &[Vec<u8>]) {
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(items.len());
    for i in items {
        ctx.out.bulk(i);
    }
}

/// The reply to a SCAN of a missing key.
pub fn empty_scan(ctx: &mut Ctx<'_>) {
    scan_reply(ctx, 0, &[]);
}

/// Redis's `getPositiveLongFromObjectOrReply` with the pop commands' text.
pub fn positive_count(arg: &[u8]) -> Result<i64, CmdError> {
    match crate::protocol::decode::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(CmdError::Static("ERR value is out of range, must be positive")),
    }
}
