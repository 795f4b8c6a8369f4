//! Sorted sets: the zset value type (member -> score map plus an order-statistic tree over
//! (score, member), see [`order_tree`]) and the Z* commands with t_zset.c's semantics.
//!
//! For other modules (SORT, GEO, DUMP/RESTORE, AOF rewrite) the value offers, as
//! `pub(crate)`: [`ZSetValue::new`] / [`ZSetValue::from_pairs`], [`ZSetValue::insert`],
//! [`ZSetValue::iter`] (ascending), [`ZSetValue::iter_score_range`] with
//! [`ScoreRange::new`], [`ZSetValue::iter_rank_range`], `score`, `rank` and `remove`.

mod order_tree;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::Ctx;
use super::db::key_hash;
use super::keyspace_cmds::parse_cursor;
use super::list_cmds::parse_timeout_ms;
use super::num::{parse_f64, parse_i64};
use super::set_cmds::SetValue;
use super::value::Value;
use crate::protocol::reply::format_double;
use crate::protocol::{Protocol, Reply, errors};
use order_tree::OrderTree;

const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
const NOT_STRING_RANGE: &str = "ERR min or max not valid string range item";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
const OUT_OF_RANGE: &str = "ERR value is out of range";
const RANDMEMBER_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// ZRANDMEMBER with a negative count streams |count| picks in Redis; we build replies in
/// memory, so refuse counts that could not be held (a documented difference).
const RANDOM_REPLY_CAP: u64 = 1 << 24;

/// Estimated heap bytes per element beyond the member's own bytes: the tree node (56, in
/// an arena kept at most half free), the B-tree map entry with its node overhead (~50) and
/// the one-slot collision bucket it points to (40).
const PER_ELEMENT_BYTES: usize = 144;

/// A sorted set: member -> score, ordered by (score, member).
#[derive(Clone, Debug, Default)]
pub struct ZSetValue {
    /// Member lookup by hash (buckets hold hash collisions); ordered so a scan cursor (a
    /// hash) stays valid while members come and go.
    scores: BTreeMap<u64, Vec<(Bytes, f64)>>,
    tree: OrderTree,
    /// Redis 7.0 reports `listpack` until a threshold is crossed once (one-way).
    skiplist: bool,
    member_bytes: usize,
}

impl ZSetValue {
    /// An empty set; `skiplist` picks the encoding OBJECT ENCODING reports.
    pub(crate) fn new(skiplist: bool) -> ZSetValue {
        ZSetValue {
            skiplist,
            ..ZSetValue::default()
        }
    }

    /// OBJECT ENCODING's answer, as Redis 7.0 would pick it for the same data.
    pub fn encoding_name(&self) -> &'static str {
        if self.skiplist {
            "skiplist"
        } else {
            "listpack"
        }
    }

    /// Approximate bytes held; O(1).
    pub fn mem_size(&self) -> usize {
        64 + self.member_bytes + self.len() * PER_ELEMENT_BYTES
    }

    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores
            .get(&key_hash(member))?
            .iter()
            .find(|(m, _)| m.as_ref() == member)
            .map(|(_, s)| *s)
    }

    /// Inserts or updates a member's score; returns whether the member is new.
    pub(crate) fn insert(&mut self, member: &[u8], score: f64) -> bool {
        // A listpack keeps scores as text, and "-0" is stored as the integer 0: Redis only
        // keeps a negative zero in a skiplist.
        let score = if !self.skiplist && score == 0.0 {
            0.0
        } else {
            score
        };
        // Collisions are rare: a one-slot bucket instead of Vec's default of four.
        let bucket = self
            .scores
            .entry(key_hash(member))
            .or_insert_with(|| Vec::with_capacity(1));
        if let Some(slot) = bucket.iter_mut().find(|(m, _)| m.as_ref() == member) {
            let old = slot.1;
            slot.1 = score;
            let m = slot.0.clone();
            if old != score || old.is_sign_negative() != score.is_sign_negative() {
                self.tree.remove(old, &m);
                self.tree.insert(score, m);
            }
            return false;
        }
        let m = Bytes::copy_from_slice(member);
        bucket.push((m.clone(), score));
        self.tree.insert(score, m);
        self.member_bytes += member.len();
        true
    }

    fn forget(&mut self, member: &[u8]) -> Option<f64> {
        let h = key_hash(member);
        let bucket = self.scores.get_mut(&h)?;
        let pos = bucket.iter().position(|(m, _)| m.as_ref() == member)?;
        let (_, s) = bucket.swap_remove(pos);
        if bucket.is_empty() {
            self.scores.remove(&h);
        }
        self.member_bytes -= member.len();
        Some(s)
    }

    /// Removes a member; returns whether it was present.
    pub(crate) fn remove(&mut self, member: &[u8]) -> bool {
        match self.forget(member) {
            Some(s) => {
                self.tree.remove(s, member);
                true
            }
            None => false,
        }
    }

    /// Removes ranks `start..end` and returns them in order.
    pub(crate) fn remove_rank_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let out = self.tree.remove_rank_range(start, end);
        for (m, _) in &out {
            self.forget(m);
        }
        out
    }

    /// 0-based rank of a member in ascending order.
    pub(crate) fn rank(&self, member: &[u8]) -> Option<usize> {
        let s = self.score(member)?;
        Some(self.tree.rank(s, member))
    }

    /// Pairs in ascending order from `rank`.
    pub(crate) fn iter_from(&self, rank: usize) -> impl Iterator<Item = (&Bytes, f64)> {
        self.tree.iter_from(rank)
    }

    /// The pair at `rank` (0-based, ascending).
    pub(crate) fn get_by_rank(&self, rank: usize) -> Option<(&Bytes, f64)> {
        self.tree.get_by_rank(rank)
    }

    /// ZSCAN's step: the members of up to `buckets` hash buckets from `cursor` (a hash) on,
    /// and the cursor to continue from (0 when done). Members present for the whole scan
    /// are returned exactly once because buckets are visited in hash order.
    pub(crate) fn scan_from(&self, cursor: u64, buckets: usize) -> (u64, Vec<(Bytes, f64)>) {
        let mut out = Vec::new();
        let mut it = self.scores.range(cursor..);
        for _ in 0..buckets {
            match it.next() {
                Some((_, bucket)) => out.extend(bucket.iter().cloned()),
                None => return (0, out),
            }
        }
        (it.next().map_or(0, |(h, _)| *h), out)
    }

    /// Is it reported as `skiplist` (Redis scans those incrementally, listpacks at once)?
    pub(crate) fn is_skiplist(&self) -> bool {
        self.skiplist
    }

    /// SORT's zsetConvert to skiplist: Redis converts any sorted set it sorts (one way).
    pub(crate) fn convert_to_skiplist(&mut self) {
        self.skiplist = true;
    }

    /// All pairs in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Bytes, f64)> {
        self.tree.iter_from(0)
    }

    /// Ranks `[start, end)` of the elements inside a score range.
    pub(crate) fn score_range(&self, r: &ScoreRange) -> (usize, usize) {
        let start = self.tree.count_while(|s, _| !r.gte_min(s));
        let end = self.tree.count_while(|s, _| r.lte_max(s)).max(start);
        (start, end)
    }

    /// The pairs inside a score range, ascending.
    #[allow(dead_code)] // API for GEO's radius searches; the Z* commands work on ranks.
    pub(crate) fn iter_score_range(
        &self,
        r: &ScoreRange,
    ) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let (start, end) = self.score_range(r);
        self.iter_from(start).take(end - start)
    }

    /// The pairs of ranks `[start, end)` (clamped), ascending.
    pub(crate) fn iter_rank_range(
        &self,
        start: usize,
        end: usize,
    ) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let end = end.min(self.len());
        self.iter_from(start).take(end.saturating_sub(start))
    }

    /// Ranks `[start, end)` a lex range selects once `offset` elements are skipped (from
    /// the top when `rev`). Lex ranges are meant for sets whose scores are all equal; when
    /// they differ Redis calls the answer unspecified, but for a listpack it is decided by
    /// walking the elements in score order (zzlFirstInLexRange / zzlLastInLexRange: the
    /// first element past `min` starts a run that ends at the first one past `max`), and
    /// clients see that answer, so a small set is walked the same way. A big one
    /// (skiplist) is searched by descent, which agrees with the walk when members are in
    /// lex order; Redis's own answer there depends on its skiplist's random levels.
    pub(crate) fn lex_range(&self, r: &LexRange, rev: bool, offset: usize) -> (usize, usize) {
        let len = self.len();
        let (Some((first, _)), Some((last, _))) = (
            self.get_by_rank(0),
            len.checked_sub(1).and_then(|r| self.get_by_rank(r)),
        ) else {
            return (0, 0);
        };
        // zslIsInLexRange / zzlIsInLexRange: both encodings give up at once when the range
        // is empty, the last element is below it or the first one above it.
        if r.always_empty() || !r.gte_min(last) || !r.lte_max(first) {
            return (0, 0);
        }
        if self.skiplist {
            let start = self.tree.count_while(|_, m| !r.gte_min(m));
            let end = self.tree.count_while(|_, m| r.lte_max(m)).max(start);
            return if rev {
                (start, end.saturating_sub(offset).max(start))
            } else {
                (start.saturating_add(offset).min(end), end)
            };
        }
        let members: Vec<&Bytes> = self.iter_from(0).map(|(m, _)| m).collect();
        if rev {
            let Some(top) = members.iter().rposition(|m| r.lte_max(m)) else {
                return (0, 0);
            };
            let Some(from) = top.checked_sub(offset).filter(|_| r.gte_min(members[top])) else {
                return (0, 0);
            };
            let run = members[..=from]
                .iter()
                .rev()
                .take_while(|m| r.gte_min(m))
                .count();
            (from + 1 - run, from + 1)
        } else {
            let Some(bottom) = members.iter().position(|m| r.gte_min(m)) else {
                return (0, 0);
            };
            let from = bottom.saturating_add(offset);
            if !r.lte_max(members[bottom]) || from >= members.len() {
                return (0, 0);
            }
            let run = members[from..].iter().take_while(|m| r.lte_max(m)).count();
            (from, from + run)
        }
    }

    /// Converts to skiplist before adding a member that would cross a threshold (never
    /// back, like Redis, which converts first and then inserts into the skiplist).
    fn convert_before_add(&mut self, t: &super::Tunables, member_len: usize) {
        if !self.skiplist
            && (self.len() + 1 > t.zset_max_listpack_entries
                || member_len > t.zset_max_listpack_value)
        {
            self.skiplist = true;
        }
    }

    /// A new set holding `pairs`, encoded as Redis encodes a freshly stored result
    /// (listpack when small enough, decided before any pair goes in).
    pub(crate) fn from_pairs(pairs: Vec<(Bytes, f64)>, t: &super::Tunables) -> ZSetValue {
        let max_len = pairs.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let skiplist =
            pairs.len() > t.zset_max_listpack_entries || max_len > t.zset_max_listpack_value;
        let mut z = ZSetValue::new(skiplist);
        for (m, s) in pairs {
            z.insert(&m, s);
        }
        z
    }
}

/// Score interval (zrangespec).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScoreRange {
    min: f64,
    max: f64,
    minex: bool,
    maxex: bool,
}

impl ScoreRange {
    /// A score interval; `*ex` makes that end exclusive (GEO radius searches build these).
    #[allow(dead_code)] // API for GEO; the Z* commands parse theirs.
    pub(crate) fn new(min: f64, minex: bool, max: f64, maxex: bool) -> ScoreRange {
        ScoreRange {
            min,
            max,
            minex,
            maxex,
        }
    }

    fn gte_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }
    fn lte_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }
    fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        let one = |b: &[u8]| -> Option<(f64, bool)> {
            match b.split_first() {
                Some((b'(', rest)) => parse_score_strtod(rest).map(|v| (v, true)),
                _ => parse_score_strtod(b).map(|v| (v, false)),
            }
        };
        match (one(min), one(max)) {
            (Some((min, minex)), Some((max, maxex))) => Ok(ScoreRange {
                min,
                max,
                minex,
                maxex,
            }),
            _ => Err(Reply::err(MIN_MAX_NOT_FLOAT)),
        }
    }
}

/// A range bound read the way zslParseRange reads it: bare strtod, so leading whitespace is
/// skipped, an empty string is 0, overflow gives an infinity; only NaN and trailing
/// garbage are refused.
fn parse_score_strtod(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    parse_f64(&b[start..])
}

/// A score or weight read like getDoubleFromObject: the whole string must be a float and
/// strtod's ERANGE (an overflow to infinity, an underflow to zero) is refused.
pub(crate) fn parse_score(b: &[u8]) -> Option<f64> {
    let v = parse_f64(b)?;
    let lower = b.to_ascii_lowercase();
    let body = lower
        .strip_prefix(b"-")
        .or_else(|| lower.strip_prefix(b"+"));
    let body = body.unwrap_or(&lower);
    if v.is_infinite() && !body.starts_with(b"inf") {
        return None;
    }
    if v == 0.0 && !body.starts_with(b"0x") {
        let mantissa = body.split(|&c| c == b'e').next().unwrap_or(&[]);
        if mantissa.iter().any(|c| (b'1'..=b'9').contains(c)) {
            return None;
        }
    }
    Some(v)
}

/// Lex interval (zlexrangespec).
#[derive(Clone, Debug)]
pub(crate) enum LexBound {
    MinusInf,
    PlusInf,
    Incl(Bytes),
    Excl(Bytes),
}

#[derive(Clone, Debug)]
pub(crate) struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    fn gte_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::MinusInf => true,
            LexBound::PlusInf => false,
            LexBound::Incl(b) => m >= b.as_ref(),
            LexBound::Excl(b) => m > b.as_ref(),
        }
    }
    fn lte_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::MinusInf => false,
            LexBound::PlusInf => true,
            LexBound::Incl(b) => m <= b.as_ref(),
            LexBound::Excl(b) => m < b.as_ref(),
        }
    }
    /// A range no element can be in (zslIsInLexRange's first test): min above max, or
    /// equal with either end exclusive (`-` and `+` count as exclusive).
    fn always_empty(&self) -> bool {
        use std::cmp::Ordering;
        let (min_excl, max_excl) = (
            !matches!(self.min, LexBound::Incl(_)),
            !matches!(self.max, LexBound::Incl(_)),
        );
        let order = match (&self.min, &self.max) {
            (LexBound::MinusInf, LexBound::MinusInf) | (LexBound::PlusInf, LexBound::PlusInf) => {
                Ordering::Equal
            }
            (LexBound::MinusInf, _) | (_, LexBound::PlusInf) => Ordering::Less,
            (LexBound::PlusInf, _) | (_, LexBound::MinusInf) => Ordering::Greater,
            (LexBound::Incl(a) | LexBound::Excl(a), LexBound::Incl(b) | LexBound::Excl(b)) => {
                a.cmp(b)
            }
        };
        order == Ordering::Greater || (order == Ordering::Equal && (min_excl || max_excl))
    }
    fn parse(min: &Bytes, max: &Bytes) -> Result<LexRange, Reply> {
        let one = |b: &Bytes| -> Option<LexBound> {
            match b.first() {
                Some(b'+') if b.len() == 1 => Some(LexBound::PlusInf),
                Some(b'-') if b.len() == 1 => Some(LexBound::MinusInf),
                Some(b'[') => Some(LexBound::Incl(b.slice(1..))),
                Some(b'(') => Some(LexBound::Excl(b.slice(1..))),
                _ => None,
            }
        };
        match (one(min), one(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(Reply::err(NOT_STRING_RANGE)),
        }
    }
}

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("zadd", zadd);
    t.insert("zincrby", zincrby);
    t.insert("zrem", zrem);
    t.insert("zscore", zscore);
    t.insert("zmscore", zmscore);
    t.insert("zcard", zcard);
    t.insert("zcount", zcount);
    t.insert("zlexcount", zlexcount);
    t.insert("zrange", zrange);
    t.insert("zrangestore", zrangestore);
    t.insert("zrevrange", zrevrange);
    t.insert("zrangebyscore", zrangebyscore);
    t.insert("zrevrangebyscore", zrevrangebyscore);
    t.insert("zrangebylex", zrangebylex);
    t.insert("zrevrangebylex", zrevrangebylex);
    t.insert("zrank", zrank);
    t.insert("zrevrank", zrevrank);
    t.insert("zpopmin", zpopmin);
    t.insert("zpopmax", zpopmax);
    t.insert("bzpopmin", bzpopmin);
    t.insert("bzpopmax", bzpopmax);
    t.insert("zmpop", zmpop);
    t.insert("bzmpop", bzmpop);
    t.insert("zrandmember", zrandmember);
    t.insert("zscan", zscan);
    t.insert("zunion", zunion);
    t.insert("zinter", zinter);
    t.insert("zdiff", zdiff);
    t.insert("zunionstore", zunionstore);
    t.insert("zinterstore", zinterstore);
    t.insert("zdiffstore", zdiffstore);
    t.insert("zintercard", zintercard);
    t.insert("zremrangebyscore", zremrangebyscore);
    t.insert("zremrangebyrank", zremrangebyrank);
    t.insert("zremrangebylex", zremrangebylex);
}

// ---------------------------------------------------------------------------------------
// Helpers

fn done(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

fn opt_is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

fn wrongtype() -> Reply {
    Reply::err(errors::WRONGTYPE)
}

fn int_arg(b: &[u8]) -> Result<i64, Reply> {
    parse_i64(b).ok_or_else(|| Reply::err(errors::NOT_INTEGER))
}

fn float_arg(b: &[u8]) -> Result<f64, Reply> {
    parse_score(b).ok_or_else(|| Reply::err(errors::NOT_FLOAT))
}

/// Reads a zset: Ok(None) if absent, WRONGTYPE if another type.
fn read_zset<'c>(ctx: &'c mut Ctx, key: &Bytes) -> Result<Option<&'c mut ZSetValue>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(wrongtype()),
        },
    }
}

fn write_zset<'c>(ctx: &'c mut Ctx, key: &Bytes) -> Result<Option<&'c mut ZSetValue>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(wrongtype()),
        },
    }
}

/// Deletes the key if the set became empty (Redis never keeps empty collections).
fn delete_if_empty(ctx: &mut Ctx, key: &Bytes) {
    let empty =
        matches!(ctx.lookup(key), Some(e) if matches!(&e.value, Value::ZSet(z) if z.is_empty()));
    if empty {
        ctx.db().remove(key);
    }
}

fn score_reply(s: f64) -> Reply {
    Reply::Double(s)
}

/// Members with optional scores: RESP3 pairs, RESP2 flat, as Redis's zrange handlers reply.
fn pairs_reply(ctx: &Ctx, items: Vec<(Bytes, f64)>, withscores: bool) -> Reply {
    if !withscores {
        return Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect());
    }
    if ctx.client.proto == Protocol::Resp3 {
        Reply::Array(
            items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), score_reply(s)]))
                .collect(),
        )
    } else {
        let mut out = Vec::with_capacity(items.len().saturating_mul(2));
        for (m, s) in items {
            out.push(Reply::Bulk(m));
            out.push(score_reply(s));
        }
        Reply::Array(out)
    }
}

// ---------------------------------------------------------------------------------------
// ZADD / ZINCRBY

const ZADD_NX: u8 = 1;
const ZADD_XX: u8 = 2;
const ZADD_GT: u8 = 4;
const ZADD_LT: u8 = 8;
const ZADD_CH: u8 = 16;
const ZADD_INCR: u8 = 32;

fn zadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(zadd_generic(ctx, argv, 0))
}

fn zincrby(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(zadd_generic(ctx, argv, ZADD_INCR))
}

fn zadd_generic(ctx: &mut Ctx, argv: &[Bytes], mut flags: u8) -> Result<Reply, Reply> {
    let mut idx = 2;
    while idx < argv.len() {
        let a = &argv[idx];
        let f = if opt_is(a, "nx") {
            ZADD_NX
        } else if opt_is(a, "xx") {
            ZADD_XX
        } else if opt_is(a, "gt") {
            ZADD_GT
        } else if opt_is(a, "lt") {
            ZADD_LT
        } else if opt_is(a, "ch") {
            ZADD_CH
        } else if opt_is(a, "incr") {
            ZADD_INCR
        } else {
            break;
        };
        flags |= f;
        idx += 1;
    }
    let has = |f: u8| flags & f != 0;
    let rest = &argv[idx..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(Reply::err(errors::SYNTAX));
    }
    if has(ZADD_NX) && has(ZADD_XX) {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (has(ZADD_GT) && has(ZADD_NX))
        || (has(ZADD_LT) && has(ZADD_NX))
        || (has(ZADD_GT) && has(ZADD_LT))
    {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    let incr = has(ZADD_INCR);
    if incr && rest.len() > 2 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut scores = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        scores.push(float_arg(&pair[0])?);
    }
    let key = &argv[1];
    let tunables = ctx.state.tunables.clone();
    let exists = write_zset(ctx, key)?.is_some();
    if !exists {
        if has(ZADD_XX) {
            return Ok(if incr { Reply::Null } else { Reply::Integer(0) });
        }
        let skiplist = tunables.zset_max_listpack_entries == 0
            || tunables.zset_max_listpack_value < rest[1].len();
        let now = ctx.now_ms;
        ctx.db().set(
            key,
            Value::ZSet(Box::new(ZSetValue::new(skiplist))),
            None,
            now,
        );
    }
    let Some(z) = write_zset(ctx, key)? else {
        return Err(Reply::err(errors::WRONGTYPE));
    };
    let (mut added, mut updated) = (0i64, 0i64);
    let mut incr_result: Option<f64> = None;
    let mut nan = false;
    for (pair, &score) in rest.chunks(2).zip(scores.iter()) {
        let member = &pair[1];
        match z.score(member) {
            Some(cur) => {
                if has(ZADD_NX) {
                    continue;
                }
                let mut new = score;
                if incr {
                    new = cur + score;
                    if new.is_nan() {
                        nan = true;
                        break;
                    }
                }
                if (has(ZADD_LT) && new >= cur) || (has(ZADD_GT) && new <= cur) {
                    continue;
                }
                if incr {
                    incr_result = Some(new);
                }
                if new != cur {
                    z.insert(member, new);
                    updated += 1;
                }
            }
            None => {
                if has(ZADD_XX) {
                    continue;
                }
                z.convert_before_add(&tunables, member.len());
                z.insert(member, score);
                added += 1;
                if incr {
                    incr_result = Some(score);
                }
            }
        }
    }
    let changes = (added + updated) as u64;
    if changes > 0 {
        ctx.dirty(changes);
    }
    delete_if_empty(ctx, key);
    if nan {
        return Err(Reply::err(SCORE_NAN));
    }
    Ok(if incr {
        match incr_result {
            Some(s) => score_reply(s),
            None => Reply::Null,
        }
    } else if has(ZADD_CH) {
        Reply::Integer(added + updated)
    } else {
        Reply::Integer(added)
    })
}

// ---------------------------------------------------------------------------------------
// Simple reads and removal

fn zrem(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let key = &argv[1];
    let removed = match write_zset(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Integer(0),
        Ok(Some(z)) => argv[2..].iter().filter(|m| z.remove(m)).count(),
    };
    if removed > 0 {
        ctx.dirty(removed as u64);
        delete_if_empty(ctx, key);
    }
    Reply::Integer(removed as i64)
}

fn zscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => match z.and_then(|z| z.score(&argv[2])) {
            Some(s) => score_reply(s),
            None => Reply::Null,
        },
    }
}

fn zmscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => Reply::Array(
            argv[2..]
                .iter()
                .map(|m| match z.as_ref().and_then(|z| z.score(m)) {
                    Some(s) => score_reply(s),
                    None => Reply::Null,
                })
                .collect(),
        ),
    }
}

fn zcard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => Reply::Integer(z.map_or(0, |z| z.len() as i64)),
    }
}

fn zcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let range = match ScoreRange::parse(&argv[2], &argv[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(z)) => {
            let (a, b) = z.score_range(&range);
            Reply::Integer((b - a) as i64)
        }
    }
}

fn zlexcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let range = match LexRange::parse(&argv[2], &argv[3]) {
        Ok(r) => r,
        Err(e) => return e,
    };
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(z)) => {
            let (a, b) = z.lex_range(&range, false, 0);
            Reply::Integer((b - a) as i64)
        }
    }
}

fn rank_generic(ctx: &mut Ctx, argv: &[Bytes], rev: bool) -> Reply {
    match read_zset(ctx, &argv[1]) {
        Err(e) => e,
        Ok(z) => match z.and_then(|z| z.rank(&argv[2]).map(|r| (r, z.len()))) {
            Some((r, len)) => Reply::Integer(if rev { len - 1 - r } else { r } as i64),
            None => Reply::Null,
        },
    }
}

fn zrank(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rank_generic(ctx, argv, false)
}

fn zrevrank(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    rank_generic(ctx, argv, true)
}

// ---------------------------------------------------------------------------------------
// ZRANGE family

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Rank,
    Score,
    Lex,
}

/// Normalizes rank indexes like Redis (negative from the end, clamped); None if empty.
fn rank_bounds(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { start + len } else { start };
    let mut end = if end < 0 { end + len } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize + 1))
}

struct RangeReq {
    kind: RangeKind,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
    min: Bytes,
    max: Bytes,
}

/// The selected (member, score) pairs of a ZRANGE-like request, in reply order.
fn select_range(z: &ZSetValue, req: &RangeReq) -> Result<Vec<(Bytes, f64)>, Reply> {
    let len = z.len();
    let (lo, hi) = match req.kind {
        RangeKind::Rank => {
            let start = int_arg(&req.min)?;
            let end = int_arg(&req.max)?;
            match rank_bounds(start, end, len) {
                None => return Ok(Vec::new()),
                Some((a, b)) if req.rev => (len - b, len - a),
                Some(ab) => ab,
            }
        }
        RangeKind::Score => {
            let (min, max) = if req.rev {
                (&req.max, &req.min)
            } else {
                (&req.min, &req.max)
            };
            z.score_range(&ScoreRange::parse(min, max)?)
        }
        RangeKind::Lex => {
            let (min, max) = if req.rev {
                (&req.max, &req.min)
            } else {
                (&req.min, &req.max)
            };
            let range = LexRange::parse(min, max)?;
            if req.offset < 0 {
                return Ok(Vec::new());
            }
            // The walk skips the offset itself (see lex_range).
            let offset = usize::try_from(req.offset).unwrap_or(usize::MAX);
            z.lex_range(&range, req.rev, offset)
        }
    };
    let mut count = hi - lo;
    let mut skip = 0usize;
    if req.kind != RangeKind::Rank {
        if req.offset < 0 {
            return Ok(Vec::new());
        }
        if req.kind == RangeKind::Score {
            skip = usize::try_from(req.offset).unwrap_or(usize::MAX).min(count);
        }
        count -= skip;
        if req.limit >= 0 {
            count = count.min(usize::try_from(req.limit).unwrap_or(usize::MAX));
        }
    }
    let out: Vec<(Bytes, f64)> = if req.rev {
        let first = hi - skip - count;
        let mut v: Vec<_> = z
            .iter_rank_range(first, first + count)
            .map(|(m, s)| (m.clone(), s))
            .collect();
        v.reverse();
        v
    } else {
        z.iter_rank_range(lo + skip, lo + skip + count)
            .map(|(m, s)| (m.clone(), s))
            .collect()
    };
    Ok(out)
}

/// Parses ZRANGE's options after `min max` (from argv index `from`), as zrangeGenericCommand
/// does for every member of the family: the legacy commands fix the kind and direction, so
/// BYSCORE/BYLEX/REV are syntax errors there; WITHSCORES and LIMIT are accepted everywhere
/// and rejected afterwards with Redis's specific texts.
fn parse_zrange_opts(
    argv: &[Bytes],
    from: usize,
    mut req: RangeReq,
    fixed_kind: bool,
    fixed_dir: bool,
    store: bool,
) -> Result<RangeReq, Reply> {
    let mut kind_set = fixed_kind;
    let mut dir_set = fixed_dir;
    let mut j = from;
    while j < argv.len() {
        let a = &argv[j];
        let left = argv.len() - j - 1;
        if !store && opt_is(a, "withscores") {
            req.withscores = true;
        } else if opt_is(a, "limit") && left >= 2 {
            req.offset = int_arg(&argv[j + 1])?;
            req.limit = int_arg(&argv[j + 2])?;
            j += 2;
        } else if !dir_set && opt_is(a, "rev") {
            req.rev = true;
            dir_set = true;
        } else if !kind_set && opt_is(a, "bylex") {
            req.kind = RangeKind::Lex;
            kind_set = true;
        } else if !kind_set && opt_is(a, "byscore") {
            req.kind = RangeKind::Score;
            kind_set = true;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        j += 1;
    }
    // Redis tests the LIMIT count against its "not given" value, so LIMIT x -1 passes.
    if req.limit != -1 && req.kind == RangeKind::Rank {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if req.withscores && req.kind == RangeKind::Lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    Ok(req)
}

fn base_req(argv: &[Bytes], min: usize, kind: RangeKind, rev: bool) -> RangeReq {
    RangeReq {
        kind,
        rev,
        withscores: false,
        offset: 0,
        limit: -1,
        min: argv.get(min).cloned().unwrap_or_default(),
        max: argv.get(min + 1).cloned().unwrap_or_default(),
    }
}

/// Validates the range arguments before the key is read, as Redis parses them first.
fn prevalidate(req: &RangeReq) -> Result<(), Reply> {
    match req.kind {
        RangeKind::Rank => {
            int_arg(&req.min)?;
            int_arg(&req.max)?;
        }
        RangeKind::Score => {
            ScoreRange::parse(&req.min, &req.max)?;
        }
        RangeKind::Lex => {
            LexRange::parse(&req.min, &req.max)?;
        }
    }
    Ok(())
}

/// Every non-storing member of the ZRANGE family: `kind`/`rev` None means the option
/// words choose them (ZRANGE), Some means the command fixes them (legacy commands).
fn range_command(
    ctx: &mut Ctx,
    argv: &[Bytes],
    kind: Option<RangeKind>,
    rev: Option<bool>,
) -> Reply {
    done((|| {
        let base = base_req(
            argv,
            2,
            kind.unwrap_or(RangeKind::Rank),
            rev.unwrap_or(false),
        );
        let req = parse_zrange_opts(argv, 4, base, kind.is_some(), rev.is_some(), false)?;
        prevalidate(&req)?;
        let items = match read_zset(ctx, &argv[1])? {
            None => Vec::new(),
            Some(z) => select_range(z, &req)?,
        };
        Ok(pairs_reply(ctx, items, req.withscores))
    })())
}

fn zrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, None, None)
}

fn zrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, Some(RangeKind::Rank), Some(true))
}

fn zrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, Some(RangeKind::Score), Some(false))
}

fn zrevrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, Some(RangeKind::Score), Some(true))
}

fn zrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, Some(RangeKind::Lex), Some(false))
}

fn zrevrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_command(ctx, argv, Some(RangeKind::Lex), Some(true))
}

/// Stores `items` at `dst` as a fresh zset (deleting `dst` when empty); returns the count.
fn store_result(ctx: &mut Ctx, dst: &Bytes, items: Vec<(Bytes, f64)>) -> i64 {
    let n = items.len() as i64;
    let existed = ctx.lookup(dst).is_some();
    if n == 0 {
        if existed {
            ctx.db().remove(dst);
            ctx.dirty(1);
        }
        return 0;
    }
    let z = ZSetValue::from_pairs(items, &ctx.state.tunables);
    let now = ctx.now_ms;
    ctx.db().set(dst, Value::ZSet(Box::new(z)), None, now);
    ctx.dirty(1);
    n
}

fn zrangestore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let base = base_req(argv, 3, RangeKind::Rank, false);
        let req = parse_zrange_opts(argv, 5, base, false, false, true)?;
        prevalidate(&req)?;
        let items = match read_zset(ctx, &argv[2])? {
            None => Vec::new(),
            Some(z) => select_range(z, &req)?,
        };
        Ok(Reply::Integer(store_result(ctx, &argv[1], items)))
    })())
}

// ---------------------------------------------------------------------------------------
// Removal by range

fn remrange(ctx: &mut Ctx, argv: &[Bytes], kind: RangeKind) -> Reply {
    done((|| {
        let key = &argv[1];
        let req = base_req(argv, 2, kind, false);
        prevalidate(&req)?;
        let Some(z) = write_zset(ctx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let (a, b) = match kind {
            RangeKind::Rank => match rank_bounds(int_arg(&req.min)?, int_arg(&req.max)?, z.len()) {
                Some(ab) => ab,
                None => return Ok(Reply::Integer(0)),
            },
            RangeKind::Score => z.score_range(&ScoreRange::parse(&req.min, &req.max)?),
            RangeKind::Lex => z.lex_range(&LexRange::parse(&req.min, &req.max)?, false, 0),
        };
        let removed = z.remove_rank_range(a, b).len();
        if removed > 0 {
            ctx.dirty(removed as u64);
            delete_if_empty(ctx, key);
        }
        Ok(Reply::Integer(removed as i64))
    })())
}

fn zremrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    remrange(ctx, argv, RangeKind::Score)
}

fn zremrangebyrank(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    remrange(ctx, argv, RangeKind::Rank)
}

fn zremrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    remrange(ctx, argv, RangeKind::Lex)
}

// ---------------------------------------------------------------------------------------
// Pops

/// Pops up to `count` from the min or max end; deletes the key when emptied.
fn pop_items(
    ctx: &mut Ctx,
    key: &Bytes,
    count: usize,
    max: bool,
) -> Result<Vec<(Bytes, f64)>, Reply> {
    let Some(z) = write_zset(ctx, key)? else {
        return Ok(Vec::new());
    };
    let len = z.len();
    let n = count.min(len);
    let items = if max {
        let mut v = z.remove_rank_range(len - n, len);
        v.reverse();
        v
    } else {
        z.remove_rank_range(0, n)
    };
    if !items.is_empty() {
        ctx.dirty(items.len() as u64);
        delete_if_empty(ctx, key);
    }
    Ok(items)
}

fn pop_generic(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> Reply {
    done((|| {
        if argv.len() > 3 {
            return Err(Reply::err(errors::SYNTAX));
        }
        let count = match argv.get(2) {
            Some(c) => {
                // getPositiveLongFromObjectOrReply: one text for bad and negative counts.
                let c = parse_i64(c)
                    .and_then(|c| usize::try_from(c).ok())
                    .ok_or_else(|| Reply::err(MUST_BE_POSITIVE))?;
                Some(c)
            }
            None => None,
        };
        let items = pop_items(ctx, &argv[1], count.unwrap_or(1), max)?;
        Ok(match count {
            Some(_) => pairs_reply(ctx, items, true),
            None => {
                let mut flat = Vec::new();
                for (m, s) in items {
                    flat.push(Reply::Bulk(m));
                    flat.push(score_reply(s));
                }
                Reply::Array(flat)
            }
        })
    })())
}

fn zpopmin(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    pop_generic(ctx, argv, false)
}

fn zpopmax(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    pop_generic(ctx, argv, true)
}

/// BZPOPMIN/BZPOPMAX key... timeout, as the non-blocking attempt: serve the first
/// non-empty key or reply the timeout's null array.
fn bpop_generic(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> Reply {
    done((|| {
        let Some((timeout, keys)) = argv[1..].split_last() else {
            return Err(Reply::err(errors::SYNTAX));
        };
        parse_timeout_ms(timeout)?;
        for key in keys {
            let items = pop_items(ctx, key, 1, max)?;
            if let Some((m, s)) = items.into_iter().next() {
                return Ok(Reply::Array(vec![
                    Reply::Bulk(key.clone()),
                    Reply::Bulk(m),
                    score_reply(s),
                ]));
            }
        }
        Ok(Reply::NullArray)
    })())
}

fn bzpopmin(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bpop_generic(ctx, argv, false)
}

fn bzpopmax(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bpop_generic(ctx, argv, true)
}

/// ZMPOP numkeys key... MIN|MAX [COUNT n]; BZMPOP has the timeout before numkeys, checked
/// after everything else (zmpopGenericCommand's order).
fn zmpop_generic(ctx: &mut Ctx, argv: &[Bytes], numkeys_idx: usize) -> Reply {
    done((|| {
        let numkeys = argv
            .get(numkeys_idx)
            .and_then(|n| parse_i64(n))
            .filter(|n| *n >= 1)
            .ok_or_else(|| Reply::err(NUMKEYS_POSITIVE))?;
        let where_idx = (numkeys_idx as u128) + (numkeys as u128) + 1;
        if where_idx >= argv.len() as u128 {
            return Err(Reply::err(errors::SYNTAX));
        }
        let where_idx = where_idx as usize;
        let max = if opt_is(&argv[where_idx], "min") {
            false
        } else if opt_is(&argv[where_idx], "max") {
            true
        } else {
            return Err(Reply::err(errors::SYNTAX));
        };
        let mut count: Option<usize> = None;
        let mut j = where_idx + 1;
        while j < argv.len() {
            match argv.get(j + 1) {
                Some(v) if count.is_none() && opt_is(&argv[j], "count") => {
                    let c = parse_i64(v)
                        .filter(|c| *c >= 1)
                        .ok_or_else(|| Reply::err(COUNT_POSITIVE))?;
                    count = Some(usize::try_from(c).unwrap_or(usize::MAX));
                }
                _ => return Err(Reply::err(errors::SYNTAX)),
            }
            j += 2;
        }
        if numkeys_idx == 2 {
            parse_timeout_ms(&argv[1])?;
        }
        for key in &argv[numkeys_idx + 1..where_idx] {
            let items = pop_items(ctx, key, count.unwrap_or(1), max)?;
            if items.is_empty() {
                continue;
            }
            // Nested [member, score] pairs in both protocols, unlike ZPOPMIN.
            let pairs = items
                .into_iter()
                .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), score_reply(s)]))
                .collect();
            return Ok(Reply::Array(vec![
                Reply::Bulk(key.clone()),
                Reply::Array(pairs),
            ]));
        }
        Ok(Reply::NullArray)
    })())
}

fn zmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zmpop_generic(ctx, argv, 1)
}

fn bzmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    zmpop_generic(ctx, argv, 2)
}

// ---------------------------------------------------------------------------------------
// ZRANDMEMBER

fn zrandmember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let Some(count) = argv.get(2) else {
            return Ok(match read_zset(ctx, &argv[1])? {
                None => Reply::Null,
                Some(z) => {
                    let rank = rand::random_range(0..z.len().max(1));
                    match z.get_by_rank(rank) {
                        Some((m, _)) => Reply::Bulk(m.clone()),
                        None => Reply::Null,
                    }
                }
            });
        };
        let l = int_arg(count)?;
        if l == i64::MIN {
            return Err(Reply::err(RANDMEMBER_RANGE));
        }
        let withscores = match argv.get(3) {
            None => false,
            Some(w) if argv.len() == 4 && opt_is(w, "withscores") => true,
            Some(_) => return Err(Reply::err(errors::SYNTAX)),
        };
        if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
            return Err(Reply::err(OUT_OF_RANGE));
        }
        let Some(z) = read_zset(ctx, &argv[1])? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let items = random_members(z, l)?;
        Ok(pairs_reply(ctx, items, withscores))
    })())
}

/// ZRANDMEMBER's picks: a negative count may repeat members, a positive one returns
/// distinct members (the whole set, in order, when it asks for at least that many).
fn random_members(z: &ZSetValue, l: i64) -> Result<Vec<(Bytes, f64)>, Reply> {
    let size = z.len();
    let count = l.unsigned_abs();
    let pick = |rank: usize| z.get_by_rank(rank).map(|(m, s)| (m.clone(), s));
    if count == 0 || size == 0 {
        return Ok(Vec::new());
    }
    if l < 0 || count == 1 {
        if count > RANDOM_REPLY_CAP {
            return Err(Reply::err(OUT_OF_RANGE));
        }
        return Ok((0..count)
            .filter_map(|_| pick(rand::random_range(0..size)))
            .collect());
    }
    if count >= size as u64 {
        // Redis answers with the whole set as a reverse score range (highest first).
        let mut all: Vec<_> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
        all.reverse();
        return Ok(all);
    }
    let count = count as usize;
    let mut ranks: Vec<usize> = if count.saturating_mul(3) > size {
        // Many picks: a partial Fisher-Yates shuffle of all ranks.
        let mut all: Vec<usize> = (0..size).collect();
        for i in 0..count {
            let j = rand::random_range(i..size);
            all.swap(i, j);
        }
        all.truncate(count);
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut v = Vec::with_capacity(count);
        while v.len() < count {
            let r = rand::random_range(0..size);
            if seen.insert(r) {
                v.push(r);
            }
        }
        v
    };
    ranks.truncate(count);
    Ok(ranks.into_iter().filter_map(pick).collect())
}

// ---------------------------------------------------------------------------------------
// ZSCAN

fn zscan(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let cursor = parse_cursor(&argv[2]).ok_or_else(|| Reply::err("ERR invalid cursor"))?;
        let Some(z) = read_zset(ctx, &argv[1])? else {
            return Ok(Reply::Array(vec![
                Reply::Bulk(Bytes::from_static(b"0")),
                Reply::Array(Vec::new()),
            ]));
        };
        let mut count: i64 = 10;
        let mut pattern: Option<&Bytes> = None;
        let mut i = 3;
        while i < argv.len() {
            let more = argv.len() - i;
            if opt_is(&argv[i], "count") && more >= 2 {
                count = int_arg(&argv[i + 1])?;
                if count < 1 {
                    return Err(Reply::err(errors::SYNTAX));
                }
            } else if opt_is(&argv[i], "match") && more >= 2 {
                let p = &argv[i + 1];
                pattern = (p.as_ref() != b"*").then_some(p);
            } else {
                return Err(Reply::err(errors::SYNTAX));
            }
            i += 2;
        }
        // A listpack is returned whole in one call (Redis ignores COUNT for it).
        let (next, items) = if z.is_skiplist() {
            z.scan_from(cursor, usize::try_from(count).unwrap_or(usize::MAX))
        } else {
            (0, z.iter().map(|(m, s)| (m.clone(), s)).collect())
        };
        let mut flat = Vec::new();
        for (m, s) in items {
            if pattern.is_some_and(|p| !crate::glob::glob_match(p, &m, false)) {
                continue;
            }
            flat.push(Reply::Bulk(m));
            flat.push(Reply::Bulk(Bytes::from(format_double(s))));
        }
        Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(flat),
        ]))
    })())
}

// ---------------------------------------------------------------------------------------
// ZUNION / ZINTER / ZDIFF, their STORE forms, ZINTERCARD

#[derive(Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// One input of a set operation: a zset, or a plain set whose members all score 1.
enum Input<'a> {
    Missing,
    ZSet(&'a ZSetValue),
    Set(&'a SetValue),
}

impl Input<'_> {
    fn len(&self) -> usize {
        match self {
            Input::Missing => 0,
            Input::ZSet(z) => z.len(),
            Input::Set(s) => set_hooks::len(s),
        }
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            Input::Missing => None,
            Input::ZSet(z) => z.score(member),
            Input::Set(s) => set_hooks::contains(s, member).then_some(1.0),
        }
    }

    fn pairs(&self) -> Vec<(Bytes, f64)> {
        match self {
            Input::Missing => Vec::new(),
            Input::ZSet(z) => z.iter().map(|(m, s)| (m.clone(), s)).collect(),
            Input::Set(s) => set_hooks::members(s)
                .into_iter()
                .map(|m| (m, 1.0))
                .collect(),
        }
    }
}

/// What the set operations need from a plain set (members count with score 1).
mod set_hooks {
    use super::SetValue;
    use bytes::Bytes;

    pub(super) fn len(s: &SetValue) -> usize {
        s.len()
    }

    pub(super) fn contains(s: &SetValue, member: &[u8]) -> bool {
        s.contains(member)
    }

    pub(super) fn members(s: &SetValue) -> Vec<Bytes> {
        s.members().collect()
    }
}

/// zunionInterAggregate: SUM of +inf and -inf is 0 by Redis's convention, not NaN.
fn aggregate(target: &mut f64, v: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *target {
                *target = v;
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// A weighted score; 0 * inf is 0 in Redis, not NaN.
fn weighted(s: f64, w: f64) -> f64 {
    let v = s * w;
    if v.is_nan() { 0.0 } else { v }
}

struct SetOpReq {
    op: SetOp,
    numkeys_idx: usize,
    store: bool,
    card_only: bool,
}

fn setop_command(ctx: &mut Ctx, argv: &[Bytes], req: SetOpReq) -> Reply {
    done((|| {
        let setnum = int_arg(&argv[req.numkeys_idx])?;
        if setnum < 1 {
            let name = String::from_utf8_lossy(&argv[0]).to_lowercase();
            return Err(Reply::err(format!(
                "ERR at least 1 input key is needed for '{name}' command"
            )));
        }
        let first = req.numkeys_idx + 1;
        if setnum as u64 > (argv.len() - first) as u64 {
            return Err(Reply::err(errors::SYNTAX));
        }
        let setnum = setnum as usize;
        let keys = &argv[first..first + setnum];
        // Types are checked before the options are parsed, as Redis does.
        for key in keys {
            let entry = if req.store {
                ctx.lookup(key)
            } else {
                ctx.lookup_read(key)
            };
            if entry.is_some_and(|e| !matches!(e.value, Value::ZSet(_) | Value::Set(_))) {
                return Err(wrongtype());
            }
        }
        let mut weights = vec![1.0f64; setnum];
        let mut agg = Aggregate::Sum;
        let mut withscores = false;
        let mut limit: u64 = 0;
        let scoring = req.op != SetOp::Diff && !req.card_only;
        let mut j = first + setnum;
        while j < argv.len() {
            let remaining = argv.len() - j;
            let a = &argv[j];
            if scoring && remaining > setnum && opt_is(a, "weights") {
                for (w, arg) in weights.iter_mut().zip(&argv[j + 1..]) {
                    *w = parse_score(arg).ok_or_else(|| Reply::err(WEIGHT_NOT_FLOAT))?;
                }
                j += 1 + setnum;
            } else if scoring && remaining >= 2 && opt_is(a, "aggregate") {
                let v = &argv[j + 1];
                agg = if opt_is(v, "sum") {
                    Aggregate::Sum
                } else if opt_is(v, "min") {
                    Aggregate::Min
                } else if opt_is(v, "max") {
                    Aggregate::Max
                } else {
                    return Err(Reply::err(errors::SYNTAX));
                };
                j += 2;
            } else if !req.store && !req.card_only && opt_is(a, "withscores") {
                withscores = true;
                j += 1;
            } else if req.card_only && remaining >= 2 && opt_is(a, "limit") {
                limit = parse_i64(&argv[j + 1])
                    .and_then(|l| u64::try_from(l).ok())
                    .ok_or_else(|| Reply::err(LIMIT_NEGATIVE))?;
                j += 2;
            } else {
                return Err(Reply::err(errors::SYNTAX));
            }
        }
        let now = ctx.now_ms;
        let db = &ctx.state.dbs[ctx.client.db];
        let inputs: Vec<Input> = keys
            .iter()
            .map(|k| match db.peek(k, now).map(|e| &e.value) {
                Some(Value::ZSet(z)) => Input::ZSet(z),
                Some(Value::Set(s)) => Input::Set(s),
                _ => Input::Missing,
            })
            .collect();
        if req.card_only {
            return Ok(Reply::Integer(inter_card(&inputs, limit) as i64));
        }
        let mut items = match req.op {
            SetOp::Union => union(&inputs, &weights, agg),
            SetOp::Inter => inter(&inputs, &weights, agg),
            SetOp::Diff => diff(&inputs),
        };
        if req.store {
            return Ok(Reply::Integer(store_result(ctx, &argv[1], items)));
        }
        items.sort_by(|a, b| order_tree::cmp_key(a.1, &a.0, b.1, &b.0));
        Ok(pairs_reply(ctx, items, withscores))
    })())
}

/// Input indexes from the smallest to the largest (Redis's processing order, which decides
/// the order floating-point sums are taken in).
fn by_cardinality(inputs: &[Input]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].len());
    order
}

fn union(inputs: &[Input], weights: &[f64], agg: Aggregate) -> Vec<(Bytes, f64)> {
    let mut acc: HashMap<Bytes, f64> = HashMap::new();
    for i in by_cardinality(inputs) {
        for (m, s) in inputs[i].pairs() {
            let v = weighted(s, weights[i]);
            match acc.entry(m) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    aggregate(e.get_mut(), v, agg)
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
        }
    }
    acc.into_iter().collect()
}

fn inter(inputs: &[Input], weights: &[f64], agg: Aggregate) -> Vec<(Bytes, f64)> {
    let order = by_cardinality(inputs);
    let Some((&smallest, rest)) = order.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    'members: for (m, s) in inputs[smallest].pairs() {
        let mut score = weighted(s, weights[smallest]);
        for &i in rest {
            match inputs[i].score(&m) {
                Some(other) => aggregate(&mut score, weighted(other, weights[i]), agg),
                None => continue 'members,
            }
        }
        out.push((m, score));
    }
    out
}

/// ZINTERCARD: how many members all inputs share, stopping at `limit` (0 = no limit).
fn inter_card(inputs: &[Input], limit: u64) -> u64 {
    let order = by_cardinality(inputs);
    let Some((&smallest, rest)) = order.split_first() else {
        return 0;
    };
    let mut count = 0u64;
    for (m, _) in inputs[smallest].pairs() {
        if rest.iter().all(|&i| inputs[i].score(&m).is_some()) {
            count += 1;
            if count == limit {
                break;
            }
        }
    }
    count
}

/// Members of the first input found in no other, with their first-input scores.
fn diff(inputs: &[Input]) -> Vec<(Bytes, f64)> {
    let Some((first, rest)) = inputs.split_first() else {
        return Vec::new();
    };
    first
        .pairs()
        .into_iter()
        .filter(|(m, _)| rest.iter().all(|i| i.score(m).is_none()))
        .collect()
}

fn setop(op: SetOp, numkeys_idx: usize, store: bool) -> SetOpReq {
    SetOpReq {
        op,
        numkeys_idx,
        store,
        card_only: false,
    }
}

fn zunion(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_command(ctx, argv, setop(SetOp::Union, 1, false))
}

fn zinter(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_command(ctx, argv, setop(SetOp::Inter, 1, false))
}

fn zdiff(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_command(ctx, argv, setop(SetOp::Diff, 1, false))
}

fn zunionstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_command(ctx, argv, setop(SetOp::Union, 2, true))
}

fn zinterstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_command(ctx, argv, setop(SetOp::Inter, 2, true))
}

fn zdiffstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    setop_command(ctx, argv, setop(SetOp::Diff, 2, true))
}

fn zintercard(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let req = SetOpReq {
        card_only: true,
        ..setop(SetOp::Inter, 1, false)
    };
    setop_command(ctx, argv, req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::test_support::{b, dirty, run};
    use crate::backend::embedded::{ClientView, Engine};
    use crate::config::EmbeddedConfig;

    fn run_proto(e: &Engine, proto: Protocol, args: &[&str]) -> Reply {
        let argv: Vec<Bytes> = args.iter().map(|a| b(a)).collect();
        let spec = crate::command::table::lookup(args[0].as_bytes()).expect("command");
        e.execute(
            ClientView {
                db: 0,
                proto,
                tracker: None,
            },
            spec,
            &argv,
        )
    }

    fn bulks(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| Reply::Bulk(b(s))).collect())
    }

    #[test]
    fn value_matches_a_model_under_random_updates() {
        let mut rng: u64 = 0x1234_5678;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut z = ZSetValue::new(true);
        let mut model: std::collections::BTreeMap<Vec<u8>, f64> = Default::default();
        for step in 0..5000 {
            let member = format!("k{}", next() % 200).into_bytes();
            let score = (next() % 20) as f64 / 2.0 - 5.0;
            if next() % 3 == 0 {
                assert_eq!(z.remove(&member), model.remove(&member).is_some());
            } else {
                let new = z.insert(&member, score);
                assert_eq!(new, model.insert(member.clone(), score).is_none());
            }
            assert_eq!(z.len(), model.len());
            assert_eq!(z.member_bytes, model.keys().map(|k| k.len()).sum::<usize>());
            if step % 101 == 0 {
                let mut sorted: Vec<(f64, Vec<u8>)> =
                    model.iter().map(|(m, s)| (*s, m.clone())).collect();
                sorted.sort_by(|a, b| order_tree::cmp_key(a.0, &a.1, b.0, &b.1));
                let got: Vec<(f64, Vec<u8>)> = z.iter().map(|(m, s)| (s, m.to_vec())).collect();
                assert_eq!(got, sorted);
                for (rank, (s, m)) in sorted.iter().enumerate() {
                    assert_eq!(z.rank(m), Some(rank));
                    assert_eq!(z.score(m), Some(*s));
                }
                let range = ScoreRange::parse(b"(-1", b"2").expect("range");
                let (lo, hi) = z.score_range(&range);
                let want = sorted
                    .iter()
                    .filter(|(s, _)| *s > -1.0 && *s <= 2.0)
                    .count();
                assert_eq!(hi - lo, want);
                // A full scan in small steps returns every member exactly once.
                let mut seen = Vec::new();
                let mut cursor = 0;
                loop {
                    let (next_cursor, items) = z.scan_from(cursor, 3);
                    seen.extend(items.into_iter().map(|(m, _)| m.to_vec()));
                    if next_cursor == 0 {
                        break;
                    }
                    cursor = next_cursor;
                }
                seen.sort();
                assert_eq!(seen, model.keys().cloned().collect::<Vec<_>>());
            }
        }
        let before = z.mem_size();
        let n = z.len();
        assert_eq!(z.remove_rank_range(0, n).len(), n);
        assert!(z.is_empty() && z.mem_size() < before && z.member_bytes == 0);
    }

    #[test]
    fn exported_range_iterators() {
        let pairs = (0..10).map(|i| (b(&format!("m{i}")), i as f64)).collect();
        let z = ZSetValue::from_pairs(pairs, &Default::default());
        let names = |it: &mut dyn Iterator<Item = (&Bytes, f64)>| -> Vec<String> {
            it.map(|(m, _)| String::from_utf8_lossy(m).into_owned())
                .collect()
        };
        let r = ScoreRange::new(2.0, true, 5.0, false);
        assert_eq!(names(&mut z.iter_score_range(&r)), ["m3", "m4", "m5"]);
        assert_eq!(names(&mut z.iter_rank_range(8, 100)), ["m8", "m9"]);
        assert!(z.iter_rank_range(20, 30).next().is_none());
        assert_eq!(z.encoding_name(), "listpack");
    }

    #[test]
    fn listpack_turns_negative_zero_into_zero_but_skiplist_keeps_it() {
        let mut lp = ZSetValue::new(false);
        lp.insert(b"a", -0.0);
        assert!(lp.score(b"a").is_some_and(|s| s.is_sign_positive()));
        let mut sl = ZSetValue::new(true);
        sl.insert(b"a", -0.0);
        assert!(sl.score(b"a").is_some_and(|s| s.is_sign_negative()));
    }

    #[test]
    fn scores_and_bounds_parse_like_redis() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"+Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"0e10"), Some(0.0));
        assert!(parse_score(b"1e-310").is_some_and(|v| v > 0.0));
        for bad in ["1e400", "-1e400", "1e-400", "nan", "", " 1", "1 ", "1x"] {
            assert_eq!(parse_score(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_score_strtod(b""), Some(0.0));
        assert_eq!(parse_score_strtod(b"  2"), Some(2.0));
        assert_eq!(parse_score_strtod(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_score_strtod(b"  "), None);
        assert_eq!(parse_score_strtod(b"nan"), None);
        assert!(ScoreRange::parse(b"(", b"(1").is_ok());
        assert!(LexRange::parse(&b("+x"), &b("+")).is_err());
    }

    #[test]
    fn writes_count_dirty_and_empty_sets_are_deleted() {
        let e = Engine::new(&EmbeddedConfig::default());
        assert_eq!(
            run(&e, &["zadd", "z", "1", "a", "2", "b"]),
            Reply::Integer(2)
        );
        assert_eq!(dirty(&e), 2);
        run(&e, &["zadd", "z", "1", "a"]);
        run(&e, &["zadd", "z", "nx", "5", "a"]);
        run(&e, &["zrem", "z", "nosuch"]);
        run(&e, &["zremrangebyscore", "z", "10", "20"]);
        run(&e, &["zpopmin", "z", "0"]);
        assert_eq!(dirty(&e), 2);
        run(&e, &["zincrby", "z", "1", "a"]);
        assert_eq!(dirty(&e), 3);
        let popped = Reply::Array(vec![
            Reply::Bulk(b("b")),
            Reply::Double(2.0),
            Reply::Bulk(b("a")),
            Reply::Double(2.0),
        ]);
        assert_eq!(run(&e, &["zpopmax", "z", "5"]), popped);
        assert_eq!(run(&e, &["exists", "z"]), Reply::Integer(0));
        assert!(dirty(&e) > 3);
        let d = dirty(&e);
        assert_eq!(
            run(&e, &["zunionstore", "out", "1", "nokey"]),
            Reply::Integer(0)
        );
        assert_eq!(dirty(&e), d);
    }

    #[test]
    fn huge_counts_and_ranges_do_not_allocate_unboundedly() {
        let e = Engine::new(&EmbeddedConfig::default());
        run(&e, &["zadd", "z", "1", "a", "2", "b"]);
        let all = bulks(&["a", "b"]);
        let (min, max) = ("-9223372036854775808", "9223372036854775807");
        assert_eq!(run(&e, &["zrange", "z", min, max]), all);
        assert_eq!(
            run(
                &e,
                &["zrange", "z", "-inf", "+inf", "byscore", "limit", "0", max]
            ),
            all
        );
        assert_eq!(run(&e, &["zrandmember", "z", max]), bulks(&["b", "a"]));
        assert_eq!(
            run(&e, &["zrandmember", "z", "-9223372036854775807"]),
            Reply::err(OUT_OF_RANGE)
        );
        let scanned = Reply::Array(vec![
            Reply::Bulk(b("0")),
            Reply::Array(vec![
                Reply::Bulk(b("a")),
                Reply::Bulk(b("1")),
                Reply::Bulk(b("b")),
                Reply::Bulk(b("2")),
            ]),
        ]);
        assert_eq!(run(&e, &["zscan", "z", "0", "count", max]), scanned);
        assert_eq!(
            run(&e, &["zmpop", max, "z", "min"]),
            Reply::err(errors::SYNTAX)
        );
        let popped = run(&e, &["zpopmin", "z", max]);
        assert!(matches!(popped, Reply::Array(v) if v.len() == 4));
    }

    #[test]
    fn random_members_have_the_asked_lengths_and_distinctness() {
        let pairs: Vec<(Bytes, f64)> = (0..50).map(|i| (b(&format!("m{i}")), i as f64)).collect();
        let z = ZSetValue::from_pairs(pairs, &Default::default());
        for _ in 0..50 {
            let repeated = random_members(&z, -200).expect("picks");
            assert_eq!(repeated.len(), 200);
            assert!(repeated.iter().all(|(m, s)| z.score(m) == Some(*s)));
            for count in [1, 2, 10, 20, 49] {
                let mut distinct: Vec<Bytes> = random_members(&z, count)
                    .expect("picks")
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect();
                assert_eq!(distinct.len(), count as usize);
                distinct.sort();
                distinct.dedup();
                assert_eq!(distinct.len(), count as usize);
            }
        }
        assert_eq!(random_members(&z, 50).expect("all").len(), 50);
        assert!(random_members(&z, 0).expect("none").is_empty());
    }

    #[test]
    fn blocking_pops_are_a_pure_non_blocking_attempt() {
        let e = Engine::new(&EmbeddedConfig::default());
        assert_eq!(run(&e, &["bzpopmin", "a", "b", "0"]), Reply::NullArray);
        assert_eq!(
            run(&e, &["bzmpop", "0", "2", "a", "b", "max"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&e, &["bzpopmin", "a", "-1"]),
            Reply::err("ERR timeout is negative")
        );
        run(&e, &["zadd", "b", "1", "x", "2", "y"]);
        assert_eq!(
            run(&e, &["bzpopmax", "a", "b", "0"]),
            Reply::Array(vec![
                Reply::Bulk(b("b")),
                Reply::Bulk(b("y")),
                Reply::Double(2.0)
            ])
        );
        assert_eq!(
            run_proto(
                &e,
                Protocol::Resp3,
                &["bzmpop", "1", "1", "b", "min", "count", "9"]
            ),
            Reply::Array(vec![
                Reply::Bulk(b("b")),
                Reply::Array(vec![Reply::Array(vec![
                    Reply::Bulk(b("x")),
                    Reply::Double(1.0)
                ])])
            ])
        );
        assert_eq!(run(&e, &["exists", "b"]), Reply::Integer(0));
    }
}
