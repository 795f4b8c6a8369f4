//! Sorted sets: the zset value type (member -> score map plus an order-statistic tree over
//! (score, member), see [`order_tree`]) and the Z* commands with t_zset.c's semantics.

mod order_tree;

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::db::key_hash;
use super::num::{parse_f64, parse_i64};
use super::value::Value;
use super::{Ctx, Handler};
use crate::protocol::{Protocol, Reply, errors};
use order_tree::OrderTree;

const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
const NOT_STRING_RANGE: &str = "ERR min or max not valid string range item";
const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// Estimated heap bytes per element beyond the member itself: tree node, map bucket entry.
const PER_ELEMENT_BYTES: usize = 96;

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
        if self.skiplist { "skiplist" } else { "listpack" }
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
        let bucket = self.scores.entry(key_hash(member)).or_default();
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

    /// Ranks `[start, end)` of the elements inside a lex range (meaningful when all scores
    /// are equal, as in Redis).
    pub(crate) fn lex_range(&self, r: &LexRange) -> (usize, usize) {
        let start = self.tree.count_while(|_, m| !r.gte_min(m));
        let end = self.tree.count_while(|_, m| r.lte_max(m)).max(start);
        (start, end)
    }

    /// Converts to skiplist once a threshold is crossed (never back, like Redis).
    fn check_encoding(&mut self, t: &super::Tunables, added_len: usize) {
        if !self.skiplist
            && (self.len() > t.zset_max_listpack_entries || added_len > t.zset_max_listpack_value)
        {
            self.skiplist = true;
        }
    }

    /// A new set holding `pairs`, encoded as Redis encodes a freshly stored result.
    pub(crate) fn from_pairs(
        pairs: impl IntoIterator<Item = (Bytes, f64)>,
        t: &super::Tunables,
    ) -> ZSetValue {
        let mut z = ZSetValue::new(false);
        let mut max_len = 0;
        for (m, s) in pairs {
            max_len = max_len.max(m.len());
            z.insert(&m, s);
        }
        z.skiplist = z.len() > t.zset_max_listpack_entries || max_len > t.zset_max_listpack_value;
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
    fn gte_min(&self, s: f64) -> bool {
        if self.minex { s > self.min } else { s >= self.min }
    }
    fn lte_max(&self, s: f64) -> bool {
        if self.maxex { s < self.max } else { s <= self.max }
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

/// strtod for range bounds: like a score, but an empty string reads as 0? No: Redis
/// rejects when nothing was parsed, which `parse_f64` does too.
fn parse_score_strtod(b: &[u8]) -> Option<f64> {
    parse_f64(b)
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

pub(super) fn register(t: &mut HashMap<&'static str, Handler>) {
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
    parse_f64(b).ok_or_else(|| Reply::err(errors::NOT_FLOAT))
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
    let empty = matches!(ctx.lookup(key), Some(e) if matches!(&e.value, Value::ZSet(z) if z.is_empty()));
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
    if rest.is_empty() || rest.len() % 2 != 0 {
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
            return Ok(if incr {
                Reply::Null
            } else {
                Reply::Integer(0)
            });
        }
        let skiplist = tunables.zset_max_listpack_entries == 0
            || tunables.zset_max_listpack_value < rest[1].len();
        let now = ctx.now_ms;
        ctx.db()
            .set(key, Value::ZSet(Box::new(ZSetValue::new(skiplist))), None, now);
    }
    let Some(z) = write_zset(ctx, key)? else {
        return Err(Reply::err(errors::WRONGTYPE));
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
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
                processed += 1;
                if new != cur {
                    z.insert(member, new);
                    updated += 1;
                }
            }
            None => {
                if has(ZADD_XX) {
                    continue;
                }
                z.insert(member, score);
                z.check_encoding(&tunables, member.len());
                added += 1;
                processed += 1;
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
    let _ = processed;
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
            let (a, b) = z.lex_range(&range);
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
            z.lex_range(&LexRange::parse(min, max)?)
        }
    };
    let mut count = hi - lo;
    let mut skip = 0usize;
    if req.kind != RangeKind::Rank {
        if req.offset < 0 {
            return Ok(Vec::new());
        }
        skip = usize::try_from(req.offset).unwrap_or(usize::MAX).min(count);
        count -= skip;
        if req.limit >= 0 {
            count = count.min(usize::try_from(req.limit).unwrap_or(usize::MAX));
        }
    }
    let out: Vec<(Bytes, f64)> = if req.rev {
        let first = hi - skip - count;
        let mut v: Vec<_> = z
            .iter_from(first)
            .take(count)
            .map(|(m, s)| (m.clone(), s))
            .collect();
        v.reverse();
        v
    } else {
        z.iter_from(lo + skip)
            .take(count)
            .map(|(m, s)| (m.clone(), s))
            .collect()
    };
    Ok(out)
}

/// Parses ZRANGE's options after `min max` (from argv index `from`).
fn parse_zrange_opts(
    argv: &[Bytes],
    from: usize,
    mut req: RangeReq,
    store: bool,
) -> Result<RangeReq, Reply> {
    let mut limit_given = false;
    let mut j = from;
    while j < argv.len() {
        let a = &argv[j];
        let left = argv.len() - j - 1;
        if !store && opt_is(a, "withscores") {
            req.withscores = true;
        } else if opt_is(a, "limit") && left >= 2 {
            req.offset = int_arg(&argv[j + 1])?;
            req.limit = int_arg(&argv[j + 2])?;
            limit_given = true;
            j += 2;
        } else if opt_is(a, "byscore") && req.kind == RangeKind::Rank {
            req.kind = RangeKind::Score;
        } else if opt_is(a, "bylex") && req.kind == RangeKind::Rank {
            req.kind = RangeKind::Lex;
        } else if opt_is(a, "rev") {
            req.rev = true;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        j += 1;
    }
    if limit_given && req.kind == RangeKind::Rank {
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

fn run_range(ctx: &mut Ctx, key: &Bytes, req: RangeReq) -> Reply {
    done((|| {
        prevalidate(&req)?;
        let items = match read_zset(ctx, key)? {
            None => Vec::new(),
            Some(z) => select_range(z, &req)?,
        };
        Ok(pairs_reply(ctx, items, req.withscores))
    })())
}

fn zrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match parse_zrange_opts(argv, 4, base_req(argv, 2, RangeKind::Rank, false), false) {
        Ok(req) => run_range(ctx, &argv[1], req),
        Err(e) => e,
    }
}

fn zrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut req = base_req(argv, 2, RangeKind::Rank, true);
    match argv.len() {
        4 => {}
        5 if opt_is(&argv[4], "withscores") => req.withscores = true,
        _ => return Reply::err(errors::SYNTAX),
    }
    run_range(ctx, &argv[1], req)
}

/// ZRANGEBYSCORE/ZREVRANGEBYSCORE/ZRANGEBYLEX/ZREVRANGEBYLEX: WITHSCORES and LIMIT only.
fn by_generic(ctx: &mut Ctx, argv: &[Bytes], kind: RangeKind, rev: bool) -> Reply {
    let mut req = base_req(argv, 2, kind, rev);
    let mut j = 4;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        if kind == RangeKind::Score && opt_is(&argv[j], "withscores") {
            req.withscores = true;
        } else if opt_is(&argv[j], "limit") && left >= 2 {
            match (int_arg(&argv[j + 1]), int_arg(&argv[j + 2])) {
                (Ok(o), Ok(l)) => {
                    req.offset = o;
                    req.limit = l;
                }
                (Err(e), _) | (_, Err(e)) => return e,
            }
            j += 2;
        } else {
            return Reply::err(errors::SYNTAX);
        }
        j += 1;
    }
    run_range(ctx, &argv[1], req)
}

fn zrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    by_generic(ctx, argv, RangeKind::Score, false)
}

fn zrevrangebyscore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    by_generic(ctx, argv, RangeKind::Score, true)
}

fn zrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    by_generic(ctx, argv, RangeKind::Lex, false)
}

fn zrevrangebylex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    by_generic(ctx, argv, RangeKind::Lex, true)
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
        let req = parse_zrange_opts(argv, 5, base_req(argv, 3, RangeKind::Rank, false), true)?;
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
            RangeKind::Rank => {
                match rank_bounds(int_arg(&req.min)?, int_arg(&req.max)?, z.len()) {
                    Some(ab) => ab,
                    None => return Ok(Reply::Integer(0)),
                }
            }
            RangeKind::Score => z.score_range(&ScoreRange::parse(&req.min, &req.max)?),
            RangeKind::Lex => z.lex_range(&LexRange::parse(&req.min, &req.max)?),
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
fn pop_items(ctx: &mut Ctx, key: &Bytes, count: usize, max: bool) -> Result<Vec<(Bytes, f64)>, Reply> {
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
                let c = int_arg(c)?;
                if c < 0 {
                    return Err(Reply::err(
                        "ERR value is out of range, must be positive",
                    ));
                }
                Some(c as usize)
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

/// Redis's getTimeoutFromObjectOrReply for seconds given as a float.
fn parse_timeout(b: &[u8]) -> Result<f64, Reply> {
    let t = parse_f64(b)
        .filter(|t| t.is_finite())
        .ok_or_else(|| Reply::err(TIMEOUT_NOT_FLOAT))?;
    if t < 0.0 {
        return Err(Reply::err(TIMEOUT_NEGATIVE));
    }
    Ok(t)
}

/// BZPOPMIN/BZPOPMAX key... timeout, as the non-blocking attempt: serve the first
/// non-empty key or reply the timeout's null array.
fn bpop_generic(ctx: &mut Ctx, argv: &[Bytes], max: bool) -> Reply {
    done((|| {
        let Some((timeout, keys)) = argv[1..].split_last() else {
            return Err(Reply::err(errors::SYNTAX));
        };
        parse_timeout(timeout)?;
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
