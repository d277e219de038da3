//! String commands: GET/SET and their variants, counters, ranges.
//!
//! SET follows Redis 8.4: besides NX/XX it takes the compare-and-set
//! conditions IFEQ/IFNE (value) and IFDEQ/IFDNE (XXH3 digest) that make an
//! owner-checked lock extend a single native command.

use super::args::{Cursor, float, int, is, keyword, keyword_code};
use super::locks::{digest_arg, digest_hex};
use super::ttl::{ExpireArg, Form};
use super::{CmdError, CmdResult, Ctx};
use crate::config::Settings;
use crate::protocol::reply::format_double;
use crate::pubsub::events::{GENERIC, STRING};
use crate::stats;
use crate::store::{Deadline, Locked, NO_DEADLINE, Value};

/// The write condition of a SET.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition<'a> {
    Always,
    /// NX: only if the key is missing.
    Missing,
    /// XX: only if the key exists.
    Exists,
    /// IFEQ: only if the key exists and holds this value.
    ValueEq(&'a [u8]),
    /// IFNE: if the key is missing or holds another value.
    ValueNe(&'a [u8]),
    /// IFDEQ: only if the key exists and its value has this digest.
    DigestEq(&'a [u8]),
    /// IFDNE: if the key is missing or its value has another digest.
    DigestNe(&'a [u8]),
}

impl Condition<'_> {
    /// Whether a write may go ahead given the current value.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match (*self, current) {
            (Condition::Always, _) => true,
            (Condition::Missing, cur) => cur.is_none(),
            (Condition::Exists, cur) => cur.is_some(),
            (Condition::ValueEq(v), Some(cur)) => cur == v,
            (Condition::DigestEq(d), Some(cur)) => digest_hex(cur).as_bytes().eq_ignore_ascii_case(d),
            (Condition::ValueEq(_) | Condition::DigestEq(_), None) => false,
            (Condition::ValueNe(v), cur) => cur != Some(v),
            (Condition::DigestNe(d), cur) => cur.is_none_or(|c| !digest_hex(c).as_bytes().eq_ignore_ascii_case(d)),
        }
    }
}

/// The expiry part of SET/GETEX, as given (validated after parsing, as Redis does).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpiryOpt<'a> {
    /// No option: SET clears the TTL, GETEX leaves it.
    None,
    Ex(&'a [u8]),
    Px(&'a [u8]),
    ExAt(&'a [u8]),
    PxAt(&'a [u8]),
    KeepTtl,
    Persist,
}

/// What the key's deadline becomes.
pub enum NewDeadline {
    Keep,
    Set(Deadline),
}

impl ExpiryOpt<'_> {
    /// Turn the option into a deadline, with SET's validation.
    #[inline(always)]
    pub fn resolve(&self, now: u64) -> Result<NewDeadline, CmdError> {
        let (form, raw) = match *self {
            ExpiryOpt::None | ExpiryOpt::Persist => return Ok(NewDeadline::Set(NO_DEADLINE)),
            ExpiryOpt::KeepTtl => return Ok(NewDeadline::Keep),
            ExpiryOpt::Ex(v) => (Form::Ex, v),
            ExpiryOpt::Px(v) => (Form::Px, v),
            ExpiryOpt::ExAt(v) => (Form::ExAt, v),
            ExpiryOpt::PxAt(v) => (Form::PxAt, v),
        };
        Ok(NewDeadline::Set(ExpireArg::set_style(form, raw)?.deadline(now)))
    }
}

/// Options of `SET key value [cond] [GET] [expiry]`.
pub struct SetOptions<'a> {
    pub cond: Condition<'a>,
    pub get: bool,
    pub expiry: ExpiryOpt<'a>,
}

/// A keyword SET takes.
#[derive(Clone, Copy, PartialEq)]
enum SetKeyword {
    Nx,
    Xx,
    IfEq,
    IfNe,
    IfDeq,
    IfDne,
    Get,
    KeepTtl,
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl SetKeyword {
    /// Recognise a keyword in any case with one integer match (SET is the
    /// hottest command; a comparison per keyword cost more than the rest of
    /// the option parsing).
    fn parse(opt: &[u8]) -> Option<Self> {
        const NX: u64 = keyword("nx");
        const XX: u64 = keyword("xx");
        const IFEQ: u64 = keyword("ifeq");
        const IFNE: u64 = keyword("ifne");
        const IFDEQ: u64 = keyword("ifdeq");
        const IFDNE: u64 = keyword("ifdne");
        const GET: u64 = keyword("get");
        const KEEPTTL: u64 = keyword("keepttl");
        const EX: u64 = keyword("ex");
        const PX: u64 = keyword("px");
        const EXAT: u64 = keyword("exat");
        const PXAT: u64 = keyword("pxat");
        Some(match keyword_code(opt)? {
            NX => Self::Nx,
            XX => Self::Xx,
            IFEQ => Self::IfEq,
            IFNE => Self::IfNe,
            IFDEQ => Self::IfDeq,
            IFDNE => Self::IfDne,
            GET => Self::Get,
            KEEPTTL => Self::KeepTtl,
            EX => Self::Ex,
            PX => Self::Px,
            EXAT => Self::ExAt,
            PXAT => Self::PxAt,
            _ => return None,
        })
    }
}

/// Parse SET's options (from `args[3]`), with Redis's syntax rules: one
/// condition, one expiry; NX, XX and an expiry keyword may repeat (the last
/// value wins), two different ones may not.
pub fn parse_set_options<'a>(args: &[&'a [u8]]) -> Result<SetOptions<'a>, CmdError> {
    use SetKeyword as K;
    let mut o = SetOptions {
        cond: Condition::Always,
        get: false,
        expiry: ExpiryOpt::None,
    };
    let mut c = Cursor::new(args, 3);
    while let Some(opt) = c.next() {
        let kw = SetKeyword::parse(opt).ok_or(CmdError::Syntax)?;
        match kw {
            K::Nx if matches!(o.cond, Condition::Always | Condition::Missing) => o.cond = Condition::Missing,
            K::Xx if matches!(o.cond, Condition::Always | Condition::Exists) => o.cond = Condition::Exists,
            K::IfEq if o.cond == Condition::Always => o.cond = Condition::ValueEq(c.value()?),
            K::IfNe if o.cond == Condition::Always => o.cond = Condition::ValueNe(c.value()?),
            K::IfDeq if o.cond == Condition::Always => o.cond = Condition::DigestEq(c.value()?),
            K::IfDne if o.cond == Condition::Always => o.cond = Condition::DigestNe(c.value()?),
            K::Get => o.get = true,
            K::KeepTtl if matches!(o.expiry, ExpiryOpt::None | ExpiryOpt::KeepTtl) => o.expiry = ExpiryOpt::KeepTtl,
            K::Ex | K::Px | K::ExAt | K::PxAt => {
                let v = c.value()?;
                let expiry = match kw {
                    K::Ex => ExpiryOpt::Ex(v),
                    K::Px => ExpiryOpt::Px(v),
                    K::ExAt => ExpiryOpt::ExAt(v),
                    _ => ExpiryOpt::PxAt(v),
                };
                // Only the same expiry keyword may repeat (the last value wins).
                if o.expiry != ExpiryOpt::None && std::mem::discriminant(&o.expiry) != std::mem::discriminant(&expiry) {
                    return Err(CmdError::Syntax);
                }
                o.expiry = expiry;
            }
            _ => return Err(CmdError::Syntax),
        }
    }
    // After the syntax: a conflicting option is a syntax error whatever the digest.
    if let Condition::DigestEq(d) | Condition::DigestNe(d) = o.cond {
        digest_arg(d)?;
    }
    Ok(o)
}

/// Read a key for a string command, counting the hit or miss.
fn lookup<'l>(keys: &'l mut Locked<'_>, key: &[u8]) -> Result<Option<&'l [u8]>, CmdError> {
    let v = match keys.get(key)? {
        Some(e) => Some(&**e.str()?),
        None => None,
    };
    stats::keyspace_lookup(v.is_some());
    Ok(v)
}

pub fn get(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let v = lookup(keys, args[1])?;
    ctx.out.bulk_or_null(v);
    Ok(())
}

/// What a SET did: whether it wrote, and the old value when GET asked for it.
pub struct SetOutcome {
    pub written: bool,
    pub old: Option<crate::store::SmallBytes>,
}

/// The core of SET: apply `opts` to `key`.
pub fn set_with(
    keys: &mut Locked<'_>,
    key: &[u8],
    value: &[u8],
    opts: &SetOptions<'_>,
) -> Result<SetOutcome, CmdError> {
    let deadline = opts.expiry.resolve(keys.now)?;
    let place = keys.place(key)?;
    let current = place.entry();
    // A container is overwritten like a string; only GET and the value
    // conditions need the old value to be one.
    let needs_string = opts.get || !matches!(opts.cond, Condition::Always | Condition::Missing | Condition::Exists);
    let current_value = match current.map(|e| e.str()) {
        None => None,
        Some(Ok(v)) => Some(&**v),
        Some(Err(wrong)) if needs_string => return Err(wrong.into()),
        Some(Err(_)) => Some(&b""[..]),
    };
    let old = if opts.get {
        current_value.map(crate::store::SmallBytes::from)
    } else {
        None
    };
    if !opts.cond.holds(current_value) {
        return Ok(SetOutcome { written: false, old });
    }
    let deadline = match deadline {
        NewDeadline::Set(d) => d,
        NewDeadline::Keep => current.map(|e| e.deadline()).unwrap_or(NO_DEADLINE),
    };
    place.set(value, deadline);
    Ok(SetOutcome { written: true, old })
}

pub fn set(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let opts = parse_set_options(args)?;
    if matches!(
        opts.cond,
        Condition::Missing | Condition::ValueNe(_) | Condition::DigestNe(_)
    ) {
        ctx.check_grants_allowed()?;
    }
    let SetOutcome { written, old } = set_with(keys, args[1], args[2], &opts)?;
    if opts.cond == Condition::Missing && !matches!(opts.expiry, ExpiryOpt::None | ExpiryOpt::KeepTtl) {
        if written {
            super::locks::granted(&ctx.shared.locks, keys, ctx.client.db, args[1], args[2])?;
            let event = crate::pubsub::LockEvent::Acquired {
                token: args[2],
                fence: 0,
            };
            ctx.lock_event(args[1], event);
        } else {
            ctx.shared.locks.busy();
        }
    }
    if written {
        ctx.notify(STRING, "set", args[1]);
        if !matches!(opts.expiry, ExpiryOpt::None | ExpiryOpt::KeepTtl | ExpiryOpt::Persist) {
            ctx.notify(GENERIC, "expire", args[1]);
        }
    }
    if opts.get {
        ctx.out.bulk_or_null(old.as_deref());
    } else if written {
        ctx.out.ok();
    } else {
        ctx.out.null();
    }
    Ok(())
}

pub fn setnx(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let place = keys.place(args[1])?;
    let absent = place.entry().is_none();
    if absent {
        place.set(args[2], NO_DEADLINE);
        ctx.notify(STRING, "set", args[1]);
    }
    ctx.out.int(absent as i64);
    Ok(())
}

/// `SETEX key seconds value`
pub fn setex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    set_with_ttl(ctx, keys, args, Form::Ex)
}

/// `PSETEX key milliseconds value`
pub fn psetex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    set_with_ttl(ctx, keys, args, Form::Px)
}

fn set_with_ttl(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]], form: Form) -> CmdResult {
    let deadline = ExpireArg::set_style(form, args[2])?.deadline(keys.now);
    keys.set(args[1], args[3], deadline)?;
    ctx.notify(STRING, "set", args[1]);
    ctx.notify(GENERIC, "expire", args[1]);
    ctx.out.ok();
    Ok(())
}

pub fn getset(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let place = keys.place(args[1])?;
    let old = place.entry().map(|e| e.str().cloned()).transpose()?;
    place.set(args[2], NO_DEADLINE);
    ctx.notify(STRING, "set", args[1]);
    ctx.out.bulk_or_null(old.as_deref());
    Ok(())
}

pub fn getdel(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let place = keys.place(args[1])?;
    if let Some(e) = place.entry() {
        e.str()?;
    }
    let old = place.remove();
    stats::keyspace_lookup(old.is_some());
    if old.is_some() {
        ctx.notify(GENERIC, "del", args[1]);
    }
    ctx.out
        .bulk_or_null(old.as_ref().map(|e| e.str()).transpose()?.map(|v| &**v));
    Ok(())
}

/// `GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]`
pub fn getex(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let mut expiry = ExpiryOpt::None;
    let mut c = Cursor::new(args, 2);
    while let Some(opt) = c.next() {
        let next = if is(opt, "persist") {
            ExpiryOpt::Persist
        } else if is(opt, "ex") {
            ExpiryOpt::Ex(c.value()?)
        } else if is(opt, "px") {
            ExpiryOpt::Px(c.value()?)
        } else if is(opt, "exat") {
            ExpiryOpt::ExAt(c.value()?)
        } else if is(opt, "pxat") {
            ExpiryOpt::PxAt(c.value()?)
        } else {
            return Err(CmdError::Syntax);
        };
        // As in SET, only the same keyword may repeat (the last value wins).
        if expiry != ExpiryOpt::None && std::mem::discriminant(&expiry) != std::mem::discriminant(&next) {
            return Err(CmdError::Syntax);
        }
        expiry = next;
    }
    let Some(value) = lookup(keys, args[1])?.map(Box::<[u8]>::from) else {
        ctx.out.null();
        return Ok(());
    };
    // Redis validates the time only once the key is found: a missing key
    // answers nil whatever the time says.
    let now = keys.now;
    let deadline = match expiry {
        ExpiryOpt::None => None,
        other => match other.resolve(now)? {
            NewDeadline::Set(d) => Some(d),
            NewDeadline::Keep => None,
        },
    };
    match deadline {
        Some(d) if d != NO_DEADLINE && d <= now => {
            keys.remove(args[1])?;
            ctx.notify(GENERIC, "del", args[1]);
        }
        Some(NO_DEADLINE) => {
            let had = keys.get(args[1])?.is_some_and(|e| e.has_deadline());
            keys.set_deadline(args[1], NO_DEADLINE)?;
            if had {
                ctx.notify(GENERIC, "persist", args[1]);
            }
        }
        Some(d) => {
            keys.set_deadline(args[1], d)?;
            ctx.notify(GENERIC, "expire", args[1]);
        }
        None => {}
    }
    ctx.out.bulk(&value);
    Ok(())
}

pub fn mget(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    ctx.out.array(args.len() - 1);
    for key in &args[1..] {
        // A key of another type is nil here, not WRONGTYPE.
        let v = keys.get(key)?.and_then(|e| e.str().ok()).map(|v| &**v);
        stats::keyspace_lookup(v.is_some());
        ctx.out.bulk_or_null(v);
    }
    Ok(())
}

pub fn mset(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity);
    }
    for pair in args[1..].chunks_exact(2) {
        keys.set(pair[0], pair[1], NO_DEADLINE)?;
        ctx.notify(STRING, "set", pair[0]);
    }
    ctx.out.ok();
    Ok(())
}

pub fn msetnx(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity);
    }
    for pair in args[1..].chunks_exact(2) {
        if keys.contains(pair[0])? {
            ctx.out.int(0);
            return Ok(());
        }
    }
    for pair in args[1..].chunks_exact(2) {
        keys.set(pair[0], pair[1], NO_DEADLINE)?;
        ctx.notify(STRING, "set", pair[0]);
    }
    ctx.out.int(1);
    Ok(())
}

/// Add `delta` to the integer at `key` (0 when missing), keeping its TTL.
pub fn incr_by(keys: &mut Locked<'_>, key: &[u8], delta: i64) -> Result<i64, CmdError> {
    let mut buf = itoa::Buffer::new();
    // One lookup; an existing counter is updated in place, TTL untouched.
    let mut place = keys.place(key)?;
    if let Some(e) = place.entry_mut() {
        let n = int(e.str()?)?.checked_add(delta).ok_or(CmdError::Overflow)?;
        e.replace_value(buf.format(n).as_bytes());
        return Ok(n);
    }
    place.set(buf.format(delta).as_bytes(), NO_DEADLINE);
    Ok(delta)
}

pub fn incr(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    add(ctx, keys, args[1], 1)
}

pub fn decr(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    add(ctx, keys, args[1], -1)
}

pub fn incrby(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    add(ctx, keys, args[1], int(args[2])?)
}

pub fn decrby(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let delta = int(args[2])?
        .checked_neg()
        .ok_or(CmdError::Static("ERR decrement would overflow"))?;
    add(ctx, keys, args[1], delta)
}

/// INCR, DECR, INCRBY and DECRBY: add `delta` to the counter and reply with
/// its new value.
fn add(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, key: &[u8], delta: i64) -> CmdResult {
    let n = incr_by(keys, key, delta)?;
    ctx.notify(STRING, "incrby", key);
    ctx.out.int(n);
    Ok(())
}

/// Format an INCRBYFLOAT result as Redis does with long doubles: 17
/// significant digits hide binary noise (0.1+0.2 is "0.3"); we round to 15
/// because f64 carries less precision than Redis's long double.
pub fn format_incr_float(v: f64) -> String {
    let rounded: f64 = format!("{v:.14e}").parse().unwrap_or(v);
    format_double(rounded)
}

pub fn incrbyfloat(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let delta = float(args[2])?;
    let (current, deadline) = match keys.get(args[1])? {
        Some(e) => (float(e.str()?)?, e.deadline()),
        None => (0.0, NO_DEADLINE),
    };
    let n = current + delta;
    if !n.is_finite() {
        return Err(CmdError::NanOrInfinity);
    }
    let text = format_incr_float(n);
    keys.set(args[1], text.as_bytes(), deadline)?;
    ctx.notify(STRING, "incrbyfloat", args[1]);
    ctx.out.bulk(text.as_bytes());
    Ok(())
}

fn max_len(ctx: &Ctx<'_>) -> u64 {
    Settings::get(&ctx.shared.settings.proto_max_bulk_len)
}

pub fn append(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let limit = max_len(ctx);
    let len = match keys.get_mut(args[1])? {
        Some(e) => {
            let old = e.str()?;
            if (old.len() + args[2].len()) as u64 > limit {
                return Err(CmdError::StringTooLong);
            }
            let mut v = Vec::with_capacity(old.len() + args[2].len());
            v.extend_from_slice(old);
            v.extend_from_slice(args[2]);
            let len = v.len();
            e.value = Value::Str(v.into());
            len
        }
        None => {
            keys.set(args[1], args[2], NO_DEADLINE)?;
            args[2].len()
        }
    };
    ctx.notify(STRING, "append", args[1]);
    ctx.out.int(len as i64);
    Ok(())
}

pub fn strlen(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let n = lookup(keys, args[1])?.map_or(0, |v| v.len());
    ctx.out.int(n as i64);
    Ok(())
}

/// GETRANGE/SUBSTR with Redis 7's index rules.
pub fn getrange(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let (mut start, mut end) = (int(args[2])?, int(args[3])?);
    let v = lookup(keys, args[1])?.unwrap_or(b"");
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        ctx.out.bulk(b"");
    } else {
        ctx.out.bulk(&v[start as usize..=end as usize]);
    }
    Ok(())
}

pub fn setrange(ctx: &mut Ctx<'_>, keys: &mut Locked<'_>, args: &[&[u8]]) -> CmdResult {
    let offset = int(args[2])?;
    if offset < 0 {
        return Err(CmdError::Static("ERR offset is out of range"));
    }
    let patch = args[3];
    let limit = max_len(ctx);
    let (mut value, deadline) = match keys.get(args[1])? {
        Some(e) => (e.str()?.to_vec(), e.deadline()),
        None if patch.is_empty() => {
            ctx.out.int(0);
            return Ok(());
        }
        None => (Vec::new(), NO_DEADLINE),
    };
    if patch.is_empty() {
        ctx.out.int(value.len() as i64);
        return Ok(());
    }
    let end = offset as u64 + patch.len() as u64;
    if end > limit {
        return Err(CmdError::StringTooLong);
    }
    let end = end as usize;
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset as usize..end].copy_from_slice(patch);
    keys.set(args[1], &value, deadline)?;
    ctx.notify(STRING, "setrange", args[1]);
    ctx.out.int(value.len() as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incr_float_hides_binary_noise() {
        assert_eq!(format_incr_float(0.1 + 0.2), "0.3");
        assert_eq!(format_incr_float(10.5 + 0.1), "10.6");
        assert_eq!(format_incr_float(5000.0), "5000");
        assert_eq!(format_incr_float(-1.5), "-1.5");
    }

    #[test]
    fn conditions() {
        assert!(Condition::ValueEq(b"a").holds(Some(b"a")));
        assert!(!Condition::ValueEq(b"a").holds(None));
        assert!(Condition::ValueNe(b"a").holds(None));
        assert!(!Condition::ValueNe(b"a").holds(Some(b"a")));
        let d = digest_hex(b"a");
        assert!(Condition::DigestEq(d.as_bytes()).holds(Some(b"a")));
        assert!(Condition::DigestNe(d.as_bytes()).holds(Some(b"b")));
    }
}
