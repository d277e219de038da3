//! The `cjson` and `bit` libraries Redis links into its Lua (lua-cjson 2.1
//! and LuaBitOp 1.0), rewritten on Rust values with their outputs and
//! error texts, raised at the caller's line as `luaL_error` raises them.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::{fmt_g, lua_error};

type Outcome = mlua::Result<Value>;

fn fail(lua: &Lua, msg: &str) -> Outcome {
    Err(lua_error(lua, msg))
}

/// Lua 5.1's name of a value's type, as error messages print it.
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `lua_tonumber`: numbers, and strings that read as one.
pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => {
            let b = s.as_bytes();
            let text = std::str::from_utf8(&b).ok()?.trim();
            if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
            }
            text.parse::<f64>().ok()
        }
        _ => None,
    }
}

pub fn register(lua: &Lua, natives: &Table) -> mlua::Result<()> {
    natives.set("null", Value::LightUserData(LightUserData(std::ptr::null_mut())))?;
    natives.set(
        "cjson_encode",
        lua.create_function(|lua, args: MultiValue| {
            if args.len() != 1 {
                return fail(lua, "bad argument #1 to 'encode' (expected 1 argument)");
            }
            let mut out = Vec::new();
            match encode(&mut out, &args[0], 0) {
                Ok(()) => Ok(Value::String(lua.create_string(&out)?)),
                Err(e) => fail(lua, &e),
            }
        })?,
    )?;
    natives.set(
        "cjson_decode",
        lua.create_function(|lua, args: MultiValue| {
            let text = match args.front() {
                Some(Value::String(s)) if args.len() == 1 => s.as_bytes().to_vec(),
                Some(v @ (Value::Integer(_) | Value::Number(_))) if args.len() == 1 => {
                    fmt_g(to_number(v).unwrap_or(0.0), 14).into_bytes()
                }
                _ if args.len() != 1 => return fail(lua, "bad argument #1 to 'decode' (expected 1 argument)"),
                other => {
                    let msg = format!(
                        "bad argument #1 to 'decode' (string expected, got {})",
                        type_name(other)
                    );
                    return fail(lua, &msg);
                }
            };
            let mut p = Parser { s: &text, at: 0, lua };
            p.document().or_else(|e| fail(lua, &e))
        })?,
    )?;
    for (name, op) in BIT_OPS {
        let op = *op;
        natives.set(
            format!("bit_{name}"),
            lua.create_function(move |lua, args: MultiValue| match op(&args, name) {
                Ok(Bits::Int(b)) => Ok(Value::Number(b as i32 as f64)),
                Ok(Bits::Text(s)) => Ok(Value::String(lua.create_string(s)?)),
                Err(e) => fail(lua, &e),
            })?,
        )?;
    }
    Ok(())
}

// ------------------------------------------------------------------ cjson

const MAX_DEPTH: usize = 1000;

fn escape(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
            _ => out.push(c),
        }
    }
    out.push(b'"');
}

fn number(out: &mut Vec<u8>, n: f64) -> Result<(), String> {
    if !n.is_finite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(fmt_g(n, 14).as_bytes());
    Ok(())
}

fn unsupported(v: &Value) -> String {
    format!("Cannot serialise {}: type not supported", type_name(Some(v)))
}

fn encode(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    match v {
        Value::String(s) => escape(out, &s.as_bytes()),
        Value::Integer(i) => number(out, *i as f64)?,
        Value::Number(n) => number(out, *n)?,
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(t)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(|e| e.to_string())?;
                        encode(out, &item, depth)?;
                    }
                    out.push(b']');
                }
                _ => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.clone().pairs::<Value, Value>() {
                        let (k, item) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::String(s) => escape(out, &s.as_bytes()),
                            Value::Integer(_) | Value::Number(_) => {
                                out.push(b'"');
                                number(out, to_number(&k).unwrap_or(0.0))?;
                                out.push(b'"');
                            }
                            other => {
                                return Err(format!(
                                    "Cannot serialise {}: table key must be a number or string",
                                    type_name(Some(other))
                                ));
                            }
                        }
                        out.push(b':');
                        encode(out, &item, depth)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => return Err(unsupported(other)),
    }
    Ok(())
}

/// lua-cjson's `lua_array_length`: the length if every key is a positive
/// integer (None otherwise), refusing excessively sparse arrays.
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    let (mut max, mut items) = (0usize, 0usize);
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            _ => return Ok(None),
        };
        if n < 1.0 || n.floor() != n {
            return Ok(None);
        }
        max = max.max(n as usize);
        items += 1;
    }
    if max > 10 && max > items * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

struct Parser<'s, 'l> {
    s: &'s [u8],
    at: usize,
    lua: &'l Lua,
}

impl Parser<'_, '_> {
    fn skip_ws(&mut self) {
        while self.at < self.s.len() && matches!(self.s[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// lua-cjson's name of the token at the current position.
    fn token(&self) -> &'static str {
        let rest = &self.s[self.at.min(self.s.len())..];
        match rest.first() {
            None => "T_END",
            Some(b'{') => "T_OBJ_BEGIN",
            Some(b'}') => "T_OBJ_END",
            Some(b'[') => "T_ARR_BEGIN",
            Some(b']') => "T_ARR_END",
            Some(b'"') => "T_STRING",
            Some(b':') => "T_COLON",
            Some(b',') => "T_COMMA",
            Some(b'-' | b'0'..=b'9') => "T_NUMBER",
            _ if rest.starts_with(b"true") || rest.starts_with(b"false") => "T_BOOLEAN",
            _ if rest.starts_with(b"null") => "T_NULL",
            _ => "invalid token",
        }
    }

    fn invalid(&self, expected: &str) -> String {
        format!(
            "Expected {expected} but found {} at character {}",
            self.token(),
            self.at + 1
        )
    }

    fn document(&mut self) -> Result<Value, String> {
        let v = self.value(0)?;
        self.skip_ws();
        if self.at < self.s.len() {
            return Err(self.invalid("the end"));
        }
        Ok(v)
    }

    fn lua_err(e: mlua::Error) -> String {
        e.to_string()
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip_ws();
        let Some(&c) = self.s.get(self.at) else {
            return Err(self.invalid("value"));
        };
        match c {
            b'{' | b'[' => {
                let depth = depth + 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "Found too many nested data structures ({depth}) at character {}",
                        self.at + 1
                    ));
                }
                self.at += 1;
                let t = self.lua.create_table().map_err(Self::lua_err)?;
                let close = if c == b'{' { b'}' } else { b']' };
                self.skip_ws();
                if self.s.get(self.at) == Some(&close) {
                    self.at += 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1;
                loop {
                    if c == b'{' {
                        self.skip_ws();
                        if self.s.get(self.at) != Some(&b'"') {
                            return Err(self.invalid("object key string"));
                        }
                        let k = self.string()?;
                        self.skip_ws();
                        if self.s.get(self.at) != Some(&b':') {
                            return Err(self.invalid("colon"));
                        }
                        self.at += 1;
                        let v = self.value(depth)?;
                        t.raw_set(k, v).map_err(Self::lua_err)?;
                    } else {
                        let v = self.value(depth)?;
                        t.raw_set(i, v).map_err(Self::lua_err)?;
                        i += 1;
                    }
                    self.skip_ws();
                    match self.s.get(self.at) {
                        Some(b',') => self.at += 1,
                        Some(&x) if x == close => {
                            self.at += 1;
                            return Ok(Value::Table(t));
                        }
                        _ => {
                            return Err(self.invalid(if c == b'{' {
                                "comma or object end"
                            } else {
                                "comma or array end"
                            }));
                        }
                    }
                }
            }
            b'"' => Ok(self.string()?),
            b't' if self.s[self.at..].starts_with(b"true") => {
                self.at += 4;
                Ok(Value::Boolean(true))
            }
            b'f' if self.s[self.at..].starts_with(b"false") => {
                self.at += 5;
                Ok(Value::Boolean(false))
            }
            b'n' if self.s[self.at..].starts_with(b"null") => {
                self.at += 4;
                Ok(Value::LightUserData(LightUserData(std::ptr::null_mut())))
            }
            b'-' | b'0'..=b'9' => {
                let start = self.at;
                while self.at < self.s.len()
                    && matches!(self.s[self.at], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
                match text.parse::<f64>() {
                    Ok(n) => Ok(Value::Number(n)),
                    Err(_) => {
                        self.at = start;
                        Err(self.invalid("value"))
                    }
                }
            }
            _ => Err(self.invalid("value")),
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.at..self.at + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.at += 4;
        Some(v)
    }

    fn string(&mut self) -> Result<Value, String> {
        let start = self.at;
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.at) else {
                self.at = start;
                return Err(self.invalid("value"));
            };
            self.at += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        self.at = start;
                        return Err(self.invalid("value"));
                    };
                    self.at += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let Some(mut cp) = self.hex4() else {
                                self.at = start;
                                return Err(self.invalid("value"));
                            };
                            if (0xd800..0xdc00).contains(&cp) && self.s.get(self.at..self.at + 2) == Some(b"\\u") {
                                self.at += 2;
                                match self.hex4() {
                                    Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                    }
                                    _ => {
                                        self.at = start;
                                        return Err(self.invalid("value"));
                                    }
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => {
                            self.at = start;
                            return Err(self.invalid("value"));
                        }
                    }
                }
                _ => out.push(c),
            }
        }
        Ok(Value::String(self.lua.create_string(&out).map_err(Self::lua_err)?))
    }
}

// -------------------------------------------------------------------- bit

enum Bits {
    Int(u32),
    Text(Vec<u8>),
}

type BitOp = fn(&MultiValue, &str) -> Result<Bits, String>;

/// LuaBitOp's argument: a number normalised to 32 bits by adding 2^52+2^51
/// and keeping the low word of the double (round to nearest, wrap).
fn barg(args: &MultiValue, i: usize, name: &str) -> Result<u32, String> {
    let v = args.get(i);
    let n = v.and_then(to_number).ok_or_else(|| {
        format!(
            "bad argument #{} to '{name}' (number expected, got {})",
            i + 1,
            type_name(v)
        )
    })?;
    Ok((n + 6755399441055744.0).to_bits() as u32)
}

fn fold(args: &MultiValue, name: &str, f: fn(u32, u32) -> u32) -> Result<Bits, String> {
    let mut b = barg(args, 0, name)?;
    for i in 1..args.len() {
        b = f(b, barg(args, i, name)?);
    }
    Ok(Bits::Int(b))
}

fn shift(args: &MultiValue, name: &str, f: fn(u32, u32) -> u32) -> Result<Bits, String> {
    let b = barg(args, 0, name)?;
    let n = barg(args, 1, name)? & 31;
    Ok(Bits::Int(f(b, n)))
}

const BIT_OPS: &[(&str, BitOp)] = &[
    ("tobit", |a, n| Ok(Bits::Int(barg(a, 0, n)?))),
    ("bnot", |a, n| Ok(Bits::Int(!barg(a, 0, n)?))),
    ("band", |a, n| fold(a, n, |x, y| x & y)),
    ("bor", |a, n| fold(a, n, |x, y| x | y)),
    ("bxor", |a, n| fold(a, n, |x, y| x ^ y)),
    ("lshift", |a, n| shift(a, n, |b, s| b << s)),
    ("rshift", |a, n| shift(a, n, |b, s| b >> s)),
    ("arshift", |a, n| shift(a, n, |b, s| ((b as i32) >> s) as u32)),
    ("rol", |a, n| shift(a, n, |b, s| b.rotate_left(s))),
    ("ror", |a, n| shift(a, n, |b, s| b.rotate_right(s))),
    ("bswap", |a, n| Ok(Bits::Int(barg(a, 0, n)?.swap_bytes()))),
    ("tohex", |a, name| {
        let mut b = barg(a, 0, name)?;
        let mut n = if a.len() < 2 { 8 } else { barg(a, 1, name)? as i32 };
        let digits: &[u8; 16] = if n < 0 {
            n = n.saturating_neg();
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let n = n.min(8) as usize;
        let mut buf = vec![0u8; n];
        for slot in buf.iter_mut().rev() {
            *slot = digits[(b & 15) as usize];
            b >>= 4;
        }
        Ok(Bits::Text(buf))
    }),
];
