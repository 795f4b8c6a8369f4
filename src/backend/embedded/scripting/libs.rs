//! The libraries Redis gives scripts besides Lua's own: `cjson` (encode/decode with lua-cjson's
//! output rules), `bit` (LuaBitOp on 32-bit integers) and `redis.sha1hex`.

use mlua::{Lua, MultiValue, Table, Value, Variadic};
use sha1::{Digest, Sha1};

use super::format_lua_number;

/// Lowercase hex SHA-1, as EVALSHA names scripts.
pub fn sha1_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha1::digest(data);
    let mut out = String::with_capacity(40);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Installs `cjson` and `bit` into the globals.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    let cjson = lua.create_table()?;
    cjson.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| match encode(&v, 0) {
            Ok(s) => Ok(Value::String(lua.create_string(s)?)),
            Err(e) => Err(positioned(lua, e)),
        })?,
    )?;
    cjson.raw_set("decode", lua.create_function(decode)?)?;
    // cjson.null is the NULL light userdata, as in lua-cjson.
    cjson.raw_set("null", null())?;
    globals.raw_set("cjson", cjson)?;
    globals.raw_set("bit", bit_library(lua)?)?;
    Ok(())
}

/// lua-cjson refuses arrays with holes past this ratio (encode_sparse_ratio 2, safe 10).
fn array_len(t: &Table) -> Result<Option<usize>, String> {
    let mut max = 0usize;
    let mut count = 0usize;
    for (k, _) in t.pairs::<Value, Value>().flatten() {
        let idx = match k {
            Value::Integer(i) if i >= 1 => i as usize,
            Value::Number(n) if n >= 1.0 && n.fract() == 0.0 && n < 1e15 => n as usize,
            _ => return Ok(None),
        };
        max = max.max(idx);
        count += 1;
    }
    if max > 10 && max > count * 2 {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(Some(max))
}

/// cjson errors as lua-cjson raises them with `luaL_error`: the calling line in front
/// (`user_script:3: `) when a script line called the function, nothing when a C function
/// did (`pcall(cjson.decode, s)`); uncaught, they show as `ERR <that text>`.
fn positioned(lua: &Lua, msg: String) -> mlua::Error {
    // Level 0 is the running Rust function, level 1 its caller (luaL_where(L, 1)).
    let at = lua
        .inspect_stack(1, |d| {
            let line = d.current_line().filter(|l| *l > 0)?;
            let src = d.source().short_src?.into_owned();
            Some(format!("{src}:{line}: "))
        })
        .flatten()
        .unwrap_or_default();
    mlua::Error::external(super::Raised {
        msg: format!("{at}{msg}"),
        positioned: true,
    })
}

/// `cjson.decode(text)`: one string (or number, which Lua turns into its text) argument.
fn decode(lua: &Lua, args: MultiValue) -> mlua::Result<Value> {
    if args.len() != 1 {
        return Err(bad_argument(lua, "expected 1 argument"));
    }
    let text = match args.into_iter().next().unwrap_or(Value::Nil) {
        Value::String(s) => s,
        v @ (Value::Integer(_) | Value::Number(_)) => match lua.coerce_string(v)? {
            Some(s) => s,
            None => return Err(bad_argument(lua, "string expected, got number")),
        },
        other => {
            return Err(bad_argument(
                lua,
                &format!("string expected, got {}", lua_type_name(&other)),
            ));
        }
    };
    match super::cjson_decode::decode(lua, &text.as_bytes()) {
        Ok(v) => Ok(v),
        Err(super::cjson_decode::Failure::Json(msg)) => Err(positioned(lua, msg)),
        Err(super::cjson_decode::Failure::Lua(e)) => Err(e),
    }
}

/// luaL_argerror's text for argument 1: the function is named as its caller called it
/// (`decode`, a local's name, or `?` when called from C such as pcall); called as a method
/// (`cjson:decode(s)`), argument 1 is `self`.
fn bad_argument(lua: &Lua, why: &str) -> mlua::Error {
    let (name, method) = lua
        .inspect_stack(0, |d| {
            let names = d.names();
            (
                names.name.map(|n| n.into_owned()),
                names.name_what == Some("method"),
            )
        })
        .unwrap_or((None, false));
    let name = name.unwrap_or_else(|| "?".into());
    let msg = if method {
        format!("calling '{name}' on bad self ({why})")
    } else {
        format!("bad argument #1 to '{name}' ({why})")
    };
    positioned(lua, msg)
}

/// Lua 5.1's `lua_typename`: light userdata is plain "userdata".
fn lua_type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        _ => "userdata",
    }
}

pub(super) fn null() -> Value {
    Value::LightUserData(mlua::LightUserData(std::ptr::null_mut()))
}

const MAX_JSON_DEPTH: usize = 1000;

fn encode(v: &Value, depth: usize) -> Result<String, String> {
    if depth > MAX_JSON_DEPTH {
        return Err("Cannot serialise, excessive nesting (1001)".into());
    }
    Ok(match v {
        Value::Nil => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::LightUserData(p) if p.0.is_null() => "null".into(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => {
            if n.is_nan() || n.is_infinite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
            format_lua_number(*n)
        }
        Value::String(s) => quote(&s.as_bytes()),
        Value::Table(t) => match array_len(t)? {
            Some(n) if n > 0 => {
                let mut out = String::from("[");
                for i in 1..=n {
                    if i > 1 {
                        out.push(',');
                    }
                    let item = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
                    out.push_str(&encode(&item, depth + 1)?);
                }
                out.push(']');
                out
            }
            _ => {
                let mut out = String::from("{");
                let mut first = true;
                for (k, item) in t.pairs::<Value, Value>().flatten() {
                    let key = match &k {
                        Value::String(s) => quote(&s.as_bytes()),
                        Value::Integer(i) => format!("\"{i}\""),
                        Value::Number(n) => format!("\"{}\"", format_lua_number(*n)),
                        other => {
                            return Err(format!(
                                "Cannot serialise {}: table key must be a number or string",
                                other.type_name()
                            ));
                        }
                    };
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&key);
                    out.push(':');
                    out.push_str(&encode(&item, depth + 1)?);
                }
                out.push('}');
                out
            }
        },
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                other.type_name()
            ));
        }
    })
}

/// A JSON string as lua-cjson writes it (it escapes `/` too).
fn quote(s: &[u8]) -> String {
    let text = String::from_utf8_lossy(s);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// LuaBitOp: every operation works on numbers normalised to signed 32-bit integers.
fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    fn tobit(n: f64) -> i32 {
        // LuaBitOp's barg: add 2^52+2^51 and take the low word of the double's bits. The
        // addition rounds to nearest, ties to even (3.5 -> 4, 2.5 -> 2, -0.5 -> 0), and
        // the low word is the result modulo 2^32.
        ((n + 6_755_399_441_055_744.0).to_bits() as u32) as i32
    }
    let t = lua.create_table()?;
    t.raw_set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    t.raw_set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    let fold = |f: fn(i32, i32) -> i32| {
        move |_: &Lua, args: Variadic<f64>| {
            let mut it = args.iter();
            let first = it.next().map(|n| tobit(*n)).unwrap_or(0);
            Ok(it.fold(first, |acc, n| f(acc, tobit(*n))))
        }
    };
    t.raw_set("band", lua.create_function(fold(|a, b| a & b))?)?;
    t.raw_set("bor", lua.create_function(fold(|a, b| a | b))?)?;
    t.raw_set("bxor", lua.create_function(fold(|a, b| a ^ b))?)?;
    let shift = |f: fn(i32, u32) -> i32| {
        move |_: &Lua, (x, n): (f64, f64)| Ok(f(tobit(x), (tobit(n) as u32) & 31))
    };
    t.raw_set(
        "lshift",
        lua.create_function(shift(|x, n| ((x as u32) << n) as i32))?,
    )?;
    t.raw_set(
        "rshift",
        lua.create_function(shift(|x, n| ((x as u32) >> n) as i32))?,
    )?;
    t.raw_set("arshift", lua.create_function(shift(|x, n| x >> n))?)?;
    t.raw_set(
        "rol",
        lua.create_function(shift(|x, n| (x as u32).rotate_left(n) as i32))?,
    )?;
    t.raw_set(
        "ror",
        lua.create_function(shift(|x, n| (x as u32).rotate_right(n) as i32))?,
    )?;
    t.raw_set(
        "bswap",
        lua.create_function(|_, n: f64| Ok(tobit(n).swap_bytes()))?,
    )?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            let mut digits = n.map(tobit).unwrap_or(8);
            let upper = digits < 0;
            if upper {
                digits = -digits;
            }
            let digits = digits.clamp(1, 8) as usize;
            let v = tobit(x) as u32;
            let s = if upper {
                format!("{v:08X}")
            } else {
                format!("{v:08x}")
            };
            Ok(s[8 - digits..].to_string())
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_redis() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            sha1_hex(b"return 1"),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }

    #[test]
    fn strings_escape_like_cjson() {
        assert_eq!(quote(b"a/b\"\n"), "\"a\\/b\\\"\\n\"");
    }
}
