//! Conversions between command replies and Lua values, following Redis 7.0's rules for
//! `redis.call` results (RESP2 or RESP3 per `redis.setresp`) and for the value a script returns.

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::protocol::reply::format_double;
use crate::protocol::{Protocol, Reply};

/// A command's reply as the script sees it (Redis's redisProtocolToLuaType).
pub fn reply_to_lua(lua: &Lua, reply: &Reply, proto: Protocol) -> mlua::Result<Value> {
    let resp3 = proto == Protocol::Resp3;
    Ok(match reply {
        Reply::Simple(s) => Value::Table(single(lua, "ok", Value::String(lua.create_string(s)?))?),
        Reply::Status(s) => Value::Table(single(lua, "ok", Value::String(lua.create_string(s)?))?),
        Reply::Error(s) => Value::Table(single(lua, "err", Value::String(lua.create_string(s)?))?),
        Reply::Integer(i) => Value::Number(*i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Null | Reply::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Reply::Array(items) | Reply::Push(items) => array(lua, items, proto)?,
        Reply::Set(items) if resp3 => {
            let members = lua.create_table()?;
            for item in items {
                members.raw_set(reply_to_lua(lua, item, proto)?, true)?;
            }
            Value::Table(single(lua, "set", Value::Table(members))?)
        }
        Reply::Set(items) => array(lua, items, proto)?,
        Reply::Map(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(reply_to_lua(lua, k, proto)?, reply_to_lua(lua, v, proto)?)?;
            }
            Value::Table(single(lua, "map", Value::Table(map))?)
        }
        Reply::Map(pairs) => {
            let t = lua.create_table_with_capacity(pairs.len() * 2, 0)?;
            let mut i = 1;
            for (k, v) in pairs {
                t.raw_set(i, reply_to_lua(lua, k, proto)?)?;
                t.raw_set(i + 1, reply_to_lua(lua, v, proto)?)?;
                i += 2;
            }
            Value::Table(t)
        }
        Reply::Double(d) if resp3 => Value::Table(single(lua, "double", Value::Number(*d))?),
        Reply::Double(d) => Value::String(lua.create_string(format_double(*d))?),
        // The text came from a finite double, so it parses back (0 is never needed).
        Reply::DoubleText(t) if resp3 => Value::Table(single(
            lua,
            "double",
            Value::Number(t.parse().unwrap_or(0.0)),
        )?),
        Reply::DoubleText(t) => Value::String(lua.create_string(t)?),
        Reply::Boolean(b) if resp3 => Value::Boolean(*b),
        Reply::Boolean(b) => Value::Number(if *b { 1.0 } else { 0.0 }),
        Reply::Verbatim(fmt, b) if resp3 => {
            let v = lua.create_table()?;
            v.raw_set("format", *fmt)?;
            v.raw_set("string", lua.create_string(b)?)?;
            Value::Table(single(lua, "verbatim_string", Value::Table(v))?)
        }
        Reply::Verbatim(_, b) => Value::String(lua.create_string(b)?),
        Reply::BigNumber(n) if resp3 => Value::Table(single(
            lua,
            "big_number",
            Value::String(lua.create_string(n)?),
        )?),
        Reply::BigNumber(n) => Value::String(lua.create_string(n)?),
    })
}

fn single(lua: &Lua, field: &str, v: Value) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 1)?;
    t.raw_set(field, v)?;
    Ok(t)
}

fn array(lua: &Lua, items: &[Reply], proto: Protocol) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_set(i + 1, reply_to_lua(lua, item, proto)?)?;
    }
    Ok(Value::Table(t))
}

/// Deepest table nesting converted back into a reply (Redis gives up similarly on
/// self-referencing tables, which would otherwise recurse forever).
const MAX_DEPTH: usize = 64;

/// The value a script returned, as the reply its caller gets (Redis's luaReplyToRedisReply).
/// `proto` is the script's own protocol (`redis.setresp`): booleans are RESP3 booleans only
/// when it is 3.
pub fn lua_to_reply(v: &Value, proto: Protocol) -> Reply {
    to_reply(v, proto, 0)
}

fn to_reply(v: &Value, proto: Protocol, depth: usize) -> Reply {
    match v {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => match proto {
            Protocol::Resp3 => Reply::Boolean(*b),
            Protocol::Resp2 if *b => Reply::Integer(1),
            Protocol::Resp2 => Reply::Null,
        },
        Value::Integer(i) => Reply::Integer(*i),
        Value::Number(n) => Reply::Integer(lua_number_to_i64(*n)),
        Value::Table(t) if depth < MAX_DEPTH => table_to_reply(t, proto, depth),
        Value::Table(_) => Reply::err("ERR reached lua stack limit"),
        _ => Reply::Null,
    }
}

/// C's `(long long)` cast of a double as x86-64 performs it: out-of-range and NaN give
/// i64::MIN (so `return math.huge` answers what Redis answers).
pub fn lua_number_to_i64(n: f64) -> i64 {
    if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) {
        n.trunc() as i64
    } else {
        i64::MIN
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(super::format_lua_number(*n)),
        _ => None,
    }
}

/// Status and error texts cannot hold CR or LF; Redis turns them into spaces.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn table_to_reply(t: &Table, proto: Protocol, depth: usize) -> Reply {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Some(err) = text_of(&field("err")) {
        return Reply::Error(one_line(&err));
    }
    if let Some(ok) = text_of(&field("ok")) {
        return Reply::Status(one_line(&ok));
    }
    match field("double") {
        Value::Number(d) => return Reply::Double(d),
        Value::Integer(i) => return Reply::Double(i as f64),
        _ => {}
    }
    if let Some(n) = text_of(&field("big_number")) {
        return Reply::BigNumber(one_line(&n));
    }
    if let Value::Table(v) = field("verbatim_string") {
        let fmt = v.raw_get::<Value>("format").ok().and_then(|f| text_of(&f));
        let s = v.raw_get::<Value>("string").ok();
        if let (Some(fmt), Some(Value::String(s))) = (fmt, s) {
            let fmt: &'static str = match fmt.as_str() {
                "txt" => "txt",
                "mkd" => "mkd",
                _ => "txt",
            };
            return Reply::Verbatim(fmt, Bytes::copy_from_slice(&s.as_bytes()));
        }
    }
    if let Value::Table(m) = field("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                to_reply(&k, proto, depth + 1),
                to_reply(&v, proto, depth + 1),
            ));
        }
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let mut members = Vec::new();
        for (k, _) in s.pairs::<Value, Value>().flatten() {
            members.push(to_reply(&k, proto, depth + 1));
        }
        return Reply::Set(members);
    }
    // An array: elements 1, 2, ... up to the first nil.
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(to_reply(&v, proto, depth + 1)),
        }
    }
    Reply::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_truncate_like_a_c_cast() {
        assert_eq!(lua_number_to_i64(3.99), 3);
        assert_eq!(lua_number_to_i64(-3.5), -3);
        assert_eq!(lua_number_to_i64(f64::INFINITY), i64::MIN);
        assert_eq!(lua_number_to_i64(f64::NAN), i64::MIN);
        assert_eq!(lua_number_to_i64(1e300), i64::MIN);
    }

    #[test]
    fn replies_round_trip_through_lua() {
        let lua = Lua::new();
        let r = Reply::Array(vec![
            Reply::Integer(5),
            Reply::bulk_str("x"),
            Reply::Null,
            Reply::bulk_str("after nil"),
        ]);
        let v = reply_to_lua(&lua, &r, Protocol::Resp2).unwrap_or(Value::Nil);
        // RESP2 null becomes false, which converts back to a null reply: no truncation.
        assert_eq!(
            lua_to_reply(&v, Protocol::Resp2),
            Reply::Array(vec![
                Reply::Integer(5),
                Reply::bulk_str("x"),
                Reply::Null,
                Reply::bulk_str("after nil"),
            ])
        );
        let v3 = reply_to_lua(&lua, &r, Protocol::Resp3).unwrap_or(Value::Nil);
        // RESP3 null is nil: the array stops there.
        assert_eq!(
            lua_to_reply(&v3, Protocol::Resp3),
            Reply::Array(vec![Reply::Integer(5), Reply::bulk_str("x")])
        );
        let status = reply_to_lua(&lua, &Reply::ok(), Protocol::Resp2).unwrap_or(Value::Nil);
        assert_eq!(
            lua_to_reply(&status, Protocol::Resp2),
            Reply::Status("OK".into())
        );
        let d = reply_to_lua(&lua, &Reply::Double(1.5), Protocol::Resp3).unwrap_or(Value::Nil);
        assert_eq!(lua_to_reply(&d, Protocol::Resp3), Reply::Double(1.5));
        let d2 = reply_to_lua(&lua, &Reply::Double(1.5), Protocol::Resp2).unwrap_or(Value::Nil);
        assert_eq!(lua_to_reply(&d2, Protocol::Resp2), Reply::bulk_str("1.5"));
    }
}
