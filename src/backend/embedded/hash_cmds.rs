//! Hashes: the hash value type ([`HashValue`], with Redis 7.0's listpack -> hashtable
//! encoding rule) and the H* commands (t_hash.c semantics): HSET HMSET HSETNX HGET HMGET
//! HDEL HEXISTS HLEN HSTRLEN HGETALL HKEYS HVALS HINCRBY HINCRBYFLOAT HRANDFIELD HSCAN.
//!
//! Small hashes keep insertion order in a vector, as a listpack does, so HGETALL/HKEYS/
//! HSCAN replies match Redis exactly. Big hashes live in a `BTreeMap` ordered by (field
//! hash, field), the same scheme as the keyspace (see `db.rs`): HSCAN's cursor is the hash
//! of the next field, so a scan survives inserts and deletes between calls.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use bytes::Bytes;

use super::db::HKey;
use super::keyspace_cmds::parse_cursor;
use super::string_cmds::longdouble;
use super::value::Value;
use super::{Ctx, Tunables, arg_i64};
use crate::protocol::{Reply, errors};

const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
const INCR_NAN: &str = "ERR value is NaN or Infinity";
const RESULT_NAN: &str = "ERR increment would produce NaN or Infinity";
const COUNT_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
const OUT_OF_RANGE: &str = "ERR value is out of range";
/// Redis would build a reply of any size for a negative random count (and die of OOM
/// on absurd ones); we refuse replies beyond this many elements instead.
pub(super) const MAX_RANDOM_REPLY: u64 = 1 << 22;
pub(super) const COUNT_TOO_LARGE: &str = "ERR count is too large";

/// Bytes of bookkeeping per element (two `Bytes` handles, plus tree-node and hash
/// overhead in the table form), added to the payload bytes.
const LISTPACK_ENTRY_OVERHEAD: usize = 64;
const TABLE_ENTRY_OVERHEAD: usize = 112;
const BASE_SIZE: usize = 48;

#[derive(Clone, Debug)]
enum Repr {
    /// Redis's listpack: insertion order, linear lookups (it is small by construction).
    Listpack(Vec<(Bytes, Bytes)>),
    /// Redis's hashtable, ordered by field hash for stable scan cursors.
    Table(BTreeMap<HKey, Bytes>),
}

/// A hash: field -> value.
#[derive(Clone, Debug)]
pub struct HashValue {
    repr: Repr,
    /// Running estimate of heap bytes held, kept up to date by every change.
    bytes: usize,
}

impl Default for HashValue {
    fn default() -> HashValue {
        HashValue::new()
    }
}

impl HashValue {
    /// An empty listpack-encoded hash (what Redis's createHashObject makes).
    pub fn new() -> HashValue {
        HashValue {
            repr: Repr::Listpack(Vec::new()),
            bytes: BASE_SIZE,
        }
    }

    /// Builds a hash from (field, value) pairs (RESTORE, AOF/RDB load, SORT ... STORE);
    /// later duplicates overwrite earlier ones. The encoding is the one Redis would reach
    /// by setting the pairs one by one under `t`.
    pub fn from_pairs<I>(pairs: I, t: &Tunables) -> HashValue
    where
        I: IntoIterator<Item = (Bytes, Bytes)>,
    {
        let mut h = HashValue::new();
        for (f, v) in pairs {
            h.set(f, v, t);
        }
        h
    }

    /// OBJECT ENCODING's answer, as Redis 7.0 would pick it for the same data.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::Listpack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Approximate bytes held; O(1) (a running total kept as elements change).
    pub fn mem_size(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Listpack(v) => v.len(),
            Repr::Table(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_listpack(&self) -> bool {
        matches!(self.repr, Repr::Listpack(_))
    }

    /// Every (field, value) pair: insertion order while listpack-encoded, field-hash order
    /// once a hashtable.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&Bytes, &Bytes)> + '_> {
        match &self.repr {
            Repr::Listpack(v) => Box::new(v.iter().map(|(f, v)| (f, v))),
            Repr::Table(m) => Box::new(m.iter().map(|(k, v)| (&k.key, v))),
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        match &self.repr {
            Repr::Listpack(v) => v.iter().find(|(f, _)| f == field).map(|(_, v)| v),
            Repr::Table(m) => m.get(&HKey::lookup(&Bytes::copy_from_slice(field))),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Converts to a hashtable (one way, like Redis's hashTypeConvert).
    fn convert_to_table(&mut self) {
        let Repr::Listpack(v) = &mut self.repr else {
            return;
        };
        let mut m = BTreeMap::new();
        let mut bytes = BASE_SIZE;
        for (f, val) in std::mem::take(v) {
            bytes += f.len() + val.len() + TABLE_ENTRY_OVERHEAD;
            m.insert(HKey::owned(&f), val);
        }
        self.repr = Repr::Table(m);
        self.bytes = bytes;
    }

    /// Redis's hashTypeTryConversion: any argument longer than hash-max-listpack-value
    /// turns a listpack into a hashtable before the write, even if nothing is added.
    pub fn convert_for_lengths<'a>(
        &mut self,
        args: impl IntoIterator<Item = &'a [u8]>,
        t: &Tunables,
    ) {
        if self.is_listpack()
            && args
                .into_iter()
                .any(|a| a.len() > t.hash_max_listpack_value)
        {
            self.convert_to_table();
        }
    }

    /// Sets a field; returns true if it is new. Converts to a hashtable when the field or
    /// value is too long, or the hash too big, for a listpack under `t`.
    pub fn set(&mut self, field: Bytes, value: Bytes, t: &Tunables) -> bool {
        self.convert_for_lengths([field.as_ref(), value.as_ref()], t);
        let added = match &mut self.repr {
            Repr::Listpack(v) => match v.iter_mut().find(|(f, _)| *f == field) {
                Some((_, old)) => {
                    self.bytes = self.bytes - old.len() + value.len();
                    *old = value;
                    false
                }
                None => {
                    self.bytes += field.len() + value.len() + LISTPACK_ENTRY_OVERHEAD;
                    v.push((field, value));
                    true
                }
            },
            Repr::Table(m) => {
                let (flen, vlen) = (field.len(), value.len());
                match m.insert(HKey::owned(&field), value) {
                    Some(old) => {
                        self.bytes = self.bytes - old.len() + vlen;
                        false
                    }
                    None => {
                        self.bytes += flen + vlen + TABLE_ENTRY_OVERHEAD;
                        true
                    }
                }
            }
        };
        if self.is_listpack() && self.len() > t.hash_max_listpack_entries {
            self.convert_to_table();
        }
        added
    }

    /// Removes a field; returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Listpack(v) => match v.iter().position(|(f, _)| f == field) {
                Some(i) => {
                    let (f, val) = v.remove(i);
                    self.bytes -= f.len() + val.len() + LISTPACK_ENTRY_OVERHEAD;
                    true
                }
                None => false,
            },
            Repr::Table(m) => match m.remove_entry(&HKey::lookup(&Bytes::copy_from_slice(field))) {
                Some((k, val)) => {
                    self.bytes -= k.key.len() + val.len() + TABLE_ENTRY_OVERHEAD;
                    true
                }
                None => false,
            },
        }
    }

    /// One random pair (listpack: uniform; table: a random point of the hash ring).
    fn random_pair(&self) -> Option<(&Bytes, &Bytes)> {
        match &self.repr {
            Repr::Listpack(v) => {
                if v.is_empty() {
                    return None;
                }
                v.get(rand::random_range(0..v.len())).map(|(f, v)| (f, v))
            }
            Repr::Table(m) => {
                let probe = HKey {
                    hash: rand::random::<u64>(),
                    key: Bytes::new(),
                };
                m.range((Bound::Included(probe), Bound::Unbounded))
                    .next()
                    .or_else(|| m.iter().next())
                    .map(|(k, v)| (&k.key, v))
            }
        }
    }

    /// `count` distinct random pairs, count < len.
    fn random_distinct(&self, count: usize) -> Vec<(&Bytes, &Bytes)> {
        if let Repr::Listpack(v) = &self.repr {
            // Selection sampling keeps listpack order, as Redis's lpRandomPairsUnique does.
            let idx = rand::seq::index::sample(&mut rand::rng(), v.len(), count.min(v.len()));
            let mut idx = idx.into_vec();
            idx.sort_unstable();
            return idx
                .into_iter()
                .filter_map(|i| v.get(i))
                .map(|(f, v)| (f, v))
                .collect();
        }
        if count.saturating_mul(3) > self.len() {
            let all: Vec<_> = self.iter().collect();
            let idx = rand::seq::index::sample(&mut rand::rng(), all.len(), count.min(all.len()));
            return idx
                .into_iter()
                .filter_map(|i| all.get(i).copied())
                .collect();
        }
        // Few out of many: random picks until enough distinct ones were seen.
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let Some((f, v)) = self.random_pair() else {
                break;
            };
            if seen.insert(f.clone()) {
                out.push((f, v));
            }
        }
        out
    }

    /// One HSCAN step over a hashtable from `cursor`, visiting about `count` entries;
    /// returns the next cursor (0 at the end). Fields sharing a hash are never split.
    fn scan_table(&self, cursor: u64, count: usize, mut visit: impl FnMut(&Bytes, &Bytes)) -> u64 {
        let Repr::Table(m) = &self.repr else {
            for (f, v) in self.iter() {
                visit(f, v);
            }
            return 0;
        };
        let start = HKey {
            hash: cursor,
            key: Bytes::new(),
        };
        let mut last = None;
        for (seen, (k, v)) in m
            .range((Bound::Included(start), Bound::Unbounded))
            .enumerate()
        {
            if seen >= count && last != Some(k.hash) {
                return k.hash;
            }
            last = Some(k.hash);
            visit(&k.key, v);
        }
        0
    }
}

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("hset", hset);
    t.insert("hmset", hmset);
    t.insert("hsetnx", hsetnx);
    t.insert("hget", hget);
    t.insert("hmget", hmget);
    t.insert("hdel", hdel);
    t.insert("hexists", hexists);
    t.insert("hlen", hlen);
    t.insert("hstrlen", hstrlen);
    t.insert("hgetall", hgetall);
    t.insert("hkeys", hkeys);
    t.insert("hvals", hvals);
    t.insert("hincrby", hincrby);
    t.insert("hincrbyfloat", hincrbyfloat);
    t.insert("hrandfield", hrandfield);
    t.insert("hscan", hscan);
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn done(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

fn wrongtype() -> Reply {
    Reply::err(errors::WRONGTYPE)
}

fn wrong_arity(name: &str) -> Reply {
    Reply::err(errors::wrong_arity(name))
}

/// The hash at `key` for reading (counts a hit/miss); WRONGTYPE for another type.
fn read_hash<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Result<Option<&'c HashValue>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(wrongtype()),
        },
    }
}

/// The hash at `key` for writing; WRONGTYPE for another type.
fn write_hash<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Result<Option<&'c mut HashValue>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(wrongtype()),
        },
    }
}

/// Runs `f` on the hash at `key`, creating it (Redis's hashTypeLookupWriteOrCreate) if
/// missing; a created hash is stored only if `f` left something in it.
fn with_hash_or_create<R>(
    ctx: &mut Ctx,
    key: &Bytes,
    f: impl FnOnce(&mut HashValue, &Tunables) -> Result<R, Reply>,
) -> Result<R, Reply> {
    let t = ctx.state.tunables.clone();
    if let Some(h) = write_hash(ctx, key)? {
        return f(h, &t);
    }
    let mut h = HashValue::new();
    let r = f(&mut h, &t)?;
    if !h.is_empty() {
        let now = ctx.now_ms;
        ctx.db().set(key, Value::Hash(Box::new(h)), None, now);
    }
    Ok(r)
}

fn owned(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// HSET/HMSET key field value [field value ...]: returns how many fields were new.
fn hset_generic(ctx: &mut Ctx, argv: &[Bytes], name: &str) -> Result<i64, Reply> {
    if argv.len() < 4 || !argv.len().is_multiple_of(2) {
        return Err(wrong_arity(name));
    }
    let added = with_hash_or_create(ctx, &argv[1], |h, t| {
        h.convert_for_lengths(argv[2..].iter().map(|a| a.as_ref()), t);
        let mut added = 0;
        for pair in argv[2..].chunks_exact(2) {
            if h.set(owned(&pair[0]), owned(&pair[1]), t) {
                added += 1;
            }
        }
        Ok(added)
    })?;
    ctx.dirty(((argv.len() - 2) / 2) as u64);
    Ok(added)
}

fn hset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(hset_generic(ctx, argv, "hset").map(Reply::Integer))
}

fn hmset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(hset_generic(ctx, argv, "hmset").map(|_| Reply::ok()))
}

fn hsetnx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, field, value] = argv else {
            return Err(wrong_arity("hsetnx"));
        };
        let added = with_hash_or_create(ctx, key, |h, t| {
            if h.contains(field) {
                return Ok(false);
            }
            h.convert_for_lengths([field.as_ref(), value.as_ref()], t);
            Ok(h.set(owned(field), owned(value), t))
        })?;
        if added {
            ctx.dirty(1);
        }
        Ok(Reply::Integer(i64::from(added)))
    })())
}

fn hget(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, field] = argv else {
            return Err(wrong_arity("hget"));
        };
        Ok(match read_hash(ctx, key)?.and_then(|h| h.get(field)) {
            Some(v) => Reply::Bulk(v.clone()),
            None => Reply::Null,
        })
    })())
}

fn hmget(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("hmget"));
        }
        let h = read_hash(ctx, &argv[1])?;
        Ok(Reply::Array(
            argv[2..]
                .iter()
                .map(|f| match h.and_then(|h| h.get(f)) {
                    Some(v) => Reply::Bulk(v.clone()),
                    None => Reply::Null,
                })
                .collect(),
        ))
    })())
}

fn hdel(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("hdel"));
        }
        let key = &argv[1];
        let Some(h) = write_hash(ctx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let mut deleted = 0;
        for f in &argv[2..] {
            if h.remove(f) {
                deleted += 1;
            }
            if h.is_empty() {
                break;
            }
        }
        let now_empty = h.is_empty();
        if now_empty {
            ctx.db().remove(key);
        }
        ctx.dirty(deleted as u64);
        Ok(Reply::Integer(deleted))
    })())
}

fn hexists(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, field] = argv else {
            return Err(wrong_arity("hexists"));
        };
        let found = read_hash(ctx, key)?.is_some_and(|h| h.contains(field));
        Ok(Reply::Integer(i64::from(found)))
    })())
}

fn hlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key] = argv else {
            return Err(wrong_arity("hlen"));
        };
        let n = read_hash(ctx, key)?.map_or(0, |h| h.len());
        Ok(Reply::Integer(n as i64))
    })())
}

fn hstrlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, field] = argv else {
            return Err(wrong_arity("hstrlen"));
        };
        let n = read_hash(ctx, key)?
            .and_then(|h| h.get(field))
            .map_or(0, |v| v.len());
        Ok(Reply::Integer(n as i64))
    })())
}

/// HGETALL / HKEYS / HVALS.
fn hgetall_generic(
    ctx: &mut Ctx,
    argv: &[Bytes],
    fields: bool,
    values: bool,
) -> Result<Reply, Reply> {
    let [_, key] = argv else {
        return Err(wrong_arity(if fields && values {
            "hgetall"
        } else if fields {
            "hkeys"
        } else {
            "hvals"
        }));
    };
    let h = read_hash(ctx, key)?;
    let pairs = h.into_iter().flat_map(|h| h.iter());
    Ok(if fields && values {
        Reply::Map(
            pairs
                .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
                .collect(),
        )
    } else if fields {
        Reply::Array(pairs.map(|(f, _)| Reply::Bulk(f.clone())).collect())
    } else {
        Reply::Array(pairs.map(|(_, v)| Reply::Bulk(v.clone())).collect())
    })
}

fn hgetall(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(hgetall_generic(ctx, argv, true, true))
}

fn hkeys(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(hgetall_generic(ctx, argv, true, false))
}

fn hvals(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(hgetall_generic(ctx, argv, false, true))
}

fn hincrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, field, incr] = argv else {
            return Err(wrong_arity("hincrby"));
        };
        let by = arg_i64(incr)?;
        let new = with_hash_or_create(ctx, key, |h, t| {
            let old = match h.get(field) {
                None => 0,
                Some(v) => super::num::parse_i64(v).ok_or_else(|| Reply::err(HASH_NOT_INTEGER))?,
            };
            let new = old
                .checked_add(by)
                .ok_or_else(|| Reply::err(errors::OVERFLOW))?;
            let mut buf = itoa::Buffer::new();
            h.set(owned(field), owned(buf.format(new).as_bytes()), t);
            Ok(new)
        })?;
        ctx.dirty(1);
        Ok(Reply::Integer(new))
    })())
}

/// HINCRBYFLOAT: `long double` arithmetic and formatting exactly as INCRBYFLOAT's.
fn hincrbyfloat(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, field, incr] = argv else {
            return Err(wrong_arity("hincrbyfloat"));
        };
        let by = longdouble::parse(incr).ok_or_else(|| Reply::err(errors::NOT_FLOAT))?;
        if by == longdouble::Parsed::Inf {
            return Err(Reply::err(INCR_NAN));
        }
        let text = with_hash_or_create(ctx, key, |h, t| {
            let old = match h.get(field) {
                None => longdouble::Parsed::Finite(longdouble::Ld::ZERO),
                Some(v) => longdouble::parse(v).ok_or_else(|| Reply::err(HASH_NOT_FLOAT))?,
            };
            let sum = longdouble::add(old, by).ok_or_else(|| Reply::err(RESULT_NAN))?;
            let text = Bytes::from(longdouble::format_human(sum).into_bytes());
            h.set(owned(field), text.clone(), t);
            Ok(text)
        })?;
        ctx.dirty(1);
        Ok(Reply::Bulk(text))
    })())
}

/// A random-count argument as Redis reads it: (count, distinct?), range ±LONG_MAX.
pub(super) fn parse_random_count(arg: &[u8]) -> Result<(u64, bool), Reply> {
    let l = arg_i64(arg)?;
    if l == i64::MIN {
        return Err(Reply::err(COUNT_RANGE));
    }
    Ok((l.unsigned_abs(), l >= 0))
}

/// HRANDFIELD key [count [WITHVALUES]].
fn hrandfield(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 2 {
            return Err(wrong_arity("hrandfield"));
        }
        let key = &argv[1];
        if argv.len() == 2 {
            return Ok(match read_hash(ctx, key)?.and_then(|h| h.random_pair()) {
                Some((f, _)) => Reply::Bulk(f.clone()),
                None => Reply::Null,
            });
        }
        // Redis reads the count before looking at WITHVALUES.
        let (count, distinct) = parse_random_count(&argv[2])?;
        let withvalues = match argv.get(3) {
            None => false,
            Some(a) if argv.len() == 4 && a.eq_ignore_ascii_case(b"withvalues") => true,
            Some(_) => return Err(Reply::err(errors::SYNTAX)),
        };
        if withvalues && count > (i64::MAX / 2) as u64 {
            return Err(Reply::err(OUT_OF_RANGE));
        }
        let proto = ctx.client.proto;
        let Some(h) = read_hash(ctx, key)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let pairs: Vec<(&Bytes, &Bytes)> = if count == 0 {
            Vec::new()
        } else if !distinct {
            if count > MAX_RANDOM_REPLY {
                return Err(Reply::err(COUNT_TOO_LARGE));
            }
            (0..count).filter_map(|_| h.random_pair()).collect()
        } else if count >= h.len() as u64 {
            h.iter().collect()
        } else {
            h.random_distinct(count as usize)
        };
        Ok(random_pairs_reply(pairs, withvalues, proto))
    })())
}

/// HRANDFIELD's reply: fields, or with values a flat array (RESP2) / array of pairs (RESP3).
fn random_pairs_reply(
    pairs: Vec<(&Bytes, &Bytes)>,
    withvalues: bool,
    proto: crate::protocol::Protocol,
) -> Reply {
    let resp3 = proto == crate::protocol::Protocol::Resp3;
    let mut out = Vec::with_capacity(pairs.len() * if withvalues && !resp3 { 2 } else { 1 });
    for (f, v) in pairs {
        let (f, v) = (Reply::Bulk(f.clone()), Reply::Bulk(v.clone()));
        match (withvalues, resp3) {
            (false, _) => out.push(f),
            (true, true) => out.push(Reply::Array(vec![f, v])),
            (true, false) => {
                out.push(f);
                out.push(v);
            }
        }
    }
    Reply::Array(out)
}

/// Options of HSCAN/SSCAN (COUNT n, MATCH pattern; TYPE is SCAN's alone): (count, pattern).
pub(super) fn parse_scan_options(args: &[Bytes]) -> Result<(usize, Option<&Bytes>), Reply> {
    let mut count: i64 = 10;
    let mut pattern = None;
    let mut i = 0;
    while i < args.len() {
        let more = args.len() - i;
        let opt = &args[i];
        if opt.eq_ignore_ascii_case(b"count") && more >= 2 {
            count = arg_i64(&args[i + 1])?;
            if count < 1 {
                return Err(Reply::err(errors::SYNTAX));
            }
        } else if opt.eq_ignore_ascii_case(b"match") && more >= 2 {
            let p = &args[i + 1];
            pattern = if p.as_ref() == b"*" { None } else { Some(p) };
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 2;
    }
    Ok((usize::try_from(count).unwrap_or(usize::MAX), pattern))
}

pub(super) fn scan_reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(Bytes::from(next.to_string())),
        Reply::Array(items),
    ])
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]. A listpack hash comes back whole with
/// cursor 0 (as in Redis); a hashtable is walked in field-hash order from the cursor.
fn hscan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("hscan"));
        }
        let cursor = parse_cursor(&argv[2]).ok_or_else(|| Reply::err("ERR invalid cursor"))?;
        let Some(h) = read_hash(ctx, &argv[1])? else {
            return Ok(scan_reply(0, Vec::new()));
        };
        let (count, pattern) = parse_scan_options(&argv[3..])?;
        let mut items = Vec::new();
        let next = h.scan_table(cursor, count, |f, v| {
            if pattern.is_none_or(|p| crate::glob::glob_match(p, f, false)) {
                items.push(Reply::Bulk(f.clone()));
                items.push(Reply::Bulk(v.clone()));
            }
        });
        Ok(scan_reply(next, items))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::test_support::{b, dirty, run};

    use crate::backend::embedded::Engine;
    use crate::config::EmbeddedConfig;

    fn fields(h: &HashValue) -> Vec<Bytes> {
        h.iter().map(|(f, _)| f.clone()).collect()
    }

    #[test]
    fn listpack_keeps_insertion_order_and_updates_in_place() {
        let t = Tunables::default();
        let mut h = HashValue::new();
        assert!(h.set(b("z"), b("1"), &t));
        assert!(h.set(b("a"), b("2"), &t));
        assert!(!h.set(b("z"), b("3"), &t));
        assert_eq!(fields(&h), vec![b("z"), b("a")]);
        assert_eq!(h.get(b"z"), Some(&b("3")));
        assert_eq!(h.encoding_name(), "listpack");
        assert!(h.remove(b"z"));
        assert!(!h.remove(b"z"));
        assert_eq!(fields(&h), vec![b("a")]);
    }

    #[test]
    fn converts_by_entries_and_by_value_length_one_way() {
        let t = Tunables {
            hash_max_listpack_entries: 2,
            hash_max_listpack_value: 4,
            ..Tunables::default()
        };
        let mut h = HashValue::new();
        h.set(b("a"), b("1"), &t);
        h.set(b("b"), b("1"), &t);
        assert_eq!(h.encoding_name(), "listpack");
        h.set(b("c"), b("1"), &t);
        assert_eq!(h.encoding_name(), "hashtable");
        h.remove(b"c");
        h.remove(b"b");
        assert_eq!(h.encoding_name(), "hashtable");
        let mut h = HashValue::new();
        h.set(b("a"), b("12345"), &t);
        assert_eq!(h.encoding_name(), "hashtable");
        assert_eq!(h.get(b"a"), Some(&b("12345")));
    }

    #[test]
    fn mem_size_tracks_changes_and_returns_to_base() {
        let t = Tunables::default();
        let mut h = HashValue::new();
        let base = h.mem_size();
        h.set(b("field"), b("value"), &t);
        let one = h.mem_size();
        assert!(one >= base + 10);
        h.set(b("field"), b("a much longer value"), &t);
        assert!(h.mem_size() > one);
        h.remove(b"field");
        assert_eq!(h.mem_size(), base);
    }

    #[test]
    fn table_scan_visits_every_field_once_despite_inserts() {
        let t = Tunables {
            hash_max_listpack_entries: 0,
            ..Tunables::default()
        };
        let mut h = HashValue::from_pairs((0..200).map(|i| (b(&format!("f{i}")), b("v"))), &t);
        assert_eq!(h.encoding_name(), "hashtable");
        let mut seen = Vec::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = h.scan_table(cursor, 7, |f, _| seen.push(f.clone()));
            h.set(b(&format!("new{round}")), b("v"), &t);
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..200 {
            let f = b(&format!("f{i}"));
            assert_eq!(seen.iter().filter(|s| **s == f).count(), 1, "{i}");
        }
    }

    #[test]
    fn random_distinct_returns_distinct_fields() {
        let t = Tunables {
            hash_max_listpack_entries: 4,
            ..Tunables::default()
        };
        for n in [3usize, 50] {
            let h = HashValue::from_pairs((0..n).map(|i| (b(&i.to_string()), b("v"))), &t);
            for count in [1, 2, n - 1] {
                let got = h.random_distinct(count);
                let set: HashSet<_> = got.iter().map(|(f, _)| (*f).clone()).collect();
                assert_eq!(got.len(), count);
                assert_eq!(set.len(), count);
            }
        }
    }

    #[test]
    fn random_count_parsing() {
        assert_eq!(parse_random_count(b"-3"), Ok((3, false)));
        assert_eq!(parse_random_count(b"3"), Ok((3, true)));
        assert!(parse_random_count(b"-9223372036854775808").is_err());
        assert!(parse_random_count(b"x").is_err());
    }

    #[test]
    fn writes_count_dirty_and_empty_hashes_are_deleted() {
        let e = Engine::new(&EmbeddedConfig::default());
        assert_eq!(
            run(&e, &["hset", "h", "a", "1", "b", "2"]),
            Reply::Integer(2)
        );
        assert_eq!(dirty(&e), 2);
        assert_eq!(run(&e, &["hset", "h", "a", "1"]), Reply::Integer(0));
        assert_eq!(dirty(&e), 3);
        run(&e, &["hsetnx", "h", "a", "x"]);
        run(&e, &["hdel", "h", "nope"]);
        run(&e, &["hdel", "nokey", "a"]);
        assert_eq!(dirty(&e), 3);
        assert_eq!(run(&e, &["hincrby", "h", "n", "5"]), Reply::Integer(5));
        assert_eq!(dirty(&e), 4);
        assert_eq!(
            run(&e, &["hincrby", "h", "a", "9223372036854775807"]),
            Reply::err(errors::OVERFLOW)
        );
        assert_eq!(dirty(&e), 4);
        assert_eq!(
            run(&e, &["hdel", "h", "a", "b", "n", "z"]),
            Reply::Integer(3)
        );
        assert_eq!(dirty(&e), 7);
        assert_eq!(run(&e, &["exists", "h"]), Reply::Integer(0));
        assert_eq!(
            run(&e, &["hincrbyfloat", "f", "x", "1.5"]),
            Reply::Bulk(b("1.5"))
        );
        assert_eq!(
            run(&e, &["hincrbyfloat", "f", "x", "abc"]),
            Reply::err(errors::NOT_FLOAT)
        );
        assert_eq!(dirty(&e), 8);
    }

    #[test]
    fn huge_random_counts_do_not_allocate_unboundedly() {
        let e = Engine::new(&EmbeddedConfig::default());
        run(&e, &["hset", "h", "a", "1", "b", "2"]);
        assert_eq!(
            run(&e, &["hrandfield", "h", "9223372036854775807"]),
            Reply::Array(vec![Reply::Bulk(b("a")), Reply::Bulk(b("b"))])
        );
        assert_eq!(
            run(&e, &["hrandfield", "h", "-4611686018427387903"]),
            Reply::err(COUNT_TOO_LARGE)
        );
        assert_eq!(
            run(
                &e,
                &["hrandfield", "h", "4611686018427387904", "WITHVALUES"]
            ),
            Reply::err(OUT_OF_RANGE)
        );
        assert_eq!(
            run(&e, &["hscan", "h", "0", "COUNT", "9223372036854775807"]),
            scan_reply(
                0,
                ["a", "1", "b", "2"]
                    .iter()
                    .map(|s| Reply::Bulk(b(s)))
                    .collect()
            )
        );
    }
}
