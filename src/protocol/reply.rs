//! Reply encoding, straight into a connection's output buffer.
//!
//! Owns the difference between RESP2 and RESP3: a handler says "null",
//! "map of 3" or "double", and this module writes what the connection's
//! protocol calls it (`$-1` or `_`, `*6` or `%3`, a bulk string or `,`).
//! Nothing is allocated per reply; the buffer is reused for the life of the
//! connection and flushed once per batch of pipelined requests.

use bytes::{BufMut, BytesMut};

/// The output buffer of one connection plus the protocol it speaks.
#[derive(Debug)]
pub struct ReplyBuf {
    pub buf: BytesMut,
    pub resp3: bool,
}

impl ReplyBuf {
    pub fn new(capacity: usize) -> Self {
        ReplyBuf {
            buf: BytesMut::with_capacity(capacity),
            resp3: false,
        }
    }

    fn header(&mut self, prefix: u8, n: i64) {
        let mut tmp = itoa::Buffer::new();
        let s = tmp.format(n);
        self.buf.reserve(s.len() + 3);
        self.buf.put_u8(prefix);
        self.buf.put_slice(s.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }

    /// A status reply (`+text`); `text` must not contain CR or LF.
    pub fn simple(&mut self, text: &str) {
        self.buf.reserve(text.len() + 3);
        self.buf.put_u8(b'+');
        self.buf.put_slice(text.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// An error reply; `text` is the full message including its code
    /// (`ERR ...`, `WRONGTYPE ...`). CR and LF are replaced by spaces, as
    /// Redis does, so a client-supplied fragment cannot break framing.
    pub fn error(&mut self, text: &str) {
        self.buf.reserve(text.len() + 3);
        self.buf.put_u8(b'-');
        for &b in text.as_bytes() {
            self.buf.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len() as i64);
        self.buf.reserve(data.len() + 2);
        self.buf.put_slice(data);
        self.buf.put_slice(b"\r\n");
    }

    pub fn bulk_or_null(&mut self, data: Option<&[u8]>) {
        match data {
            Some(d) => self.bulk(d),
            None => self.null(),
        }
    }

    /// A null bulk string (RESP2 `$-1`) / null (RESP3 `_`).
    pub fn null(&mut self) {
        self.buf.put_slice(if self.resp3 { b"_\r\n" } else { b"$-1\r\n" });
    }

    /// A null array (RESP2 `*-1`) / null (RESP3 `_`): EXEC aborted by WATCH.
    pub fn null_array(&mut self) {
        self.buf.put_slice(if self.resp3 { b"_\r\n" } else { b"*-1\r\n" });
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    /// An out-of-band message of `n` elements (RESP3 push `>n`, RESP2 an
    /// array): pub/sub confirmations and messages.
    pub fn push_header(&mut self, n: usize) {
        self.header(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }

    /// A map of `n` pairs (RESP3 `%n`, RESP2 a flat array of 2n).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.header(b'%', n as i64)
        } else {
            self.header(b'*', 2 * n as i64)
        }
    }

    /// A set of `n` members (RESP3 `~n`, RESP2 an array).
    pub fn set(&mut self, n: usize) {
        self.header(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }

    /// A double (RESP3 `,`); RESP2 gets a bulk string, as Redis sends it.
    /// Printed as Redis 7.0's addReplyDouble does ([`format_score`]).
    pub fn double(&mut self, v: f64) {
        let text = format_score(v);
        if self.resp3 {
            self.buf.put_u8(b',');
            self.buf.put_slice(text.as_bytes());
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    /// A verbatim text (RESP3 `=`, RESP2 a bulk string): INFO, CLIENT INFO.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.header(b'=', text.len() as i64 + 4);
            self.buf.put_slice(b"txt:");
            self.buf.put_slice(text);
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Format a double the way Redis replies with one: integers without a
/// fraction, otherwise the shortest text that round-trips ("%.17g"-like),
/// `inf`/`-inf` for infinities.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return "nan".into();
    }
    if v == v.trunc() && v.abs() < 1e17 {
        return format!("{}", v as i64);
    }
    let s = format!("{v}");
    if s.contains('e') { format!("{v:e}") } else { s }
}

/// Format a double as Redis 7.0 replies with a score: C's `%.17g`
/// (`0.1` is `0.10000000000000001`, `1e20` is `1e+20`), `inf`/`-inf`.
pub fn format_score(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // 17 significant digits, rounded once; %g picks the notation by the
    // exponent of that rounded value.
    let sci = format!("{v:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (16 - exp) as usize;
        trim(&format!("{v:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_as_printf_17g() {
        for (v, text) in [
            (0.1, "0.10000000000000001"),
            (1.5, "1.5"),
            (3.0, "3"),
            (1e20, "1e+20"),
            (1e16, "10000000000000000"),
            (1e17, "1e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (-2.5e-300, "-2.5e-300"),
            (123456789.123, "123456789.123"),
            (f64::INFINITY, "inf"),
            (-0.0, "-0"),
        ] {
            assert_eq!(format_score(v), text, "{v}");
        }
    }

    #[test]
    fn resp2_and_resp3_nulls_and_maps() {
        let mut r = ReplyBuf::new(64);
        r.null();
        r.map(1);
        r.double(1.5);
        assert_eq!(&r.buf[..], b"$-1\r\n*2\r\n$3\r\n1.5\r\n");
        let mut r = ReplyBuf::new(64);
        r.resp3 = true;
        r.null();
        r.map(1);
        r.double(1.5);
        assert_eq!(&r.buf[..], b"_\r\n%1\r\n,1.5\r\n");
    }

    #[test]
    fn errors_cannot_break_framing() {
        let mut r = ReplyBuf::new(64);
        r.error("ERR bad\r\nthing");
        assert_eq!(&r.buf[..], b"-ERR bad  thing\r\n");
    }
}
