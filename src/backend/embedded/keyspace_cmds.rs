//! Generic key commands of the embedded engine (db.c, expire.c, object.c): DEL, EXISTS,
//! TYPE, the EXPIRE family, TTL family, PERSIST, RENAME, COPY, MOVE, TOUCH, RANDOMKEY, KEYS,
//! SCAN and OBJECT — with Redis 7.0's replies and error texts.
//!
//! Lookups follow Redis's flavours: `lookupKeyRead` counts a keyspace hit/miss and refreshes
//! the access time, `lookupKeyReadWithFlags(NOTOUCH)` (TTL, TYPE, EXISTS, OBJECT) counts
//! without touching, `lookupKeyWrite` touches without counting. All of them delete an
//! expired key first.

use bytes::Bytes;

use super::db::Entry;
use super::{Ctx, State, arg_i64};
use crate::protocol::{Reply, errors};

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("del", del);
    t.insert("unlink", del);
    t.insert("exists", exists);
    t.insert("type", type_cmd);
    t.insert("expire", expire);
    t.insert("pexpire", pexpire);
    t.insert("expireat", expireat);
    t.insert("pexpireat", pexpireat);
    t.insert("ttl", ttl);
    t.insert("pttl", pttl);
    t.insert("expiretime", expiretime);
    t.insert("pexpiretime", pexpiretime);
    t.insert("persist", persist);
    t.insert("rename", rename);
    t.insert("renamenx", renamenx);
    t.insert("copy", copy);
    t.insert("move", move_cmd);
    t.insert("touch", touch);
    t.insert("randomkey", randomkey);
    t.insert("keys", keys);
    t.insert("scan", scan);
    t.insert("object", object);
}

const SAME_OBJECT: &str = "ERR source and destination objects are the same";
const INT_RANGE: &str = "ERR value is out of range, value must between -2147483648 and 2147483647";
/// Redis's OBJ_SHARED_REFCOUNT.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;
/// Redis's LFU_INIT_VAL: the access counter of a new key under an LFU policy.
const LFU_INIT_VAL: u64 = 5;

/// Live entry of `key` in database `db` (expired keys are deleted first), no stats.
fn entry_in<'c>(ctx: &'c mut Ctx<'_>, db: usize, key: &Bytes) -> Option<&'c mut Entry> {
    let now = ctx.now_ms;
    let State {
        dbs,
        pending_expired,
        ..
    } = &mut *ctx.state;
    pending_expired.db = db;
    dbs.get_mut(db)?.get(key, now, pending_expired)
}

/// Redis's lookupKeyWrite: deletes an expired key, refreshes the access time, no stats.
fn lookup_write<'c>(ctx: &'c mut Ctx<'_>, db: usize, key: &Bytes) -> Option<&'c mut Entry> {
    let now = ctx.now_ms;
    let e = entry_in(ctx, db, key)?;
    e.touch(now);
    Some(e)
}

/// Redis's lookupKeyReadWithFlags(LOOKUP_NOTOUCH): counts a hit or miss, leaves the access
/// time alone.
fn lookup_notouch<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Option<&'c mut Entry> {
    let now = ctx.now_ms;
    let db = ctx.client.db;
    let State {
        dbs,
        pending_expired,
        ..
    } = &mut *ctx.state;
    pending_expired.db = db;
    match dbs
        .get_mut(db)
        .and_then(|d| d.get(key, now, pending_expired))
    {
        Some(e) => {
            ctx.hits += 1;
            Some(e)
        }
        None => {
            ctx.misses += 1;
            None
        }
    }
}

/// Redis's getIntFromObjectOrReply: an integer that fits in a C int.
fn arg_i32(b: &[u8]) -> Result<i32, Reply> {
    let v = arg_i64(b)?;
    i32::try_from(v).map_err(|_| Reply::err(INT_RANGE))
}

/// A database index argument (MOVE, COPY DB): integer, then range.
fn arg_db(ctx: &Ctx, b: &[u8]) -> Result<usize, Reply> {
    let n = arg_i32(b)?;
    match usize::try_from(n) {
        Ok(n) if n < ctx.state.dbs.len() => Ok(n),
        _ => Err(Reply::err(errors::DB_INDEX)),
    }
}

fn del(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &argv[1..] {
        if ctx.lookup(key).is_some() {
            ctx.db().remove(key);
            n += 1;
        }
    }
    ctx.dirty(n as u64);
    Reply::Integer(n)
}

/// EXISTS counts every argument, duplicates included.
fn exists(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &argv[1..] {
        if lookup_notouch(ctx, key).is_some() {
            n += 1;
        }
    }
    Reply::Integer(n)
}

fn type_cmd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match lookup_notouch(ctx, &argv[1]) {
        Some(e) => Reply::Simple(e.value.type_name()),
        None => Reply::Simple("none"),
    }
}

// ---------------------------------------------------------------------------------------
// EXPIRE family (expire.c)

#[derive(Default, Clone, Copy)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl ExpireFlags {
    fn any(self) -> bool {
        self.nx || self.xx || self.gt || self.lt
    }
}

/// Redis's parseExtendedExpireArgumentsOrReply.
fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for a in args {
        if a.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if a.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if a.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if a.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            return Err(Reply::err(errors::sanitize(format!(
                "ERR Unsupported option {}",
                c_str_lossy(a)
            ))));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// How a C `%s` prints an argument: up to the first NUL byte.
fn c_str_lossy(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Redis's expireGenericCommand. `relative`: the time is added to now (EXPIRE, PEXPIRE);
/// `seconds`: the argument is in seconds (EXPIRE, EXPIREAT).
fn expire_generic(
    ctx: &mut Ctx,
    argv: &[Bytes],
    name: &str,
    relative: bool,
    seconds: bool,
) -> Reply {
    let flags = match parse_expire_flags(&argv[3..]) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mut when = match arg_i64(&argv[2]) {
        Ok(w) => w,
        Err(e) => return e,
    };
    if seconds {
        match when.checked_mul(1000) {
            Some(w) => when = w,
            None => return Reply::err(errors::invalid_expire(name)),
        }
    }
    let now = i64::try_from(ctx.now_ms).unwrap_or(i64::MAX);
    if relative {
        match when.checked_add(now) {
            Some(w) => when = w,
            None => return Reply::err(errors::invalid_expire(name)),
        }
    }
    let key = &argv[1];
    let db = ctx.client.db;
    let Some(e) = lookup_write(ctx, db, key) else {
        return Reply::Integer(0);
    };
    if flags.any() {
        let current = e.expire_at().map(|t| i64::try_from(t).unwrap_or(i64::MAX));
        if flags.nx && current.is_some() {
            return Reply::Integer(0);
        }
        if flags.xx && current.is_none() {
            return Reply::Integer(0);
        }
        // No TTL counts as an infinite one: GT never beats it, LT always does.
        if flags.gt && current.is_none_or(|c| when <= c) {
            return Reply::Integer(0);
        }
        if flags.lt && current.is_some_and(|c| when >= c) {
            return Reply::Integer(0);
        }
    }
    if when <= now {
        ctx.db().remove(key);
    } else {
        // when > now >= 0, so it fits.
        ctx.db().set_expire(key, Some(when as u64));
    }
    ctx.dirty(1);
    Reply::Integer(1)
}

fn expire(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    expire_generic(ctx, argv, "expire", true, true)
}

fn pexpire(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    expire_generic(ctx, argv, "pexpire", true, false)
}

fn expireat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    expire_generic(ctx, argv, "expireat", false, true)
}

fn pexpireat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    expire_generic(ctx, argv, "pexpireat", false, false)
}

/// Redis's ttlGenericCommand: -2 missing, -1 no TTL; seconds are rounded to nearest.
fn ttl_generic(ctx: &mut Ctx, key: &Bytes, ms: bool, absolute: bool) -> Reply {
    let now = ctx.now_ms as i128;
    let Some(e) = lookup_notouch(ctx, key) else {
        return Reply::Integer(-2);
    };
    let Some(at) = e.expire_at() else {
        return Reply::Integer(-1);
    };
    let at = at as i128;
    let ttl = if absolute { at } else { at - now }.max(0);
    let out = if ms { ttl } else { (ttl + 500) / 1000 };
    Reply::Integer(i64::try_from(out).unwrap_or(i64::MAX))
}

fn ttl(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], false, false)
}

fn pttl(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], true, false)
}

fn expiretime(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], false, true)
}

fn pexpiretime(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    ttl_generic(ctx, &argv[1], true, true)
}

fn persist(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let db = ctx.client.db;
    let had_ttl = match lookup_write(ctx, db, &argv[1]) {
        None => return Reply::Integer(0),
        Some(e) => e.expire_at().is_some(),
    };
    if !had_ttl {
        return Reply::Integer(0);
    }
    ctx.db().set_expire(&argv[1], None);
    ctx.dirty(1);
    Reply::Integer(1)
}

// ---------------------------------------------------------------------------------------
// RENAME, COPY, MOVE (db.c)

/// Redis's renameGenericCommand: the value moves with its TTL; the destination's old value
/// (and TTL) is dropped.
fn rename_generic(ctx: &mut Ctx, argv: &[Bytes], nx: bool) -> Reply {
    let (src, dst) = (&argv[1], &argv[2]);
    let db = ctx.client.db;
    if lookup_write(ctx, db, src).is_none() {
        return Reply::err(errors::NO_SUCH_KEY);
    }
    if src == dst {
        return if nx { Reply::Integer(0) } else { Reply::ok() };
    }
    if lookup_write(ctx, db, dst).is_some() && nx {
        return Reply::Integer(0);
    }
    let Some(entry) = ctx.db().remove(src) else {
        return Reply::err(errors::NO_SUCH_KEY);
    };
    ctx.db().insert_entry(dst, entry);
    ctx.dirty(1);
    if nx { Reply::Integer(1) } else { Reply::ok() }
}

fn rename(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rename_generic(ctx, argv, false)
}

fn renamenx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rename_generic(ctx, argv, true)
}

/// COPY source destination [DB n] [REPLACE]
fn copy(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let src_db = ctx.client.db;
    let mut dst_db = src_db;
    let mut replace = false;
    let mut j = 3;
    while j < argv.len() {
        let more = argv.len() - j - 1;
        if argv[j].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if argv[j].eq_ignore_ascii_case(b"db") && more >= 1 {
            dst_db = match arg_db(ctx, &argv[j + 1]) {
                Ok(n) => n,
                Err(e) => return e,
            };
            j += 1;
        } else {
            return Reply::err(errors::SYNTAX);
        }
        j += 1;
    }
    let (src, dst) = (&argv[1], &argv[2]);
    if src_db == dst_db && src == dst {
        return Reply::err(SAME_OBJECT);
    }
    // lookupKeyRead on the source: counts a hit/miss and touches it.
    let now = ctx.now_ms;
    let (value, expire_at) = match ctx.lookup_read(src) {
        None => return Reply::Integer(0),
        Some(e) => (e.value.duplicate(), e.expire_at()),
    };
    if lookup_write(ctx, dst_db, dst).is_some() && !replace {
        return Reply::Integer(0);
    }
    ctx.state.dbs[dst_db].insert_entry(dst, Entry::new(value, expire_at, now));
    ctx.dirty(1);
    Reply::Integer(1)
}

fn move_cmd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let src_db = ctx.client.db;
    let dst_db = match arg_db(ctx, &argv[2]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    if src_db == dst_db {
        return Reply::err(SAME_OBJECT);
    }
    let key = &argv[1];
    if lookup_write(ctx, src_db, key).is_none() {
        return Reply::Integer(0);
    }
    if lookup_write(ctx, dst_db, key).is_some() {
        return Reply::Integer(0);
    }
    let Some(entry) = ctx.state.dbs[src_db].remove(key) else {
        return Reply::Integer(0);
    };
    ctx.state.dbs[dst_db].insert_entry(key, entry);
    ctx.dirty(1);
    Reply::Integer(1)
}

/// TOUCH counts every argument that exists, duplicates included.
fn touch(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &argv[1..] {
        if ctx.lookup_read(key).is_some() {
            n += 1;
        }
    }
    Reply::Integer(n)
}

// ---------------------------------------------------------------------------------------
// RANDOMKEY, KEYS, SCAN

fn randomkey(ctx: &mut Ctx, _argv: &[Bytes]) -> Reply {
    let now = ctx.now_ms;
    let db = ctx.client.db;
    let State {
        dbs,
        pending_expired,
        ..
    } = &mut *ctx.state;
    pending_expired.db = db;
    match dbs
        .get_mut(db)
        .and_then(|d| d.random_key(now, pending_expired))
    {
        Some(k) => Reply::Bulk(k),
        None => Reply::Null,
    }
}

/// KEYS reports live keys without reclaiming expired ones, like Redis's keyIsExpired check.
fn keys(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let pattern = &argv[1];
    let all = pattern.as_ref() == b"*";
    let now = ctx.now_ms;
    let mut out = Vec::new();
    ctx.db().for_each_live(now, |key, _| {
        if all || crate::glob::glob_match(pattern, key, false) {
            out.push(Reply::Bulk(Bytes::copy_from_slice(key)));
        }
    });
    Reply::Array(out)
}

/// Redis's parseScanCursorOrReply: C `strtoul(s, &end, 10)` accepting the whole string, no
/// leading space. Like strtoul it takes an optional sign (`-1` wraps to the largest cursor)
/// and an empty string reads as 0; the argument ends at its first NUL byte as a C string.
pub(super) fn parse_cursor(b: &[u8]) -> Option<u64> {
    let b = &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())];
    let Some(&first) = b.first() else {
        return Some(0);
    };
    if matches!(first, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return None;
    }
    let (neg, digits) = match first {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]. The cursor is the hash of the next
/// key in the keyspace's (hash, key) order, so every key present for the whole iteration is
/// returned; COUNT is how many entries one call visits (expired ones are reclaimed).
fn scan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(cursor) = parse_cursor(&argv[1]) else {
        return Reply::err("ERR invalid cursor");
    };
    let mut count: i64 = 10;
    let mut pattern: Option<&Bytes> = None;
    let mut type_name: Option<&Bytes> = None;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - i;
        let opt = &argv[i];
        if opt.eq_ignore_ascii_case(b"count") && more >= 2 {
            count = match arg_i64(&argv[i + 1]) {
                Ok(c) => c,
                Err(e) => return e,
            };
            if count < 1 {
                return Reply::err(errors::SYNTAX);
            }
        } else if opt.eq_ignore_ascii_case(b"match") && more >= 2 {
            let p = &argv[i + 1];
            pattern = if p.as_ref() == b"*" { None } else { Some(p) };
        } else if opt.eq_ignore_ascii_case(b"type") && more >= 2 {
            type_name = Some(&argv[i + 1]);
        } else {
            return Reply::err(errors::SYNTAX);
        }
        i += 2;
    }
    let budget = usize::try_from(count).unwrap_or(usize::MAX);
    let now = ctx.now_ms;
    let db = ctx.client.db;
    let mut out = Vec::new();
    let mut typed_hits = 0u64;
    let State {
        dbs,
        pending_expired,
        ..
    } = &mut *ctx.state;
    let Some(d) = dbs.get_mut(db) else {
        return Reply::err(errors::DB_INDEX);
    };
    pending_expired.db = db;
    let next = d.scan_expiring(cursor, budget, now, pending_expired, |key, e| {
        if let Some(p) = pattern
            && !crate::glob::glob_match(p, key, false)
        {
            return;
        }
        if let Some(t) = type_name {
            // Redis looks the key up (NOTOUCH) to learn its type: a keyspace hit.
            typed_hits += 1;
            if !t.eq_ignore_ascii_case(e.value.type_name().as_bytes()) {
                return;
            }
        }
        out.push(Reply::Bulk(Bytes::copy_from_slice(key)));
    });
    ctx.hits += typed_hits;
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(out),
    ])
}

// ---------------------------------------------------------------------------------------
// OBJECT (object.c)

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn object(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let sub = argv
        .get(1)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    if sub == b"help" && argv.len() == 2 {
        return Reply::Array(OBJECT_HELP.iter().map(|l| Reply::Simple(l)).collect());
    }
    let known = matches!(
        sub.as_slice(),
        b"encoding" | b"refcount" | b"idletime" | b"freq"
    );
    if !known || argv.len() != 3 {
        return Reply::err(errors::sanitize(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try OBJECT HELP.",
            c_str_lossy(&argv.get(1).cloned().unwrap_or_default()[..])
                .chars()
                .take(128)
                .collect::<String>()
        )));
    }
    let now_ms = ctx.now_ms;
    let lfu = ctx.state.lfu_policy();
    let Some(e) = lookup_notouch(ctx, &argv[2]) else {
        return Reply::Null;
    };
    // Whole seconds between the access and now, as Redis's seconds-based LRU clock counts.
    let idle = (now_ms / 1000).saturating_sub(e.last_access_ms(now_ms) / 1000);
    match sub.as_slice() {
        b"encoding" => Reply::bulk_str(e.value.encoding_name()),
        b"refcount" => Reply::Integer(if e.value.is_shared_integer() {
            SHARED_REFCOUNT
        } else {
            1
        }),
        b"idletime" => {
            if lfu {
                return Reply::err(
                    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
                );
            }
            Reply::Integer(i64::try_from(idle).unwrap_or(i64::MAX))
        }
        _ => {
            if !lfu {
                return Reply::err(
                    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
                );
            }
            // No per-access counter is kept: report LFU_INIT_VAL decayed by one per idle
            // minute (lfu-decay-time 1), as LFUDecrAndReturn would for an untouched key.
            Reply::Integer(LFU_INIT_VAL.saturating_sub(idle / 60) as i64)
        }
    }
}
