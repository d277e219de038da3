//! Request framing: turns the bytes a client sent into command argument lists.
//!
//! Owns the RESP multibulk grammar (`*N\r\n$len\r\n...`), inline commands
//! (`PING\r\n` typed into nc), and every limit a client controls at this layer:
//! argument count, bulk length and inline line length. Limits are checked on
//! the headers, before a byte of the payload is buffered.
//!
//! The decoder is *check-then-parse* and incremental: when a frame is
//! incomplete it remembers how far it got (arguments already located, the
//! pending bulk length), so a large request arriving in many small reads is
//! parsed in linear time, never re-scanned from its start.
//!
//! Arguments are located as byte ranges into the caller's buffer (multibulk)
//! or into the decoder's own scratch buffer (inline, whose quoting rewrites
//! bytes); nothing is copied for multibulk requests.

use std::ops::Range;

/// Redis's PROTO_INLINE_MAX_SIZE: the longest inline line or header line.
pub const INLINE_MAX: usize = 64 * 1024;
/// Redis's limit on the number of arguments in one multibulk request.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Requests with up to this many arguments take [`Decoder::decode_short`].
pub const SHORT_ARGS: usize = 8;
const _: () = assert!(SHORT_ARGS as i64 <= UNAUTH_MAX_ARGS);

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
    fn new(msg: &str) -> Self {
        ProtocolError(msg.to_string())
    }
}

/// Where the arguments of a decoded frame live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgSource {
    /// Ranges index the input slice given to [`Decoder::decode`].
    Input,
    /// Ranges index [`Decoder::scratch`].
    Scratch,
}

/// A complete request found at the start of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Bytes of input the frame occupied (consume them after executing it).
    pub len: usize,
    pub source: ArgSource,
}

#[derive(Debug, Default)]
enum State {
    /// Nothing of the next frame has been examined.
    #[default]
    Start,
    /// Inside a multibulk frame: `remaining` arguments still to locate,
    /// `pos` bytes of the frame examined so far.
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
    args: Vec<Range<usize>>,
    /// Unquoted inline arguments.
    pub scratch: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Argument ranges of the frame last returned by [`Decoder::decode`].
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
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

    /// Try to decode one frame from the start of `input`.
    ///
    /// `Ok(None)` means more bytes are needed; call again with the same
    /// input extended (the decoder resumes where it stopped). Empty frames
    /// (`*0`, `*-1`, blank inline lines) are consumed silently and yield a
    /// frame with no arguments.
    pub fn decode(&mut self, input: &[u8], limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
        if matches!(self.state, State::Start) {
            if input.is_empty() {
                return Ok(None);
            }
            self.args.clear();
            if input[0] == b'*' {
                match parse_line(input, Header::MultiBulk)? {
                    None => return Ok(None),
                    Some((n, next)) => {
                        if !limits.authenticated && n > UNAUTH_MAX_ARGS {
                            return Err(ProtocolError::new("unauthenticated multibulk length"));
                        }
                        if n > limits.max_args as i64 || n > MAX_ARGS as i64 {
                            return Err(ProtocolError::new("invalid multibulk length"));
                        }
                        if n <= 0 {
                            return Ok(Some(Frame {
                                len: next,
                                source: ArgSource::Input,
                            }));
                        }
                        // Reserve modestly: the count is client-controlled.
                        self.args.reserve((n as usize).min(1024));
                        self.state = State::Multibulk {
                            remaining: n as usize,
                            pos: next,
                            bulk: None,
                        };
                    }
                }
            } else {
                self.state = State::Inline { scanned: 0 };
            }
        }
        match self.state {
            State::Multibulk { .. } => self.decode_multibulk(input, limits),
            State::Inline { .. } => self.decode_inline(input),
            State::Start => unreachable!("state set above"),
        }
    }

    /// The common case in one pass, before [`Decoder::decode`]: a complete,
    /// well-formed multibulk request of at most [`SHORT_ARGS`] arguments at
    /// the start of `input`, within every limit, while no frame is in
    /// progress. Its arguments go straight into `args` as slices of `input`
    /// (nothing to push, nothing to convert); returns the frame's length and
    /// its argument count. Anything else — incomplete, malformed, over a
    /// limit, empty, long — returns None having changed nothing, and
    /// [`Decoder::decode`] decides what it is.
    #[inline]
    pub fn decode_short<'a>(
        &self,
        input: &'a [u8],
        limits: &Limits,
        args: &mut [&'a [u8]; SHORT_ARGS],
    ) -> Option<(usize, usize)> {
        if !matches!(self.state, State::Start) || input.first() != Some(&b'*') {
            return None;
        }
        let (n, mut pos) = parse_short_count(input)?;
        let max_bulk = if limits.authenticated {
            limits.max_bulk_len
        } else {
            limits.max_bulk_len.min(UNAUTH_MAX_BULK as u64)
        };
        // SHORT_ARGS is below UNAUTH_MAX_ARGS (checked at compile time).
        let n = n as usize;
        if n == 0 || n > SHORT_ARGS || n > limits.max_args {
            return None;
        }
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
        Some((pos, n))
    }

    fn decode_multibulk(&mut self, input: &[u8], limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
        let State::Multibulk {
            mut remaining,
            mut pos,
            mut bulk,
        } = self.state
        else {
            unreachable!("called in multibulk state")
        };
        let result = loop {
            if remaining == 0 {
                break Ok(Some(Frame {
                    len: pos,
                    source: ArgSource::Input,
                }));
            }
            let len = match bulk {
                Some(len) => len,
                None => {
                    if pos >= input.len() {
                        break Ok(None);
                    }
                    if input[pos] != b'$' {
                        break Err(ProtocolError(format!("expected '$', got '{}'", input[pos] as char)));
                    }
                    match parse_line(&input[pos..], Header::Bulk) {
                        Err(e) => break Err(e),
                        Ok(None) => break Ok(None),
                        Ok(Some((len, used))) => {
                            if !limits.authenticated && len > UNAUTH_MAX_BULK {
                                break Err(ProtocolError::new("unauthenticated bulk length"));
                            }
                            if len < 0 || len as u64 > limits.max_bulk_len {
                                break Err(ProtocolError::new("invalid bulk length"));
                            }
                            pos += used;
                            bulk = Some(len as usize);
                            len as usize
                        }
                    }
                }
            };
            if input.len() < pos + len + 2 {
                break Ok(None);
            }
            if &input[pos + len..pos + len + 2] != b"\r\n" {
                // Redis trusts the length and skips the CRLF; we are stricter only
                // in that the frame must be well formed to be executed.
                break Err(ProtocolError::new("expected CRLF after bulk"));
            }
            self.args.push(pos..pos + len);
            pos += len + 2;
            bulk = None;
            remaining -= 1;
        };
        self.state = match result {
            Ok(None) => State::Multibulk { remaining, pos, bulk },
            _ => State::Start,
        };
        result
    }

    fn decode_inline(&mut self, input: &[u8]) -> Result<Option<Frame>, ProtocolError> {
        let State::Inline { scanned } = self.state else {
            unreachable!("called in inline state")
        };
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
        split_inline_args(line, &mut self.scratch, &mut self.args)?;
        Ok(Some(Frame {
            len: nl + 1,
            source: ArgSource::Scratch,
        }))
    }
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

/// Split an inline line the way Redis's sdssplitargs does: whitespace
/// separates arguments; "double quotes" understand \n \r \t \b \a \\ \" and
/// \xHH; 'single quotes' understand \'; a closing quote must be followed by
/// whitespace or the end of the line.
fn split_inline_args(line: &[u8], scratch: &mut Vec<u8>, args: &mut Vec<Range<usize>>) -> Result<(), ProtocolError> {
    let unbalanced = || ProtocolError::new("unbalanced quotes in request");
    scratch.clear();
    args.clear();
    // sdssplitargs works on a C string: a NUL byte ends the line.
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut i = 0;
    let n = line.len();
    loop {
        // C's isspace: also vertical tab and form feed.
        while i < n && (line[i].is_ascii_whitespace() || line[i] == 0x0b) {
            i += 1;
        }
        if i >= n {
            return Ok(());
        }
        let start = scratch.len();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return Err(unbalanced());
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    scratch.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    scratch.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                } else {
                    scratch.push(c);
                }
            } else if insq {
                if i >= n {
                    return Err(unbalanced());
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    scratch.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(unbalanced());
                    }
                    i += 1;
                    break;
                } else {
                    scratch.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => scratch.push(c),
                }
            }
            i += 1;
        }
        args.push(start..scratch.len());
    }
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

    const L: Limits = Limits {
        max_bulk_len: 512 * 1024 * 1024,
        max_args: MAX_ARGS,
        authenticated: true,
    };

    fn args_of(d: &Decoder, input: &[u8], f: Frame) -> Vec<Vec<u8>> {
        let base = match f.source {
            ArgSource::Input => input,
            ArgSource::Scratch => &d.scratch[..],
        };
        d.args().iter().map(|r| base[r.clone()].to_vec()).collect()
    }

    #[test]
    fn multibulk_in_one_piece() {
        let mut d = Decoder::new();
        let input = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let f = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(f.len, input.len());
        assert_eq!(args_of(&d, input, f), vec![b"GET".to_vec(), b"k".to_vec()]);
    }

    #[test]
    fn multibulk_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut d = Decoder::new();
        for end in 1..input.len() {
            assert_eq!(d.decode(&input[..end], &L).unwrap(), None, "at {end}");
        }
        let f = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(
            args_of(&d, input, f),
            vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]
        );
    }

    #[test]
    fn inline_with_quotes() {
        let mut d = Decoder::new();
        let input = b"SET k \"a b\\x41\\n\" 'it\\'s'\r\n";
        let f = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(
            args_of(&d, input, f),
            vec![b"SET".to_vec(), b"k".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()]
        );
        assert_eq!(
            d.decode(b"SET \"a\r\n", &L),
            Err(ProtocolError::new("unbalanced quotes in request"))
        );
    }

    #[test]
    fn inline_nul_ends_the_line_and_never_loops() {
        let mut d = Decoder::new();
        let input = b"\x00\x01\x02\xff\r\n";
        let f = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(args_of(&d, input, f), Vec::<Vec<u8>>::new());
        let input = b"GET a\x00b c\r\n";
        let f = d.decode(input, &L).unwrap().unwrap();
        assert_eq!(args_of(&d, input, f), vec![b"GET".to_vec(), b"a".to_vec()]);
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
