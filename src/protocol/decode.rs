//! Request framing: turns the bytes a client sent into [`Request`]s.
//!
//! Owns the RESP multibulk grammar (`*N\r\n$len\r\n...`), inline commands
//! (`PING\r\n` typed into nc), and every limit a client controls at this layer:
//! argument count, bulk length and inline line length. Limits are checked on
//! the headers, before a byte of the payload is buffered.
//!
//! One function, [`Decoder::decode`], yields every request, one at a time:
//! the connection calls it in a loop (through its batch, which decodes a few
//! requests ahead), and so do AOF replay, the property tests and the fuzz
//! targets. A request's arguments are slices of the input, nothing copied,
//! except an inline command's: its quoting rewrites bytes, so those are
//! unquoted into the request.
//!
//! The decoder is *check-then-parse* and incremental: when a frame is
//! incomplete it remembers how far it got (arguments already located, the
//! pending bulk length), so a large request arriving in many small reads is
//! parsed in linear time, never re-scanned from its start. What it remembers
//! is about the frame at the start of the input it was given, so the next
//! call must pass the input from that same frame on (extended), or
//! [`Decoder::reset`] it first.

use std::borrow::Cow;
use std::ops::Range;

/// Redis's PROTO_INLINE_MAX_SIZE: the longest inline line or header line.
pub const INLINE_MAX: usize = 64 * 1024;
/// Redis's limit on the number of arguments in one multibulk request.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Arguments a [`Request`] holds without allocating: enough for every lock
/// and counter command (`SET key token NX PX ms` has six). Kept so that a
/// request fits in 128 bytes, which the compiler moves without a call.
const STACK_ARGS: usize = 6;
const _: () = assert!(STACK_ARGS as i64 <= UNAUTH_MAX_ARGS);

/// Client-controlled sizes this decoder enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bulk_len: u64,
    pub max_args: usize,
    /// Before AUTH (with a password set) requests must stay tiny, as in
    /// Redis: at most 10 arguments of at most 16 KiB.
    pub authenticated: bool,
}

/// Redis's limits for clients that have not authenticated yet.
const UNAUTH_MAX_ARGS: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// A protocol violation: the connection gets `-ERR Protocol error: <msg>` and is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    #[cold]
    fn new(msg: &str) -> Self {
        ProtocolError(msg.to_string())
    }
}

/// One whole request, decoded from the start of an input.
#[derive(Debug)]
pub struct Request<'a> {
    /// Bytes of input it occupied.
    size: usize,
    args: Args<'a>,
}

/// A request's arguments: slices of the input, except an inline command's.
#[derive(Debug)]
enum Args<'a> {
    /// Up to [`STACK_ARGS`], in place: the first `len`.
    Few { len: u8, args: [&'a [u8]; STACK_ARGS] },
    /// More, or those of a frame that took more than one read.
    Many(Vec<&'a [u8]>),
    /// An inline command's, unquoted.
    Unquoted(Vec<Vec<u8>>),
}

const _: () = assert!(std::mem::size_of::<Request<'static>>() <= 128);

impl<'a> Request<'a> {
    /// Bytes of input the request occupied: consume them once it has run.
    #[inline]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Its arguments; none for an empty request (`*0`, `*-1`, a blank
    /// line), which a client may send and which is skipped silently.
    #[inline]
    pub fn args(&self) -> Cow<'_, [&[u8]]> {
        match &self.args {
            Args::Few { len, args } => Cow::Borrowed(&args[..*len as usize]),
            Args::Many(args) => Cow::Borrowed(args),
            Args::Unquoted(args) => Cow::Owned(args.iter().map(Vec::as_slice).collect()),
        }
    }

    /// The second argument of a multibulk request: the key of nearly every
    /// command, worth loading into the cache before the request runs.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        match &self.args {
            Args::Few { len, args } if *len >= 2 => Some(args[1]),
            Args::Many(args) => args.get(1).copied(),
            _ => None,
        }
    }
}

/// Requests are equal when they took as many bytes and have equal arguments.
impl PartialEq for Request<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.args() == other.args()
    }
}

impl Eq for Request<'_> {}

#[derive(Debug, Default)]
enum State {
    /// Nothing of the next frame has been examined.
    #[default]
    Start,
    /// Inside a multibulk frame: `remaining` arguments still to locate,
    /// `pos` bytes of the frame examined so far, and the length of the bulk
    /// whose header was read, if its payload is not all there yet.
    Multibulk {
        remaining: usize,
        pos: usize,
        bulk: Option<usize>,
    },
    /// Inside an inline line: `scanned` bytes already known not to hold '\n'.
    Inline { scanned: usize },
}

/// Incremental request decoder; one per connection.
#[derive(Debug, Default)]
pub struct Decoder {
    state: State,
    /// The arguments of the multibulk frame in progress located so far, as
    /// byte ranges of the frame: its bytes may move between reads.
    located: Vec<Range<usize>>,
}

/// Where the search for one multibulk argument got to.
enum Located {
    /// The argument is `input[start..end]`, followed by CRLF.
    Found { start: usize, end: usize },
    /// More input is needed; resume at `pos`, with `bulk` the length of the
    /// payload starting there if its header has been read.
    Partial { pos: usize, bulk: Option<usize> },
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes the frame in progress still needs before it can complete, if known
    /// (a pending bulk payload). Lets the reader reserve buffer space once.
    pub fn pending_bulk(&self, buffered: usize) -> Option<usize> {
        match self.state {
            State::Multibulk {
                pos, bulk: Some(len), ..
            } => Some((pos + len + 2).saturating_sub(buffered)),
            _ => None,
        }
    }

    /// Decode the request at the start of `input`.
    ///
    /// `Ok(None)` means more bytes are needed: call again with the same
    /// input extended, and the decoder resumes where it stopped. After an
    /// error the connection is closed; the decoder starts afresh if called.
    ///
    /// A whole request of a few arguments, nearly every one, is decoded in
    /// one pass ([`whole_short`]); the rest take the general path.
    #[inline]
    pub fn decode<'a>(&mut self, input: &'a [u8], limits: &Limits) -> Result<Option<Request<'a>>, ProtocolError> {
        if matches!(self.state, State::Start)
            && let Some(request) = whole_short(input, limits)
        {
            return Ok(Some(request));
        }
        if input.is_empty() {
            return Ok(None);
        }
        self.decode_general(input, limits)
    }

    /// Forget the frame in progress, so that the next call decodes a new
    /// one from the start of its input (a caller that decoded ahead and
    /// will come back to that frame later, from another position).
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.located = Vec::new();
    }

    /// Every case [`whole_short`] leaves: long, incomplete, resumed, empty,
    /// inline or malformed requests, with Redis's outcome for each.
    #[inline(never)]
    fn decode_general<'a>(&mut self, input: &'a [u8], limits: &Limits) -> Result<Option<Request<'a>>, ProtocolError> {
        match self.state {
            State::Start => match input.first() {
                None => Ok(None),
                Some(b'*') => self.start_multibulk(input, limits),
                Some(_) => self.inline(input, 0),
            },
            State::Multibulk { remaining, pos, bulk } => {
                let resumed = self.resume_multibulk(input, limits, remaining, pos, bulk);
                if resumed.is_err() {
                    self.reset();
                }
                resumed
            }
            State::Inline { scanned } => self.inline(input, scanned),
        }
    }

    /// A multibulk frame from its first byte: limits checked on its count,
    /// then on each argument's header.
    fn start_multibulk<'a>(&mut self, input: &'a [u8], limits: &Limits) -> Result<Option<Request<'a>>, ProtocolError> {
        let Some((n, mut pos)) = parse_line(input, Header::MultiBulk)? else {
            return Ok(None);
        };
        if !limits.authenticated && n > UNAUTH_MAX_ARGS {
            return Err(ProtocolError::new("unauthenticated multibulk length"));
        }
        if n > limits.max_args as i64 || n > MAX_ARGS as i64 {
            return Err(ProtocolError::new("invalid multibulk length"));
        }
        let n = n.max(0) as usize;
        // Reserve modestly: the count is client-controlled.
        let mut args = Vec::with_capacity(n.min(1024));
        for remaining in (1..=n).rev() {
            match locate(input, pos, None, limits)? {
                Located::Found { start, end } => {
                    args.push(&input[start..end]);
                    pos = end + 2;
                }
                Located::Partial { pos, bulk } => {
                    self.keep_partial(input, &args, remaining, pos, bulk);
                    return Ok(None);
                }
            }
        }
        Ok(Some(Request {
            size: pos,
            args: Args::Many(args),
        }))
    }

    /// Remember a multibulk frame left incomplete: the arguments `found`
    /// (slices of `input`) and where the search stopped.
    fn keep_partial(&mut self, input: &[u8], found: &[&[u8]], remaining: usize, pos: usize, bulk: Option<usize>) {
        let base = input.as_ptr() as usize;
        self.located.extend(found.iter().map(|arg| {
            let start = arg.as_ptr() as usize - base;
            start..start + arg.len()
        }));
        self.state = State::Multibulk { remaining, pos, bulk };
    }

    /// A multibulk frame that an earlier call left incomplete.
    fn resume_multibulk<'a>(
        &mut self,
        input: &'a [u8],
        limits: &Limits,
        mut remaining: usize,
        mut pos: usize,
        mut bulk: Option<usize>,
    ) -> Result<Option<Request<'a>>, ProtocolError> {
        while remaining > 0 {
            match locate(input, pos, bulk, limits)? {
                Located::Found { start, end } => {
                    self.located.push(start..end);
                    pos = end + 2;
                    bulk = None;
                    remaining -= 1;
                }
                Located::Partial { pos, bulk } => {
                    self.state = State::Multibulk { remaining, pos, bulk };
                    return Ok(None);
                }
            }
        }
        self.state = State::Start;
        // The located ranges go with the frame: a large one's are not kept.
        let located = std::mem::take(&mut self.located);
        Ok(Some(Request {
            size: pos,
            args: Args::Many(located.into_iter().map(|r| &input[r]).collect()),
        }))
    }

    fn inline<'a>(&mut self, input: &'a [u8], scanned: usize) -> Result<Option<Request<'a>>, ProtocolError> {
        let Some(nl) = memchr::memchr(b'\n', &input[scanned..]).map(|i| i + scanned) else {
            if input.len() > INLINE_MAX {
                self.state = State::Start;
                return Err(ProtocolError::new("too big inline request"));
            }
            self.state = State::Inline { scanned: input.len() };
            return Ok(None);
        };
        self.state = State::Start;
        if nl > INLINE_MAX {
            return Err(ProtocolError::new("too big inline request"));
        }
        let mut line = &input[..nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let unquoted = split_args(line).ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        Ok(Some(Request {
            size: nl + 1,
            args: Args::Unquoted(unquoted),
        }))
    }
}

/// The common case in one pass: a whole, well-formed multibulk request of
/// at most [`STACK_ARGS`] arguments at the start of `input`, within every
/// limit, its arguments going straight into the request. Anything else —
/// incomplete, malformed, over a limit, empty, long — returns None, and
/// [`Decoder::decode_general`] decides what it is.
#[inline(always)]
fn whole_short<'a>(input: &'a [u8], limits: &Limits) -> Option<Request<'a>> {
    if input.first() != Some(&b'*') {
        return None;
    }
    let (n, mut pos) = parse_short_count(input)?;
    let max_bulk = if limits.authenticated {
        limits.max_bulk_len
    } else {
        limits.max_bulk_len.min(UNAUTH_MAX_BULK as u64)
    };
    // STACK_ARGS is below UNAUTH_MAX_ARGS (checked at compile time).
    let n = n as usize;
    if n == 0 || n > STACK_ARGS || n > limits.max_args {
        return None;
    }
    let mut args: [&[u8]; STACK_ARGS] = [&[]; STACK_ARGS];
    for arg in &mut args[..n] {
        if input.get(pos) != Some(&b'$') {
            return None;
        }
        let (len, used) = parse_short_count(&input[pos..])?;
        if len as u64 > max_bulk {
            return None;
        }
        let start = pos + used;
        let end = start + len as usize;
        if input.get(end..end + 2) != Some(b"\r\n") {
            return None;
        }
        *arg = &input[start..end];
        pos = end + 2;
    }
    Some(Request {
        size: pos,
        args: Args::Few { len: n as u8, args },
    })
}

/// Locate the multibulk argument at `pos`: its `$<len>` header, or, when
/// `bulk` is known, its payload of that length. Limits are checked on the
/// header, before the payload is waited for.
#[inline(always)]
fn locate(input: &[u8], mut pos: usize, bulk: Option<usize>, limits: &Limits) -> Result<Located, ProtocolError> {
    let len = match bulk {
        Some(len) => len,
        None => {
            let Some(&first) = input.get(pos) else {
                return Ok(Located::Partial { pos, bulk: None });
            };
            if first != b'$' {
                return Err(expected_dollar(first));
            }
            let Some((len, used)) = parse_line(&input[pos..], Header::Bulk)? else {
                return Ok(Located::Partial { pos, bulk: None });
            };
            if !limits.authenticated && len > UNAUTH_MAX_BULK {
                return Err(ProtocolError::new("unauthenticated bulk length"));
            }
            if len < 0 || len as u64 > limits.max_bulk_len {
                return Err(ProtocolError::new("invalid bulk length"));
            }
            pos += used;
            len as usize
        }
    };
    let end = pos + len;
    match input.get(end..end + 2) {
        Some(b"\r\n") => Ok(Located::Found { start: pos, end }),
        // Redis trusts the length and skips the CRLF; we are stricter only
        // in that the frame must be well formed to be executed.
        Some(_) => Err(ProtocolError::new("expected CRLF after bulk")),
        None => Ok(Located::Partial { pos, bulk: Some(len) }),
    }
}

#[cold]
fn expected_dollar(got: u8) -> ProtocolError {
    ProtocolError(format!("expected '$', got '{}'", got as char))
}

/// Which header line is being read (for the error texts).
#[derive(Clone, Copy)]
enum Header {
    MultiBulk,
    Bulk,
}

/// Parse `<prefix><integer>\r\n` at the start of `buf`; returns the integer
/// and the bytes used. The header line itself is bounded by [`INLINE_MAX`].
#[inline]
fn parse_line(buf: &[u8], header: Header) -> Result<Option<(i64, usize)>, ProtocolError> {
    match parse_short_count(buf) {
        Some(parsed) => Ok(Some(parsed)),
        None => parse_line_general(buf, header),
    }
}

/// [`parse_line`] for any input: find the CR, then parse what precedes it.
#[cold]
#[inline(never)]
fn parse_line_general(buf: &[u8], header: Header) -> Result<Option<(i64, usize)>, ProtocolError> {
    let (too_big, invalid) = match header {
        Header::MultiBulk => ("too big mbulk count string", "invalid multibulk length"),
        Header::Bulk => ("too big bulk count string", "invalid bulk length"),
    };
    let window = &buf[..buf.len().min(INLINE_MAX + 1)];
    let Some(cr) = memchr::memchr(b'\r', window) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtocolError::new(too_big));
        }
        return Ok(None);
    };
    if buf.len() < cr + 2 {
        return Ok(None);
    }
    let n = parse_i64(&buf[1..cr]).ok_or_else(|| ProtocolError::new(invalid))?;
    Ok(Some((n, cr + 2)))
}

/// The common header, `<prefix><1-18 digits>\r\n` without a leading zero,
/// parsed in one pass (no search for the CR, no overflow checks needed).
/// Anything else — incomplete, signed, malformed — returns None and takes
/// the general path, which gives the exact Redis outcome.
#[inline(always)]
fn parse_short_count(buf: &[u8]) -> Option<(i64, usize)> {
    // One or two digits: nearly every header of a lock or counter request,
    // inlined into the decoding loops; longer counts take a call.
    if let [_, first, second, third, ..] = *buf {
        let d0 = first.wrapping_sub(b'0');
        if d0 <= 9 {
            if second == b'\r' {
                return Some((d0 as i64, 4));
            }
            let d1 = second.wrapping_sub(b'0');
            if d1 <= 9 && d0 != 0 && third == b'\r' && buf.len() > 4 {
                return Some(((d0 * 10 + d1) as i64, 5));
            }
        }
    }
    parse_longer_count(buf)
}

/// [`parse_short_count`] for three digits and more.
#[inline(never)]
fn parse_longer_count(buf: &[u8]) -> Option<(i64, usize)> {
    let digits = buf.get(1..)?;
    let mut value: i64 = 0;
    for (i, &c) in digits.iter().take(19).enumerate() {
        match c {
            b'0'..=b'9' if i < 18 => value = value * 10 + (c - b'0') as i64,
            b'\r' if i > 0 && (i == 1 || digits[0] != b'0') && digits.len() > i + 1 => {
                return Some((value, i + 3));
            }
            _ => return None,
        }
    }
    None
}

/// Strict decimal parse as Redis's string2ll: optional '-', no '+', no spaces,
/// no leading zeros (except "0"), within i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    if digits.len() < 19 {
        // Up to 18 digits cannot overflow: no checked arithmetic per digit.
        let mut v: i64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + d as i64;
        }
        return Some(if neg { -v } else { v });
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// Split a line the way Redis's sdssplitargs does, for inline commands and
/// for the lines of a config file alike: whitespace separates arguments;
/// "double quotes" understand \n \r \t \b \a \xHH and \<any>; 'single
/// quotes' understand \'; a closing quote must be followed by whitespace or
/// the end of the line. None for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    // sdssplitargs works on a C string: a NUL byte ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_c_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut arg = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    arg.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    arg.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    arg.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    arg.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    arg.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => arg.push(c),
                }
            }
            i += 1;
        }
        args.push(arg);
    }
}

/// C's isspace: ASCII whitespace plus vertical tab.
fn is_c_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass header parser agrees with the general one on every
    /// header-like input: digits, signs, zeros, junk, missing CR or LF.
    #[test]
    fn short_count_agrees_with_general_parse() {
        use proptest::prelude::*;
        let config = ProptestConfig {
            cases: 20_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        // The second alternative dwells on the one- and two-digit shortcut.
        proptest!(config, |(line in "[*$]([-+0-9 a]{0,22}|[0-9]{0,3})\r?\n?x?")| {
            let buf = line.as_bytes();
            for header in [Header::Bulk, Header::MultiBulk] {
                prop_assert_eq!(parse_line(buf, header), parse_line_general(buf, header));
            }
        });
        for line in [
            "$0\r\n",
            "$00\r\n",
            "$999999999999999999\r\n",
            "$9999999999999999999\r\n",
            "$-1\r\n",
        ] {
            let buf = line.as_bytes();
            assert_eq!(
                parse_line(buf, Header::Bulk),
                parse_line_general(buf, Header::Bulk),
                "{line}"
            );
        }
    }

    /// The one-pass case only ever shortcuts the general path: when it
    /// takes a request, the general path decodes the same one; and it does
    /// take every whole, well-formed request of a few arguments within the
    /// limits, so that the common case is fast.
    #[test]
    fn whole_short_agrees_with_the_general_path() {
        use proptest::prelude::*;
        let config = ProptestConfig {
            cases: 20_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        let command = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..9);
        let cut = prop::option::of(any::<prop::sample::Index>());
        let flip = prop::option::of((any::<prop::sample::Index>(), any::<u8>()));
        let limits = (any::<bool>(), prop_oneof![Just(1u64 << 20), 0u64..20]);
        proptest!(config, |(args in command, cut in cut, flip in flip, (authenticated, max_bulk_len) in limits)| {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let mut input = Vec::new();
            crate::protocol::encode_command(&mut input, &refs);
            let well_formed = input.clone();
            if let Some((at, byte)) = flip {
                let at = at.index(input.len());
                input[at] = byte;
            }
            if let Some(cut) = cut {
                input.truncate(cut.index(input.len() + 1));
            }
            let limits = Limits { max_bulk_len, max_args: MAX_ARGS, authenticated };
            let general = Decoder::new().decode_general(&input, &limits);
            if let Some(short) = whole_short(&input, &limits) {
                prop_assert_eq!(general, Ok(Some(short)));
            } else if input == well_formed && (1..=STACK_ARGS).contains(&args.len()) {
                let max_bulk = if authenticated { max_bulk_len } else { max_bulk_len.min(UNAUTH_MAX_BULK as u64) };
                prop_assert!(args.iter().any(|a| a.len() as u64 > max_bulk), "a short request took the general path");
            }
        });
    }

    const L: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        max_args: MAX_ARGS,
        authenticated: true,
    };

    fn args_of(request: &Request<'_>) -> Vec<Vec<u8>> {
        request.args().iter().map(|a| a.to_vec()).collect()
    }

    #[test]
    fn multibulk_in_one_piece() {
        let mut d = Decoder::new();
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let r = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(r.size(), input.len());
        assert_eq!(args_of(&r), vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(r.key(), Some(&b"k"[..]));
    }

    #[test]
    fn multibulk_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut d = Decoder::new();
        for end in 1..input.len() {
            assert_eq!(d.decode(&input[..end], &L).unwrap(), None, "at {end}");
        }
        let r = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(r.size(), input.len());
        assert_eq!(args_of(&r), vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]);
    }

    #[test]
    fn many_arguments_and_a_resumed_frame() {
        let args: Vec<Vec<u8>> = (0..20).map(|i| format!("arg{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let mut input = Vec::new();
        crate::protocol::encode_command(&mut input, &refs);
        let mut d = Decoder::new();
        assert_eq!(args_of(&d.decode(&input, &L).unwrap().unwrap()), args);
        // Cut mid-payload: the second call locates only what the first did not.
        let cut = input.len() - 5;
        assert_eq!(d.decode(&input[..cut], &L).unwrap(), None);
        assert!(!d.located.is_empty());
        let r = d.decode(&input, &L).unwrap().unwrap();
        assert_eq!((args_of(&r), r.size()), (args, input.len()));
        assert!(d.located.capacity() == 0, "a finished frame's ranges are not kept");
    }

    #[test]
    fn reset_forgets_the_frame_in_progress() {
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let mut d = Decoder::new();
        assert_eq!(d.decode(&input[..12], &L).unwrap(), None);
        d.reset();
        // Decoded from its start again, as when it comes back to the head of the input.
        let r = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(args_of(&r), vec![b"GET".to_vec(), b"k".to_vec()]);
        // Without the reset, a different frame would be read as the old one's rest.
        assert_eq!(d.decode(&input[..12], &L).unwrap(), None);
        d.reset();
        assert_eq!(
            args_of(&d.decode(b"*1\r\n$4\r\nPING\r\n", &L).unwrap().unwrap()),
            vec![b"PING".to_vec()]
        );
    }

    #[test]
    fn empty_requests_have_no_arguments() {
        let mut d = Decoder::new();
        for input in [&b"*0\r\n"[..], b"*-1\r\n", b"\r\n", b"  \n"] {
            let r = d.decode(input, &L).unwrap().unwrap();
            assert_eq!((r.size(), r.args().len()), (input.len(), 0), "{input:?}");
        }
    }

    #[test]
    fn inline_with_quotes() {
        let mut d = Decoder::new();
        let input = b"SET k \"a b\\x41\\n\" 'it\\'s'\r\n";
        let r = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(
            args_of(&r),
            vec![b"SET".to_vec(), b"k".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]
        );
        assert_eq!(r.size(), input.len());
        assert_eq!(
            d.decode(b"SET \"a\r\n", &L),
            Err(ProtocolError::new("unbalanced quotes in request"))
        );
    }

    #[test]
    fn inline_nul_ends_the_line_and_never_loops() {
        let mut d = Decoder::new();
        let input = b"\x00\x01\x02\xff\r\n";
        let r = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(args_of(&r), Vec::<Vec<u8>>::new());
        let input = b"GET a\x00b c\r\n";
        let r = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(args_of(&r), vec![b"GET".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn limits_checked_on_headers() {
        let mut d = Decoder::new();
        assert_eq!(
            d.decode(b"*1048577\r\n", &L),
            Err(ProtocolError::new("invalid multibulk length"))
        );
        let small = Limits {
            max_bulk_len: 10,
            max_args: 4,
            authenticated: true,
        };
        assert_eq!(
            d.decode(b"*1\r\n$11\r\n", &small),
            Err(ProtocolError::new("invalid bulk length"))
        );
        assert_eq!(
            d.decode(b"*5\r\n", &small),
            Err(ProtocolError::new("invalid multibulk length"))
        );
        assert_eq!(
            d.decode(b"*x\r\n", &L),
            Err(ProtocolError::new("invalid multibulk length"))
        );
        assert_eq!(
            d.decode(b"*1\r\n+x\r\n", &L),
            Err(ProtocolError::new("expected '$', got '+'"))
        );
        let unauth = Limits {
            authenticated: false,
            ..L
        };
        assert_eq!(
            d.decode(b"*11\r\n", &unauth),
            Err(ProtocolError::new("unauthenticated multibulk length"))
        );
        assert_eq!(
            d.decode(b"*1\r\n$16385\r\n", &unauth),
            Err(ProtocolError::new("unauthenticated bulk length"))
        );
        let long = vec![b'a'; INLINE_MAX + 1];
        assert_eq!(d.decode(&long, &L), Err(ProtocolError::new("too big inline request")));
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"01",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-0",
            b"1.0",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Every digit count (the short unchecked loop and the checked one)
        /// agrees with the standard parser on strings in Redis's strict form.
        #[test]
        fn parse_i64_agrees_with_std(s in "-?[0-9]{1,20}|[-+0-9 a]{0,4}") {
            let leading_zero = s.starts_with("-0") || (s.starts_with('0') && s.len() > 1);
            let strict = !s.starts_with('+') && !leading_zero;
            let expected = if strict { s.parse::<i64>().ok() } else { None };
            proptest::prop_assert_eq!(parse_i64(s.as_bytes()), expected);
        }

        #[test]
        fn parse_i64_round_trips(n: i64) {
            proptest::prop_assert_eq!(parse_i64(n.to_string().as_bytes()), Some(n));
        }
    }
}
