//! Redis's conversion rules between replies and Lua values, both ways:
//! a command's reply (the RESP2 or RESP3 bytes its handler wrote) becomes
//! what `redis.call` returns, and what a script returns becomes the reply.

use bytes::BufMut;
use mlua::{Lua, Table, Value};

use super::fmt_g;
use crate::protocol::ReplyBuf;

/// Deeper tables than this are cut with an error element (Redis stops
/// at Lua's stack limit; a table that contains itself never ends).
const MAX_DEPTH: usize = 256;

/// luaPushErrorBuff's text: "-CODE msg" keeps its code, "msg" gets ERR;
/// no leading or trailing CR/LF.
pub fn error_text(text: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match text.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&c| c == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", text),
    };
    let crlf = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = msg.iter().position(|c| !crlf(c)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|c| !crlf(c)).map_or(start, |e| e + 1);
    let mut full = Vec::with_capacity(code.len() + 1 + end - start);
    full.extend_from_slice(code);
    full.push(b' ');
    full.extend_from_slice(&msg[start..end.max(start)]);
    full
}

/// The error table `{err = ...}` of [`error_text`].
pub fn error_table(lua: &Lua, text: &[u8]) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set("err", lua.create_string(error_text(text))?)?;
    Ok(Value::Table(t))
}

/// A reply's bytes as a Lua value.
pub fn to_lua(lua: &Lua, reply: &[u8]) -> mlua::Result<Value> {
    parse(lua, reply, &mut 0)
}

/// The text of a reply that is an error (at the top), as [`error_text`].
pub fn top_error(reply: &[u8]) -> Option<Vec<u8>> {
    if reply.first() != Some(&b'-') {
        return None;
    }
    let end = memchr::memmem::find(reply, b"\r\n").unwrap_or(reply.len());
    Some(error_text(&reply[..end]))
}

fn line<'r>(reply: &'r [u8], at: &mut usize) -> &'r [u8] {
    let rest = &reply[(*at).min(reply.len())..];
    let end = memchr::memmem::find(rest, b"\r\n").unwrap_or(rest.len());
    *at += end + 2;
    &rest[..end]
}

fn number(text: &[u8]) -> i64 {
    std::str::from_utf8(text).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn single(lua: &Lua, field: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

fn parse(lua: &Lua, reply: &[u8], at: &mut usize) -> mlua::Result<Value> {
    let Some(&kind) = reply.get(*at) else {
        return Ok(Value::Nil);
    };
    *at += 1;
    let head = line(reply, at);
    Ok(match kind {
        b'+' => single(lua, "ok", Value::String(lua.create_string(head)?))?,
        b'-' => {
            let mut text = Vec::with_capacity(head.len() + 1);
            text.push(b'-');
            text.extend_from_slice(head);
            error_table(lua, &text)?
        }
        b':' => Value::Number(number(head) as f64),
        b'$' | b'=' => {
            let n = number(head);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let body = &reply[*at..(*at + n as usize).min(reply.len())];
            *at += n as usize + 2;
            if kind == b'$' {
                Value::String(lua.create_string(body)?)
            } else {
                let (format, text) = body.split_at(body.len().min(4));
                let inner = lua.create_table()?;
                inner.raw_set("format", lua.create_string(&format[..format.len().min(3)])?)?;
                inner.raw_set("string", lua.create_string(text)?)?;
                single(lua, "verbatim_string", Value::Table(inner))?
            }
        }
        b'*' | b'~' | b'%' | b'|' => {
            let n = number(head);
            if n < 0 {
                return Ok(Value::Boolean(false));
            }
            let t = lua.create_table()?;
            for i in 0..n as usize {
                match kind {
                    b'*' => t.raw_set(i + 1, parse(lua, reply, at)?)?,
                    b'~' => t.raw_set(parse(lua, reply, at)?, true)?,
                    _ => {
                        let k = parse(lua, reply, at)?;
                        let v = parse(lua, reply, at)?;
                        if kind == b'%' {
                            t.raw_set(k, v)?;
                        }
                    }
                }
            }
            match kind {
                b'*' => Value::Table(t),
                b'~' => single(lua, "set", Value::Table(t))?,
                b'%' => single(lua, "map", Value::Table(t))?,
                // An attribute: ignored, the reply follows it.
                _ => parse(lua, reply, at)?,
            }
        }
        b'_' => Value::Nil,
        b'#' => Value::Boolean(head == b"t"),
        b',' => {
            let text = std::str::from_utf8(head).unwrap_or("0");
            let d = match text {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => text.parse().unwrap_or(f64::NAN),
            };
            single(lua, "double", Value::Number(d))?
        }
        b'(' => single(lua, "big_number", Value::String(lua.create_string(head)?))?,
        _ => Value::Nil,
    })
}

/// Write `text` as a status or error line, CR and LF made spaces.
fn line_reply(out: &mut ReplyBuf, prefix: u8, text: &[u8]) {
    out.buf.reserve(text.len() + 3);
    out.buf.put_u8(prefix);
    for &b in text {
        out.buf.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.buf.put_slice(b"\r\n");
}

/// An error reply from a script's `{err=...}`, counted as Redis counts it.
pub fn error_reply(out: &mut ReplyBuf, text: &[u8]) {
    line_reply(out, b'-', text);
    crate::stats::error_reply(&String::from_utf8_lossy(text));
}

fn string_field(t: &Table, field: &str) -> Option<mlua::LuaString> {
    match t.raw_get::<Value>(field) {
        Ok(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// C's `(long long)` of a double, as x86-64 computes it.
fn truncate(n: f64) -> i64 {
    // 2^63: the first double past i64's range either way.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// luaReplyToRedisReply: the reply for what a script returned, `resp` the
/// protocol the script chose (redis.setresp), `out` the client's.
pub fn reply(out: &mut ReplyBuf, resp: i64, v: &Value, depth: usize) -> mlua::Result<()> {
    if depth > MAX_DEPTH {
        error_reply(out, b"ERR reached lua stack limit");
        return Ok(());
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) if resp == 2 => {
            if *b {
                out.int(1)
            } else {
                out.null()
            }
        }
        Value::Boolean(b) => match (out.resp3, b) {
            (true, true) => out.buf.put_slice(b"#t\r\n"),
            (true, false) => out.buf.put_slice(b"#f\r\n"),
            (false, b) => out.int(*b as i64),
        },
        Value::Integer(i) => out.int(*i),
        Value::Number(n) => out.int(truncate(*n)),
        Value::Table(t) => table_reply(out, resp, t, depth)?,
        _ => out.null(),
    }
    Ok(())
}

fn table_reply(out: &mut ReplyBuf, resp: i64, t: &Table, depth: usize) -> mlua::Result<()> {
    if let Some(e) = string_field(t, "err") {
        error_reply(out, &e.as_bytes());
        return Ok(());
    }
    if let Some(s) = string_field(t, "ok") {
        line_reply(out, b'+', &s.as_bytes());
        return Ok(());
    }
    if let Ok(Value::Number(_) | Value::Integer(_)) = t.raw_get::<Value>("double") {
        let d: f64 = t.raw_get("double")?;
        double(out, d);
        return Ok(());
    }
    if let Some(s) = string_field(t, "big_number") {
        let bytes: Vec<u8> = s
            .as_bytes()
            .iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect();
        if out.resp3 {
            out.buf.put_u8(b'(');
            out.buf.put_slice(&bytes);
            out.buf.put_slice(b"\r\n");
        } else {
            out.bulk(&bytes);
        }
        return Ok(());
    }
    if let Ok(Value::Table(v)) = t.raw_get::<Value>("verbatim_string")
        && let (Some(format), Some(text)) = (string_field(&v, "format"), string_field(&v, "string"))
    {
        let (format, text) = (format.as_bytes(), text.as_bytes());
        if out.resp3 {
            let mut body = Vec::with_capacity(text.len() + 4);
            body.extend_from_slice(&format[..format.len().min(3)]);
            body.resize(3, b' ');
            body.push(b':');
            body.extend_from_slice(&text);
            out.buf.put_u8(b'=');
            out.buf.put_slice(body.len().to_string().as_bytes());
            out.buf.put_slice(b"\r\n");
            out.buf.put_slice(&body);
            out.buf.put_slice(b"\r\n");
        } else {
            out.bulk(&text);
        }
        return Ok(());
    }
    if let Ok(Value::Table(m)) = t.raw_get::<Value>("map") {
        let pairs: Vec<(Value, Value)> = m.pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
        out.map(pairs.len());
        for (k, v) in &pairs {
            reply(out, resp, k, depth + 1)?;
            reply(out, resp, v, depth + 1)?;
        }
        return Ok(());
    }
    if let Ok(Value::Table(s)) = t.raw_get::<Value>("set") {
        let members: Vec<Value> = s
            .pairs::<Value, Value>()
            .map(|p| p.map(|(k, _)| k))
            .collect::<mlua::Result<_>>()?;
        out.set(members.len());
        for m in &members {
            reply(out, resp, m, depth + 1)?;
        }
        return Ok(());
    }
    let mut items = Vec::new();
    loop {
        let v: Value = t.raw_get(items.len() + 1)?;
        if v.is_nil() {
            break;
        }
        items.push(v);
    }
    out.array(items.len());
    for v in &items {
        reply(out, resp, v, depth + 1)?;
    }
    Ok(())
}

/// addReplyDouble of Redis 7.0: "%.17g", `,` in RESP3, a bulk string in RESP2.
fn double(out: &mut ReplyBuf, d: f64) {
    let text = if d.is_infinite() {
        if d > 0.0 { "inf".to_string() } else { "-inf".to_string() }
    } else {
        fmt_g(d, 17)
    };
    if out.resp3 {
        out.buf.put_u8(b',');
        out.buf.put_slice(text.as_bytes());
        out.buf.put_slice(b"\r\n");
    } else {
        out.bulk(text.as_bytes());
    }
}
