//! Sets: the set value type ([`SetValue`], with Redis 7.0's intset -> hashtable encoding
//! rule) and the S* commands (t_set.c semantics): SADD SREM SMEMBERS SISMEMBER SMISMEMBER
//! SCARD SPOP SRANDMEMBER SMOVE SINTER SUNION SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE
//! SINTERCARD SSCAN.
//!
//! An intset is a sorted vector of integers, as Redis's is, so SMEMBERS/SSCAN of an
//! all-integer set come back in numeric order exactly like Redis. Big sets live in a
//! `BTreeSet` ordered by (member hash, member), the keyspace's scheme (see `db.rs`): the
//! SSCAN cursor is the hash of the next member, so a scan survives inserts and deletes.

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

use bytes::Bytes;

use super::db::HKey;
use super::hash_cmds::{
    COUNT_TOO_LARGE, MAX_RANDOM_REPLY, parse_random_count, parse_scan_options, scan_reply,
};
use super::keyspace_cmds::parse_cursor;
use super::value::Value;
use super::{Ctx, Tunables};
use crate::protocol::{Reply, errors};

const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
const TOO_MANY_NUMKEYS: &str = "ERR Number of keys can't be greater than number of args";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
/// SPOP with a count rebuilds the set from its survivors when fewer than count/5 stay
/// (Redis's SPOP_MOVE_STRATEGY_MUL); that can turn a hashtable back into an intset.
const SPOP_MOVE_STRATEGY_MUL: u64 = 5;

/// Heap bytes per element: an `i64` in the intset; a `Bytes` handle, its hash and the
/// B-tree node share in the table form (payload bytes are added on top).
const INTSET_ENTRY_SIZE: usize = 8;
const TABLE_ENTRY_OVERHEAD: usize = 80;
const BASE_SIZE: usize = 48;

#[derive(Clone, Debug)]
enum Repr {
    /// Redis's intset: sorted, distinct integers.
    IntSet(Vec<i64>),
    /// Redis's hashtable, ordered by member hash for stable scan cursors.
    Table(BTreeSet<HKey>),
}

/// A set of members.
#[derive(Clone, Debug)]
pub struct SetValue {
    repr: Repr,
    /// Running estimate of heap bytes held, kept up to date by every change.
    bytes: usize,
}

impl Default for SetValue {
    fn default() -> SetValue {
        SetValue::new()
    }
}

fn int_bytes(v: i64) -> Bytes {
    let mut buf = itoa::Buffer::new();
    Bytes::copy_from_slice(buf.format(v).as_bytes())
}

impl SetValue {
    /// An empty intset-encoded set. Adding a non-integer converts it at once, which gives
    /// the same encoding as Redis's setTypeCreate picking by the first member.
    pub fn new() -> SetValue {
        SetValue {
            repr: Repr::IntSet(Vec::new()),
            bytes: BASE_SIZE,
        }
    }

    /// Builds a set from members (RESTORE, AOF/RDB load, SORT ... STORE); duplicates
    /// collapse. The encoding is the one Redis reaches adding them one by one under `t`.
    pub fn from_members<I>(members: I, t: &Tunables) -> SetValue
    where
        I: IntoIterator<Item = Bytes>,
    {
        let mut s = SetValue::new();
        for m in members {
            s.insert(m, t);
        }
        s
    }

    /// OBJECT ENCODING's answer, as Redis 7.0 would pick it for the same data.
    pub fn encoding_name(&self) -> &'static str {
        match self.repr {
            Repr::IntSet(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// Approximate bytes held; O(1) (a running total kept as elements change).
    pub fn mem_size(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::IntSet(v) => v.len(),
            Repr::Table(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every member: numeric order while an intset, member-hash order once a hashtable.
    pub fn members(&self) -> Box<dyn Iterator<Item = Bytes> + '_> {
        match &self.repr {
            Repr::IntSet(v) => Box::new(v.iter().map(|&i| int_bytes(i))),
            Repr::Table(m) => Box::new(m.iter().map(|k| k.key.clone())),
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::IntSet(v) => {
                super::num::parse_i64(member).is_some_and(|i| v.binary_search(&i).is_ok())
            }
            Repr::Table(m) => m.contains(&HKey::lookup(&Bytes::copy_from_slice(member))),
        }
    }

    /// Converts to a hashtable (one way, like Redis's setTypeConvert).
    fn convert_to_table(&mut self) {
        let Repr::IntSet(v) = &mut self.repr else {
            return;
        };
        let mut m = BTreeSet::new();
        let mut bytes = BASE_SIZE;
        for i in std::mem::take(v) {
            let b = int_bytes(i);
            bytes += b.len() + TABLE_ENTRY_OVERHEAD;
            m.insert(HKey::owned(&b));
        }
        self.repr = Repr::Table(m);
        self.bytes = bytes;
    }

    /// Adds a member; returns true if it is new. A non-integer member, or growing past
    /// set-max-intset-entries, turns an intset into a hashtable.
    pub fn insert(&mut self, member: Bytes, t: &Tunables) -> bool {
        if let Repr::IntSet(v) = &mut self.repr {
            if let Some(i) = super::num::parse_i64(&member) {
                let Err(pos) = v.binary_search(&i) else {
                    return false;
                };
                v.insert(pos, i);
                self.bytes += INTSET_ENTRY_SIZE;
                if v.len() > t.set_max_intset_entries {
                    self.convert_to_table();
                }
                return true;
            }
            self.convert_to_table();
        }
        let Repr::Table(m) = &mut self.repr else {
            return false;
        };
        let len = member.len();
        if m.insert(HKey::owned(&member)) {
            self.bytes += len + TABLE_ENTRY_OVERHEAD;
            true
        } else {
            false
        }
    }

    /// Removes a member; returns whether it was there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::IntSet(v) => {
                let Some(i) = super::num::parse_i64(member) else {
                    return false;
                };
                match v.binary_search(&i) {
                    Ok(pos) => {
                        v.remove(pos);
                        self.bytes -= INTSET_ENTRY_SIZE;
                        true
                    }
                    Err(_) => false,
                }
            }
            Repr::Table(m) => {
                if m.remove(&HKey::lookup(&Bytes::copy_from_slice(member))) {
                    self.bytes -= member.len() + TABLE_ENTRY_OVERHEAD;
                    true
                } else {
                    false
                }
            }
        }
    }

    /// One random member (intset: uniform; table: a random point of the hash ring).
    pub fn random_member(&self) -> Option<Bytes> {
        match &self.repr {
            Repr::IntSet(v) => {
                if v.is_empty() {
                    return None;
                }
                v.get(rand::random_range(0..v.len())).map(|&i| int_bytes(i))
            }
            Repr::Table(m) => {
                let probe = HKey {
                    hash: rand::random::<u64>(),
                    key: Bytes::new(),
                };
                m.range((Bound::Included(probe), Bound::Unbounded))
                    .next()
                    .or_else(|| m.iter().next())
                    .map(|k| k.key.clone())
            }
        }
    }

    /// `count` distinct random members (all of them if count >= len).
    pub fn random_distinct(&self, count: usize) -> Vec<Bytes> {
        if count >= self.len() {
            return self.members().collect();
        }
        if let Repr::IntSet(v) = &self.repr {
            let idx = rand::seq::index::sample(&mut rand::rng(), v.len(), count);
            return idx
                .into_iter()
                .filter_map(|i| v.get(i))
                .map(|&i| int_bytes(i))
                .collect();
        }
        if count.saturating_mul(3) > self.len() {
            let all: Vec<Bytes> = self.members().collect();
            let idx = rand::seq::index::sample(&mut rand::rng(), all.len(), count);
            return idx
                .into_iter()
                .filter_map(|i| all.get(i).cloned())
                .collect();
        }
        // Few out of many: random picks until enough distinct ones were seen.
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let Some(m) = self.random_member() else {
                break;
            };
            if seen.insert(m.clone()) {
                out.push(m);
            }
        }
        out
    }

    /// One SSCAN step from `cursor`, visiting about `count` members; returns the next
    /// cursor (0 at the end). An intset is visited whole (Redis does the same for its
    /// compact encodings); members sharing a hash are never split between steps.
    fn scan(&self, cursor: u64, count: usize, mut visit: impl FnMut(Bytes)) -> u64 {
        let Repr::Table(m) = &self.repr else {
            self.members().for_each(visit);
            return 0;
        };
        let start = HKey {
            hash: cursor,
            key: Bytes::new(),
        };
        let mut last = None;
        for (seen, k) in m
            .range((Bound::Included(start), Bound::Unbounded))
            .enumerate()
        {
            if seen >= count && last != Some(k.hash) {
                return k.hash;
            }
            last = Some(k.hash);
            visit(k.key.clone());
        }
        0
    }
}

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("sadd", sadd);
    t.insert("srem", srem);
    t.insert("smembers", smembers);
    t.insert("sismember", sismember);
    t.insert("smismember", smismember);
    t.insert("scard", scard);
    t.insert("spop", spop);
    t.insert("srandmember", srandmember);
    t.insert("smove", smove);
    t.insert("sinter", sinter);
    t.insert("sunion", sunion);
    t.insert("sdiff", sdiff);
    t.insert("sinterstore", sinterstore);
    t.insert("sunionstore", sunionstore);
    t.insert("sdiffstore", sdiffstore);
    t.insert("sintercard", sintercard);
    t.insert("sscan", sscan);
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

fn owned(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

/// The set at `key` for reading (counts a hit/miss); WRONGTYPE for another type.
fn read_set<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Result<Option<&'c SetValue>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(wrongtype()),
        },
    }
}

/// The set at `key` for writing; WRONGTYPE for another type.
fn write_set<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Result<Option<&'c mut SetValue>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(wrongtype()),
        },
    }
}

fn bulk_set(members: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

fn bulk_array(members: impl IntoIterator<Item = Bytes>) -> Reply {
    Reply::Array(members.into_iter().map(Reply::Bulk).collect())
}

/// Redis's getPositiveLongFromObjectOrReply with a message: `msg` answers a negative
/// value and a non-integer alike.
fn parse_non_negative(arg: &[u8], msg: &str) -> Result<u64, Reply> {
    super::num::parse_i64(arg)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| Reply::err(msg))
}

// ---------------------------------------------------------------------------------------
// Single-set commands
// ---------------------------------------------------------------------------------------

fn sadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("sadd"));
        }
        let key = &argv[1];
        let t = ctx.state.tunables.clone();
        let mut added = 0u64;
        match write_set(ctx, key)? {
            Some(s) => {
                for m in &argv[2..] {
                    added += u64::from(s.insert(owned(m), &t));
                }
            }
            None => {
                let s = SetValue::from_members(argv[2..].iter().map(|m| owned(m)), &t);
                added = s.len() as u64;
                let now = ctx.now_ms;
                ctx.db().set(key, Value::Set(Box::new(s)), None, now);
            }
        }
        ctx.dirty(added);
        Ok(Reply::Integer(added as i64))
    })())
}

fn srem(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("srem"));
        }
        let key = &argv[1];
        let Some(s) = write_set(ctx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let mut removed = 0u64;
        for m in &argv[2..] {
            removed += u64::from(s.remove(m));
            if s.is_empty() {
                break;
            }
        }
        if s.is_empty() {
            ctx.db().remove(key);
        }
        ctx.dirty(removed);
        Ok(Reply::Integer(removed as i64))
    })())
}

fn smembers(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key] = argv else {
            return Err(wrong_arity("smembers"));
        };
        Ok(match read_set(ctx, key)? {
            Some(s) => bulk_set(s.members()),
            None => Reply::Set(Vec::new()),
        })
    })())
}

fn sismember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, member] = argv else {
            return Err(wrong_arity("sismember"));
        };
        let found = read_set(ctx, key)?.is_some_and(|s| s.contains(member));
        Ok(Reply::Integer(i64::from(found)))
    })())
}

fn smismember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("smismember"));
        }
        let s = read_set(ctx, &argv[1])?;
        Ok(Reply::Array(
            argv[2..]
                .iter()
                .map(|m| Reply::Integer(i64::from(s.is_some_and(|s| s.contains(m)))))
                .collect(),
        ))
    })())
}

fn scard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key] = argv else {
            return Err(wrong_arity("scard"));
        };
        Ok(Reply::Integer(
            read_set(ctx, key)?.map_or(0, |s| s.len()) as i64
        ))
    })())
}

/// SPOP key [count]: a bulk (or null) without count, a set reply with one.
fn spop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 2 {
            return Err(wrong_arity("spop"));
        }
        if argv.len() > 3 {
            return Err(Reply::err(errors::SYNTAX));
        }
        let key = &argv[1];
        let count = match argv.get(2) {
            Some(a) => Some(parse_non_negative(a, NOT_POSITIVE)?),
            None => None,
        };
        let t = ctx.state.tunables.clone();
        let Some(s) = write_set(ctx, key)? else {
            return Ok(match count {
                Some(_) => Reply::Set(Vec::new()),
                None => Reply::Null,
            });
        };
        let popped: Vec<Bytes> = match count {
            Some(0) => return Ok(Reply::Set(Vec::new())),
            // Popping everything returns the set in its own order, like Redis's
            // SUNION-based shortcut for this case.
            Some(n) if n >= s.len() as u64 => s.members().collect(),
            // Few members stay: like Redis, move the survivors into a fresh set (which
            // is an intset again if they are all integers) and pop the rest.
            Some(n) if (s.len() as u64 - n).saturating_mul(SPOP_MOVE_STRATEGY_MUL) <= n => {
                let kept = s.random_distinct(s.len() - n as usize);
                let fresh = SetValue::from_members(kept, &t);
                let popped = s.members().filter(|m| !fresh.contains(m)).collect();
                *s = fresh;
                popped
            }
            Some(n) => s.random_distinct(n as usize),
            None => s.random_member().into_iter().collect(),
        };
        // (A no-op for the rebuilt set, which never held the popped members.)
        for m in &popped {
            s.remove(m);
        }
        if s.is_empty() {
            ctx.db().remove(key);
        }
        ctx.dirty(popped.len() as u64);
        Ok(match count {
            Some(_) => bulk_set(popped),
            None => popped.into_iter().next().map_or(Reply::Null, Reply::Bulk),
        })
    })())
}

/// SRANDMEMBER key [count]: distinct members for a positive count, possibly repeated
/// ones for a negative count.
fn srandmember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 2 {
            return Err(wrong_arity("srandmember"));
        }
        if argv.len() > 3 {
            return Err(Reply::err(errors::SYNTAX));
        }
        let key = &argv[1];
        let Some(arg) = argv.get(2) else {
            return Ok(read_set(ctx, key)?
                .and_then(|s| s.random_member())
                .map_or(Reply::Null, Reply::Bulk));
        };
        let (count, distinct) = parse_random_count(arg)?;
        let Some(s) = read_set(ctx, key)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        if count == 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        if distinct {
            let n = usize::try_from(count).unwrap_or(usize::MAX);
            return Ok(bulk_array(s.random_distinct(n)));
        }
        if count > MAX_RANDOM_REPLY {
            return Err(Reply::err(COUNT_TOO_LARGE));
        }
        Ok(bulk_array((0..count).filter_map(|_| s.random_member())))
    })())
}

fn smove(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, src, dst, member] = argv else {
            return Err(wrong_arity("smove"));
        };
        // Redis looks both keys up, answers 0 for a missing source before type checks,
        // then checks both types.
        let src_kind = ctx.lookup(src).map(|e| matches!(e.value, Value::Set(_)));
        let Some(src_is_set) = src_kind else {
            return Ok(Reply::Integer(0));
        };
        let dst_kind = ctx.lookup(dst).map(|e| matches!(e.value, Value::Set(_)));
        if !src_is_set || dst_kind == Some(false) {
            return Err(wrongtype());
        }
        if src == dst {
            let found = write_set(ctx, src)?.is_some_and(|s| s.contains(member));
            return Ok(Reply::Integer(i64::from(found)));
        }
        let Some(s) = write_set(ctx, src)? else {
            return Ok(Reply::Integer(0));
        };
        if !s.remove(member) {
            return Ok(Reply::Integer(0));
        }
        if s.is_empty() {
            ctx.db().remove(src);
        }
        let t = ctx.state.tunables.clone();
        let added = match write_set(ctx, dst)? {
            Some(d) => d.insert(owned(member), &t),
            None => {
                let d = SetValue::from_members([owned(member)], &t);
                let now = ctx.now_ms;
                ctx.db().set(dst, Value::Set(Box::new(d)), None, now);
                true
            }
        };
        ctx.dirty(1 + u64::from(added));
        Ok(Reply::Integer(1))
    })())
}

// ---------------------------------------------------------------------------------------
// Multi-set algebra
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Inter,
    Union,
    Diff,
}

/// Reads every key (in order; any non-set is WRONGTYPE, as Redis 7.0 checks them all) and
/// computes the operation. Missing keys count as empty sets. Member order of the result
/// is the order of insertion into a fresh intset-first set, as Redis builds it.
fn compute(
    ctx: &mut Ctx,
    keys: &[Bytes],
    op: SetOp,
    for_write: bool,
    limit: usize,
) -> Result<SetValue, Reply> {
    let t = ctx.state.tunables.clone();
    // First pass: lazy expiry, hit/miss accounting and type checks, key by key.
    for k in keys {
        if for_write {
            write_set(ctx, k)?;
        } else {
            read_set(ctx, k)?;
        }
    }
    // Second pass: shared borrows of every set at once (nothing can expire in between,
    // the command's clock is fixed).
    let now = ctx.now_ms;
    let db = &ctx.state.dbs[ctx.client.db];
    let sets: Vec<Option<&SetValue>> = keys
        .iter()
        .map(|k| match db.peek(k, now).map(|e| &e.value) {
            Some(Value::Set(s)) => Some(&**s),
            _ => None,
        })
        .collect();
    let mut out = SetValue::new();
    match op {
        SetOp::Inter => {
            if sets.iter().any(|s| s.is_none()) {
                return Ok(out);
            }
            let mut present: Vec<&SetValue> = sets.iter().flatten().copied().collect();
            // Walk the smallest set, probing the others (Redis's order, and the cheap one).
            present.sort_by_key(|s| s.len());
            let Some((first, rest)) = present.split_first() else {
                return Ok(out);
            };
            for m in first.members() {
                if out.len() >= limit {
                    break;
                }
                if rest.iter().all(|s| s.contains(&m)) {
                    out.insert(m, &t);
                }
            }
        }
        SetOp::Union => {
            for s in sets.iter().flatten() {
                for m in s.members() {
                    out.insert(m, &t);
                }
            }
        }
        SetOp::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Ok(out);
            };
            for m in first.members() {
                if !sets[1..].iter().flatten().any(|s| s.contains(&m)) {
                    out.insert(m, &t);
                }
            }
        }
    }
    Ok(out)
}

fn set_op(ctx: &mut Ctx, argv: &[Bytes], op: SetOp, name: &str) -> Reply {
    done((|| {
        if argv.len() < 2 {
            return Err(wrong_arity(name));
        }
        let out = compute(ctx, &argv[1..], op, false, usize::MAX)?;
        Ok(bulk_set(out.members()))
    })())
}

/// *STORE: the result replaces `dst` whatever it held; an empty result deletes it.
fn set_op_store(ctx: &mut Ctx, argv: &[Bytes], op: SetOp, name: &str) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity(name));
        }
        let dst = &argv[1];
        let out = compute(ctx, &argv[2..], op, true, usize::MAX)?;
        let n = out.len();
        if n == 0 {
            if ctx.db().remove(dst).is_some() {
                ctx.dirty(1);
            }
        } else {
            let now = ctx.now_ms;
            ctx.db().set(dst, Value::Set(Box::new(out)), None, now);
            ctx.dirty(1);
        }
        Ok(Reply::Integer(n as i64))
    })())
}

fn sinter(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_op(ctx, argv, SetOp::Inter, "sinter")
}

fn sunion(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_op(ctx, argv, SetOp::Union, "sunion")
}

fn sdiff(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_op(ctx, argv, SetOp::Diff, "sdiff")
}

fn sinterstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_op_store(ctx, argv, SetOp::Inter, "sinterstore")
}

fn sunionstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_op_store(ctx, argv, SetOp::Union, "sunionstore")
}

fn sdiffstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    set_op_store(ctx, argv, SetOp::Diff, "sdiffstore")
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit] (LIMIT 0 means no limit).
fn sintercard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("sintercard"));
        }
        let numkeys = super::num::parse_i64(&argv[1])
            .filter(|&n| n >= 1)
            .ok_or_else(|| Reply::err(NUMKEYS_NOT_POSITIVE))?;
        let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
        if numkeys > argv.len() - 2 {
            return Err(Reply::err(TOO_MANY_NUMKEYS));
        }
        let keys = &argv[2..2 + numkeys];
        let mut limit = 0u64;
        let mut opts = argv[2 + numkeys..].iter();
        while let Some(opt) = opts.next() {
            match opts.as_slice().first() {
                Some(v) if opt.eq_ignore_ascii_case(b"limit") => {
                    limit = parse_non_negative(v, LIMIT_NEGATIVE)?;
                    opts.next();
                }
                _ => return Err(Reply::err(errors::SYNTAX)),
            }
        }
        let limit = match limit {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let out = compute(ctx, keys, SetOp::Inter, false, limit)?;
        Ok(Reply::Integer(out.len() as i64))
    })())
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]. An intset comes back whole with cursor
/// 0 (as in Redis); a hashtable is walked in member-hash order from the cursor.
fn sscan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(wrong_arity("sscan"));
        }
        let cursor = parse_cursor(&argv[2]).ok_or_else(|| Reply::err("ERR invalid cursor"))?;
        let Some(s) = read_set(ctx, &argv[1])? else {
            return Ok(scan_reply(0, Vec::new()));
        };
        let (count, pattern) = parse_scan_options(&argv[3..])?;
        let mut items = Vec::new();
        let next = s.scan(cursor, count, |m| {
            if pattern.is_none_or(|p| crate::glob::glob_match(p, &m, false)) {
                items.push(Reply::Bulk(m));
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

    fn members(s: &SetValue) -> Vec<Bytes> {
        s.members().collect()
    }

    #[test]
    fn intset_is_sorted_and_converts_on_non_integer_one_way() {
        let t = Tunables::default();
        let mut s = SetValue::new();
        assert!(s.insert(b("10"), &t));
        assert!(s.insert(b("-3"), &t));
        assert!(s.insert(b("7"), &t));
        assert!(!s.insert(b("7"), &t));
        assert_eq!(s.encoding_name(), "intset");
        assert_eq!(members(&s), vec![b("-3"), b("7"), b("10")]);
        // "07" is not a canonical integer: Redis stores it as a string.
        assert!(!s.contains(b"07"));
        assert!(s.insert(b("07"), &t));
        assert_eq!(s.encoding_name(), "hashtable");
        assert!(s.contains(b"7") && s.contains(b"07") && s.contains(b"-3"));
        assert!(s.remove(b"07"));
        assert_eq!(s.encoding_name(), "hashtable");
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn intset_converts_past_max_entries() {
        let t = Tunables {
            set_max_intset_entries: 3,
            ..Tunables::default()
        };
        let s = SetValue::from_members((0..3).map(|i| b(&i.to_string())), &t);
        assert_eq!(s.encoding_name(), "intset");
        let s = SetValue::from_members((0..4).map(|i| b(&i.to_string())), &t);
        assert_eq!(s.encoding_name(), "hashtable");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn mem_size_tracks_changes_and_returns_to_base() {
        let t = Tunables::default();
        let mut s = SetValue::new();
        let base = s.mem_size();
        s.insert(b("1"), &t);
        assert!(s.mem_size() > base);
        s.remove(b"1");
        assert_eq!(s.mem_size(), base);
        s.insert(b("member"), &t);
        let one = s.mem_size();
        assert!(one >= base + 6);
        s.insert(b("other"), &t);
        assert!(s.mem_size() > one);
        s.remove(b"other");
        assert_eq!(s.mem_size(), one);
    }

    #[test]
    fn scan_visits_every_member_once_despite_inserts() {
        let t = Tunables::default();
        let mut s = SetValue::from_members((0..300).map(|i| b(&format!("m{i}"))), &t);
        let mut seen = Vec::new();
        let mut cursor = 0;
        let mut round = 0;
        loop {
            cursor = s.scan(cursor, 9, |m| seen.push(m));
            s.insert(b(&format!("new{round}")), &t);
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..300 {
            let m = b(&format!("m{i}"));
            assert_eq!(seen.iter().filter(|s| **s == m).count(), 1, "{i}");
        }
    }

    #[test]
    fn random_distinct_is_distinct_and_bounded() {
        let t = Tunables::default();
        for set in [
            SetValue::from_members((0..20).map(|i| b(&i.to_string())), &t),
            SetValue::from_members((0..200).map(|i| b(&format!("x{i}"))), &t),
        ] {
            for count in [1, 5, set.len() - 1, set.len(), set.len() + 10, usize::MAX] {
                let got = set.random_distinct(count);
                let uniq: HashSet<_> = got.iter().cloned().collect();
                assert_eq!(got.len(), count.min(set.len()));
                assert_eq!(uniq.len(), got.len());
                assert!(got.iter().all(|m| set.contains(m)));
            }
        }
    }

    #[test]
    fn empty_set_has_no_random_member() {
        assert_eq!(SetValue::new().random_member(), None);
        assert!(SetValue::new().random_distinct(3).is_empty());
    }

    #[test]
    fn writes_count_dirty_and_empty_sets_are_deleted() {
        let e = Engine::new(&EmbeddedConfig::default());
        assert_eq!(
            run(&e, &["sadd", "s", "1", "2", "2", "x"]),
            Reply::Integer(3)
        );
        assert_eq!(dirty(&e), 3);
        run(&e, &["sadd", "s", "1"]);
        run(&e, &["srem", "s", "nope"]);
        run(&e, &["spop", "s", "0"]);
        run(&e, &["smove", "s", "d", "nope"]);
        assert_eq!(dirty(&e), 3);
        assert_eq!(run(&e, &["smove", "s", "d", "x"]), Reply::Integer(1));
        assert_eq!(dirty(&e), 5);
        assert_eq!(run(&e, &["srem", "s", "1", "2", "3"]), Reply::Integer(2));
        assert_eq!(dirty(&e), 7);
        assert_eq!(run(&e, &["exists", "s"]), Reply::Integer(0));
        assert_eq!(run(&e, &["sinterstore", "d", "nokey"]), Reply::Integer(0));
        assert_eq!(run(&e, &["exists", "d"]), Reply::Integer(0));
        assert_eq!(dirty(&e), 8);
        assert_eq!(run(&e, &["sinterstore", "d", "nokey"]), Reply::Integer(0));
        assert_eq!(dirty(&e), 8);
        run(&e, &["sadd", "p", "a"]);
        assert_eq!(run(&e, &["spop", "p"]), Reply::Bulk(b("a")));
        assert_eq!(run(&e, &["exists", "p"]), Reply::Integer(0));
        assert_eq!(dirty(&e), 10);
    }

    #[test]
    fn huge_counts_do_not_allocate_unboundedly() {
        let e = Engine::new(&EmbeddedConfig::default());
        run(&e, &["sadd", "s", "2", "1"]);
        let all = || Reply::Array(vec![Reply::Bulk(b("1")), Reply::Bulk(b("2"))]);
        assert_eq!(run(&e, &["srandmember", "s", "9223372036854775807"]), all());
        assert_eq!(
            run(&e, &["srandmember", "s", "-4611686018427387904"]),
            Reply::err(COUNT_TOO_LARGE)
        );
        assert_eq!(
            run(&e, &["spop", "s", "9223372036854775807"]),
            Reply::Set(vec![Reply::Bulk(b("1")), Reply::Bulk(b("2"))])
        );
        run(&e, &["sadd", "s", "1"]);
        assert_eq!(
            run(
                &e,
                &["sintercard", "1", "s", "LIMIT", "9223372036854775807"]
            ),
            Reply::Integer(1)
        );
    }

    #[test]
    fn algebra_replies_in_intset_order_and_checks_every_type() {
        let e = Engine::new(&EmbeddedConfig::default());
        run(&e, &["sadd", "a", "5", "1", "3"]);
        run(&e, &["sadd", "b", "3", "9", "1"]);
        run(&e, &["set", "str", "x"]);
        let bulks = |v: &[&str]| Reply::Set(v.iter().map(|s| Reply::Bulk(b(s))).collect());
        assert_eq!(run(&e, &["sinter", "a", "b"]), bulks(&["1", "3"]));
        assert_eq!(run(&e, &["sunion", "a", "b"]), bulks(&["1", "3", "5", "9"]));
        assert_eq!(run(&e, &["sdiff", "a", "b", "nokey"]), bulks(&["5"]));
        assert_eq!(
            run(&e, &["sinter", "nokey", "str"]),
            Reply::err(errors::WRONGTYPE)
        );
        assert_eq!(
            run(&e, &["sintercard", "2", "a", "b", "LIMIT", "1"]),
            Reply::Integer(1)
        );
        assert_eq!(run(&e, &["smove", "nokey", "str", "1"]), Reply::Integer(0));
        assert_eq!(
            run(&e, &["smove", "a", "str", "1"]),
            Reply::err(errors::WRONGTYPE)
        );
    }

    #[test]
    fn spop_leaving_few_integers_rebuilds_an_intset() {
        let e = Engine::new(&EmbeddedConfig::default());
        let mut argv = vec!["sadd".to_string(), "s".to_string()];
        argv.extend((0..600).map(|i| i.to_string()));
        let argv: Vec<&str> = argv.iter().map(|a| a.as_str()).collect();
        run(&e, &argv);
        assert_eq!(
            run(&e, &["object", "encoding", "s"]),
            Reply::Bulk(b("hashtable"))
        );
        let Reply::Set(popped) = run(&e, &["spop", "s", "590"]) else {
            panic!("SPOP with a count replies with a set");
        };
        assert_eq!(popped.len(), 590);
        assert_eq!(run(&e, &["scard", "s"]), Reply::Integer(10));
        assert_eq!(
            run(&e, &["object", "encoding", "s"]),
            Reply::Bulk(b("intset"))
        );
        for m in popped {
            let Reply::Bulk(m) = m else {
                panic!("members are bulk strings");
            };
            assert_eq!(
                run(&e, &["sismember", "s", &String::from_utf8_lossy(&m)]),
                Reply::Integer(0)
            );
        }
        assert_eq!(dirty(&e), 1190);
    }
}
