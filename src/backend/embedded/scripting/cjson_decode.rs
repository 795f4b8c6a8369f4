//! `cjson.decode`: JSON text to Lua values with lua-cjson 2.1.0's rules and error texts, as
//! Redis 7.0 bundles it (checked against redis-server 7.0.15).

use mlua::{Lua, Table, Value};

/// lua-cjson's default `decode_max_depth`.
const MAX_DEPTH: usize = 1000;

/// Why a decode stopped: bad JSON (lua-cjson's message, without the script position the
/// caller puts in front) or a failure of Lua itself (memory).
pub enum Failure {
    Json(String),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(e: mlua::Error) -> Self {
        Failure::Lua(e)
    }
}

/// Decodes one JSON text into a Lua value: `null` is `cjson.null` (the NULL light userdata),
/// arrays are tables 1..n, numbers are doubles.
pub fn decode(lua: &Lua, text: &[u8]) -> Result<Value, Failure> {
    // lua-cjson guesses UTF-16/32 from a NUL among the first two bytes and refuses it.
    if text.len() >= 2 && (text[0] == 0 || text[1] == 0) {
        return Err(Failure::Json(
            "JSON parser does not support UTF-16 or UTF-32".into(),
        ));
    }
    let mut p = Parser {
        lua,
        data: text,
        pos: 0,
        depth: 0,
        buf: Vec::new(),
    };
    let first = p.next_token();
    let value = p.value(first)?;
    let last = p.next_token();
    if !matches!(last.kind, Kind::End) {
        return Err(expected("the end", &last));
    }
    Ok(value)
}

enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    /// The text is in the parser's buffer.
    Str,
    Number(f64),
    Boolean(bool),
    Null,
    Colon,
    Comma,
    End,
    /// lua-cjson's T_ERROR: the message replaces the token name in the error.
    Error(&'static str),
}

struct Token {
    kind: Kind,
    /// 0-based byte offset; errors show it 1-based.
    at: usize,
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::ObjBegin => "T_OBJ_BEGIN",
        Kind::ObjEnd => "T_OBJ_END",
        Kind::ArrBegin => "T_ARR_BEGIN",
        Kind::ArrEnd => "T_ARR_END",
        Kind::Str => "T_STRING",
        Kind::Number(_) => "T_NUMBER",
        Kind::Boolean(_) => "T_BOOLEAN",
        Kind::Null => "T_NULL",
        Kind::Colon => "T_COLON",
        Kind::Comma => "T_COMMA",
        Kind::End => "T_END",
        Kind::Error(msg) => msg,
    }
}

fn expected(what: &str, token: &Token) -> Failure {
    Failure::Json(format!(
        "Expected {what} but found {} at character {}",
        kind_name(&token.kind),
        token.at + 1
    ))
}

struct Parser<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
    depth: usize,
    /// The last string token's decoded bytes (reused between tokens).
    buf: Vec<u8>,
}

impl Parser<'_> {
    /// The byte at `i`; lua-cjson reads a NUL-terminated buffer, so the end of the input and
    /// an embedded NUL both read as 0 (T_END outside strings).
    fn byte(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, word: &[u8]) -> bool {
        self.data
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
    }

    fn starts_with_ignore_case(&self, word: &[u8]) -> bool {
        self.data
            .get(self.pos..self.pos + word.len())
            .is_some_and(|rest| rest.eq_ignore_ascii_case(word))
    }

    fn next_token(&mut self) -> Token {
        // Only these four are whitespace to lua-cjson (not \f or \v).
        while matches!(self.byte(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let at = self.pos;
        let single = |kind| Token { kind, at };
        let kind = match self.byte(at) {
            0 => return single(Kind::End),
            b'{' => Kind::ObjBegin,
            b'}' => Kind::ObjEnd,
            b'[' => Kind::ArrBegin,
            b']' => Kind::ArrEnd,
            b':' => Kind::Colon,
            b',' => Kind::Comma,
            b'"' => return self.string_token(),
            b'-' | b'0'..=b'9' => return self.number_token(),
            b't' | b'f' | b'n' | b'i' | b'I' | b'N' | b'+' => {
                if self.starts_with(b"true") {
                    self.pos += 4;
                    return single(Kind::Boolean(true));
                }
                if self.starts_with(b"false") {
                    self.pos += 5;
                    return single(Kind::Boolean(false));
                }
                if self.starts_with(b"null") {
                    self.pos += 4;
                    return single(Kind::Null);
                }
                // Not valid JSON, but lua-cjson (decode_invalid_numbers on, the default)
                // hands these to strtod: `+1`, `inf`, `Infinity`, `nan`, `NaN`...
                if self.byte(at) == b'+'
                    || self.starts_with_ignore_case(b"inf")
                    || self.starts_with_ignore_case(b"nan")
                {
                    return self.number_token();
                }
                return single(Kind::Error("invalid token"));
            }
            _ => return single(Kind::Error("invalid token")),
        };
        self.pos += 1;
        single(kind)
    }

    fn number_token(&mut self) -> Token {
        let at = self.pos;
        match strtod(self.data, at) {
            Some((n, len)) => {
                self.pos += len;
                Token {
                    kind: Kind::Number(n),
                    at,
                }
            }
            None => Token {
                kind: Kind::Error("invalid number"),
                at,
            },
        }
    }

    /// A string from its opening quote; an error token points at the offending byte (the
    /// backslash of a bad escape).
    fn string_token(&mut self) -> Token {
        let start = self.pos;
        self.pos += 1;
        self.buf.clear();
        loop {
            let c = self.byte(self.pos);
            let fail = |at| Token {
                kind: Kind::Error(match c {
                    0 => "unexpected end of string",
                    _ => "invalid escape code",
                }),
                at,
            };
            match c {
                b'"' => break,
                0 => return fail(self.pos),
                b'\\' => {
                    let plain = match self.byte(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            if self.unicode_escape() {
                                continue;
                            }
                            return Token {
                                kind: Kind::Error("invalid unicode escape code"),
                                at: self.pos,
                            };
                        }
                        _ => return fail(self.pos),
                    };
                    self.buf.push(plain);
                    self.pos += 2;
                }
                // Control characters and invalid UTF-8 pass through untouched.
                other => {
                    self.buf.push(other);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        Token {
            kind: Kind::Str,
            at: start,
        }
    }

    /// `\uXXXX` (or a `\uD8xx\uDCxx` surrogate pair) at `pos` as UTF-8; false if malformed,
    /// including a lone or reversed surrogate.
    fn unicode_escape(&mut self) -> bool {
        let Some(high) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut code = high;
        let mut len = 6;
        if high & 0xF800 == 0xD800 {
            if high & 0x400 != 0 {
                return false;
            }
            if self.byte(self.pos + 6) != b'\\' || self.byte(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.pos + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            code = (((high & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        push_utf8(&mut self.buf, code);
        self.pos += len;
        true
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (at..at + 4).try_fold(0u32, |acc, i| {
            char::from(self.byte(i))
                .to_digit(16)
                .map(|d| (acc << 4) | d)
        })
    }

    /// The value starting with `token`. Containers are kept on an explicit stack, not the
    /// Rust one: 1000 levels of recursion can overflow a small thread stack.
    fn value(&mut self, mut token: Token) -> Result<Value, Failure> {
        let mut open: Vec<Open> = Vec::new();
        loop {
            let mut value = match token.kind {
                Kind::Str => Value::String(self.lua.create_string(&self.buf)?),
                Kind::Number(n) => Value::Number(n),
                Kind::Boolean(b) => Value::Boolean(b),
                Kind::Null => super::libs::null(),
                Kind::ObjBegin => {
                    self.descend(token.at)?;
                    let t = self.lua.create_table()?;
                    let first = self.next_token();
                    if matches!(first.kind, Kind::ObjEnd) {
                        self.depth -= 1;
                        Value::Table(t)
                    } else {
                        let key = self.key(first)?;
                        open.push(Open::Object(t, key));
                        token = self.next_token();
                        continue;
                    }
                }
                Kind::ArrBegin => {
                    self.descend(token.at)?;
                    let t = self.lua.create_table()?;
                    let first = self.next_token();
                    if matches!(first.kind, Kind::ArrEnd) {
                        self.depth -= 1;
                        Value::Table(t)
                    } else {
                        open.push(Open::Array(t, 1));
                        token = first;
                        continue;
                    }
                }
                _ => return Err(expected("value", &token)),
            };
            // A value is complete: store it in its container, closing containers as long as
            // their end follows, until a comma asks for the next value.
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(value);
                };
                let after = self.next_token();
                let closed = match top {
                    Open::Array(t, i) => {
                        t.raw_set(*i, value)?;
                        *i += 1;
                        match after.kind {
                            Kind::ArrEnd => true,
                            Kind::Comma => false,
                            _ => return Err(expected("comma or array end", &after)),
                        }
                    }
                    Open::Object(t, key) => {
                        // Duplicate keys: the last one wins, as rawset does in lua-cjson.
                        t.raw_set(&*key, value)?;
                        match after.kind {
                            Kind::ObjEnd => true,
                            Kind::Comma => {
                                let next = self.next_token();
                                *key = self.key(next)?;
                                false
                            }
                            _ => return Err(expected("comma or object end", &after)),
                        }
                    }
                };
                if !closed {
                    token = self.next_token();
                    break;
                }
                self.depth -= 1;
                value = match open.pop() {
                    Some(Open::Array(t, _) | Open::Object(t, _)) => Value::Table(t),
                    None => Value::Nil,
                };
            }
        }
    }

    /// An object key and the colon after it.
    fn key(&mut self, token: Token) -> Result<mlua::LuaString, Failure> {
        if !matches!(token.kind, Kind::Str) {
            return Err(expected("object key string", &token));
        }
        let key = self.lua.create_string(&self.buf)?;
        let colon = self.next_token();
        if !matches!(colon.kind, Kind::Colon) {
            return Err(expected("colon", &colon));
        }
        Ok(key)
    }

    fn descend(&mut self, at: usize) -> Result<(), Failure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Failure::Json(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth,
                at + 1
            )));
        }
        Ok(())
    }
}

/// A container being filled: an array with its next index, an object with its current key.
enum Open {
    Array(Table, usize),
    Object(Table, mlua::LuaString),
}

fn push_utf8(out: &mut Vec<u8>, code: u32) {
    // Every surrogate is refused before this, so char::from_u32 always succeeds; the
    // fallback (the 3-byte layout lua-cjson would write) only keeps this total.
    match char::from_u32(code) {
        Some(c) => {
            let mut tmp = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
        None => out.extend_from_slice(&[
            0xE0 | (code >> 12) as u8,
            0x80 | ((code >> 6) & 0x3F) as u8,
            0x80 | (code & 0x3F) as u8,
        ]),
    }
}

/// glibc `strtod` in the C locale from `data[start..]`: the value and how many bytes it
/// used, or None where strtod converts nothing. lua-cjson takes whatever prefix strtod
/// accepts, so `1.`, `-0`, `01`, `0x1p4`, `1e400` (inf), `-nan`, `infinity` are numbers, and
/// what strtod leaves (`x` of `0x`, `e` of `1e`) is the next token.
fn strtod(data: &[u8], start: usize) -> Option<(f64, usize)> {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let word_at = |i: usize, word: &[u8]| {
        data.get(i..i + word.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(word))
    };
    let mut i = start;
    let negative = at(i) == b'-';
    if matches!(at(i), b'-' | b'+') {
        i += 1;
    }
    let sign = |x: f64| if negative { -x } else { x };
    if word_at(i, b"inf") {
        let len = if word_at(i, b"infinity") { 8 } else { 3 };
        return Some((sign(f64::INFINITY), i + len - start));
    }
    if word_at(i, b"nan") {
        i += 3;
        // `nan(chars)` takes the parenthesised part only when it is closed.
        if at(i) == b'(' {
            let mut j = i + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                i = j + 1;
            }
        }
        return Some((sign(f64::NAN), i - start));
    }
    if at(i) == b'0'
        && (at(i + 1) | 0x20) == b'x'
        && (at(i + 2).is_ascii_hexdigit() || (at(i + 2) == b'.' && at(i + 3).is_ascii_hexdigit()))
    {
        let (value, end) = hex_float(data, i + 2);
        return Some((sign(value), end - start));
    }
    let digits_from = |mut j: usize| {
        while at(j).is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits_from(i);
    let mut end = int_end;
    let mut any_digit = int_end > i;
    if at(end) == b'.' {
        let frac_end = digits_from(end + 1);
        any_digit |= frac_end > end + 1;
        end = frac_end;
    }
    if !any_digit {
        return None;
    }
    if (at(end) | 0x20) == b'e' {
        let mut j = end + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            end = digits_from(j);
        }
    }
    // The accepted slice is ASCII digits, '.', 'e' and signs: Rust's parser reads that
    // grammar (including `1.` and `.5`) and rounds correctly, as glibc does.
    let text = std::str::from_utf8(data.get(start..end)?).ok()?;
    let value = text.parse::<f64>().ok()?;
    Some((value, end - start))
}

/// A hex float's digits after `0x` (at least one digit is known to be there): the value,
/// rounded to nearest even like glibc, and where it ends.
fn hex_float(data: &[u8], mut i: usize) -> (f64, usize) {
    let at = |i: usize| data.get(i).copied().unwrap_or(0);
    let hex = |c: u8| char::from(c).to_digit(16);
    // 15 hex digits fit below 2^60 with room to spare; digits past them only matter as a
    // sticky bit for rounding, and integer ones shift the exponent.
    let mut mant: u64 = 0;
    let mut exp: i64 = 0;
    let mut sticky = false;
    let mut take = |d: u32, fraction: bool, exp: &mut i64| {
        if mant < (1 << 56) {
            mant = (mant << 4) | u64::from(d);
            if fraction {
                *exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !fraction {
                *exp += 4;
            }
        }
    };
    while let Some(d) = hex(at(i)) {
        take(d, false, &mut exp);
        i += 1;
    }
    if at(i) == b'.' {
        i += 1;
        while let Some(d) = hex(at(i)) {
            take(d, true, &mut exp);
            i += 1;
        }
    }
    if (at(i) | 0x20) == b'p' {
        let mut j = i + 1;
        let negative = at(j) == b'-';
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        if at(j).is_ascii_digit() {
            let mut e: i64 = 0;
            while at(j).is_ascii_digit() {
                e = (e * 10 + i64::from(at(j) - b'0')).min(1 << 40);
                j += 1;
            }
            exp += if negative { -e } else { e };
            i = j;
        }
    }
    (scale(mant, sticky, exp), i)
}

/// `mant * 2^exp` (plus a sticky nonzero tail below `mant`) rounded to nearest even.
fn scale(mant: u64, sticky: bool, exp: i64) -> f64 {
    if mant == 0 {
        return 0.0;
    }
    let shift = mant.leading_zeros();
    // Bit 0 is below the 53 kept bits whenever the tail matters, so it can carry the sticky.
    let m = u128::from(mant << shift) | u128::from(sticky);
    let exp = exp - i64::from(shift);
    // The leading bit's weight is 2^(exp + 63).
    let top = exp + 63;
    if top > 1023 {
        return f64::INFINITY;
    }
    let keep = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    if keep < 0 {
        return 0.0;
    }
    let drop = 64 - keep as u32;
    let mut kept = m >> drop;
    let rest = m & ((1u128 << drop) - 1);
    let half = 1u128 << (drop - 1);
    if rest > half || (rest == half && kept & 1 == 1) {
        kept += 1;
    }
    // kept <= 2^53 is exact in a double; the power-of-two steps are exact too, as the
    // final value is representable (or overflows to inf, as strtod does).
    let mut value = kept as f64;
    let mut e = exp + i64::from(drop);
    while e > 1000 {
        value *= f64::from_bits((1023 + 1000) << 52);
        e -= 1000;
    }
    while e < -1000 {
        value *= f64::from_bits((1023 - 1000) << 52);
        e += 1000;
    }
    value * f64::from_bits(((1023 + e) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &[u8]) -> Result<Value, String> {
        let lua = Lua::new();
        match decode(&lua, text) {
            Ok(v) => Ok(v),
            Err(Failure::Json(m)) => Err(m),
            Err(Failure::Lua(e)) => Err(format!("lua: {e}")),
        }
    }

    fn err(text: &str) -> String {
        match run(text.as_bytes()) {
            Ok(v) => format!("ok {v:?}"),
            Err(m) => m,
        }
    }

    fn num(text: &str) -> f64 {
        match run(text.as_bytes()) {
            Ok(Value::Number(n)) => n,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn string(text: &[u8]) -> Vec<u8> {
        let lua = Lua::new();
        match decode(&lua, text) {
            Ok(Value::String(s)) => s.as_bytes().to_vec(),
            _ => panic!("not a string: {}", String::from_utf8_lossy(text)),
        }
    }

    #[test]
    fn numbers_as_strtod_reads_them() {
        assert_eq!(num("12.5"), 12.5);
        assert_eq!(num("0x10"), 16.0);
        assert_eq!(num("0x1p4"), 16.0);
        assert_eq!(num("0X1.8P1"), 3.0);
        assert_eq!(num("-0x.8"), -0.5);
        assert_eq!(num("1e400"), f64::INFINITY);
        assert_eq!(num("-1e400"), f64::NEG_INFINITY);
        assert_eq!(num("1e-400"), 0.0);
        assert!(num("-0").is_sign_negative());
        assert_eq!(num("01"), 1.0);
        assert_eq!(num("00"), 0.0);
        assert_eq!(num("1."), 1.0);
        assert_eq!(num("-.5"), -0.5);
        assert_eq!(num("+1"), 1.0);
        assert_eq!(num("inf"), f64::INFINITY);
        assert_eq!(num("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(num("INF"), f64::INFINITY);
        assert!(num("nan").is_nan() && num("nan").is_sign_positive());
        assert!(num("-nan").is_nan() && num("-nan").is_sign_negative());
        assert!(num("nan(123)").is_nan());
        assert_eq!(num("1E-2"), 0.01);
        assert_eq!(num("4.9e-324"), f64::from_bits(1));
        assert_eq!(num("0xffffffffffffffffffff"), 1.2089258196146292e24);
        assert_eq!(num("0x1.fffffffffffff8p0"), 2.0);
        assert_eq!(num("0x1p-1074"), f64::from_bits(1));
        assert_eq!(num("0x1p-1075"), 0.0);
        assert_eq!(num("0x1.8p-1075"), f64::from_bits(1));
        assert_eq!(num("0x1p1024"), f64::INFINITY);
        assert_eq!(num("0x1.fffffffffffffp1023"), f64::MAX);
    }

    #[test]
    fn number_errors() {
        assert_eq!(
            err(".5"),
            "Expected value but found invalid token at character 1"
        );
        assert_eq!(
            err("-"),
            "Expected value but found invalid number at character 1"
        );
        assert_eq!(
            err("- 1"),
            "Expected value but found invalid number at character 1"
        );
        assert_eq!(
            err("1e"),
            "Expected the end but found invalid token at character 2"
        );
        assert_eq!(
            err("0x"),
            "Expected the end but found invalid token at character 2"
        );
        assert_eq!(
            err("infx"),
            "Expected the end but found invalid token at character 4"
        );
        assert_eq!(
            err("1.2.3"),
            "Expected the end but found invalid token at character 4"
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(string(br#""\/\b\f\n\r\t\"\\""#), b"/\x08\x0c\n\r\t\"\\");
        assert_eq!(string(br#""\u00e9\u0000z""#), "é\0z".as_bytes());
        assert_eq!(string(br#""\uD83D\uDE00""#), "😀".as_bytes());
        assert_eq!(string(b"\"a\x01\tb\xff\""), b"a\x01\tb\xff");
        assert_eq!(string(br#""""#), b"");
    }

    #[test]
    fn string_errors() {
        for (text, msg) in [
            (r#""abc"#, "unexpected end of string at character 5"),
            ("\"", "unexpected end of string at character 2"),
            (r#""a\x""#, "invalid escape code at character 3"),
            (r#""\u12""#, "invalid unicode escape code at character 2"),
            (r#""\u12g4""#, "invalid unicode escape code at character 2"),
            (r#""\ud800""#, "invalid unicode escape code at character 2"),
            (r#""\udc00""#, "invalid unicode escape code at character 2"),
            (
                r#""\ud800\u0041""#,
                "invalid unicode escape code at character 2",
            ),
        ] {
            assert_eq!(
                err(text),
                format!("Expected value but found {msg}"),
                "{text}"
            );
        }
        assert_eq!(
            err("\"a\0b\""),
            "Expected value but found unexpected end of string at character 3"
        );
    }

    #[test]
    fn structure_errors() {
        for (text, msg) in [
            ("", "Expected value but found T_END at character 1"),
            (" ", "Expected value but found T_END at character 2"),
            (
                "{",
                "Expected object key string but found T_END at character 2",
            ),
            (
                "{bad",
                "Expected object key string but found invalid token at character 2",
            ),
            (
                "[1] x",
                "Expected the end but found invalid token at character 5",
            ),
            ("[1,]", "Expected value but found T_ARR_END at character 4"),
            (
                "[1 2]",
                "Expected comma or array end but found T_NUMBER at character 4",
            ),
            (
                r#"{"a" 1}"#,
                "Expected colon but found T_NUMBER at character 6",
            ),
            (
                r#"{"a":1 "b":2}"#,
                "Expected comma or object end but found T_STRING at character 8",
            ),
            (
                r#"{"a":1,}"#,
                "Expected object key string but found T_OBJ_END at character 8",
            ),
            (
                "{1:2}",
                "Expected object key string but found T_NUMBER at character 2",
            ),
            ("}", "Expected value but found T_OBJ_END at character 1"),
            (":", "Expected value but found T_COLON at character 1"),
            (",", "Expected value but found T_COMMA at character 1"),
            (
                "tru",
                "Expected value but found invalid token at character 1",
            ),
            (
                "truex",
                "Expected the end but found invalid token at character 5",
            ),
            (
                "true1",
                "Expected the end but found T_NUMBER at character 5",
            ),
            (
                "[1][",
                "Expected the end but found T_ARR_BEGIN at character 4",
            ),
            (
                "{}{",
                "Expected the end but found T_OBJ_BEGIN at character 3",
            ),
            ("1 null", "Expected the end but found T_NULL at character 3"),
            (
                "1 false",
                "Expected the end but found T_BOOLEAN at character 3",
            ),
            (
                "\x0c1",
                "Expected value but found invalid token at character 1",
            ),
            ("\0", "Expected value but found T_END at character 1"),
            ("\0\x01", "JSON parser does not support UTF-16 or UTF-32"),
            ("1\0", "JSON parser does not support UTF-16 or UTF-32"),
        ] {
            assert_eq!(err(text), msg, "{text:?}");
        }
        // An embedded NUL ends the text.
        assert!(matches!(run(b"[1]\0x"), Ok(Value::Table(_))));
    }

    #[test]
    fn nesting_limit() {
        assert!(run(format!("{}{}", "[".repeat(1000), "]".repeat(1000)).as_bytes()).is_ok());
        assert_eq!(
            err(&"[".repeat(1001)),
            "Found too many nested data structures (1001) at character 1001"
        );
        assert_eq!(
            err(&r#"{"a":"#.repeat(1001)),
            "Found too many nested data structures (1001) at character 5001"
        );
        assert_eq!(
            err(&"[".repeat(1000)),
            "Expected value but found T_END at character 1001"
        );
    }

    #[test]
    fn values() {
        let lua = Lua::new();
        let v = match decode(
            &lua,
            br#" { "a" : [1, 2.5, "x", true, false, null, [], {}], "a2": {"b": 1, "b": 2} } "#,
        ) {
            Ok(Value::Table(t)) => t,
            _ => panic!("not a table"),
        };
        let a: Table = v.raw_get("a").expect("a");
        assert_eq!(a.raw_len(), 8);
        assert_eq!(a.raw_get::<f64>(2).expect("2"), 2.5);
        assert_eq!(a.raw_get::<String>(3).expect("3"), "x");
        assert!(a.raw_get::<bool>(4).expect("4"));
        assert!(
            matches!(a.raw_get::<Value>(6).expect("6"), Value::LightUserData(p) if p.0.is_null())
        );
        let empty: Table = a.raw_get(7).expect("7");
        assert_eq!(empty.raw_len(), 0);
        let dup: Table = v.raw_get("a2").expect("a2");
        assert_eq!(dup.raw_get::<f64>("b").expect("b"), 2.0);
    }
}
