//! String commands of the embedded engine, with t_string.c's semantics: GET SET (and its
//! EX/PX/EXAT/PXAT/NX/XX/KEEPTTL/GET options) SETNX SETEX PSETEX GETSET GETDEL GETEX MGET
//! MSET MSETNX APPEND STRLEN INCR INCRBY INCRBYFLOAT DECR DECRBY GETRANGE SUBSTR SETRANGE LCS.
//!
//! Replies, error texts, the order in which arguments are validated, TTL rules (SET and
//! GETSET clear a TTL, INCR/APPEND/SETRANGE/INCRBYFLOAT keep it) and OBJECT ENCODING
//! (`int` after INCR, `raw` after APPEND/SETRANGE, `embstr` after INCRBYFLOAT) follow
//! Redis 7.0. INCRBYFLOAT emulates Redis's `long double` arithmetic and `%.17Lf`
//! formatting exactly, in software (see [`longdouble`]).

use bytes::{Bytes, BytesMut};

use super::Ctx;
use super::num::parse_i64;
use super::value::{StrEncoding, Value};
use crate::protocol::{Reply, errors};

/// Redis's default proto-max-bulk-len: the largest string APPEND/SETRANGE may build.
// TODO: read the configured `limits.max_bulk_len` once the engine is given it.
const PROTO_MAX_BULK_LEN: u64 = 512 * 1024 * 1024;

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("get", get);
    t.insert("set", set);
    t.insert("setnx", setnx);
    t.insert("setex", setex);
    t.insert("psetex", psetex);
    t.insert("getset", getset);
    t.insert("getdel", getdel);
    t.insert("getex", getex);
    t.insert("mget", mget);
    t.insert("mset", mset);
    t.insert("msetnx", msetnx);
    t.insert("append", append);
    t.insert("strlen", strlen);
    t.insert("incr", incr);
    t.insert("decr", decr);
    t.insert("incrby", incrby);
    t.insert("decrby", decrby);
    t.insert("incrbyfloat", incrbyfloat);
    t.insert("getrange", getrange);
    t.insert("substr", substr);
    t.insert("setrange", setrange);
    t.insert("lcs", lcs);
}

/// Reads a string value: Ok(None) if absent, Err(WRONGTYPE) if another type.
pub(super) fn read_string(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Bytes>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match e.value.as_str() {
            Some(s) => Ok(Some(s.clone())),
            None => Err(Reply::err(errors::WRONGTYPE)),
        },
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

/// Handlers are written as `Result<Reply, Reply>` so `?` can return error replies.
fn done(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

/// Arity as in Redis's command table (positive: exact, negative: at least). The table has
/// checked it before dispatch; this keeps handlers panic-free if called any other way.
fn arity(argv: &[Bytes], arity: i32, name: &str) -> Result<(), Reply> {
    let n = argv.len() as i64;
    let a = arity as i64;
    if (a > 0 && n != a) || (a < 0 && n < -a) {
        return Err(Reply::err(errors::wrong_arity(name)));
    }
    Ok(())
}

/// The argument as C code sees it: up to the first NUL byte. Redis compares option names
/// with `strcasecmp`/byte tests on NUL-terminated strings, so `"NX\0junk"` is `NX`.
fn cstr(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

fn opt_is(arg: &[u8], name: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(name.as_bytes())
}

fn not_integer() -> Reply {
    Reply::err(errors::NOT_INTEGER)
}

fn wrongtype() -> Reply {
    Reply::err(errors::WRONGTYPE)
}

fn too_long() -> Reply {
    Reply::err(errors::STRING_TOO_LONG)
}

/// A value stored by SET-like commands, copied out of the request buffer.
fn stored(val: &[u8]) -> Value {
    Value::string(Bytes::copy_from_slice(val))
}

/// Redis's checkStringLength(size, append): the result must fit in proto-max-bulk-len.
fn check_length(size: u64, append: u64) -> Result<u64, Reply> {
    match size.checked_add(append) {
        Some(t) if t <= PROTO_MAX_BULK_LEN => Ok(t),
        _ => Err(too_long()),
    }
}

/// Redis's sdsMakeRoomFor growth: double while small, then 1 MiB at a time.
fn grown_capacity(need: usize) -> usize {
    const SDS_MAX_PREALLOC: usize = 1024 * 1024;
    if need < SDS_MAX_PREALLOC {
        need.saturating_mul(2)
    } else {
        need.saturating_add(SDS_MAX_PREALLOC)
    }
}

/// Makes `data` writable with room for `need` bytes: in place when the keyspace holds the
/// only reference and it has the room (so repeated APPENDs are amortized O(1) like sds),
/// otherwise by copying into a new buffer with sds-like spare capacity.
fn writable(data: Bytes, need: usize) -> BytesMut {
    match data.try_into_mut() {
        Ok(m) if m.capacity() >= need => m,
        Ok(m) => copy_with_room(&m, need),
        Err(b) => copy_with_room(&b, need),
    }
}

fn copy_with_room(old: &[u8], need: usize) -> BytesMut {
    let mut m = BytesMut::with_capacity(grown_capacity(need));
    m.extend_from_slice(old);
    m
}

/// Takes the string out of an entry's value (leaving an empty placeholder) so the buffer
/// can be reused when nothing else references it.
fn take_string(value: &mut Value) -> Option<Bytes> {
    let data = value.as_str()?.clone();
    *value = Value::raw_string(Bytes::new());
    Some(data)
}

/// Replaces a key's value keeping its TTL (Redis's dbOverwrite), or adds the key without
/// one (dbAdd).
fn overwrite_or_add(ctx: &mut Ctx, key: &Bytes, value: Value) {
    let now = ctx.now_ms;
    match ctx.lookup(key) {
        Some(e) => {
            e.value = value;
            e.touch(now);
        }
        None => ctx.db().set(key, value, None, now),
    }
}

// ---------------------------------------------------------------------------------------
// SET and friends
// ---------------------------------------------------------------------------------------

const OBJ_SET_NX: u16 = 1 << 0;
const OBJ_SET_XX: u16 = 1 << 1;
const OBJ_EX: u16 = 1 << 2;
const OBJ_PX: u16 = 1 << 3;
const OBJ_KEEPTTL: u16 = 1 << 4;
const OBJ_SET_GET: u16 = 1 << 5;
const OBJ_EXAT: u16 = 1 << 6;
const OBJ_PXAT: u16 = 1 << 7;
const OBJ_PERSIST: u16 = 1 << 8;

/// Which command's options [`parse_extended`] reads (t_string.c's COMMAND_GET/COMMAND_SET).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExtKind {
    Get,
    Set,
}

/// parseExtendedStringArgumentsOrReply: the options of SET (from argv[3]) or GETEX (from
/// argv[2]), with exactly Redis's rules for which combinations are syntax errors (repeating
/// NX, GET, KEEPTTL or one expiry option is allowed; the last expiry value wins).
fn parse_extended(argv: &[Bytes], kind: ExtKind) -> Result<(u16, Option<&Bytes>), Reply> {
    let set = kind == ExtKind::Set;
    let mut flags = 0u16;
    let mut expire = None;
    let mut j = if set { 3 } else { 2 };
    while j < argv.len() {
        let opt = &argv[j];
        let next = argv.get(j + 1);
        let has = |f: u16| flags & f != 0;
        if opt_is(opt, "nx") && !has(OBJ_SET_XX) && set {
            flags |= OBJ_SET_NX;
        } else if opt_is(opt, "xx") && !has(OBJ_SET_NX) && set {
            flags |= OBJ_SET_XX;
        } else if opt_is(opt, "get") && set {
            flags |= OBJ_SET_GET;
        } else if opt_is(opt, "keepttl")
            && !has(OBJ_PERSIST | OBJ_EX | OBJ_EXAT | OBJ_PX | OBJ_PXAT)
            && set
        {
            flags |= OBJ_KEEPTTL;
        } else if opt_is(opt, "persist")
            && !set
            && !has(OBJ_EX | OBJ_EXAT | OBJ_PX | OBJ_PXAT | OBJ_KEEPTTL)
        {
            flags |= OBJ_PERSIST;
        } else if let Some(v) = next.filter(|_| {
            opt_is(opt, "ex") && !has(OBJ_KEEPTTL | OBJ_PERSIST | OBJ_EXAT | OBJ_PX | OBJ_PXAT)
        }) {
            flags |= OBJ_EX;
            expire = Some(v);
            j += 1;
        } else if let Some(v) = next.filter(|_| {
            opt_is(opt, "px") && !has(OBJ_KEEPTTL | OBJ_PERSIST | OBJ_EX | OBJ_EXAT | OBJ_PXAT)
        }) {
            flags |= OBJ_PX;
            expire = Some(v);
            j += 1;
        } else if let Some(v) = next.filter(|_| {
            opt_is(opt, "exat") && !has(OBJ_KEEPTTL | OBJ_PERSIST | OBJ_EX | OBJ_PX | OBJ_PXAT)
        }) {
            flags |= OBJ_EXAT;
            expire = Some(v);
            j += 1;
        } else if let Some(v) = next.filter(|_| {
            opt_is(opt, "pxat") && !has(OBJ_KEEPTTL | OBJ_PERSIST | OBJ_EX | OBJ_EXAT | OBJ_PX)
        }) {
            flags |= OBJ_PXAT;
            expire = Some(v);
            j += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        j += 1;
    }
    Ok((flags, expire))
}

/// getExpireMillisecondsOrReply: the expiry argument as an absolute unix-ms time.
/// Non-positive values and anything that would overflow are `invalid expire time`.
fn expire_at_ms(now_ms: u64, arg: &[u8], flags: u16, name: &str) -> Result<u64, Reply> {
    let invalid = || Reply::err(errors::invalid_expire(name));
    let mut ms = parse_i64(arg).ok_or_else(not_integer)?;
    let seconds = flags & (OBJ_EX | OBJ_EXAT) != 0;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid());
    }
    if seconds {
        ms *= 1000;
    }
    if flags & (OBJ_EX | OBJ_PX) != 0 {
        let now = i64::try_from(now_ms).map_err(|_| invalid())?;
        ms = ms.checked_add(now).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms as u64)
}

/// setGenericCommand. `ok`/`abort` are the replies when the value was / was not stored
/// (with GET, the old value is the reply either way).
#[allow(clippy::too_many_arguments)]
fn set_generic(
    ctx: &mut Ctx,
    flags: u16,
    key: &Bytes,
    val: &[u8],
    expire: Option<&Bytes>,
    name: &str,
    ok: Reply,
    abort: Reply,
) -> Result<Reply, Reply> {
    let now = ctx.now_ms;
    let at = match expire {
        Some(e) => Some(expire_at_ms(now, e, flags, name)?),
        None => None,
    };
    let old = if flags & OBJ_SET_GET != 0 {
        Some(match read_string(ctx, key)? {
            Some(v) => Reply::Bulk(v),
            None => Reply::Null,
        })
    } else {
        None
    };
    let existing_ttl = ctx.live_ttl(key);
    let found = existing_ttl.is_some();
    if (flags & OBJ_SET_NX != 0 && found) || (flags & OBJ_SET_XX != 0 && !found) {
        return Ok(old.unwrap_or(abort));
    }
    let ttl = match at {
        Some(t) => Some(t),
        None if flags & OBJ_KEEPTTL != 0 => existing_ttl.flatten(),
        None => None,
    };
    ctx.db().set(key, stored(val), ttl, now);
    ctx.dirty(1);
    Ok(old.unwrap_or(ok))
}

fn get(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 2, "get")?;
        Ok(match read_string(ctx, &argv[1])? {
            Some(v) => Reply::Bulk(v),
            None => Reply::Null,
        })
    })())
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ms-ts | KEEPTTL]
fn set(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, -3, "set")?;
        let (flags, expire) = parse_extended(argv, ExtKind::Set)?;
        set_generic(
            ctx,
            flags,
            &argv[1],
            &argv[2],
            expire,
            "set",
            Reply::ok(),
            Reply::Null,
        )
    })())
}

fn setnx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 3, "setnx")?;
        let (one, zero) = (Reply::Integer(1), Reply::Integer(0));
        set_generic(
            ctx, OBJ_SET_NX, &argv[1], &argv[2], None, "setnx", one, zero,
        )
    })())
}

fn setex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 4, "setex")?;
        let (k, e, v) = (&argv[1], &argv[2], &argv[3]);
        set_generic(
            ctx,
            OBJ_EX,
            k,
            v,
            Some(e),
            "setex",
            Reply::ok(),
            Reply::Null,
        )
    })())
}

fn psetex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 4, "psetex")?;
        let (k, e, v) = (&argv[1], &argv[2], &argv[3]);
        set_generic(
            ctx,
            OBJ_PX,
            k,
            v,
            Some(e),
            "psetex",
            Reply::ok(),
            Reply::Null,
        )
    })())
}

/// GETSET key value: the old value; the new one is stored without a TTL.
fn getset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 3, "getset")?;
        let old = read_string(ctx, &argv[1])?;
        let now = ctx.now_ms;
        ctx.db().set(&argv[1], stored(&argv[2]), None, now);
        ctx.dirty(1);
        Ok(old.map_or(Reply::Null, Reply::Bulk))
    })())
}

fn getdel(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 2, "getdel")?;
        let Some(v) = read_string(ctx, &argv[1])? else {
            return Ok(Reply::Null);
        };
        if ctx.db().remove(&argv[1]).is_some() {
            ctx.dirty(1);
        }
        Ok(Reply::Bulk(v))
    })())
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]. As in Redis, the expiry value
/// is validated only once the key is known to exist, and an EXAT/PXAT in the past deletes it.
fn getex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, -2, "getex")?;
        let (flags, expire) = parse_extended(argv, ExtKind::Get)?;
        let key = &argv[1];
        let Some(v) = read_string(ctx, key)? else {
            return Ok(Reply::Null);
        };
        let now = ctx.now_ms;
        let at = match expire {
            Some(e) => Some(expire_at_ms(now, e, flags, "getex")?),
            None => None,
        };
        match at {
            Some(t) if flags & (OBJ_EXAT | OBJ_PXAT) != 0 && t <= now => {
                ctx.db().remove(key);
                ctx.dirty(1);
            }
            Some(t) => {
                ctx.db().set_expire(key, Some(t));
                ctx.dirty(1);
            }
            None if flags & OBJ_PERSIST != 0
                && ctx.lookup(key).is_some_and(|e| e.expire_at().is_some()) =>
            {
                ctx.db().set_expire(key, None);
                ctx.dirty(1);
            }
            None => {}
        }
        Ok(Reply::Bulk(v))
    })())
}

/// MGET: values of other types read as nil, not WRONGTYPE.
fn mget(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, -2, "mget")?;
        let mut out = Vec::with_capacity(argv.len() - 1);
        for key in &argv[1..] {
            out.push(match ctx.lookup_read(key).and_then(|e| e.value.as_str()) {
                Some(s) => Reply::Bulk(s.clone()),
                None => Reply::Null,
            });
        }
        Ok(Reply::Array(out))
    })())
}

fn mset_generic(ctx: &mut Ctx, argv: &[Bytes], nx: bool, name: &str) -> Result<Reply, Reply> {
    arity(argv, -3, name)?;
    if argv.len().is_multiple_of(2) {
        return Err(Reply::err(errors::wrong_arity(name)));
    }
    if nx {
        for pair in argv[1..].chunks_exact(2) {
            if ctx.lookup(&pair[0]).is_some() {
                return Ok(Reply::Integer(0));
            }
        }
    }
    let now = ctx.now_ms;
    for pair in argv[1..].chunks_exact(2) {
        ctx.db().set(&pair[0], stored(&pair[1]), None, now);
    }
    ctx.dirty((argv.len() as u64 - 1) / 2);
    Ok(if nx { Reply::Integer(1) } else { Reply::ok() })
}

fn mset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(mset_generic(ctx, argv, false, "mset"))
}

fn msetnx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(mset_generic(ctx, argv, true, "msetnx"))
}

// ---------------------------------------------------------------------------------------
// APPEND, STRLEN, GETRANGE, SETRANGE
// ---------------------------------------------------------------------------------------

/// APPEND key value: a new key is stored like SET (so it may be `int`/`embstr`); appending
/// to an existing one makes it `raw` and keeps its TTL.
fn append(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 3, "append")?;
        let (key, add) = (&argv[1], &argv[2]);
        let now = ctx.now_ms;
        let Some(e) = ctx.lookup(key) else {
            ctx.db().set(key, stored(add), None, now);
            ctx.dirty(1);
            return Ok(Reply::Integer(add.len() as i64));
        };
        let old_len = e.value.as_str().ok_or_else(wrongtype)?.len();
        let total = check_length(old_len as u64, add.len() as u64)? as usize;
        let data = take_string(&mut e.value).ok_or_else(wrongtype)?;
        let mut m = writable(data, total);
        m.extend_from_slice(add);
        e.value = Value::raw_string(m.freeze());
        e.touch(now);
        ctx.dirty(1);
        Ok(Reply::Integer(total as i64))
    })())
}

fn strlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 2, "strlen")?;
        Ok(Reply::Integer(
            read_string(ctx, &argv[1])?.map_or(0, |s| s.len() as i64),
        ))
    })())
}

fn getrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(getrange_generic(ctx, argv, "getrange"))
}

fn substr(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(getrange_generic(ctx, argv, "substr"))
}

/// GETRANGE key start end: inclusive, negative indexes count from the end.
fn getrange_generic(ctx: &mut Ctx, argv: &[Bytes], name: &str) -> Result<Reply, Reply> {
    arity(argv, 4, name)?;
    let mut start = parse_i64(&argv[2]).ok_or_else(not_integer)?;
    let mut end = parse_i64(&argv[3]).ok_or_else(not_integer)?;
    let empty = || Reply::Bulk(Bytes::new());
    let Some(s) = read_string(ctx, &argv[1])? else {
        return Ok(empty());
    };
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(empty());
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
        return Ok(empty());
    }
    Ok(Reply::Bulk(s.slice(start as usize..=end as usize)))
}

/// SETRANGE key offset value: zero-pads as needed; the result is `raw` and keeps its TTL.
fn setrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 4, "setrange")?;
        let (key, value) = (&argv[1], &argv[3]);
        let offset = parse_i64(&argv[2]).ok_or_else(not_integer)?;
        if offset < 0 {
            return Err(Reply::err("ERR offset is out of range"));
        }
        let offset = offset as u64;
        let now = ctx.now_ms;
        let Some(e) = ctx.lookup(key) else {
            if value.is_empty() {
                return Ok(Reply::Integer(0));
            }
            let total = check_length(offset, value.len() as u64)? as usize;
            let mut m = BytesMut::zeroed(total);
            m[offset as usize..].copy_from_slice(value);
            ctx.db().set(key, Value::raw_string(m.freeze()), None, now);
            ctx.dirty(1);
            return Ok(Reply::Integer(total as i64));
        };
        let old_len = e.value.as_str().ok_or_else(wrongtype)?.len();
        if value.is_empty() {
            return Ok(Reply::Integer(old_len as i64));
        }
        let end = check_length(offset, value.len() as u64)? as usize;
        let data = take_string(&mut e.value).ok_or_else(wrongtype)?;
        let mut m = writable(data, end.max(old_len));
        if m.len() < end {
            m.resize(end, 0);
        }
        m[offset as usize..end].copy_from_slice(value);
        let new_len = m.len();
        e.value = Value::raw_string(m.freeze());
        e.touch(now);
        ctx.dirty(1);
        Ok(Reply::Integer(new_len as i64))
    })())
}

// ---------------------------------------------------------------------------------------
// INCR family
// ---------------------------------------------------------------------------------------

/// incrDecrCommand: the result is stored `int`-encoded and the TTL is kept.
/// INCR & co.: one lookup; an existing value's buffer is rewritten in place when the
/// keyspace holds the only reference to it (as Redis reuses an unshared integer object).
fn incr_decr(ctx: &mut Ctx, key: &Bytes, by: i64) -> Result<Reply, Reply> {
    let now = ctx.now_ms;
    let mut digits = itoa::Buffer::new();
    let changed = ctx.update(key, |e| {
        let Value::Str { data, .. } = &mut e.value else {
            return Err(wrongtype());
        };
        let old = parse_i64(data).ok_or_else(not_integer)?;
        let new = old
            .checked_add(by)
            .ok_or_else(|| Reply::err(errors::OVERFLOW))?;
        let old_data = std::mem::take(data);
        e.value = int_string(digits.format(new), Some(old_data));
        e.touch(now);
        Ok(new)
    });
    let new = match changed {
        Some(result) => result?,
        None => {
            ctx.db()
                .set(key, int_string(digits.format(by), None), None, now);
            by
        }
    };
    ctx.dirty(1);
    Ok(Reply::Integer(new))
}

/// A string value holding the integer `digits`, written over `reuse`'s buffer when it is
/// not shared and exactly that long (as most increments are): an exact-size buffer freezes
/// without allocating, where one with spare room would get a shared header allocated.
fn int_string(digits: &str, reuse: Option<Bytes>) -> Value {
    let data = match reuse.map(Bytes::try_into_mut) {
        Some(Ok(mut buf)) if buf.capacity() == digits.len() => {
            buf.clear();
            buf.extend_from_slice(digits.as_bytes());
            buf.freeze()
        }
        _ => Bytes::copy_from_slice(digits.as_bytes()),
    };
    Value::Str {
        data,
        encoding: StrEncoding::Int,
    }
}

fn incr(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(arity(argv, 2, "incr").and_then(|()| incr_decr(ctx, &argv[1], 1)))
}

fn decr(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(arity(argv, 2, "decr").and_then(|()| incr_decr(ctx, &argv[1], -1)))
}

fn incrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 3, "incrby")?;
        let by = parse_i64(&argv[2]).ok_or_else(not_integer)?;
        incr_decr(ctx, &argv[1], by)
    })())
}

fn decrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 3, "decrby")?;
        let by = parse_i64(&argv[2]).ok_or_else(not_integer)?;
        let neg = by
            .checked_neg()
            .ok_or_else(|| Reply::err("ERR decrement would overflow"))?;
        incr_decr(ctx, &argv[1], neg)
    })())
}

/// INCRBYFLOAT key increment: computed and formatted exactly as Redis does with `long
/// double` on this architecture; stored as a plain string (`embstr`, not `int`), TTL kept.
fn incrbyfloat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, 3, "incrbyfloat")?;
        let key = &argv[1];
        let not_float = || Reply::err(errors::NOT_FLOAT);
        let value = match ctx.lookup(key) {
            None => longdouble::Parsed::Finite(longdouble::Ld::ZERO),
            Some(e) => {
                let s = e.value.as_str().ok_or_else(wrongtype)?;
                longdouble::parse(s).ok_or_else(not_float)?
            }
        };
        let by = longdouble::parse(&argv[2]).ok_or_else(not_float)?;
        let sum = longdouble::add(value, by)
            .ok_or_else(|| Reply::err("ERR increment would produce NaN or Infinity"))?;
        let text = Bytes::from(longdouble::format_human(sum).into_bytes());
        let encoding = if text.len() <= 44 {
            StrEncoding::Embstr
        } else {
            StrEncoding::Raw
        };
        let value = Value::Str {
            data: text.clone(),
            encoding,
        };
        overwrite_or_add(ctx, key, value);
        ctx.dirty(1);
        Ok(Reply::Bulk(text))
    })())
}

// ---------------------------------------------------------------------------------------
// LCS
// ---------------------------------------------------------------------------------------

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], Redis's dynamic program
/// and backtracking, so the ranges reported are the same ones Redis reports.
fn lcs(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        arity(argv, -3, "lcs")?;
        let a = ctx.lookup_read(&argv[1]).map(|e| e.value.as_str().cloned());
        let b = ctx.lookup_read(&argv[2]).map(|e| e.value.as_str().cloned());
        let (Some(a), Some(b)) = (
            a.unwrap_or(Some(Bytes::new())),
            b.unwrap_or(Some(Bytes::new())),
        ) else {
            return Err(Reply::err(
                "ERR The specified keys must contain string values",
            ));
        };
        let (mut getlen, mut getidx, mut withmatchlen) = (false, false, false);
        let mut minmatchlen: i64 = 0;
        let mut j = 3;
        while j < argv.len() {
            let opt = &argv[j];
            let more = j + 1 < argv.len();
            if opt_is(opt, "idx") {
                getidx = true;
            } else if opt_is(opt, "len") {
                getlen = true;
            } else if opt_is(opt, "withmatchlen") {
                withmatchlen = true;
            } else if opt_is(opt, "minmatchlen") && more {
                minmatchlen = parse_i64(&argv[j + 1]).ok_or_else(not_integer)?.max(0);
                j += 1;
            } else {
                return Err(Reply::err(errors::SYNTAX));
            }
            j += 1;
        }
        if getlen && getidx {
            return Err(Reply::err(
                "ERR If you want both the length and indexes, please just use IDX.",
            ));
        }
        if a.len() as u64 >= u32::MAX as u64 - 1 || b.len() as u64 >= u32::MAX as u64 - 1 {
            return Err(Reply::err("ERR String too long for LCS"));
        }
        let (alen, blen) = (a.len(), b.len());
        let cells = (alen as u64 + 1) * (blen as u64 + 1);
        if cells.saturating_mul(4) > PROTO_MAX_BULK_LEN {
            return Err(Reply::err(
                "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
            ));
        }
        let mut table: Vec<u32> = Vec::new();
        if table.try_reserve_exact(cells as usize).is_err() {
            return Err(Reply::err(
                "ERR Insufficient memory, failed allocating transient memory for LCS",
            ));
        }
        table.resize(cells as usize, 0);
        Ok(lcs_compute(
            &a,
            &b,
            &mut table,
            getlen,
            getidx,
            withmatchlen,
            minmatchlen,
        ))
    })())
}

fn lcs_compute(
    a: &[u8],
    b: &[u8],
    lcs: &mut [u32],
    getlen: bool,
    getidx: bool,
    withmatchlen: bool,
    minmatchlen: i64,
) -> Reply {
    let (alen, blen) = (a.len(), b.len());
    let at = |i: usize, j: usize| j + i * (blen + 1);
    for i in 1..=alen {
        for j in 1..=blen {
            lcs[at(i, j)] = if a[i - 1] == b[j - 1] {
                lcs[at(i - 1, j - 1)] + 1
            } else {
                lcs[at(i - 1, j)].max(lcs[at(i, j - 1)])
            };
        }
    }
    let total = lcs[at(alen, blen)];
    let mut idx = total as usize;
    let computelcs = getidx || !getlen;
    let mut result = if computelcs {
        vec![0u8; idx]
    } else {
        Vec::new()
    };
    let mut matches = Vec::new();
    // `alen` as arange_start means "no range in progress".
    let (mut arange_start, mut arange_end, mut brange_start, mut brange_end) = (alen, 0, 0, 0);
    let (mut i, mut j) = (alen, blen);
    while computelcs && i > 0 && j > 0 {
        let mut emit_range = false;
        if a[i - 1] == b[j - 1] {
            result[idx - 1] = a[i - 1];
            if arange_start == alen {
                arange_start = i - 1;
                arange_end = i - 1;
                brange_start = j - 1;
                brange_end = j - 1;
            } else if arange_start == i && brange_start == j {
                arange_start -= 1;
                brange_start -= 1;
            } else {
                emit_range = true;
            }
            if arange_start == 0 || brange_start == 0 {
                emit_range = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if lcs[at(i - 1, j)] > lcs[at(i, j - 1)] {
                i -= 1;
            } else {
                j -= 1;
            }
            if arange_start != alen {
                emit_range = true;
            }
        }
        let match_len = arange_end.wrapping_sub(arange_start).wrapping_add(1) as u32;
        if emit_range {
            if (minmatchlen == 0 || match_len as i64 >= minmatchlen) && getidx {
                let pair = |x: usize, y: usize| {
                    Reply::Array(vec![Reply::Integer(x as i64), Reply::Integer(y as i64)])
                };
                let mut m = vec![
                    pair(arange_start, arange_end),
                    pair(brange_start, brange_end),
                ];
                if withmatchlen {
                    m.push(Reply::Integer(match_len as i64));
                }
                matches.push(Reply::Array(m));
            }
            arange_start = alen;
        }
    }
    if getidx {
        Reply::Map(vec![
            (Reply::bulk_str("matches"), Reply::Array(matches)),
            (Reply::bulk_str("len"), Reply::Integer(total as i64)),
        ])
    } else if getlen {
        Reply::Integer(total as i64)
    } else {
        Reply::Bulk(Bytes::from(result))
    }
}

// ---------------------------------------------------------------------------------------
// Software long double
// ---------------------------------------------------------------------------------------

/// Redis's INCRBYFLOAT in software: `strtold` parsing (correctly rounded, glibc's
/// acceptance rules plus Redis's string2ld checks), one correctly rounded `long double`
/// addition, and glibc's `%.17Lf` (exact decimal expansion, round-half-even) with Redis's
/// trailing-zero trimming (ld2string LD_STR_HUMAN).
///
/// The format emulated is the C `long double` of the platform Redis runs on: x87 80-bit
/// (64-bit significand) on x86/x86_64, IEEE quad (113-bit) on other 64-bit Linux targets
/// such as aarch64, and plain double elsewhere (macOS). Numbers are `mant * 2^exp` with
/// exact big-integer arithmetic, so results match Redis digit for digit, including
/// subnormals, values up to ~1.19e4932 and their thousands-of-digits expansions.
pub(crate) mod longdouble {
    use std::cmp::Ordering;

    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    mod format {
        pub const PREC: i64 = 64;
        pub const MIN_LSB: i64 = -16445;
        pub const MAX_EXP: i64 = 16384;
    }
    #[cfg(all(
        not(any(target_arch = "x86", target_arch = "x86_64")),
        target_pointer_width = "64",
        not(target_vendor = "apple")
    ))]
    mod format {
        pub const PREC: i64 = 113;
        pub const MIN_LSB: i64 = -16494;
        pub const MAX_EXP: i64 = 16384;
    }
    #[cfg(all(
        not(any(target_arch = "x86", target_arch = "x86_64")),
        any(not(target_pointer_width = "64"), target_vendor = "apple")
    ))]
    mod format {
        pub const PREC: i64 = 53;
        pub const MIN_LSB: i64 = -1074;
        pub const MAX_EXP: i64 = 1024;
    }
    use format::{MAX_EXP, MIN_LSB, PREC};

    /// Redis's MAX_LONG_DOUBLE_CHARS: string2ld refuses inputs this long or longer.
    const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

    /// A finite long double: `(-1)^neg * mant * 2^exp`, `mant < 2^PREC`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Ld {
        pub neg: bool,
        pub mant: u128,
        pub exp: i64,
    }

    impl Ld {
        pub const ZERO: Ld = Ld {
            neg: false,
            mant: 0,
            exp: 0,
        };
    }

    /// What strtold accepted.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Parsed {
        Finite(Ld),
        Inf,
    }

    /// Redis's string2ld: None where Redis replies "value is not a valid float".
    pub fn parse(b: &[u8]) -> Option<Parsed> {
        if b.is_empty() || b.len() >= MAX_LONG_DOUBLE_CHARS || is_c_space(b[0]) {
            return None;
        }
        let (neg, rest) = match b[0] {
            b'-' => (true, &b[1..]),
            b'+' => (false, &b[1..]),
            _ => (false, b),
        };
        if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
            return Some(Parsed::Inf);
        }
        let v = if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
            parse_hex(neg, &rest[2..])?
        } else {
            parse_dec(neg, rest)?
        };
        Some(Parsed::Finite(v))
    }

    fn is_c_space(c: u8) -> bool {
        matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    }

    /// Splits `digits[.digits]`; None unless at least one digit is present.
    fn split_mantissa(s: &[u8], is_digit: fn(&u8) -> bool) -> Option<(&[u8], &[u8], &[u8])> {
        let int_len = s.iter().take_while(|c| is_digit(c)).count();
        let (int, rest) = s.split_at(int_len);
        let (frac, rest) = match rest.first() {
            Some(b'.') => {
                let r = &rest[1..];
                let n = r.iter().take_while(|c| is_digit(c)).count();
                r.split_at(n)
            }
            _ => (&rest[..0], rest),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        Some((int, frac, rest))
    }

    /// An exponent `[+-]digits`, saturated far beyond any representable magnitude.
    fn parse_exponent(s: &[u8]) -> Option<i64> {
        let (neg, digits) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut v: i64 = 0;
        for &c in digits {
            v = (v * 10 + (c - b'0') as i64).min(1_000_000_000_000);
        }
        Some(if neg { -v } else { v })
    }

    fn parse_dec(neg: bool, s: &[u8]) -> Option<Ld> {
        let (int, frac, rest) = split_mantissa(s, u8::is_ascii_digit)?;
        let exp10 = match rest.first() {
            None => 0,
            Some(b'e' | b'E') => parse_exponent(&rest[1..])?,
            Some(_) => return None,
        };
        let digits: Vec<u8> = int.iter().chain(frac).copied().collect();
        let first = digits.iter().position(|&c| c != b'0');
        let Some(first) = first else {
            return Some(Ld { neg, ..Ld::ZERO });
        };
        let sig = &digits[first..];
        let e10 = exp10 - frac.len() as i64;
        // The value lies in [10^(mag-1), 10^mag): refuse what surely overflows or rounds
        // to zero (strtold's ERANGE cases) before doing exact arithmetic.
        let mag = sig.len() as i64 + e10;
        const LOG10_2: f64 = std::f64::consts::LOG10_2;
        if mag - 1 > (MAX_EXP as f64 * LOG10_2) as i64 + 2
            || mag < ((MIN_LSB - 1) as f64 * LOG10_2) as i64 - 2
        {
            return None;
        }
        let mut d = Big::zero();
        for chunk in sig.chunks(9) {
            let mut v = 0u32;
            for &c in chunk {
                v = v * 10 + (c - b'0') as u32;
            }
            d.mul_add_small(10u32.pow(chunk.len() as u32), v);
        }
        let r = if e10 >= 0 {
            d.mul_pow10(e10 as u64);
            round(neg, &d, 0, false)?
        } else {
            let mut p = Big::one();
            p.mul_pow10((-e10) as u64);
            // Scale the numerator by 2^s so the quotient has PREC+3 or PREC+4 bits: enough
            // to round correctly, and it fits in a u128. (A negative s drops low bits of
            // the numerator: floor(floor(d / 2^t) / p) = floor(d / (2^t p)), and the
            // quotient is exact only if both steps were.)
            let s = PREC + 3 + p.bits() as i64 - d.bits() as i64;
            let (num, dropped) = if s >= 0 {
                (d.shl(s as u64), false)
            } else {
                let t = (-s) as u64;
                (d.shr(t), d.any_below(t))
            };
            let (q, inexact) = div_to_u128(&num, &p);
            round(neg, &Big::from_u128(q), -s, inexact || dropped)?
        };
        // A nonzero input that rounds to zero is strtold's underflow: refused.
        (r.mant != 0).then_some(r)
    }

    fn parse_hex(neg: bool, s: &[u8]) -> Option<Ld> {
        let (int, frac, rest) = split_mantissa(s, u8::is_ascii_hexdigit)?;
        let exp2 = match rest.first() {
            None => 0,
            Some(b'p' | b'P') => parse_exponent(&rest[1..])?,
            Some(_) => return None,
        };
        let mut h = Big::zero();
        for &c in int.iter().chain(frac) {
            h.mul_add_small(16, (c as char).to_digit(16)?);
        }
        if h.is_zero() {
            return Some(Ld { neg, ..Ld::ZERO });
        }
        let e2 = exp2 - 4 * frac.len() as i64;
        let mag = h.bits() as i64 + e2;
        if !(MIN_LSB - 1..=MAX_EXP + 1).contains(&mag) {
            return None;
        }
        let r = round(neg, &h, e2, false)?;
        (r.mant != 0).then_some(r)
    }

    /// Rounds `n * 2^e2` (plus a nonzero tail below it if `sticky`) to the nearest long
    /// double, ties to even. None on overflow; a zero mantissa on underflow.
    fn round(neg: bool, n: &Big, e2: i64, sticky: bool) -> Option<Ld> {
        if n.is_zero() {
            return Some(Ld { neg, ..Ld::ZERO });
        }
        let bits = n.bits() as i64;
        let mut shift = bits - PREC;
        if e2 + shift < MIN_LSB {
            shift = MIN_LSB - e2;
        }
        let (mant, exp) = if shift <= 0 {
            (n.low_u128(), e2)
        } else {
            let s = shift as u64;
            let mut q = n.shr(s).low_u128();
            let half = n.bit(s - 1);
            let below = sticky || n.any_below(s - 1);
            if half && (below || q & 1 == 1) {
                q += 1;
            }
            let mut exp = e2 + shift;
            if q == 1u128 << PREC {
                q >>= 1;
                exp += 1;
            }
            (q, exp)
        };
        let mant_bits = 128 - mant.leading_zeros() as i64;
        if mant != 0 && mant_bits + exp > MAX_EXP {
            return None;
        }
        Some(Ld { neg, mant, exp })
    }

    /// `value + incr` rounded once; None if the result is NaN or infinite.
    pub fn add(a: Parsed, b: Parsed) -> Option<Ld> {
        let (Parsed::Finite(a), Parsed::Finite(b)) = (a, b) else {
            return None;
        };
        if a.mant == 0 && b.mant == 0 {
            return Some(Ld {
                neg: a.neg && b.neg,
                ..Ld::ZERO
            });
        }
        if a.mant == 0 {
            return Some(b);
        }
        if b.mant == 0 {
            return Some(a);
        }
        let e = a.exp.min(b.exp);
        let na = Big::from_u128(a.mant).shl((a.exp - e) as u64);
        let nb = Big::from_u128(b.mant).shl((b.exp - e) as u64);
        if a.neg == b.neg {
            return round(a.neg, &na.add(&nb), e, false);
        }
        match na.cmp(&nb) {
            Ordering::Greater => round(a.neg, &na.sub(&nb), e, false),
            Ordering::Less => round(b.neg, &nb.sub(&na), e, false),
            Ordering::Equal => Some(Ld::ZERO),
        }
    }

    /// `%.17Lf`, then trailing zeros (and a bare '.') removed, and "-0" shown as "0".
    pub fn format_human(v: Ld) -> String {
        let mut out = String::new();
        if v.neg {
            out.push('-');
        }
        if v.exp >= 0 {
            out.push_str(&Big::from_u128(v.mant).shl(v.exp as u64).to_decimal());
        } else {
            let k = (-v.exp) as u64;
            let mut n = Big::from_u128(v.mant);
            n.mul_pow10(17);
            let mut q = n.shr(k);
            if n.bit(k - 1) && (n.any_below(k - 1) || q.bit(0)) {
                q = q.add(&Big::one());
            }
            let digits = q.to_decimal();
            let digits = format!("{digits:0>18}");
            let (int, frac) = digits.split_at(digits.len() - 17);
            out.push_str(int);
            let frac = frac.trim_end_matches('0');
            if !frac.is_empty() {
                out.push('.');
                out.push_str(frac);
            }
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }

    /// `floor(num / den)` when the quotient fits in 127 bits, and whether it was inexact.
    fn div_to_u128(num: &Big, den: &Big) -> (u128, bool) {
        let (nb, db) = (num.bits(), den.bits());
        if nb < db {
            return (0, !num.is_zero());
        }
        let qbits = (nb - db + 1).min(127);
        let mut rem = num.clone();
        let mut d = den.shl(qbits - 1);
        let mut q = 0u128;
        for i in (0..qbits).rev() {
            if rem.cmp(&d) != Ordering::Less {
                rem = rem.sub(&d);
                q |= 1u128 << i;
            }
            d = d.shr(1);
        }
        (q, !rem.is_zero())
    }

    /// A minimal unsigned big integer (little-endian 32-bit limbs, no high zero limbs).
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Big {
        limbs: Vec<u32>,
    }

    impl Big {
        fn zero() -> Big {
            Big { limbs: Vec::new() }
        }

        fn one() -> Big {
            Big { limbs: vec![1] }
        }

        fn from_u128(mut v: u128) -> Big {
            let mut limbs = Vec::new();
            while v != 0 {
                limbs.push(v as u32);
                v >>= 32;
            }
            Big { limbs }
        }

        fn is_zero(&self) -> bool {
            self.limbs.is_empty()
        }

        fn trim(&mut self) {
            while self.limbs.last() == Some(&0) {
                self.limbs.pop();
            }
        }

        fn bits(&self) -> u64 {
            match self.limbs.last() {
                None => 0,
                Some(&top) => {
                    (self.limbs.len() as u64 - 1) * 32 + (32 - top.leading_zeros()) as u64
                }
            }
        }

        /// The low 128 bits.
        fn low_u128(&self) -> u128 {
            self.limbs
                .iter()
                .take(4)
                .enumerate()
                .fold(0u128, |acc, (i, &l)| acc | (l as u128) << (32 * i))
        }

        fn bit(&self, i: u64) -> bool {
            let w = (i / 32) as usize;
            w < self.limbs.len() && (self.limbs[w] >> (i % 32)) & 1 == 1
        }

        /// Is any bit below position `i` set?
        fn any_below(&self, i: u64) -> bool {
            let w = ((i / 32) as usize).min(self.limbs.len());
            if self.limbs[..w].iter().any(|&l| l != 0) {
                return true;
            }
            let b = (i % 32) as u32;
            w < self.limbs.len() && b > 0 && self.limbs[w] & ((1u32 << b) - 1) != 0
        }

        fn mul_add_small(&mut self, m: u32, a: u32) {
            let mut carry = a as u64;
            for l in &mut self.limbs {
                let v = *l as u64 * m as u64 + carry;
                *l = v as u32;
                carry = v >> 32;
            }
            if carry != 0 {
                self.limbs.push(carry as u32);
            }
        }

        fn mul_pow10(&mut self, mut n: u64) {
            while n >= 9 {
                self.mul_add_small(1_000_000_000, 0);
                n -= 9;
            }
            if n > 0 {
                self.mul_add_small(10u32.pow(n as u32), 0);
            }
        }

        /// Divides in place, returning the remainder.
        fn div_small(&mut self, d: u32) -> u32 {
            let mut rem = 0u64;
            for l in self.limbs.iter_mut().rev() {
                let cur = (rem << 32) | *l as u64;
                *l = (cur / d as u64) as u32;
                rem = cur % d as u64;
            }
            self.trim();
            rem as u32
        }

        fn shl(&self, n: u64) -> Big {
            if self.is_zero() {
                return Big::zero();
            }
            let bits = (n % 32) as u32;
            let mut limbs = vec![0u32; (n / 32) as usize];
            limbs.reserve(self.limbs.len() + 1);
            if bits == 0 {
                limbs.extend_from_slice(&self.limbs);
            } else {
                let mut carry = 0u32;
                for &l in &self.limbs {
                    limbs.push((l << bits) | carry);
                    carry = l >> (32 - bits);
                }
                if carry != 0 {
                    limbs.push(carry);
                }
            }
            Big { limbs }
        }

        fn shr(&self, n: u64) -> Big {
            let words = n / 32;
            if words >= self.limbs.len() as u64 {
                return Big::zero();
            }
            let src = &self.limbs[words as usize..];
            let bits = (n % 32) as u32;
            let mut limbs = Vec::with_capacity(src.len());
            if bits == 0 {
                limbs.extend_from_slice(src);
            } else {
                for i in 0..src.len() {
                    let hi = src.get(i + 1).map_or(0, |&h| h << (32 - bits));
                    limbs.push((src[i] >> bits) | hi);
                }
            }
            let mut b = Big { limbs };
            b.trim();
            b
        }

        fn cmp(&self, o: &Big) -> Ordering {
            self.limbs
                .len()
                .cmp(&o.limbs.len())
                .then_with(|| self.limbs.iter().rev().cmp(o.limbs.iter().rev()))
        }

        fn add(&self, o: &Big) -> Big {
            let (long, short) = if self.limbs.len() >= o.limbs.len() {
                (self, o)
            } else {
                (o, self)
            };
            let mut limbs = Vec::with_capacity(long.limbs.len() + 1);
            let mut carry = 0u64;
            for (i, &l) in long.limbs.iter().enumerate() {
                let v = l as u64 + short.limbs.get(i).copied().unwrap_or(0) as u64 + carry;
                limbs.push(v as u32);
                carry = v >> 32;
            }
            if carry != 0 {
                limbs.push(carry as u32);
            }
            Big { limbs }
        }

        /// `self - o`, for `self >= o`.
        fn sub(&self, o: &Big) -> Big {
            let mut limbs = Vec::with_capacity(self.limbs.len());
            let mut borrow = 0i64;
            for (i, &l) in self.limbs.iter().enumerate() {
                let mut v = l as i64 - o.limbs.get(i).copied().unwrap_or(0) as i64 - borrow;
                borrow = 0;
                if v < 0 {
                    v += 1 << 32;
                    borrow = 1;
                }
                limbs.push(v as u32);
            }
            let mut b = Big { limbs };
            b.trim();
            b
        }

        fn to_decimal(&self) -> String {
            if self.is_zero() {
                return "0".into();
            }
            let mut t = self.clone();
            let mut chunks = Vec::new();
            while !t.is_zero() {
                chunks.push(t.div_small(1_000_000_000));
            }
            let mut s = String::with_capacity(chunks.len() * 9);
            let mut iter = chunks.iter().rev();
            if let Some(first) = iter.next() {
                s.push_str(&first.to_string());
            }
            for c in iter {
                s.push_str(&format!("{c:09}"));
            }
            s
        }
    }

    #[cfg(all(test, any(target_arch = "x86", target_arch = "x86_64")))]
    mod tests {
        use super::*;

        fn incr(value: &str, by: &str) -> String {
            let a = parse(value.as_bytes()).expect("value parses");
            let b = parse(by.as_bytes()).expect("increment parses");
            match add(a, b) {
                Some(v) => format_human(v),
                None => "NaN or Infinity".into(),
            }
        }

        /// Outputs of redis-server 7.0.15 on x86_64: `SET k a` then `INCRBYFLOAT k b`.
        #[test]
        fn matches_redis_x87() {
            let cases = [
                ("0", "0.1", "0.1"),
                ("0.1", "0.2", "0.3"),
                ("0.3", "3", "3.3"),
                ("10.5", "0.1", "10.6"),
                ("1.5", "2.25", "3.75"),
                ("0.1", "0.7", "0.8"),
                ("-0.1", "0.1", "0"),
                ("1e-17", "0", "0.00000000000000001"),
                ("5e-18", "0", "0"),
                ("1.0000000000000000001", "0", "1"),
                (
                    "3.14159265358979323846",
                    "2.71828182845904523536",
                    "5.85987448204883847",
                ),
                ("1e20", "1", "100000000000000000000"),
                ("9223372036854775807", "1", "9223372036854775808"),
                ("1e19", "0.5", "10000000000000000000"),
                ("18446744073709551615", "0", "18446744073709551615"),
                ("18446744073709551617", "0", "18446744073709551616"),
                ("0.000000000000000015", "0", "0.00000000000000002"),
                ("0.000000000000000025", "0", "0.00000000000000002"),
                ("-1e-17", "0", "-0.00000000000000001"),
                ("-5.5", "-4.5", "-10"),
                ("0x1p-16445", "0", "0"),
                ("0x1.0000000000000001p0", "0", "1"),
                ("0x1.00000000000000008p0", "0", "1"),
                ("0x1.00000000000000018p0", "0", "1"),
                ("2.5e-3", "1e-3", "0.0035"),
                ("100", "-99.99", "0.01"),
                ("1e-10", "1e10", "10000000000"),
                ("123.456", "0.000001", "123.456001"),
                ("0.1", "0.1", "0.2"),
                ("0", "0.000003814697265625", "0.00000381469726562"),
                ("0", "0.000003814697265635", "0.00000381469726563"),
                ("0", "-0.0", "0"),
                ("0", "-1e-20", "0"),
                ("0", "1e-4950", "0"),
                ("0", "3e-4951", "0"),
                ("3.5", "0e9999999999999", "3.5"),
                ("0", "1.5e0000000000000000000000003", "1500"),
                (
                    "0",
                    "123456789012345678901234567890",
                    "123456789012345678899921813504",
                ),
                (
                    "0",
                    "1.23456789012345678901234567890",
                    "1.23456789012345679",
                ),
                ("0", "0.30000000000000004", "0.30000000000000004"),
                ("0", "0x1.8p1", "3"),
                ("3", "0x.8", "3.5"),
                ("0", ".5", "0.5"),
                ("0", "5.", "5"),
                ("3000", "-5000", "-2000"),
                ("0", "5.0e3", "5000"),
                ("1", "inf", "NaN or Infinity"),
                ("1.1e4932", "1.1e4932", "NaN or Infinity"),
                (
                    "0",
                    "1234567890123456789012345678901234567890.5",
                    "1234567890123456788999898750329779388416",
                ),
            ];
            for (a, b, want) in cases {
                assert_eq!(incr(a, b), want, "{a} + {b}");
            }
        }

        #[test]
        fn huge_values_match_redis() {
            let e400 = "10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880";
            assert_eq!(incr("0", "1e400"), e400);
            let e300x2 = "2000000000000000000017994648159118387741047888546581495876520164642531293192361871511698304167500994380700745017228549671807185112369345967826192521041497292574654271283687306588168510215212033579453305864740061102765895241989080589545563779241212358535223254194821301134374772211380178849830208012288";
            assert_eq!(incr("1e300", "1e300"), e300x2);
            let big = incr("0", "1.1e4932");
            assert_eq!(big.len(), 4933);
            assert!(big.starts_with("10999999999999999999743731075282418176590308692790434"));
            assert!(big.ends_with("42088136704"));
            // Many more digits than the negative exponent removes.
            let sevens = format!("{}e-3990", "7".repeat(4000));
            assert_eq!(incr("0", &sevens), "7777777777.77777777798473835");
            let threes = format!("{}e-150", "3".repeat(200));
            assert_eq!(
                incr("0", &threes),
                "33333333333333333332837742572648668761603891527680"
            );
            let tiny = format!("0.{}1{}", "0".repeat(4000), "5".repeat(1000));
            assert_eq!(incr("0", &tiny), "0");
            let nines = format!("{}.25", "9".repeat(300));
            let got = incr("0", &nines);
            assert_eq!(got.len(), 301);
            assert!(
                got.starts_with("100000000000000000000899732407955919387052394427329074793826")
            );
            assert_eq!(parse(format!("{}.1", "1".repeat(5000)).as_bytes()), None);
        }

        #[test]
        fn refuses_what_redis_refuses() {
            for bad in [
                "",
                " 1",
                "1 ",
                "abc",
                "nan",
                "-nan",
                "1e",
                "1e+",
                "0x",
                "0xg",
                "1.2.3",
                "--1",
                "+-1",
                "1e4933",
                "1e-5000",
                "0x1p-16446",
                "0x1p16384",
                "1\0abc",
                "\0",
                "infin",
                ".",
                "e5",
                "1_0",
            ] {
                assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
            }
            assert_eq!(parse("x".repeat(5120).as_bytes()), None);
            let long_ok = format!("1.{}", "0".repeat(5117));
            assert!(parse(long_ok.as_bytes()).is_some());
            for inf in ["inf", "-INF", "+Infinity"] {
                assert_eq!(parse(inf.as_bytes()), Some(Parsed::Inf), "{inf}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::{ClientView, Engine, State};
    use crate::config::EmbeddedConfig;
    use crate::protocol::Protocol;

    fn run(state: &mut State, now_ms: u64, line: &[&str]) -> Reply {
        let argv: Vec<Bytes> = line
            .iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let name = line[0].to_ascii_lowercase();
        let mut t = crate::backend::embedded::Handlers::default();
        register(&mut t);
        let handler = t[name.as_str()];
        let mut ctx = Ctx {
            state,
            client: ClientView {
                db: 0,
                proto: Protocol::Resp2,
                tracker: None,
            },
            now_ms,
            hits: 0,
            misses: 0,
        };
        handler(&mut ctx, &argv)
    }

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn entry_info(state: &State, key: &str) -> (Option<u64>, &'static str) {
        let e = state.dbs[0]
            .peek(&Bytes::copy_from_slice(key.as_bytes()), 0)
            .expect("key exists");
        (e.expire_at(), e.value.encoding_name())
    }

    #[test]
    fn ttl_rules_and_encodings() {
        let engine = Engine::new(&EmbeddedConfig::default());
        let mut st = engine.state.lock();
        let now = 1_700_000_000_000;
        assert_eq!(
            run(&mut st, now, &["SET", "k", "5", "EX", "100"]),
            Reply::ok()
        );
        assert_eq!(entry_info(&st, "k"), (Some(now + 100_000), "int"));
        assert_eq!(run(&mut st, now, &["INCR", "k"]), Reply::Integer(6));
        assert_eq!(entry_info(&st, "k"), (Some(now + 100_000), "int"));
        assert_eq!(run(&mut st, now, &["APPEND", "k", "x"]), Reply::Integer(2));
        assert_eq!(entry_info(&st, "k"), (Some(now + 100_000), "raw"));
        assert_eq!(
            run(&mut st, now, &["SETRANGE", "k", "3", "y"]),
            Reply::Integer(4)
        );
        assert_eq!(run(&mut st, now, &["GET", "k"]), bulk("6x\0y"));
        assert_eq!(entry_info(&st, "k"), (Some(now + 100_000), "raw"));
        assert_eq!(
            run(&mut st, now, &["SET", "k", "v", "KEEPTTL"]),
            Reply::ok()
        );
        assert_eq!(entry_info(&st, "k"), (Some(now + 100_000), "embstr"));
        assert_eq!(run(&mut st, now, &["INCRBYFLOAT", "f", "3"]), bulk("3"));
        assert_eq!(entry_info(&st, "f"), (None, "embstr"));
        assert_eq!(run(&mut st, now, &["SET", "k", "v"]), Reply::ok());
        assert_eq!(entry_info(&st, "k"), (None, "embstr"));
        assert_eq!(
            run(
                &mut st,
                now,
                &["SET", "k", "v", "PXAT", "9223372036854775807"]
            ),
            Reply::ok()
        );
        assert_eq!(entry_info(&st, "k").0, Some(i64::MAX as u64));
        assert_eq!(run(&mut st, now, &["GETEX", "k", "PERSIST"]), bulk("v"));
        assert_eq!(entry_info(&st, "k").0, None);
        assert_eq!(run(&mut st, now, &["GETEX", "k", "PX", "5"]), bulk("v"));
        assert_eq!(entry_info(&st, "k").0, Some(now + 5));
        assert_eq!(run(&mut st, now, &["GETSET", "k", "w"]), bulk("v"));
        assert_eq!(entry_info(&st, "k").0, None);
        assert_eq!(run(&mut st, now, &["GETEX", "k", "EXAT", "1"]), bulk("w"));
        assert_eq!(run(&mut st, now, &["GET", "k"]), Reply::Null);
    }

    #[test]
    fn expire_overflow_is_invalid() {
        let engine = Engine::new(&EmbeddedConfig::default());
        let mut st = engine.state.lock();
        let now = 1_700_000_000_000;
        let invalid = Reply::err(errors::invalid_expire("set"));
        assert_eq!(
            run(&mut st, now, &["SET", "k", "v", "EX", "9223372036854775"]),
            invalid
        );
        assert_eq!(
            run(&mut st, now, &["SET", "k", "v", "EX", "9223372036854776"]),
            invalid
        );
        assert_eq!(
            run(
                &mut st,
                now,
                &["SET", "k", "v", "PX", "9223372036854775807"]
            ),
            invalid
        );
        assert_eq!(run(&mut st, now, &["SET", "k", "v", "EX", "0"]), invalid);
        assert_eq!(
            run(&mut st, now, &["SET", "k", "v", "EXAT", "9223372036854775"]),
            Reply::ok()
        );
    }

    #[test]
    fn append_reuses_its_buffer() {
        let engine = Engine::new(&EmbeddedConfig::default());
        let mut st = engine.state.lock();
        run(&mut st, 0, &["SET", "k", "a"]);
        for _ in 0..1000 {
            run(&mut st, 0, &["APPEND", "k", "bc"]);
        }
        assert_eq!(run(&mut st, 0, &["STRLEN", "k"]), Reply::Integer(2001));
        let got = run(&mut st, 0, &["GETRANGE", "k", "-3", "-1"]);
        assert_eq!(got, bulk("cbc"));
    }

    /// Random argument lists for every command: replies may be errors, never panics.
    #[test]
    fn random_arguments_never_panic() {
        use rand::{Rng, SeedableRng};
        let engine = Engine::new(&EmbeddedConfig::default());
        let mut st = engine.state.lock();
        let mut t = crate::backend::embedded::Handlers::default();
        register(&mut t);
        let mut names: Vec<&str> = t.keys().copied().collect();
        names.sort();
        let pool = [
            "k",
            "k2",
            "",
            "0",
            "1",
            "-1",
            "5",
            "1.5",
            "-0",
            "1e400",
            "0x1p3",
            "inf",
            "nan",
            "EX",
            "PX",
            "EXAT",
            "PXAT",
            "NX",
            "XX",
            "GET",
            "KEEPTTL",
            "PERSIST",
            "IDX",
            "LEN",
            "WITHMATCHLEN",
            "MINMATCHLEN",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "536870912",
            "abc",
            "\0",
            "1.1e4932",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..20_000 {
            let name = names[rng.random_range(0..names.len())];
            let mut line = vec![name];
            for _ in 0..rng.random_range(0..7) {
                line.push(pool[rng.random_range(0..pool.len())]);
            }
            let now = 1_700_000_000_000 + rng.random_range(0..1000);
            let _ = run(&mut st, now, &line);
        }
    }
}
