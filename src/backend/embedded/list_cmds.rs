//! Lists: the list value type and the list commands with t_list.c's semantics (LPUSH RPUSH
//! LPUSHX RPUSHX LPOP RPOP LLEN LRANGE LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE RPOPLPUSH
//! LMPOP), plus the blocking variants (BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP) as their
//! non-blocking attempt: they validate every argument, serve from the first non-empty key
//! and otherwise return the null Redis returns on timeout. The blocking layer re-runs these
//! handlers when a key is pushed to, so they depend on the keyspace only.

use std::collections::VecDeque;

use bytes::Bytes;

use super::Ctx;
use super::num::parse_i64;
use super::value::Value;
use crate::protocol::{Reply, errors};

const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
const NUMKEYS_POSITIVE: &str = "ERR numkeys should be greater than 0";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";
const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";

/// Heap bytes an element costs besides its payload (allocation header and rounding).
const ELEMENT_OVERHEAD: usize = 16;

/// Which end of a list a command works on (LEFT = head, RIGHT = tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Head,
    Tail,
}

/// A list of elements: a ring buffer, O(1) push/pop at both ends and O(1) indexing.
#[derive(Clone, Debug, Default)]
pub struct ListValue {
    items: VecDeque<Bytes>,
    /// Sum of the elements' lengths, kept up to date so [`ListValue::mem_size`] is O(1).
    payload: usize,
}

impl ListValue {
    pub fn new() -> ListValue {
        ListValue::default()
    }

    /// A list holding `elements` head to tail (SORT STORE, RESTORE, AOF loading).
    pub fn from_elements(elements: impl IntoIterator<Item = Bytes>) -> ListValue {
        let mut l = ListValue::new();
        for e in elements {
            l.push(End::Tail, e);
        }
        l
    }

    /// Elements head to tail (reversible).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// OBJECT ENCODING's answer: Redis 7.0 holds every list as a quicklist.
    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes held; O(1).
    pub fn mem_size(&self) -> usize {
        std::mem::size_of::<ListValue>()
            + self.items.capacity() * std::mem::size_of::<Bytes>()
            + self.payload
            + self.items.len() * ELEMENT_OVERHEAD
    }

    pub fn push(&mut self, end: End, e: Bytes) {
        self.payload += e.len();
        match end {
            End::Head => self.items.push_front(e),
            End::Tail => self.items.push_back(e),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let e = match end {
            End::Head => self.items.pop_front(),
            End::Tail => self.items.pop_back(),
        }?;
        self.payload -= e.len();
        self.shrink_if_sparse();
        Some(e)
    }

    /// Gives memory back once the list has shrunk well below its buffer (Redis frees
    /// quicklist nodes as they empty); halving at a quarter keeps pushes/pops amortized O(1).
    fn shrink_if_sparse(&mut self) {
        let cap = self.items.capacity();
        if cap > 64 && self.items.len() < cap / 4 {
            self.items.shrink_to(self.items.len() * 2);
        }
    }

    /// Position of a Redis index (negative counts from the tail), if in range.
    fn position(&self, index: i64) -> Option<usize> {
        let len = self.items.len() as i64;
        let i = if index < 0 { len + index } else { index };
        (0..len).contains(&i).then_some(i as usize)
    }

    pub fn get(&self, index: i64) -> Option<&Bytes> {
        self.items.get(self.position(index)?)
    }

    /// LSET: replaces the element at `index`; false if out of range.
    pub fn set(&mut self, index: i64, e: Bytes) -> bool {
        let Some(i) = self.position(index) else {
            return false;
        };
        let Some(slot) = self.items.get_mut(i) else {
            return false;
        };
        self.payload = self.payload - slot.len() + e.len();
        *slot = e;
        true
    }

    /// The inclusive range [start, end] LRANGE/LTRIM select, with Redis's clamping of
    /// negative and out-of-range indexes; None when empty.
    pub fn range(&self, start: i64, end: i64) -> Option<(usize, usize)> {
        let len = self.items.len() as i64;
        let mut start = if start < 0 { len + start } else { start };
        let mut end = if end < 0 { len + end } else { end };
        if start < 0 {
            start = 0;
        }
        if start > end || start >= len {
            return None;
        }
        if end >= len {
            end = len - 1;
        }
        Some((start as usize, end as usize))
    }

    /// Keeps only the positions `keep` (None: empties the list); returns how many went.
    fn trim(&mut self, keep: Option<(usize, usize)>) -> usize {
        let before = self.items.len();
        match keep {
            None => {
                self.items.clear();
                self.payload = 0;
            }
            Some((s, e)) => {
                let gone: usize = self.items.drain(e + 1..).map(|x| x.len()).sum::<usize>()
                    + self.items.drain(..s).map(|x| x.len()).sum::<usize>();
                self.payload -= gone;
            }
        }
        self.shrink_if_sparse();
        before - self.items.len()
    }

    /// LREM: removes up to |count| elements equal to `e` (0: all), from the tail when
    /// count is negative; returns how many were removed.
    fn remove_matching(&mut self, e: &[u8], count: i64) -> usize {
        let limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        let mut keep = vec![true; self.items.len()];
        let order: Box<dyn Iterator<Item = usize>> = if count < 0 {
            Box::new((0..self.items.len()).rev())
        } else {
            Box::new(0..self.items.len())
        };
        for i in order {
            if removed == limit {
                break;
            }
            if self.items.get(i).is_some_and(|x| x.as_ref() == e) {
                keep[i] = false;
                removed += 1;
            }
        }
        if removed > 0 {
            let mut i = 0;
            self.items.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            self.payload -= removed * e.len();
            self.shrink_if_sparse();
        }
        removed
    }

    /// LINSERT: inserts `e` before/after the first `pivot`; false if there is none.
    fn insert_near(&mut self, pivot: &[u8], e: Bytes, after: bool) -> bool {
        let Some(i) = self.items.iter().position(|x| x.as_ref() == pivot) else {
            return false;
        };
        self.payload += e.len();
        self.items.insert(if after { i + 1 } else { i }, e);
        true
    }
}

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("lpush", lpush);
    t.insert("rpush", rpush);
    t.insert("lpushx", lpushx);
    t.insert("rpushx", rpushx);
    t.insert("lpop", lpop);
    t.insert("rpop", rpop);
    t.insert("llen", llen);
    t.insert("lrange", lrange);
    t.insert("lindex", lindex);
    t.insert("lset", lset);
    t.insert("lrem", lrem);
    t.insert("ltrim", ltrim);
    t.insert("linsert", linsert);
    t.insert("lpos", lpos);
    t.insert("lmove", lmove);
    t.insert("rpoplpush", rpoplpush);
    t.insert("lmpop", lmpop);
    t.insert("blpop", blpop);
    t.insert("brpop", brpop);
    t.insert("blmove", blmove);
    t.insert("brpoplpush", brpoplpush);
    t.insert("blmpop", blmpop);
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn arity_err(name: &str) -> Reply {
    Reply::err(errors::wrong_arity(name))
}

fn wrongtype() -> Reply {
    Reply::err(errors::WRONGTYPE)
}

/// Option names are compared like C's strcasecmp on NUL-terminated strings.
fn opt_is(arg: &[u8], name: &str) -> bool {
    let end = arg.iter().position(|&c| c == 0).unwrap_or(arg.len());
    arg[..end].eq_ignore_ascii_case(name.as_bytes())
}

/// LEFT | RIGHT.
fn parse_end(arg: &[u8]) -> Result<End, Reply> {
    if opt_is(arg, "right") {
        Ok(End::Tail)
    } else if opt_is(arg, "left") {
        Ok(End::Head)
    } else {
        Err(Reply::err(errors::SYNTAX))
    }
}

fn parse_long(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or_else(|| Reply::err(errors::NOT_INTEGER))
}

/// getRangeLongFromObjectOrReply with a message: the same text for non-integers.
fn parse_at_least(arg: &[u8], min: i64, msg: &str) -> Result<i64, Reply> {
    parse_i64(arg)
        .filter(|&v| v >= min)
        .ok_or_else(|| Reply::err(msg))
}

/// A blocking command's timeout in seconds, validated like Redis's
/// getTimeoutFromObjectOrReply: parsed as a long double, multiplied by 1000 and truncated
/// to a 64-bit integer (values out of that range become LLONG_MIN, as the x87 conversion
/// does, hence "timeout is negative"). Returns the relative timeout in ms, 0 = forever.
pub fn parse_timeout_ms(arg: &[u8]) -> Result<u64, Reply> {
    use super::string_cmds::longdouble::{Parsed, parse};
    let negative = || Reply::err(TIMEOUT_NEGATIVE);
    let v = match parse(arg) {
        None => return Err(Reply::err(TIMEOUT_NOT_FLOAT)),
        Some(Parsed::Inf) => return Err(negative()),
        Some(Parsed::Finite(v)) => v,
    };
    // x86 extended precision: the product is rounded to a 64-bit significand.
    const PREC: u32 = 64;
    let mut m = v.mant * 1000;
    let mut exp = v.exp;
    let bits = 128 - m.leading_zeros();
    if bits > PREC {
        let shift = bits - PREC;
        let half = (m >> (shift - 1)) & 1 == 1;
        let below = m & ((1u128 << (shift - 1)) - 1) != 0;
        let mut q = m >> shift;
        if half && (below || q & 1 == 1) {
            q += 1;
        }
        m = q;
        exp += shift as i64;
    }
    let int = if m == 0 {
        0
    } else if exp >= 0 {
        let b = 128 - m.leading_zeros() as i64;
        if b + exp > 63 {
            return Err(negative());
        }
        m << exp
    } else if -exp >= 128 {
        0
    } else {
        m >> (-exp)
    };
    if int > i64::MAX as u128 || (v.neg && int != 0) {
        return Err(negative());
    }
    Ok(int as u64)
}

/// Redis's lookupKeyRead for a list: counts a hit or miss; WRONGTYPE on another type.
fn read_list<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Result<Option<&'c mut ListValue>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(l)),
            _ => Err(wrongtype()),
        },
    }
}

/// Redis's lookupKeyWrite for a list: refreshes the access time, no stats.
fn write_list<'c>(ctx: &'c mut Ctx<'_>, key: &Bytes) -> Result<Option<&'c mut ListValue>, Reply> {
    let now = ctx.now_ms;
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => {
            e.touch(now);
            match &mut e.value {
                Value::List(l) => Ok(Some(l)),
                _ => Err(wrongtype()),
            }
        }
    }
}

/// An element copied out of the request buffer (never pin a client's buffer).
fn own(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

fn done(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

/// Deletes `key` if its list became empty (Redis never keeps empty collections).
fn delete_if_empty(ctx: &mut Ctx, key: &Bytes, empty: bool) {
    if empty {
        ctx.db().remove(key);
    }
}

// ---------------------------------------------------------------------------------------
// Push and pop
// ---------------------------------------------------------------------------------------

fn push_generic(ctx: &mut Ctx, argv: &[Bytes], end: End, only_existing: bool) -> Reply {
    let (Some(key), Some(elements)) = (argv.get(1), argv.get(2..)) else {
        return arity_err("lpush");
    };
    if elements.is_empty() {
        return arity_err("lpush");
    }
    let now = ctx.now_ms;
    // One search of the keyspace, which also counts the list's new size.
    let pushed = ctx.update(key, |entry| {
        entry.touch(now);
        let Value::List(l) = &mut entry.value else {
            return Err(wrongtype());
        };
        for e in elements {
            l.push(end, own(e));
        }
        Ok(l.len())
    });
    let len = match pushed {
        Some(Err(e)) => return e,
        Some(Ok(len)) => len,
        None if only_existing => return Reply::Integer(0),
        None => {
            let mut l = ListValue::new();
            for e in elements {
                l.push(end, own(e));
            }
            let len = l.len();
            ctx.db().set(key, Value::List(Box::new(l)), None, now);
            len
        }
    };
    ctx.dirty(elements.len() as u64);
    Reply::Integer(len as i64)
}

fn lpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push_generic(ctx, argv, End::Head, false)
}

fn rpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push_generic(ctx, argv, End::Tail, false)
}

fn lpushx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push_generic(ctx, argv, End::Head, true)
}

fn rpushx(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    push_generic(ctx, argv, End::Tail, true)
}

/// Pops up to `count` elements from `end` of the (non-empty) list at `key`, counting them
/// dirty and deleting the key if it empties. Elements come in pop order.
fn pop_n(ctx: &mut Ctx, key: &Bytes, end: End, count: u64) -> Result<Vec<Bytes>, Reply> {
    let (out, empty) = match write_list(ctx, key)? {
        None => return Ok(Vec::new()),
        Some(l) => {
            let n = usize::try_from(count).unwrap_or(usize::MAX).min(l.len());
            let out: Vec<Bytes> = (0..n).filter_map(|_| l.pop(end)).collect();
            (out, l.is_empty())
        }
    };
    delete_if_empty(ctx, key, empty);
    ctx.dirty(out.len() as u64);
    Ok(out)
}

fn bulk_array(v: Vec<Bytes>) -> Reply {
    Reply::Array(v.into_iter().map(Reply::Bulk).collect())
}

fn pop_generic(ctx: &mut Ctx, argv: &[Bytes], end: End, name: &str) -> Reply {
    done((|| {
        let (key, count) = match argv {
            [_, key] => (key, None),
            [_, key, count] => (key, Some(parse_at_least(count, 0, MUST_BE_POSITIVE)?)),
            _ => return Err(arity_err(name)),
        };
        match write_list(ctx, key)? {
            None if count.is_some() => return Ok(Reply::NullArray),
            None => return Ok(Reply::Null),
            Some(_) => {}
        }
        match count {
            Some(0) => Ok(Reply::Array(Vec::new())),
            Some(n) => Ok(bulk_array(pop_n(ctx, key, end, n as u64)?)),
            None => Ok(pop_n(ctx, key, end, 1)?
                .pop()
                .map_or(Reply::Null, Reply::Bulk)),
        }
    })())
}

fn lpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    pop_generic(ctx, argv, End::Head, "lpop")
}

fn rpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    pop_generic(ctx, argv, End::Tail, "rpop")
}

// ---------------------------------------------------------------------------------------
// Reading and editing in place
// ---------------------------------------------------------------------------------------

fn llen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let [_, key] = argv else {
        return arity_err("llen");
    };
    match read_list(ctx, key) {
        Err(e) => e,
        Ok(l) => Reply::Integer(l.map_or(0, |l| l.len() as i64)),
    }
}

fn lrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, start, end] = argv else {
            return Err(arity_err("lrange"));
        };
        let (start, end) = (parse_long(start)?, parse_long(end)?);
        let Some(l) = read_list(ctx, key)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        Ok(match l.range(start, end) {
            None => Reply::Array(Vec::new()),
            Some((s, e)) => Reply::Array(
                l.items
                    .range(s..=e)
                    .map(|x| Reply::Bulk(x.clone()))
                    .collect(),
            ),
        })
    })())
}

fn lindex(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, index] = argv else {
            return Err(arity_err("lindex"));
        };
        let Some(l) = read_list(ctx, key)? else {
            return Ok(Reply::Null);
        };
        let index = parse_long(index)?;
        Ok(l.get(index).map_or(Reply::Null, |x| Reply::Bulk(x.clone())))
    })())
}

fn lset(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, index, element] = argv else {
            return Err(arity_err("lset"));
        };
        let Some(l) = write_list(ctx, key)? else {
            return Err(Reply::err(errors::NO_SUCH_KEY));
        };
        let index = parse_long(index)?;
        if !l.set(index, own(element)) {
            return Err(Reply::err(INDEX_OUT_OF_RANGE));
        }
        ctx.dirty(1);
        Ok(Reply::OK)
    })())
}

fn lrem(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, count, element] = argv else {
            return Err(arity_err("lrem"));
        };
        let count = parse_long(count)?;
        let Some(l) = write_list(ctx, key)? else {
            return Ok(Reply::Integer(0));
        };
        let removed = l.remove_matching(element, count);
        let empty = l.is_empty();
        delete_if_empty(ctx, key, empty);
        ctx.dirty(removed as u64);
        Ok(Reply::Integer(removed as i64))
    })())
}

fn ltrim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, start, end] = argv else {
            return Err(arity_err("ltrim"));
        };
        let (start, end) = (parse_long(start)?, parse_long(end)?);
        let Some(l) = write_list(ctx, key)? else {
            return Ok(Reply::OK);
        };
        let keep = l.range(start, end);
        let removed = l.trim(keep);
        let empty = l.is_empty();
        delete_if_empty(ctx, key, empty);
        ctx.dirty(removed as u64);
        Ok(Reply::OK)
    })())
}

fn linsert(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, key, place, pivot, element] = argv else {
            return Err(arity_err("linsert"));
        };
        let after = if opt_is(place, "after") {
            true
        } else if opt_is(place, "before") {
            false
        } else {
            return Err(Reply::err(errors::SYNTAX));
        };
        let Some(l) = write_list(ctx, key)? else {
            return Ok(Reply::Integer(0));
        };
        if !l.insert_near(pivot, own(element), after) {
            return Ok(Reply::Integer(-1));
        }
        let len = l.len() as i64;
        ctx.dirty(1);
        Ok(Reply::Integer(len))
    })())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len].
fn lpos(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let (Some(key), Some(element)) = (argv.get(1), argv.get(2)) else {
            return Err(arity_err("lpos"));
        };
        let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
        let mut j = 3;
        while j < argv.len() {
            let opt = &argv[j];
            let next = argv.get(j + 1);
            match next {
                Some(v) if opt_is(opt, "rank") => {
                    rank = parse_long(v)?;
                    if rank == 0 {
                        return Err(Reply::err(RANK_ZERO));
                    }
                }
                Some(v) if opt_is(opt, "count") => {
                    count = Some(parse_at_least(v, 0, COUNT_NEGATIVE)?)
                }
                Some(v) if opt_is(opt, "maxlen") => maxlen = parse_at_least(v, 0, MAXLEN_NEGATIVE)?,
                _ => return Err(Reply::err(errors::SYNTAX)),
            }
            j += 2;
        }
        // Redis negates a negative rank in C `long`: LLONG_MIN stays LLONG_MIN, which then
        // matches from the first hit on (every comparison below wraps the same way).
        let from_tail = rank < 0;
        if from_tail {
            rank = rank.wrapping_neg();
        }
        let Some(l) = read_list(ctx, key)? else {
            return Ok(if count.is_some() {
                Reply::Array(Vec::new())
            } else {
                Reply::Null
            });
        };
        let len = l.len() as i64;
        let iter: Box<dyn Iterator<Item = &Bytes>> = if from_tail {
            Box::new(l.iter().rev())
        } else {
            Box::new(l.iter())
        };
        let mut matches: i64 = 0;
        let mut found = Vec::new();
        for (index, x) in iter.enumerate() {
            let index = index as i64;
            if maxlen != 0 && index >= maxlen {
                break;
            }
            if x.as_ref() != element.as_ref() {
                continue;
            }
            matches += 1;
            if matches < rank {
                continue;
            }
            found.push(Reply::Integer(if from_tail {
                len - index - 1
            } else {
                index
            }));
            match count {
                None => break,
                Some(c) if c != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= c => break,
                _ => {}
            }
        }
        Ok(match count {
            Some(_) => Reply::Array(found),
            None => found.pop().unwrap_or(Reply::Null),
        })
    })())
}

// ---------------------------------------------------------------------------------------
// Moving between lists
// ---------------------------------------------------------------------------------------

/// lmoveGenericCommand: pops from `src` and pushes to `dst`. A missing source is a null
/// reply whatever `dst` holds; a destination of another type is WRONGTYPE before popping.
fn lmove_generic(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Reply {
    done((|| {
        if write_list(ctx, src)?.is_none() {
            return Ok(Reply::Null);
        }
        if src == dst {
            // Rotation: the list never becomes empty in between.
            let Some(l) = write_list(ctx, src)? else {
                return Ok(Reply::Null);
            };
            let Some(v) = l.pop(from) else {
                return Ok(Reply::Null);
            };
            l.push(to, v.clone());
            ctx.dirty(1);
            return Ok(Reply::Bulk(v));
        }
        let dst_exists = write_list(ctx, dst)?.is_some();
        let (value, empty) = {
            let Some(l) = write_list(ctx, src)? else {
                return Ok(Reply::Null);
            };
            let Some(v) = l.pop(from) else {
                return Ok(Reply::Null);
            };
            (v, l.is_empty())
        };
        if dst_exists {
            if let Some(d) = write_list(ctx, dst)? {
                d.push(to, value.clone());
            }
        } else {
            let now = ctx.now_ms;
            let l = ListValue::from_elements([value.clone()]);
            ctx.db().set(dst, Value::List(Box::new(l)), None, now);
        }
        delete_if_empty(ctx, src, empty);
        ctx.dirty(1);
        Ok(Reply::Bulk(value))
    })())
}

fn lmove(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, src, dst, from, to] = argv else {
            return Err(arity_err("lmove"));
        };
        let (from, to) = (parse_end(from)?, parse_end(to)?);
        Ok(lmove_generic(ctx, src, dst, from, to))
    })())
}

fn rpoplpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let [_, src, dst] = argv else {
        return arity_err("rpoplpush");
    };
    lmove_generic(ctx, src, dst, End::Tail, End::Head)
}

fn blmove(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, src, dst, from, to, timeout] = argv else {
            return Err(arity_err("blmove"));
        };
        let (from, to) = (parse_end(from)?, parse_end(to)?);
        parse_timeout_ms(timeout)?;
        Ok(lmove_generic(ctx, src, dst, from, to))
    })())
}

fn brpoplpush(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let [_, src, dst, timeout] = argv else {
            return Err(arity_err("brpoplpush"));
        };
        parse_timeout_ms(timeout)?;
        Ok(lmove_generic(ctx, src, dst, End::Tail, End::Head))
    })())
}

// ---------------------------------------------------------------------------------------
// Popping from the first non-empty of several keys
// ---------------------------------------------------------------------------------------

/// Serves the first key holding a list (WRONGTYPE if a key of another type comes first):
/// `count` None is BLPOP's [key, element], Some is LMPOP's [key, [elements]].
fn pop_first(ctx: &mut Ctx, keys: &[Bytes], end: End, count: Option<u64>) -> Reply {
    for key in keys {
        match write_list(ctx, key) {
            Err(e) => return e,
            Ok(None) => continue,
            Ok(Some(_)) => {}
        }
        let popped = match pop_n(ctx, key, end, count.unwrap_or(1)) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let head = Reply::Bulk(key.clone());
        return match count {
            Some(_) => Reply::Array(vec![head, bulk_array(popped)]),
            None => match popped.into_iter().next() {
                Some(v) => Reply::Array(vec![head, Reply::Bulk(v)]),
                None => Reply::NullArray,
            },
        };
    }
    Reply::NullArray
}

fn bpop_generic(ctx: &mut Ctx, argv: &[Bytes], end: End, name: &str) -> Reply {
    let Some((timeout, rest)) = argv.split_last() else {
        return arity_err(name);
    };
    let Some(keys) = rest.get(1..).filter(|k| !k.is_empty()) else {
        return arity_err(name);
    };
    if let Err(e) = parse_timeout_ms(timeout) {
        return e;
    }
    pop_first(ctx, keys, end, None)
}

fn blpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bpop_generic(ctx, argv, End::Head, "blpop")
}

fn brpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    bpop_generic(ctx, argv, End::Tail, "brpop")
}

/// LMPOP numkeys key... LEFT|RIGHT [COUNT n] (BLMPOP has the timeout before numkeys,
/// validated after everything else).
fn lmpop_generic(ctx: &mut Ctx, argv: &[Bytes], numkeys_idx: usize) -> Reply {
    done((|| {
        let name = if numkeys_idx == 1 { "lmpop" } else { "blmpop" };
        let Some(numkeys) = argv.get(numkeys_idx) else {
            return Err(arity_err(name));
        };
        let numkeys = parse_at_least(numkeys, 1, NUMKEYS_POSITIVE)?;
        let where_idx = (numkeys_idx as u128) + (numkeys as u128) + 1;
        if where_idx >= argv.len() as u128 {
            return Err(Reply::err(errors::SYNTAX));
        }
        let where_idx = where_idx as usize;
        let end = parse_end(&argv[where_idx])?;
        let mut count = None;
        let mut j = where_idx + 1;
        while j < argv.len() {
            match argv.get(j + 1) {
                Some(v) if count.is_none() && opt_is(&argv[j], "count") => {
                    count = Some(parse_at_least(v, 1, COUNT_POSITIVE)?);
                }
                _ => return Err(Reply::err(errors::SYNTAX)),
            }
            j += 2;
        }
        if numkeys_idx == 2 {
            parse_timeout_ms(&argv[1])?;
        }
        let keys = &argv[numkeys_idx + 1..where_idx];
        Ok(pop_first(ctx, keys, end, Some(count.unwrap_or(1) as u64)))
    })())
}

fn lmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    lmpop_generic(ctx, argv, 1)
}

fn blmpop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    lmpop_generic(ctx, argv, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::Engine;
    use crate::backend::embedded::test_support::{b, dirty, run};
    use crate::config::EmbeddedConfig;

    fn list(items: &[&str]) -> ListValue {
        ListValue::from_elements(items.iter().map(|s| b(s)))
    }

    fn items(l: &ListValue) -> Vec<String> {
        l.iter()
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect()
    }

    #[test]
    fn push_pop_both_ends_and_payload_tracking() {
        let mut l = ListValue::new();
        let empty = l.mem_size();
        l.push(End::Tail, b("bb"));
        l.push(End::Head, b("a"));
        l.push(End::Tail, b("ccc"));
        assert_eq!(items(&l), ["a", "bb", "ccc"]);
        assert_eq!(l.payload, 6);
        assert!(l.mem_size() > empty);
        assert_eq!(l.pop(End::Tail), Some(b("ccc")));
        assert_eq!(l.pop(End::Head), Some(b("a")));
        assert_eq!(l.payload, 2);
        assert_eq!(l.pop(End::Head), Some(b("bb")));
        assert_eq!(l.pop(End::Head), None);
        assert_eq!(l.payload, 0);
    }

    #[test]
    fn memory_is_given_back_after_mass_pops() {
        let mut l = ListValue::from_elements((0..10_000).map(|i| b(&i.to_string())));
        let full = l.mem_size();
        while l.len() > 10 {
            l.pop(End::Head);
        }
        assert!(l.mem_size() < full / 10, "{} vs {}", l.mem_size(), full);
    }

    #[test]
    fn indexes_ranges_and_clamping() {
        let mut l = list(&["0", "1", "2", "3", "4"]);
        assert_eq!(l.get(-1), Some(&b("4")));
        assert_eq!(l.get(5), None);
        assert_eq!(l.get(i64::MIN), None);
        assert_eq!(l.range(i64::MIN, i64::MAX), Some((0, 4)));
        assert_eq!(l.range(3, 1), None);
        assert_eq!(l.range(-100, -6), None);
        assert_eq!(l.range(-100, -5), Some((0, 0)));
        assert!(l.set(-5, b("zero")));
        assert!(!l.set(5, b("x")));
        assert_eq!(l.payload, 8);
        assert_eq!(l.trim(Some((1, 3))), 2);
        assert_eq!(items(&l), ["1", "2", "3"]);
        assert_eq!(l.payload, 3);
        assert_eq!(l.trim(None), 3);
        assert!(l.is_empty());
    }

    #[test]
    fn remove_matching_honours_count_direction() {
        let mut l = list(&["a", "b", "a", "c", "a"]);
        assert_eq!(l.remove_matching(b"a", -1), 1);
        assert_eq!(items(&l), ["a", "b", "a", "c"]);
        assert_eq!(l.remove_matching(b"a", 1), 1);
        assert_eq!(items(&l), ["b", "a", "c"]);
        assert_eq!(l.remove_matching(b"a", i64::MIN), 1);
        assert_eq!(l.remove_matching(b"zz", 0), 0);
        assert_eq!(l.payload, 2);
        assert!(l.insert_near(b"c", b("d"), true));
        assert!(l.insert_near(b"b", b("0"), false));
        assert!(!l.insert_near(b"nope", b("x"), false));
        assert_eq!(items(&l), ["0", "b", "c", "d"]);
    }

    #[test]
    fn timeouts_follow_redis_long_double_rules() {
        assert_eq!(parse_timeout_ms(b"0"), Ok(0));
        assert_eq!(parse_timeout_ms(b"0.01"), Ok(10));
        assert_eq!(parse_timeout_ms(b"1.5"), Ok(1500));
        assert_eq!(parse_timeout_ms(b"-0.0001"), Ok(0));
        assert_eq!(parse_timeout_ms(b"0x10"), Ok(16_000));
        assert_eq!(
            parse_timeout_ms(b"9223372036854775"),
            Ok(9_223_372_036_854_775_000)
        );
        let neg = Err(Reply::err(TIMEOUT_NEGATIVE));
        let bad = Err(Reply::err(TIMEOUT_NOT_FLOAT));
        for s in [
            "-1",
            "inf",
            "-inf",
            "1e16",
            "1e400",
            "9223372036854776",
            "0x1p70",
        ] {
            assert_eq!(parse_timeout_ms(s.as_bytes()), neg, "{s}");
        }
        for s in ["abc", "", " 1", "1 ", "nan", "1e5000", "1e-5000"] {
            assert_eq!(parse_timeout_ms(s.as_bytes()), bad, "{s}");
        }
    }

    #[test]
    fn blocking_commands_without_data_return_timeout_nulls() {
        let e = Engine::new(&EmbeddedConfig::default());
        assert_eq!(run(&e, &["blpop", "a", "b", "0"]), Reply::NullArray);
        assert_eq!(run(&e, &["brpop", "a", "0"]), Reply::NullArray);
        assert_eq!(
            run(&e, &["blmpop", "0", "2", "a", "b", "LEFT"]),
            Reply::NullArray
        );
        assert_eq!(
            run(&e, &["blmove", "a", "b", "LEFT", "RIGHT", "0"]),
            Reply::Null
        );
        assert_eq!(run(&e, &["brpoplpush", "a", "b", "0"]), Reply::Null);
        run(&e, &["set", "s", "x"]);
        // A missing source is a null reply whatever the destination holds.
        assert_eq!(
            run(&e, &["blmove", "a", "s", "LEFT", "RIGHT", "0"]),
            Reply::Null
        );
        assert_eq!(
            run(&e, &["blpop", "a", "s", "0"]),
            Reply::err(errors::WRONGTYPE)
        );
        assert_eq!(dirty(&e), 1);
        run(&e, &["rpush", "b", "1", "2"]);
        assert_eq!(
            run(&e, &["blpop", "a", "b", "0"]),
            Reply::Array(vec![Reply::Bulk(b("b")), Reply::Bulk(b("1"))])
        );
    }

    #[test]
    fn writes_count_dirty_and_empty_lists_are_deleted() {
        let e = Engine::new(&EmbeddedConfig::default());
        assert_eq!(run(&e, &["rpush", "l", "a", "b", "c"]), Reply::Integer(3));
        assert_eq!(dirty(&e), 3);
        run(&e, &["lpop", "l", "2"]);
        assert_eq!(dirty(&e), 5);
        run(&e, &["lpop", "l", "0"]);
        run(&e, &["lpushx", "nokey", "a"]);
        run(&e, &["lrem", "l", "0", "zz"]);
        assert_eq!(dirty(&e), 5);
        assert_eq!(
            run(&e, &["lmove", "l", "m", "LEFT", "RIGHT"]),
            Reply::Bulk(b("c"))
        );
        assert_eq!(dirty(&e), 6);
        assert_eq!(run(&e, &["exists", "l"]), Reply::Integer(0));
        assert_eq!(
            run(&e, &["lmove", "m", "m", "LEFT", "RIGHT"]),
            Reply::Bulk(b("c"))
        );
        assert_eq!(run(&e, &["llen", "m"]), Reply::Integer(1));
        run(&e, &["ltrim", "m", "1", "0"]);
        assert_eq!(run(&e, &["exists", "m"]), Reply::Integer(0));
        assert_eq!(dirty(&e), 8);
    }

    #[test]
    fn huge_counts_do_not_allocate_unboundedly() {
        let e = Engine::new(&EmbeddedConfig::default());
        run(&e, &["rpush", "l", "a", "b"]);
        let all = Reply::Array(vec![Reply::Bulk(b("a")), Reply::Bulk(b("b"))]);
        assert_eq!(
            run(
                &e,
                &["lrange", "l", "-9223372036854775808", "9223372036854775807"]
            ),
            all
        );
        assert_eq!(run(&e, &["lpop", "l", "9223372036854775807"]), all);
        run(&e, &["rpush", "l", "a"]);
        assert_eq!(
            run(
                &e,
                &["lmpop", "1", "l", "LEFT", "COUNT", "4611686018427387904"]
            ),
            Reply::Array(vec![
                Reply::Bulk(b("l")),
                Reply::Array(vec![Reply::Bulk(b("a"))])
            ])
        );
        assert_eq!(
            run(&e, &["lmpop", "9223372036854775807", "l", "LEFT"]),
            Reply::err(errors::SYNTAX)
        );
    }
}
